"""Pull streams each layer through the extractor as it downloads, layers in parallel (issue 20).

A proxy on loopback stands between the client and dockyard's own registry server (``serve``)
and cuts a layer's connection part-way through the blob: the pull must resume with a Range
request and finish, or, when the registry cuts every time, fail in one line and leave the store
exactly as it was.  Nothing here leaves the machine.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dockyard import _native
from dockyard.registry.client import Registry
from dockyard.registry.pull import pull
from dockyard.registry.common import RegistryError


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "dyconfig"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockerconfig"))
    monkeypatch.delenv("DOCKYARD_MAX_CONCURRENT_DOWNLOADS", raising=False)


@pytest.fixture
def fresh(tmp_path):
    from dockyard import Engine

    eng = Engine(tmp_path / "fresh-root")
    try:
        yield eng
    finally:
        eng.close()


def store_is_empty(engine) -> None:
    db = engine.store.db
    for table in ("images", "layers", "tags", "repo_digests"):
        assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    root = engine.root
    assert os.listdir(root / "blobs" / "sha256") == []
    assert os.listdir(root / "layers") == []
    assert os.listdir(root / "tmp") == []
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if f" {root}/" in line], "a mount was left under the store"


def partials(engine) -> dict[str, int]:
    """The blob prefixes a pull kept for the next one (digest: bytes held)."""
    path = engine.root / "partial"
    if not path.is_dir():
        return {}
    return {"sha256:" + p.name: p.stat().st_size for p in path.iterdir()}


# -- an image made by hand, N layers, any compression ------------------------------------------------


class Image:
    def __init__(self, repo: str, tag: str, layers: list[dict], config: bytes, files: dict[str, bytes]) -> None:
        self.repo, self.tag, self.layers, self.config, self.files = repo, tag, layers, config, files
        self.id = "sha256:" + hashlib.sha256(config).hexdigest()


def push_image(addr: str, tmp_path: Path, repo: str, compressions: list[str], file_size: int = 1 << 20,
               files_per_layer: int = 3) -> Image:
    """An image of one layer per entry of ``compressions`` (gzip, zstd, none), each with
    ``files_per_layer`` files of ``file_size`` bytes (half random, half text), uploaded to the
    registry at ``addr`` as an OCI manifest."""
    rnd = random.Random(len(compressions) * 1000 + file_size)
    layers, diff_ids, files = [], [], {}
    reg = Registry(addr)
    try:
        for n, compression in enumerate(compressions):
            src = tmp_path / f"src{n}"
            (src / f"d{n}").mkdir(parents=True)
            for i in range(files_per_layer):
                data = rnd.randbytes(file_size // 2) + b"text that compresses\n" * (file_size // 42)
                (src / f"d{n}" / f"f{i}").write_bytes(data)
                files[f"d{n}/f{i}"] = data
            out = tmp_path / f"layer{n}"
            info = _native.pack(str(src), str(out), compression=compression)
            blob = out.read_bytes()
            media = "application/vnd.oci.image.layer.v1.tar" + {"gzip": "+gzip", "zstd": "+zstd", "none": ""}[compression]
            layers.append({"mediaType": media, "digest": upload(reg, repo, blob), "size": len(blob)})
            diff_ids.append(info["diff_id"])
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        upload(reg, repo, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
            "layers": layers}).encode()
        reg.request("PUT", f"/v2/{repo}/manifests/v1", (f"repository:{repo}:pull,push",),
                    {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                     "Content-Length": str(len(manifest))}, body=manifest, ok=(201,)).drain()
    finally:
        reg.close()
    return Image(repo, "v1", layers, config, files)


def upload(r: Registry, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    scopes = (f"repository:{repo}:pull,push",)
    resp = r.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", scopes,
                     {"Content-Length": str(len(data))}, body=data, ok=(201, 202))
    resp.drain()
    if resp.status == 202:
        loc = resp.headers["Location"]
        loc += ("&" if "?" in loc else "?") + f"digest={digest}"
        r.request("PUT", loc, scopes, {"Content-Length": str(len(data))}, body=data, ok=(201,)).drain()
    return digest


class Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up on purpose is no news


# -- a proxy that cuts ----------------------------------------------------------------------------------


class CuttingProxy:
    """Forwards every request to ``upstream``; a GET of the blob ``victim`` is cut after
    ``cut_at`` bytes of its body, ``cuts`` times (``None``: every time).  With ``honour_range``
    off, the Range header is not passed on (the registry starts over with a 200).  Every
    Range header that the client sent for the victim is recorded."""

    def __init__(self, upstream: str, victim: str, cut_at: int, cuts: int | None = 1,
                 honour_range: bool = True) -> None:
        self.upstream, self.victim, self.cut_at = upstream, victim, cut_at
        self.cuts_left, self.honour_range = cuts, honour_range
        self.ranges: list[str] = []
        self.victim_gets = 0
        self.blob_gets: dict[str, int] = {}  # every blob's GETs, victim or not
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                is_victim = self.command == "GET" and self.path.endswith(f"/blobs/{outer.victim}")
                cut = False
                if self.command == "GET" and "/blobs/" in self.path:
                    with outer.lock:
                        blob = self.path.rsplit("/", 1)[1]
                        outer.blob_gets[blob] = outer.blob_gets.get(blob, 0) + 1
                if is_victim:
                    with outer.lock:
                        outer.victim_gets += 1
                        if "Range" in headers:
                            outer.ranges.append(headers["Range"])
                        if outer.cuts_left is None or outer.cuts_left > 0:
                            cut = True
                            if outer.cuts_left is not None:
                                outer.cuts_left -= 1
                    if not outer.honour_range:
                        headers.pop("Range", None)
                conn = http.client.HTTPConnection(outer.upstream, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    if cut:
                        # Part of the body, then the line drops.
                        self.wfile.write(data[: outer.cut_at])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _forward

        self.server = Quiet(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxies():
    made: list[CuttingProxy] = []

    def make(*a, **kw) -> CuttingProxy:
        made.append(CuttingProxy(*a, **kw))
        return made[-1]

    yield make
    for p in made:
        p.stop()


def layer_file(engine, image: Image, path: str) -> bytes:
    """A file of the image, read from the layer directory that holds it."""
    for layer in engine.images.layers(image.id):
        candidate = engine.store.layer_path(layer["chain_id"]) / path
        if candidate.exists():
            return candidate.read_bytes()
    raise AssertionError(f"{path} is in no layer of {image.id}")


def check_pulled(engine, image: Image) -> None:
    layers = engine.images.layers(image.id)
    assert [l["blob"] for l in layers] == [d["digest"] for d in image.layers]
    for layer, desc in zip(layers, image.layers):
        blob = engine.store.blob_path(layer["blob"])
        assert _native.sha256_file(str(blob)) == desc["digest"]
    for path, data in image.files.items():
        assert layer_file(engine, image, path) == data, path
    assert os.listdir(engine.root / "tmp") == []
    assert partials(engine) == {}


# -- tests ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_cut_mid_blob_resumes_with_range(serve, fresh, tmp_path, proxies, compression):
    """The victim layer's first GET drops after a third of its bytes (already on their way
    through the extractor): the client asks for the rest with Range and the stream goes on."""
    reg = serve()
    image = push_image(reg.addr, tmp_path, "cut/img", ["gzip", compression, "gzip"])
    victim = image.layers[1]
    cut_at = victim["size"] // 3
    proxy = proxies(reg.addr, victim["digest"], cut_at)
    lines: list[str] = []
    (res,) = pull(fresh, f"{proxy.addr}/cut/img:v1",
                  progress=lambda l, s, c=None, t=None: lines.append(f"{l}: {s}"))
    assert res.image_id == image.id
    assert proxy.ranges == [f"bytes={cut_at}-"]
    check_pulled(fresh, image)
    short = victim["digest"][7:19]
    mine = [line.split(": ", 1)[1] for line in lines if line.startswith(short + ": ")]
    # docker's order of a layer's lines
    want = ["Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Extracting",
            "Pull complete"]
    assert [s for i, s in enumerate(mine) if i == 0 or s != mine[i - 1]] == want


def test_registry_that_ignores_range_is_skipped_ahead(serve, fresh, tmp_path, proxies):
    """The registry answers the Range request with the whole blob (200): the bytes the
    extractor has already had are skipped, not fed twice."""
    reg = serve()
    image = push_image(reg.addr, tmp_path, "norange/img", ["gzip"])
    victim = image.layers[0]
    proxy = proxies(reg.addr, victim["digest"], victim["size"] // 2, honour_range=False)
    (res,) = pull(fresh, f"{proxy.addr}/norange/img:v1")
    assert res.image_id == image.id
    assert proxy.ranges == [f"bytes={victim['size'] // 2}-"]
    check_pulled(fresh, image)


@pytest.mark.parametrize("cut_at", [0, 1, 4096])
def test_cut_every_time_fails_cleanly_and_the_next_pull_resumes(serve, fresh, tmp_path, proxies, cut_at):
    """A connection cut on every try (3, as docker): the pull fails in one line, every layer
    (the ones that arrived whole too) is gone, the store is as before.  What arrived is kept
    aside by digest (``partial/``), so the next pull fetches only what is missing: the cut
    blob from where it stopped (Range), the whole ones not at all."""
    reg = serve()
    image = push_image(reg.addr, tmp_path, "flaky/img", ["gzip", "zstd", "gzip"])
    victim = image.layers[2]
    proxy = proxies(reg.addr, victim["digest"], cut_at, cuts=None)
    with pytest.raises(RegistryError, match="cut short") as info:
        pull(fresh, f"{proxy.addr}/flaky/img:v1")
    assert len(str(info.value).splitlines()) == 1
    assert proxy.victim_gets == 3
    if cut_at:
        assert proxy.ranges == [f"bytes={cut_at}-", f"bytes={2 * cut_at}-"]
    store_is_empty(fresh)
    kept = {d["digest"]: d["size"] for d in image.layers[:2]}
    if cut_at:
        kept[victim["digest"]] = 3 * cut_at
    assert partials(fresh) == kept
    # The line is whole again.
    proxy.cuts_left = 0
    before = dict(proxy.blob_gets)
    (res,) = pull(fresh, f"{proxy.addr}/flaky/img:v1")
    assert res.image_id == image.id
    check_pulled(fresh, image)
    assert proxy.ranges[2:] == ([f"bytes={3 * cut_at}-"] if cut_at else [])
    fetched = {d: n - before.get(d, 0) for d, n in proxy.blob_gets.items()
               if n != before.get(d, 0) and d != image.id}  # (the config is fetched again: small)
    assert fetched == {victim["digest"]: 1}, "a layer that had arrived whole was fetched again"
    assert partials(fresh) == {}


def test_a_bad_kept_prefix_is_fetched_again_whole(serve, fresh, tmp_path, proxies):
    """A kept prefix whose bytes are wrong (what a crash can leave in a file's last pages):
    the digest over prefix + rest fails, and the layer is fetched once more from byte 0."""
    reg = serve()
    image = push_image(reg.addr, tmp_path, "badprefix/img", ["gzip"])
    victim = image.layers[0]
    proxy = proxies(reg.addr, victim["digest"], 0, cuts=0)
    part = fresh.root / "partial"
    part.mkdir(mode=0o700)
    (part / victim["digest"][7:]).write_bytes(b"\0" * (victim["size"] // 2))
    (res,) = pull(fresh, f"{proxy.addr}/badprefix/img:v1")
    assert res.image_id == image.id
    check_pulled(fresh, image)
    assert proxy.ranges == [f"bytes={victim['size'] // 2}-"]
    assert proxy.blob_gets[victim["digest"]] == 2
    assert partials(fresh) == {}


def test_tampered_layer_among_parallel_ones_leaves_nothing(serve, fresh, tmp_path):
    """One layer of three has bytes that do not match its digest: whichever layers finished
    are removed with it; the error names the layer."""
    reg = serve()
    image = push_image(reg.addr, tmp_path, "evil/img", ["gzip", "gzip", "zstd"])
    victim = image.layers[1]
    path = Path(reg.server.root if hasattr(reg.server, "root") else tmp_path / "registry0")
    blobs = [p for p in path.rglob(victim["digest"].split(":")[1]) if p.is_file() and p.stat().st_size == victim["size"]]
    if not blobs:
        pytest.skip("cannot find the registry's copy of the blob to tamper with")
    data = bytearray(blobs[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    blobs[0].write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="does not match its digest"):
        pull(fresh, f"{reg.addr}/evil/img:v1")
    store_is_empty(fresh)


def test_layers_are_extracted_while_they_download(serve, fresh, tmp_path, proxies, monkeypatch):
    """The extractor sees bytes before the download ends: a proxy that holds the rest of a
    blob until the first part has been written to the layer directory proves it."""
    reg = serve()
    image = push_image(reg.addr, tmp_path, "stream/img", ["none"], file_size=4 << 20, files_per_layer=2)
    victim = image.layers[0]
    seen_early = threading.Event()
    first = len(image.files["d0/f0"])
    staging = fresh.root / "tmp"

    class Gate(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            conn = http.client.HTTPConnection(reg.addr, timeout=30)
            try:
                conn.request("GET", self.path, headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.path.endswith(victim["digest"]):
                # The first file and a bit, then wait until it is on disk in the staging dir.
                head = (5 << 20) + 4096
                self.wfile.write(data[:head])
                self.wfile.flush()
                for _ in range(200):
                    if any(p.name == "f0" and p.stat().st_size == first for p in staging.rglob("f0")):
                        seen_early.set()
                        break
                    threading.Event().wait(0.05)
                self.wfile.write(data[head:])
            else:
                self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gate)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        (res,) = pull(fresh, f"127.0.0.1:{server.server_address[1]}/stream/img:v1")
    finally:
        server.shutdown()
        server.server_close()
    assert seen_early.is_set(), "the first file was not extracted before the blob ended"
    assert res.image_id == image.id
    check_pulled(fresh, image)


def resident_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache (mincore over a mapping of it)."""
    import ctypes
    import mmap

    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            vec = ctypes.create_string_buffer(pages)
            assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
            return sum(b & 1 for b in vec.raw)
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


@pytest.mark.parametrize("prefix", [0, 4096, 1000])
def test_kept_blob_is_written_past_the_page_cache(tmp_path, prefix):
    """The compressed blob the store keeps goes to its file with direct I/O: every byte, in
    order, from pieces of any size, however the download ends (a cut keeps what came, for the
    next pull to go on from); its pages do not stay in memory, but the tail's.  A prefix from
    an earlier pull that ends off a block boundary is continued through the cache."""
    from dockyard.registry.pull import _Appender

    rng = random.Random(prefix)
    data = rng.randbytes(3 * (1 << 20) + 12345)
    path = tmp_path / "blob"
    path.write_bytes(data[:prefix])
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        out = _Appender(fd, prefix)
        assert (out.buf is None) == bool(prefix % 4096), "direct I/O was refused where the test's files are"
        at = prefix
        try:
            while at < len(data):
                step = rng.choice([1, 17, 4096, 65536, 1 << 20, 1 << 21])
                out.write(memoryview(data)[at:at + step])
                at = min(at + step, len(data))
                if at > len(data) // 2:
                    raise KeyboardInterrupt  # a download cut part-way
        except KeyboardInterrupt:
            pass
        finally:
            out.close()
        assert os.lseek(fd, 0, os.SEEK_CUR) == at
        if prefix % 4096 == 0:
            # what went past the cache is not in it: the prefix was dropped, the tail's page stays
            assert resident_pages(path) <= 2
        assert path.read_bytes() == data[:at]
        out = _Appender(fd, at)  # the next pull goes on from there
        out.write(memoryview(data)[at:])
        out.close()
    finally:
        os.close(fd)
    assert path.read_bytes() == data


def test_kept_blob_goes_through_the_cache_on_a_slow_device(tmp_path, monkeypatch):
    """A direct write slower than the threshold (here: any) turns the rest of the blob to
    ordinary writes, the bytes staged so far first: the file is whole and in order, and what
    came after is in the page cache."""
    from dockyard.registry.pull import CHUNK, _Appender

    monkeypatch.setattr(_Appender, "SLOW", 0.0)
    data = random.Random(7).randbytes(4 * CHUNK + 999)
    path = tmp_path / "blob"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        out = _Appender(fd, 0)
        assert out.buf is not None
        for at in range(0, len(data), 300000):
            out.write(memoryview(data)[at:at + 300000])
        assert out.buf is None  # the first flush found the device slow
        out.close()
    finally:
        os.close(fd)
    assert resident_pages(path) >= (len(data) - 2 * CHUNK) // 4096
    assert path.read_bytes() == data


def test_daemon_killed_mid_pull_leaves_nothing_and_the_next_pull_completes(serve, tmp_path, cli):
    """SIGKILL to the daemon while a layer is half-way through the extractor (the registry
    holds the rest back): after a restart no image, layer, blob or staging directory of it is
    there, and the same pull completes, asking for the rest of the cut layer with Range."""
    import signal
    import subprocess
    import sys

    from dockyard.engine.store import pid_alive

    reg = serve()
    image = push_image(reg.addr, tmp_path, "killed/img", ["gzip", "zstd"], file_size=2 << 20)
    victim = image.layers[1]
    half_sent, release = threading.Event(), threading.Event()
    ranges: list[str] = []

    class Stall(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            conn = http.client.HTTPConnection(reg.addr, timeout=30)
            try:
                conn.request("GET", self.path, headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            if self.path.endswith(victim["digest"]) and "Range" in self.headers:
                ranges.append(self.headers["Range"])
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.path.endswith(victim["digest"]) and not release.is_set():
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                half_sent.set()
                release.wait(60)
                self.close_connection = True
                return
            self.wfile.write(data)

    server = Quiet(("127.0.0.1", 0), Stall)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    name = f"127.0.0.1:{server.server_address[1]}/killed/img:v1"
    root = Path(cli.root)
    exe = Path(sys.executable).with_name("dockyard")
    puller = subprocess.Popen([str(exe), "pull", name], env=cli.env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        assert half_sent.wait(60), "the pull never reached the victim layer"
        # What came of the blob is kept aside (by digest; the client reads whole MiBs of
        # the body), and the extractor has begun staging.
        kept = root / "partial" / victim["digest"][7:]
        for _ in range(400):
            if kept.exists() and kept.stat().st_size and \
                    [p for p in (root / "tmp").rglob("*") if p.is_file()]:
                break
            threading.Event().wait(0.05)
        assert kept.exists() and kept.stat().st_size, "what came of the blob was not kept"
        staged = [p for p in (root / "tmp").rglob("*") if p.is_file()]
        assert staged, "nothing was staged while the blob was half-way"
        pid = int((Path(cli.run_dir) / "dockyard.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            if not pid_alive(pid):
                break
            threading.Event().wait(0.05)
        assert puller.wait(60) != 0
    finally:
        release.set()
        if puller.poll() is None:
            puller.kill()
            puller.wait()
    try:
        # The next command starts a daemon again; it sweeps what the dead one left.
        assert cli("images", "-q").stdout.strip() == b""
        assert os.listdir(root / "tmp") == []
        assert os.listdir(root / "layers") == []
        assert os.listdir(root / "blobs" / "sha256") == []
        held = kept.stat().st_size
        assert 0 < held <= victim["size"] // 2
        cli("pull", name)
        out = cli("image", "inspect", "--format", "{{.Id}}", name).stdout.decode().strip()
        assert out == image.id
        assert ranges == [f"bytes={held}-"]
        assert len(os.listdir(root / "layers")) == 2
        assert os.listdir(root / "tmp") == []
        assert os.listdir(root / "partial") == []
    finally:
        server.shutdown()
        server.server_close()


def test_interrupted_pull_keeps_what_came_and_the_next_resumes(serve, fresh, tmp_path, proxies):
    """Ctrl-C (KeyboardInterrupt) part-way through a layer, in-process: nothing is registered,
    nothing is staged, and the next pull asks for the rest of that layer with Range."""
    reg = serve()
    image = push_image(reg.addr, tmp_path, "intr/img", ["none"], file_size=4 << 20, files_per_layer=2)
    victim = image.layers[0]
    proxy = proxies(reg.addr, victim["digest"], 0, cuts=0)
    at: list[int] = []

    def progress(layer, status, current=None, total=None):
        if status == "Downloading" and current and current < (total or 0) and not at:
            at.append(current)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull(fresh, f"{proxy.addr}/intr/img:v1", progress=progress)
    store_is_empty(fresh)
    assert partials(fresh) == {victim["digest"]: at[0]}
    (res,) = pull(fresh, f"{proxy.addr}/intr/img:v1")
    assert res.image_id == image.id
    check_pulled(fresh, image)
    assert proxy.ranges == [f"bytes={at[0]}-"]


class InFlight(Quiet):
    """Forwards GETs to ``upstream``; counts the layer blobs being served at once (each held
    until three are in flight or ``hold`` seconds pass), so a limit shows as that maximum."""

    def __init__(self, upstream: str, layers: set[str], hold: float = 0.5, together: int = 3) -> None:
        self.now = self.most = 0
        self.cond = threading.Condition()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                layer = self.path.rsplit("/", 1)[1] in layers
                if layer:
                    with outer.cond:
                        outer.now += 1
                        outer.most = max(outer.most, outer.now)
                        outer.cond.notify_all()
                        outer.cond.wait_for(lambda: outer.now >= together, timeout=hold)
                try:
                    conn = http.client.HTTPConnection(upstream, timeout=30)
                    try:
                        conn.request("GET", self.path, headers={k: v for k, v in self.headers.items()
                                                                if k.lower() != "host"})
                        resp = conn.getresponse()
                        data = resp.read()
                    finally:
                        conn.close()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    if layer:
                        with outer.cond:
                            outer.now -= 1

        super().__init__(("127.0.0.1", 0), H)
        self.addr = f"127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.mark.parametrize("limit,most", [(None, 3), ("0", 3), ("2", 2)])
def test_max_concurrent_downloads_in_process(serve, fresh, tmp_path, monkeypatch, limit, most):
    """Three layers: three at once by default (dockerd's 3) and with 0 (no limit), two with 2."""
    reg = serve()
    image = push_image(reg.addr, tmp_path, "conc/img", ["gzip", "zstd", "gzip"], file_size=1 << 16)
    if limit is not None:
        monkeypatch.setenv("DOCKYARD_MAX_CONCURRENT_DOWNLOADS", limit)
    gate = InFlight(reg.addr, {d["digest"] for d in image.layers})
    try:
        (res,) = pull(fresh, f"{gate.addr}/conc/img:v1")
    finally:
        gate.stop()
    assert res.image_id == image.id
    assert gate.most == most


def test_daemon_option_max_concurrent_downloads(serve, tmp_path):
    """``dockyard daemon --max-concurrent-downloads 1``: its pulls take one layer at a time;
    a negative value is refused in dockerd's words."""
    import subprocess
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from support import stop_daemon

    exe = str(Path(sys.executable).with_name("dockyard"))
    root = tmp_path / "conc-root"
    run = Path(tempfile.mkdtemp(prefix="dyrun-", dir="/tmp"))
    env = dict(os.environ, DOCKYARD_ROOT=str(root), DOCKYARD_RUN=str(run))
    env.pop("DOCKYARD_HOST", None)
    env.pop("DOCKYARD_MAX_CONCURRENT_DOWNLOADS", None)
    bad = subprocess.run([exe, "daemon", "--max-concurrent-downloads", "-1"], env=env, capture_output=True,
                         timeout=60)
    assert bad.returncode != 0 and b"invalid max concurrent downloads: -1" in bad.stderr
    reg = serve()
    image = push_image(reg.addr, tmp_path, "conc/one", ["gzip", "gzip", "zstd"], file_size=1 << 16)
    gate = InFlight(reg.addr, {d["digest"] for d in image.layers}, hold=0.3)
    sock = run / "dockyard.sock"
    log = open(tmp_path / "daemon.log", "wb")
    daemon = subprocess.Popen([exe, "daemon", "-H", f"unix://{sock}", "--max-concurrent-downloads", "1"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        import socket

        for _ in range(400):  # until it listens
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(sock))
                    break
                except OSError:
                    if daemon.poll() is not None:
                        raise AssertionError((tmp_path / "daemon.log").read_text())
                    threading.Event().wait(0.05)
        proc = subprocess.run([exe, "pull", "-q", f"{gate.addr}/conc/one:v1"], env=env, capture_output=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert gate.most == 1
    finally:
        gate.stop()
        stop_daemon(run, root)
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait()
        log.close()
        import shutil

        shutil.rmtree(run, ignore_errors=True)


def test_two_pulls_of_the_same_blob_at_once(serve, tmp_path):
    """Two pulls of one image into one store at the same time (two handles, as two processes):
    one writes the kept file, the other (its lock taken) a private one; both finish, the store
    has the layer once and no kept file stays behind."""
    from dockyard import Engine

    reg = serve()
    image = push_image(reg.addr, tmp_path, "twice/img", ["gzip"], file_size=1 << 18)
    gate = InFlight(reg.addr, {image.layers[0]["digest"]}, hold=5, together=2)
    engines = [Engine(tmp_path / "shared-root") for _ in range(2)]
    results: list = [None, None]

    def one(n: int) -> None:
        try:
            results[n] = pull(engines[n], f"{gate.addr}/twice/img:v1")[0].image_id
        except BaseException as exc:
            results[n] = exc

    try:
        threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert gate.most == 2, "the two downloads did not overlap"
        assert results == [image.id, image.id]
        check_pulled(engines[0], image)
        assert len(os.listdir(engines[0].root / "layers")) == 1
    finally:
        gate.stop()
        for e in engines:
            e.close()


def test_image_prune_drops_the_kept_prefixes_no_pull_is_writing(cli):
    """``image prune`` (and ``system prune``) frees what interrupted pulls kept for a resume,
    but not a blob a pull is writing (its flock is held) nor with a filter (an image's)."""
    import fcntl

    part = cli.root / "partial"
    part.mkdir(mode=0o700, exist_ok=True)
    idle, busy = part / ("a" * 64), part / ("b" * 64)
    idle.write_bytes(b"x" * 1500)
    busy.write_bytes(b"y" * 10)
    fd = os.open(busy, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert "Total reclaimed space: 0B" in cli("image", "prune", "-f", "--filter", "label=x").stdout.decode()
        assert idle.exists()
        assert "Total reclaimed space: 1.5kB" in cli("image", "prune", "-f").stdout.decode()
        assert sorted(os.listdir(part)) == [busy.name]
    finally:
        os.close(fd)
    assert "Total reclaimed space: 10B" in cli("system", "prune", "-f").stdout.decode()
    assert os.listdir(part) == []
