"""``stats`` reads cgroup v1 and v2; v2 (most users' hosts) is tested against a fake tree."""

from __future__ import annotations

from pathlib import Path

from dockyard.engine.cgroupstats import blkio_support, container_cgroup, is_v2, resolve, sample

CID = "c" * 64
CG = f"/dockyard/{CID}"


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
    s = sample(CG, base)
    assert s["cpu"] == 1_500_000
    assert s["mem"] == 10485760 - 2097152
    assert s["mem_limit"] == 67108864
    assert s["pids"] == 7
    assert (s["blk_read"], s["blk_write"]) == (4097, 8194)


def test_v2_unlimited_memory_reports_host_memory(tmp_path):
    base = tmp_path / "cgroup"
    write(base / "cgroup.controllers", "memory pids\n")
    write(base / "dockyard" / CID / "memory.max", "max\n")
    s = sample(CG, base)
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
    s = sample(CG, base)
    assert (s["cpu"], s["mem"], s["pids"], s["blk_read"], s["blk_write"]) == (123456789, 4000000, 3, 100, 200)
    assert s["mem_limit"] < 9223372036854771712  # capped at the host's memory, as docker shows


V1_OWN = "12:pids:/user.slice\n4:memory:/user.slice/session-3.scope\n1:name=systemd:/user.slice\n0::/user.slice\n"


def test_container_cgroup_parents(monkeypatch):
    """<parent>/<id> as dockerd's cgroupfs driver joins them: the container's --cgroup-parent,
    else the daemon's, else /dockyard; a relative one is below the daemon's own cgroup in each
    hierarchy (as runc puts it: v1 controllers may have us in different cgroups)."""
    monkeypatch.delenv("DOCKYARD_CGROUP_PARENT", raising=False)
    assert container_cgroup(CID) == CG
    assert container_cgroup(CID, "/custom/parent/") == f"/custom/parent/{CID}"
    assert container_cgroup(CID, "mine") == f"mine/{CID}"
    monkeypatch.setenv("DOCKYARD_CGROUP_PARENT", "/from-daemon")
    assert container_cgroup(CID) == f"/from-daemon/{CID}"
    assert container_cgroup(CID, "/own") == f"/own/{CID}"
    rel = f"mine/{CID}"
    assert resolve(rel, "memory", V1_OWN) == f"/user.slice/session-3.scope/mine/{CID}"
    assert resolve(rel, "pids", V1_OWN) == f"/user.slice/mine/{CID}"
    assert resolve(rel, "cpuset", V1_OWN) == f"/mine/{CID}"
    assert resolve(rel, "", V1_OWN) == f"/user.slice/mine/{CID}"
    assert resolve(CG, "memory", V1_OWN) == CG


def test_sample_reads_a_custom_parent(tmp_path):
    base = tmp_path / "cgroup"
    write(base / "cgroup.controllers", "memory pids\n")
    write(base / "custom" / CID / "pids.current", "4\n")
    assert sample(f"/custom/{CID}", base)["pids"] == 4


def test_cp_tells_the_container_by_its_cgroup(tmp_path):
    """cp reads a running container through /proc/PID only when that process is in the
    container's cgroup (a recycled PID is not): absolute, or relative below the engine's own
    cgroup in any hierarchy."""
    import os

    from dockyard.engine.cp import _in_cgroup

    proc = tmp_path / "proc"
    write(proc / "cgroup", f"4:memory:/user.slice/session-3.scope/mine/{CID}\n3:cpuset:/mine/{CID}/sub\n"
                           f"1:name=systemd:/dockyard/{CID}\n")
    fd = os.open(proc, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert _in_cgroup(fd, f"mine/{CID}")
        assert _in_cgroup(fd, CG)
        assert not _in_cgroup(fd, f"/mine/{CID[:-1]}d")
        assert not _in_cgroup(fd, f"ine/{CID}")
        assert not _in_cgroup(fd, f"other/{CID}")
    finally:
        os.close(fd)


def test_blkio_support(tmp_path):
    """What dockerd's sysinfo finds: v1's blkio files (weights only under CFQ or BFQ), v2's io
    controller (everything)."""
    v1 = tmp_path / "v1"
    write(v1 / "cgroup.controllers", "")
    for f in ("blkio.throttle.read_bps_device", "blkio.throttle.write_iops_device", "blkio.bfq.weight"):
        write(v1 / "blkio" / f, "")
    assert blkio_support(v1) == {"weight": True, "weight_device": False, "read_bps": True, "write_bps": False,
                                 "read_iops": False, "write_iops": True}
    v2 = tmp_path / "v2"
    write(v2 / "cgroup.controllers", "cpu io memory\n")
    assert set(blkio_support(v2).values()) == {True}
    write(v2 / "cgroup.controllers", "cpu memory\n")
    assert set(blkio_support(v2).values()) == {False}
