"""``dockyard registry serve`` against the spec and against real clients: skopeo and docker.

Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import need, tar_dir

from dockyard.registry import auth


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    """Credentials files of the test only (dockyard's and Docker's)."""
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "dyconfig"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockerconfig"))
    monkeypatch.delenv("DOCKYARD_HUB_ENDPOINT", raising=False)


@pytest.fixture
def htpasswd(tmp_path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text("".join(f"{u}:{auth.hash_password(p, rounds=4)}\n"
                            for u, p in [("alice", "wonderland"), ("reader", "books")]))
    return path


class Raw:
    """Bare HTTP against the server: exact paths, headers and bodies, nothing normalised."""

    def __init__(self, addr: str, user: tuple[str, str] | None = None) -> None:
        self.conn = http.client.HTTPConnection(addr, timeout=30)
        self.user = user

    def __call__(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        h = dict(headers or {})
        if self.user:
            h["Authorization"] = "Basic " + base64.b64encode(":".join(self.user).encode()).decode()
        self.conn.request(method, path, body=body, headers=h)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def raw():
    made: list[Raw] = []

    def make(addr: str, user=None) -> Raw:
        made.append(Raw(addr, user))
        return made[-1]

    yield make
    for r in made:
        r.close()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def code(body: bytes) -> str:
    return json.loads(body)["errors"][0]["code"]


def put_blob(r: Raw, repo: str, data: bytes) -> str:
    d = digest_of(data)
    status, headers, _ = r("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", data)
    assert status == 201 and headers["Docker-Content-Digest"] == d
    return d


def image_manifest(r: Raw, repo: str, layers: list[bytes]) -> bytes:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [digest_of(l) for l in layers]}}).encode()
    descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put_blob(r, repo, l),
              "size": len(l)} for l in layers]
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": put_blob(r, repo, config), "size": len(config)},
                       "layers": descs}).encode()


# -- the spec -------------------------------------------------------------------------------------------


def test_spec_push_pull_tags_delete(serve, raw):
    reg = serve()
    r = raw(reg.addr)
    assert r("GET", "/v2/")[0] == 200
    assert r("GET", "/v2/")[1]["Docker-Distribution-API-Version"] == "registry/2.0"
    # Chunked upload: POST, PATCH x2 (the second with Transfer-Encoding: chunked), PUT.
    data = os.urandom(300_000)
    status, h, _ = r("POST", "/v2/team/app/blobs/uploads/")
    assert status == 202 and h["Range"] == "0-0"
    loc = h["Location"]
    status, h, _ = r("PATCH", loc, data[:100_000], {"Content-Range": "0-99999"})
    assert status == 202 and h["Range"] == "0-99999"
    # Out of order: 416 with where the upload stands.
    status, h, body = r("PATCH", h["Location"], data[5:10], {"Content-Range": "5-9"})
    assert status == 416 and h["Range"] == "0-99999"
    r.conn.close()

    def chunks():
        for i in range(100_000, 300_000, 65536):
            yield data[i:min(i + 65536, 300_000)]

    r.conn.request("PATCH", loc, body=chunks(), encode_chunked=True)
    resp = r.conn.getresponse()
    resp.read()
    assert resp.status == 202 and resp.headers["Range"] == "0-299999"
    status, h, body = r("GET", loc)
    assert status == 204 and h["Range"] == "0-299999"
    status, h, _ = r("PUT", f"{loc}?digest={digest_of(data)}")
    assert status == 201 and h["Docker-Content-Digest"] == digest_of(data)
    assert h["Location"] == f"/v2/team/app/blobs/{digest_of(data)}"
    status, h, body = r("GET", f"/v2/team/app/blobs/{digest_of(data)}")
    assert status == 200 and body == data and h["Docker-Content-Digest"] == digest_of(data)
    status, h, body = r("GET", f"/v2/team/app/blobs/{digest_of(data)}", headers={"Range": "bytes=1000-1999"})
    assert status == 206 and body == data[1000:2000] and h["Content-Range"] == "bytes 1000-1999/300000"
    status, h, body = r("GET", f"/v2/team/app/blobs/{digest_of(data)}", headers={"Range": "bytes=299990-"})
    assert status == 206 and body == data[299990:]
    status, h, body = r("HEAD", f"/v2/team/app/blobs/{digest_of(data)}")
    assert status == 200 and h["Content-Length"] == "300000" and body == b""
    # A wrong digest at the end: DIGEST_INVALID, and the upload is gone.
    status, h, _ = r("POST", "/v2/team/app/blobs/uploads/")
    status, _, body = r("PUT", f"{h['Location']}?digest={digest_of(b'other')}", b"content")
    assert status == 400 and code(body) == "DIGEST_INVALID"
    status, _, body = r("GET", h["Location"])
    assert status == 404 and code(body) == "BLOB_UPLOAD_UNKNOWN"

    # Manifests: unknown blobs refused, then tags with pagination.
    bogus = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "x", "digest": "sha256:" + "a" * 64, "size": 1},
                        "layers": []}).encode()
    status, _, body = r("PUT", "/v2/team/app/manifests/bad", bogus,
                        {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 400 and code(body) == "MANIFEST_BLOB_UNKNOWN"
    manifest = image_manifest(r, "team/app", [b"layer-one", b"layer-two"])
    for tag in ["v1", "v2", "v3", "latest", "a"]:
        status, h, _ = r("PUT", f"/v2/team/app/manifests/{tag}", manifest,
                         {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert status == 201 and h["Docker-Content-Digest"] == digest_of(manifest)
    status, _, body = r("PUT", f"/v2/team/app/manifests/{digest_of(b'x')}", manifest)
    assert status == 400 and code(body) == "DIGEST_INVALID"
    status, h, body = r("GET", "/v2/team/app/tags/list")
    assert json.loads(body) == {"name": "team/app", "tags": ["a", "latest", "v1", "v2", "v3"]}
    status, h, body = r("GET", "/v2/team/app/tags/list?n=2")
    assert json.loads(body)["tags"] == ["a", "latest"]
    assert h["Link"] == '</v2/team/app/tags/list?n=2&last=latest>; rel="next"'
    status, h, body = r("GET", "/v2/team/app/tags/list?n=2&last=latest")
    assert json.loads(body)["tags"] == ["v1", "v2"]
    status, h, body = r("GET", "/v2/team/app/tags/list?n=2&last=v2")
    assert json.loads(body)["tags"] == ["v3"] and "Link" not in h
    status, _, body = r("GET", "/v2/nobody/tags/list")
    assert status == 404 and code(body) == "NAME_UNKNOWN"
    status, h, body = r("GET", "/v2/team/app/manifests/v1",
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert body == manifest and h["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
    assert h["Docker-Content-Digest"] == digest_of(manifest)
    status, _, body = r("GET", f"/v2/team/app/manifests/{digest_of(manifest)}")
    assert status == 200 and body == manifest
    status, _, body = r("GET", "/v2/_catalog")
    assert json.loads(body) == {"repositories": ["team/app"]}

    # Cross-repository mount, and a mount of what the source does not have.
    layer = digest_of(b"layer-one")
    status, h, _ = r("POST", f"/v2/other/app/blobs/uploads/?mount={layer}&from=team/app")
    assert status == 201 and h["Location"] == f"/v2/other/app/blobs/{layer}"
    status, h, _ = r("POST", f"/v2/other/app/blobs/uploads/?mount={digest_of(b'nope')}&from=team/app")
    assert status == 202  # an ordinary upload instead

    # Deletes: a tag, a manifest by digest (and its tags), a blob.
    assert r("DELETE", "/v2/team/app/manifests/a")[0] == 202
    assert r("GET", "/v2/team/app/manifests/a")[0] == 404
    assert r("DELETE", f"/v2/team/app/manifests/{digest_of(manifest)}")[0] == 202
    status, _, body = r("GET", "/v2/team/app/manifests/v1")
    assert status == 404 and code(body) == "MANIFEST_UNKNOWN"
    assert json.loads(r("GET", "/v2/team/app/tags/list")[2])["tags"] == []
    assert r("DELETE", f"/v2/team/app/blobs/{layer}")[0] == 202
    status, _, body = r("GET", f"/v2/team/app/blobs/{layer}")
    assert status == 404 and code(body) == "BLOB_UNKNOWN"
    assert r("GET", f"/v2/other/app/blobs/{layer}")[0] == 200  # still linked there


@pytest.mark.parametrize("path,expect", [
    ("/v2/../../etc/passwd/manifests/latest", 400),
    ("/v2/a/../b/manifests/latest", 400),
    ("/v2/a/%2e%2e/b/manifests/latest", 400),
    ("/v2/a%2f..%2fb/manifests/latest", 400),
    ("/v2/Team/app/manifests/latest", 400),
    ("/v2/a//b/manifests/latest", 400),
    ("/v2/_layers/manifests/latest", 400),
    ("/v2/a/_manifests/tags/manifests/latest", 400),
    ("/v2/team/app/manifests/..", 400),
    ("/v2/team/app/manifests/%2e%2e%2fx", 400),
    ("/v2/team/app/blobs/sha256:..%2f..%2fx", 400),
    ("/v2/team/app/blobs/uploads/..%2f..%2fetc", 404),
    ("/v2/team/app/tags/list/../../x", 404),
])
def test_path_tricks_refused(serve, raw, path, expect, tmp_path):
    reg = serve()
    r = raw(reg.addr)
    for method in ("GET", "PUT", "DELETE"):
        status, _, body = r(method, path, b"{}" if method == "PUT" else None)
        assert status in (expect, 404, 400), (method, path, status)
        assert code(body) in ("NAME_INVALID", "TAG_INVALID", "DIGEST_INVALID", "BLOB_UPLOAD_UNKNOWN",
                              "NOT_FOUND", "MANIFEST_INVALID")
    # Nothing was written outside the repository tree, nothing at all in fact.
    root = reg.server.storage.root
    assert os.listdir(root / "repositories") == []
    assert os.listdir(root / "blobs" / "sha256") == []


def test_auth_answers(serve, raw, htpasswd):
    reg = serve(users=str(htpasswd), public=["pub/*"])
    anon = raw(reg.addr)
    status, h, body = anon("GET", "/v2/")
    assert status == 401 and code(body) == "UNAUTHORIZED"
    assert h["WWW-Authenticate"] == f'Bearer realm="http://{reg.addr}/token",service="dockyard-registry"'
    status, h, body = anon("GET", "/v2/priv/app/manifests/latest")
    assert status == 401
    assert h["WWW-Authenticate"].endswith(',scope="repository:priv/app:pull"')
    status, h, body = anon("POST", "/v2/pub/app/blobs/uploads/")
    assert status == 401 and 'scope="repository:pub/app:pull,push"' in h["WWW-Authenticate"]
    # Public read needs no credentials (404: readable, but empty).
    status, _, body = anon("GET", "/v2/pub/app/manifests/latest")
    assert status == 404 and code(body) == "MANIFEST_UNKNOWN"
    wrong = raw(reg.addr, ("alice", "nope"))
    assert wrong("GET", "/v2/pub/app/manifests/latest")[0] == 401  # bad credentials are never anonymous
    alice = raw(reg.addr, ("alice", "wonderland"))
    assert alice("GET", "/v2/")[0] == 200
    assert alice("POST", "/v2/priv/app/blobs/uploads/")[0] == 202
    basic = serve(users=str(htpasswd), auth_mode="basic")
    status, h, _ = raw(basic.addr)("GET", "/v2/")
    assert status == 401 and h["WWW-Authenticate"] == 'Basic realm="dockyard-registry"'


def test_serve_command(tmp_path):
    """The CLI: ``dockyard registry serve`` starts, answers, and stops cleanly on SIGTERM."""
    exe = Path(sys.executable).with_name("dockyard")
    proc = subprocess.Popen([str(exe), "registry", "serve", "--listen", "127.0.0.1:0", "--root",
                             str(tmp_path / "reg")], stderr=subprocess.PIPE)
    try:
        line = proc.stderr.readline().decode()
        assert line.startswith("dockyard registry listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v2/")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"{}"
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        proc.stderr.close()


# -- skopeo -------------------------------------------------------------------------------------------


@pytest.fixture
def oci_archive(engine, rootfs, tmp_path) -> Path:
    engine.import_image(str(tar_dir(rootfs, tmp_path / "bb.tar.gz", "gz")), "local/bb:1", changes=['CMD ["/bin/sh"]'])
    out = tmp_path / "bb.oci.tar"
    with open(out, "wb") as f:
        engine.save(["local/bb:1"], f, format="oci-archive")
    return out


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([need("skopeo"), "--insecure-policy", *args], capture_output=True, timeout=120)


@pytest.mark.parametrize("with_users", [False, True])
def test_skopeo_copies_to_and_from_dockyard(serve, htpasswd, oci_archive, tmp_path, engine, with_users):
    from dockyard.registry.client import Registry
    from dockyard.registry.pull import pull

    reg = serve(users=str(htpasswd)) if with_users else serve()
    creds = ["--dest-creds", "alice:wonderland"] if with_users else []
    dest = f"docker://{reg.addr}/skopeo/bb:1"
    proc = skopeo("copy", "--dest-tls-verify=false", *creds, f"oci-archive:{oci_archive}", dest)
    assert proc.returncode == 0, proc.stderr.decode()
    src_creds = ["--src-creds", "alice:wonderland"] if with_users else []
    proc = skopeo("copy", "--src-tls-verify=false", *src_creds, dest, f"oci:{tmp_path / 'layout'}:bb")
    assert proc.returncode == 0, proc.stderr.decode()
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert len(index["manifests"]) == 1
    proc = skopeo("inspect", "--tls-verify=false", *(["--creds", "alice:wonderland"] if with_users else []), dest)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["Digest"] == index["manifests"][0]["digest"]
    if with_users:
        # Without credentials, or with a wrong password, skopeo gets nothing.
        for bad in ([], ["--src-creds", "alice:nope"]):
            proc = skopeo("copy", "--src-tls-verify=false", *bad, dest, f"oci:{tmp_path / 'denied'}:bb")
            assert proc.returncode != 0
            assert "unauthorized" in proc.stderr.decode().lower() or "authentication" in proc.stderr.decode().lower()
        proc = skopeo("copy", "--dest-tls-verify=false", f"oci-archive:{oci_archive}", f"docker://{reg.addr}/skopeo/anon:1")
        assert proc.returncode != 0
    # dockyard pulls what skopeo pushed (an OCI manifest).
    r = Registry(reg.addr, credentials=("alice", "wonderland") if with_users else None, use_stored_credentials=False)
    try:
        from dockyard import Engine

        with Engine(tmp_path / "pulled") as fresh:
            (res,) = pull(fresh, f"{reg.addr}/skopeo/bb:1", registry=r)
            assert res.image_id == engine.images.resolve("local/bb:1")
    finally:
        r.close()


# -- docker ---------------------------------------------------------------------------------------------


def test_docker_pushes_and_pulls_through_dockyard(dockerd, docker_busybox, serve, htpasswd, tmp_path, engine):
    """A real dockerd pushes to dockyard's registry (with a login) and pulls back; dockyard pulls
    what docker pushed, and docker pulls what dockyard pushed."""
    reg = serve(users=str(htpasswd), public=["pub/*"])
    env = dict(dockerd.env, DOCKER_CONFIG=str(tmp_path / "docker-client"))

    def docker(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=env, capture_output=True, input=input, timeout=300)

    name = f"{reg.addr}/team/bb:1"
    try:
        _docker_push_pull(docker, docker_busybox, reg, name, engine, env)
    finally:  # the dockerd is the session's: later tests compare its image list with dockyard's
        docker("rmi", "-f", name, f"{reg.addr}/pub/bb:2")


def _docker_push_pull(docker, image: str, reg, name: str, engine, env: dict) -> None:
    from dockyard.registry.client import Registry
    from dockyard.registry.pull import pull
    from dockyard.registry.push import push

    assert docker("tag", image, name).returncode == 0
    proc = docker("push", name)
    assert proc.returncode != 0
    assert "denied" in proc.stderr.decode() or "no basic auth credentials" in proc.stderr.decode()
    proc = docker("login", reg.addr, "-u", "alice", "--password-stdin", input=b"wonderland")
    assert proc.returncode == 0, proc.stderr.decode()
    proc = docker("push", name)
    assert proc.returncode == 0, proc.stderr.decode()
    pushed_digest = proc.stdout.decode().strip().splitlines()[-1].split("digest: ")[1].split()[0]
    docker("rmi", name)
    proc = docker("pull", name)
    assert proc.returncode == 0, proc.stderr.decode()
    assert f"Digest: {pushed_digest}" in proc.stdout.decode()

    # dockyard reads docker's login (DOCKER_CONFIG) and pulls what docker pushed.
    os.environ["DOCKER_CONFIG"] = env["DOCKER_CONFIG"]
    (res,) = pull(engine, name)
    assert res.digest == pushed_digest

    # docker pulls what dockyard pushed, anonymously from a public repository.
    engine.images.tag(name, f"{reg.addr}/pub/bb:2")
    r = Registry(reg.addr, credentials=("alice", "wonderland"))
    try:
        push(engine, f"{reg.addr}/pub/bb:2", registry=r)
    finally:
        r.close()
    assert docker("logout", reg.addr).returncode == 0
    proc = docker("pull", f"{reg.addr}/pub/bb:2")
    assert proc.returncode == 0, proc.stderr.decode()
    proc = docker("run", "--rm", "--network", "none", f"{reg.addr}/pub/bb:2", "/bin/echo", "ok")
    if proc.returncode == 0:
        assert proc.stdout.decode() == "ok\n"
    # ... and is refused the private one.
    docker("rmi", name)
    proc = docker("pull", name)
    assert proc.returncode != 0


def test_catalog_shows_what_the_user_may_read(serve, raw, htpasswd):
    from dockyard.registry.client import Registry

    reg = serve(users=str(htpasswd), public=["pub/*"])
    alice = raw(reg.addr, ("alice", "wonderland"))
    for repo in ("pub/a", "priv/b"):
        manifest = image_manifest(alice, repo, [b"x"])
        assert alice("PUT", f"/v2/{repo}/manifests/1", manifest,
                     {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})[0] == 201
    assert json.loads(alice("GET", "/v2/_catalog")[2])["repositories"] == ["priv/b", "pub/a"]
    assert raw(reg.addr)("GET", "/v2/_catalog")[0] == 401
    # Through the token flow, as a client does it.
    with Registry(reg.addr, credentials=("reader", "books")) as r:
        resp = r.request("GET", "/v2/_catalog?n=1", ("registry:catalog:*",))
        assert json.loads(resp.body()) == {"repositories": ["priv/b"]}
        assert resp.headers["Link"] == '</v2/_catalog?n=1&last=priv%2Fb>; rel="next"'


# -- issue 13: uploads cut short, abandoned uploads, suffix ranges ------------------------------------


def _cut_short(addr: str, method: str, path: str, sent: bytes, declared: int,
               headers: dict | None = None) -> bytes:
    """Send ``sent`` of a body declared ``declared`` bytes long, then half-close: the server
    sees the body end early.  Returns its whole answer."""
    import socket

    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    try:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {declared}\r\n{extra}\r\n".encode()
                  + sent)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out
    finally:
        s.close()


def test_patch_cut_short_keeps_and_reports_what_arrived(serve, raw):
    """A PATCH whose body ends early: the bytes that arrived stay in the upload and its Range
    says so, so the client resumes from there and the finished blob has the right digest (it
    said 0-0, kept the bytes, and the resumed upload failed its digest)."""
    reg = serve()
    r = raw(reg.addr)
    data = os.urandom(200_000)
    status, h, _ = r("POST", "/v2/cut/app/blobs/uploads/")
    loc = h["Location"]
    answer = _cut_short(reg.addr, "PATCH", loc, data[:70_000], 150_000, {"Content-Range": "0-149999"})
    assert answer.startswith(b"HTTP/1.1 400")
    status, h, _ = r("GET", loc)
    assert status == 204 and h["Range"] == "0-69999"
    status, h, _ = r("PATCH", loc, data[70_000:], {"Content-Range": f"70000-{len(data) - 1}"})
    assert status == 202 and h["Range"] == f"0-{len(data) - 1}"
    status, h, body = r("PUT", f"{loc}?digest={digest_of(data)}")
    assert status == 201, body
    status, _, body = r("GET", f"/v2/cut/app/blobs/{digest_of(data)}")
    assert status == 200 and body == data


def test_abandoned_uploads_expire(serve, raw):
    """An upload nobody finishes (a client cut off mid-push) is removed once idle for the
    expiry; a monolithic POST cut short leaves nothing at all (nobody knows its uuid)."""
    reg = serve()
    st = reg.server.storage
    uploads = st.root / "uploads"
    r = raw(reg.addr)
    data = os.urandom(50_000)
    answer = _cut_short(reg.addr, "POST", f"/v2/gone/app/blobs/uploads/?digest={digest_of(data)}", data[:1000],
                        len(data))
    assert answer.startswith(b"HTTP/1.1 400")
    assert list(uploads.iterdir()) == []
    status, h, _ = r("POST", "/v2/gone/app/blobs/uploads/")
    orphan = h["Location"]
    _cut_short(reg.addr, "PATCH", orphan, data[:1000], len(data))
    assert len(list(uploads.iterdir())) == 2  # the data and its .repo
    st.upload_expiry = 0.5
    st._next_sweep = 0.0
    time.sleep(0.6)
    status, h, _ = r("POST", "/v2/gone/app/blobs/uploads/")  # a new upload sweeps the old
    assert status == 202
    fresh = h["Location"].rsplit("/", 1)[1]
    assert sorted(p.name for p in uploads.iterdir()) == [fresh, fresh + ".repo"]
    status, _, body = r("GET", orphan)
    assert status == 404 and code(body) == "BLOB_UPLOAD_UNKNOWN"


def test_blob_suffix_and_odd_ranges(serve, raw):
    reg = serve()
    r = raw(reg.addr)
    data = os.urandom(1000)
    d = put_blob(r, "rng/app", data)
    status, h, body = r("GET", f"/v2/rng/app/blobs/{d}", headers={"Range": "bytes=-10"})
    assert status == 206 and body == data[-10:] and h["Content-Range"] == "bytes 990-999/1000"
    status, h, body = r("GET", f"/v2/rng/app/blobs/{d}", headers={"Range": "bytes=-5000"})
    assert status == 206 and body == data and h["Content-Range"] == "bytes 0-999/1000"
    status, h, _ = r("GET", f"/v2/rng/app/blobs/{d}", headers={"Range": "bytes=-0"})
    assert status == 416 and h["Content-Range"] == "bytes */1000"
    status, h, _ = r("GET", f"/v2/rng/app/blobs/{d}", headers={"Range": "bytes=1000-"})
    assert status == 416
    for odd in ("bytes=0-1,5-6", "bytes=-", "items=0-1"):  # not understood: the whole blob
        status, h, body = r("GET", f"/v2/rng/app/blobs/{d}", headers={"Range": odd})
        assert status == 200 and body == data, odd
