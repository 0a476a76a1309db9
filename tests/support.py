"""Helpers the tests share, imported as ``support`` (the fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import site
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
APPLETS = ("sh", "ls", "cat", "echo", "true", "false", "id", "env", "sleep", "mkdir", "rm", "touch",
           "printf", "hostname", "ps", "top", "wc", "grep", "test", "stat", "chmod")


def is_root() -> bool:
    return os.geteuid() == 0


needs_root = pytest.mark.skipif(not is_root(), reason="needs root (owners, device nodes, overlay)")


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (apt-get install it; .ci/run does)")
    return path


def make_busybox_rootfs(root: Path) -> Path:
    """A tiny real rootfs: static busybox and a few applet links, /etc/passwd and /etc/group."""
    if not Path(BUSYBOX).exists():
        pytest.skip("busybox-static is not installed")
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "tmp").mkdir(mode=0o1777)
    os.chmod(root / "tmp", 0o1777)
    (root / "root").mkdir(mode=0o700)
    return root


def tar_dir(src: Path, dest: Path, compression: str = "") -> Path:
    """A layer tar of ``src`` made by GNU tar (numeric owners, sorted), optionally compressed."""
    args = ["tar", "--numeric-owner", "--sort=name", "-C", str(src), "-cf", str(dest)]
    if compression == "gz":
        args.insert(1, "-z")
    elif compression == "zst":
        args.insert(1, "--zstd")
    subprocess.run(args + ["."], check=True)
    return dest


class PeerCgroups:
    """The cgroup a peer engine makes as the parent of its containers' and leaves behind when it
    stops (dockerd's ``docker``, containerd's namespace, podman's ``libpod_parent`` with its
    ``conmon``), in every hierarchy: what was not there when the test began goes at its end."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.before = set(self._tops())

    def _tops(self) -> list[Path]:
        root = Path("/sys/fs/cgroup")
        return [p for p in (*root.glob(f"*/{self.name}"), root / self.name) if p.is_dir()]

    def remove_new(self) -> None:
        for top in self._tops():
            if top in self.before:
                continue
            _rmdirs([top, *(p for p in top.rglob("*") if p.is_dir())])


class PeerDirs:
    """Directories a peer makes in the host's /run whatever its private paths say (containerd's
    shim: /run/containerd/s, fifo and runc/NAMESPACE; its CRI plugin: /run/netns; runc and
    dockyard-runtime under podman, which gives them no --root: their default roots).  Those
    that were not there when the test began are removed at its end if empty: nothing another
    engine keeps in them is touched."""

    def __init__(self, *paths: str) -> None:
        self.new = [Path(p) for p in paths if not os.path.lexists(p)]

    def remove_new(self) -> None:
        _rmdirs(self.new)


def _rmdirs(dirs: list[Path]) -> None:
    """rmdir each of ``dirs``, deepest first; one that is not empty (in use by another instance
    of the peer) stays."""
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()


class Dockerd:
    """A private dockerd that leaves the host's Docker alone: its own data root, exec root,
    pidfile, socket, config file, and its own bridge (``dyt<hex>``, made here with a private
    10.213.N.1/24 address and removed on stop).  Never ``--bridge none``: a dockerd started that
    way deletes an existing ``docker0``.  No iptables rules, no masquerade, no ip_forward change."""

    def __init__(self, base: Path, args: tuple[str, ...] = (), data_root: Path | None = None) -> None:
        self.base = base
        self.args = args  # more flags (``--userns-remap default``)
        # (elsewhere for a benchmark: beside the other contender's store, in the same block groups)
        self.data_root = data_root or base / "data"
        self.sock = base / "docker.sock"
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}")
        self.proc: subprocess.Popen | None = None
        self.bridge = "dyt" + os.urandom(4).hex()
        self.bridge_made = False

    def _make_bridge(self) -> str:
        """The bridge and its address (a 10.213.N.0/24 no host interface uses); returns the CIDR."""
        ip = need("ip")
        taken = subprocess.run([ip, "-o", "-4", "addr"], capture_output=True, text=True).stdout
        for n in [int.from_bytes(os.urandom(1), "big") for _ in range(16)]:
            if f" 10.213.{n}." not in taken:
                break
        else:
            raise RuntimeError("no free 10.213.N.0/24 for the test dockerd's bridge")
        subprocess.run([ip, "link", "add", "name", self.bridge, "type", "bridge"], check=True)
        self.bridge_made = True
        cidr = f"10.213.{n}.1/24"
        subprocess.run([ip, "addr", "add", cidr, "dev", self.bridge], check=True)
        subprocess.run([ip, "link", "set", self.bridge, "up"], check=True)
        return cidr

    def track_leftovers(self) -> None:
        """Note what dockerd leaves in the host that is not there yet (its parent cgroup, and
        what it makes in /run whatever --exec-root says: its plugin sockets, its containerd's
        shim sockets), for :meth:`stop` to remove."""
        self.cgroups = PeerCgroups("docker")
        self.dirs = PeerDirs("/run/docker", "/run/docker/plugins", "/run/containerd", "/run/containerd/s")
        # dockerd asks its containerd for a stack dump (SIGUSR1) before it kills one that is
        # slow to stop: containerd writes /tmp/containerd.PID.stacks.log
        self.stack_dumps = set(glob.glob("/tmp/containerd.*.stacks.log"))

    def start(self) -> None:
        self.track_leftovers()
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "daemon.json").write_text("{}\n")  # not the host's /etc/docker/daemon.json
        self.log = open(self.base / "dockerd.log", "wb")
        try:
            self._make_bridge()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            self.stop()
            raise RuntimeError(f"cannot make the test dockerd's bridge: {exc}") from None
        self.proc = subprocess.Popen(
            ["dockerd", "--config-file", str(self.base / "daemon.json"),
             "--data-root", str(self.data_root), "--exec-root", str(self.base / "exec"),
             "--pidfile", str(self.base / "dockerd.pid"), "-H", f"unix://{self.sock}",
             "--bridge", self.bridge, "--iptables=false", "--ip6tables=false", "--ip-masq=false",
             "--ip-forward=false", "--storage-driver", "overlay2", *self.args],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.sock.exists() and self.docker("version", check=False).returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("dockerd did not start: " + (self.base / "dockerd.log").read_text()[-2000:])

    def docker(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", *args], env=self.env, capture_output=True, input=input, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.docker("rm", "-f", *self.docker("ps", "-aq", check=False).stdout.decode().split(),
                            check=False)
                self.proc.terminate()
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if getattr(self, "log", None) is not None and not self.log.closed:
            self.log.close()
        # dockerd may leave its overlay and netns mounts behind: unmount everything under base.
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1] for line in f]
        for mnt in sorted((m for m in mounts if m.startswith((f"{self.base}/", f"{self.data_root}/"))),
                          key=len, reverse=True):
            subprocess.run(["umount", "-l", mnt], check=False)
        if self.bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)
            self.bridge_made = False
        if getattr(self, "cgroups", None) is not None:
            self.cgroups.remove_new()
            self.dirs.remove_new()
            for dump in set(glob.glob("/tmp/containerd.*.stacks.log")) - self.stack_dumps:
                with contextlib.suppress(OSError):
                    os.unlink(dump)
        shutil.rmtree(self.data_root, ignore_errors=True)
        shutil.rmtree(self.base, ignore_errors=True)


def start_dockyard_daemon(env: dict, *flags: str) -> subprocess.Popen:
    """``dockyard daemon FLAGS`` on ``env``'s root and run dir (its log beside its socket), once
    its socket exists; RuntimeError with the log's last line if it exits or takes 30 s."""
    import sys

    run = Path(env["DOCKYARD_RUN"])
    run.mkdir(parents=True, exist_ok=True)
    with open(run / "daemon.log", "ab") as log:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("dockyard")), "daemon", *flags], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while not (run / "dockyard.sock").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            lines = (run / "daemon.log").read_text().strip().splitlines()
            raise RuntimeError(f"dockyard daemon did not start: {lines[-1] if lines else proc.returncode}")
        time.sleep(0.05)
    return proc


def has_filter_table() -> bool:
    """Whether the host has an ip ``filter`` table (iptables-nft makes one, with INPUT, FORWARD
    and OUTPUT, the first time anyone adds a rule or sets a policy)."""
    from dockyard.engine.network import nftables as nft

    with nft.Nftables() as nf:
        return any(nf.has_chain(nft.NFPROTO_IPV4, "filter", c) for c in ("INPUT", "FORWARD", "OUTPUT"))


def drop_filter_table_unless(had: bool) -> None:
    """Delete the ip ``filter`` table a test's ``iptables`` made on a host that had none."""
    from dockyard.engine.network import nftables as nft

    if not had and has_filter_table():
        with nft.Nftables() as nf:
            nf.commit([nft.del_table(nft.NFPROTO_IPV4, "filter")])


class SavedEtcIds:
    """/etc/passwd, group, subuid and subgid put back as they were (``--userns-remap default``
    adds the dockremap user and its ranges, as dockerd's does)."""

    FILES = ("passwd", "group", "subuid", "subgid")

    def save(self) -> None:
        self.saved: dict[Path, tuple[bytes, int] | None] = {}
        for name in self.FILES:
            p = Path("/etc") / name
            self.saved[p] = (p.read_bytes(), p.stat().st_mode & 0o7777) if p.exists() else None

    def restore(self) -> None:
        for p, old in self.saved.items():
            if old is None:
                p.unlink(missing_ok=True)
            elif p.read_bytes() != old[0]:
                tmp = p.with_name(f".{p.name}.dytest")
                tmp.write_bytes(old[0])
                os.chmod(tmp, old[1])
                os.rename(tmp, p)

    def __enter__(self) -> "SavedEtcIds":
        self.save()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def engine_api(sock: str, method: str, path: str, body: object = None, version: str = "1.41") -> tuple[int, dict]:
    """One Engine API call over a unix socket at API ``version``: (status, JSON answer or {})."""
    import http.client
    import socket as _socket

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            self.sock.connect(sock)

    c = Conn("localhost", timeout=60)
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, f"/v{version}{path}", body=data, headers={"Content-Type": "application/json"} if data else {})
    r = c.getresponse()
    raw = r.read()
    c.close()
    return r.status, (json.loads(raw) if raw.strip() else {})


def tempfile_dir() -> str:
    import tempfile

    # A short path: docker's socket path must fit in sun_path.
    return tempfile.mkdtemp(prefix="dyd-", dir="/tmp")


def tree(root: Path, ignore: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Everything a tree holds, comparable across tools: type, mode, owner, size, content,
    link target, device number (mtimes of dirs are left out: extraction order changes them)."""
    import hashlib
    import stat

    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = "/" + str(path.relative_to(root))
            if any(rel == i or rel.startswith(i + "/") for i in ignore):
                continue
            st = path.lstat()
            kind = stat.S_IFMT(st.st_mode)
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = st.st_rdev
            mtime = int(st.st_mtime) if not stat.S_ISDIR(st.st_mode) else None
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        st.st_size if stat.S_ISREG(st.st_mode) else None, extra, mtime)
    return out


def extract_with_tar(archive: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "--numeric-owner", "-xpf", str(archive), "-C", str(dest)], check=True)
    return dest


def read_tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as tf:
        return tf.getnames()


class Served:
    """dockyard's registry server in a thread of the test process, on a free loopback port."""

    def __init__(self, root: Path, **options) -> None:
        import threading

        from dockyard.registry.server import make_server

        self.server = make_server("127.0.0.1:0", root, **options)
        self.port = self.server.server_address[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def exit_on_sigterm() -> None:
    """Make SIGTERM (``kill``, ``timeout``) exit through ``SystemExit``, as Ctrl-C does through
    KeyboardInterrupt: a bench's ``finally`` blocks then stop the daemons and remove the dirs
    it made, instead of leaving them behind."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def stop_daemon(run_dir: Path, root: Path | None = None) -> None:
    """Stop the ``dockyard daemon`` a CLI started on ``run_dir/dockyard.sock`` (SIGTERM, then
    SIGKILL), then remove every container left in ``root`` so nothing outlives the test."""
    import signal
    import time

    pidfile = Path(run_dir) / "dockyard.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = 0
    from dockyard.engine.store import pid_alive  # a zombie counts as gone: init may reap it late

    def alive() -> bool:
        return pid_alive(pid)

    if pid:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and alive():
                time.sleep(0.01)
            if not alive():
                break
    if root is not None and (Path(root) / "state.db").exists():
        from dockyard import Engine

        eng = Engine(root)
        try:
            for rec in eng.containers.all():
                eng.containers.remove(rec["id"], force=True)
        finally:
            eng.close()


class PrivateContainerd:
    """A containerd of the test's own: root, state, sockets and config under ``d``, stopped by
    its PID with everything it started.  ``extra_config`` is appended to the config (CRI
    plugin tables); ``cri`` False disables the CRI plugin.  ``ctr`` talks to it in
    ``namespace``."""

    def __init__(self, d: Path, namespace: str, extra_config: str = "", cri: bool = False) -> None:
        self.d, self.namespace = d, namespace
        self.sock = d / "c.sock"
        self.cgroups = PeerCgroups(namespace)  # containerd's parent of a namespace's containers
        shim = "/run/containerd"
        self.dirs = PeerDirs(shim, f"{shim}/s", f"{shim}/fifo", f"{shim}/runc", f"{shim}/runc/{namespace}",
                             *(["/run/netns"] if cri else []))
        disabled = "" if cri else 'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        (d / "config.toml").write_text(f"""version = 2
root = "{d}/root"
state = "{d}/state"
{disabled}[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = "{d}/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
{extra_config}""")
        self.log = open(d / "containerd.log", "wb")
        self.proc = subprocess.Popen(["containerd", "--config", str(d / "config.toml")], stdout=self.log,
                                     stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while not (self.sock.exists() and self.ctr("version").returncode == 0):
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"containerd did not start: {(d / 'containerd.log').read_text()[-2000:]}")
            time.sleep(0.05)

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["timeout", "-s", "KILL", str(int(timeout)), "ctr", "--address", str(self.sock),
                               "--namespace", self.namespace, *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        import signal

        for line in self.ctr("task", "ls", "-q").stdout.split():
            self.ctr("task", "kill", "-s", "SIGKILL", line)
            self.ctr("task", "delete", "-f", line)
        for line in self.ctr("container", "ls", "-q").stdout.split():
            self.ctr("container", "delete", line)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # Shims it started that are still there (a failed test): ours name our socket.
        for p in Path("/proc").glob("[0-9]*"):
            try:
                cmd = (p / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and str(self.sock).encode() in b" ".join(cmd):
                try:
                    os.kill(int(p.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.cgroups.remove_new()
        self.dirs.remove_new()
        self.log.close()


# -- rootless mode: a throw-away user and the CLI run as it (tests/test_rootless.py, benches) ----

CLI = "import sys; from dockyard.cli import main; sys.exit(main())"


def user_interpreter(env: dict, uid: int, gid: int) -> str | None:
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


class RootlessUser:
    """A throw-away user with subordinate ids, and the dockyard CLI run as it."""

    def __init__(self, prefix: str = "dyrl") -> None:
        self.name = f"{prefix}{os.getpid() % 100000}"
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
