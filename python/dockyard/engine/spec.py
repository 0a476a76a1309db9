"""The OCI runtime spec (``config.json``) for a container, with Docker's defaults.

What Docker puts in a bundle is what dockyard puts there: the same mounts, capabilities, masked
and read-only paths, devices, rlimits and environment, so the same bundle behaves the same under
runc and under dockyard's own runtime.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DockyardError, InvalidArgument

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's default capability set: CapEff 00000000a80425fb.
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
ALL_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# Devices every container may use (Docker's default allow-list, cgroup device rules).
DEFAULT_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},                             # mknod any char device
    {"allow": True, "type": "b", "access": "m"},                             # and any block device
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},   # zero
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},   # null
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},   # urandom
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},   # random
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},   # tty
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},   # console
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},   # full
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},   # ptmx
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},             # pts/*
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},  # fuse
    {"allow": False, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # tun
]

SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "POLL": 29, "PWR": 30, "SYS": 31,
}

ULIMITS = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
    "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
    "stack": "RLIMIT_STACK", "as": "RLIMIT_AS",
}


def parse_signal(value: str | int) -> int:
    """``SIGTERM``, ``TERM``, ``15``, ``sigkill`` -> the number; anything else is refused."""
    text = str(value).strip()
    if text.isdigit():
        num = int(text)
        if 1 <= num <= 64:
            return num
    else:
        name = text.upper().removeprefix("SIG")
        if name in SIGNALS:
            return SIGNALS[name]
        if name.startswith("RTMIN") or name.startswith("RTMAX"):
            base, _, off = name[:5], name[5:6], name[6:]
            try:
                n = int(off or 0)
            except ValueError:
                n = -1
            if 0 <= n <= 15:
                return 34 + n if base == "RTMIN" and _ in ("+", "") else 64 - n
    raise InvalidArgument(f"Invalid signal: {value}")


def parse_ulimit(value: str) -> dict:
    """``nofile=1024:2048`` -> an OCI rlimit."""
    name, eq, limits = value.partition("=")
    if not eq or name not in ULIMITS:
        raise InvalidArgument(f"invalid ulimit argument: {value}")
    soft, _, hard = limits.partition(":")
    try:
        s = int(soft)
        h = int(hard) if hard else s
    except ValueError:
        raise InvalidArgument(f"invalid ulimit argument: {value}") from None
    if s > h:
        raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {s} > {h}")
    return {"type": ULIMITS[name], "soft": s, "hard": h}


def normalize_cap(cap: str) -> str:
    up = cap.strip().upper()
    if up == "ALL":
        return "ALL"
    if not up.startswith("CAP_"):
        up = "CAP_" + up
    if up not in ALL_CAPS:
        raise InvalidArgument(f'unknown capability: "{up}"')
    return up


def _bounding_set() -> set[int]:
    """Capability numbers in this process's bounding set (``CapBnd`` of /proc/self/status)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    mask = int(line.split()[1], 16)
                    return {n for n in range(64) if mask >> n & 1}
    except OSError:
        pass
    return set()


def host_capabilities() -> list[str]:
    """Every capability this host lets us hand on: the bounding set (a host that is itself a
    container may lack some, and asking for one it lacks makes capset fail with EPERM)."""
    bounding = _bounding_set()
    return [c for i, c in enumerate(ALL_CAPS) if i in bounding] if bounding else list(ALL_CAPS)


def capabilities(cap_add: list[str], cap_drop: list[str], privileged: bool) -> list[str]:
    """Docker's rules: start from the default set, drop, then add; ALL (and --privileged) means
    every capability of the host's bounding set."""
    if privileged:
        return host_capabilities()
    adds = [normalize_cap(c) for c in cap_add]
    drops = [normalize_cap(c) for c in cap_drop]
    caps = [] if "ALL" in drops else [c for c in DEFAULT_CAPS if c not in drops]
    if "ALL" in adds:
        return [c for c in host_capabilities() if c not in drops or "ALL" in drops]
    for cap in adds:
        if cap not in caps:
            caps.append(cap)
    return caps


@dataclass
class User:
    uid: int
    gid: int
    additional_gids: list[int]
    home: str


def resolve_user(rootfs: str | list[Path], spec: str, group_add: list[str] | None = None) -> User:
    """``-u``/USER as Docker resolves it: name or uid, optional group, against the container's own
    /etc/passwd and /etc/group (read without following links out of the rootfs); ``group_add``
    (``--group-add``: names or gids) joins the supplementary groups."""
    passwd = _read_db(rootfs, "/etc/passwd")
    groups = _read_db(rootfs, "/etc/group")
    user, _, group = (spec or "").partition(":")
    uid, gid, home, name = 0, 0, "/", "root"
    if user == "" or user is None:
        user = "0"
    entry = next((p for p in passwd if p[0] == user), None)
    if entry is None and user.isdigit():
        entry = next((p for p in passwd if len(p) > 2 and p[2] == user), None)
        if entry is None:
            uid, gid, home, name = int(user), 0, "/", ""
    if entry is not None:
        try:
            uid, gid = int(entry[2]), int(entry[3])
        except (IndexError, ValueError):
            if not user.isdigit():
                raise InvalidArgument(f"malformed /etc/passwd entry for {user!r}") from None
            entry = None  # as docker: a numeric user needs no (valid) passwd entry
            uid, gid, home, name = int(user), 0, "/", ""
    if entry is not None:
        home = entry[5] if len(entry) > 5 and entry[5] else "/"
        name = entry[0]
    elif not user.isdigit():
        raise InvalidArgument(f"unable to find user {user}: no matching entries in passwd file")
    if uid > 2**32 - 2:
        raise InvalidArgument(f"uid {uid} is out of range")
    if group:
        g = next((e for e in groups if e[0] == group), None)
        if g is None and group.isdigit():
            gid = int(group)
        elif g is None:
            raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
        else:
            gid = int(g[2])
    additional = [gid]  # docker always lists the primary group among the process's groups
    if name:
        for g in groups:
            if len(g) > 3 and name in g[3].split(",") and g[2].isdigit() and int(g[2]) not in additional:
                additional.append(int(g[2]))
    for extra in group_add or []:
        g = next((e for e in groups if e[0] == extra), None)
        if g is not None and len(g) > 2 and g[2].isdigit():
            extra_gid = int(g[2])
        elif extra.isdigit():
            extra_gid = int(extra)
        else:
            raise InvalidArgument(f"Unable to find group {extra}: no matching entries in group file")
        if extra_gid not in additional:
            additional.append(extra_gid)
    return User(uid, gid, additional, home)


def secure_path(rootfs: str, path: str) -> str:
    """``path`` inside ``rootfs``, resolving symlinks as if rootfs were / (never leaving it)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current = ""
    seen = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = posixpath.dirname(current)
            continue
        candidate = current + "/" + part
        host = rootfs + candidate
        if os.path.islink(host):
            seen += 1
            if seen > 40:
                raise InvalidArgument(f"too many levels of symbolic links in {path}")
            target = os.readlink(host)
            if target.startswith("/"):
                current = ""
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        current = candidate
    return rootfs + (current or "/")


def _read_db(rootfs: str | list[Path], path: str) -> list[list[str]]:
    """The entries of a passwd or group file of a root: a mounted one (a path) or the layers of
    an unmounted one (top first, read as overlayfs merges them)."""
    if isinstance(rootfs, list):
        from .union import read_file

        data = read_file(rootfs, path)
        text = data.decode("utf-8", errors="replace") if data is not None else ""
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # as a text-mode read splits
        return [line.split(":") for line in lines if line.strip() and not line.startswith("#")]
    try:
        with open(secure_path(rootfs, path), encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []


@dataclass
class Resources:
    memory: int = 0
    memory_swap: int = 0          # -1 unlimited, 0 unset (docker: twice the memory)
    memory_reservation: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int = 0
    ulimits: list[dict] = field(default_factory=list)
    # HostConfig.Devices ({PathOnHost, PathInContainer, CgroupPermissions}), looked up at start
    devices: list[dict] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)    # HostConfig.Sysctls
    device_cgroup_rules: list[dict] = field(default_factory=list)  # HostConfig.DeviceCgroupRules, parsed
    shm_size: int = 0  # HostConfig.ShmSize: /dev/shm's size in bytes (0: the daemon's default)
    memory_swappiness: int | None = None  # HostConfig.MemorySwappiness (0-100; None: the kernel's)
    oom_kill_disable: bool = False        # HostConfig.OomKillDisable
    blkio_weight: int = 0                 # HostConfig.BlkioWeight (10-1000; 0: none)
    # HostConfig.BlkioWeightDevice ({Path, Weight}) and the four throttles ({Path, Rate}, by
    # their HostConfig names: BLKIO_THROTTLES), the devices looked up at start
    blkio_weight_device: list[dict] = field(default_factory=list)
    blkio_throttle: dict[str, list[dict]] = field(default_factory=dict)


def check_nano_cpus(nano_cpus: int) -> None:
    """dockerd's bounds of --cpus (NanoCpus): up to the CPUs this process may run on."""
    n = len(os.sched_getaffinity(0))
    if nano_cpus < 0 or nano_cpus > n * 10**9:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available")


# sysctls of the IPC namespace (runc's list, plus fs.mqueue.*)
IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
               "kernel.shmmni", "kernel.shm_rmid_forced"}


def check_sysctls(sysctls: dict[str, str], host_network: bool) -> None:
    """Only namespaced sysctls, each in a namespace of the container's own, as runc checks them
    (dockerd passes them through and runc refuses them at start; dockyard refuses at create, a
    400 with runc's sentence).  dockyard always gives a container its own IPC and UTS namespaces."""
    for key in sysctls:
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            continue
        if key.startswith("net."):
            if host_network:
                raise InvalidArgument(f'sysctl "{key}" not allowed in host network namespace')
            continue
        if key == "kernel.domainname":
            continue
        if key == "kernel.hostname":
            raise InvalidArgument('sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field')
        raise InvalidArgument(f'sysctl "{key}" is not in a separate kernel namespace')


def parse_device_cgroup_rule(rule: str) -> dict:
    """``c 7:128 rwm`` (``a``/``b``/``c``, ``*`` for any number) to an OCI device-cgroup allow
    rule; InvalidArgument in dockerd's words otherwise."""
    import re

    m = re.fullmatch(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})", rule)
    if not m:
        raise InvalidArgument(f"invalid device cgroup rule format: '{rule}'")
    out: dict = {"allow": True, "type": m.group(1), "access": m.group(4)}
    if m.group(2) != "*":
        out["major"] = int(m.group(2))
    if m.group(3) != "*":
        out["minor"] = int(m.group(3))
    return out


def custom_devices(devices: list[dict]) -> tuple[list[dict], list[dict]]:
    """HostConfig.Devices to OCI ``linux.devices`` and device-cgroup allow rules, from the host's
    nodes as they are now (type, major/minor, mode, owner), as dockerd does at start.  A
    directory brings every device node beneath it; a symlink is followed."""
    import stat

    nodes: list[dict] = []
    rules: list[dict] = []

    def node(path: str, dest: str, perms: str) -> bool:
        st = os.stat(path)
        if stat.S_ISCHR(st.st_mode):
            kind = "c"
        elif stat.S_ISBLK(st.st_mode):
            kind = "b"
        else:
            return False
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        nodes.append({"type": kind, "path": dest, "major": major, "minor": minor,
                      "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})
        rules.append({"allow": True, "type": kind, "major": major, "minor": minor, "access": perms})
        return True

    for dev in devices:
        on_host, dest, perms = dev["PathOnHost"], dev["PathInContainer"], dev["CgroupPermissions"] or "rwm"
        if any(c not in "rwm" for c in perms):
            raise InvalidArgument(f"invalid device cgroup permissions {perms!r} for {on_host}")
        try:
            real = os.path.realpath(on_host)
            if node(real, dest, perms):
                continue
            found = False
            if os.path.isdir(real):
                for root, _dirs, files in os.walk(real):
                    for f in files:
                        try:
                            found |= node(os.path.join(root, f), dest + os.path.join(root, f)[len(real):], perms)
                        except OSError:
                            pass
            if not found:
                raise DockyardError(f'error gathering device information while adding custom device "{on_host}": '
                                    "not a device node")
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise DockyardError(f'error gathering device information while adding custom device "{on_host}": '
                                f"{reason[:1].lower()}{reason[1:]}") from None
    return nodes, rules


#: HostConfig's block I/O throttles → the OCI spec's, in linux.resources.blockIO
BLKIO_THROTTLES = {"BlkioDeviceReadBps": "throttleReadBpsDevice", "BlkioDeviceWriteBps": "throttleWriteBpsDevice",
                   "BlkioDeviceReadIOps": "throttleReadIOPSDevice", "BlkioDeviceWriteIOps": "throttleWriteIOPSDevice"}


def _block_io(res: Resources) -> dict:
    """linux.resources.blockIO: each device path (a symlink is followed) as its numbers, looked
    up now, as dockerd does at start."""

    def numbers(path: str) -> dict:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise DockyardError(f"stat {path}: {os.strerror(exc.errno or 0).lower()}") from None
        return {"major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev)}

    out: dict = {}
    if res.blkio_weight:
        out["weight"] = res.blkio_weight
    if res.blkio_weight_device:
        out["weightDevice"] = [dict(numbers(d["Path"]), weight=d["Weight"]) for d in res.blkio_weight_device]
    for key, oci in BLKIO_THROTTLES.items():
        if res.blkio_throttle.get(key):
            out[oci] = [dict(numbers(d["Path"]), rate=d["Rate"]) for d in res.blkio_throttle[key]]
    return out


def linux_resources(res: Resources) -> dict:
    out: dict = {"devices": DEFAULT_DEVICE_RULES}
    mem: dict = {}
    if res.memory:
        mem["limit"] = res.memory
        if res.memory_swap == 0:
            if res.memory * 2 < 2**63:  # dockerd's int64 overflows past that, and then sets no swap limit
                mem["swap"] = res.memory * 2
        elif res.memory_swap > 0:
            mem["swap"] = res.memory_swap
        else:
            mem["swap"] = -1
    if res.memory_reservation:
        mem["reservation"] = res.memory_reservation
    if res.memory_swappiness is not None:
        mem["swappiness"] = res.memory_swappiness
    if res.oom_kill_disable:
        mem["disableOOMKiller"] = True
    if mem:
        out["memory"] = mem
    cpu: dict = {}
    if res.cpu_shares < 0:
        raise DockyardError("shares: invalid argument")  # dockerd's words, at start
    if res.cpu_shares:
        cpu["shares"] = res.cpu_shares
    if res.nano_cpus:
        cpu["period"] = 100000
        cpu["quota"] = res.nano_cpus * 100000 // 1_000_000_000
    if res.cpu_quota:
        cpu["quota"] = res.cpu_quota
    if res.cpu_period:
        cpu["period"] = res.cpu_period
    if res.cpuset_cpus:
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        cpu["mems"] = res.cpuset_mems
    if cpu:
        out["cpu"] = cpu
    if res.pids_limit:
        out["pids"] = {"limit": res.pids_limit}
    block_io = _block_io(res)
    if block_io:
        out["blockIO"] = block_io
    return out


#: /dev/shm's size when neither the container nor the daemon (--default-shm-size) says, as dockerd's
DEFAULT_SHM_SIZE = 64 << 20


def default_shm_size() -> int:
    """The daemon's --default-shm-size (which sets $DOCKYARD_DEFAULT_SHM_SIZE), else 64 MiB."""
    value = os.environ.get("DOCKYARD_DEFAULT_SHM_SIZE", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_SHM_SIZE


def default_ulimits() -> list[dict]:
    """The daemon's --default-ulimit settings ($DOCKYARD_DEFAULT_ULIMITS: "nofile=1024:2048 ..."),
    as OCI rlimits."""
    return [parse_ulimit(u) for u in os.environ.get("DOCKYARD_DEFAULT_ULIMITS", "").split()]


def default_mounts(shm_size: int = DEFAULT_SHM_SIZE, read_only_sys: bool = True) -> list[dict]:
    """Docker's mounts for every container, in Docker's order."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro" if read_only_sys else "rw"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size // 1024}k"]},
    ]


@dataclass
class ProcessSpec:
    args: list[str]
    env: list[str]
    cwd: str = "/"
    user: str = ""
    tty: bool = False
    hostname: str = ""
    domainname: str = ""
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    no_new_privileges: bool = False
    read_only: bool = False
    seccomp: dict | None = None       # an OCI seccomp object, or None for unconfined
    resources: Resources = field(default_factory=Resources)
    extra_mounts: list[dict] = field(default_factory=list)
    namespaces: list[dict] | None = None
    group_add: list[str] = field(default_factory=list)
    cgroups_path: str = ""
    oom_score_adj: int | None = None
    # /dev/shm: None a tmpfs of the container's own (Resources.shm_size), "" none at all
    # (--ipc none), else a directory bound there (--ipc host, shareable, container:X)
    shm_source: str | None = None
    sysctl: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def build_spec(rootfs: str, p: ProcessSpec, layers: list[Path] | None = None) -> dict:
    """The ``config.json`` for one container whose root filesystem is mounted at ``rootfs``
    (by the runtime, when ``layers``, top first, are given: its files are read from them)."""
    user = resolve_user(layers if layers is not None else rootfs, p.user, p.group_add)
    env = list(p.env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    caps = capabilities(p.cap_add, p.cap_drop, p.privileged)
    process: dict = {
        "terminal": p.tty,
        "user": {"uid": user.uid, "gid": user.gid},
        "args": p.args,
        "env": env,
        "cwd": p.cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": p.resources.ulimits or [],
        "noNewPrivileges": p.no_new_privileges,
    }
    if user.additional_gids:
        process["user"]["additionalGids"] = user.additional_gids
    if p.oom_score_adj is not None:
        process["oomScoreAdj"] = p.oom_score_adj
    namespaces = p.namespaces if p.namespaces is not None else [
        {"type": t} for t in ("mount", "network", "uts", "pid", "ipc", "cgroup")
    ]
    linux: dict = {
        "namespaces": namespaces,
        "resources": linux_resources(p.resources),
        "maskedPaths": [] if p.privileged else MASKED_PATHS,
        "readonlyPaths": [] if p.privileged else READONLY_PATHS,
    }
    if p.cgroups_path:
        linux["cgroupsPath"] = p.cgroups_path
    sysctl = {**p.resources.sysctls, **p.sysctl}
    if sysctl:
        linux["sysctl"] = sysctl
    if p.resources.devices:
        nodes, rules = custom_devices(p.resources.devices)
        linux["devices"] = nodes
        linux["resources"]["devices"] = list(linux["resources"]["devices"]) + rules
    if p.resources.device_cgroup_rules:
        linux["resources"]["devices"] = list(linux["resources"]["devices"]) + p.resources.device_cgroup_rules
    if p.seccomp is not None and not p.privileged:
        linux["seccomp"] = p.seccomp
    mounts = default_mounts(p.resources.shm_size or DEFAULT_SHM_SIZE, read_only_sys=not p.privileged)
    if p.shm_source is not None:
        mounts = [m for m in mounts if m["destination"] != "/dev/shm"]
        if p.shm_source:
            mounts.append({"destination": "/dev/shm", "type": "bind", "source": p.shm_source,
                           "options": ["rbind", "rprivate"]})
    mounts += list(p.extra_mounts)
    spec = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": p.read_only},
        "hostname": p.hostname,
        "mounts": mounts,
        "linux": linux,
    }
    if p.domainname:
        spec["domainname"] = p.domainname
    if p.annotations:
        spec["annotations"] = p.annotations
    return spec
