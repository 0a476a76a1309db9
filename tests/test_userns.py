"""``dockyard daemon --userns-remap``: a container's root is an unprivileged host user, its
layers are idmapped (never chowned or copied), its volumes belong to the remapped root, and
``--userns host`` opts out.

The daemon runs as a subprocess (the user's path) with ``--userns-remap default``, which adds
the ``dockremap`` user and its subordinate ranges to /etc as dockerd does: the ``etc_ids``
fixture puts those four files back as they were."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support import SavedEtcIds, needs_root, stop_daemon, tree
from test_daemon import Daemon, _mounts_under, runtime_available

def _idmapped_mounts() -> str:
    """'' when this kernel can idmap a mount, else why not."""
    from dockyard import _native

    d = Path(tempfile.mkdtemp(prefix="dyidmap-", dir="/tmp"))
    try:
        (d / "src").mkdir()
        (d / "view").mkdir()
        fd = _native.userns_fd([(0, 100000, 65536)], [(0, 100000, 65536)])
        try:
            _native.idmap_mount(str(d / "src"), str(d / "view"), fd)
            _native.umount(str(d / "view"))
        finally:
            os.close(fd)
        return ""
    except OSError as exc:
        return f"idmapped mounts do not work here: {exc}"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _why_not() -> str:
    if os.geteuid() != 0:
        return "needs root"
    if not runtime_available():
        return "dockyard-runtime is not built"
    return _idmapped_mounts()


pytestmark = [needs_root, pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "-")]


@pytest.fixture
def etc_ids():
    with SavedEtcIds():
        yield


def _range(name: str, user: str) -> tuple[int, int]:
    for line in (Path("/etc") / name).read_text().splitlines():
        f = line.split(":")
        if len(f) >= 3 and f[0] == user:
            return int(f[1]), int(f[2])
    raise AssertionError(f"no {name} range for {user}")


class Remapped(Daemon):
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        exe = Path(sys.executable).with_name("dockyard")
        proc = subprocess.run([str(exe), *args], env=self.env, capture_output=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode()}")
        return proc


@pytest.fixture
def remapped(rootfs_tar, etc_ids):
    # The remapped root reaches the store through every directory above it, as dockerd's
    # remapped root does (pytest's own directories are 0700)
    base = Path(tempfile.mkdtemp(prefix="dyuserns-", dir="/tmp"))
    os.chmod(base, 0o711)
    root, run = base / "root", base / "run"
    run.mkdir()
    d = Remapped(root, run, ("--userns-remap", "default"))
    try:
        d.start()
        d.cli("import", "-c", 'CMD ["/bin/sh"]', str(rootfs_tar), "bb")
        d.uid, d.size = _range("subuid", "dockremap")
        d.gid, _ = _range("subgid", "dockremap")
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
        stop_daemon(run, root)  # and the containers left
        left = _mounts_under(base)
        if left:
            subprocess.run(["umount", "-R", "-l", str(base)], check=False, stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)
    assert left == []


def _host_ids(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = next(int(l.split()[1]) for l in status if l.startswith("Uid:"))
    gid = next(int(l.split()[1]) for l in status if l.startswith("Gid:"))
    return uid, gid


def test_default_creates_dockremap_and_info_says_userns(remapped):
    passwd = {l.split(":")[0]: l.split(":") for l in Path("/etc/passwd").read_text().splitlines() if l}
    assert "dockremap" in passwd and passwd["dockremap"][6] == "/bin/false"
    assert remapped.size == 65536 and remapped.uid >= 100000
    info = remapped.ok("GET", "/info")
    assert "name=userns" in info["SecurityOptions"]


def test_container_root_is_the_mapped_user_on_the_host(remapped):
    cid = remapped.cli("run", "-d", "--network", "none", "bb", "sleep", "60").stdout.decode().strip()
    pid = int(remapped.cli("inspect", "-f", "{{.State.Pid}}", cid).stdout)
    assert _host_ids(pid) == (remapped.uid, remapped.gid)
    out = remapped.cli("exec", cid, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map").stdout.decode().split()
    assert out == ["0", "0", "0", str(remapped.uid), str(remapped.size)]
    # the image's files are root's inside, with no chown: the store's layers are the image's
    out = remapped.cli("exec", cid, "stat", "-c", "%u:%g", "/bin/busybox", "/etc").stdout.decode().split()
    assert out == ["0:0", "0:0"]
    assert remapped.ok("GET", f"/containers/{cid}/json")["HostConfig"]["UsernsMode"] == ""
    # its network namespace is the runtime's, made in its user namespace: a sysfs of its own
    out = remapped.cli("exec", cid, "sh", "-c", "ls /sys/class/net; grep ' /sys ' /proc/mounts").stdout.decode()
    assert out.split("\n")[0] == "lo" and " /sys sysfs " in out, out
    remapped.cli("rm", "-f", cid)
    # a user named from the image's /etc/passwd (read from the layers: the root is mounted by
    # the runtime, inside the container's namespaces)
    out = remapped.cli("run", "--rm", "--network", "none", "-u", "nobody", "bb", "id", "-u").stdout.decode()
    assert out == "65534\n"


def test_userns_host_opts_out(remapped):
    cid = remapped.cli("run", "-d", "--userns", "host", "--network", "none", "bb", "sleep", "60").stdout.decode().strip()
    pid = int(remapped.cli("inspect", "-f", "{{.State.Pid}}", cid).stdout)
    assert _host_ids(pid) == (0, 0)
    assert remapped.ok("GET", f"/containers/{cid}/json")["HostConfig"]["UsernsMode"] == "host"
    remapped.cli("rm", "-f", cid)
    proc = remapped.cli("create", "--userns", "nope", "bb", check=False)
    assert proc.returncode != 0 and b"invalid USER mode" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_volume_files_belong_to_the_mapped_root(remapped):
    out = remapped.cli("run", "--rm", "--network", "none", "-v", "uvol:/data", "bb", "sh", "-c",
                       "echo hi > /data/f && mkdir /data/d && stat -c %u:%g /data/f /data/d").stdout.decode().split()
    assert out == ["0:0", "0:0"]
    mountpoint = Path(json.loads(remapped.cli("volume", "inspect", "uvol").stdout)[0]["Mountpoint"])
    for p in (mountpoint, mountpoint / "f", mountpoint / "d"):
        st = p.stat()
        assert (st.st_uid, st.st_gid) == (remapped.uid, remapped.gid), p
    remapped.cli("volume", "rm", "uvol")


def test_layers_unchanged_and_commit_as_without_remapping(remapped):
    layers = {p: tree(p) for p in (remapped.root / "layers").iterdir()}  # the image's
    script = ("mkdir /made && echo hi > /made/f && busybox chown 5:6 /made/f && echo more >> /etc/profile-x"
              " && touch -t 200001010000 /made/f /made /etc/profile-x /etc")
    ids = {}
    for mode in ("", "host"):
        name = f"c{mode or 'remap'}"
        flags = ["--userns", mode] if mode else []
        remapped.cli("run", "--name", name, *flags, "--network", "none", "bb", "sh", "-c", script)
        if mode == "":
            # the container's writes reached its upper dir with the image's ids, not the host's
            cid = remapped.cli("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
            st = (remapped.root / "containers" / cid / "upper" / "made" / "f").stat()
            assert (st.st_uid, st.st_gid) == (5, 6)
        remapped.cli("commit", name, f"img{mode or 'remap'}")
        ids[mode] = json.loads(remapped.cli("image", "inspect", f"img{mode or 'remap'}").stdout)[0]["RootFS"]["Layers"][-1]
        remapped.cli("rm", name)
    assert ids[""] == ids["host"]
    assert {p: tree(p) for p in layers} == layers


def test_build_runs_its_steps_remapped_and_its_layer_has_the_image_ids(remapped, tmp_path):
    """A RUN step is a container like any other: remapped, and what it writes is the image's
    (the ids it sees), not the host's, in the layer."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM bb\nRUN touch /made && mkdir /d && busybox chown 5:6 /d && cat /proc/self/uid_map > /map\n")
    remapped.cli("build", "-t", "remapbuilt", str(ctx))
    out = remapped.cli("run", "--rm", "--userns", "host", "--network", "none", "remapbuilt", "sh", "-c",
                       "stat -c '%u:%g' /made /d; cat /map").stdout.decode().split()
    assert out == ["0:0", "5:6", "0", str(remapped.uid), str(remapped.size)]


def test_export_of_a_running_remapped_container(remapped, tmp_path):
    """Its root is mounted in its own namespace only: export reads a read-only overlay of its
    upper dir and layers, with the image's ids."""
    import tarfile

    cid = remapped.cli("run", "-d", "--network", "none", "bb", "sleep", "60").stdout.decode().strip()
    try:
        remapped.cli("exec", cid, "sh", "-c", "echo hi > /written && busybox chown 5:6 /written")
        out = tmp_path / "c.tar"
        remapped.cli("export", "-o", str(out), cid)
        with tarfile.open(out) as t:
            names = {m.name.lstrip("./").rstrip("/"): m for m in t.getmembers()}
        assert (names["written"].uid, names["written"].gid, names["written"].size) == (5, 6, 3)
        assert names["bin/busybox"].uid == 0 and "proc" in names
        assert _mounts_under(remapped.root) == []  # the view is gone; the store is not mounted
    finally:
        remapped.cli("rm", "-f", cid)


def test_userns_auto_ranges_never_overlap(remapped):
    proc = remapped.cli("create", "--userns", "auto", "bb", check=False)
    assert proc.returncode != 0 and b'cannot find mappings for user "containers"' in proc.stderr
    assert remapped.cli("ps", "-aq").stdout == b""  # nothing made
    pool = (1000000, 4000000)
    for name in ("subuid", "subgid"):  # (put back by etc_ids)
        with open(Path("/etc") / name, "a") as f:
            f.write(f"containers:{pool[0]}:{pool[1]}\n")
    ids = []
    for i in range(50):
        mode = "auto" if i % 2 else "auto:size=4096"
        ids.append(remapped.cli("run", "-d", "--userns", mode, "--network", "none", "bb", "sleep", "60")
                   .stdout.decode().strip())
    spans = []
    for i, cid in enumerate(ids):
        pid = int(remapped.cli("inspect", "-f", "{{.State.Pid}}", cid).stdout)
        uid_map = [int(x) for x in Path(f"/proc/{pid}/uid_map").read_text().split()]
        gid_map = [int(x) for x in Path(f"/proc/{pid}/gid_map").read_text().split()]
        size = 65536 if i % 2 else 4096
        assert uid_map[0] == 0 and uid_map[2] == size and gid_map[0] == 0 and gid_map[2] == size
        assert _host_ids(pid) == (uid_map[1], gid_map[1])
        assert pool[0] <= uid_map[1] and uid_map[1] + size <= pool[0] + pool[1]
        spans.append((uid_map[1], size))
    spans.sort()
    for (a, n), (b, _) in zip(spans, spans[1:]):
        assert a + n <= b, "two containers share host ids"
    # a range is the container's for its life: the same after a restart
    before = Path(f"/proc/{int(remapped.cli('inspect', '-f', '{{.State.Pid}}', ids[1]).stdout)}/uid_map").read_text()
    remapped.cli("restart", "-t", "0", ids[1])
    after = Path(f"/proc/{int(remapped.cli('inspect', '-f', '{{.State.Pid}}', ids[1]).stdout)}/uid_map").read_text()
    assert before == after
    remapped.cli("rm", "-f", *ids)
    # and free again once it is gone
    cid = remapped.cli("run", "-d", "--userns", "auto", "--network", "none", "bb", "sleep", "60").stdout.decode().strip()
    pid = int(remapped.cli("inspect", "-f", "{{.State.Pid}}", cid).stdout)
    assert Path(f"/proc/{pid}/uid_map").read_text().split()[1] == str(pool[0])
    remapped.cli("rm", "-f", cid)


def test_a_data_root_the_remapped_root_cannot_reach_is_a_clear_error(tmp_path, rootfs_tar, etc_ids):
    """pytest's directories are 0700: a store under one is out of the remapped root's reach."""
    run = Path(tempfile.mkdtemp(prefix="dyrun-", dir="/tmp"))
    d = Remapped(tmp_path / "root", run, ("--userns-remap", "default"))
    try:
        d.start()
        d.cli("import", str(rootfs_tar), "bb")
        proc = d.cli("run", "--network", "none", "bb", "true", check=False)
        assert proc.returncode == 125
        err = proc.stderr.decode()
        assert "cannot reach the data root" in err and "needs o+x" in err and len(err.splitlines()) == 1, err
        assert _mounts_under(tmp_path) == []
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
        stop_daemon(run, tmp_path / "root")
        shutil.rmtree(run, ignore_errors=True)


def test_isolation_holds_under_remapping(remapped):
    """The same checks as tests/test_containers.py's isolation test, in a remapped container:
    capabilities, seccomp, masked and read-only paths, no mount, its own pid and net namespaces."""
    script = ("echo pid1=$(cat /proc/1/comm); grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
              "cat /proc/kcore >/dev/null 2>&1 && echo kcore-readable; "
              "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo proc-sys-writable; "
              "touch /sys/x 2>/dev/null && echo sys-writable; "
              "busybox mount -t tmpfs none /tmp 2>/dev/null && echo mounted; "
              "echo nets=$(grep -c : /proc/net/dev)")
    out = remapped.cli("run", "--rm", "--network", "none", "bb", "sh", "-c", script).stdout.decode().splitlines()
    assert out[0] == "pid1=sh"
    assert out[1:4] == ["CapEff:\t00000000a80425fb", "NoNewPrivs:\t0", "Seccomp:\t2"]
    assert out[4:] == ["nets=1"]  # (lo alone)
