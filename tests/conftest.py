"""Shared fixtures: a private engine root per test, a busybox rootfs, and real peers.

Everything a fixture makes it removes, also when the test fails.  Tests that need root or a
peer program check for it and skip with the reason.  Plain helpers are in support.py.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import (
    Dockerd, Served, is_root, make_busybox_rootfs, need, stop_daemon, tar_dir, tempfile_dir,
)


@pytest.fixture(scope="session", autouse=True)
def private_run_dir():
    """$DOCKYARD_RUN for the session, unless the caller set one: in-process engines (the
    ``engine`` fixture, builds) and every process started with this environment keep their
    runtime state there, not in the host daemon's /run/dockyard.  Removed at the end, unless
    something is still mounted beneath it."""
    import tempfile

    if os.environ.get("DOCKYARD_RUN"):
        yield
        return
    run_dir = tempfile.mkdtemp(prefix="dyrun-", dir="/tmp")  # short: unix socket paths are limited
    os.environ["DOCKYARD_RUN"] = run_dir
    try:
        yield
    finally:
        os.environ.pop("DOCKYARD_RUN", None)
        _remove_unless_mounted(run_dir)


@pytest.fixture(scope="session", autouse=True)
def tmp_paths_go(request, tmp_path_factory):
    """pytest keeps the tmp_path dirs of the last three sessions (2 GB a session here): a session
    in which no test failed removes its own at the end.  Not test by test (pytest's retention
    policy "failed"): on an ext4 without a journal, as here, every inode made soon after many
    were deleted nearby is slower to make, and that made test_build 8% slower."""
    yield
    if request.session.testsfailed == 0:
        _remove_unless_mounted(str(tmp_path_factory.getbasetemp()))


def _remove_unless_mounted(path: str) -> None:
    """Remove the tree at ``path``, unless something is mounted beneath it: a leak, which stays
    visible, and whose files (perhaps the host's, through a bind mount) are not deleted."""
    import shutil

    with open("/proc/self/mountinfo") as f:
        if any(line.split()[4].startswith(path + "/") for line in f):
            return
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def engine(tmp_path: Path):
    from dockyard import Engine

    eng = Engine(tmp_path / "root")
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return make_busybox_rootfs(tmp_path / "rootfs")


@pytest.fixture
def rootfs_tar(tmp_path: Path, rootfs: Path) -> Path:
    return tar_dir(rootfs, tmp_path / "rootfs.tar")


@pytest.fixture
def cli(tmp_path: Path):
    """Run the real ``dockyard`` command (a subprocess) against a private root and run dir: the
    first command starts the root's daemon on ``run/dockyard.sock``; teardown stops it and
    removes any container left behind."""
    import sys

    import shutil
    import tempfile

    root = tmp_path / "cli-root"
    run_dir = Path(tempfile.mkdtemp(prefix="dyrun-", dir="/tmp"))  # short: unix socket paths are limited
    exe = Path(sys.executable).with_name("dockyard")
    env = dict(os.environ, DOCKYARD_ROOT=str(root), DOCKYARD_RUN=str(run_dir))
    env.pop("DOCKYARD_HOST", None)

    def run(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "import sys; from dockyard.cli import main; sys.exit(main())"]
        proc = subprocess.run(cmd + list(args), input=input, capture_output=True, env=env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode()}")
        return proc

    run.root = root  # type: ignore[attr-defined]
    run.run_dir = run_dir  # type: ignore[attr-defined]
    run.env = env  # type: ignore[attr-defined]
    try:
        if is_root():
            # started here rather than by the first command, so no test sees its notice
            from dockyard.cli.connect import start_daemon

            start_daemon(str(run_dir / "dockyard.sock"), str(root), announce=False)
        yield run
    finally:
        stop_daemon(run_dir, root)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory):
    """A real dockerd on a private socket and data root (bridge and iptables off)."""
    if not is_root():
        pytest.skip("dockerd needs root")
    need("dockerd")
    need("docker")
    d = Dockerd(Path(tempfile_dir()))
    try:
        d.start()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="session")
def docker_busybox(dockerd, tmp_path_factory) -> str:
    """A busybox image inside the test dockerd, imported from our own rootfs."""
    work = tmp_path_factory.mktemp("dbb")
    tar = tar_dir(make_busybox_rootfs(work / "rootfs"), work / "bb.tar")
    dockerd.docker("import", "-c", 'CMD ["/bin/sh"]', str(tar), "dybusybox:base")
    return "dybusybox:base"


@pytest.fixture(autouse=True)
def _no_docker_hub(monkeypatch):
    """Tests never reach a registry outside this machine: an accidental Docker Hub pull (a
    typo'd base image in a build, say) goes to a closed loopback port and fails at once."""
    if "DOCKYARD_HUB_ENDPOINT" not in os.environ:
        monkeypatch.setenv("DOCKYARD_HUB_ENDPOINT", "http://127.0.0.1:1")


@pytest.fixture
def serve(tmp_path):
    """Start dockyard registry servers (``serve(**options)``); all are stopped at the end."""
    started: list[Served] = []

    def start(**options) -> Served:
        s = Served(tmp_path / f"registry{len(started)}", **options)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


# -- the host is left as it was ------------------------------------------------------------------------

_TEST_LINK = ("dy", "veth")  # dockyard's bridges and veths (dyb, dyv), test dockerds' (dyt), docker's
_TEST_MOUNT = ("/tmp/", "/var/tmp/", "/run/netns/", "/run/dockyard", "/run/docker/")


def _host_state() -> dict[str, collections.Counter]:
    """Network links, mounts (point and type) and iptables rules (no counters) of the host."""
    import shutil

    state: dict[str, collections.Counter] = {}
    state["link"] = collections.Counter(os.listdir("/sys/class/net"))
    with open("/proc/self/mountinfo") as f:
        state["mount"] = collections.Counter(
            f"{line.split()[4]} ({line.split(' - ')[1].split()[0]})" for line in f if " - " in line)
    rules: collections.Counter = collections.Counter()
    save = shutil.which("iptables-save")
    if save and is_root():
        out = subprocess.run([save], capture_output=True, text=True).stdout
        table = ""
        for line in out.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                rules[f"{table} {line.split()[0]}"] += 1  # a chain, without policy counters
            elif line.startswith("-A"):
                rules[f"{table} {line}"] += 1
    state["rule"] = rules
    return state


def _made_by_tests(kind: str, item: str) -> bool:
    if kind == "link":
        return item.startswith(_TEST_LINK)
    if kind == "mount":
        return item.startswith(_TEST_MOUNT) or "/pytest-of-" in item
    return "DOCKYARD" in item or " dy" in item or "10.2" in item


def _dockyard_skeleton(item: str) -> bool:
    """dockyard's chains and the jumps into them stay once made, as docker's DOCKER chains do:
    not a leak (a rule naming one bridge, veth or address is)."""
    import re

    if '--comment "dockyard bridges"' in item:  # firewall.py's accepts: they go with the last network
        return True
    return "DOCKYARD" in item and not re.search(r"dy[bvt][0-9a-f]|\b(?!127\.0\.0\.0/8)\d+\.\d+\.\d+\.\d+", item)


def _other_sessions() -> list[int]:
    """Other pytest processes on this machine (engineers share it): what they make and remove
    while this session runs is not this session's doing."""
    me, out = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"pytest") or a == b"pytest" for a in argv[:4]) or b"pytest" in argv[1:3]:
            out.append(int(entry.name))
    return out


@pytest.fixture(scope="session", autouse=True)
def _host_left_alone(tmp_path_factory):
    """After the session the host has every link, mount and firewall rule it had before (a
    test dockerd once deleted the host's docker0), and nothing more.  With other pytest
    sessions running alongside, only what is surely the host's own (not test-made names) is
    checked for removal, and only mounts under this session's directory for leaks."""
    before = _host_state()
    alone = not _other_sessions()
    yield
    after = _host_state()
    alone = alone and not _other_sessions()
    base = str(tmp_path_factory.getbasetemp())
    problems = []
    for kind in before:
        gone = before[kind] - after[kind]
        new = after[kind] - before[kind]
        for item in gone:
            if alone or not _made_by_tests(kind, item):
                problems.append(f"removed {kind}: {item}")
        for item in new:
            if kind == "rule" and _dockyard_skeleton(item):
                continue
            if alone or (kind == "mount" and item.startswith(base)):
                problems.append(f"left {kind}: {item}")
    if problems:
        pytest.fail("the test session changed the host:\n  " + "\n  ".join(sorted(problems)), pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    """A daemon that a test's CLI started and nothing stopped is a leak: stop it, and say so.
    Only this session's (their store is under its temporary directory): another pytest session
    may be running beside this one."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or getattr(factory, "_basetemp", None) is None:
        return
    base = str(factory.getbasetemp()).encode()
    leaked = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if b"daemon" in argv and any(a.endswith(b"dockyard") or b"dockyard.cli" in a for a in argv) and any(
                e.startswith(b"DOCKYARD_ROOT=" + base) for e in environ):
            leaked.append(int(entry.name))
            try:
                os.kill(int(entry.name), 9)
            except OSError:
                pass
    if leaked:
        sys.stderr.write(f"\nconftest: stopped {len(leaked)} leaked dockyard daemon(s): {leaked}\n")
