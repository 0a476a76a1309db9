"""``dockyard run`` without click: its flags, the flow from create to exit, and a fast path.

``run`` is on every user's hot path and its start-up is benchmarked against runc, so this module
imports nothing heavy.  The flag table ``RUN_FLAGS`` is the one definition of run/create's flags:
:mod:`dockyard.cli.containers` turns it into click options (help, errors, every other command),
and :func:`fast_run` parses it directly, Docker style, falling back to click for anything unusual
(``--help``, a malformed flag) so messages stay click's.

The flow is the docker CLI's, over the Engine API: the flags become a ContainerCreate body
(:func:`create_body`), then create, attach (hijacked), wait, start, and :func:`relay` until the
stream ends; :func:`relay` also serves ``start -a``, ``attach`` and ``exec``.
"""

from __future__ import annotations

import os
import sys

# (long, short, kind, default, help); dest is the long name with dashes as underscores.
# kind: bool | str | int | multi (repeatable) | optstr (str whose absence is None)
RUN_FLAGS: list[tuple[str, str, str, object, str]] = [
    ("detach", "d", "bool", False, "Run container in background and print container ID"),
    ("attach", "a", "multi", (), "Attach to STDIN, STDOUT or STDERR"),
    ("sig-proxy", "", "bool", True, "Proxy received signals to the process"),
    ("interactive", "i", "bool", False, "Keep STDIN open even if not attached"),
    ("tty", "t", "bool", False, "Allocate a pseudo-TTY"),
    ("rm", "", "bool", False, "Automatically remove the container when it exits"),
    ("name", "", "str", "", "Assign a name to the container"),
    ("env", "e", "multi", (), "Set environment variables"),
    ("env-file", "", "multi", (), "Read in a file of environment variables"),
    ("workdir", "w", "str", "", "Working directory inside the container"),
    ("user", "u", "str", "", "Username or UID (format: <name|uid>[:<group|gid>])"),
    ("hostname", "h", "str", "", "Container host name"),
    ("domainname", "", "str", "", "Container NIS domain name"),
    ("entrypoint", "", "optstr", None, "Overwrite the default ENTRYPOINT of the image"),
    ("label", "l", "multi", (), "Set meta data on a container"),
    ("label-file", "", "multi", (), "Read in a line delimited file of labels"),
    ("annotation", "", "multi", (), "Add an annotation to the container (passed through to the OCI runtime)"),
    ("cidfile", "", "str", "", "Write the container ID to the file"),
    ("group-add", "", "multi", (), "Add additional groups to join"),
    ("device-cgroup-rule", "", "multi", (), "Add a rule to the cgroup allowed devices list"),
    ("runtime", "", "str", "", "Runtime to use for this container"),
    ("isolation", "", "str", "", "Container isolation technology"),
    ("volume-driver", "", "str", "", "Optional volume driver for the container"),
    ("platform", "", "str", "", "Set platform if server is multi-platform capable"),
    ("disable-content-trust", "", "bool", True, "Skip image verification (default true)"),
    ("memory", "m", "str", "", "Memory limit"),
    ("memory-swap", "", "str", "", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
    ("memory-reservation", "", "str", "", "Memory soft limit"),
    ("cpus", "", "str", "", "Number of CPUs"),
    ("cpu-shares", "c", "int", 0, "CPU shares (relative weight)"),
    ("cpu-quota", "", "int", 0, "Limit CPU CFS (Completely Fair Scheduler) quota"),
    ("cpu-period", "", "int", 0, "Limit CPU CFS (Completely Fair Scheduler) period"),
    ("cpu-rt-period", "", "int", 0, "Limit CPU real-time period in microseconds"),
    ("cpu-rt-runtime", "", "int", 0, "Limit CPU real-time runtime in microseconds"),
    ("kernel-memory", "", "str", "", "Kernel memory limit (deprecated)"),
    ("cpuset-cpus", "", "str", "", "CPUs in which to allow execution (0-3, 0,1)"),
    ("cpuset-mems", "", "str", "", "MEMs in which to allow execution (0-3, 0,1)"),
    ("pids-limit", "", "int", 0, "Tune container pids limit (set -1 for unlimited)"),
    ("ulimit", "", "multi", (), "Ulimit options"),
    ("shm-size", "", "str", "", "Size of /dev/shm"),
    ("oom-score-adj", "", "int", 0, "Tune host's OOM preferences (-1000 to 1000)"),
    ("memory-swappiness", "", "int", -1, "Tune container memory swappiness (0 to 100)"),
    ("oom-kill-disable", "", "bool", False, "Disable OOM Killer"),
    ("blkio-weight", "", "str", "", "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)"),
    ("blkio-weight-device", "", "multi", (), "Block IO weight (relative device weight)"),
    ("device-read-bps", "", "multi", (), "Limit read rate (bytes per second) from a device"),
    ("device-write-bps", "", "multi", (), "Limit write rate (bytes per second) to a device"),
    ("device-read-iops", "", "multi", (), "Limit read rate (IO per second) from a device"),
    ("device-write-iops", "", "multi", (), "Limit write rate (IO per second) to a device"),
    ("device", "", "multi", (), "Add a host device to the container"),
    ("sysctl", "", "multi", (), "Sysctl options"),
    ("init", "", "bool", False, "Run an init inside the container that forwards signals and reaps processes"),
    ("read-only", "", "bool", False, "Mount the container's root filesystem as read only"),
    ("cap-add", "", "multi", (), "Add Linux capabilities"),
    ("cap-drop", "", "multi", (), "Drop Linux capabilities"),
    ("privileged", "", "bool", False, "Give extended privileges to this container"),
    ("security-opt", "", "multi", (), "Security Options"),
    ("userns", "", "str", "", "User namespace to use"),
    ("pid", "", "str", "", "PID namespace to use"),
    ("ipc", "", "str", "", "IPC mode to use"),
    ("cgroupns", "", "str", "", "Cgroup namespace to use (host|private)"),
    ("cgroup-parent", "", "str", "", "Optional parent cgroup for the container"),
    ("uts", "", "str", "", "UTS namespace to use"),
    ("restart", "", "str", "no", "Restart policy to apply when a container exits"),
    ("stop-signal", "", "str", "", "Signal to stop the container"),
    ("log-driver", "", "str", "", "Logging driver for the container"),
    ("log-opt", "", "multi", (), "Log driver options"),
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
    ("ip6", "", "str", "", "IPv6 address (e.g., 2001:db8::33)"),
    ("link-local-ip", "", "multi", (), "Container IPv4/IPv6 link-local addresses"),
    ("mac-address", "", "str", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    ("health-cmd", "", "str", "", "Command to run to check health"),
    ("health-interval", "", "str", "", "Time between running the check (ms|s|m|h) (default 0s)"),
    ("health-timeout", "", "str", "", "Maximum time to allow one check to run (ms|s|m|h) (default 0s)"),
    ("health-start-period", "", "str", "",
     "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)"),
    ("health-start-interval", "", "str", "", "Time between running the check during the start period (ms|s|m|h) (default 0s)"),
    ("health-retries", "", "int", 0, "Consecutive failures needed to report unhealthy"),
    ("no-healthcheck", "", "bool", False, "Disable any container-specified HEALTHCHECK"),
    ("pull", "", "str", "missing", 'Pull image before running ("always", "missing", "never")'),
    ("quiet", "q", "bool", False, "Suppress the pull output"),
]
ALIASES = {"net": "network"}


def dest(long: str) -> str:
    return "auto_remove" if long == "rm" else long.replace("-", "_")


def default_params() -> dict:
    """run's parameters with no flag given (multi-valued ones as fresh lists)."""
    return {dest(f[0]): (list(f[3]) if f[2] == "multi" else f[3]) for f in RUN_FLAGS}


def parse_run_args(argv: list[str]) -> dict | None:
    """Docker-style parsing of ``run``'s arguments: flags until the image, then the command.
    Returns None when anything is unusual, so the caller can let click report it."""
    by_long = {f[0]: f for f in RUN_FLAGS}
    by_short = {f[1]: f for f in RUN_FLAGS if f[1]}
    params = default_params()
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


def fast_run(session, argv: list[str]) -> int | None:
    """``dockyard run`` without click; None means "let click handle these arguments"."""
    params = parse_run_args(argv)
    if params is None:
        return None
    return run_container(session, params)


def run_container(session, params: dict) -> int:
    """Create, start, and unless detached follow the container to its exit, through the daemon
    as the docker CLI does: create, attach, wait, start; returns the exit code."""
    from ..errors import DockyardError

    if params["attach"] and params["detach"]:
        from .output import client_error

        exc = client_error("conflicting options: cannot specify both --attach and --detach")
        exc.cli_exit = 1  # type: ignore[attr-defined]  # (the docker CLI's, for run too)
        raise exc
    if params["tty"] and params["interactive"] and not params["detach"] and not sys.stdin.isatty():
        sys.stderr.write("the input device is not a TTY\n")  # the docker CLI's CheckTty, exit 1
        return 1
    cid = create_container(session, params)
    api = session.api
    if params["detach"]:
        try:
            api.json("POST", f"/containers/{cid}/start")
        except DockyardError as exc:
            if params["auto_remove"]:
                _remove_quietly(api, cid)
            _start_failure_code(exc)
            raise
        sys.stdout.write(cid + "\n")
        sys.stdout.flush()
        return 0
    try:
        streams = _attach_streams(params)
        code = attach_api(session, cid, stdin=params["interactive"] and (not params["attach"] or streams[0]),
                          tty=params["tty"], start=True, sig_proxy=params["sig_proxy"],
                          wait="removed" if params["auto_remove"] else "next-exit", streams=streams[1:])
    except DockyardError as exc:
        _start_failure_code(exc)
        raise
    return 0 if code is None else code  # None: detached with ctrl-p ctrl-q, the container runs on


def _attach_streams(params: dict) -> tuple[bool, bool, bool]:
    """-a/--attach: the streams run attaches (stdin, stdout, stderr); all three when none is
    named (stdin only with -i), as the docker CLI."""
    if not params["attach"]:
        return (params["interactive"], True, True)
    names = set()
    for value in params["attach"]:
        if value.lower() not in ("stdin", "stdout", "stderr"):
            from .output import client_error

            raise client_error(f'invalid argument "{value}" for "-a, --attach" flag: valid streams are STDIN, '
                               "STDOUT and STDERR")
        names.add(value.lower())
    return ("stdin" in names, "stdout" in names, "stderr" in names)


def _start_failure_code(exc) -> None:
    """The docker CLI's exit code for a ``run`` whose start failed: 127 for a command that is
    not there, 126 for one that cannot be run, else 125."""
    from ..errors import start_error_code

    exc.cli_exit = {127: 127, 126: 126}.get(start_error_code(str(exc)), 125)


def _remove_quietly(api, cid: str) -> None:
    from ..errors import DockyardError

    try:
        api.json("DELETE", f"/containers/{cid}", {"force": True})
    except DockyardError:
        pass


def _kv_list(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        k, _, val = v.partition("=")
        out[k] = val
    return out


def _file_lines(files: list[str] | tuple[str, ...]) -> list[str]:
    """The lines of --env-file and --label-file files, as the docker CLI reads them: leading
    white space dropped (trailing kept, in the value), blank lines and # comments skipped."""
    from ..errors import InvalidArgument

    out = []
    for path in files:
        try:
            lines = open(path, encoding="utf-8").read().splitlines()
        except OSError as exc:
            raise InvalidArgument(f"open {path}: {exc.strerror.lower()}") from None
        out += [line.lstrip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return out


def _env_list(values: tuple[str, ...], files: tuple[str, ...]) -> list[str]:
    """-e K=V, -e K (take it from our environment, skip when unset), --env-file F."""
    out = [line if "=" in line else (f"{line}={os.environ[line]}" if line in os.environ else "")
           for line in _file_lines(files)]
    for v in values:
        if "=" in v:
            out.append(v)
        elif v in os.environ:
            out.append(f"{v}={os.environ[v]}")
    return [e for e in out if e]


def create_body(p: dict) -> dict:
    """run/create's parsed flags -> Docker's ContainerCreate body, validated as the docker CLI
    validates before it sends anything."""
    from ..errors import InvalidArgument
    from .output import client_error

    if p["memory"] or p["memory_swap"] or p["memory_reservation"]:
        from ..units import parse_size
    host: dict = {}
    if p["memory"]:
        host["Memory"] = parse_size(p["memory"])
        if host["Memory"] < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if p["memory_swap"]:
        host["MemorySwap"] = -1 if p["memory_swap"] == "-1" else parse_size(p["memory_swap"])
        if host["MemorySwap"] > 0 and host.get("Memory") and host["MemorySwap"] < host["Memory"]:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if p["memory_reservation"]:
        host["MemoryReservation"] = parse_size(p["memory_reservation"])
    if p["kernel_memory"]:
        from ..errors import DockyardError
        from ..units import parse_size

        try:
            host["KernelMemory"] = parse_size(p["kernel_memory"])
        except DockyardError as exc:
            raise _flag_error("kernel-memory", p["kernel_memory"], str(exc)) from None
    if p["cpus"]:
        try:
            cpus = float(p["cpus"])
        except ValueError:
            raise client_error(f'invalid argument "{p["cpus"]}" for "--cpus" flag: failed to parse {p["cpus"]} as a rational number') from None
        if cpus < 0:
            raise client_error(f'invalid argument "{p["cpus"]}" for "--cpus" flag: range of CPUs is from 0.01 to {os.cpu_count()}.00, as there are only {os.cpu_count()} CPUs available')
        if cpus > (os.cpu_count() or 1):
            raise InvalidArgument(f"range of CPUs is from 0.01 to {os.cpu_count()}.00, as there are only {os.cpu_count()} CPUs available")
        host["NanoCpus"] = int(cpus * 1e9)
    for key, flag in (("CpuShares", "cpu_shares"), ("CpuQuota", "cpu_quota"), ("CpuPeriod", "cpu_period"),
                      ("CpuRealtimePeriod", "cpu_rt_period"), ("CpuRealtimeRuntime", "cpu_rt_runtime"),
                      ("CpusetCpus", "cpuset_cpus"), ("CpusetMems", "cpuset_mems")):
        if p[flag]:
            host[key] = p[flag]
    if p["pids_limit"]:
        host["PidsLimit"] = p["pids_limit"]
    host["Ulimits"] = [_ulimit(u) for u in p["ulimit"]]  # ([] without any, as the docker CLI sends it)
    if p["oom_score_adj"]:
        host["OomScoreAdj"] = p["oom_score_adj"]
    if p["memory_swappiness"] != -1:
        if not 0 <= p["memory_swappiness"] <= 100:  # (the docker CLI's own check and words)
            raise client_error(f"invalid value: {p['memory_swappiness']}. Valid memory swappiness range is 0-100")
        host["MemorySwappiness"] = p["memory_swappiness"]
    if p["oom_kill_disable"]:
        host["OomKillDisable"] = True
    _blkio_flags(p, host)
    if p["shm_size"]:
        from ..units import parse_size

        try:
            host["ShmSize"] = parse_size(p["shm_size"])
        except InvalidArgument as exc:
            raise _flag_error("shm-size", p["shm_size"], str(exc)) from None
    name, _, count = p["restart"].partition(":")
    policy: dict = {"Name": name}
    if count:
        try:
            policy["MaximumRetryCount"] = int(count)
        except ValueError:
            raise InvalidArgument(f"invalid restart policy format: maximum retry count must be an integer: {p['restart']}") from None
    host["RestartPolicy"] = policy
    if p.get("log_driver") or p.get("log_opt"):
        opts = {}
        for o in p.get("log_opt") or ():
            key, eq, value = o.partition("=")
            if not eq:
                raise client_error(f'invalid argument "{o}" for "--log-opt" flag: invalid key value pair format in log options')
            opts[key] = value
        host["LogConfig"] = {"Type": p.get("log_driver") or "", "Config": opts}
    host["AutoRemove"] = p["auto_remove"]
    host["NetworkMode"] = p["network"]
    if p["userns"]:
        host["UsernsMode"] = p["userns"]
    if p["pid"]:
        host["PidMode"] = p["pid"]
    if p["ipc"]:
        host["IpcMode"] = p["ipc"]
    if p["cgroupns"]:
        host["CgroupnsMode"] = p["cgroupns"]
    if p["cgroup_parent"]:
        host["CgroupParent"] = p["cgroup_parent"]
    if p["uts"]:
        host["UTSMode"] = p["uts"]
    if p["annotation"]:
        host["Annotations"] = _kv_list(tuple(p["annotation"]))
    for key, flag in (("Runtime", "runtime"), ("Isolation", "isolation"), ("VolumeDriver", "volume_driver")):
        if p[flag]:
            host[key] = p[flag]
    for key, flag in (("GroupAdd", "group_add"), ("DeviceCgroupRules", "device_cgroup_rule")):
        if p[flag]:
            host[key] = list(p[flag])
    for key, flag in (("CapAdd", "cap_add"), ("CapDrop", "cap_drop"), ("Binds", "volume"), ("Links", "link"),
                      ("VolumesFrom", "volumes_from"), ("Dns", "dns"), ("DnsSearch", "dns_search"),
                      ("DnsOptions", "dns_option"), ("ExtraHosts", "add_host")):
        if p[flag]:
            host[key] = list(p[flag])
    if p["security_opt"]:
        host["SecurityOpt"] = [_security_opt(o) for o in p["security_opt"]]
    for key, flag in (("Privileged", "privileged"), ("ReadonlyRootfs", "read_only"), ("Init", "init"),
                      ("PublishAllPorts", "publish_all")):
        if p[flag]:
            host[key] = True
    if p["mount"]:
        host["Mounts"] = [_mount(m) for m in p["mount"]]
    if p["device"]:
        host["Devices"] = [_device(d) for d in p["device"]]
    if p["sysctl"]:
        host["Sysctls"] = dict(_sysctl(v) for v in p["sysctl"])
    if p["tmpfs"]:
        host["Tmpfs"] = {path: opts for path, _, opts in (t.partition(":") for t in p["tmpfs"])}
    if p["publish"]:
        bindings: dict[str, list] = {}
        for spec in p["publish"]:
            key, binding = _publish(spec)
            bindings.setdefault(key, []).append(binding)
        host["PortBindings"] = bindings
    if p["tty"] and sys.stdout.isatty():
        size = os.get_terminal_size(sys.stdout.fileno())
        host["ConsoleSize"] = [size.lines, size.columns]
    entrypoint = None
    if p["entrypoint"] is not None:
        entrypoint = [p["entrypoint"]] if p["entrypoint"] else [""]
    streams = (False, False, False) if p["detach"] else _attach_streams(p)
    body: dict = {
        "Image": p["image"], "Cmd": list(p["command"]) or None, "Entrypoint": entrypoint,
        "Env": _env_list(p["env"], p["env_file"]), "WorkingDir": p["workdir"], "User": p["user"],
        "Hostname": p["hostname"], "Tty": p["tty"], "OpenStdin": p["interactive"],
        "StdinOnce": p["interactive"] and not p["detach"],
        "AttachStdin": streams[0], "AttachStdout": streams[1], "AttachStderr": streams[2],
        "Labels": _kv_list(tuple(_file_lines(p["label_file"])) + tuple(p["label"])),  # (-l wins)
        "HostConfig": host,
    }
    if p["domainname"]:
        body["Domainname"] = p["domainname"]
    healthcheck = _healthcheck(p)
    if healthcheck is not None:
        body["Healthcheck"] = healthcheck
    if p["stop_signal"]:
        body["StopSignal"] = p["stop_signal"]
    if p["stop_timeout"] is not None:
        body["StopTimeout"] = p["stop_timeout"]
    if p["expose"]:
        body["ExposedPorts"] = {e: {} for e in p["expose"]}
    if p["mac_address"]:
        body["MacAddress"] = p["mac_address"]
    if p["network_alias"] or p["ip"] or p["ip6"] or p["link_local_ip"]:
        endpoint: dict = {}
        if p["network_alias"]:
            endpoint["Aliases"] = list(p["network_alias"])
        ipam = {k: v for k, v in (("IPv4Address", p["ip"]), ("IPv6Address", p["ip6"]),
                                  ("LinkLocalIPs", list(p["link_local_ip"]))) if v}
        if ipam:
            endpoint["IPAMConfig"] = ipam
        body["NetworkingConfig"] = {"EndpointsConfig": {p["network"]: endpoint}}
    return body


_HEALTH_DURATIONS = (("Interval", "health-interval"), ("Timeout", "health-timeout"),
                     ("StartPeriod", "health-start-period"), ("StartInterval", "health-start-interval"))


def _healthcheck(p: dict) -> dict | None:
    """The --health-* and --no-healthcheck flags -> Config.Healthcheck, checked as the docker
    CLI checks them; None when none is given (the image's HEALTHCHECK then applies)."""
    from .output import client_error

    durations = {}
    for key, flag in _HEALTH_DURATIONS:
        value = p.get(dest(flag)) or ""
        if value:
            from ..units import parse_go_duration

            try:
                durations[key] = parse_go_duration(value)
            except ValueError as exc:
                raise _flag_error(flag, value, str(exc)) from None
    retries = p.get("health_retries") or 0
    if p.get("no_healthcheck"):
        if p.get("health_cmd") or retries or any(durations.values()):
            raise client_error("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not (p.get("health_cmd") or retries or any(durations.values())):
        return None
    for key, flag in _HEALTH_DURATIONS:
        if durations.get(key, 0) < 0:
            raise client_error(f"--{flag} cannot be negative")
    if retries < 0:
        raise client_error("--health-retries cannot be negative")
    out: dict = {"Test": ["CMD-SHELL", p["health_cmd"]] if p.get("health_cmd") else None}
    out.update({key: durations.get(key, 0) for key, _ in _HEALTH_DURATIONS})
    out["Retries"] = retries
    return out


def _blkio_flags(p: dict, host: dict) -> None:
    """--blkio-weight, --blkio-weight-device and the four --device-{read,write}-{bps,iops}, checked
    as the docker CLI checks them, into HostConfig (the daemon looks the devices up at start)."""
    if p["blkio_weight"]:
        text = p["blkio_weight"]
        if not text.isdigit():
            raise _flag_error("blkio-weight", text, f'strconv.ParseUint: parsing "{text}": invalid syntax')
        if int(text) > 0xFFFF:
            raise _flag_error("blkio-weight", text, f'strconv.ParseUint: parsing "{text}": value out of range')
        host["BlkioWeight"] = int(text)

    def split(flag: str, value: str) -> tuple[str, str]:
        path, colon, rest = value.partition(":")
        if not colon:
            raise _flag_error(flag, value, f"bad format: {value}")
        if not path.startswith("/dev/"):
            raise _flag_error(flag, value, f"bad format for device path: {value}")
        return path, rest

    weights = []
    for value in p["blkio_weight_device"]:
        path, rest = split("blkio-weight-device", value)
        if not rest.isdigit() or (int(rest) and not 10 <= int(rest) <= 1000):
            raise _flag_error("blkio-weight-device", value, f"invalid weight for device: {value}")
        weights.append({"Path": path, "Weight": int(rest)})
    if weights:
        host["BlkioWeightDevice"] = weights
    for flag, key in (("device-read-bps", "BlkioDeviceReadBps"), ("device-write-bps", "BlkioDeviceWriteBps"),
                      ("device-read-iops", "BlkioDeviceReadIOps"), ("device-write-iops", "BlkioDeviceWriteIOps")):
        rates = []
        for value in p[flag.replace("-", "_")]:
            path, rest = split(flag, value)
            bps = flag.endswith("bps")
            rate = -1
            if bps:
                from ..errors import DockyardError
                from ..units import parse_size

                try:
                    rate = parse_size(rest) if rest[:1].isdigit() else -1
                except DockyardError:
                    pass
            elif rest.isdigit():
                rate = int(rest)
            if rate < 0:
                unit = "[<unit>]" if bps else ""
                units = ". Unit is optional and can be kb, mb, or gb" if bps else ""
                raise _flag_error(flag, value, f"invalid rate for device: {value}. The correct format is "
                                               f"<device-path>:<number>{unit}. Number must be a positive integer{units}")
            rates.append({"Path": path, "Rate": rate})
        if rates:
            host[key] = rates


def _flag_error(flag: str, value: str, why: str) -> Exception:
    """A bad flag value, said as the docker CLI says it (no "Error response from daemon")."""
    from .output import client_error

    return client_error(f"invalid argument \"{value}\" for \"--{flag}\" flag: {why}")


def _device(value: str) -> dict:
    """``--device HOST[:CONTAINER][:PERMISSIONS]``, read as the docker CLI reads it."""

    def mode(m: str) -> bool:
        return bool(m) and len(m) <= 3 and set(m) <= set("rwm") and len(set(m)) == len(m)

    parts = value.split(":")
    dst, perms = "", "rwm"
    if len(parts) == 3:
        dst, perms = parts[1], parts[2]
        if not mode(perms):
            raise _flag_error("device", value, f"bad mode specified: {perms}")
    elif len(parts) == 2:
        if mode(parts[1]):
            perms = parts[1]
        else:
            dst = parts[1]
    elif len(parts) != 1:
        raise _flag_error("device", value, f"invalid device specification: {value}")
    src = parts[0]
    return {"PathOnHost": src, "PathInContainer": dst or src, "CgroupPermissions": perms}


def _sysctl(value: str) -> tuple[str, str]:
    key, eq, val = value.partition("=")
    if not eq or not key:
        raise _flag_error("sysctl", value, f"sysctl '{value}' is not allowed")
    return key, val


def _ulimit(value: str) -> dict:
    from ..errors import InvalidArgument

    name, eq, limits = value.partition("=")
    soft, _, hard = limits.partition(":")
    try:
        s = int(soft)
        return {"Name": name, "Soft": s, "Hard": int(hard) if hard else s}
    except ValueError:
        raise InvalidArgument(f"invalid ulimit argument: {value}") from None


def _security_opt(opt: str) -> str:
    """``seccomp=FILE`` is sent as the profile itself, as the docker CLI does."""
    from ..errors import InvalidArgument

    key, sep, value = opt.partition("=")
    if key != "seccomp" or value in ("", "unconfined") or value.lstrip().startswith("{"):
        return opt
    try:
        with open(value, encoding="utf-8") as f:
            return f"seccomp={f.read()}"
    except OSError as exc:
        raise InvalidArgument(f"opening seccomp profile ({value}) failed: {exc.strerror}") from None


def _mount(spec: str) -> dict:
    """``--mount type=…,source=…,target=…,readonly,…`` -> a Docker Mount object (the daemon
    checks what the fields mean)."""
    from .output import client_error

    m: dict = {"Type": "volume"}
    for item in spec.split(","):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq and key not in ("readonly", "ro", "volume-nocopy"):
            raise client_error(f'invalid argument "{spec}" for "--mount" flag: invalid field \'{item}\' must be a key=value pair')
        if key == "type":
            m["Type"] = value
        elif key in ("src", "source"):
            m["Source"] = value
        elif key in ("dst", "destination", "target"):
            m["Target"] = value
        elif key in ("readonly", "ro"):
            if not eq or value.lower() in ("1", "true"):
                m["ReadOnly"] = True
            elif value.lower() not in ("0", "false"):
                raise client_error(f'invalid argument "{spec}" for "--mount" flag: invalid value for readonly: {value}')
        elif key == "bind-propagation":
            m.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "volume-nocopy":
            m.setdefault("VolumeOptions", {})["NoCopy"] = not eq or value.lower() in ("1", "true")
        elif key == "tmpfs-size":
            from ..units import parse_size

            m.setdefault("TmpfsOptions", {})["SizeBytes"] = parse_size(value)
        elif key == "tmpfs-mode":
            try:
                m.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
            except ValueError:
                raise client_error(f'invalid argument "{spec}" for "--mount" flag: invalid tmpfs-mode: {value}') from None
        elif key not in ("volume-driver", "volume-label", "volume-opt", "consistency", "bind-nonrecursive"):
            raise client_error(f'invalid argument "{spec}" for "--mount" flag: unexpected key \'{key}\' in \'{item}\'')
    if not m.get("Target"):
        raise client_error(f'invalid argument "{spec}" for "--mount" flag: target is required')
    return m


def _publish(spec: str) -> tuple[str, dict]:
    """``-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`` -> (PortBindings key, binding); the daemon
    checks ranges, protocols and addresses."""
    rest, slash, proto = spec.partition("/")
    parts = rest.rsplit(":", 2)
    host_ip, host_port, port = ("", "", parts[0]) if len(parts) == 1 else (
        ("", parts[0], parts[1]) if len(parts) == 2 else (parts[0], parts[1], parts[2]))
    if host_ip.startswith("[") and host_ip.endswith("]"):  # [::1]:8080:80, as docker's CLI
        host_ip = host_ip[1:-1]
    return f"{port}/{proto or 'tcp'}", {"HostIp": host_ip, "HostPort": host_port}


def create_container(session, params: dict) -> str:
    """ContainerCreate, pulling the image as the docker CLI does: first with ``--pull always``;
    on "No such image" with ``--pull missing`` (the default), after saying so, then once more."""
    from ..client import quote
    from ..errors import ImageNotFound

    policy = params.get("pull") or "missing"
    if policy not in ("always", "missing", "never"):
        from .output import client_error

        raise client_error(f"invalid pull option: '{policy}': must be one of \"always\", \"missing\" or \"never\"")
    body = create_body(params)
    query = "&".join(f"{k}={quote(v, '')}" for k, v in (("name", params["name"]), ("platform", params.get("platform")))
                     if v)
    query = "?" + query if query else ""
    cidfile = params.get("cidfile") or ""
    if cidfile and os.path.exists(cidfile):
        from .output import client_error

        exc = client_error(f"container ID file found, make sure the other container isn't running or delete {cidfile}")
        exc.not_a_flag = True  # type: ignore[attr-defined]  # (docker create: 1; run: 125)
        raise exc
    if policy == "always":
        pull_image(session, params["image"], params.get("quiet", False), params.get("platform") or "")
    try:
        out = session.api.json("POST", "/containers/create" + query, None, body)
    except ImageNotFound:
        if policy != "missing":
            raise
        from ..reference import parse

        if not params.get("quiet"):
            sys.stderr.write(f"Unable to find image '{parse(params['image']).with_default_tag().familiar()}' locally\n")
        pull_image(session, params["image"], params.get("quiet", False), params.get("platform") or "")
        out = session.api.json("POST", "/containers/create" + query, None, body)
    for warning in out.get("Warnings") or []:
        sys.stderr.write(f"WARNING: {warning}\n")
    if cidfile:
        try:
            with open(cidfile, "x") as f:
                f.write(out["Id"])
        except OSError as exc:
            from .output import client_error

            raise client_error(f"failed to create the container ID file: {exc}") from None
    return out["Id"]


def pull_image(session, name: str, quiet: bool, platform: str = "") -> None:
    """Pull ``name`` (its default tag when it names none) through the daemon, the progress on
    stderr as the docker CLI draws it for run and create (stdout is for the container)."""
    from .. import reference as refs
    from .registry import ProgressPrinter, _auth_header, _render

    ref = refs.parse(name).with_default_tag()
    query = {"fromImage": ref.name, "tag": ref.digest or ref.tag}
    if platform:
        query["platform"] = platform
    resp = session.api.request("POST", "/images/create", query,
                               headers=_auth_header(ref.domain), stream=True, timeout=None)
    _render(session, resp, ProgressPrinter(sys.stderr, quiet=quiet))


def attach_api(session, ref: str, stdin: bool, tty: bool | None = None, start: bool = False,
               sig_proxy: bool = True, wait: str = "next-exit", streams: tuple[bool, bool] = (True, True)) -> int | None:
    """Attach to a container through the daemon (``POST /containers/{id}/attach``, hijacked),
    start it when asked once attached, and relay until it exits: returns its exit code, or None
    when the user detached with ctrl-p ctrl-q.

    ``tty=None`` takes the container's own setting; stdin is sent only when the container keeps
    it open.  Without a TTY the stream is Docker's multiplexed frames ``[kind,0,0,0,len32]``."""
    import _signal  # signal without its Python layer (start-up: see _wire)

    from .. import _wire
    from ..errors import Conflict, DockyardError

    api = session.api
    cid = ref
    if tty is None or not start:
        info = api.json("GET", f"/containers/{quote_ref(ref)}/json")
        cid = info["Id"]
        cfg = info["Config"]
        tty = bool(cfg.get("Tty")) if tty is None else tty
        stdin = stdin and bool(cfg.get("OpenStdin"))
        if not start and not info["State"]["Running"]:
            raise Conflict("You cannot attach to a stopped container, start it first")
    sock = api.hijack(f"/containers/{cid}/attach",
                      {"stream": True, "stdin": stdin, "stdout": streams[0], "stderr": streams[1]})
    waiter = None
    if start:
        # asked before the start, as the docker CLI does, so the exit is not missed
        waiter = api.request("POST", f"/containers/{cid}/wait", {"condition": wait}, stream=True, timeout=None)
        try:
            api.json("POST", f"/containers/{cid}/start")
        except DockyardError:
            sock.close()
            api.finish(waiter)
            if wait == "removed":
                _remove_quietly(api, cid)
            raise
    if not tty and sig_proxy:
        def proxy(signum, frame):
            try:  # docker's --sig-proxy, on a connection of its own
                side_transport(api).json("POST", f"/containers/{cid}/kill", {"signal": str(signum)})
            except DockyardError:
                pass

        for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1,
                    _signal.SIGUSR2):
            _signal.signal(sig, proxy)
    detached = relay(api, sock, stdin, tty, f"/containers/{cid}/resize")
    if detached:
        if waiter is not None:
            api.finish(waiter)  # (a streamed request's connection is closed, never reused)
        return None
    if waiter is None:
        waiter = api.request("POST", f"/containers/{cid}/wait", {"condition": "not-running"}, stream=True,
                             timeout=None)
    try:
        result = _wire.loads(waiter.read() or b"{}")
    finally:
        api.finish(waiter)
    return int(result.get("StatusCode", 0))


def relay(api, sock, stdin: bool, tty: bool, resize_path: str = "") -> bool:
    """Relay a hijacked attach or exec stream until it ends: our stdin in (when asked; its end
    half-closes the stream), the output out (Docker's frames without a TTY).  With a TTY on a
    terminal: raw mode, and the window size posted to ``resize_path`` at the start and on each
    SIGWINCH.  Returns True when the user detached with ctrl-p ctrl-q."""
    import _thread

    from .. import _wire
    from ..client import frames

    interactive_tty = tty and sys.stdin.isatty()
    detached: list[bool] = []  # set by the stdin pump on ctrl-p ctrl-q
    saved = None
    lock = _thread.allocate_lock()

    def shutdown(how: int) -> None:
        try:
            sock.shutdown(how)
        except OSError:
            pass

    if interactive_tty:
        import _signal
        import termios
        import tty as ttymod

        if resize_path:
            side = side_transport(api)
            pending = _thread.allocate_lock()  # held while no resize is due
            pending.acquire()

            def resizer() -> None:  # a thread: no HTTP inside the signal handler
                from ..errors import DockyardError

                while True:
                    pending.acquire()
                    size = terminal_size()
                    if size:
                        try:
                            side.json("POST", resize_path, {"h": size[0], "w": size[1]}, timeout=5)
                        except (DockyardError, OSError):
                            pass

            def wake(*_: object) -> None:
                if pending.locked():
                    pending.release()

            _thread.start_new_thread(resizer, ())
            _signal.signal(_signal.SIGWINCH, wake)
            wake()  # once at the start, as docker does
        saved = termios.tcgetattr(0)
        ttymod.setraw(0)
    if stdin:
        def pump() -> None:
            last = b""
            while True:
                try:
                    data = os.read(0, 65536)
                except OSError:
                    data = b""
                if not data:
                    shutdown(_wire.SHUT_WR)
                    return
                if interactive_tty:
                    last = (last + data)[-2:]
                    if last == b"\x10\x11":  # ctrl-p ctrl-q: leave the process running
                        detached.append(True)
                        shutdown(_wire.SHUT_RDWR)
                        return
                with lock:
                    try:
                        sock.sendall(data)
                    except OSError:
                        return

        _thread.start_new_thread(pump, ())
    else:
        shutdown(_wire.SHUT_WR)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for kind, data in frames(sock.recv, tty):
            f = err if kind == 2 else out
            f.write(data)
            f.flush()
    except OSError:
        pass
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        sock.close()
    return bool(detached)


def terminal_size() -> tuple[int, int] | None:
    """(rows, columns) of our terminal (stdout's, else stdin's), or None."""
    for fd in (1, 0):
        try:
            size = os.get_terminal_size(fd)
            return size.lines, size.columns
        except OSError:
            continue
    return None


def side_transport(api):
    """A connection of its own to the same daemon (for a thread or a signal handler beside a
    running stream)."""
    from ..client import Transport

    t = Transport(f"unix://{api.path}", timeout=None)
    t.headers.update(api.headers)
    return t


def quote_ref(ref: str) -> str:
    from ..client import quote

    return quote(ref, "")
