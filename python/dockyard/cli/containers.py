"""Container commands: run, create, start, stop, kill, restart, wait, rm, rename, pause, unpause,
ps, logs, exec, cp, … and ``container …``.

Every command is a client of the daemon (``session.api``, the Docker Engine API), as the docker
CLI is of dockerd: nothing here touches the engine, the store or the kernel.  Errors from the
daemon come back as dockyard's own exceptions and print as ``Error response from daemon: …``."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from ..client import frames
from . import CONTEXT, pass_session
from .listing import list_containers
from .output import client_error, echo, fail_if, print_rows
from .runner import (
    RUN_FLAGS, _env_list, create_container, dest, relay, run_container, side_transport, terminal_size,
)

RUN_CONTEXT = dict(CONTEXT, allow_interspersed_args=False)


def create_options(f):
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
def create(session, **params):
    """Create a new container."""
    echo(create_container(session, params) + "\n")


@click.command("run", context_settings=RUN_CONTEXT)
@create_options
@pass_session
def run(session, **params):
    """Create and run a new container from an image."""
    raise click.exceptions.Exit(run_container(session, params))




def _q(ref: str) -> str:
    """A container reference as one URL path segment."""
    from ..client import quote

    return quote(ref, "")


def _daemon_line(exc: Exception) -> str:
    """One error line, as :func:`dockyard.cli.main` would print it."""
    return str(exc) if getattr(exc, "client_side", False) else f"Error response from daemon: {exc}"


@click.command("start", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@pass_session
def start(session, containers, attach, interactive):
    """Start one or more stopped containers."""
    from ..errors import DockyardError

    if attach or interactive:
        from . import runner

        code = runner.attach_api(session, containers[0], stdin=interactive, tty=None, start=True, sig_proxy=True)
        raise click.exceptions.Exit(0 if code is None else code)
    errors = []
    for ref in containers:
        try:
            session.api.json("POST", f"/containers/{_q(ref)}/start")
            echo(ref + "\n")
        except DockyardError as exc:
            errors.append(_daemon_line(exc))
    if errors:
        errors.append("Error: failed to start containers: " + ", ".join(containers))
    fail_if(errors)


#: requests at once for ``stop`` (the docker CLI: 50), whose time is mostly the containers' own
#: (a grace period each); ``QUICK`` for ``kill``, ``rm``, ``pause`` and ``unpause``, whose time is
#: mostly the daemon's, on threads that share one interpreter lock: past a few at once they only
#: contend (``rm -f`` of 150 running containers on 2 cores: 8.1 ms each 16 at once, 6.0 to 6.7 ms
#: 2 to 4 at once)
PARALLEL = 16
QUICK = 4


def _each(session, refs, action, print_ref: bool = True, parallel: int = 0) -> None:
    """``action(api, ref)`` for each container; errors after the successes, exit 1 if any (as
    docker).  ``parallel``: as the docker CLI's parallelOperation, up to that many at once, each
    on a connection of its own, the results printed in the order given."""
    from ..errors import DockyardError

    def one(api, ref: str) -> DockyardError | None:
        try:
            action(api, ref)
        except DockyardError as exc:
            return exc
        return None

    results = (_parallel(session, refs, one, parallel) if parallel > 1 and len(refs) > 1
               else (one(session.api, r) for r in refs))
    errors = []
    for ref, exc in zip(refs, results):
        if exc is None:
            if print_ref:
                echo(ref + "\n")
        else:
            errors.append(_daemon_line(exc))
    fail_if(errors)


def _parallel(session, refs, one, threads: int):
    """``one(api, ref)`` for each ref on up to ``threads`` threads, each with its own connection;
    yields the results in the order of ``refs`` as they come."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    base, local, made = session.api, threading.local(), []

    def run(ref: str):
        api = getattr(local, "api", None)
        if api is None:
            api = local.api = base.clone()
            made.append(api)
        return one(api, ref)

    try:
        with ThreadPoolExecutor(min(threads, len(refs))) as pool:
            yield from pool.map(run, refs)
    finally:
        for api in made:
            api.close()


def _post(suffix: str, params: dict | None = None):
    """``POST /containers/{ref}{suffix}`` for each ref."""
    return lambda api, ref: api.json("POST", f"/containers/{_q(ref)}{suffix}", params)


@click.command("stop", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "--timeout", "timeout", default=None, type=int, help="Seconds to wait before killing the container")
@click.option("-s", "--signal", "sig", default=None, help="Signal to send to the container")
@pass_session
def stop(session, containers, timeout, sig):
    """Stop one or more running containers."""
    _each(session, containers, _post("/stop", {"t": timeout, "signal": sig}), parallel=PARALLEL)


@click.command("restart", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "--timeout", "timeout", default=None, type=int, help="Seconds to wait before killing the container")
@click.option("-s", "--signal", "sig", default=None, help="Signal to send to the container")
@pass_session
def restart(session, containers, timeout, sig):
    """Restart one or more containers."""
    _each(session, containers, _post("/restart", {"t": timeout, "signal": sig}))


@click.command("kill", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send to the container")
@pass_session
def kill(session, containers, sig):
    """Kill one or more running containers."""
    _each(session, containers, _post("/kill", {"signal": sig}), parallel=QUICK)  # the daemon checks the signal


@click.command("wait", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@pass_session
def wait(session, containers):
    """Block until one or more containers stop, then print their exit codes."""
    def act(api, ref: str) -> None:
        out = api.json("POST", f"/containers/{_q(ref)}/wait", {"condition": "not-running"}, timeout=None)
        echo(f"{(out or {}).get('StatusCode', 0)}\n")
    _each(session, containers, act, print_ref=False)


@click.command("rm", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container")
@pass_session
def rm(session, containers, force, volumes):
    """Remove one or more containers."""
    _each(session, containers, lambda api, r: api.json("DELETE", f"/containers/{_q(r)}", {"force": force, "v": volumes}),
          parallel=QUICK)


@click.command("rename", context_settings=CONTEXT)
@click.argument("container")
@click.argument("new_name")
@pass_session
def rename(session, container, new_name):
    """Rename a container."""
    session.api.json("POST", f"/containers/{_q(container)}/rename", {"name": new_name})


@click.command("update", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-m", "--memory", default="", help="Memory limit")
@click.option("--memory-swap", default="", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap")
@click.option("--memory-reservation", default="", help="Memory soft limit")
@click.option("--cpus", default="", help="Number of CPUs")
@click.option("-c", "--cpu-shares", type=int, default=0, help="CPU shares (relative weight)")
@click.option("--cpu-quota", type=int, default=0, help="Limit CPU CFS (Completely Fair Scheduler) quota")
@click.option("--cpu-period", type=int, default=0, help="Limit CPU CFS (Completely Fair Scheduler) period")
@click.option("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)")
@click.option("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)")
@click.option("--pids-limit", type=int, default=None, help="Tune container pids limit (set -1 for unlimited)")
@click.option("--restart", default="", help="Restart policy to apply when a container exits")
@pass_session
def update(session, containers, memory, memory_swap, memory_reservation, cpus, cpu_shares, cpu_quota,
           cpu_period, cpuset_cpus, cpuset_mems, pids_limit, restart):
    """Update configuration of one or more containers."""
    from ..errors import InvalidArgument
    from .runner import create_body, default_params

    flags = {"memory": memory, "memory_swap": memory_swap, "memory_reservation": memory_reservation, "cpus": cpus,
             "cpu_shares": cpu_shares, "cpu_quota": cpu_quota, "cpu_period": cpu_period, "cpuset_cpus": cpuset_cpus,
             "cpuset_mems": cpuset_mems}
    if not any(flags.values()) and pids_limit is None and not restart:
        err = InvalidArgument("you must provide one or more flags when using this command")
        err.client_side = True
        raise err
    # the same parsing and checks as run's flags (sizes, --cpus), then only what was given
    host = create_body(dict(default_params(), **flags, restart=restart or "no", image="", command=()))["HostConfig"]
    body = {k: host[k] for k in ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota",
                                 "CpuPeriod", "CpusetCpus", "CpusetMems") if host.get(k)}
    if pids_limit is not None:
        body["PidsLimit"] = pids_limit
    if restart:
        body["RestartPolicy"] = host["RestartPolicy"]
    _each(session, containers, lambda api, ref: api.json("POST", f"/containers/{_q(ref)}/update", None, body))


@click.command("pause", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@pass_session
def pause(session, containers):
    """Pause all processes within one or more containers."""
    _each(session, containers, _post("/pause"), parallel=QUICK)


@click.command("unpause", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@pass_session
def unpause(session, containers):
    """Unpause all processes within one or more containers."""
    _each(session, containers, _post("/unpause"), parallel=QUICK)


def parse_filters(values) -> dict[str, list[str]]:
    """``-f key=value`` flags as the API's ``filters`` map (the daemon checks the keys)."""
    from ..errors import InvalidArgument

    out: dict[str, list[str]] = {}
    for value in values:
        key, eq, arg = value.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {value}")
        out.setdefault(key.strip().lower(), []).append(arg)
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
def ps(session, all_, quiet, latest, last, filters, fmt, no_trunc, size):
    """List containers."""
    list_containers(session, all_, quiet, latest, last, filters, fmt, no_trunc, size or None)


def api_time(value: str, flag: str = "until") -> str:
    """Docker's time flags (``--since``/``--until``): a Unix time, an RFC 3339 date, or a Go
    duration before now; as the API's ``seconds.nanoseconds``.  A date keeps its exact digits,
    so the daemon compares it with the log's own timestamps without rounding."""
    import re

    from ..errors import InvalidArgument

    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    if re.fullmatch(r"(?:\d+(?:\.\d+)?(?:h|m|s|ms))+", value):
        total = sum(float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
                    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value))
        return f"{time.time() - total:.9f}"
    from datetime import datetime

    s = value.strip()
    if s[-1:] in ("Z", "z"):
        s = s[:-1] + "+00:00"
    frac = ""
    if "." in s:
        head, _, rest = s.partition(".")
        while rest and rest[0].isdigit():
            frac, rest = frac + rest[0], rest[1:]
        s = head + rest
    try:
        seconds = datetime.fromisoformat(s).timestamp()
    except ValueError:
        raise InvalidArgument(f"invalid filter '{flag}={value}'") from None
    return f"{int(seconds)}.{frac[:9].ljust(9, '0')}"


def relay_output(read, tty: bool) -> None:
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for kind, data in frames(read, tty):
        f = err if kind == 2 else out
        f.write(data)
        f.flush()


@click.command("logs", context_settings=CONTEXT)
@click.argument("container")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("-n", "--tail", default="all", help='Number of lines to show from the end of the logs (default "all")')
@click.option("--since", "since_", default=None, help="Show logs since timestamp or relative (e.g. 42m)")
@click.option("--until", default=None, help="Show logs before a timestamp or relative (e.g. 42m)")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("--details", is_flag=True, help="Show extra details provided to logs")
@pass_session
def logs(session, container, follow, tail, since_, until, timestamps, details):
    """Fetch the logs of a container."""
    from ..errors import InvalidArgument

    if tail != "all":
        try:
            int(tail)
        except ValueError:
            raise InvalidArgument(f"invalid value for \"tail\": {tail}") from None
    params = {"stdout": True, "stderr": True, "follow": follow, "tail": tail, "timestamps": timestamps,
              "since": api_time(since_, "since") if since_ else None,
              "until": api_time(until) if until else None, "details": details or None}
    resp = session.api.request("GET", f"/containers/{_q(container)}/logs", params, stream=True, timeout=None)
    try:
        # the daemon says which: raw with a TTY, multiplexed frames without (as dockerd since API 1.42)
        tty = "multiplexed" not in (resp.getheader("Content-Type") or "")
        relay_output(resp.read1, tty)
    finally:
        session.api.finish(resp)


@click.command("prune", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values")
@pass_session
def container_prune(session, force, filters):
    """Remove all stopped containers."""
    from ..units import human_size
    from .output import confirm

    parsed = parse_filters(filters)
    if not confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue?", force):
        return
    out = session.api.json("POST", "/containers/prune", {"filters": parsed or None}, timeout=None) or {}
    removed = out.get("ContainersDeleted") or []
    lines = (["Deleted Containers:"] + removed + [""]) if removed else []
    lines.append("Total reclaimed space: " + human_size(out.get("SpaceReclaimed") or 0))
    echo("\n".join(lines) + "\n")


@click.command("commit", context_settings=CONTEXT)
@click.argument("container")
@click.argument("reference", required=False)
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", help="Commit message")
@click.option("-p", "--pause/--no-pause", default=True, help="Pause container during commit")
@pass_session
def commit(session, container, reference, author, changes, message, pause):
    """Create a new image from a container's changes."""
    repo, tag = reference or "", ""
    if reference and ":" in reference.rsplit("/", 1)[-1] and "@" not in reference:
        repo, tag = reference.rsplit(":", 1)  # a tag (not a registry's port)
    out = session.api.json("POST", "/commit", {
        "container": container, "repo": repo or None, "tag": tag or None, "comment": message or None,
        "author": author or None, "changes": list(changes) or None, "pause": pause}, timeout=None)
    echo(out["Id"] + "\n")


@click.command("diff", context_settings=CONTEXT)
@click.argument("container")
@pass_session
def diff(session, container):
    """Inspect changes to files or directories on a container's filesystem."""
    kinds = {0: "C", 1: "A", 2: "D"}
    changes = session.api.json("GET", f"/containers/{_q(container)}/changes") or []
    echo("".join(f"{kinds.get(c.get('Kind'), 'C')} {c.get('Path')}\n" for c in changes))


def _tar_complete(tail: bytes, total: int) -> bool:
    """A whole tar stream ends with two zero blocks (and is made of 512-byte blocks)."""
    return total >= 1024 and total % 512 == 0 and tail[-1024:] == bytes(1024)


@click.command("export", context_settings=CONTEXT)
@click.argument("container")
@click.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT")
@pass_session
def export(session, container, output):
    """Export a container's filesystem as a tar archive."""
    from ..errors import DockyardError, InvalidArgument

    api = session.api
    resp = api.request("GET", f"/containers/{_q(container)}/export", stream=True, timeout=None)
    tmp = None
    try:
        if output is None:
            if sys.stdout.isatty():
                raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
            sys.stdout.flush()
            dest = sys.stdout.buffer
        else:
            tmp = f"{output}.dockyard-{os.getpid()}.tmp"
            try:
                dest = open(tmp, "wb")
            except OSError as exc:
                tmp = None
                raise OSError(exc.errno, exc.strerror, output) from None  # (the user's name, not ours)
        total, tail = 0, b""
        try:
            while chunk := resp.read1(1 << 20):
                dest.write(chunk)
                total += len(chunk)
                tail = (tail + chunk)[-1024:]
            dest.flush()
        finally:
            if dest is not sys.stdout.buffer:
                dest.close()
        if not _tar_complete(tail, total):
            # the daemon's stream ended early (its export failed after the headers went out)
            raise DockyardError(f"export of container {container} was cut short")
        if tmp is not None:
            os.replace(tmp, output)
            tmp = None
    finally:
        api.finish(resp)
        if tmp is not None and os.path.exists(tmp):
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
def exec_(session, detach, interactive, tty, env, env_file, workdir, user, privileged, container, command):
    """Execute a command in a running container."""
    api = session.api
    if tty and interactive and not detach and not sys.stdin.isatty():
        click.echo("the input device is not a TTY", err=True)  # the docker CLI's CheckTty
        raise click.exceptions.Exit(1)
    body = {"User": user, "Privileged": privileged, "Tty": tty, "AttachStdin": interactive and not detach,
            "AttachStdout": not detach, "AttachStderr": not detach, "Detach": detach,
            "Env": _env_list(env, env_file), "WorkingDir": workdir, "Cmd": list(command)}
    size = terminal_size() if tty else None
    if size:
        body["ConsoleSize"] = list(size)
    eid = api.json("POST", f"/containers/{_q(container)}/exec", None, body)["Id"]
    if detach:
        api.json("POST", f"/exec/{eid}/start", None, {"Detach": True, "Tty": tty})
        return
    sock = api.hijack(f"/exec/{eid}/start", None, {"Detach": False, "Tty": tty})
    if relay(api, sock, stdin=interactive, tty=tty, resize_path=f"/exec/{eid}/resize"):
        return  # detached: the process runs on
    raise click.exceptions.Exit(_exec_exit_code(api, eid))


def _exec_exit_code(api, eid: str) -> int:
    """The exec's exit code (``GET /exec/{id}/json``).  The daemon records it before it closes
    the stream; when the stream ended otherwise (cut short) and the process is still running,
    its ``exec_die`` event says when it is recorded (subscribed to before looking again, so it
    cannot be missed), for up to 10 s."""
    from ..errors import DockyardError
    from .output import messages

    def ended(info: dict) -> bool:
        return info.get("ExitCode") is not None and not info.get("Running")

    info = api.json("GET", f"/exec/{eid}/json")
    if ended(info):
        return int(info["ExitCode"])
    resp = api.request("GET", "/events", {"filters": {"type": ["container"], "event": ["exec_die"]}},
                       stream=True, timeout=10)
    try:
        info = api.json("GET", f"/exec/{eid}/json")
        if not ended(info):
            for ev in messages(api, resp):
                if ((ev.get("Actor") or {}).get("Attributes") or {}).get("execID") == eid:
                    break
            info = api.json("GET", f"/exec/{eid}/json")
    except (OSError, DockyardError):  # (the deadline: a socket timeout; or the daemon went)
        pass
    finally:
        api.finish(resp)
    return int(info.get("ExitCode") or 0)


@click.command("attach", context_settings=CONTEXT)
@click.argument("container")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy all received signals to the process")
@pass_session
def attach(session, container, no_stdin, sig_proxy):
    """Attach local standard input, output, and error streams to a running container."""
    from . import runner

    code = runner.attach_api(session, container, stdin=not no_stdin, tty=None, start=False, sig_proxy=sig_proxy)
    raise click.exceptions.Exit(0 if code is None else code)


@click.command("top", context_settings=RUN_CONTEXT)  # ps options after the container are ps's
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@pass_session
def top(session, container, ps_args):
    """Display the running processes of a container."""
    from ..template import tabwriter

    out = session.api.json("GET", f"/containers/{_q(container)}/top",
                           {"ps_args": " ".join(ps_args) if ps_args else None})
    rows = [out.get("Titles") or []] + list(out.get("Processes") or [])
    echo(tabwriter("".join("\t".join(r) + "\n" for r in rows), minwidth=20))


STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
STATS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


def stats_row(cid: str, name: str, doc: dict, no_trunc: bool) -> dict:
    """One ``GET /containers/{id}/stats`` document as stats's columns (docker's arithmetic)."""
    from ..units import bytes_size, human_size

    cpu, pre = doc.get("cpu_stats") or {}, doc.get("precpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage") or 0
    pre_total = (pre.get("cpu_usage") or {}).get("total_usage") or 0
    system, pre_system = cpu.get("system_cpu_usage") or 0, pre.get("system_cpu_usage") or 0
    percent = 0.0
    if pre_system and system > pre_system and total >= pre_total:
        percent = (total - pre_total) / (system - pre_system) * (cpu.get("online_cpus") or 1) * 100.0
    mem = doc.get("memory_stats") or {}
    extra = mem.get("stats") or {}
    usage = (mem.get("usage") or 0) - (extra.get("total_inactive_file", extra.get("inactive_file", 0)) or 0)
    usage = max(0, usage)
    limit = mem.get("limit") or 0
    rx = sum((n or {}).get("rx_bytes", 0) for n in (doc.get("networks") or {}).values())
    tx = sum((n or {}).get("tx_bytes", 0) for n in (doc.get("networks") or {}).values())
    read = write = 0
    for e in ((doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []):
        op = str(e.get("op", "")).lower()
        if op == "read":
            read += e.get("value", 0)
        elif op == "write":
            write += e.get("value", 0)
    return {
        "ID": cid if no_trunc else cid[:12], "Container": cid[:12], "Name": name,
        "CPUPerc": f"{percent:.2f}%",
        "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
        "MemPerc": f"{(usage / limit * 100) if limit else 0:.2f}%",
        "NetIO": f"{human_size(rx)} / {human_size(tx)}",
        "BlockIO": f"{human_size(read)} / {human_size(write)}",
        "PIDs": str((doc.get("pids_stats") or {}).get("current", 0)),
    }


@click.command("stats", context_settings=CONTEXT)
@click.argument("containers", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output")
@click.option("--format", "fmt", help="Format output using a custom template")
@pass_session
def stats(session, containers, all_, no_stream, no_trunc, fmt):
    """Display a live stream of container(s) resource usage statistics."""
    import threading

    from ..errors import DockyardError

    api = session.api
    if containers:
        targets = []
        for ref in containers:
            info = api.json("GET", f"/containers/{_q(ref)}/json")
            targets.append((info["Id"], info.get("Name", "").lstrip("/")))
    else:
        targets = [(c["Id"], (c.get("Names") or [""])[0].lstrip("/"))
                   for c in api.json("GET", "/containers/json", {"all": all_}) or []]
    latest: dict[str, dict] = {}
    failed: dict[str, Exception] = {}

    def collect(cid: str) -> None:
        side = side_transport(session.api)
        try:
            if no_stream:
                latest[cid] = side.json("GET", f"/containers/{cid}/stats", {"stream": False}, timeout=None)
                return
            resp = side.request("GET", f"/containers/{cid}/stats", {"stream": True}, stream=True, timeout=None)
            try:
                while line := resp.readline():
                    if line.strip():
                        latest[cid] = json.loads(line)
            finally:
                side.finish(resp)
        except (DockyardError, OSError, ValueError) as exc:
            failed[cid] = exc
        finally:
            side.close()

    threads = [threading.Thread(target=collect, args=(cid,), daemon=True) for cid, _ in targets]
    for t in threads:
        t.start()
    if no_stream:
        for t in threads:
            t.join()
        for cid, _ in targets:
            if cid in failed and cid not in latest:
                raise failed[cid]  # (removed meanwhile, say)
    while True:
        if not no_stream:
            time.sleep(1.0)
        rows = [stats_row(cid, name, latest.get(cid) or {}, no_trunc) for cid, name in targets]
        if not no_stream:
            echo("\x1b[2J\x1b[H")
        print_rows(rows, fmt, STATS_TABLE, STATS_HEADERS)
        if no_stream:
            return


# -- docker cp --------------------------------------------------------------------------------------

def _split_cp(arg: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` or a local path (absolute, or starting with ".", is always local)."""
    if ":" in arg and not arg.startswith(("/", ".")):
        name, _, path = arg.partition(":")
        return name, path
    return None, arg


def _path_stat(resp) -> dict:
    import base64

    raw = resp.getheader("X-Docker-Container-Path-Stat") or ""
    try:
        return json.loads(base64.b64decode(raw)) if raw else {}
    except ValueError:
        return {}


GO_DIR, GO_SYMLINK = 1 << 31, 1 << 27


def _split_dir_entry(path: str) -> tuple[str, str]:
    """docker's SplitPathDirEntry: "/a/b/" -> ("/a", "b"); "/a/b/." -> ("/a/b", ".")."""
    import posixpath

    cleaned = posixpath.normpath(path or ".")
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if posixpath.basename(path) == "." and cleaned != ".":
        cleaned = cleaned.rstrip("/") + "/."
    return posixpath.dirname(cleaned) or ".", posixpath.basename(cleaned) or "/"


@click.command("cp", context_settings=CONTEXT)
@click.argument("src")
@click.argument("dest")
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information)")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output during copy")
@pass_session
def cp(session, src, dest, archive, follow_link, quiet):
    """Copy files/folders between a container and the local filesystem.

    docker cp's semantics: a directory lands inside an existing directory (its contents only
    for ``SRC/.``) or becomes a new one; a file replaces a file or lands inside a directory."""
    from ..errors import InvalidArgument

    (sc, sp), (dc, dp) = _split_cp(src), _split_cp(dest)
    if (sc is None) == (dc is None):
        raise InvalidArgument("must specify at least one container source" if sc is None else
                              "copying between containers is not supported")
    if sc is not None:
        size = _copy_from(session, sc, sp, dp, follow_link)
    else:
        size = _copy_to(session, sp, dc, dp, archive, follow_link)
    if not quiet and size is not None and sys.stderr.isatty():
        from ..units import human_size

        sys.stderr.write(f"Successfully copied {human_size(size)} to {dest}\n")


def _copy_from(session, ref: str, path: str, dest: str, follow_link: bool) -> int | None:
    from ..errors import InvalidArgument

    api = session.api
    if not path:
        raise InvalidArgument("path is required")
    resp = api.request("GET", f"/containers/{_q(ref)}/archive", {"path": path}, stream=True, timeout=None)
    stat = _path_stat(resp)
    rebase = None
    if follow_link and int(stat.get("mode", 0)) & GO_SYMLINK:
        target = stat.get("linkTarget") or ""
        if not target.startswith("/"):
            target = os.path.join(_split_dir_entry(path)[0], target)
        rebase = _split_dir_entry(path)[1]
        api.finish(resp)
        resp = api.request("GET", f"/containers/{_q(ref)}/archive", {"path": target}, stream=True, timeout=None)
        stat = _path_stat(resp)
    try:
        if dest == "-":
            total = 0
            out = sys.stdout.buffer
            while chunk := resp.read1(1 << 20):
                out.write(chunk)
                total += len(chunk)
            out.flush()
            return None
        return _extract_copy(resp, stat, rebase, dest)
    finally:
        api.finish(resp)


class _Counting:
    """A reader that counts what passes (for "Successfully copied …")."""

    def __init__(self, read) -> None:
        self._read = read
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        data = self._read(65536 if n is None or n < 0 else n)
        self.total += len(data)
        return data


def _extract_copy(resp, stat: dict, rebase: str | None, dest: str) -> int:
    """docker's CopyTo on the host side: where the archive goes, what its top entry is called
    there, and nothing written outside that place (no "..", no path through a link)."""
    import tarfile

    from ..errors import InvalidArgument

    src_is_dir = bool(int(stat.get("mode", 0)) & GO_DIR)
    tar_base = stat.get("name") or "."  # the daemon names the entries after the path's last part
    tar_base = tar_base.strip("/") or "."
    if os.path.islink(dest):  # the destination's own link is followed, as docker does
        target = os.readlink(dest)
        dest = target if os.path.isabs(target) else os.path.join(os.path.dirname(dest) or ".", target)
    exists = os.path.lexists(dest)
    dst_dir, dst_base = _split_dir_entry(dest)
    if exists and os.path.isdir(dest):
        extract_to, new_base = dest, rebase or tar_base
    elif exists and src_is_dir:
        raise client_error("cannot copy directory")
    elif not exists and not src_is_dir and dest.endswith(("/", "/.")):
        raise client_error("no such directory")
    else:
        extract_to, new_base = dst_dir, dst_base
    if not os.path.isdir(extract_to):
        raise InvalidArgument(f"destination directory {extract_to!r} must exist")
    root = os.path.realpath(extract_to)
    counter = _Counting(resp.read1)

    def parts_of(name: str) -> list[str]:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        base = [p for p in tar_base.split("/") if p not in ("", ".")]
        if new_base != tar_base and parts[:len(base)] == base:
            parts = [p for p in new_base.split("/") if p not in ("", ".")] + parts[len(base):]
        return parts

    dirs = []
    with tarfile.open(fileobj=counter, mode="r|") as tf:
        for member in tf:
            parts = parts_of(member.name)
            if not parts:
                if member.isdir():
                    continue  # the contents of a directory into an existing one ("SRC/.")
                raise InvalidArgument(f"refusing to extract {member.name!r}: it has no name")
            if member.name.startswith("/") or ".." in parts:
                raise InvalidArgument(f"refusing to extract {member.name!r}: outside the destination")
            target = os.path.join(root, *parts)
            if os.path.commonpath([os.path.realpath(os.path.dirname(target)), root]) != root:
                raise InvalidArgument(f"refusing to extract {member.name!r}: through a link out of the destination")
            if member.islnk():
                link = parts_of(member.linkname)
                if not link or ".." in link:
                    raise InvalidArgument(f"refusing to extract {member.name!r}: a hard link out of the destination")
                member.linkname = "/".join(link)
            if os.path.lexists(target):
                real_dir = os.path.isdir(target) and not os.path.islink(target)
                if real_dir and not member.isdir():
                    raise InvalidArgument(f"cannot overwrite directory {target!r} with a non-directory")
                if not real_dir:
                    os.unlink(target)
            member.name = "/".join(parts)
            if member.isdir():
                dirs.append(member)  # owner, mode and times once its contents are in
                os.makedirs(target, exist_ok=True)
                continue
            tf.extract(member, root, set_attrs=True, numeric_owner=True, filter="fully_trusted")
        for member in reversed(dirs):
            path = os.path.join(root, member.name)
            tf.chown(member, path, True)
            tf.chmod(member, path)
            tf.utime(member, path)
    return counter.total


def _copy_to(session, src: str, ref: str, path: str, archive: bool, follow_link: bool) -> int:
    from ..errors import DockyardError, InvalidArgument, NotFound

    api = session.api
    api.json("GET", f"/containers/{_q(ref)}/json")  # a missing container: its own error (HEAD has no body)
    if not path:
        raise InvalidArgument("path is required")
    url = f"/containers/{_q(ref)}/archive"

    def stat_of(p: str) -> dict | None:
        try:
            resp = api.request("HEAD", url, {"path": p}, stream=True)
        except NotFound:
            return None
        try:
            return _path_stat(resp)
        finally:
            api.finish(resp)

    dst_path = path
    dst = stat_of(dst_path)
    if dst is not None and int(dst.get("mode", 0)) & GO_SYMLINK:
        target = dst.get("linkTarget") or ""
        if not target.startswith("/"):
            target = os.path.join(_split_dir_entry(path)[0], target)
        dst_path = target
        dst = stat_of(dst_path)
    dst_exists = dst is not None
    dst_is_dir = dst_exists and bool(int(dst.get("mode", 0)) & GO_DIR)
    params = {"path": None, "noOverwriteDirNonDir": True, "copyUIDGID": archive}
    if src == "-":
        if not dst_is_dir:
            raise InvalidArgument(f"extraction point is not a directory: {path}")
        params["path"] = dst_path
        counter = _Counting(sys.stdin.buffer.read1 if hasattr(sys.stdin.buffer, "read1") else sys.stdin.buffer.read)
        api.json("PUT", url, params, counter,
                 headers={"Content-Type": "application/x-tar"}, timeout=None)
        return counter.total
    if not os.path.lexists(src):
        raise InvalidArgument(f"could not find the file {src} on the host")
    src_path, src_base = src, _split_dir_entry(src)[1]
    if follow_link and os.path.islink(src):
        src_path = os.path.realpath(src)
    if src.endswith("/."):
        src_base = "."
    src_is_dir = os.path.isdir(src_path)
    if dst_exists and dst_is_dir:
        extract_to, arcname = dst_path, src_base
    elif dst_exists and src_is_dir:
        raise client_error("cannot copy directory")
    elif not dst_exists and not src_is_dir and path.endswith(("/", "/.")):
        raise client_error("no such directory")
    else:
        extract_to, arcname = _split_dir_entry(dst_path)
        parent = stat_of(extract_to)
        if parent is None or not int(parent.get("mode", 0)) & GO_DIR:
            raise InvalidArgument(f"destination directory {extract_to} must exist")
    body = _TarPipe(src_path, arcname, keep_owners=archive)
    try:
        api.json("PUT", url, dict(params, path=extract_to), body,
                 headers={"Content-Type": "application/x-tar"}, timeout=None)
    except DockyardError:
        if body.error is not None:
            raise body.error from None
        raise
    finally:
        body.close()
    if body.error is not None:
        raise body.error
    return body.total


class _TarPipe:
    """A tar of a host path, made by a thread as the upload reads it: nothing staged on disk.
    Should reading the tree fail, the upload fails too (no end chunk) and that error is raised.
    Members are root's unless ``keep_owners`` (``cp -a``), as dockyard's cp has always done."""

    def __init__(self, path: str, arcname: str, keep_owners: bool = False) -> None:
        import threading

        self.error: Exception | None = None
        self.total = 0
        r, w = os.pipe()
        self._r = os.fdopen(r, "rb")

        def produce() -> None:
            import tarfile

            def owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
                if not keep_owners:
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                return info

            try:
                with os.fdopen(w, "wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tf:
                    tf.add(path, arcname=arcname, filter=owner)
            except BrokenPipeError:
                pass
            except Exception as exc:  # (raised again by the command)
                self.error = exc

        self._thread = threading.Thread(target=produce, daemon=True)
        self._thread.start()

    def read(self, n: int = -1) -> bytes:
        data = self._r.read1(n if n and n > 0 else 1 << 20)
        if not data:
            self._thread.join()
            if self.error is not None:
                raise OSError("the archive of the source could not be made")  # aborts the upload
        self.total += len(data)
        return data

    def close(self) -> None:
        self._r.close()
        self._thread.join(timeout=5)


@click.command("inspect", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format output using a custom template")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@pass_session
def container_inspect(session, containers, fmt, size):
    """Display detailed information on one or more containers."""
    from .images import _inspect

    _inspect(session, containers, fmt, ("container",), size)


@click.group("container", context_settings=CONTEXT)
def container_group() -> None:
    """Manage containers."""


for _name, _cmd in (("run", run), ("create", create), ("start", start), ("stop", stop), ("restart", restart),
                    ("kill", kill), ("wait", wait), ("rm", rm), ("remove", rm), ("rename", rename), ("update", update),
                    ("pause", pause), ("unpause", unpause), ("ls", ps), ("list", ps), ("ps", ps),
                    ("logs", logs), ("prune", container_prune), ("commit", commit), ("diff", diff),
                    ("export", export), ("exec", exec_), ("attach", attach), ("top", top), ("stats", stats),
                    ("cp", cp), ("inspect", container_inspect)):
    container_group.add_command(_cmd, _name)
