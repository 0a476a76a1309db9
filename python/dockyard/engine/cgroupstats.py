"""Resource usage of a container, read from its cgroup (v1 or v2), for ``stats``.

The container's cgroup is ``/dockyard/<id>`` (the bundle's ``linux.cgroupsPath``).  On cgroup v2
everything is under one directory; on v1 each controller has its own hierarchy.  ``base`` lets
tests point this at a fake tree.
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


def sample(cid: str, base: Path = CGROUP_ROOT) -> dict:
    """cpu (ns used), system (host ns), ncpu, mem (bytes, without page cache), mem_limit, pids,
    blk_read, blk_write."""
    rel = Path("dockyard") / cid
    host_mem = _host_memory()
    out = {"system": _system_ns(), "ncpu": os.cpu_count() or 1, "blk_read": 0, "blk_write": 0}
    if is_v2(base):
        d = base / rel
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
    mem = base / "memory" / rel
    out["cpu"] = _int(base / "cpuacct" / rel / "cpuacct.usage")
    stat = _keyed(mem / "memory.stat")
    out["mem"] = max(0, _int(mem / "memory.usage_in_bytes") - stat.get("total_inactive_file", 0))
    limit = _int(mem / "memory.limit_in_bytes", host_mem)
    out["mem_limit"] = min(limit, host_mem) if limit else host_mem
    out["pids"] = _int(base / "pids" / rel / "pids.current")
    try:
        for line in (base / "blkio" / rel / "blkio.throttle.io_service_bytes").read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "Read":
                out["blk_read"] += int(parts[2])
            elif len(parts) == 3 and parts[1] == "Write":
                out["blk_write"] += int(parts[2])
    except OSError:
        pass
    return out
