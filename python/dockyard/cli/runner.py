"""``dockyard run`` without click: its flags, the flow from create to exit, and a fast path.

``run`` is on every user's hot path and its start-up is benchmarked against runc, so this module
imports nothing heavy.  The flag table ``RUN_FLAGS`` is the one definition of run/create's flags:
:mod:`dockyard.cli.containers` turns it into click options (help, errors, every other command),
and :func:`fast_run` parses it directly, Docker style, falling back to click for anything unusual
(``--help``, a malformed flag) so messages stay click's.
"""

from __future__ import annotations

import json
import os
import sys
import time

# (long, short, kind, default, help); dest is the long name with dashes as underscores.
# kind: bool | str | int | multi (repeatable) | optstr (str whose absence is None)
RUN_FLAGS: list[tuple[str, str, str, object, str]] = [
    ("detach", "d", "bool", False, "Run container in background and print container ID"),
    ("interactive", "i", "bool", False, "Keep STDIN open even if not attached"),
    ("tty", "t", "bool", False, "Allocate a pseudo-TTY"),
    ("rm", "", "bool", False, "Automatically remove the container when it exits"),
    ("name", "", "str", "", "Assign a name to the container"),
    ("env", "e", "multi", (), "Set environment variables"),
    ("env-file", "", "multi", (), "Read in a file of environment variables"),
    ("workdir", "w", "str", "", "Working directory inside the container"),
    ("user", "u", "str", "", "Username or UID (format: <name|uid>[:<group|gid>])"),
    ("hostname", "h", "str", "", "Container host name"),
    ("entrypoint", "", "optstr", None, "Overwrite the default ENTRYPOINT of the image"),
    ("label", "l", "multi", (), "Set meta data on a container"),
    ("memory", "m", "str", "", "Memory limit"),
    ("memory-swap", "", "str", "", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
    ("memory-reservation", "", "str", "", "Memory soft limit"),
    ("cpus", "", "str", "", "Number of CPUs"),
    ("cpu-shares", "c", "int", 0, "CPU shares (relative weight)"),
    ("cpu-quota", "", "int", 0, "Limit CPU CFS (Completely Fair Scheduler) quota"),
    ("cpu-period", "", "int", 0, "Limit CPU CFS (Completely Fair Scheduler) period"),
    ("cpuset-cpus", "", "str", "", "CPUs in which to allow execution (0-3, 0,1)"),
    ("cpuset-mems", "", "str", "", "MEMs in which to allow execution (0-3, 0,1)"),
    ("pids-limit", "", "int", 0, "Tune container pids limit (set -1 for unlimited)"),
    ("ulimit", "", "multi", (), "Ulimit options"),
    ("init", "", "bool", False, "Run an init inside the container that forwards signals and reaps processes"),
    ("read-only", "", "bool", False, "Mount the container's root filesystem as read only"),
    ("cap-add", "", "multi", (), "Add Linux capabilities"),
    ("cap-drop", "", "multi", (), "Drop Linux capabilities"),
    ("privileged", "", "bool", False, "Give extended privileges to this container"),
    ("security-opt", "", "multi", (), "Security Options"),
    ("restart", "", "str", "no", "Restart policy to apply when a container exits"),
    ("stop-signal", "", "str", "", "Signal to stop the container"),
    ("stop-timeout", "", "optint", None, "Timeout (in seconds) to stop a container"),
    ("network", "", "str", "default", "Connect a container to a network"),
    # volumes and networks (engine/volumes.py, engine/network/)
    ("volume", "v", "multi", (), "Bind mount a volume"),
    ("mount", "", "multi", (), "Attach a filesystem mount to the container"),
    ("tmpfs", "", "multi", (), "Mount a tmpfs directory"),
    ("volumes-from", "", "multi", (), "Mount volumes from the specified container(s)"),
    ("publish", "p", "multi", (), "Publish a container's port(s) to the host"),
    ("publish-all", "P", "bool", False, "Publish all exposed ports to random ports"),
    ("expose", "", "multi", (), "Expose a port or a range of ports"),
    ("network-alias", "", "multi", (), "Add network-scoped alias for the container"),
    ("link", "", "multi", (), "Add link to another container"),
    ("dns", "", "multi", (), "Set custom DNS servers"),
    ("dns-search", "", "multi", (), "Set custom DNS search domains"),
    ("dns-option", "", "multi", (), "Set DNS options"),
    ("add-host", "", "multi", (), "Add a custom host-to-IP mapping (host:ip)"),
    ("ip", "", "str", "", "IPv4 address (e.g., 172.30.100.104)"),
]
ALIASES = {"net": "network"}


def dest(long: str) -> str:
    return "auto_remove" if long == "rm" else long.replace("-", "_")


def parse_run_args(argv: list[str]) -> dict | None:
    """Docker-style parsing of ``run``'s arguments: flags until the image, then the command.
    Returns None when anything is unusual, so the caller can let click report it."""
    by_long = {f[0]: f for f in RUN_FLAGS}
    by_short = {f[1]: f for f in RUN_FLAGS if f[1]}
    params: dict = {dest(f[0]): (list(f[3]) if f[2] == "multi" else f[3]) for f in RUN_FLAGS}
    i = 0

    def store(flag: tuple, value: str | None) -> bool:
        kind, key = flag[2], dest(flag[0])
        if kind == "bool":
            if value is None or value in ("true", "1"):
                params[key] = True
            elif value in ("false", "0"):
                params[key] = False
            else:
                return False
        elif value is None:
            return False
        elif kind == "multi":
            params[key].append(value)
        elif kind in ("int", "optint"):
            try:
                params[key] = int(value)
            except ValueError:
                return False
        else:
            params[key] = value
        return True

    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            flag = by_long.get(ALIASES.get(name, name))
            if flag is None or name == "help":
                return None
            if not eq and flag[2] != "bool":
                i += 1
                if i >= len(argv):
                    return None
                value = argv[i]
            if not store(flag, value if (eq or flag[2] != "bool") else None):
                return None
        else:
            j = 1
            while j < len(arg):
                flag = by_short.get(arg[j])
                if flag is None:
                    return None
                if flag[2] == "bool":
                    store(flag, None)
                    j += 1
                    continue
                value = arg[j + 1:]
                if not value:
                    i += 1
                    if i >= len(argv):
                        return None
                    value = argv[i]
                if not store(flag, value.removeprefix("=")):
                    return None
                break
        i += 1
    if i >= len(argv):
        return None
    params["image"] = argv[i]
    params["command"] = tuple(argv[i + 1:])
    for key, value in list(params.items()):
        if isinstance(value, list):
            params[key] = tuple(value)
    return params


def fast_run(session, argv: list[str]) -> int | None:  # noqa: ANN001
    """``dockyard run`` without click; None means "let click handle these arguments"."""
    params = parse_run_args(argv)
    if params is None:
        return None
    return run_container(session, params)


def run_container(session, params: dict) -> int:  # noqa: ANN001
    """Create, start, and unless detached follow the container to its exit; returns the exit code."""
    from ..errors import DockyardError

    cid = create_container(session, params)
    engine = session.engine
    try:
        engine.containers.start(cid, attach=not params["detach"])
    except DockyardError:
        if params["auto_remove"]:
            engine.containers.remove(cid, force=True)
        raise
    if params["detach"]:
        sys.stdout.write(cid + "\n")
        sys.stdout.flush()
        return 0
    # The supervisor starts the process when we connect: every byte reaches us, then the exit.
    code = relay(engine, cid, stdin=params["interactive"], tty=params["tty"])
    if code is None:  # detached with ctrl-p ctrl-q: the container keeps running
        return 0
    if params["auto_remove"]:
        engine.containers.remove(cid, force=True)
    return code


def _kv_list(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        k, _, val = v.partition("=")
        out[k] = val
    return out


def _env_list(values: tuple[str, ...], files: tuple[str, ...]) -> list[str]:
    """-e K=V, -e K (take it from our environment, skip when unset), --env-file F."""
    from ..errors import InvalidArgument

    out = []
    for path in files:
        try:
            lines = open(path, encoding="utf-8").read().splitlines()
        except OSError as exc:
            raise InvalidArgument(f"open {path}: {exc.strerror.lower()}") from None
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line if "=" in line else (f"{line}={os.environ[line]}" if line in os.environ else ""))
    for v in values:
        if "=" in v:
            out.append(v)
        elif v in os.environ:
            out.append(f"{v}={os.environ[v]}")
    return [e for e in out if e]


def build_options(p: dict):  # noqa: ANN201
    """Click's parsed values -> the engine's CreateOptions, with Docker's validation."""
    from ..engine.containers import CreateOptions
    from ..engine.spec import Resources, parse_ulimit
    from ..errors import InvalidArgument
    from ..units import parse_size

    res = Resources()
    if p["memory"]:
        res.memory = parse_size(p["memory"])
        if res.memory < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if p["memory_swap"]:
        res.memory_swap = -1 if p["memory_swap"] == "-1" else parse_size(p["memory_swap"])
        if res.memory_swap > 0 and res.memory and res.memory_swap < res.memory:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if p["memory_reservation"]:
        res.memory_reservation = parse_size(p["memory_reservation"])
    if p["cpus"]:
        try:
            cpus = float(p["cpus"])
        except ValueError:
            raise InvalidArgument(f'invalid argument "{p["cpus"]}" for "--cpus" flag: failed to parse {p["cpus"]} as a rational number') from None
        if cpus < 0:
            raise InvalidArgument(f'invalid argument "{p["cpus"]}" for "--cpus" flag: range of CPUs is from 0.01 to {os.cpu_count()}.00, as there are only {os.cpu_count()} CPUs available')
        if cpus > (os.cpu_count() or 1):
            raise InvalidArgument(f"range of CPUs is from 0.01 to {os.cpu_count()}.00, as there are only {os.cpu_count()} CPUs available")
        res.nano_cpus = int(cpus * 1e9)
    res.cpu_shares, res.cpu_quota, res.cpu_period = p["cpu_shares"], p["cpu_quota"], p["cpu_period"]
    res.cpuset_cpus, res.cpuset_mems = p["cpuset_cpus"], p["cpuset_mems"]
    res.pids_limit = p["pids_limit"] if p["pids_limit"] > 0 else 0
    res.ulimits = [parse_ulimit(u) for u in p["ulimit"]]
    entrypoint = None
    if p["entrypoint"] is not None:
        entrypoint = [p["entrypoint"]] if p["entrypoint"] else []
    return CreateOptions(
        image=p["image"], cmd=list(p["command"]) or None, entrypoint=entrypoint,
        env=_env_list(p["env"], p["env_file"]), workdir=p["workdir"], user=p["user"],
        hostname=p["hostname"], tty=p["tty"], open_stdin=p["interactive"], labels=_kv_list(p["label"]),
        name=p["name"], resources=res, cap_add=list(p["cap_add"]), cap_drop=list(p["cap_drop"]),
        privileged=p["privileged"], read_only=p["read_only"], security_opt=list(p["security_opt"]),
        init=p["init"], restart=p["restart"], auto_remove=p["auto_remove"], stop_signal=p["stop_signal"],
        stop_timeout=p["stop_timeout"], network=p["network"],
        volumes=list(p["volume"]), mounts=list(p["mount"]), tmpfs=list(p["tmpfs"]),
        volumes_from=list(p["volumes_from"]), publish=list(p["publish"]), publish_all=p["publish_all"],
        expose=list(p["expose"]), network_aliases=list(p["network_alias"]), links=list(p["link"]),
        dns=list(p["dns"]), dns_search=list(p["dns_search"]), dns_option=list(p["dns_option"]),
        add_host=list(p["add_host"]), ip=p["ip"],
    )


def create_container(session, params: dict) -> str:  # noqa: ANN001
    from ..errors import ImageNotFound

    opts = build_options(params)
    engine = session.engine
    if opts.image in ("hello-world", "hello-world:latest"):
        from ..engine import hello

        hello.ensure(engine)
    try:
        return engine.containers.create(opts)
    except ImageNotFound:
        from ..reference import parse

        sys.stderr.write(f"Unable to find image '{parse(opts.image).with_default_tag().familiar()}' locally\n")
        raise


def relay(engine, cid: str, stdin: bool, tty: bool) -> int | None:  # noqa: ANN001
    """Attach to the container's supervisor: stdin (and window size) in, output out, until it
    exits (returns its exit code) or the user detaches with ctrl-p ctrl-q (returns None).

    Frames are Docker's stdcopy header ``[type,0,0,0,len32]``: 0 stdin, 1 stdout, 2 stderr,
    3 exit (payload: the exit file's JSON), 4 resize (rows, cols), 5 close stdin."""
    import socket
    import struct
    import threading

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = str(engine.containers.attach_socket(cid))
    for _ in range(400):
        try:
            sock.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.005)
    else:
        sock.connect(path)  # raises the real error
    lock = threading.Lock()

    def send(kind: int, data: bytes = b"") -> None:
        with lock:
            try:
                sock.sendall(struct.pack(">BxxxI", kind, len(data)) + data)
            except OSError:
                pass

    saved = None
    interactive_tty = tty and sys.stdin.isatty()
    detached = threading.Event()
    if interactive_tty:
        import signal
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(0)
        ttymod.setraw(0)

        def resize(*_: object) -> None:
            size = os.get_terminal_size(0)
            send(4, struct.pack(">HH", size.lines, size.columns))

        resize()
        signal.signal(signal.SIGWINCH, resize)
    if stdin:
        def pump() -> None:
            last = b""
            while True:
                try:
                    data = os.read(0, 65536)
                except OSError:
                    data = b""
                if not data:
                    send(5)
                    return
                if interactive_tty:
                    last = (last + data)[-2:]
                    if last == b"\x10\x11":  # ctrl-p ctrl-q
                        detached.set()
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        return
                send(0, data)

        threading.Thread(target=pump, daemon=True).start()
    if not tty:
        import signal

        def proxy(signum, frame):  # noqa: ANN001
            engine.containers.runtime.kill(cid, signum)  # docker's --sig-proxy

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, proxy)
    code = None
    try:
        f = sock.makefile("rb")
        out, err = sys.stdout.buffer, sys.stderr.buffer
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            kind, size = head[0], struct.unpack(">I", head[4:])[0]
            payload = f.read(size)
            if kind == 1:
                out.write(payload)
                out.flush()
            elif kind == 2:
                err.write(payload)
                err.flush()
            elif kind == 3:
                try:
                    code = int(json.loads(payload).get("exit_code", 0))
                except ValueError:
                    code = 0
                break
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        sock.close()
    if detached.is_set():
        return None
    state = engine.containers.wait(cid, timeout=10)
    return state["ExitCode"] if code is None else code
