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
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from support import RootlessUser, Served, user_interpreter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create the test's user")

@pytest.fixture
def user(rootfs_tar):
    if not (shutil.which("useradd") and shutil.which("userdel")):
        pytest.skip("needs useradd and userdel (Debian's passwd)")
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        pytest.skip("needs newuidmap and newgidmap (Debian's uidmap)")
    u = RootlessUser()
    try:
        u.python = user_interpreter(u.env, u.uid, u.gid)
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

    # the same isolation as a rootful container's: docker's capabilities, seccomp, masked
    # paths, no mount, its own pid namespace
    got = u.dy("run", "--rm", "bb", "sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status; "
               "wc -c < /proc/timer_list; mount -t tmpfs none /mnt 2>/dev/null && echo mounted; "
               "ls /proc | grep -c '^[0-9]'").stdout.decode().split()
    assert got[:4] == ["CapEff:", "00000000a80425fb", "Seccomp:", "2"], got
    assert got[4] == "0" and "mounted" not in got and int(got[-1]) <= 3, got

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
        # a `run` of an image that is not local pulls it first, as docker's does
        u.dy("rmi", name)
        ran = u.dy("run", "--rm", name, "cat", "/built")
        assert ran.stdout == b"built\n" and f"Unable to find image '{name}' locally".encode() in ran.stderr, ran.stderr
    finally:
        reg.stop()

    # the docker CLI, run by the same user, drives the rootless daemon (its socket is the user's)
    if shutil.which("docker"):
        sock = u.run_dir / "dockyard" / "dockyard.sock"
        listed = subprocess.run(["docker", "-H", f"unix://{sock}", "images", "--format", "{{.Repository}}"],
                                env=u.env, user=u.uid, group=u.gid, extra_groups=[], capture_output=True,
                                cwd=str(u.home), timeout=60)
        assert listed.returncode == 0 and b"bb" in listed.stdout.split(), listed.stderr
    # and docker-py (here from root's side of the same socket)
    try:
        import docker
    except ImportError:
        docker = None
    if docker is not None:
        client = docker.DockerClient(base_url=f"unix://{u.run_dir / 'dockyard' / 'dockyard.sock'}")
        try:
            assert client.containers.run("bb", ["echo", "from docker-py"], remove=True) == b"from docker-py\n"
            assert client.info()["SecurityOptions"] and "name=rootless" in client.info()["SecurityOptions"]
        finally:
            client.close()

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
