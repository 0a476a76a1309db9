"""Rootless mode, as a user of it meets it: a user the test creates (with subordinate ids, as
useradd gives them) runs the plain ``dockyard`` CLI, which starts that user's daemon on demand
in ``/tmp/dockyard-run-UID`` with its store in ``~/.local/share/dockyard``; ``run``, ``-v``,
``-p``, ``build``, ``push``/``pull`` against a registry on the host's loopback, a resource limit
refused on cgroup v1, and the daemon's stop leaving no process, mount or file behind.

Needs root (to create the user), newuidmap/newgidmap (Debian's uidmap), unprivileged user
namespaces, and a Python interpreter the user may run (pyenv's live in /root, which the user
cannot enter: Debian's python3 of the same version is used, on the same site-packages)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import site
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from support import Served

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create the test's user")

CLI = "import sys; from dockyard.cli import main; sys.exit(main())"


def _interpreter(env: dict, uid: int, gid: int) -> str | None:
    """An interpreter of this Python version that the user can run with our site-packages."""
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    for cand in (os.path.realpath(sys.executable), f"/usr/bin/python{ver}", f"/usr/local/bin/python{ver}"):
        if not os.path.exists(cand):
            continue
        try:
            probe = subprocess.run([cand, "-c", "import dockyard._native, click, bcrypt"], env=env, user=uid,
                                   group=gid, extra_groups=[], capture_output=True, cwd="/")
        except PermissionError:  # (pyenv's, under /root)
            continue
        if probe.returncode == 0:
            return cand
    return None


class User:
    """A throw-away user with subordinate ids, and the dockyard CLI run as it."""

    def __init__(self) -> None:
        self.name = f"dyrl{os.getpid() % 100000}"
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", self.name], check=True, capture_output=True)
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid, self.home = pw.pw_uid, pw.pw_gid, Path(pw.pw_dir)
        self.run_dir = Path(f"/tmp/dockyard-run-{self.uid}")
        import dockyard
        from dockyard.engine.runtime import binary

        paths = [str(Path(dockyard.__file__).resolve().parent.parent), *site.getsitepackages()]
        self.env = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "PATH": os.environ["PATH"],
                    "PYTHONPATH": os.pathsep.join(paths), "DOCKYARD_RUNTIME": binary(),
                    "PYTHONDONTWRITEBYTECODE": "1"}
        self.python: str | None = None

    def subids(self) -> bool:
        have = [Path(f"/etc/sub{k}id").read_text() if Path(f"/etc/sub{k}id").exists() else "" for k in "ug"]
        return all(any(line.split(":")[0] in (self.name, str(self.uid)) for line in text.splitlines())
                   for text in have)

    def dy(self, *args: str, check: bool = True, timeout: float = 120, input: bytes | None = None):
        proc = subprocess.run([self.python, "-c", CLI, *args], env=self.env, user=self.uid, group=self.gid,
                              extra_groups=[], capture_output=True, cwd=str(self.home), timeout=timeout,
                              input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} failed ({proc.returncode}): "
                                 f"{proc.stderr.decode(errors='replace')}")
        return proc

    def processes(self) -> list[int]:
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid == self.uid and "State:\tZ" not in \
                            Path(f"/proc/{entry}/status").read_text():
                        out.append(int(entry))
                except OSError:
                    pass
        return out

    def stop_daemon(self) -> None:
        """SIGTERM to the daemon the CLI started (the parent, in the host's namespaces), and the
        wait for every process of the user to end (events: a pidfd per process)."""
        import select

        pidfile = self.run_dir / "dockyard" / "rootless.pid"
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            return
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            os.kill(pid, signal.SIGTERM)
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            assert poller.poll(60_000), "the rootless daemon did not stop within 60 s"
        finally:
            os.close(fd)

    def remove(self) -> None:
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _ in range(50):
            if not self.processes():
                break
            time.sleep(0.1)  # (teardown of a failed test only)
        subprocess.run(["userdel", "-r", "-f", self.name], capture_output=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        for k in "ug":  # userdel leaves them on some shadow versions
            f = Path(f"/etc/sub{k}id")
            if f.exists():
                lines = [ln for ln in f.read_text().splitlines(keepends=True) if ln.split(":")[0] != self.name]
                f.write_text("".join(lines))


@pytest.fixture
def user(rootfs_tar):
    if not (shutil.which("useradd") and shutil.which("userdel")):
        pytest.skip("needs useradd and userdel (Debian's passwd)")
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        pytest.skip("needs newuidmap and newgidmap (Debian's uidmap)")
    u = User()
    try:
        u.python = _interpreter(u.env, u.uid, u.gid)
        if u.python is None:
            pytest.skip("no Python interpreter that an unprivileged user may run on these site-packages")
        if not u.subids():
            subprocess.run(["usermod", "--add-subuids", "300000-365535", "--add-subgids", "300000-365535", u.name],
                           check=True, capture_output=True)
        probe = subprocess.run(["unshare", "--user", "true"], user=u.uid, group=u.gid, extra_groups=[],
                               capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"unprivileged user namespaces are off: {probe.stderr.decode().strip()}")
        shutil.copy(rootfs_tar, u.home / "bb.tar")
        os.chown(u.home / "bb.tar", u.uid, u.gid)
        yield u
    finally:
        try:
            u.stop_daemon()
        finally:
            u.remove()


def test_rootless_run_volumes_ports_build_pull(user, tmp_path):
    u = user
    first = u.dy("import", str(u.home / "bb.tar"), "bb")
    assert b"started one" in first.stderr  # the CLI started the user's daemon on demand
    assert (u.home / ".local/share/dockyard/state.db").exists()
    assert (u.run_dir / "dockyard" / "dockyard.sock").exists()

    # root inside is the user outside: the container's process on the host, and its map
    out = u.dy("run", "--rm", "bb", "sh", "-c", "id -u; cat /proc/self/uid_map").stdout.decode().split()
    assert out[0] == "0" and out[1:4] == ["0", str(u.uid), "1"], out
    cid = u.dy("run", "-d", "bb", "sleep", "60").stdout.decode().strip()
    pid = json.loads(u.dy("inspect", cid).stdout)[0]["State"]["Pid"]
    uids = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("Uid:"))
    assert uids.split()[1:] == [str(u.uid)] * 4, uids
    u.dy("rm", "-f", cid)

    # a bind mount and a volume: what the container's root writes is the user's on the host
    data = u.home / "data"
    data.mkdir()
    os.chown(data, u.uid, u.gid)
    u.dy("run", "--rm", "-v", f"{data}:/data", "-v", "vol1:/vol", "bb", "sh", "-c",
         "echo w > /data/new && echo v > /vol/x && cat /vol/x")
    assert (data / "new").read_text() == "w\n" and (data / "new").stat().st_uid == u.uid
    assert u.dy("run", "--rm", "-v", "vol1:/vol", "bb", "cat", "/vol/x").stdout == b"v\n"

    # a published port, reached from the host: the port driver's socket, the helper's relay
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    u.dy("run", "-d", "--name", "web", "-p", f"{port}:80", "bb", "sh", "-c",
         "echo hello-rootless > /index.html && httpd -f -p 80 -h /")
    deadline = time.monotonic() + 10
    while True:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # httpd starts after the run returns: nothing says when it listens
    assert body == b"hello-rootless\n"
    u.dy("rm", "-f", "web")

    # build: RUN and COPY
    ctx = u.home / "ctx"
    ctx.mkdir()
    # (the last RUN makes /d opaque in its layer: overlayfs and the extractor keep that in
    # user.overlay.* xattrs inside a user namespace, or /d/old would show through)
    (ctx / "Dockerfile").write_text("FROM bb\nRUN echo built > /built\nCOPY hello.txt /hello.txt\n"
                                    "RUN mkdir /d && touch /d/old\nRUN rm -rf /d && mkdir /d && touch /d/new\n")
    (ctx / "hello.txt").write_text("hi\n")
    for p in (ctx, ctx / "Dockerfile", ctx / "hello.txt"):
        os.chown(p, u.uid, u.gid)
    u.dy("build", "-t", "bbx", str(ctx))
    assert u.dy("run", "--rm", "bbx", "cat", "/built", "/hello.txt").stdout == b"built\nhi\n"
    assert u.dy("run", "--rm", "bbx", "ls", "/d").stdout == b"new\n"

    # push and pull against a registry on the host's loopback (the daemon's own loopback is
    # another namespace's: its registry connections are made on the host by the port driver)
    reg = Served(tmp_path / "registry")
    try:
        name = f"{reg.addr}/team/bbx:1"
        u.dy("tag", "bbx", name)
        u.dy("push", name)
        u.dy("rmi", name, "bbx")
        pulled = u.dy("pull", name).stdout.decode()
        assert "Downloaded newer image" in pulled, pulled
        assert u.dy("run", "--rm", name, "cat", "/built").stdout == b"built\n"
        assert u.dy("run", "--rm", name, "ls", "/d").stdout == b"new\n"  # (extracted anew: the opaque /d)
    finally:
        reg.stop()

    # cgroup v1: no cgroups for an unprivileged user; a limit is refused in dockerd's words
    info = json.loads(u.dy("info", "--format", "{{json .}}").stdout)
    assert "name=rootless" in info["SecurityOptions"]
    if info["CgroupVersion"] == "1":
        assert info["CgroupDriver"] == "none"
        failed = u.dy("run", "--rm", "--memory", "64m", "bb", "true", check=False)
        assert failed.returncode == 125 and b"rootless-mode without cgroups" in failed.stderr, failed.stderr
        assert u.dy("ps", "-aq").stdout == b""  # (--rm: the container that could not start is gone)

    # the daemon's stop stops its containers: nothing of the user's is left running
    u.dy("run", "-d", "bb", "sleep", "600")
    u.stop_daemon()
    assert u.processes() == []
    with open("/proc/self/mountinfo") as f:
        assert str(u.home) not in f.read()  # its mounts were in its own namespace


def test_rootless_needs_subordinate_ids(user):
    """A user without a range in /etc/subuid gets a one-line error naming the fix."""
    u = user
    for k in "ug":
        f = Path(f"/etc/sub{k}id")
        f.write_text("".join(ln for ln in f.read_text().splitlines(keepends=True) if ln.split(":")[0] != u.name))
    failed = u.dy("ps", check=False)
    assert failed.returncode != 0
    assert b"subordinate ids" in failed.stderr and b"Traceback" not in failed.stderr, failed.stderr
    assert u.processes() == []
