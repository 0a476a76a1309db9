"""``volume create|ls|inspect|rm|prune``: requests to the daemon's ``/volumes`` routes."""

from __future__ import annotations

import click

from . import CONTEXT, pass_session
from .output import echo, fail_if, parse_filters, print_inspect, print_rows


def _path(name: str) -> str:
    from ..client import quote

    return "/volumes/" + quote(name, safe="")


@click.group("volume", context_settings=CONTEXT)
def volume_group() -> None:
    """Manage volumes."""


@volume_group.command("create", context_settings=CONTEXT)
@click.argument("name", required=False, default="")
@click.option("--name", "name_opt", default="", help="Specify volume name")
@click.option("-d", "--driver", default="local", help="Specify volume driver name")
@click.option("--label", multiple=True, help="Set metadata for a volume")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options")
@pass_session
def create(session, name, name_opt, driver, label, opt):
    """Create a volume."""
    from ..errors import InvalidArgument

    if name and name_opt and name != name_opt:
        raise InvalidArgument("conflicting options: either specify --name or provide positional arg, not both")
    labels = {k: v for k, _, v in (l.partition("=") for l in label)}
    opts = {k: v for k, _, v in (o.partition("=") for o in opt)}
    vol = session.api.json("POST", "/volumes/create", None, {"Name": name or name_opt, "Driver": driver,
                                                             "DriverOpts": opts, "Labels": labels})
    echo(vol["Name"] + "\n")


def _rows(vols: list[dict]) -> list[dict]:
    rows = []
    for v in vols:
        labels = v.get("Labels") or {}
        rows.append({"Name": v["Name"], "Driver": v["Driver"], "Scope": v["Scope"], "Mountpoint": v["Mountpoint"],
                     "Labels": ",".join(f"{k}={val}" for k, val in sorted(labels.items())), "Links": "N/A",
                     "Size": "N/A", "_labels": labels})
    return rows


@volume_group.command("ls", context_settings=CONTEXT)
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'dangling=true')")
@click.option("--format", "fmt", default=None, help="Pretty-print volumes using a Go template")
@pass_session
def ls(session, quiet, filters, fmt):
    """List volumes."""
    out = session.api.json("GET", "/volumes", {"filters": parse_filters(filters) or None})
    rows = _rows(sorted(out.get("Volumes") or [], key=lambda v: v["Name"]))
    print_rows(rows, fmt, "table {{.Driver}}\t{{.Name}}", {"Driver": "DRIVER", "Name": "VOLUME NAME",
               "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE"},
               quiet_field="Name", quiet=quiet)


volume_group.add_command(ls, "list")


@volume_group.command("inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None, help="Format the output using the given Go template")
@pass_session
def inspect(session, names, fmt):
    """Display detailed information on one or more volumes."""
    from ..errors import NotFound

    vols, errors = [], []
    for n in names:
        try:
            vols.append(session.api.json("GET", _path(n)))
        except NotFound as exc:
            errors.append(f"Error response from daemon: {exc}")
    print_inspect(vols, fmt)
    fail_if(errors)


@volume_group.command("rm", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes")
@pass_session
def rm(session, names, force):
    """Remove one or more volumes."""
    from ..errors import DockyardError

    errors = []
    for n in names:
        try:
            session.api.json("DELETE", _path(n), {"force": force or None})
            echo(n + "\n")
        except DockyardError as exc:
            errors.append(f"Error response from daemon: {exc}")
    fail_if(errors)


volume_group.add_command(rm, "remove")


@volume_group.command("prune", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<label>')")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not just anonymous ones")
@pass_session
def prune(session, force, filters, all_):
    """Remove unused local volumes."""
    from ..units import human_size
    from .output import confirm

    parsed = parse_filters(filters)
    if all_:
        parsed["all"] = ["true"]
    if not confirm(f"WARNING! This will remove {'all' if all_ else 'anonymous'} local volumes not used by at least "
                   "one container.\nAre you sure you want to continue?", force):
        return
    report = session.api.json("POST", "/volumes/prune", {"filters": parsed or None})
    deleted = report.get("VolumesDeleted") or []
    out = ""
    if deleted:
        out += "Deleted Volumes:\n" + "".join(n + "\n" for n in deleted) + "\n"
    echo(out + f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}\n")
