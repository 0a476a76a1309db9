"""dockyard-runtime as the runc of other engines: containerd (through `ctr`, its runc v2 shim)
and podman, each run once with runc and once with dockyard-runtime, outputs compared.

containerd is Debian's, private to the test: its own root, state, sockets and config in a temp
dir, the CRI plugin off; it is stopped by its PID. podman gets its own --root, --runroot and
--tmpdir, cgroupfs, no network. The image for both is a static busybox rootfs: an OCI layout
made with umoci and imported with `ctr image import`, and a tar for `podman import`.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from support import PeerCgroups, PeerDirs, PrivateContainerd, needs_root
from test_oci_conformance import DY, _rootfs

pytestmark = [
    needs_root,
    pytest.mark.skipif(DY is None, reason="dockyard-runtime is not built (cargo build --release -p dockyard-runtime)"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed: nothing to compare with"),
]

IMAGE = "docker.io/library/dybb:latest"


def sh(argv: list[str], timeout: float = 60, tty: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a peer's CLI (SIGKILL on timeout); with tty, under script(1) for a pseudo-terminal."""
    if tty:
        argv = ["script", "-qec", shlex.join(argv), "/dev/null"]
    p = subprocess.run(["timeout", "-s", "KILL", str(int(timeout))] + argv, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, env=env)
    if tty:
        p.stdout = p.stdout.replace("\r\n", "\n")
    return p


def _umount_under(path: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        mps = [line.split()[4] for line in f]
    for mp in sorted((m for m in mps if m.startswith(str(path) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], check=False)


@pytest.fixture(scope="module")
def work():
    d = Path(tempfile.mkdtemp(prefix="dy-peers-"))
    try:
        yield d
    finally:
        _umount_under(d)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def rootfs(work) -> Path:
    return _rootfs(work / "rootfs")


# -- containerd -------------------------------------------------------------------------------------


class Containerd(PrivateContainerd):
    def __init__(self, d: Path) -> None:
        super().__init__(d, "dytest")

    def ctr(self, *args: str, timeout: float = 60, tty: bool = False) -> subprocess.CompletedProcess:
        return sh(["ctr", "--address", str(self.sock), "--namespace", self.namespace] + list(args), timeout=timeout,
                  tty=tty)


@pytest.fixture(scope="module")
def containerd(work, rootfs):
    for prog in ("containerd", "ctr", "containerd-shim-runc-v2", "umoci"):
        if shutil.which(prog) is None:
            pytest.skip(f"{prog} is not installed")
    d = work / "containerd"
    d.mkdir()
    c = Containerd(d)
    try:
        layout = work / "layout"
        for argv in (["umoci", "init", "--layout", str(layout)], ["umoci", "new", "--image", f"{layout}:latest"],
                     ["umoci", "insert", "--image", f"{layout}:latest", str(rootfs), "/"],
                     ["umoci", "config", "--image", f"{layout}:latest", "--config.cmd", "sh"]):
            subprocess.run(argv, check=True, capture_output=True)
        subprocess.run(["tar", "-C", str(layout), "-cf", str(work / "oci.tar"), "."], check=True)
        p = c.ctr("image", "import", "--base-name", "docker.io/library/dybb", str(work / "oci.tar"))
        assert p.returncode == 0, p.stderr
        yield c
    finally:
        c.stop()


def binaries() -> dict[str, str]:
    return {"runc": shutil.which("runc"), "dy": str(DY)}


def norm(s: str) -> str:
    """runc prefixes its errors with "runc create failed: ", dockyard-runtime its stderr lines
    with "dockyard-runtime: " (podman reads the runtime's stderr); the rest must be the same."""
    return s.replace("runc create failed: ", "").replace("runc run failed: ", "").replace("dockyard-runtime: ", "")


def test_ctr_run(containerd):
    out = {}
    for name, exe in binaries().items():
        p = containerd.ctr("run", "--rm", "--runc-binary", exe, IMAGE, f"run-{name}", "sh", "-c",
                           "echo hi; echo x > /dev/null && echo null-ok; id; ls /dev; hostname | wc -c; exit 3")
        out[name] = (p.returncode, p.stdout, p.stderr)
    assert out["dy"] == out["runc"]
    assert out["dy"][0] == 3 and "null-ok" in out["dy"][1]


def test_ctr_run_tty(containerd):
    if shutil.which("script") is None:
        pytest.skip("script(1) is not installed")
    out = {}
    for name, exe in binaries().items():
        p = containerd.ctr("run", "--rm", "-t", "--runc-binary", exe, IMAGE, f"tty-{name}", "sh", "-c",
                           "tty; test -t 0 && echo stdin-tty; ls -l /dev/console | cut -c1; sleep 0.5", tty=True)
        # ctr's copy of the pty can lose what a process prints just before it exits (the sleep)
        out[name] = (p.returncode, [line for line in p.stdout.replace("^@", "").splitlines() if line])
    assert out["dy"] == out["runc"]
    assert out["dy"][1] == ["/dev/pts/0", "stdin-tty", "c"]


def test_ctr_missing_command_fails_create(containerd):
    out = {}
    for name, exe in binaries().items():
        p = containerd.ctr("run", "--rm", "--runc-binary", exe, IMAGE, f"nf-{name}", "/nonexistent")
        out[name] = (p.returncode, norm(p.stderr))
    assert out["dy"] == out["runc"]
    assert 'exec: "/nonexistent": stat /nonexistent: no such file or directory' in out["dy"][1]


def test_ctr_exec_kill_pause_resume_update(containerd):
    seen = {}
    for name, exe in binaries().items():
        cid = f"life-{name}"
        steps = []
        p = containerd.ctr("run", "-d", "--runc-binary", exe, IMAGE, cid, "sleep", "600")
        assert p.returncode == 0, p.stderr
        p = containerd.ctr("task", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo ex $(cat /proc/1/comm); exit 3")
        steps.append(("exec", p.returncode, p.stdout))
        p = containerd.ctr("task", "exec", "--exec-id", "e2", cid, "/nope")
        steps.append(("exec-missing", p.returncode, p.stderr))
        p = containerd.ctr("task", "exec", "-t", "--exec-id", "e3", cid, "sh", "-c", "tty; sleep 0.5", tty=True)
        steps.append(("exec-tty", p.returncode, [line for line in p.stdout.replace("^@", "").splitlines() if line]))
        assert containerd.ctr("task", "pause", cid).returncode == 0
        steps.append(("paused", [line.split()[2] for line in containerd.ctr("task", "ls").stdout.splitlines() if line.startswith(cid + " ")]))
        assert containerd.ctr("task", "resume", cid).returncode == 0
        steps.append(("resumed", [line.split()[2] for line in containerd.ctr("task", "ls").stdout.splitlines() if line.startswith(cid + " ")]))
        p = containerd.ctr("task", "update", "--memory-limit", str(96 * 1024 * 1024), cid)
        steps.append(("update", p.returncode, p.stderr))
        p = containerd.ctr("task", "exec", "--exec-id", "e4", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        steps.append(("limit-visible", p.returncode))
        assert containerd.ctr("task", "kill", "-s", "SIGKILL", cid).returncode == 0
        deadline = time.time() + 20
        status = []
        while time.time() < deadline:
            status = [line.split()[2] for line in containerd.ctr("task", "ls").stdout.splitlines() if line.startswith(cid + " ")]
            if status == ["STOPPED"]:
                break
            time.sleep(0.05)
        steps.append(("killed", status))
        assert containerd.ctr("task", "delete", cid).returncode == 0
        assert containerd.ctr("container", "delete", cid).returncode == 0
        seen[name] = steps
    assert seen["dy"] == seen["runc"]
    assert seen["dy"][0] == ("exec", 3, "ex sleep\n")
    assert ("paused", ["PAUSED"]) in seen["dy"] and ("killed", ["STOPPED"]) in seen["dy"]


# -- podman -----------------------------------------------------------------------------------------


class Podman:
    def __init__(self, d: Path) -> None:
        self.d = d
        self.base = ["podman", "--root", str(d / "root"), "--runroot", str(d / "run"), "--tmpdir", str(d / "tmp"),
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file"]

    def __call__(self, *args: str, timeout: float = 90, tty: bool = False) -> subprocess.CompletedProcess:
        return sh(self.base + list(args), timeout=timeout, tty=tty)

    def run_args(self, exe: str) -> list[str]:
        return ["run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                "--runtime", exe]


@pytest.fixture(scope="module")
def podman(work, rootfs):
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    d = work / "podman"
    d.mkdir()
    cgroups = PeerCgroups("libpod_parent")
    dirs = PeerDirs("/run/runc", "/run/dockyard-runtime")  # podman passes no --root: each runtime's default
    pm = Podman(d)
    try:
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(work / "rootfs.tar"), "."], check=True)
        p = pm("import", str(work / "rootfs.tar"), "dybb:latest")
        assert p.returncode == 0, p.stderr
        yield pm
    finally:
        pm("rm", "-af", "-t", "0")
        pm("rmi", "-af")
        _umount_under(d)
        cgroups.remove_new()
        dirs.remove_new()


def test_podman_run_and_dev_null(podman):
    out = {}
    for name, exe in binaries().items():
        p = podman(*podman.run_args(exe), "dybb", "sh", "-c",
                   "echo hi; echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c; ls /dev; id; exit 5")
        out[name] = (p.returncode, p.stdout, p.stderr)
    assert out["dy"] == out["runc"]
    assert out["dy"][0] == 5 and "null-ok" in out["dy"][1]


def test_podman_run_tty(podman):
    if shutil.which("script") is None:
        pytest.skip("script(1) is not installed")
    out = {}
    for name, exe in binaries().items():
        p = podman(*podman.run_args(exe), "-t", "dybb", "sh", "-c", "tty; test -t 1 && echo out-tty", tty=True)
        out[name] = (p.returncode, [line for line in p.stdout.splitlines() if line])
    assert out["dy"] == out["runc"]
    assert out["dy"][1] == ["/dev/pts/0", "out-tty"]


def test_podman_exec(podman):
    out = {}
    for name, exe in binaries().items():
        cname = f"dyex-{name}"
        base = [a for a in podman.run_args(exe) if a != "--rm"]
        p = podman(*base, "-d", "--name", cname, "dybb", "sleep", "600")
        assert p.returncode == 0, p.stderr
        a = podman("exec", cname, "sh", "-c", "echo ex $(cat /proc/1/comm); echo x > /dev/null && echo null-ok; exit 2")
        b = podman("exec", cname, "/nope")
        out[name] = [(a.returncode, a.stdout), (b.returncode, norm(b.stderr.replace(exe, "RUNTIME")))]
        podman("rm", "-f", "-t", "0", cname)
    assert out["dy"] == out["runc"]
    assert out["dy"][0] == (2, "ex sleep\nnull-ok\n")


def test_podman_missing_command(podman):
    out = {}
    for name, exe in binaries().items():
        p = podman(*podman.run_args(exe), "dybb", "/nonexistent")
        out[name] = (p.returncode, norm(p.stderr.replace(exe, "RUNTIME")))
    assert out["dy"] == out["runc"]
    assert out["dy"][0] == 127
    assert 'exec: "/nonexistent": stat /nonexistent: no such file or directory' in out["dy"][1]


# -- docker -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_dy(dockerd, docker_busybox):
    """The session's dockerd with `dockyard` added to its runtimes (daemon.json + SIGHUP, which
    dockerd reloads runtimes on), as `dockerd --add-runtime dockyard=PATH` would."""
    conf = dockerd.base / "daemon.json"
    old = conf.read_text()
    conf.write_text(json.dumps({"runtimes": {"dockyard": {"path": str(DY)}}}) + "\n")
    dockerd.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 30
    while "dockyard" not in docker(dockerd, "info", "--format", "{{json .Runtimes}}").stdout:
        if time.time() > deadline:
            pytest.fail("dockerd did not pick up the dockyard runtime")
        time.sleep(0.1)
    try:
        yield dockerd
    finally:
        for c in docker(dockerd, "ps", "-aq", "--filter", "label=dy-oci-peers").stdout.split():
            docker(dockerd, "rm", "-f", c)
        conf.write_text(old)
        dockerd.proc.send_signal(signal.SIGHUP)


def docker(d, *args: str, tty: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    return sh(["docker"] + list(args), timeout=timeout, tty=tty, env=d.env)


def test_docker_run_exec_and_errors(docker_dy, docker_busybox):
    out = {}
    for rt in ("runc", "dockyard"):
        steps = []
        p = docker(docker_dy, "run", "--rm", "--runtime", rt, "--network", "none", docker_busybox, "sh", "-c",
                   "echo hi; echo x > /dev/null && echo null-ok; id; ls /dev; cat /proc/1/comm; exit 4")
        steps.append((p.returncode, p.stdout, p.stderr))
        p = docker(docker_dy, "run", "--rm", "-t", "--runtime", rt, "--network", "none", docker_busybox, "sh", "-c",
                   "tty; test -t 0 && echo in-tty", tty=True)
        steps.append((p.returncode, [line for line in p.stdout.splitlines() if line]))
        p = docker(docker_dy, "run", "--rm", "--runtime", rt, "--network", "none", docker_busybox, "/nonexistent")
        steps.append((p.returncode, norm(p.stderr)))
        name = f"dy-oci-peers-{rt}"
        p = docker(docker_dy, "run", "-d", "--label", "dy-oci-peers=1", "--name", name, "--runtime", rt, "--network", "none",
                   docker_busybox, "sleep", "600")
        assert p.returncode == 0, p.stderr
        p = docker(docker_dy, "exec", name, "sh", "-c", "echo ex $(cat /proc/1/comm); exit 2")
        steps.append((p.returncode, p.stdout))
        p = docker(docker_dy, "exec", name, "/nope")  # the CLI prints this one on stdout
        steps.append((p.returncode, norm(p.stdout + p.stderr)))
        steps.append(docker(docker_dy, "pause", name).returncode)
        steps.append(docker(docker_dy, "inspect", "-f", "{{.State.Status}}", name).stdout)
        steps.append(docker(docker_dy, "unpause", name).returncode)
        steps.append(docker(docker_dy, "kill", name).returncode)
        steps.append(docker(docker_dy, "wait", name).stdout)
        docker(docker_dy, "rm", "-f", name)
        out[rt] = steps
    assert out["dockyard"] == out["runc"]
    assert out["dockyard"][0][0] == 4 and "null-ok" in out["dockyard"][0][1]
    assert out["dockyard"][1] == (0, ["/dev/pts/0", "in-tty"])
    assert out["dockyard"][2][0] == 127
    assert 'exec: "/nonexistent": stat /nonexistent: no such file or directory' in out["dockyard"][2][1]
    assert out["dockyard"][3] == (2, "ex sleep\n")
    assert out["dockyard"][4][0] == 126 and 'exec: "/nope": stat /nope: no such file or directory' in out["dockyard"][4][1]
    assert out["dockyard"][6] == "paused\n"
