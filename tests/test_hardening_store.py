"""Issue 13, hardening: a private store and run dir, ``logs`` that streams, a linear Env merge,
and an HTTP layer whose idle connections hold no thread, whose big bodies leave no memory behind
and whose own errors are dockerd's JSON.

The daemon tests run ``dockyard daemon`` (a subprocess) on a root whose parent is world
readable, so only the store's own modes keep a user out; users are checked by running
``runuser -u nobody``."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from support import need, needs_root, stop_daemon
from test_daemon import Daemon, UnixConnection, runtime_available

SECRET = "s3cr3t-" + os.urandom(6).hex()


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(str(path))]


def _status(pid: int, field: str) -> int:
    """A /proc/PID/status size field (VmRSS, VmHWM) in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture
def hd(rootfs_tar):
    """A daemon on a root and run dir under a 0755 directory in /tmp, image ``bb`` imported."""
    if not runtime_available():
        pytest.skip("dockyard-runtime is not built")
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(tempfile.mkdtemp(prefix="dyh-", dir="/tmp"))
    os.chmod(base, 0o755)
    root, run = base / "root", base / "run"
    from dockyard import Engine

    with Engine(root) as engine:
        engine.import_image(str(rootfs_tar), "bb", changes=['CMD ["/bin/sh"]'])
    d = Daemon(root, run)
    d.log = base / "daemon.log"
    try:
        d.start()
        yield d
    finally:
        try:
            if d.proc is not None and d.proc.poll() is None:
                for c in d.ok("GET", "/containers/json?all=1"):
                    d.request("DELETE", f"/containers/{c['Id']}?force=1&v=1")
                d.stop()
        finally:
            if d.proc is not None and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
            stop_daemon(run, root)
            mounts = _mounts_under(base)
            for m in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", m], check=False)
            shutil.rmtree(base, ignore_errors=True)
    assert mounts == []


def _run(d: Daemon, *cmd: str, **extra) -> str:
    code, value, _ = d.request("POST", "/containers/create", {"Image": "bb", "Cmd": list(cmd), **extra})
    assert code == 201, value
    cid = value["Id"]
    d.ok("POST", f"/containers/{cid}/start")
    return cid


def _wait(d: Daemon, cid: str) -> int:
    return d.ok("POST", f"/containers/{cid}/wait")["StatusCode"]


def _as_nobody(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([need("runuser"), "-u", "nobody", "--", *args], capture_output=True, cwd="/",
                          timeout=120)


# -- 1. the store is private ------------------------------------------------------------------------

@needs_root
def test_store_and_run_dir_unreadable_by_other_users(hd):
    """A container's secret env (config.json, state.db) and output (its log) are out of reach
    of ``nobody``, in the store the daemon made and in one it adopts with loose modes."""
    cid = _run(hd, "sh", "-c", "echo $SECRET_TOKEN; sleep 1000", Env=[f"SECRET_TOKEN={SECRET}"])
    found = subprocess.run(["grep", "-rl", SECRET, str(hd.root)], capture_output=True, text=True).stdout
    assert "config.json" in found or "state.db" in found  # (root sees it: the check below means something)
    for where in (hd.root, hd.run):
        assert os.stat(where).st_mode & 0o777 == 0o710, oct(os.stat(where).st_mode)
        leak = _as_nobody("grep", "-r", SECRET, str(where))
        assert SECRET.encode() not in leak.stdout and leak.returncode != 0, leak
        assert _as_nobody("ls", str(where)).returncode != 0
    for private in (hd.root / "state.db", hd.root / "containers" / cid / "bundle" / "config.json"):
        assert os.stat(private).st_mode & 0o077 == 0, private  # (0600, as dockerd's)
    hd.request("POST", f"/containers/{cid}/kill")
    _wait(hd, cid)

    # an older store: everything 0755/0644 -- the daemon tightens it when it opens it
    hd.stop()
    for dirpath, dirnames, filenames in os.walk(hd.root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o644)
    os.chmod(hd.run, 0o755)
    assert SECRET.encode() in _as_nobody("grep", "-r", SECRET, str(hd.root)).stdout  # (the leak, as it was)
    hd.start()
    for where in (hd.root, hd.run):
        assert os.stat(where).st_mode & 0o777 == 0o710
        assert SECRET.encode() not in _as_nobody("grep", "-r", SECRET, str(where)).stdout
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        if (hd.root / name).exists():
            assert os.stat(hd.root / name).st_mode & 0o077 == 0, name


@needs_root
def test_user_nobody_container_reads_its_rootfs_and_volume(hd):
    """The store's 0710 is above the container's mounts: a ``--user nobody`` process still
    reads its image files and a named volume (and writes where the image lets it: /tmp)."""
    hd.ok("POST", "/volumes/create", {"Name": "hvol"})
    seed = _run(hd, "sh", "-c", "echo from-volume > /data/f", HostConfig={"Binds": ["hvol:/data"]})
    assert _wait(hd, seed) == 0
    cid = _run(hd, "sh", "-c", "id -u; cat /etc/passwd | wc -l; cat /data/f; echo ok > /tmp/w && cat /tmp/w",
               User="nobody", HostConfig={"Binds": ["hvol:/data"]})
    assert _wait(hd, cid) == 0
    _, raw, _ = hd.request("GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
    text = _demux(raw)
    assert text.split() == ["65534", "2", "from-volume", "ok"], text


def _demux(raw: bytes) -> str:
    out, i = [], 0
    while i + 8 <= len(raw):
        n = int.from_bytes(raw[i + 4:i + 8], "big")
        out.append(raw[i + 8:i + 8 + n])
        i += 8 + n
    return b"".join(out).decode()


# -- 2. logs streams ----------------------------------------------------------------------------------

@needs_root
def test_logs_of_a_200mb_log_in_bounded_memory_and_tail_from_the_end(hd):
    """A container writes ~200 MB of log; ``logs`` of all of it grows the daemon's peak RSS by
    under 64 MB (it read the whole file into memory: 1.38 GB), and ``--tail 10`` reads from the
    end (it took 5.5 s)."""
    line = "0123456789" * 50  # 501 bytes a line with its newline; ~560 in the log
    lines = 360_000
    cid = _run(hd, "sh", "-c", f"busybox yes {line} | busybox head -n {lines}; echo last-line")
    assert _wait(hd, cid) == 0
    log = hd.root / "containers" / cid / f"{cid}-json.log"
    size = log.stat().st_size
    assert size > 190_000_000, size

    pid = hd.proc.pid
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    before = _status(pid, "VmRSS")
    conn = UnixConnection(hd.sock, 300)
    conn.request("GET", f"/containers/{cid}/logs?stdout=1&stderr=1&timestamps=1")
    resp = conn.getresponse()
    assert resp.status == 200
    got, tail = 0, b""
    while chunk := resp.read(1 << 20):
        got += len(chunk)
        tail = (tail + chunk)[-4096:]
    conn.close()
    grew = _status(pid, "VmHWM") - before
    print(f"\nlogs of a {size / 1e6:.0f} MB log: {got / 1e6:.0f} MB sent, daemon peak RSS +{grew / 1e6:.1f} MB")
    assert got > lines * len(line)
    assert tail.endswith(b"last-line\n")
    assert grew < 64 << 20, f"peak RSS grew by {grew / 1e6:.0f} MB"

    best = None
    for _ in range(3):
        t0 = time.monotonic()
        code, raw, _ = hd.request("GET", f"/containers/{cid}/logs?stdout=1&tail=10")
        took = time.monotonic() - t0
        best = took if best is None else min(best, took)
        assert code == 200
        assert _demux(raw).splitlines() == [line] * 9 + ["last-line"]
    print(f"logs --tail 10 of it: {best * 1000:.1f} ms (best of 3)")
    assert best < 2.0  # generous: the point is it no longer scales with the log (5.5 s before)


@needs_root
def test_logs_follow_streams_new_lines_and_ends_with_the_container(hd):
    """``-f`` gets what is written after it started, ends at the exit, honours ``tail`` and
    ``timestamps``, and a client that hangs up ends the daemon's side."""
    fifo_dir = Path(tempfile.mkdtemp(prefix="dyf-", dir="/tmp"))
    try:
        (fifo_dir / "go").write_text("")
        cid = _run(hd, "sh", "-c", "echo before; while [ ! -e /g/stop ]; do if [ -e /g/go2 ]; then "
                   "echo after; rm /g/go2; fi; sleep 0.05; done; echo end >&2",
                   HostConfig={"Binds": [f"{fifo_dir}:/g"]})
        conn = UnixConnection(hd.sock, 60)
        conn.request("GET", f"/containers/{cid}/logs?stdout=1&stderr=1&follow=1&tail=1&timestamps=1")
        resp = conn.getresponse()
        assert resp.status == 200

        def frame() -> tuple[int, bytes]:
            head = _read_exactly(resp, 8)
            return head[0], _read_exactly(resp, int.from_bytes(head[4:8], "big"))

        kind, data = frame()
        assert kind == 1 and data.endswith(b" before\n") and data[:4].isdigit()
        (fifo_dir / "go2").write_text("")
        kind, data = frame()
        assert kind == 1 and data.endswith(b" after\n")
        (fifo_dir / "stop").write_text("")
        kind, data = frame()
        assert kind == 2 and data.endswith(b" end\n")
        assert resp.read() == b""  # the stream ended with the container
        conn.close()
        assert _wait(hd, cid) == 0

        # a client that goes away while following: the daemon stops following it
        cid2 = _run(hd, "sleep", "1000")
        threads = _threads(hd.proc.pid)
        socks = []
        for _ in range(5):
            s = socket.socket(socket.AF_UNIX)
            s.connect(hd.sock)
            s.sendall(f"GET /containers/{cid2}/logs?stdout=1&follow=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert s.recv(12) == b"HTTP/1.1 200"
            socks.append(s)
        assert _threads(hd.proc.pid) >= threads + 5
        for s in socks:
            s.close()
        deadline = time.monotonic() + 10
        while _threads(hd.proc.pid) > threads and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _threads(hd.proc.pid) <= threads
        hd.request("POST", f"/containers/{cid2}/kill")
    finally:
        shutil.rmtree(fifo_dir, ignore_errors=True)


def _read_exactly(resp, n: int) -> bytes:
    """``n`` bytes of a chunked body (http.client decodes the chunks; read(n) waits for n)."""
    data = resp.read(n)
    assert len(data) == n, f"stream ended after {len(data)} of {n} bytes"
    return data


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


# -- 3. Env merge ---------------------------------------------------------------------------------------

def _merge_env_reference(base: list[str], override: list[str]) -> list[str]:
    """The old quadratic merge: the meaning the linear one must keep."""
    out = list(base)
    for item in override:
        key = item.split("=", 1)[0]
        out = [e for e in out if e.split("=", 1)[0] != key]
        out.append(item)
    return out


def test_merge_env_is_the_same_merge():
    from dockyard.engine.containers import merge_env

    rng = random.Random(13)
    for _ in range(3000):
        def env() -> list[str]:
            return [rng.choice("ABCDE") + ("=" + str(rng.randint(0, 9)) if rng.random() < 0.9 else "")
                    for _ in range(rng.randint(0, 7))]
        base, override = env(), env()
        assert merge_env(base, override) == _merge_env_reference(base, override), (base, override)
    assert merge_env(["PATH=/bin", "A=1"], ["A=2", "B=3", "A=4"]) == ["PATH=/bin", "B=3", "A=4"]


@needs_root
def test_create_with_100000_env_entries(hd):
    """100,000 entries, half overriding the image's: created at once (it took 454 s)."""
    env = [f"K{i}=v{i}" for i in range(100_000)]
    t0 = time.monotonic()
    code, value, _ = hd.request("POST", "/containers/create", {"Image": "bb", "Cmd": ["true"], "Env": env},
                                timeout=300)
    took = time.monotonic() - t0
    assert code == 201, value
    got = hd.ok("GET", f"/containers/{value['Id']}/json")["Config"]["Env"]
    assert got[-100_000:] == env
    print(f"\ncreate with 100,000 Env entries: {took:.2f} s")


# -- 4. the HTTP layer ----------------------------------------------------------------------------------

@pytest.fixture
def http_server(tmp_path):
    """The daemon's HTTP server in this process on a private socket, with a few routes."""
    from dockyard.daemon.http import Router, make_server

    router = Router()
    router.add("GET", "/_ping", lambda d, req: __import__("dockyard.daemon.http", fromlist=["Reply"]).Reply(
        200, b"OK", "text/plain"))
    router.add("POST", "/echo", lambda d, req: {"n": len(json.dumps(req.json()))})
    sock = Path(tempfile.mkdtemp(prefix="dyhttp-", dir="/tmp")) / "s.sock"
    server = make_server(str(sock), router, object(), idle_timeout=1.0, header_timeout=1.0)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    server.sock_path = str(sock)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(sock.parent, ignore_errors=True)


def _raw(path: str, data: bytes, timeout: float = 10) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    try:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out
    finally:
        s.close()


def _response(s: socket.socket) -> bytes:
    """One whole response (headers and Content-Length body) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += s.recv(4096)
    return head + b"\r\n\r\n" + body


def _body(resp: bytes) -> tuple[int, dict, object]:
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_idle_connections_hold_no_thread_and_time_out(http_server):
    """300 idle keep-alive connections: no thread each (they wait in one selector), and each is
    closed after the idle timeout; a connection that starts a request line and stalls is cut
    after the header timeout."""
    base = threading.active_count()
    conns = []
    try:
        for _ in range(300):
            s = socket.socket(socket.AF_UNIX)
            s.connect(http_server.sock_path)
            conns.append(s)
        for s in conns[:50]:  # some have served a request and stay open (keep-alive)
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _response(s).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 5
        while http_server.idle_connections() < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert http_server.idle_connections() == 300
        assert threading.active_count() <= base + 5, threading.active_count()
        # a parked connection still serves its next request
        conns[0].sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(conns[0]).startswith(b"HTTP/1.1 200")
        # and all are closed once idle for the timeout (1 s here)
        for s in conns:
            s.settimeout(10)
            assert s.recv(4096) == b""
        assert http_server.idle_connections() == 0
        # slow headers
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(http_server.sock_path)
        s.sendall(b"GET /_ping HTTP/1.1\r\nHo")
        t0 = time.monotonic()
        assert s.recv(4096) == b""
        assert time.monotonic() - t0 < 8
        s.close()
    finally:
        for s in conns:
            s.close()


def test_a_client_that_stops_sending_is_closed_not_spun_on(http_server):
    """A keep-alive client that shuts its write side (or hangs up) after a request: its
    connection is closed, and the idle watcher does not wake on its end of stream again and
    again (the server's CPU time stays near nothing while the client holds its socket)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(http_server.sock_path)
    try:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(s).startswith(b"HTTP/1.1 200")
        s.shutdown(socket.SHUT_WR)
        assert s.recv(4096) == b""  # the server closed its side
        cpu0 = time.process_time()
        time.sleep(1.0)
        assert time.process_time() - cpu0 < 0.3  # (the spin took a whole core)
        assert http_server.idle_connections() == 0
    finally:
        s.close()


def test_unknown_methods_and_long_urls_get_dockerd_json(http_server):
    """dockerd's answers: an unknown method or route is 404 ``page not found``; a request line
    over 1 MiB is 431; a malformed one 400 -- all JSON, never the stdlib's HTML page."""
    for method in ("PATCH", "OPTIONS", "DELETE"):
        code, headers, body = _body(_raw(http_server.sock_path, f"{method} /_ping HTTP/1.1\r\nHost: x\r\n"
                                         "Connection: close\r\n\r\n".encode()))
        assert code == 404 and body == {"message": "page not found"} and headers["Content-Type"] == "application/json"
    # 70 KB of URL is fine (dockerd too), over 1 MiB is not
    code, _, body = _body(_raw(http_server.sock_path, b"GET /nosuch?x=" + b"a" * 70_000 +
                               b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert code == 404 and body == {"message": "page not found"}
    code, headers, body = _body(_raw(http_server.sock_path, b"GET /_ping?x=" + b"a" * (1 << 20) +
                                     b" HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert code == 431 and "message" in body and headers["Content-Type"] == "application/json"
    code, _, body = _body(_raw(http_server.sock_path, b"GET /_ping HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 70_000 +
                               b"\r\n\r\n"))
    assert code == 431 and "message" in body
    code, _, body = _body(_raw(http_server.sock_path, b"NONSENSE\r\n\r\n"))
    assert code == 400 and "message" in body
    # a body sent with an unknown route does not become the next request
    out = _raw(http_server.sock_path, b"PATCH /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
               b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 ") == 2 and out.endswith(b"OK")


def test_a_50mb_body_leaves_no_memory_behind(http_server):
    """A 50 MB JSON body is read once into one buffer and its memory goes back afterwards (it
    left ~300 MB of RSS behind)."""
    payload = json.dumps({"Labels": {f"k{i}": "v" * 40 for i in range(1_000_000)}}).encode()
    assert len(payload) > 50_000_000
    pid = os.getpid()
    rss_before = _status(pid, "VmRSS")
    for _ in range(2):
        s = socket.socket(socket.AF_UNIX)
        s.connect(http_server.sock_path)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(payload))
        s.sendall(payload)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        s.close()
        assert out.startswith(b"HTTP/1.1 200")
    import gc

    gc.collect()
    left = _status(pid, "VmRSS") - rss_before
    print(f"\nRSS left after two 50 MB bodies: {left / 1e6:.1f} MB")
    assert left < 32 << 20, f"{left / 1e6:.0f} MB left behind"  # (84 MB before the fix, here)


def test_write_atomic_leaves_no_temp_file_when_the_disk_is_full(tmp_path):
    """ENOSPC (a full tmpfs) in the middle of a write: the old file stays, no temp file stays."""
    from dockyard.engine.store import write_atomic

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    try:
        write_atomic(mnt / "state.json", b"old")
        with pytest.raises(OSError) as info:
            write_atomic(mnt / "state.json", b"x" * (1 << 20))
        assert info.value.errno == 28  # ENOSPC
        assert sorted(os.listdir(mnt)) == ["state.json"]
        assert (mnt / "state.json").read_bytes() == b"old"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@needs_root
def test_failed_start_leaves_no_attach_socket(hd):
    """A start that fails (a command the image lacks; a cpuset this machine lacks) leaves
    nothing in the run dir's attach/, nor does a container that ran and exited."""
    attach = hd.run / "attach"
    cid = _run(hd, "sh", "-c", "exit 3")
    assert _wait(hd, cid) == 3
    assert not attach.exists() or os.listdir(attach) == [], os.listdir(attach)
    made = [hd.request("POST", "/containers/create", {"Image": "bb", "Cmd": ["/no/such/program"]})]
    made.append(hd.request("POST", "/containers/create",
                           {"Image": "bb", "Cmd": ["true"], "HostConfig": {"CpusetCpus": "1000"}}))
    assert made[0][0] == 201, made[0][1]
    for code, value, _ in made:
        if code != 201:
            continue  # (a cpuset the runtime cannot apply may be refused at create already)
        for _ in range(2):
            code, body, _ = hd.request("POST", f"/containers/{value['Id']}/start")
            assert code >= 400, body
            assert not attach.exists() or os.listdir(attach) == [], os.listdir(attach)


@needs_root
def test_daemon_keeps_no_memory_of_a_50mb_body(hd):
    """The issue's case against the real daemon: creates with a 50 MB body (its memory stayed:
    here 30 MB more after each, measured on the code before the fix)."""
    labels = {f"label.{i}": "v" * 40 for i in range(1_000_000)}
    body = json.dumps({"Image": "nosuchimage", "Labels": labels}).encode()
    del labels
    pid = hd.proc.pid
    hd.request("GET", "/containers/json")  # (the first request's imports are not the body's)
    before = _status(pid, "VmRSS")
    conn = UnixConnection(hd.sock, 300)
    try:
        for _ in range(2):
            conn.request("POST", "/containers/create", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 404, resp.read()
            resp.read()
            # the next request on this connection is read once the last one's handler is done
            # (its objects freed): the memory is measured after that, not mid-way
            conn.request("GET", "/_ping")
            conn.getresponse().read()
    finally:
        conn.close()
    left = _status(pid, "VmRSS") - before
    print(f"\ndaemon RSS left after two 50 MB creates: {left / 1e6:.1f} MB")
    assert left < 24 << 20, f"{left / 1e6:.0f} MB left behind"
