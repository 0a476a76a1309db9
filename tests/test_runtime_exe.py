"""The runtime's own binary is out of every container's reach (CVE-2019-5736's precondition).

A watcher inside a container stats ``/proc/*/exe`` and every regular-file or directory fd of
every process it can see, over and over, while the test makes runtime processes appear in its
pid namespace: PID 1 of a ``--init`` container (the runtime itself, for the container's whole
life), ``exec``'d processes before their execve (a PATH of many missing directories keeps
them in the runtime's image for a while), and the init of a second container that joins the
watcher's pid namespace, from ``create`` until ``start``. None of them may be the host's
binary (its device and inode), nor may any fd point at it or at the host's state dirs; and
writing through ``/proc/PID/exe`` must fail and leave the host's binary as it was.

The engine runs a copy of the runtime made for the test (``DOCKYARD_RUNTIME``), so a
regression can only damage that copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from support import needs_root

sys.path.insert(0, str(Path(__file__).parent / "runtime"))

from bundle import docker_config, write_bundle


def _binary() -> str | None:
    try:
        from dockyard.engine.runtime import binary

        return binary()
    except Exception:
        return None


pytestmark = [needs_root, pytest.mark.skipif(_binary() is None, reason="dockyard-runtime is not built")]

# The watcher: one `stat` of everything per round; lines that are busybox's own exe, the log
# and the scratch file are dropped, and so is every fd that is not a regular file or a
# directory (pipes, sockets, devices). Each exe line gets the link's text.
WATCH = r"""
bb=$(busybox stat -c '%d:%i' /bin/busybox)
: > /tmp/r; : >> /out/log
skip="-e |$bb| -e |$(busybox stat -c '%d:%i' /out/log)| -e |$(busybox stat -c '%d:%i' /tmp/r)|"
: > /out/ready
while [ ! -e /out/stop ]; do
  busybox stat -L -c '%n|%d:%i|%F' /proc/[0-9]*/exe /proc/[0-9]*/fd/* 2>/dev/null \
    | busybox grep -v $skip | busybox grep -e 'regular' -e 'directory' > /tmp/r
  while IFS='|' read n id t; do
    case $n in */exe) echo "$n|$id|$t|$(busybox readlink $n)";; *) echo "$n|$id|$t|";; esac
  done < /tmp/r >> /out/log
done
"""

# Keeps fd 3 on /proc/$1/exe; once /out/go appears, tries to write through it.
GRAB = r"""
exec 3<"$1" && : > /out/grabbed || { echo "cannot open $1" > /out/result; exit 0; }
while [ ! -e /out/go ]; do busybox sleep 0.05; done
if echo x >> /proc/self/fd/3; then echo wrote > /out/result; else echo refused > /out/result; fi
"""


def devino(p: str | Path) -> str:
    st = os.stat(p)
    return f"{st.st_dev}:{st.st_ino}"


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def read_log(out: Path) -> list[list[str]]:
    try:
        text = (out / "log").read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [line.split("|", 3) for line in text.splitlines() if line.count("|") >= 3]


def runtime_exes(rows: list[list[str]]) -> list[list[str]]:
    """exe lines of a process running the runtime (whatever copy of it)."""
    return [r for r in rows if r[0].endswith("/exe") and "dockyard-runtime" in r[3]]


def wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def check_unreached(rows: list[list[str]], host: dict[str, str]) -> None:
    bad = [r for r in rows if r[1] in host]
    assert not bad, f"a container reached the host's {[host[r[1]] for r in bad]}: {bad[:5]}"
    leaked = [r for r in rows if r[0].endswith("/exe") and r[3].startswith(str(Path(_binary() or "/").parent))]
    assert not leaked, f"a process's exe names the host's binary: {leaked[:5]}"


@pytest.fixture
def runtime_copy(tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the runtime for the engine to run (so that a regression can only
    write to it), before the daemon starts."""
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "dockyard-runtime"
    shutil.copy2(str(_binary()), exe)
    monkeypatch.setenv("DOCKYARD_RUNTIME", str(exe))
    return exe


def host_ids(exe: Path, *dirs: Path) -> dict[str, str]:
    ids = {devino(exe): f"runtime binary {exe}", devino(str(_binary())): f"runtime binary {_binary()}"}
    for d in (exe.parent, Path("/"), *dirs):
        ids[devino(d)] = f"directory {d}"
    return ids


@pytest.fixture
def dy(runtime_copy, cli, rootfs_tar):
    cli("import", "-c", 'CMD ["/bin/sh"]', str(rootfs_tar), "bb")
    yield cli
    left = cli("ps", "-aq").stdout.decode().split()
    if left:
        cli("rm", "-f", *left, check=False)


def test_init_and_exec_never_reach_the_host_binary(dy, runtime_copy, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    before = sha256(runtime_copy)
    host = host_ids(runtime_copy, dy.root, dy.run_dir)
    # --init: PID 1 is the runtime (the shim's fork) for as long as the container runs.
    # CAP_SYS_PTRACE lets the watcher open the exe of an exec'd process that still holds more
    # capabilities than the container (see the other test).
    dy("run", "-d", "--init", "--cap-add", "SYS_PTRACE", "--name", "dyw", "-v", f"{out}:/out", "bb", "sh", "-c", WATCH)
    try:
        wait_for(lambda: (out / "ready").exists(), 30, "the watcher")
        wait_for(lambda: any(r[0] == "/proc/1/exe" for r in runtime_exes(read_log(out))), 30,
                 "the watcher to see PID 1")
        # exec: each process stays in the runtime's image while it looks the command up
        # along 3000 missing directories.
        path = ":".join(f"/no{i}" for i in range(3000)) + ":/bin"
        seen_before = {r[0] for r in read_log(out)}
        for _ in range(12):
            proc = dy("exec", "-e", f"PATH={path}", "dyw", "true", check=False)
            assert proc.returncode == 0, proc.stderr.decode()
        # Writing the runtime through /proc/PID/exe, at once or later through a kept fd.
        proc = dy("exec", "dyw", "sh", "-c",
                  "busybox sha256sum /proc/1/exe; exec 3</proc/1/exe;"
                  " echo x >> /proc/1/exe && echo WROTE1; echo x >> /proc/self/fd/3 && echo WROTE2;"
                  " busybox dd if=/dev/zero of=/proc/1/exe bs=1 count=1 conv=notrunc 2>/dev/null && echo WROTE3;"
                  " true", check=False)
        text = proc.stdout.decode()
        assert "WROTE" not in text, text
        # What PID 1 runs is the runtime, byte for byte, but not the host's file.
        assert text.split()[0] == before, text
    finally:
        (out / "stop").touch()
    dy("wait", "dyw")
    rows = read_log(out)
    dy("rm", "-f", "dyw")
    assert sha256(runtime_copy) == before
    exes = runtime_exes(rows)
    assert any(r[0] == "/proc/1/exe" for r in exes)
    check_unreached(rows, host)
    caught = {r[0] for r in exes} - {"/proc/1/exe"} - seen_before
    print(f"runtime exe sightings: {len(exes)}; exec'd processes caught before their execve: {len(caught)}; "
          f"links: {sorted({r[3] for r in exes})}")


def test_without_ptrace_the_runtime_processes_are_closed(dy):
    """The runtime's processes are not dumpable (as runc's init): with Docker's default
    capabilities, a container cannot open their /proc/PID files at all, even the `--init` PID 1
    whose credentials are its own."""
    dy("run", "-d", "--init", "--name", "dyclosed", "bb", "sleep", "1000")
    try:
        proc = dy("exec", "dyclosed", "sh", "-c",
                  "busybox stat -L /proc/1/exe >/dev/null 2>&1 && echo OPEN-EXE;"
                  " for f in /proc/1/fd/*; do busybox stat -L $f >/dev/null 2>&1 && echo OPEN-FD; done;"
                  " busybox stat -L /proc/1/cwd >/dev/null 2>&1 && echo OPEN-CWD;"
                  " busybox tr '\\0' ' ' < /proc/1/cmdline; echo; busybox stat -L /proc/self/exe >/dev/null && echo SELF-OK",
                  check=False)
    finally:
        dy("rm", "-f", "dyclosed")
    text = proc.stdout.decode()
    assert "OPEN" not in text, text
    # ps still works, and the user's own process (dumpable again after its execve) is its own.
    assert "dockyard-init" in text and "SELF-OK" in text, text


class Rt:
    """The runtime copy with a private state root; every container it made is deleted."""

    def __init__(self, exe: Path, root: Path) -> None:
        self.argv = [str(exe), "--root", str(root)]
        self.root = root
        self.ids: list[str] = []

    def __call__(self, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e:
            p = subprocess.run(self.argv + list(args), stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                               env=dict(os.environ, **(env or {})), timeout=60)
            o.seek(0)
            e.seek(0)
            p.stdout, p.stderr = o.read(), e.read()
        if check and p.returncode != 0:
            raise AssertionError(f"runtime {' '.join(args)} failed ({p.returncode}): {p.stderr.decode()}")
        return p

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid).stdout)


@pytest.fixture
def rt(runtime_copy, tmp_path):
    (tmp_path / "rtroot").mkdir()
    r = Rt(runtime_copy, tmp_path / "rtroot")
    yield r
    for cid in reversed(r.ids):
        r("delete", "-f", cid, check=False)


@pytest.mark.parametrize("clone", ["", "memfd"])
def test_create_start_and_exec_in_a_shared_pid_namespace(rt, runtime_copy, rootfs, tmp_path, clone):
    """The init of a container that joins the watcher's pid namespace is visible there from
    `create` to its execve (it waits for `start` in between): it is never the host's binary.
    Both ways of protecting it: the read-only overlay (default) and the sealed memfd."""
    env = {"DOCKYARD_RUNTIME_CLONE": clone} if clone else {}
    out = tmp_path / "out"
    out.mkdir()
    before = sha256(runtime_copy)
    host = host_ids(runtime_copy, rt.root, tmp_path)
    bind = [{"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind", "rw"]}]
    acfg = docker_config(["sh", "-c", WATCH], mounts_extra=bind)
    # CAP_SYS_PTRACE: the init keeps every capability until its execve, and without it the
    # watcher could not open that init's /proc/PID/exe at all (which proves nothing).
    for k in ("bounding", "effective", "permitted"):
        acfg["process"]["capabilities"][k].append("CAP_SYS_PTRACE")
    a = write_bundle(tmp_path / "a", rootfs, acfg)
    rt.ids.append("dy-exe-a")
    rt("create", "--bundle", str(a), "dy-exe-a", env=env)
    rt("start", "dy-exe-a")
    apid = rt.state("dy-exe-a")["pid"]
    wait_for(lambda: (out / "ready").exists(), 30, "the watcher")
    cfg = docker_config(["true"])
    cfg["linux"]["namespaces"] = [{"type": t} for t in ("mount", "network", "uts", "ipc")] + [
        {"type": "pid", "path": f"/proc/{apid}/ns/pid"}]
    b = write_bundle(tmp_path / "b", rootfs, cfg)
    for i in range(2):
        cid = f"dy-exe-b{i}"
        rt.ids.append(cid)
        seen = {r[0] for r in runtime_exes(read_log(out))}
        rt("create", "--bundle", str(b), cid, env=env)
        wait_for(lambda: {r[0] for r in runtime_exes(read_log(out))} - seen, 30, "the watcher to see the new init")
        if i == 0:
            # CVE-2019-5736 itself: hold the waiting init's exe open, and once it has exec'd
            # and no runtime process is left, reopen it for writing.
            new = sorted({r[0] for r in runtime_exes(read_log(out))} - seen)[0]
            rt("exec", "--detach", "dy-exe-a", "sh", "-c", GRAB, "grab", new, env=env)
            wait_for(lambda: (out / "grabbed").exists() or (out / "result").exists(), 30, "the grabber")
        rt("start", cid)
        wait_for(lambda: rt.state(cid)["status"] == "stopped", 30, f"{cid} to exit")
        rt("delete", cid)
        rt.ids.remove(cid)
    # And exec into the watcher's container directly through the runtime.
    path = ":".join(f"/no{i}" for i in range(3000)) + ":/bin"
    for _ in range(5):
        rt("exec", "--env", f"PATH={path}", "dy-exe-a", "true", env=env)
    (out / "go").touch()
    wait_for(lambda: (out / "result").exists(), 30, "the grabber's attempt")
    assert (out / "result").read_text().split() == ["refused"], (out / "result").read_text()
    (out / "stop").touch()
    wait_for(lambda: rt.state("dy-exe-a")["status"] == "stopped", 30, "the watcher to exit")
    rows = read_log(out)
    exes = runtime_exes(rows)
    assert exes, "the watcher never saw a runtime process"
    check_unreached(rows, host)
    links = {r[3] for r in exes}
    if clone == "memfd":
        assert all("memfd:" in link for link in links), links
    assert sha256(runtime_copy) == before
    print(f"runtime exe sightings: {len(exes)}; links: {sorted(links)}")
