"""Fixtures for the runtime tests: the dockyard-runtime binary, runc, Docker-like bundles.

Every container a test makes is deleted (``delete -f``) when the test ends, pass or fail; the
cgroup parent the bundles use is removed at the end of the session, and each test checks it
left no mount behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bundle import docker_config, find_binary, write_bundle

REPO = Path(__file__).resolve().parents[2]
CG_PARENT = f"dockyard-pytest-{os.getpid()}"


@pytest.fixture(scope="session")
def runtime_bin() -> Path:
    if os.geteuid() != 0:
        pytest.skip("the runtime tests need root (namespaces, mounts, cgroups)")
    exe = find_binary(REPO)
    if exe is None:
        cargo = shutil.which("cargo")
        if cargo is None:
            pytest.skip("dockyard-runtime is not built and cargo is missing")
        subprocess.run([cargo, "build", "-p", "dockyard-runtime", "--release"], cwd=REPO, check=True, timeout=1800)
        exe = find_binary(REPO)
    assert exe is not None
    return exe


@pytest.fixture(scope="session", autouse=True)
def _cgroup_parent_cleanup():
    yield
    for d in Path("/sys/fs/cgroup").glob(f"*/{CG_PARENT}"):
        for sub in sorted(d.glob("*/"), key=lambda p: len(str(p)), reverse=True):
            try:
                sub.rmdir()
            except OSError:
                pass
        try:
            d.rmdir()
        except OSError:
            pass


class Runtime:
    """One OCI runtime binary with a private state root; remembers the containers it made."""

    def __init__(self, argv: list[str], root: Path, name: str) -> None:
        self.argv = argv + ["--root", str(root)]
        self.root = root
        self.name = name
        self.ids: list[str] = []

    def __call__(self, *args: str, timeout: float = 60, input: bytes | None = None, check: bool = False) -> subprocess.CompletedProcess:
        # Files, not pipes: a detached container (run -d, create) inherits our stdout and
        # would keep a pipe open long after this command returns.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = subprocess.run(self.argv + list(args), stdout=out, stderr=err, timeout=timeout,
                               input=input, stdin=None if input is not None else subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read(), err.read()
        if check and p.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(args)} failed ({p.returncode}): {p.stderr.decode()}")
        return p

    def track(self, cid: str) -> str:
        self.ids.append(cid)
        return cid

    def run(self, bundle: Path, cid: str, timeout: float = 60) -> subprocess.CompletedProcess:
        self.track(cid)
        return self("run", "--bundle", str(bundle), cid, timeout=timeout, input=b"")

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def state(self, cid: str) -> dict:
        p = self("state", cid, check=True)
        return json.loads(p.stdout)

    def cleanup(self) -> None:
        for cid in self.ids:
            self("delete", "-f", cid, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(str(path))]


@pytest.fixture
def dy(runtime_bin: Path, tmp_path: Path):
    rt = Runtime([str(runtime_bin)], tmp_path / "dy-state", "dockyard-runtime")
    try:
        yield rt
    finally:
        rt.cleanup()
        left = _mounts_under(tmp_path)
        for m in sorted(left, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], check=False)
        assert not left, f"mounts left behind: {left}"


@pytest.fixture
def runc(tmp_path: Path):
    exe = shutil.which("runc")
    if exe is None:
        pytest.skip("runc is not installed")
    rt = Runtime([exe], tmp_path / "runc-state", "runc")
    try:
        yield rt
    finally:
        rt.cleanup()


@pytest.fixture
def make_bundle(tmp_path: Path, rootfs: Path):
    """make_bundle(name, args, **docker_config kwargs) -> bundle dir (own cgroup path)."""

    def make(name: str, args: list[str], **kw) -> Path:
        cfg = docker_config(args, cgroups_path=f"/{CG_PARENT}/{tmp_path.name}-{name}", **kw)
        return write_bundle(tmp_path / "bundles" / name, rootfs, cfg)

    return make


def cgroup_dirs(bundle: Path) -> list[Path]:
    path = json.loads((bundle / "config.json").read_text())["linux"]["cgroupsPath"].lstrip("/")
    return [d / path for d in Path("/sys/fs/cgroup").iterdir() if (d / path).exists()]
