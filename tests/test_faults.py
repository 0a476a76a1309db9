"""Faults a user meets for real: a container that fills the store's disk, and a daemon killed
in the middle of a start.  Each test runs a private daemon (started and killed here, by pid)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from support import make_busybox_rootfs, needs_root, stop_daemon, tar_dir


def runtime_available() -> bool:
    try:
        from dockyard.engine.runtime import binary

        binary()
        return True
    except Exception:
        return False


pytestmark = [needs_root, pytest.mark.skipif(not runtime_available(), reason="dockyard-runtime is not built")]

EXE = Path(sys.executable).with_name("dockyard")


class Daemon:
    """A private daemon on ``root`` and ``run``: the CLI against it, and its pid to kill."""

    def __init__(self, root: Path, run: Path) -> None:
        self.root, self.run = root, run
        self.env = dict(os.environ, DOCKYARD_ROOT=str(root), DOCKYARD_RUN=str(run))
        self.env.pop("DOCKYARD_HOST", None)

    def start(self) -> int:
        from dockyard.cli.connect import start_daemon

        # A daemon killed while forking a runtime command leaves, for a moment, a child that has
        # not closed the listening socket yet (it accepts connections nobody serves): retry.
        deadline = time.monotonic() + 10
        while True:
            self._pid = start_daemon(str(self.run / "dockyard.sock"), str(self.root), announce=False)
            if self._pid > 1:
                return self._pid
            assert time.monotonic() < deadline, "another process holds the daemon's socket"
            time.sleep(0.05)

    def pid(self) -> int:
        return self._pid

    def __call__(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(EXE), *args], capture_output=True, env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode()}")
        return proc

    def inspect(self, ref: str) -> dict:
        return json.loads(self("inspect", ref).stdout)[0]

    def log_tracebacks(self) -> int:
        try:
            return (self.run / "daemon.log").read_text(errors="replace").count("Traceback")
        except OSError:
            return 0


@pytest.fixture
def daemon(tmp_path, monkeypatch):
    """Yields a function making a :class:`Daemon` on a given root (started); every daemon is
    stopped and its containers removed at the end, whatever happens."""
    made: list[Daemon] = []

    def make(root: Path) -> Daemon:
        run = Path(tempfile.mkdtemp(prefix="dyflt-", dir="/tmp"))  # short: unix socket paths
        d = Daemon(root, run)
        made.append(d)
        monkeypatch.setenv("DOCKYARD_RUN", str(run))  # for stop_daemon's in-process cleanup
        d.start()
        return d

    try:
        yield make
    finally:
        import shutil

        for d in made:
            stop_daemon(d.run, d.root)
            shutil.rmtree(d.run, ignore_errors=True)


def busybox_tar(tmp_path: Path) -> Path:
    rootfs = make_busybox_rootfs(tmp_path / "rootfs")
    (rootfs / "bin" / "dd").symlink_to("busybox")
    return tar_dir(rootfs, tmp_path / "bb.tar")


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bfree * st.f_frsize


# -- a full disk ------------------------------------------------------------------------------------

@pytest.fixture
def tmpfs_store(tmp_path):
    """A 64 MB tmpfs for a store root; unmounted at the end (set up before ``daemon``, so torn
    down after the daemon that holds files open on it)."""
    store = tmp_path / "store"
    store.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(store)], check=True)
    try:
        yield store
    finally:
        if subprocess.run(["umount", str(store)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(store)], check=False)


def test_a_container_filling_the_store_wedges_nothing(tmp_path, tmpfs_store, daemon):
    store = tmpfs_store
    dy = daemon(store / "root")
    dy("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tar(tmp_path)), "bb")
    # exits while the disk is full: its exit status cannot go to the store
    dy("run", "-d", "--name", "later", "bb", "sh", "-c", "sleep 2; exit 3")
    proc = dy("run", "--name", "fill", "bb", "dd", "if=/dev/zero", "of=/fill", "bs=1M", check=False)
    assert b"No space left on device" in proc.stderr
    assert proc.returncode == 1  # busybox dd's own status, not 255
    assert _free(store) < 8 << 20, "the container did not fill the store"
    assert dy.inspect("fill")["State"]["ExitCode"] == 1
    assert dy("wait", "later", timeout=30).stdout.strip() == b"3"

    # reads work; the log does not grow by a traceback per second
    before = dy.log_tracebacks()
    for _ in range(3):
        assert b"fill" in dy("ps", "-a").stdout
        assert dy.inspect("later")["State"]["ExitCode"] == 3
        time.sleep(1)
    assert dy.log_tracebacks() == before <= 1

    # freeing space works on the full disk
    dy("rmi", "-f", "bb")
    dy("image", "prune", "-af")
    dy("rm", "-f", "fill")
    assert _free(store) > 40 << 20
    state = dy.inspect("later")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 3)
    dy("rm", "-f", "later")
    dy("image", "prune", "-af")
    assert dy("ps", "-aq").stdout == b"" and dy("images", "-q").stdout == b""
    assert dy.log_tracebacks() <= 1


def _wait_full(store: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while _free(store) >= 1 << 20:
        assert time.monotonic() < deadline, "the container did not fill the store"
        time.sleep(0.05)


def test_an_exit_the_full_disk_cannot_record_is_recorded_once_space_returns(tmp_path, tmpfs_store, daemon):
    """The filler eats the database's reserve too (it is handed out at the first transaction on
    the full disk): an exit then cannot be recorded.  Reads still show it, the log says so once,
    and the exit is recorded, with its own code, once ``rm -f`` frees the space."""
    store = tmpfs_store
    dy = daemon(store / "root")
    dy("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tar(tmp_path)), "bb")
    dy("run", "-d", "--name", "later", "bb", "sh", "-c", "sleep 6; exit 3")
    dy("run", "-d", "--name", "hog", "bb", "sh", "-c",
       "dd if=/dev/zero of=/a bs=1M; sleep 2; dd if=/dev/zero of=/b bs=1M; exec sleep 1000")
    _wait_full(store)
    dy("rename", "hog", "hog2")  # a transaction on the full disk: the reserve is released
    time.sleep(0.5)
    _wait_full(store)  # ... and eaten by the second dd
    assert dy("wait", "later", timeout=30).stdout.strip() == b"3"
    for _ in range(3):
        state = dy.inspect("later")["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 3)
        time.sleep(0.5)
    log = (dy.run / "daemon.log").read_text(errors="replace")
    assert log.count("cannot be recorded yet") == 1, log[-2000:]
    assert dy.log_tracebacks() == 0

    dy("rm", "-f", "hog2")
    assert _free(store) > 40 << 20
    state = dy.inspect("later")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 3)
    # recorded in the store itself now, not only shown
    import sqlite3

    db = sqlite3.connect(f"file:{store / 'root' / 'state.db'}?mode=ro", uri=True)
    try:
        recorded = json.loads(db.execute("SELECT state FROM containers WHERE name='later'").fetchone()[0])
    finally:
        db.close()
    assert (recorded["Status"], recorded["ExitCode"], recorded["Running"]) == ("exited", 3, False)
    assert not list((dy.run / "exits").iterdir())  # the fallback exit file is gone once recorded
    dy("rm", "-f", "later")


# -- a daemon killed during a start -------------------------------------------------------------------

def _post(sock: Path, path: str) -> socket.socket:
    """Send a request and return at once (the socket stays open: the daemon is to die with it)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(sock))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n".encode())
    return s


def _supervisors(cid: str) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"shim" in argv and cid.encode() in argv:
            out.append(int(entry.name))
    return out


def _local_addresses(pid: int) -> set[str]:
    """The IPv4 addresses configured in the network namespace of ``pid`` (fib_trie's /32 host
    LOCAL entries), loopback left out."""
    try:
        lines = Path(f"/proc/{pid}/net/fib_trie").read_text().splitlines()
    except OSError:
        return set()
    out = set()
    for prev, line in zip(lines, lines[1:]):
        if "/32 host LOCAL" in line:
            addr = prev.strip().split()[-1]
            if not addr.startswith("127."):
                out.add(addr)
    return out


def _cgroups(cid: str) -> list[str]:
    base = Path("/sys/fs/cgroup")
    found = [str(p) for p in base.glob(f"*/dockyard/{cid}")]
    if (base / "dockyard" / cid).exists():
        found.append(str(base / "dockyard" / cid))
    return found


def _veths(cid: str) -> list[str]:
    return [n for n in os.listdir("/sys/class/net") if n.startswith(f"dyv{cid[:10]}")]


def _gone_within(check, seconds: float = 5.0) -> bool:
    """The kernel destroys an unbound namespace (and its veth) off the caller's path."""
    deadline = time.monotonic() + seconds
    while check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _check_reality(dy: Daemon) -> None:
    ids = dy("ps", "-aq", "--no-trunc").stdout.decode().split()
    seen_ips: dict[str, str] = {}
    for cid in ids:
        info = dy.inspect(cid)
        state = info["State"]
        ip = info["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        if state["Running"]:
            assert state["Pid"] and os.path.exists(f"/proc/{state['Pid']}"), cid
            assert _supervisors(cid), f"{cid[:12]} runs without its supervisor"
            assert ip and _local_addresses(state["Pid"]) == {ip}, (cid[:12], ip, _local_addresses(state["Pid"]))
            assert ip not in seen_ips, f"{cid[:12]} and {seen_ips[ip][:12]} share {ip}"
            seen_ips[ip] = cid
        else:
            assert not _supervisors(cid), f"{cid[:12]} is {state['Status']} but its supervisor runs"
            assert not (dy.run / "runtime" / cid).exists(), f"{cid[:12]}: runtime state left"
            assert not (dy.run / "netns" / cid[:32]).exists(), f"{cid[:12]}: network namespace left"
            assert not os.path.ismount(dy.root / "containers" / cid / "bundle" / "rootfs")
            assert ip == "", f"{cid[:12]} is {state['Status']} but holds {ip}"
            assert _gone_within(lambda: _veths(cid)), f"{cid[:12]}: veth left"
            assert _gone_within(lambda: _cgroups(cid)), f"{cid[:12]}: cgroups left"


def test_a_daemon_killed_during_a_start_leaves_no_ghost(tmp_path, daemon):
    dy = daemon(tmp_path / "root")
    dy("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tar(tmp_path)), "bb")
    dy("run", "-d", "--name", "first", "bb", "sleep", "1000")  # holds an address throughout
    ids = []
    for delay_ms in (0, 5, 10, 20, 40, 80):
        cid = dy("create", "bb", "sleep", "1000").stdout.decode().strip()
        ids.append(cid)
        pid = dy.pid()
        conn = _post(dy.run / "dockyard.sock", f"/containers/{cid}/start")
        time.sleep(delay_ms / 1000)
        os.kill(pid, signal.SIGKILL)
        conn.close()
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        dy.start()
        _check_reality(dy)
    # each can be started now (no "already exists"), gets an address of its own, and stops
    dy("run", "-d", "--name", "after", "bb", "sleep", "1000")
    for cid in ids:
        if not dy.inspect(cid)["State"]["Running"]:
            dy("start", cid)
    _check_reality(dy)
    dy("stop", "-t", "0", ids[0])
    _check_reality(dy)
    # rm -f leaves nothing behind
    every = dy("ps", "-aq", "--no-trunc").stdout.decode().split()
    dy("rm", "-f", *every)
    for cid in every:
        assert not _supervisors(cid)
        assert not (dy.run / "runtime" / cid).exists()
        assert not (dy.run / "netns" / cid[:32]).exists()
        assert _gone_within(lambda: _veths(cid)), f"{cid[:12]}: veth left"
        assert _gone_within(lambda: _cgroups(cid)), f"{cid[:12]}: cgroups left"
