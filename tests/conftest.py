"""Shared fixtures: a private engine root per test, a busybox rootfs, and real peers.

Everything a fixture makes it removes, also when the test fails.  Tests that need root or a
peer program check for it and skip with the reason.  Plain helpers are in support.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import (  # noqa: E402
    Dockerd, Served, is_root, make_busybox_rootfs, need, stop_daemon, tar_dir, tempfile_dir,
)


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


def pytest_sessionfinish(session, exitstatus):  # noqa: ANN001, ARG001
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
