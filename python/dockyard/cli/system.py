"""System commands: system df, version."""

from __future__ import annotations

import click

from . import CONTEXT, pass_session
from .output import print_rows


@click.command("df", context_settings=CONTEXT)
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage")
@click.option("--format", "fmt", help="Format output using a custom template")
@pass_session
def system_df(session, verbose, fmt):  # noqa: ANN001
    """Show dockyard disk usage."""
    from ..units import human_size

    usage = session.engine.disk_usage()
    rows = []

    def row(kind: str, total: int, active: int, size: int, reclaimable: int) -> dict:
        pct = f" ({reclaimable * 100 // size}%)" if size else ""
        return {"Type": kind, "TotalCount": str(total), "Active": str(active),
                "Size": human_size(size), "Reclaimable": human_size(reclaimable) + pct}

    images = usage["Images"]
    rows.append(row("Images", images["total"], images["active"], images["size"], images["reclaimable"]))
    for kind in ("Containers", "Local Volumes", "Build Cache"):
        part = usage.get(kind) or {"total": 0, "active": 0, "size": 0, "reclaimable": 0}
        rows.append(row(kind, part["total"], part["active"], part["size"], part["reclaimable"]))
    headers = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
               "Reclaimable": "RECLAIMABLE"}
    default = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
    print_rows(rows, fmt, default, headers)


@click.group("system", context_settings=CONTEXT)
def system_group() -> None:
    """Manage dockyard."""


system_group.add_command(system_df, "df")


@click.command("version", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", help="Format output using a custom template")
def version(fmt):  # noqa: ANN001
    """Show the dockyard version information."""
    import platform

    from .. import __version__
    from .output import echo

    info = {"Client": {"Version": __version__, "Os": "linux", "Arch": platform.machine(),
                       "GoVersion": "python" + platform.python_version()}}
    if fmt:
        from ..template import compile as compile_template

        echo(compile_template(fmt).render(info) + "\n")
        return
    c = info["Client"]
    echo(f"Client:\n Version:           {c['Version']}\n OS/Arch:           {c['Os']}/{c['Arch']}\n")
