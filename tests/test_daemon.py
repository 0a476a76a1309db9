"""The daemon's Engine API over its unix socket: negotiation, shapes, bad input, concurrency,
security, restart policies and live restore (kill -9).

The ``daemon`` fixture runs ``dockyard daemon`` as a subprocess with a private root and run
dir, a busybox image ``bb``, and checks at the end that no container, mount or supervisor
socket is left."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support import needs_root, stop_daemon


def runtime_available() -> bool:
    try:
        from dockyard.engine.runtime import binary

        binary()
        return True
    except Exception:
        return False


pytestmark = [needs_root, pytest.mark.skipif(not runtime_available(), reason="dockyard-runtime is not built")]


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Daemon:
    """A ``dockyard daemon`` subprocess and a tiny HTTP helper."""

    def __init__(self, root: Path, run: Path, args: tuple[str, ...] = ()) -> None:
        self.root, self.run, self.args = root, run, args
        self.sock = str(run / "dockyard.sock")
        self.env = dict(os.environ, DOCKYARD_ROOT=str(root), DOCKYARD_RUN=str(run))
        self.docker_env = dict(self.env, DOCKER_HOST=f"unix://{self.sock}")
        self.proc: subprocess.Popen | None = None
        self.log = root.parent / "daemon.log"  # in the test's tmp_path: kept by pytest for a look

    def start(self) -> None:
        exe = Path(sys.executable).with_name("dockyard")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(exe), "daemon", "-H", f"unix://{self.sock}", *self.args], env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if self.request("GET", "/_ping")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited: " + self.log.read_text()[-2000:])
            time.sleep(0.05)
        raise RuntimeError("daemon did not start")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(30)

    def request(self, method: str, path: str, body: object = None, headers: dict | None = None,
                timeout: float = 60) -> tuple[int, object, dict]:
        conn = UnixConnection(self.sock, timeout)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            hdrs = dict(headers or {})
            if data is not None and "Content-Type" not in hdrs:
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            ctype = resp.getheader("Content-Type") or ""
            value: object = raw
            if "json" in ctype and raw:
                try:
                    value = json.loads(raw)
                except ValueError:
                    value = [json.loads(l) for l in raw.splitlines() if l.strip()]
            return resp.status, value, dict(resp.getheaders())
        finally:
            conn.close()

    def ok(self, method: str, path: str, body: object = None, status: tuple = (200, 201, 204)) -> object:
        code, value, _ = self.request(method, path, body)
        assert code in status, (method, path, code, value)
        return value

    def docker(self, *args: str, check: bool = True, input: bytes | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", *args], env=self.docker_env, capture_output=True, input=input,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode()}")
        return proc


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(str(path))]


@pytest.fixture
def daemon(tmp_path, rootfs_tar, cli, monkeypatch):
    """The test's own daemon process on the cli fixture's socket (so ``cli`` talks to it too);
    the one the cli fixture started is stopped first: one daemon per root."""
    run = cli.run_dir
    monkeypatch.setenv("DOCKYARD_RUN", str(run))
    cli("import", "-c", 'CMD ["/bin/sh"]', str(rootfs_tar), "bb")
    stop_daemon(run)
    d = Daemon(cli.root, run)
    d.start()
    try:
        yield d
    finally:
        try:
            if d.proc.poll() is None:
                leftover = d.ok("GET", "/containers/json?all=1")
                for c in leftover:
                    d.request("DELETE", f"/containers/{c['Id']}?force=1")
                d.stop()
        finally:
            if d.proc.poll() is None:
                d.proc.kill()
            leftover = cli("ps", "-aq").stdout.decode().split()
            if leftover:
                cli("rm", "-f", *leftover, check=False)
            mounts = _mounts_under(cli.root)
    assert mounts == []


def create(d: Daemon, *cmd: str, **extra) -> str:
    body = {"Image": "bb", "Cmd": list(cmd) or None, **extra}
    code, value, _ = d.request("POST", "/containers/create", body)
    assert code == 201, value
    return value["Id"]


def wait(d: Daemon, cid: str, condition: str = "not-running") -> dict:
    return d.ok("POST", f"/containers/{cid}/wait?condition={condition}")


# -- negotiation and shapes ------------------------------------------------------------------------

def test_ping_version_info(daemon):
    for method in ("GET", "HEAD"):
        code, body, headers = daemon.request(method, "/_ping")
        assert code == 200 and headers["Api-Version"] >= "1.44" and headers["Ostype"] == "linux"
        assert body == (b"OK" if method == "GET" else b"")
    v = daemon.ok("GET", "/version")
    assert v["ApiVersion"] >= "1.44" and v["Os"] == "linux"
    assert daemon.ok("GET", "/v1.44/version")["ApiVersion"] == v["ApiVersion"]
    code, body, _ = daemon.request("GET", "/v1.12/version")
    assert code == 400 and "too old" in body["message"]
    info = daemon.ok("GET", "/info")
    assert info["Images"] == 1 and info["Containers"] == 0 and info["OSType"] == "linux"
    code, body, _ = daemon.request("GET", "/no/such/route")
    assert code == 404 and "message" in body


def test_socket_mode_and_daemon_help(daemon, cli):
    st = os.stat(daemon.sock)
    assert oct(st.st_mode & 0o777) == "0o660" and st.st_uid == 0
    out = cli("daemon", "--help").stdout.decode()
    assert "unix://" in out and "SIGTERM" in out


def test_only_root_and_group_can_connect(daemon):
    """A user outside the socket's group gets EACCES before speaking HTTP."""
    code = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
            f"try:\n  s.connect({daemon.sock!r})\nexcept PermissionError:\n  sys.exit(3)\nsys.exit(0)")
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("no system python3 that an unprivileged user can run")
    proc = subprocess.run([python, "-c", code], user=65534, group=65534, extra_groups=[], cwd="/")
    assert proc.returncode == 3
    proc = subprocess.run([python, "-c", code], user=0, group=0, cwd="/")
    assert proc.returncode == 0


def test_container_lifecycle_and_shapes(daemon):
    d = daemon
    cid = create(d, "sh", "-c", "echo out; echo err >&2; exit 3", name=None) if False else \
        d.ok("POST", "/containers/create?name=life", {"Image": "bb", "Cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"]})["Id"]
    insp = d.ok("GET", "/containers/life/json")
    assert insp["Id"] == cid and insp["Name"] == "/life" and insp["State"]["Status"] == "created"
    d.ok("POST", f"/containers/{cid}/start")
    assert wait(d, cid) == {"StatusCode": 3, "Error": None}
    rows = d.ok("GET", "/containers/json?all=1")
    assert [r["Id"] for r in rows] == [cid] and rows[0]["Names"] == ["/life"] and rows[0]["State"] == "exited"
    assert d.ok("GET", "/containers/json") == []
    from urllib.parse import quote

    filt = quote(json.dumps({"status": ["exited"], "name": ["life"]}))
    assert len(d.ok("GET", f"/containers/json?filters={filt}")) == 1
    code, raw, _ = d.request("GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
    assert raw == b"\x01\x00\x00\x00\x00\x00\x00\x04out\n\x02\x00\x00\x00\x00\x00\x00\x04err\n"
    code, raw, _ = d.request("GET", f"/containers/{cid}/logs?stdout=1")
    assert raw == b"\x01\x00\x00\x00\x00\x00\x00\x04out\n"
    assert d.ok("POST", "/containers/life/rename?name=life2", status=(204,)) is not None
    d.ok("DELETE", "/containers/life2")
    code, body, _ = d.request("GET", f"/containers/{cid}/json")
    assert code == 404 and body["message"] == f"No such container: {cid}"


def test_wait_conditions_and_events(daemon):
    d = daemon
    cid = create(d, "sh", "-c", "sleep 0.3; exit 5", HostConfig={"AutoRemove": True})
    results = {}

    def waiter(cond: str) -> None:
        results[cond] = wait(d, cid, cond)

    threads = [threading.Thread(target=waiter, args=(c,)) for c in ("next-exit", "removed")]
    for t in threads:
        t.start()
    time.sleep(0.3)
    d.ok("POST", f"/containers/{cid}/start")
    for t in threads:
        t.join(30)
    assert results == {"next-exit": {"StatusCode": 5, "Error": None}, "removed": {"StatusCode": 5, "Error": None}}
    assert d.request("GET", f"/containers/{cid}/json")[0] == 404
    code, evs, _ = d.request("GET", f"/events?since=0&until={int(time.time()) + 1}")
    actions = [e["Action"] for e in evs if e.get("id") == cid]
    assert actions == ["create", "start", "die", "destroy"]


def test_events_of_exec_stop_and_forced_remove(daemon):
    """As dockerd says them (seen on 20.10): exec events carry the container's attributes (a
    client filtering by label, as compose does, sees them) and name the command as entrypoint,
    space, arguments; a detached exec's exec_die comes when it ends, with its code; stop says
    kill (the stop signal) before die; rm -f of a running container says kill 9, die, destroy."""
    from urllib.parse import quote

    d = daemon
    since = time.time()
    cid = create(d, "sh", "-c", "trap 'exit 130' INT; while :; do sleep 0.1; done", Labels={"com.example.app": "x"},
                 StopSignal="SIGINT")
    d.ok("POST", f"/containers/{cid}/start")
    eid = d.ok("POST", f"/containers/{cid}/exec", {"Cmd": ["true"]})["Id"]
    d.request("POST", f"/exec/{eid}/start", {"Detach": False})
    eid2 = d.ok("POST", f"/containers/{cid}/exec", {"Cmd": ["sh", "-c", "sleep 0.3; exit 5"]})["Id"]
    d.ok("POST", f"/exec/{eid2}/start", {"Detach": True})
    assert d.ok("GET", f"/exec/{eid2}/json")["Running"] is True
    wait_until = time.monotonic() + 10
    while d.ok("GET", f"/exec/{eid2}/json")["Running"] and time.monotonic() < wait_until:
        time.sleep(0.05)
    assert d.ok("GET", f"/exec/{eid2}/json")["ExitCode"] == 5
    d.ok("POST", f"/containers/{cid}/stop?t=5")
    d.ok("POST", f"/containers/{cid}/start")
    d.ok("DELETE", f"/containers/{cid}?force=1")
    label = json.dumps({"label": ["com.example.app=x"]})
    code, evs, _ = d.request("GET", f"/events?since={since:.3f}&until={time.time() + 1:.3f}&filters={quote(label)}")
    assert code == 200
    got = [(e["Action"], {k: v for k, v in e["Actor"]["Attributes"].items() if k in ("signal", "exitCode")})
           for e in evs]
    assert got == [
        ("create", {}), ("start", {}),
        ("exec_create: true ", {}), ("exec_start: true ", {}), ("exec_die", {"exitCode": "0"}),
        ("exec_create: sh -c sleep 0.3; exit 5", {}), ("exec_start: sh -c sleep 0.3; exit 5", {}),
        ("exec_die", {"exitCode": "5"}),
        ("kill", {"signal": "2"}), ("die", {"exitCode": "130"}), ("stop", {}),
        ("start", {}), ("kill", {"signal": "9"}), ("die", {"exitCode": "137"}), ("destroy", {}),
    ]
    assert all(e["Actor"]["Attributes"]["name"] and e["Actor"]["Attributes"]["image"] == "bb" for e in evs)


def test_exec_that_cannot_start(daemon):
    """As dockerd: an exec whose command cannot start says why on the stream's stdout (runc's
    words), exits 126 and says no exec_die; detached, its start is a 400.  A command that exits
    127 by itself is no start failure."""
    d = daemon
    since = time.time()
    cid = create(d, "sleep", "30")
    d.ok("POST", f"/containers/{cid}/start")
    body = {"Cmd": ["no-such-cmd"], "AttachStdout": True, "AttachStderr": True}
    eid = d.ok("POST", f"/containers/{cid}/exec", body)["Id"]
    code, raw, _ = d.request("POST", f"/exec/{eid}/start", {"Detach": False})
    msg = (b'OCI runtime exec failed: exec failed: unable to start container process: exec: "no-such-cmd": '
           b'executable file not found in $PATH: unknown')
    assert raw == b"\x01\x00\x00\x00" + len(msg + b"\r\n").to_bytes(4, "big") + msg + b"\r\n"
    assert d.ok("GET", f"/exec/{eid}/json")["ExitCode"] == 126
    eid2 = d.ok("POST", f"/containers/{cid}/exec", {"Cmd": ["/etc/passwd"]})["Id"]
    code, value, _ = d.request("POST", f"/exec/{eid2}/start", {"Detach": True})
    assert (code, value["message"]) == (400, "OCI runtime exec failed: exec failed: unable to start container "
                                             'process: exec: "/etc/passwd": permission denied: unknown')
    assert d.ok("GET", f"/exec/{eid2}/json")["ExitCode"] == 126
    eid3 = d.ok("POST", f"/containers/{cid}/exec", {"Cmd": ["sh", "-c", "echo x >&2; exit 127"],
                                                      "AttachStderr": True})["Id"]
    code, raw, _ = d.request("POST", f"/exec/{eid3}/start", {"Detach": False})
    assert raw == b"\x02\x00\x00\x00\x00\x00\x00\x02x\n"
    assert d.ok("GET", f"/exec/{eid3}/json")["ExitCode"] == 127
    d.ok("DELETE", f"/containers/{cid}?force=1")
    code, evs, _ = d.request("GET", f"/events?since={since:.3f}&until={time.time() + 1:.3f}")
    dies = [e["Actor"]["Attributes"]["execID"] for e in evs if e["Action"] == "exec_die"]
    assert dies == [eid3]


def test_stop_kill_restart_pause(daemon):
    d = daemon
    cid = create(d, "sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done")
    d.ok("POST", f"/containers/{cid}/start")
    assert d.request("POST", f"/containers/{cid}/start")[0] == 304
    d.ok("POST", f"/containers/{cid}/pause")
    assert d.ok("GET", f"/containers/{cid}/json")["State"]["Status"] == "paused"
    code, body, _ = d.request("POST", f"/containers/{cid}/pause")
    assert code == 409
    d.ok("POST", f"/containers/{cid}/unpause")
    top = d.ok("GET", f"/containers/{cid}/top")
    assert "PID" in top["Titles"] and top["Processes"]
    st = d.ok("GET", f"/containers/{cid}/stats?stream=0&one-shot=1")
    assert st["id"] == cid and "memory_stats" in st and st["pids_stats"]["current"] >= 1
    code, body, _ = d.request("DELETE", f"/containers/{cid}")
    assert code == 409 and "stop the container" in body["message"]
    d.ok("POST", f"/containers/{cid}/restart?t=5")
    assert d.ok("GET", f"/containers/{cid}/json")["State"]["Running"]
    d.ok("POST", f"/containers/{cid}/stop?t=5")
    assert d.ok("GET", f"/containers/{cid}/json")["State"]["ExitCode"] == 7
    assert d.request("POST", f"/containers/{cid}/stop")[0] == 304
    code, body, _ = d.request("POST", f"/containers/{cid}/kill")
    assert code == 409
    d.ok("DELETE", f"/containers/{cid}?v=1&force=1")


def test_bad_input_is_400(daemon):
    d = daemon
    cases = [
        ("POST", "/containers/create", b"{not json"),
        ("POST", "/containers/create", {"Image": 3}),
        ("POST", "/containers/create", {"Image": "bb", "HostConfig": {"Memory": "lots"}}),
        ("POST", "/containers/create", {"Image": "bb", "Env": "A=1"}),
        ("POST", "/containers/create", [1, 2]),
        ("POST", "/containers/create", {"Image": "bb", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}),
        ("POST", "/containers/create?name=bad/name", {"Image": "bb"}),
        ("GET", "/containers/json?all=maybe", None),
        ("GET", "/containers/json?filters=notjson", None),
        ("GET", '/containers/json?filters={"colour":["red"]}', None),
        ("GET", '/images/json?filters={"dangling":["perhaps"]}', None),
        ("POST", "/containers/x/wait?condition=sometime", None),
    ]
    for method, path, body in cases:
        code, value, _ = d.request(method, path.replace('"', "%22").replace("{", "%7B").replace("}", "%7D")
                                   .replace(" ", "%20"), body)
        assert code == 400, (path, body, code, value)
        assert isinstance(value, dict) and value["message"], (path, value)
    assert d.request("POST", "/containers/create", {"Image": "nosuch"})[0] == 404
    assert d.request("GET", "/images/nosuch/json")[0] == 404
    assert d.request("POST", "/containers/nosuch/start")[0] == 404
    assert d.request("POST", "/exec/nosuch/start", {})[0] == 404
    create(d, "true", name="dup") if False else d.ok("POST", "/containers/create?name=dup", {"Image": "bb", "Cmd": ["true"]})
    code, body, _ = d.request("POST", "/containers/create?name=dup", {"Image": "bb", "Cmd": ["true"]})
    assert code == 409 and "already in use" in body["message"]
    d.ok("DELETE", "/containers/dup")


def test_exec_attached_and_detached(daemon):
    d = daemon
    cid = create(d, "sleep", "30")
    d.ok("POST", f"/containers/{cid}/start")
    eid = d.ok("POST", f"/containers/{cid}/exec", {"Cmd": ["sh", "-c", "echo hi; exit 4"],
                                                     "AttachStdout": True, "AttachStderr": True})["Id"]
    code, raw, _ = d.request("POST", f"/exec/{eid}/start", {"Detach": False, "Tty": False})
    assert raw == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    info = d.ok("GET", f"/exec/{eid}/json")
    assert info["ExitCode"] == 4 and info["Running"] is False and info["ContainerID"] == cid
    assert d.request("POST", f"/exec/{eid}/start", {})[0] == 409
    eid = d.ok("POST", f"/containers/{cid}/exec", {"Cmd": ["touch", "/tmp/detached"]})["Id"]
    d.ok("POST", f"/exec/{eid}/start", {"Detach": True})
    for _ in range(100):
        if d.ok("GET", f"/exec/{eid}/json")["ExitCode"] is not None:
            break
        time.sleep(0.05)
    assert d.ok("GET", f"/exec/{eid}/json")["ExitCode"] == 0
    assert d.request("POST", f"/containers/{cid}/exec", {"Cmd": "x", "Bogus": 1})[0] == 400
    d.ok("DELETE", f"/containers/{cid}?force=1")


def test_archive_confined_to_container_root(daemon, tmp_path):
    import io
    import tarfile

    d = daemon
    cid = create(d, "sh", "-c", "ln -s / /tmp/up; ln -s ../../../../../../etc /tmp/rel; true")
    d.ok("POST", f"/containers/{cid}/start")
    wait(d, cid)
    secret = Path("/tmp") / f"dy-secret-{os.getpid()}"
    secret.write_text("host secret")
    try:
        for path in (f"/../../../..{secret}", f"/tmp/up{secret}", f"/tmp/rel/../{secret}"):
            code, raw, _ = d.request("GET", f"/containers/{cid}/archive?path={path}")
            assert code == 404, (path, code)
        code, raw, headers = d.request("GET", f"/containers/{cid}/archive?path=/etc/passwd")
        assert code == 200 and b"root:" in raw and "X-Docker-Container-Path-Stat" in headers
        # upload: members that try to leave the target are refused, nothing lands on the host
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            data = b"pwned"
            info = tarfile.TarInfo("../../../../../../tmp/dy-escape")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        code, body, _ = d.request("PUT", f"/containers/{cid}/archive?path=/tmp", buf.getvalue(),
                                  {"Content-Type": "application/x-tar"})
        assert code >= 400 and not Path("/tmp/dy-escape").exists()
        code, body, _ = d.request("PUT", f"/containers/{cid}/archive?path=/tmp/up/tmp", b"",
                                  {"Content-Type": "application/x-tar"})
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo("ok.txt")
            info.size = 2
            tf.addfile(info, io.BytesIO(b"ok"))
        d.ok("PUT", f"/containers/{cid}/archive?path=/tmp", buf.getvalue())
        code, raw, _ = d.request("GET", f"/containers/{cid}/archive?path=/tmp/ok.txt")
        assert code == 200 and b"ok" in raw
        code, _, headers = d.request("HEAD", f"/containers/{cid}/archive?path=/tmp/ok.txt")
        assert code == 200 and headers["X-Docker-Container-Path-Stat"]
    finally:
        secret.unlink()
    d.ok("DELETE", f"/containers/{cid}")


def test_images_routes(daemon, tmp_path):
    d = daemon
    imgs = d.ok("GET", "/images/json")
    assert len(imgs) == 1 and imgs[0]["RepoTags"] == ["bb:latest"]
    iid = imgs[0]["Id"]
    assert d.ok("GET", "/images/bb/json")["Id"] == iid
    assert d.ok("GET", "/images/bb/history")[0]["Id"] == iid
    d.ok("POST", "/images/bb/tag?repo=example.com/x/y&tag=2")
    assert d.ok("GET", "/images/example.com/x/y:2/json")["Id"] == iid
    code, tar, _ = d.request("GET", "/images/get?names=bb")
    assert code == 200 and len(tar) > 100000
    items = d.ok("DELETE", "/images/example.com/x/y:2")
    assert items == [{"Untagged": "example.com/x/y:2"}]
    code, body, _ = d.request("POST", "/images/load", tar, {"Content-Type": "application/x-tar"})
    assert code == 200 and "Loaded image" in json.dumps(body)
    code, body, _ = d.request("POST", "/images/create?fromSrc=-&repo=imported&tag=1",
                              (tmp_path.parent / "rootfs.tar").read_bytes() if (tmp_path.parent / "rootfs.tar").exists() else tar[:0] + _small_tar(),
                              {"Content-Type": "application/x-tar"})
    assert code == 200, body
    assert d.ok("GET", "/images/imported:1/json")["RepoTags"] == ["imported:1"]
    d.ok("DELETE", "/images/imported:1")
    assert d.ok("POST", "/images/prune")["SpaceReclaimed"] >= 0


def _small_tar() -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("hello.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"hi\n"))
    return buf.getvalue()


def _frames(raw: bytes) -> list[tuple[int, bytes]]:
    out = []
    while len(raw) >= 8:
        size = int.from_bytes(raw[4:8], "big")
        out.append((raw[0], raw[8:8 + size]))
        raw = raw[8 + size:]
    return out


def test_send_until_read_returns_when_the_peer_has_read():
    """The upgrade answer of ``attach?logs=1`` is sent so that the daemon wakes when the client
    has read it (a poll on a socket with the smallest send buffer), not on a timer: while the
    answer sits unread, the sender waits; the read releases it."""
    from dockyard.daemon.http import send_until_read

    answer = (b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: "
              b"application/vnd.docker.raw-stream\r\nApi-Version: 1.45\r\nDocker-Experimental: false\r\n"
              b"Ostype: linux\r\nServer: Docker/dockyard (linux)\r\n\r\n")
    a, b = socket.socketpair()
    before = a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    done = threading.Event()
    sender = threading.Thread(target=lambda: (send_until_read(a, answer, limit=30), done.set()))
    try:
        sender.start()
        import select

        assert select.select([b], [], [], 10)[0]  # queued, not read
        assert not done.wait(0.2), "returned before the answer was read"
        assert b.recv(4096) == answer
        assert done.wait(10)
        assert a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == before
        a.settimeout(10)
        a.sendall(b"x" * 100_000)  # the stream that follows is not held to the small buffer
    finally:
        b.close()
        sender.join(10)
        a.close()


def test_attach_logs_replays_what_was_written(daemon):
    """``attach?logs=1``: the output so far (here of an exited container, stream=0), in frames."""
    cid = create(daemon, "sh", "-c", "echo out; echo err >&2")
    daemon.ok("POST", f"/containers/{cid}/start")
    assert wait(daemon, cid)["StatusCode"] == 0
    code, body, headers = daemon.request("POST", f"/containers/{cid}/attach?logs=1&stream=0&stdout=1&stderr=1")
    assert code == 200 and "multiplexed" in headers["Content-Type"]
    assert sorted(_frames(body)) == [(1, b"out\n"), (2, b"err\n")]
    code, body, _ = daemon.request("POST", f"/containers/{cid}/attach?logs=1&stream=0&stdout=1&stderr=0")
    assert _frames(body) == [(1, b"out\n")]
    code, body, _ = daemon.request("POST", f"/containers/{cid}/attach?logs=0&stream=0&stdout=1")
    assert code == 200 and body == b""
    daemon.ok("DELETE", f"/containers/{cid}")


def test_attach_hijack_before_start(daemon):
    """docker run's order: attach (upgraded), then start; all output comes over the stream."""
    d = daemon
    cid = create(d, "sh", "-c", "read x; echo got $x; echo e >&2", OpenStdin=True, StdinOnce=True,
                 AttachStdin=True)
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.sock)
    s.sendall(f"POST /v1.45/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
              "Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    d.ok("POST", f"/containers/{cid}/start")
    s.sendall(b"hello\n")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    s.close()
    assert data == b"\x01\x00\x00\x00\x00\x00\x00\x0agot hello\n\x02\x00\x00\x00\x00\x00\x00\x02e\n"
    assert wait(d, cid)["StatusCode"] == 0
    d.ok("DELETE", f"/containers/{cid}")


def test_concurrent_create_start_wait_delete(daemon):
    """100 clients at once: every one succeeds, no container lost, no name or address twice
    (all 100 run at the same time), then all stopped, waited for and removed at once."""
    d = daemon
    n = 100
    errors, ids, addresses = [], {}, {}
    lock = threading.Lock()
    all_up = threading.Barrier(n + 1)
    checked = threading.Event()

    def one(i: int) -> None:
        try:
            cmd = f"trap 'exit {i % 7}' TERM; while :; do sleep 0.2; done"
            cid = d.ok("POST", f"/containers/create?name=c{i}", {"Image": "bb", "Cmd": ["sh", "-c", cmd]})["Id"]
            d.ok("POST", f"/containers/{cid}/start")
            ip = d.ok("GET", f"/containers/{cid}/json")["NetworkSettings"]["IPAddress"]
            with lock:
                ids[i], addresses[i] = cid, ip
        except Exception as exc:
            with lock:
                errors.append(repr(exc))
        all_up.wait(600)
        checked.wait(600)
        try:
            cid = ids[i]
            d.ok("POST", f"/containers/{cid}/kill?signal=TERM")
            assert wait(d, cid)["StatusCode"] == i % 7
            d.ok("DELETE", f"/containers/{cid}")
        except Exception as exc:
            with lock:
                errors.append(repr(exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    all_up.wait(600)
    try:
        running = d.ok("GET", "/containers/json")
    finally:
        checked.set()
    assert len(running) == n and len({r["Names"][0] for r in running}) == n
    for t in threads:
        t.join(600)
    assert errors == []
    assert len(set(ids.values())) == n
    assert all(addresses.values()) and len(set(addresses.values())) == n
    assert d.ok("GET", "/containers/json?all=1") == []


def test_restart_policy_on_failure_backoff(daemon):
    d = daemon
    cid = create(d, "sh", "-c", "exit 2", HostConfig={"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}})
    d.ok("POST", f"/containers/{cid}/start")
    deadline = time.time() + 30
    while time.time() < deadline:
        insp = d.ok("GET", f"/containers/{cid}/json")
        if insp["RestartCount"] == 3 and not insp["State"]["Running"]:
            break
        time.sleep(0.1)
    time.sleep(1.0)
    insp = d.ok("GET", f"/containers/{cid}/json")
    assert insp["RestartCount"] == 3 and insp["State"]["ExitCode"] == 2 and not insp["State"]["Running"]
    code, evs, _ = d.request("GET", f"/events?since=0&until={int(time.time()) + 1}")
    starts = [e["timeNano"] for e in evs if e.get("id") == cid and e["Action"] == "start"]
    dies = [e["timeNano"] for e in evs if e.get("id") == cid and e["Action"] == "die"]
    assert len(starts) == 4 and len(dies) == 4
    gaps = [(s - e) / 1e9 for e, s in zip(dies, starts[1:])]
    assert gaps[1] >= 0.09 and gaps[2] >= 0.19  # the first at once, then 100 ms, doubling
    d.ok("DELETE", f"/containers/{cid}")


def test_restart_always_and_manual_stop(daemon):
    d = daemon
    cid = create(d, "sh", "-c", "sleep 0.2", HostConfig={"RestartPolicy": {"Name": "always"}})
    d.ok("POST", f"/containers/{cid}/start")
    deadline = time.time() + 20
    while d.ok("GET", f"/containers/{cid}/json")["RestartCount"] < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert d.ok("GET", f"/containers/{cid}/json")["RestartCount"] >= 2
    d.ok("POST", f"/containers/{cid}/stop?t=1", status=(204, 304))
    time.sleep(1.5)
    assert not d.ok("GET", f"/containers/{cid}/json")["State"]["Running"]
    d.ok("DELETE", f"/containers/{cid}?force=1")


def test_forced_remove_while_the_restart_is_starting(daemon):
    """The first restart comes at once, so a forced removal right after wait meets its start under
    way: it must wait for that start and kill what it started (once: a 500 "Directory not
    empty: bundle", the removal deleting the directory under the start)."""
    d = daemon
    for _ in range(8):
        cid = create(d, "sh", "-c", "exit 3", HostConfig={"RestartPolicy": {"Name": "always"},
                                                         "NetworkMode": "none"})
        d.ok("POST", f"/containers/{cid}/start")
        wait(d, cid)
        d.ok("DELETE", f"/containers/{cid}?force=1", status=(204,))
        assert d.request("GET", f"/containers/{cid}/json")[0] == 404
        assert not (d.root / "containers" / cid).exists()
    assert d.ok("GET", "/containers/json?all=1") == []
    assert _mounts_under(d.root / "containers") == []


def test_live_restore_after_kill_9(daemon):
    """kill -9 the daemon: containers keep running; a new daemon records the exit it missed,
    and still manages the one that is alive."""
    d = daemon
    short = create(d, "sh", "-c", "sleep 1; exit 9")
    long = create(d, "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done")
    again = create(d, "sh", "-c", "sleep 1; exit 1", HostConfig={"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 1}})
    for cid in (short, long, again):
        d.ok("POST", f"/containers/{cid}/start")
    pid = d.ok("GET", f"/containers/{long}/json")["State"]["Pid"]
    d.proc.kill()
    d.proc.wait()
    time.sleep(2.0)  # `short` and `again` exit while no daemon runs
    os.kill(pid, 0)  # still alive
    os.unlink(d.sock)
    d.start()
    st = d.ok("GET", f"/containers/{short}/json")["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 9
    assert d.ok("GET", f"/containers/{long}/json")["State"]["Pid"] == pid
    deadline = time.time() + 10
    while d.ok("GET", f"/containers/{again}/json")["RestartCount"] < 1 and time.time() < deadline:
        time.sleep(0.1)
    assert d.ok("GET", f"/containers/{again}/json")["RestartCount"] == 1
    d.ok("POST", f"/containers/{long}/stop?t=5")
    assert wait(d, long)["StatusCode"] == 0
    wait(d, again)
    for cid in (short, long, again):
        d.ok("DELETE", f"/containers/{cid}?force=1")


def test_sigterm_is_graceful_and_containers_survive(daemon):
    d = daemon
    cid = create(d, "sleep", "30")
    d.ok("POST", f"/containers/{cid}/start")
    pid = d.ok("GET", f"/containers/{cid}/json")["State"]["Pid"]
    assert d.stop() == 0
    assert not os.path.exists(d.sock)
    os.kill(pid, 0)
    d.start()
    assert d.ok("GET", f"/containers/{cid}/json")["State"]["Running"]
    d.ok("DELETE", f"/containers/{cid}?force=1")


def test_list_filters_before_since_limit(daemon):
    from urllib.parse import quote

    d = daemon
    ids = [d.ok("POST", f"/containers/create?name=f{i}", {"Image": "bb", "Cmd": ["true"]})["Id"] for i in range(3)]
    names = lambda rows: [r["Names"][0] for r in rows]
    assert names(d.ok("GET", "/containers/json?all=1")) == ["/f2", "/f1", "/f0"]
    assert names(d.ok("GET", "/containers/json?limit=1")) == ["/f2"]
    flt = quote(json.dumps({"before": ["f2"]}))
    assert names(d.ok("GET", f"/containers/json?all=1&filters={flt}")) == ["/f1", "/f0"]
    flt = quote(json.dumps({"since": ["f0"]}))
    assert names(d.ok("GET", f"/containers/json?all=1&filters={flt}")) == ["/f2", "/f1"]
    flt = quote(json.dumps({"status": ["created"], "name": ["f1"]}))
    assert names(d.ok("GET", f"/containers/json?filters={flt}")) == ["/f1"]
    assert sorted(d.ok("POST", "/containers/prune")["ContainersDeleted"]) == sorted(ids)
    assert d.ok("GET", "/containers/json?all=1") == []


def test_list_ids_alone_for_our_cli(daemon):
    """``ps -q`` asks for the IDs alone (``Dockyard-Fields: Id``): the same containers in the same
    order as the whole list, with filters and limit applied; without the header, whole entries."""
    from urllib.parse import quote

    d = daemon
    ids = [d.ok("POST", f"/containers/create?name=q{i}", {"Image": "bb", "Cmd": ["true"]})["Id"] for i in range(3)]
    try:
        ask = {"Dockyard-Fields": "Id"}
        code, brief, _ = d.request("GET", "/containers/json?all=1", headers=ask)
        assert code == 200 and brief == [{"Id": c["Id"]} for c in d.ok("GET", "/containers/json?all=1")]
        assert [c["Id"] for c in brief] == ids[::-1]
        assert d.request("GET", "/containers/json?limit=1", headers=ask)[1] == [{"Id": ids[2]}]
        flt = quote(json.dumps({"name": ["q1"]}))
        assert d.request("GET", f"/containers/json?all=1&filters={flt}", headers=ask)[1] == [{"Id": ids[1]}]
        assert d.request("GET", "/containers/json", headers=ask)[1] == []  # none running
        full = d.request("GET", "/containers/json?all=1", headers={"Dockyard-Fields": "Names"})[1]
        assert [c["Names"] for c in full] == [["/q2"], ["/q1"], ["/q0"]] and "Image" in full[0]
    finally:
        for cid in ids:
            d.request("DELETE", f"/containers/{cid}?force=1")


def test_list_follows_every_change(daemon):
    """The list keeps what it made of a container while nothing about it changes: a rename, a
    network connected, a start and a kill each show in the next list."""
    d = daemon
    cid = d.ok("POST", "/containers/create?name=listed", {"Image": "bb", "Cmd": ["sleep", "60"]})["Id"]
    net = None

    def entry() -> dict:
        [found] = [c for c in d.ok("GET", "/containers/json?all=1") if c["Id"] == cid]
        return found

    try:
        assert entry()["Names"] == ["/listed"] and entry()["State"] == "created"
        d.ok("POST", f"/containers/{cid}/rename?name=relisted")
        assert entry()["Names"] == ["/relisted"]
        net = d.ok("POST", "/networks/create", {"Name": "dy-listnet"})["Id"]
        d.ok("POST", f"/networks/{net}/connect", {"Container": cid})
        assert "dy-listnet" in entry()["NetworkSettings"]["Networks"]
        d.ok("POST", f"/containers/{cid}/start")
        got = entry()
        assert got["State"] == "running" and got["Status"].startswith("Up ")
        assert got["NetworkSettings"]["Networks"]["dy-listnet"]["IPAddress"]
        d.ok("POST", f"/containers/{cid}/kill")
        wait(d, cid)
        got = entry()
        assert got["State"] == "exited" and got["Status"].startswith("Exited (137)")
        assert got["NetworkSettings"]["Networks"]["dy-listnet"]["IPAddress"] == ""
    finally:
        d.request("DELETE", f"/containers/{cid}?force=1")
        if net:
            d.request("DELETE", f"/networks/{net}")
    assert all(c["Id"] != cid for c in d.ok("GET", "/containers/json?all=1"))
