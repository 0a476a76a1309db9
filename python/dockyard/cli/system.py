"""System commands: version, system info/df/prune/events (``dockyard info`` as ``system info``).

Each asks the daemon and renders what docker's CLI renders from the same API answers.
"""

from __future__ import annotations

import click

from . import CONTEXT, pass_session
from .output import echo, print_rows


def _df_rows(usage: dict) -> list[dict]:
    """docker's ``system df`` summary from ``GET /system/df`` (formatter/disk_usage.go)."""
    from ..units import human_size

    def row(kind: str, total: int, active: int, size: int, reclaimable: int) -> dict:
        pct = f" ({reclaimable * 100 // size}%)" if size > 0 else ""
        return {"Type": kind, "TotalCount": str(total), "Active": str(active),
                "Size": human_size(size), "Reclaimable": human_size(reclaimable) + pct}

    images = usage.get("Images") or []
    layers = usage.get("LayersSize") or 0
    used = sum(i.get("Size", 0) - i.get("SharedSize", 0) for i in images
               if i.get("Containers", 0) > 0 and i.get("SharedSize", 0) >= 0)
    rows = [row("Images", len(images), sum(1 for i in images if i.get("Containers", 0) > 0), layers,
                max(0, layers - used))]
    containers = usage.get("Containers") or []
    rows.append(row("Containers", len(containers), sum(1 for c in containers if c.get("State") == "running"),
                    sum(c.get("SizeRw", 0) for c in containers),
                    sum(c.get("SizeRw", 0) for c in containers if c.get("State") != "running")))
    volumes = usage.get("Volumes") or []
    sizes = [((v.get("UsageData") or {}).get("Size", -1), (v.get("UsageData") or {}).get("RefCount", 0))
             for v in volumes]
    rows.append(row("Local Volumes", len(volumes), sum(1 for _, refs in sizes if refs > 0),
                    sum(s for s, _ in sizes if s > 0), sum(s for s, refs in sizes if s > 0 and refs == 0)))
    cache = usage.get("BuildCache") or []
    rows.append(row("Build Cache", len(cache), sum(1 for c in cache if c.get("InUse")),
                    sum(c.get("Size", 0) for c in cache if not c.get("Shared")),
                    sum(c.get("Size", 0) for c in cache if not c.get("InUse") and not c.get("Shared"))))
    return rows


@click.command("df", context_settings=CONTEXT)
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage")
@click.option("--format", "fmt", help="Format output using a custom template")
@pass_session
def system_df(session, verbose, fmt):
    """Show dockyard disk usage."""
    usage = session.api.json("GET", "/system/df", timeout=None) or {}
    headers = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
               "Reclaimable": "RECLAIMABLE"}
    default = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
    print_rows(_df_rows(usage), fmt, default, headers)


@click.command("prune", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images not just dangling ones")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help='Provide filter values (e.g. "label=<key>=<value>")')
@pass_session
def system_prune(session, all_, volumes, force, filters):
    """Remove unused data: stopped containers, unused networks, dangling images, build cache."""
    from ..units import human_size
    from .output import confirm, parse_filters

    parsed = parse_filters(filters)
    items = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them" if all_
                 else "all dangling images")
    items.append("unused build cache")
    warning = "WARNING! This will remove:\n" + "".join(f"  - {i}\n" for i in items)
    if not confirm(warning + "\nAre you sure you want to continue?", force):
        return
    api = session.api
    total = 0
    sections = []

    def prune(path: str, flt: dict) -> dict:
        nonlocal total
        report = api.json("POST", path, {"filters": flt or None}, timeout=None) or {}
        total += report.get("SpaceReclaimed") or 0
        return report

    deleted = prune("/containers/prune", parsed).get("ContainersDeleted")
    if deleted:
        sections.append("Deleted Containers:\n" + "".join(f"{c}\n" for c in deleted))
    if volumes:
        deleted = prune("/volumes/prune", parsed).get("VolumesDeleted")
        if deleted:
            sections.append("Deleted Volumes:\n" + "".join(f"{v}\n" for v in deleted))
    deleted = prune("/networks/prune", parsed).get("NetworksDeleted")
    if deleted:
        sections.append("Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted))
    image_filters = dict(parsed, dangling=["false"]) if all_ else parsed
    deleted = prune("/images/prune", image_filters).get("ImagesDeleted")
    if deleted:
        sections.append("Deleted Images:\n" + "".join(f"{k.lower()}: {v}\n" for item in deleted
                                                       for k, v in item.items()))
    deleted = prune("/build/prune", {}).get("CachesDeleted")
    if deleted:
        sections.append("Deleted build cache objects:\n" + "".join(f"{c}\n" for c in deleted))
    echo("".join(s + "\n" for s in sections) + f"Total reclaimed space: {human_size(total)}\n")


@click.command("info", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", help="Format output using a custom template")
@pass_session
def system_info(session, fmt):
    """Display system-wide information."""
    from .. import __version__

    info = session.api.json("GET", "/info") or {}
    client = {"Version": __version__, "Context": "default", "Debug": False}
    if fmt:
        from ..template import compile as compile_template

        echo(compile_template(fmt).render(dict(info, ClientInfo=client)) + "\n")
        return
    from ..units import bytes_size

    def listing(values) -> str:
        return " ".join(values or [])

    plugins = info.get("Plugins") or {}
    lines = ["Client:", f" Version:    {__version__}", " Context:    default", " Debug Mode: false", "",
             "Server:",
             f" Containers: {info.get('Containers', 0)}",
             f"  Running: {info.get('ContainersRunning', 0)}",
             f"  Paused: {info.get('ContainersPaused', 0)}",
             f"  Stopped: {info.get('ContainersStopped', 0)}",
             f" Images: {info.get('Images', 0)}",
             f" Server Version: {info.get('ServerVersion', '')}",
             f" Storage Driver: {info.get('Driver', '')}"]
    lines += [f"  {k}: {v}" for k, v in info.get("DriverStatus") or []]
    lines += [f" Logging Driver: {info.get('LoggingDriver', '')}",
              f" Cgroup Driver: {info.get('CgroupDriver', '')}",
              f" Cgroup Version: {info.get('CgroupVersion', '')}",
              " Plugins:",
              f"  Volume: {listing(plugins.get('Volume'))}",
              f"  Network: {listing(plugins.get('Network'))}",
              f"  Log: {listing(plugins.get('Log'))}",
              f" Swarm: {(info.get('Swarm') or {}).get('LocalNodeState', 'inactive')}",
              f" Runtimes: {listing(sorted(info.get('Runtimes') or {}))}",
              f" Default Runtime: {info.get('DefaultRuntime', '')}",
              f" Init Binary: {info.get('InitBinary', '')}"]
    security = info.get("SecurityOptions") or []
    if security:
        lines.append(" Security Options:")
        for opt in security:
            fields = dict(kv.partition("=")[::2] for kv in opt.split(","))
            lines.append(f"  {fields.pop('name', opt)}")
            lines += [f"   {k.capitalize()}: {v}" for k, v in fields.items()]
    lines += [f" Kernel Version: {info.get('KernelVersion', '')}",
              f" Operating System: {info.get('OperatingSystem', '')}",
              f" OSType: {info.get('OSType', '')}",
              f" Architecture: {info.get('Architecture', '')}",
              f" CPUs: {info.get('NCPU', 0)}",
              f" Total Memory: {bytes_size(info.get('MemTotal', 0))}",
              f" Name: {info.get('Name', '')}",
              f" ID: {info.get('ID', '')}",
              f" Docker Root Dir: {info.get('DockerRootDir', '')}",
              f" Debug Mode: {str(info.get('Debug', False)).lower()}",
              f" Experimental: {str(info.get('ExperimentalBuild', False)).lower()}"]
    insecure = (info.get("RegistryConfig") or {}).get("InsecureRegistryCIDRs") or []
    if insecure:
        lines.append(" Insecure Registries:")
        lines += [f"  {c}" for c in insecure]
    lines.append(f" Live Restore Enabled: {str(info.get('LiveRestoreEnabled', False)).lower()}")
    echo("\n".join(lines) + "\n")
    for warning in info.get("Warnings") or []:
        click.echo(warning, err=True)


@click.command("events", context_settings=CONTEXT)
@click.option("--since", default=None, help="Show all events created since timestamp")
@click.option("--until", default=None, help="Stream events until this timestamp")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.option("--format", "fmt", help="Format output using a custom template")
@pass_session
def system_events(session, since, until, filters, fmt):
    """Get real time events from the daemon."""
    import time

    from .output import go_json, messages, parse_filters

    tmpl = None
    if fmt and fmt != "json":
        from ..template import compile as compile_template

        tmpl = compile_template(fmt)
    resp = session.api.request("GET", "/events", {"since": since, "until": until,
                                                  "filters": parse_filters(filters) or None},
                               stream=True, timeout=None)
    for ev in messages(session.api, resp):
        if fmt == "json":
            echo(go_json(ev) + "\n")
            continue
        if tmpl is not None:
            echo(tmpl.render(ev) + "\n")
            continue
        nano = ev.get("timeNano") or int(ev.get("time", 0) * 1e9)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(nano // 10**9)) + f".{nano % 10**9:09d}" + \
            time.strftime("%z", time.localtime(nano // 10**9))
        stamp = stamp[:-5] + "Z" if stamp.endswith("+0000") else stamp[:-2] + ":" + stamp[-2:]  # Go's Z07:00
        actor = ev.get("Actor") or {}
        attrs = ", ".join(f"{k}={v}" for k, v in sorted((actor.get("Attributes") or {}).items()))
        echo(f"{stamp} {ev.get('Type', '')} {ev.get('Action', '')} {actor.get('ID', '')}"
             + (f" ({attrs})" if attrs else "") + "\n")


@click.group("system", context_settings=CONTEXT)
def system_group() -> None:
    """Manage dockyard."""


for _name, _cmd in (("df", system_df), ("prune", system_prune), ("info", system_info), ("events", system_events)):
    system_group.add_command(_cmd, _name)


@click.command("version", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", help="Format output using a custom template")
@pass_session
def version(session, fmt):
    """Show the dockyard version information (the client's, then the daemon's)."""
    import platform

    from .. import __version__
    from ..client import API_VERSION
    from ..errors import DockyardError

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    client = {"Version": __version__, "ApiVersion": API_VERSION, "DefaultAPIVersion": API_VERSION,
              "GoVersion": "python" + platform.python_version(), "Os": "linux", "Arch": arch,
              "Context": "default", "GitCommit": "", "BuildTime": ""}
    server, failure = None, None
    try:
        server = session.api.json("GET", "/version")
    except DockyardError as exc:
        failure = exc
    if fmt:
        from ..template import compile as compile_template

        if failure is not None:
            raise failure
        echo(compile_template(fmt).render({"Client": client, "Server": server}) + "\n")
        return
    out = ["Client:", f" Version:           {client['Version']}", f" API version:       {client['ApiVersion']}",
           f" Go version:        {client['GoVersion']}", f" OS/Arch:           {client['Os']}/{client['Arch']}",
           f" Context:           {client['Context']}"]
    if server:
        name = (server.get("Platform") or {}).get("Name", "")
        out += ["", f"Server: {name}".rstrip(), " Engine:", f"  Version:          {server.get('Version', '')}",
                f"  API version:      {server.get('ApiVersion', '')} (minimum version {server.get('MinAPIVersion', '')})",
                f"  Go version:       {server.get('GoVersion', '')}",
                f"  OS/Arch:          {server.get('Os', '')}/{server.get('Arch', '')}",
                f"  Experimental:     {str(server.get('Experimental', False)).lower()}"]
        for comp in server.get("Components") or []:
            if comp.get("Name") != "Engine":
                out += [f" {comp.get('Name', '')}:", f"  Version:          {comp.get('Version', '')}"]
    echo("\n".join(out) + "\n")
    if failure is not None:
        raise failure
