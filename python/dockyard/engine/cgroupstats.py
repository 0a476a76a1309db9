"""A container's cgroup, and its resource usage read from there (v1 or v2), for ``stats``.

The container's cgroup is ``<parent>/<id>`` (the bundle's ``linux.cgroupsPath``): the parent is
its ``--cgroup-parent``, else the daemon's, else ``/dockyard``.  On cgroup v2 everything is under
one directory; on v1 each controller has its own hierarchy.  ``base`` lets tests point this at a
fake tree.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def is_v2(base: Path = CGROUP_ROOT) -> bool:
    try:
        return bool((base / "cgroup.controllers").read_text().split())
    except OSError:
        return False


DEFAULT_PARENT = "/dockyard"


def container_cgroup(cid: str, parent: str = "") -> str:
    """The cgroup of container ``cid`` as the runtime is asked for it: ``parent`` (its
    ``--cgroup-parent``; else the daemon's, ``$DOCKYARD_CGROUP_PARENT``; else /dockyard) joined
    with the ID, as dockerd's cgroupfs driver joins them.  A relative result stays relative: the
    runtime puts it below its own cgroup in each hierarchy, as runc does (:func:`resolve`)."""
    parent = parent or os.environ.get("DOCKYARD_CGROUP_PARENT") or DEFAULT_PARENT
    return os.path.normpath(parent.rstrip("/") + "/" + cid)


def resolve(cgroup: str, controller: str, own: str | None = None) -> str:
    """The absolute path of ``cgroup`` in the hierarchy of ``controller`` ("" on v2): itself,
    or, when relative, below the cgroup that ``own`` (/proc/self/cgroup's text: the daemon's,
    which is the runtime's it starts) names for that controller."""
    if cgroup.startswith("/"):
        return cgroup
    if own is None:
        with open("/proc/self/cgroup") as f:
            own = f.read()
    mine = "/"
    for line in own.splitlines():
        _, ctls, path = (line.split(":", 2) + ["", ""])[:3]
        if (ctls == "") == (controller == "") and (not controller or controller in ctls.split(",")):
            mine = path or "/"
            break
    return mine.rstrip("/") + "/" + cgroup


def blkio_support(base: Path = CGROUP_ROOT) -> dict[str, bool]:
    """Which block I/O settings this host's cgroups take, as dockerd's sysinfo tells: v1's
    blkio files (a weight needs a proportional-weight scheduler: CFQ or BFQ), or v2's io
    controller (all of them)."""
    keys = ("weight", "weight_device", "read_bps", "write_bps", "read_iops", "write_iops")
    if is_v2(base):
        try:
            io = "io" in (base / "cgroup.controllers").read_text().split()
        except OSError:
            io = False
        return dict.fromkeys(keys, io)
    d = base / "blkio"
    files = {"weight": ("blkio.weight", "blkio.bfq.weight"),
             "weight_device": ("blkio.weight_device", "blkio.bfq.weight_device"),
             "read_bps": ("blkio.throttle.read_bps_device",), "write_bps": ("blkio.throttle.write_bps_device",),
             "read_iops": ("blkio.throttle.read_iops_device",), "write_iops": ("blkio.throttle.write_iops_device",)}
    return {k: any((d / f).exists() for f in names) for k, names in files.items()}


def _int(path: Path, default: int = 0) -> int:
    try:
        text = path.read_text().strip()
    except OSError:
        return default
    if text == "max":
        return default
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return default


def _keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                out[parts[0]] = int(parts[1])
    except OSError:
        pass
    return out


def _system_ns() -> int:
    """Total CPU time of the host in ns, from /proc/stat (docker's system_cpu_usage)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in fields) * 1_000_000_000 // ticks


def _host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def sample(cgroup: str, base: Path = CGROUP_ROOT) -> dict:
    """cpu (ns used), system (host ns), ncpu, mem (bytes, without page cache), mem_limit, pids,
    blk_read, blk_write of the container in ``cgroup`` (:func:`container_cgroup`)."""
    own = None
    if not cgroup.startswith("/"):
        with open("/proc/self/cgroup") as f:
            own = f.read()

    def rel(controller: str) -> str:
        return resolve(cgroup, controller, own).lstrip("/")

    host_mem = _host_memory()
    out = {"system": _system_ns(), "ncpu": os.cpu_count() or 1, "blk_read": 0, "blk_write": 0}
    if is_v2(base):
        d = base / rel("")
        out["cpu"] = _keyed(d / "cpu.stat").get("usage_usec", 0) * 1000
        stat = _keyed(d / "memory.stat")
        out["mem"] = max(0, _int(d / "memory.current") - stat.get("inactive_file", 0))
        out["mem_limit"] = _int(d / "memory.max", host_mem) or host_mem
        out["pids"] = _int(d / "pids.current")
        try:
            for line in (d / "io.stat").read_text().splitlines():
                for item in line.split()[1:]:
                    k, _, v = item.partition("=")
                    if k == "rbytes":
                        out["blk_read"] += int(v)
                    elif k == "wbytes":
                        out["blk_write"] += int(v)
        except OSError:
            pass
        return out
    mem = base / "memory" / rel("memory")
    out["cpu"] = _int(base / "cpuacct" / rel("cpuacct") / "cpuacct.usage")
    stat = _keyed(mem / "memory.stat")
    out["mem"] = max(0, _int(mem / "memory.usage_in_bytes") - stat.get("total_inactive_file", 0))
    limit = _int(mem / "memory.limit_in_bytes", host_mem)
    out["mem_limit"] = min(limit, host_mem) if limit else host_mem
    out["pids"] = _int(base / "pids" / rel("pids") / "pids.current")
    try:
        for line in (base / "blkio" / rel("blkio") / "blkio.throttle.io_service_bytes").read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "Read":
                out["blk_read"] += int(parts[2])
            elif len(parts) == 3 and parts[1] == "Write":
                out["blk_write"] += int(parts[2])
    except OSError:
        pass
    return out
