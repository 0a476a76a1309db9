"""Container commands: run, create, start, stop, kill, restart, wait, rm, rename, pause, unpause,
ps, logs, and ``container …``."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from . import CONTEXT, pass_session
from .output import echo, fail_if, print_rows, since
from .runner import RUN_FLAGS, _env_list, create_container, dest, run_container

RUN_CONTEXT = dict(CONTEXT, allow_interspersed_args=False)


def create_options(f):  # noqa: ANN001, ANN201
    """run/create's click options, made from the one flag table in runner.py."""
    decos = []
    for long, short, kind, default, help_ in RUN_FLAGS:
        names = [f"-{short}"] if short else []
        names.append(f"--{long}")
        if long == "network":
            names.append("--net")
        names.append(dest(long))
        if kind == "bool":
            decos.append(click.option(*names, is_flag=True, help=help_))
        elif kind == "multi":
            decos.append(click.option(*names, multiple=True, help=help_))
        elif kind in ("int", "optint"):
            decos.append(click.option(*names, default=default, type=int, help=help_))
        else:
            decos.append(click.option(*names, default=default, help=help_))
    decos.append(click.argument("image"))
    decos.append(click.argument("command", nargs=-1, type=click.UNPROCESSED))
    for deco in reversed(decos):
        f = deco(f)
    return f


@click.command("create", context_settings=RUN_CONTEXT)
@create_options
@pass_session
def create(session, **params):  # noqa: ANN001
    """Create a new container."""
    echo(create_container(session, params) + "\n")


@click.command("run", context_settings=RUN_CONTEXT)
@create_options
@pass_session
def run(session, **params):  # noqa: ANN001
    """Create and run a new container from an image."""
    raise click.exceptions.Exit(run_container(session, params))


@click.command("start", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@pass_session
def start(session, containers, attach, interactive):  # noqa: ANN001
    """Start one or more stopped containers."""
    from ..errors import DockyardError

    engine = session.engine
    if attach or interactive:
        from .runner import relay

        cid = engine.containers.resolve(containers[0])
        rec = engine.containers.load(cid)
        engine.containers.start(cid, attach=True)
        code = relay(engine, cid, stdin=interactive and rec["spec"]["Config"]["OpenStdin"],
                     tty=rec["spec"]["Config"]["Tty"])
        raise click.exceptions.Exit(0 if code is None else code)
    errors = []
    for ref in containers:
        try:
            engine.containers.start(ref)
            echo(ref + "\n")
        except DockyardError as exc:
            errors.append(f"Error response from daemon: {exc}")
    if errors:
        errors.append("Error: failed to start containers: " + ", ".join(containers))
    fail_if(errors)


def _each(session, refs, action, print_ref: bool = True) -> None:  # noqa: ANN001
    from ..errors import DockyardError

    errors = []
    for ref in refs:
        try:
            action(ref)
            if print_ref:
                echo(ref + "\n")
        except DockyardError as exc:
            errors.append(f"Error response from daemon: {exc}")
    fail_if(errors)


@click.command("stop", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "--timeout", "timeout", default=None, type=int, help="Seconds to wait before killing the container")
@click.option("-s", "--signal", "sig", default=None, help="Signal to send to the container")
@pass_session
def stop(session, containers, timeout, sig):  # noqa: ANN001
    """Stop one or more running containers."""
    _each(session, containers, lambda r: session.engine.containers.stop(r, timeout, sig))


@click.command("restart", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "--timeout", "timeout", default=None, type=int, help="Seconds to wait before killing the container")
@click.option("-s", "--signal", "sig", default=None, help="Signal to send to the container")
@pass_session
def restart(session, containers, timeout, sig):  # noqa: ANN001
    """Restart one or more containers."""
    def act(ref: str) -> None:
        session.engine.containers.stop(ref, timeout, sig)
        session.engine.containers.start(ref)
    _each(session, containers, act)


@click.command("kill", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send to the container")
@pass_session
def kill(session, containers, sig):  # noqa: ANN001
    """Kill one or more running containers."""
    from ..engine.spec import parse_signal

    parse_signal(sig)
    _each(session, containers, lambda r: session.engine.containers.kill(r, sig))


@click.command("wait", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@pass_session
def wait(session, containers):  # noqa: ANN001
    """Block until one or more containers stop, then print their exit codes."""
    def act(ref: str) -> None:
        echo(f"{session.engine.containers.wait(ref)['ExitCode']}\n")
    _each(session, containers, act, print_ref=False)


@click.command("rm", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container")
@pass_session
def rm(session, containers, force, volumes):  # noqa: ANN001
    """Remove one or more containers."""
    _each(session, containers, lambda r: session.engine.containers.remove(r, force, volumes))


@click.command("rename", context_settings=CONTEXT)
@click.argument("container")
@click.argument("new_name")
@pass_session
def rename(session, container, new_name):  # noqa: ANN001
    """Rename a container."""
    session.engine.containers.rename(container, new_name)


@click.command("pause", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@pass_session
def pause(session, containers):  # noqa: ANN001
    """Pause all processes within one or more containers."""
    _each(session, containers, session.engine.containers.pause)


@click.command("unpause", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@pass_session
def unpause(session, containers):  # noqa: ANN001
    """Unpause all processes within one or more containers."""
    _each(session, containers, session.engine.containers.unpause)


PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED",
              "CreatedAt": "CREATED AT", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES",
              "State": "STATE", "Labels": "LABELS", "Size": "SIZE", "Mounts": "MOUNTS", "Networks": "NETWORKS"}
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def status_text(state: dict) -> str:
    """Docker's STATUS column: "Up 3 seconds", "Exited (0) 2 minutes ago", "Created"."""
    from ..engine.images import parse_time
    from ..units import human_duration

    now = time.time()
    if state["Running"]:
        text = "Up " + human_duration(max(0.0, now - parse_time(state["StartedAt"])))
        return text + " (Paused)" if state["Paused"] else text
    if state["Status"] == "created":
        return "Created"
    finished = parse_time(state["FinishedAt"])
    return f"Exited ({state['ExitCode']}) " + human_duration(max(0.0, now - finished)) + " ago"


def ps_rows(recs: list[dict], no_trunc: bool) -> list[dict]:
    from ..engine.images import parse_time
    from .output import go_time

    rows = []
    for rec in recs:
        spec = rec["spec"]
        command = " ".join([spec["Path"], *spec["Args"]])
        if not no_trunc and len(command) > 20:
            command = command[:19] + "…"
        created = parse_time(rec["created"])
        labels = spec["Config"].get("Labels") or {}
        rows.append({
            "ID": rec["id"] if no_trunc else rec["id"][:12],
            "Image": spec["Config"]["Image"],
            "Command": json.dumps(command, ensure_ascii=False),
            "RunningFor": since(created),
            "CreatedAt": go_time(created),
            "Status": status_text(rec["state"]),
            "State": rec["state"]["Status"],
            "Ports": "",
            "Names": rec["name"],
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "Mounts": "",
            "Networks": "",
            "Size": "0B",
        })
    return rows


def ps_filter(recs: list[dict], filters: dict[str, list[str]]) -> list[dict]:
    from ..engine.filters import labels_match

    out = []
    for rec in recs:
        st = rec["state"]
        ok = True
        for key, values in filters.items():
            if key == "status":
                ok = st["Status"] in values
            elif key == "name":
                ok = any(v.lstrip("/") in rec["name"] for v in values)
            elif key == "id":
                ok = any(rec["id"].startswith(v) for v in values)
            elif key == "label":
                ok = labels_match(rec["spec"]["Config"].get("Labels") or {}, values)
            elif key == "exited":
                ok = not st["Running"] and st["Status"] == "exited" and str(st["ExitCode"]) in values
            elif key == "ancestor":
                ok = any(v in (rec["spec"]["Config"]["Image"], rec["image_id"], rec["image_id"][7:19]) for v in values)
            if not ok:
                break
        if ok:
            out.append(rec)
    return out


@click.command("ps", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)")
@click.option("-n", "--last", default=-1, type=int, help="Show n last created containers (includes all states)")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.option("--format", "fmt", help="Format output using a custom template")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@pass_session
def ps(session, all_, quiet, latest, last, filters, fmt, no_trunc, size):  # noqa: ANN001
    """List containers."""
    from ..engine.filters import parse_filters

    parsed = parse_filters(filters, ("status", "name", "id", "label", "exited", "ancestor"))
    recs = session.engine.containers.all()
    if latest:
        last = 1
    if last >= 0:
        recs = recs[:last]
    elif not all_ and "status" not in parsed and "exited" not in parsed:
        recs = [r for r in recs if r["state"]["Running"]]
    recs = ps_filter(recs, parsed)
    rows = ps_rows(recs, no_trunc)
    if not quiet:
        from ..engine.network.hooks import ps_columns

        for row, rec in zip(rows, recs):  # PORTS, NETWORKS and MOUNTS (engine/network, engine/volumes)
            row.update(ps_columns(session.engine.containers, rec))
    print_rows(rows, fmt, PS_TABLE, PS_HEADERS, quiet_field="ID", quiet=quiet)


@click.command("logs", context_settings=CONTEXT)
@click.argument("container")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("-n", "--tail", default="all", help='Number of lines to show from the end of the logs (default "all")')
@click.option("--since", "since_", default=None, help="Show logs since timestamp or relative (e.g. 42m)")
@click.option("--until", default=None, help="Show logs before a timestamp or relative (e.g. 42m)")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("--details", is_flag=True, help="Show extra details provided to logs")
@pass_session
def logs(session, container, follow, tail, since_, until, timestamps, details):  # noqa: ANN001
    """Fetch the logs of a container."""
    from ..engine.filters import _timestamp
    from ..engine.images import parse_time
    from ..errors import InvalidArgument

    engine = session.engine
    cid = engine.containers.resolve(container)
    path = engine.containers.logs(cid)
    lo = _timestamp(since_) if since_ else None
    hi = _timestamp(until) if until else None
    if tail != "all":
        try:
            count = int(tail)
        except ValueError:
            raise InvalidArgument(f"invalid value for \"tail\": {tail}") from None
    else:
        count = -1
    out, err = sys.stdout.buffer, sys.stderr.buffer

    def emit(entries: list[dict]) -> None:
        for e in entries:
            t = parse_time(e.get("time", ""))
            if lo is not None and t < lo or hi is not None and t >= hi:
                continue
            text = e.get("log", "").encode("utf-8", "surrogateescape")
            if timestamps:
                text = e.get("time", "").encode() + b" " + text
            (err if e.get("stream") == "stderr" else out).write(text)
        out.flush()
        err.flush()

    def read_from(pos: int) -> tuple[int, list[dict]]:
        return engine.containers.read_log(cid, pos)

    pos, entries = read_from(0)
    if count >= 0:
        entries = entries[-count:] if count else []
    emit(entries)
    if follow:
        while True:
            rec = engine.containers.refresh(engine.containers.load(cid))
            pos, entries = read_from(pos)
            emit(entries)
            if not rec["state"]["Running"] and not entries:
                pos, entries = read_from(pos)
                emit(entries)
                return
            if hi is not None and time.time() >= hi:
                return
            time.sleep(0.05)


@click.command("prune", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values")
@pass_session
def container_prune(session, force, filters):  # noqa: ANN001
    """Remove all stopped containers."""
    from .output import confirm

    if not confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue?", force):
        return
    removed = []
    for rec in session.engine.containers.all():
        if not rec["state"]["Running"]:
            removed.append(session.engine.containers.remove(rec["id"]))
    lines = (["Deleted Containers:"] + removed + [""]) if removed else []
    lines.append("Total reclaimed space: 0B")
    echo("\n".join(lines) + "\n")


@click.command("commit", context_settings=CONTEXT)
@click.argument("container")
@click.argument("reference", required=False)
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", help="Commit message")
@click.option("-p", "--pause/--no-pause", default=True, help="Pause container during commit")
@pass_session
def commit(session, container, reference, author, changes, message, pause):  # noqa: ANN001
    """Create a new image from a container's changes."""
    image_id = session.engine.containers.commit(container, reference, list(changes), message, author, pause)
    echo(image_id + "\n")


@click.command("diff", context_settings=CONTEXT)
@click.argument("container")
@pass_session
def diff(session, container):  # noqa: ANN001
    """Inspect changes to files or directories on a container's filesystem."""
    echo("".join(f"{kind} {path}\n" for kind, path in session.engine.containers.diff(container)))


@click.command("export", context_settings=CONTEXT)
@click.argument("container")
@click.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT")
@pass_session
def export(session, container, output):  # noqa: ANN001
    """Export a container's filesystem as a tar archive."""
    from ..errors import InvalidArgument

    engine = session.engine
    engine.containers.resolve(container)
    if output is None:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        sys.stdout.flush()
        engine.containers.export(container, f"/proc/self/fd/{sys.stdout.fileno()}")
        return
    tmp = f"{output}.dockyard-{os.getpid()}.tmp"
    try:
        engine.containers.export(container, tmp)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@click.command("exec", context_settings=RUN_CONTEXT)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("-e", "--env", multiple=True, help="Set environment variables")
@click.option("--env-file", multiple=True, help="Read in a file of environment variables")
@click.option("-w", "--workdir", default="", help="Working directory inside the container")
@click.option("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_session
def exec_(session, detach, interactive, tty, env, env_file, workdir, user, privileged, container, command):  # noqa: ANN001
    """Execute a command in a running container."""
    from ..engine.runtime import binary
    containers = session.engine.containers
    cid = containers.running(container, "exec")["id"]
    args = [binary(), "--root", str(containers.runtime.root), "exec"]
    if tty and sys.stdin.isatty():
        args.append("--tty")
    if detach:
        args.append("--detach")
    for e in _env_list(env, env_file):
        args += ["--env", e]
    if workdir:
        args += ["--cwd", workdir]
    if user:
        args += ["--user", user]
    args += [cid, "--", *command]
    session.close()  # the runtime takes over this process: exit code, signals and tty are its own
    sys.stdout.flush()
    sys.stderr.flush()
    if not interactive and not tty:
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
    os.execv(args[0], args)


@click.command("attach", context_settings=CONTEXT)
@click.argument("container")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy all received signals to the process")
@pass_session
def attach(session, container, no_stdin, sig_proxy):  # noqa: ANN001
    """Attach local standard input, output, and error streams to a running container."""
    from ..errors import Conflict

    engine = session.engine
    cid = engine.containers.resolve(container)
    rec = engine.containers.refresh(engine.containers.load(cid))
    if not rec["state"]["Running"]:
        raise Conflict("You cannot attach to a stopped container, start it first")
    cfg = rec["spec"]["Config"]
    from .runner import relay

    code = relay(engine, cid, stdin=cfg["OpenStdin"] and not no_stdin, tty=cfg["Tty"])
    raise click.exceptions.Exit(0 if code is None else code)


@click.command("top", context_settings=CONTEXT)
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@pass_session
def top(session, container, ps_args):  # noqa: ANN001
    """Display the running processes of a container."""
    import subprocess

    from ..errors import DockyardError

    engine = session.engine
    cid = engine.containers.running(container)["id"]
    pids = set(engine.containers.runtime.ps(cid))
    proc = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DockyardError(f"ps: {proc.stderr.strip()}")
    lines = proc.stdout.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        raise DockyardError("Couldn't find PID field in ps output")
    col = header.index("PID")
    rows = [lines[0]] + [l for l in lines[1:] if len(l.split()) > col and l.split()[col].isdigit()
                         and int(l.split()[col]) in pids]
    from ..template import tabwriter

    echo(tabwriter("".join("\t".join(r.split(None, len(header) - 1)) + "\n" for r in rows), minwidth=20))


@click.command("stats", context_settings=CONTEXT)
@click.argument("containers", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output")
@click.option("--format", "fmt", help="Format output using a custom template")
@pass_session
def stats(session, containers, all_, no_stream, no_trunc, fmt):  # noqa: ANN001
    """Display a live stream of container(s) resource usage statistics."""
    from ..engine.cgroupstats import sample
    from ..units import bytes_size, human_size

    engine = session.engine
    ids = [engine.containers.resolve(c) for c in containers] if containers else [
        r["id"] for r in engine.containers.all() if r["state"]["Running"] or all_]
    headers = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
               "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
               "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
    default = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
    before = {cid: sample(cid) for cid in ids}
    while True:
        time.sleep(1.0 if no_stream else 1.0)
        rows = []
        for cid in ids:
            rec = engine.containers.load(cid)
            now = sample(cid)
            prev = before.get(cid) or now
            cpu = 0.0
            if now["system"] > prev["system"]:
                cpu = (now["cpu"] - prev["cpu"]) / (now["system"] - prev["system"]) * now["ncpu"] * 100.0
            limit = now["mem_limit"]
            rows.append({
                "ID": cid if no_trunc else cid[:12], "Container": cid[:12], "Name": rec["name"],
                "CPUPerc": f"{cpu:.2f}%",
                "MemUsage": f"{bytes_size(now['mem'])} / {bytes_size(limit)}",
                "MemPerc": f"{(now['mem'] / limit * 100) if limit else 0:.2f}%",
                "NetIO": "0B / 0B",
                "BlockIO": f"{human_size(now['blk_read'])} / {human_size(now['blk_write'])}",
                "PIDs": str(now["pids"]),
            })
            before[cid] = now
        if not no_stream:
            echo("\x1b[2J\x1b[H")
        print_rows(rows, fmt, default, headers)
        if no_stream:
            return


@click.command("cp", context_settings=CONTEXT)
@click.argument("src")
@click.argument("dest")
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information)")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output during copy")
@pass_session
def cp(session, src, dest, archive, follow_link, quiet):  # noqa: ANN001
    """Copy files/folders between a container and the local filesystem."""
    from ..errors import InvalidArgument

    def split(arg: str):  # noqa: ANN202
        if ":" in arg and not arg.startswith(("/", ".")):
            name, _, path = arg.partition(":")
            return name, path
        return None, arg

    (sc, sp), (dc, dp) = split(src), split(dest)
    if (sc is None) == (dc is None):
        raise InvalidArgument("must specify at least one container source" if sc is None else
                              "copying between containers is not supported")
    containers = session.engine.containers
    if sc is not None:
        containers.copy_from(sc, sp, dp, follow_link=follow_link)
    else:
        containers.copy_to(dc, sp, dp, archive=archive, follow_link=follow_link)


@click.group("container", context_settings=CONTEXT)
def container_group() -> None:
    """Manage containers."""


for _name, _cmd in (("run", run), ("create", create), ("start", start), ("stop", stop), ("restart", restart),
                    ("kill", kill), ("wait", wait), ("rm", rm), ("remove", rm), ("rename", rename),
                    ("pause", pause), ("unpause", unpause), ("ls", ps), ("list", ps), ("ps", ps),
                    ("logs", logs), ("prune", container_prune), ("commit", commit), ("diff", diff),
                    ("export", export), ("exec", exec_), ("attach", attach), ("top", top), ("stats", stats),
                    ("cp", cp)):
    container_group.add_command(_cmd, _name)
