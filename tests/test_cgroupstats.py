"""``stats`` reads cgroup v1 and v2; v2 (most users' hosts) is tested against a fake tree."""

from __future__ import annotations

from pathlib import Path

from dockyard.engine.cgroupstats import is_v2, sample

CID = "c" * 64


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v2_fake_tree(tmp_path):
    base = tmp_path / "cgroup"
    write(base / "cgroup.controllers", "cpuset cpu io memory pids\n")
    d = base / "dockyard" / CID
    write(d / "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    write(d / "memory.current", "10485760\n")
    write(d / "memory.stat", "anon 8000000\ninactive_file 2097152\n")
    write(d / "memory.max", "67108864\n")
    write(d / "pids.current", "7\n")
    write(d / "io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n8:16 rbytes=1 wbytes=2\n")
    assert is_v2(base)
    s = sample(CID, base)
    assert s["cpu"] == 1_500_000
    assert s["mem"] == 10485760 - 2097152
    assert s["mem_limit"] == 67108864
    assert s["pids"] == 7
    assert (s["blk_read"], s["blk_write"]) == (4097, 8194)


def test_v2_unlimited_memory_reports_host_memory(tmp_path):
    base = tmp_path / "cgroup"
    write(base / "cgroup.controllers", "memory pids\n")
    write(base / "dockyard" / CID / "memory.max", "max\n")
    s = sample(CID, base)
    assert s["mem_limit"] > 0 and s["mem"] == 0 and s["pids"] == 0


def test_v1_fake_tree(tmp_path):
    base = tmp_path / "cgroup"
    write(base / "cgroup.controllers", "")  # hybrid: the v2 mount has no controllers
    write(base / "memory" / "dockyard" / CID / "memory.usage_in_bytes", "5000000\n")
    write(base / "memory" / "dockyard" / CID / "memory.stat", "total_inactive_file 1000000\n")
    write(base / "memory" / "dockyard" / CID / "memory.limit_in_bytes", "9223372036854771712\n")
    write(base / "cpuacct" / "dockyard" / CID / "cpuacct.usage", "123456789\n")
    write(base / "pids" / "dockyard" / CID / "pids.current", "3\n")
    write(base / "blkio" / "dockyard" / CID / "blkio.throttle.io_service_bytes",
          "8:0 Read 100\n8:0 Write 200\n8:0 Total 300\nTotal 300\n")
    assert not is_v2(base)
    s = sample(CID, base)
    assert (s["cpu"], s["mem"], s["pids"], s["blk_read"], s["blk_write"]) == (123456789, 4000000, 3, 100, 200)
    assert s["mem_limit"] < 9223372036854771712  # capped at the host's memory, as docker shows
