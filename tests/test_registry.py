"""The registry client against real peers on loopback: CNCF distribution (Debian's
docker-registry) and dockyard's own server; auth, credentials, and hostile servers.

Nothing here leaves the machine: every registry listens on 127.0.0.1, and the Docker Hub code
path is pointed at a loopback server with ``DOCKYARD_HUB_ENDPOINT``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support import need, stop_daemon, tar_dir

from dockyard.registry import auth
from dockyard.registry.client import Registry
from dockyard.registry.pull import pull
from dockyard.registry.push import push
from dockyard.registry.common import RegistryError, Unauthorized


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                resp.read()
            return
        except urllib.error.HTTPError as exc:
            exc.close()
            return  # it answers (401 is an answer)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@pytest.fixture
def distribution(tmp_path):
    """Debian's docker-registry (CNCF distribution 2.8) on a free loopback port."""
    exe = need("docker-registry")
    port = free_port()
    config = tmp_path / "distribution.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'distribution-data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = open(tmp_path / "distribution.log", "wb")
    proc = subprocess.Popen([exe, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def remote():
    """Registry clients made by a test, closed at its end."""
    made: list[Registry] = []

    def make(addr: str, **kw) -> Registry:
        made.append(Registry(addr, **kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def htpasswd(tmp_path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text("".join(f"{u}:{auth.hash_password(p, rounds=4)}\n"
                            for u, p in [("alice", "wonderland"), ("reader", "books")]))
    return path


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    """Credentials files of the test only (dockyard's and Docker's)."""
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "dyconfig"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockerconfig"))
    monkeypatch.delenv("DOCKYARD_HUB_ENDPOINT", raising=False)
    monkeypatch.delenv("DOCKYARD_PUSH_CHUNK_SIZE", raising=False)


@pytest.fixture
def image(engine, rootfs, tmp_path) -> str:
    """A busybox image imported from a tar.gz (its layer kept as a tar-split, gzipped at push)."""
    engine.import_image(str(tar_dir(rootfs, tmp_path / "bb.tar.gz", "gz")), "local/bb:1",
                        changes=['CMD ["/bin/sh"]'])
    return engine.images.resolve("local/bb:1")


@pytest.fixture
def fresh(tmp_path):
    from dockyard import Engine

    eng = Engine(tmp_path / "fresh-root")
    try:
        yield eng
    finally:
        eng.close()


def tag_as(engine, image_id: str, name: str) -> None:
    engine.images.tag(image_id, name)


def store_is_empty(engine) -> None:
    db = engine.store.db
    assert db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM layers").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM tags").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM repo_digests").fetchone()[0] == 0
    root = engine.root
    assert os.listdir(root / "blobs" / "sha256") == []
    assert os.listdir(root / "layers") == []
    assert os.listdir(root / "tmp") == []


# -- against CNCF distribution ---------------------------------------------------------------------


def test_push_pull_run_against_distribution(cli, rootfs_tar, distribution, tmp_path):
    """The CLI pushes to docker-registry, a fresh root pulls it back: same image, RepoDigests."""
    name = f"{distribution}/team/bb:1"
    cli("import", "-c", 'CMD ["/bin/sh"]', str(rootfs_tar), name)
    out = cli("push", name).stdout.decode()
    assert f"The push refers to repository [{distribution}/team/bb]" in out
    assert ": Pushed" in out
    digest = out.strip().splitlines()[-1].split("digest: ")[1].split()[0]
    image_id = json.loads(cli("inspect", name).stdout)[0]["Id"]

    # A second root pulls it, through a daemon of its own (stopped at the end).
    import shutil
    import tempfile

    run_dir = tempfile.mkdtemp(prefix="dyrun-", dir="/tmp")
    env = dict(os.environ, DOCKYARD_ROOT=str(tmp_path / "other"), DOCKYARD_RUN=run_dir)
    env.pop("DOCKYARD_HOST", None)
    exe = Path(os.sys.executable).with_name("dockyard")
    try:
        proc = subprocess.run([str(exe), "pull", name], env=env, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()
        lines = proc.stdout.decode().splitlines()
        assert lines[0] == "1: Pulling from team/bb"
        assert f"Digest: {digest}" in lines
        assert f"Status: Downloaded newer image for {name}" in lines
        assert lines[-1] == name
        info = json.loads(subprocess.run([str(exe), "inspect", name], env=env, capture_output=True).stdout)[0]
        assert info["Id"] == image_id
        assert info["RepoDigests"] == [f"{distribution}/team/bb@{digest}"]
        # Pulling again fetches nothing.
        proc = subprocess.run([str(exe), "pull", name], env=env, capture_output=True, timeout=120)
        assert f"Status: Image is up to date for {name}" in proc.stdout.decode()
        # By digest, quietly.
        proc = subprocess.run([str(exe), "pull", "-q", f"{distribution}/team/bb@{digest}"], env=env,
                              capture_output=True, timeout=120)
        assert proc.stdout.decode() == f"{distribution}/team/bb@{digest}\n"

        # Run it, when this machine can run containers.
        try:
            from dockyard.engine.runtime import binary

            binary()
        except Exception:
            return
        if os.geteuid() != 0:
            return
        proc = subprocess.run([str(exe), "run", "--rm", name, "/bin/echo", "pulled and running"],
                              env=env, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout.decode() == "pulled and running\n"
    finally:
        stop_daemon(Path(run_dir), tmp_path / "other")
        shutil.rmtree(run_dir, ignore_errors=True)


def test_chunked_push_and_cross_repo_mount_on_distribution(engine, image, fresh, distribution):
    messages: list[str] = []

    def progress(layer, status, current=None, total=None):
        if current is None:
            messages.append(f"{layer}: {status}" if layer else status)

    tag_as(engine, image, f"{distribution}/a/one:1")
    push(engine, f"{distribution}/a/one:1", chunk_size=64 << 10, progress=progress)
    assert any(m.endswith(": Pushed") for m in messages)
    # Same image to another repository: the layer is mounted, not uploaded again.
    messages.clear()
    tag_as(engine, image, f"{distribution}/b/two:1")
    push(engine, f"{distribution}/b/two:1", progress=progress)
    assert any(m.endswith(": Mounted from a/one") for m in messages), messages
    # And again: the registry has it already.
    messages.clear()
    push(engine, f"{distribution}/b/two:1", progress=progress)
    assert any(m.endswith(": Layer already exists") for m in messages), messages
    (result,) = pull(fresh, f"{distribution}/b/two:1")
    assert result.image_id == image
    # --all-tags
    tag_as(engine, image, f"{distribution}/a/one:2")
    push(engine, f"{distribution}/a/one", all_tags=True)
    results = pull(fresh, f"{distribution}/a/one", all_tags=True)
    assert sorted(r.reference for r in results) == [f"{distribution}/a/one:1", f"{distribution}/a/one:2"]


def test_push_keeps_the_gzip_it_made(engine, image, serve, fresh):
    """An imported layer is kept as a tar-split; its first push gzips it, and that gzip becomes
    the layer's blob, so the next push sends the same bytes without compressing again."""
    reg = serve()
    (layer,) = engine.images.layers(image)
    assert layer["compression"] == "tar-split"
    split = engine.store.blob_path(layer["blob"])
    tag_as(engine, image, f"{reg.addr}/keep/a:1")
    (first,) = push(engine, f"{reg.addr}/keep/a:1")
    (kept,) = engine.images.layers(image)
    assert kept["compression"] == "gzip" and not split.exists()
    assert engine.store.blob_path(kept["blob"]).stat().st_size == kept["blob_size"]
    tag_as(engine, image, f"{reg.addr}/keep/b:1")
    (second,) = push(engine, f"{reg.addr}/keep/b:1")
    assert second.digest == first.digest
    (res,) = pull(fresh, f"{reg.addr}/keep/b:1")
    assert res.image_id == image
    assert [l["blob"] for l in fresh.images.layers(image)] == [kept["blob"]]
    assert os.listdir(engine.root / "tmp") == []


def test_pull_shares_layers_already_present(engine, image, serve, remote):
    """A second image on the same base fetches only its own layer."""
    reg = serve()
    name = f"{reg.addr}/bb"
    tag_as(engine, image, f"{name}:base")
    push(engine, f"{name}:base")
    # A two-layer image: the base plus one more layer, built by hand as an OCI push.
    with engine.store.staging() as stage:
        from dockyard import _native

        (stage / "upper").mkdir()
        (stage / "upper" / "hello").write_text("hi\n")
        info = _native.pack(str(stage / "upper"), str(stage / "layer.tgz"))
        blob = (stage / "layer.tgz").read_bytes()
    base_cfg = json.loads(engine.images.config_bytes(image))
    r = remote(reg.addr)
    # The base layer as pushed (an imported layer is gzipped for the wire at push).
    base_layer = json.loads(r.get_manifest("bb", "base")[0])["layers"][0]
    cfg = dict(base_cfg, rootfs={"type": "layers", "diff_ids": base_cfg["rootfs"]["diff_ids"] + [info["diff_id"]]})
    cfg_bytes = json.dumps(cfg).encode()
    upload(r, "bb", blob)
    upload(r, "bb", cfg_bytes)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": desc("application/vnd.oci.image.config.v1+json", cfg_bytes),
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": base_layer["digest"], "size": base_layer["size"]},
                           desc("application/vnd.oci.image.layer.v1.tar+gzip", blob)]}
    put_manifest(r, "bb", "two", manifest)
    seen: list[str] = []
    pull(engine, f"{name}:two", progress=lambda l, s, c=None, t=None: seen.append(f"{l}: {s}") if c is None else None)
    short = base_layer["digest"][7:19]
    assert f"{short}: Already exists" in seen
    assert f"{hashlib.sha256(blob).hexdigest()[:12]}: Pull complete" in seen
    assert engine.images.inspect(f"{name}:two")["RootFS"]["Layers"] == cfg["rootfs"]["diff_ids"]


def desc(media: str, data: bytes) -> dict:
    return {"mediaType": media, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


def upload(r: Registry, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    scopes = (f"repository:{repo}:pull,push",)
    resp = r.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", scopes,
                     {"Content-Length": str(len(data))}, body=data, ok=(201, 202))
    resp.drain()
    if resp.status == 202:  # a registry that wants the two steps
        loc = resp.headers["Location"]
        loc += ("&" if "?" in loc else "?") + f"digest={digest}"
        r.request("PUT", loc, scopes, {"Content-Length": str(len(data))}, body=data, ok=(201,)).drain()
    return digest


def put_manifest(r: Registry, repo: str, ref: str, doc: dict) -> str:
    data = json.dumps(doc).encode()
    r.request("PUT", f"/v2/{repo}/manifests/{ref}", (f"repository:{repo}:pull,push",),
              {"Content-Type": doc["mediaType"], "Content-Length": str(len(data))}, body=data, ok=(201,)).drain()
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("index_type", ["application/vnd.oci.image.index.v1+json",
                                        "application/vnd.docker.distribution.manifest.list.v2+json"])
def test_index_resolves_to_the_local_platform(engine, image, serve, fresh, remote, index_type):
    reg = serve()
    tag_as(engine, image, f"{reg.addr}/multi:amd")
    (amd,) = push(engine, f"{reg.addr}/multi:amd")
    r = remote(reg.addr)
    # An index with an arm64 entry (the same manifest, labelled otherwise) and the amd64 one.
    index = {"schemaVersion": 2, "mediaType": index_type, "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": amd.digest,
         "size": amd.size, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": amd.digest,
         "size": amd.size, "platform": {"os": "linux", "architecture": "amd64"}},
    ]}
    index_digest = put_manifest(r, "multi", "latest", index)
    (res,) = pull(fresh, f"{reg.addr}/multi")
    assert res.image_id == image and res.digest == index_digest
    assert fresh.images.digests_of(image) == [f"{reg.addr}/multi@{index_digest}"]
    with pytest.raises(RegistryError, match="no matching manifest for windows/amd64"):
        pull(fresh, f"{reg.addr}/multi", platform="windows/amd64")
    (res,) = pull(fresh, f"{reg.addr}/multi", platform="linux/arm64")
    assert res.image_id == image


# -- hostile servers ---------------------------------------------------------------------------------


class Hostile:
    """A registry that lies in one way: the image is good, the bytes on the wire are not."""

    def __init__(self, engine, image_id: str, fault: str) -> None:
        layer = engine.images.layers(image_id)[0]
        with engine.store.staging() as stage:  # the layer as a push would send it
            path, gz_digest, _, _ = engine.images.layer_blob(layer, stage, ("gzip",), "gzip")
            blob = path.read_bytes()
        self.layer_size = len(blob)
        config = engine.images.config_bytes(image_id)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": image_id, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "digest": gz_digest, "size": len(blob)}]}).encode()
        self.manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        blobs = {image_id: config, gz_digest: blob}
        served_manifest = manifest
        claimed = self.manifest_digest
        length_of = {}
        if fault == "tampered-blob":
            b = bytearray(blob)
            b[len(b) // 2] ^= 0xFF
            blobs[gz_digest] = bytes(b)
        elif fault == "truncated-layer":
            blobs[gz_digest] = blob[: len(blob) // 2]
            length_of[gz_digest] = len(blob)  # claims the full length, then hangs up
        elif fault == "wrong-manifest-digest":
            claimed = "sha256:" + "0" * 64
        elif fault == "tampered-config":
            blobs[image_id] = config.replace(b'"os":"linux"', b'"os":"linuX"')
        elif fault == "bad-diff-id":
            # Config and manifest agree with each other but not with the layer's content.
            cfg = json.loads(config)
            cfg["rootfs"]["diff_ids"] = ["sha256:" + "1" * 64]
            cfg_bytes = json.dumps(cfg).encode()
            cfg_digest = "sha256:" + hashlib.sha256(cfg_bytes).hexdigest()
            blobs = {cfg_digest: cfg_bytes, gz_digest: blob}
            doc = json.loads(manifest)
            doc["config"] = {"mediaType": doc["config"]["mediaType"], "digest": cfg_digest, "size": len(cfg_bytes)}
            served_manifest = json.dumps(doc).encode()
            claimed = "sha256:" + hashlib.sha256(served_manifest).hexdigest()
        outer = self
        self.ranges: list[int] = []

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path.endswith("/manifests/latest") or "/manifests/sha256:" in self.path:
                    body, headers = served_manifest, {
                        "Content-Type": "application/vnd.docker.distribution.manifest.v2+json",
                        "Docker-Content-Digest": claimed}
                elif "/blobs/" in self.path:
                    digest = self.path.rsplit("/", 1)[1]
                    body, headers = blobs[digest], {}
                    if fault == "flaky" and digest == gz_digest:
                        rng = self.headers.get("Range")
                        if rng is None:  # the first try: half the bytes, then the line drops
                            self.send_response(200)
                            self.send_header("Content-Length", str(len(body)))
                            self.end_headers()
                            self.wfile.write(body[: len(body) // 2])
                            self.close_connection = True
                            return
                        start = int(rng.split("=")[1].rstrip("-"))
                        outer.ranges.append(start)
                        self.send_response(206)
                        self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                        self.send_header("Content-Length", str(len(body) - start))
                        self.end_headers()
                        self.wfile.write(body[start:])
                        return
                    if digest in length_of:
                        self.send_response(200)
                        self.send_header("Content-Length", str(length_of[digest]))
                        self.end_headers()
                        self.wfile.write(body)
                        self.close_connection = True
                        return
                else:
                    body, headers = b"{}", {}
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        outer.fault = fault

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("fault,message", [
    ("tampered-blob", "does not match its digest"),
    ("truncated-layer", "cut short"),
    ("wrong-manifest-digest", "does not match the digest the registry sent"),
    ("tampered-config", "does not match its digest"),
    ("bad-diff-id", "does not match the image config"),
])
def test_hostile_registry_leaves_nothing(engine, image, fresh, cli, fault, message):
    hostile = Hostile(engine, image, fault)
    try:
        with pytest.raises(RegistryError if fault != "bad-diff-id" else Exception, match=message):
            pull(fresh, f"{hostile.addr}/evil/img")
        store_is_empty(fresh)
        # The CLI says so in one line, with a non-zero status.
        proc = cli("pull", f"{hostile.addr}/evil/img", check=False)
        assert proc.returncode != 0
        err = proc.stderr.decode().strip()
        assert len(err.splitlines()) == 1 and message in err, err
        # By digest: the manifest itself must hash to what was asked.
        if fault == "wrong-manifest-digest":
            with pytest.raises(RegistryError, match="does not match"):
                pull(fresh, f"{hostile.addr}/evil/img@sha256:" + "2" * 64)
    finally:
        hostile.stop()
    store_is_empty(fresh)


def test_dropped_download_resumes(engine, image, fresh):
    hostile = Hostile(engine, image, "flaky")
    try:
        (res,) = pull(fresh, f"{hostile.addr}/flaky/img")
    finally:
        hostile.stop()
    assert res.image_id == image
    assert hostile.ranges == [hostile.layer_size // 2]


# -- auth -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["token", "basic"])
def test_private_public_and_read_only(engine, image, fresh, serve, htpasswd, mode, remote):
    reg = serve(users=str(htpasswd), public=["pub/*"], read_only=["reader"], auth_mode=mode)
    tag_as(engine, image, f"{reg.addr}/priv/bb:1")
    tag_as(engine, image, f"{reg.addr}/pub/bb:1")
    # Anonymous writes are refused.
    with pytest.raises(Unauthorized):
        push(engine, f"{reg.addr}/priv/bb:1", registry=remote(reg.addr, use_stored_credentials=False))
    alice = remote(reg.addr, credentials=("alice", "wonderland"))
    push(engine, f"{reg.addr}/priv/bb:1", registry=alice)
    push(engine, f"{reg.addr}/pub/bb:1", registry=alice)
    # The private repository refuses anonymous and wrong-password reads.
    with pytest.raises(Unauthorized, match="pull access denied for .*/priv/bb, repository does not exist"):
        pull(fresh, f"{reg.addr}/priv/bb:1", registry=remote(reg.addr, use_stored_credentials=False))
    with pytest.raises(Unauthorized, match="incorrect username or password"):
        pull(fresh, f"{reg.addr}/priv/bb:1", registry=remote(reg.addr, credentials=("alice", "nope")))
    with pytest.raises(Unauthorized):
        pull(fresh, f"{reg.addr}/priv/bb:1", registry=remote(reg.addr, credentials=("mallory", "x")))
    store_is_empty(fresh)
    # The public one is readable by anyone; the reader reads the private one.
    pull(fresh, f"{reg.addr}/pub/bb:1", registry=remote(reg.addr, use_stored_credentials=False))
    pull(fresh, f"{reg.addr}/priv/bb:1", registry=remote(reg.addr, credentials=("reader", "books")))
    # ... but cannot push, not even to the public one.
    tag_as(engine, image, f"{reg.addr}/priv/other:1")
    with pytest.raises((Unauthorized, RegistryError)) as info:
        push(engine, f"{reg.addr}/priv/other:1", registry=remote(reg.addr, credentials=("reader", "books")))
    assert info.value.http_status in (401, 403)


def test_read_only_token_cannot_push(serve, htpasswd):
    reg = serve(users=str(htpasswd))
    base = f"http://{reg.addr}"

    def token(scope: str, user: str = "alice", password: str = "wonderland") -> str:
        req = urllib.request.Request(f"{base}/token?service=dockyard-registry&scope={scope}")
        import base64

        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
        with urllib.request.urlopen(req) as resp:
            return json.loads(resp.read())["token"]

    def post(tok: str) -> int:
        req = urllib.request.Request(f"{base}/v2/team/app/blobs/uploads/", data=b"", method="POST")
        req.add_header("Authorization", f"Bearer {tok}")
        try:
            with urllib.request.urlopen(req) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            with exc:
                challenge = exc.headers["WWW-Authenticate"]
                assert 'error="insufficient_scope"' in challenge or 'error="invalid_token"' in challenge
                assert json.loads(exc.read())["errors"][0]["code"] == "UNAUTHORIZED"
                return exc.code

    assert post(token("repository:team/app:pull")) == 401
    assert post(token("repository:team/app:pull,push")) == 202
    # A token for one repository is worth nothing for another.
    assert post(token("repository:team/other:pull,push")) == 401
    # A read-only user asking for push gets a pull-only token.
    reg2 = serve(users=str(htpasswd), read_only=["reader"])
    base = f"http://{reg2.addr}"
    assert post(token("repository:team/app:pull,push", "reader", "books")) == 401
    # Wrong password: no token at all.
    with pytest.raises(urllib.error.HTTPError) as info:
        token("repository:team/app:pull", "alice", "wrong")
    assert info.value.code == 401
    info.value.close()
    # A forged token is refused.
    assert post("e30.AAAA") == 401


def test_login_logout_and_docker_config(cli, engine, image, serve, htpasswd, tmp_path, rootfs_tar):
    reg = serve(users=str(htpasswd))
    proc = cli("login", reg.addr, "-u", "alice", "--password-stdin", input=b"wrong\n", check=False)
    assert proc.returncode != 0 and "unauthorized" in proc.stderr.decode().lower()
    assert not (tmp_path / "dyconfig" / "config.json").exists()
    proc = cli("login", reg.addr, "-u", "alice", "--password-stdin", input=b"wonderland\n")
    assert proc.stdout.decode() == "Login Succeeded\n"
    config = json.loads((tmp_path / "dyconfig" / "config.json").read_text())
    assert config["auths"][reg.addr]["auth"] == "YWxpY2U6d29uZGVybGFuZA=="
    assert oct((tmp_path / "dyconfig" / "config.json").stat().st_mode & 0o777) == "0o600"
    name = f"{reg.addr}/team/bb:1"
    cli("import", str(rootfs_tar), name)
    cli("push", name)
    assert cli("logout", reg.addr).stdout.decode() == f"Removing login credentials for {reg.addr}\n"
    proc = cli("push", name, check=False)
    assert proc.returncode != 0 and "unauthorized" in proc.stderr.decode().lower()
    # Docker's own config.json is read too.
    (tmp_path / "dockerconfig").mkdir()
    (tmp_path / "dockerconfig" / "config.json").write_text(json.dumps(
        {"auths": {f"http://{reg.addr}": {"auth": "YWxpY2U6d29uZGVybGFuZA=="}}}))
    cli("push", name)
    assert auth.credentials(reg.addr) == ("alice", "wonderland")


def test_docker_hub_path_on_loopback(engine, image, fresh, serve, monkeypatch, htpasswd):
    """``busybox`` means docker.io/library/busybox; the Hub endpoint is redirected to loopback,
    to a server that, like the Hub, hands out tokens and lets anyone read ``library/*``."""
    reg = serve(users=str(htpasswd), public=["library/*"])
    monkeypatch.setenv("DOCKYARD_HUB_ENDPOINT", f"http://{reg.addr}")
    auth.store_credentials("docker.io", "alice", "wonderland")
    assert json.loads((auth.config_path()).read_text())["auths"][auth.HUB_KEY]
    tag_as(engine, image, "busybox")
    push(engine, "busybox")
    auth.erase_credentials("index.docker.io")
    assert (reg.server.storage.tag("library/busybox", "latest")).exists()
    (res,) = pull(fresh, "busybox")
    assert res.reference == "docker.io/library/busybox:latest"
    assert fresh.images.inspect("busybox")["RepoDigests"] == [f"busybox@{res.digest}"]
    assert auth.server_key("docker.io") == auth.HUB_KEY == auth.server_key("index.docker.io")


def test_hub_pulls_go_to_the_registry_mirrors_first(engine, image, fresh, serve, monkeypatch):
    """``--registry-mirror`` as dockerd's: a Docker Hub pull tries each mirror in order (one
    that cannot serve it is passed over) before the Hub; other registries are not mirrored.
    (The Hub endpoint is a closed loopback port here: only a mirror can serve.)"""
    reg = serve(public=["library/*"])
    tag_as(engine, image, f"{reg.addr}/library/mirrored")
    push(engine, f"{reg.addr}/library/mirrored")
    with pytest.raises(RegistryError):
        pull(fresh, "mirrored")  # no mirror: the (closed) Hub
    monkeypatch.setenv("DOCKYARD_DAEMON_CONFIG", "/nonexistent")
    monkeypatch.setenv("DOCKYARD_REGISTRY_MIRRORS", f"http://127.0.0.1:1, http://{reg.addr}/")
    (res,) = pull(fresh, "mirrored")
    assert res.reference == "docker.io/library/mirrored:latest"
    assert fresh.images.inspect("mirrored")["Id"] == engine.images.inspect(image)["Id"]
    with pytest.raises(RegistryError):
        pull(fresh, "127.0.0.1:1/library/mirrored")  # not the Hub: no mirror is tried
    out = subprocess.run([str(Path(sys.executable).with_name("dockyard")), "daemon",
                          "--registry-mirror", "ftp://mirror.example"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid mirror" in out.stderr, out.stderr


def test_https_by_default_and_insecure_registries(monkeypatch):
    from dockyard.registry.client import endpoint, is_insecure

    monkeypatch.delenv("DOCKYARD_INSECURE_REGISTRIES", raising=False)
    monkeypatch.setenv("DOCKYARD_DAEMON_CONFIG", "/nonexistent")
    assert endpoint("registry.example.com") == ("https", "registry.example.com")
    assert endpoint("127.0.0.1:5000") == ("http", "127.0.0.1:5000")
    assert endpoint("localhost:5000") == ("http", "localhost:5000")
    monkeypatch.setenv("DOCKYARD_INSECURE_REGISTRIES", "registry.example.com:5000, 10.1.0.0/16")
    assert is_insecure("registry.example.com:5000") and is_insecure("10.1.2.3:443")
    assert not is_insecure("registry.example.com") and not is_insecure("10.2.0.1")
    assert endpoint("registry.example.com:5000") == (None, "registry.example.com:5000")


def test_challenge_parsing():
    kind, params = auth.parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push",error="insufficient_scope"')
    assert kind == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "registry.example",
                      "scope": "repository:a/b:pull,push", "error": "insufficient_scope"}
    assert auth.parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_tampered_names_refused_by_the_client(engine):
    from dockyard.errors import InvalidReference

    for bad in ["127.0.0.1:5000/../etc", "127.0.0.1:5000/a/%2e%2e/b", "127.0.0.1:5000/A/b",
                "127.0.0.1:5000/a//b", "127.0.0.1:5000/a:../../x"]:
        with pytest.raises(InvalidReference):
            pull(engine, bad)


def test_credential_helpers_are_read(tmp_path, monkeypatch):
    """Docker's ``credHelpers``/``credsStore``: dockyard asks the helper, as docker does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text('#!/bin/sh\nread server\necho "{\\"ServerURL\\":\\"$server\\",\\"Username\\":\\"u-$server\\",'
                      '\\"Secret\\":\\"s3cret\\"}"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    (tmp_path / "dockerconfig").mkdir()
    (tmp_path / "dockerconfig" / "config.json").write_text(json.dumps(
        {"credHelpers": {"helped.example:5000": "fake"}, "credsStore": "fake"}))
    assert auth.credentials("helped.example:5000") == ("u-helped.example:5000", "s3cret")
    assert auth.credentials("docker.io") == (f"u-{auth.HUB_KEY}", "s3cret")
    # dockyard's own file wins.
    auth.store_credentials("helped.example:5000", "mine", "pw")
    assert auth.credentials("helped.example:5000") == ("mine", "pw")


def test_progress_lines():
    import io

    from dockyard.cli.registry import ProgressPrinter

    plain = io.StringIO()
    p = ProgressPrinter(plain, tty=False)
    p("", "1: Pulling from team/bb")
    p("abc", "Pulling fs layer")
    p("abc", "Downloading", 10, 100)  # no bars when not a terminal
    p("abc", "Pull complete")
    assert plain.getvalue() == "1: Pulling from team/bb\nabc: Pulling fs layer\nabc: Pull complete\n"
    tty = io.StringIO()
    p = ProgressPrinter(tty, tty=True)
    p("a", "Pulling fs layer")
    p("b", "Pulling fs layer")
    p("a", "Downloading", 50, 100)
    out = tty.getvalue()
    assert out.startswith("a: Pulling fs layer\nb: Pulling fs layer\n")
    # Line "a" is two lines up: the cursor goes there, rewrites it, and comes back.
    assert "\x1b[2A\x1b[2K\ra: Downloading [========================>" in out and out.endswith("\x1b[2B\r")
    quiet = io.StringIO()
    ProgressPrinter(quiet, quiet=True)("a", "Pull complete")
    assert quiet.getvalue() == ""


def test_cli_pull_all_tags_and_platform(cli, engine, image, serve):
    reg = serve()
    for tag in ("1", "2"):
        tag_as(engine, image, f"{reg.addr}/cli/bb:{tag}")
        push(engine, f"{reg.addr}/cli/bb:{tag}")
    out = cli("pull", "-a", f"{reg.addr}/cli/bb").stdout.decode()
    assert "1: Pulling from cli/bb" in out and "2: Pulling from cli/bb" in out
    assert out.splitlines()[-1] == f"{reg.addr}/cli/bb"
    proc = cli("pull", "--platform", "linux/s390x", f"{reg.addr}/cli/bb:1", check=False)
    # A single-platform manifest is taken as it is (docker checks the config's platform only
    # for warnings); the pull succeeds and the image is up to date.
    assert proc.returncode == 0 and "Image is up to date" in proc.stdout.decode()
    proc = cli("pull", f"{reg.addr}/cli/bb:nope", check=False)
    assert proc.returncode == 1
    assert proc.stderr.decode() == (f"Error response from daemon: manifest for {reg.addr}/cli/bb:nope "
                                    "not found: manifest unknown: manifest unknown\n")


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([need("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_tls_server_and_client(engine, image, fresh, serve, tmp_path, monkeypatch):
    """``registry serve --tls-cert``: the client speaks HTTPS, verifying the certificate."""
    cert, key = self_signed(tmp_path)
    reg = serve(tls=(str(cert), str(key)))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("DOCKYARD_HUB_ENDPOINT", f"https://{reg.addr}")
    tag_as(engine, image, "tls/bb:1")
    push(engine, "tls/bb:1")
    (res,) = pull(fresh, "tls/bb:1")
    assert res.image_id == image
    # An insecure registry whose scheme is unknown: HTTPS is tried first, then plain HTTP.
    plain = serve()
    monkeypatch.setenv("DOCKYARD_INSECURE_REGISTRIES", "localhost")
    for addr in (reg.addr, plain.addr):
        r = Registry(addr)
        r.scheme, r.netloc = None, "localhost:" + addr.split(":")[1]
        try:
            r.ping()
            assert r.scheme == ("https" if addr == reg.addr else "http")
        finally:
            r.close()


class Redirector:
    """A front that answers manifests itself (proxied) and sends blobs elsewhere with a 307,
    as Docker Hub sends them to its CDN."""

    def __init__(self, backend: str) -> None:
        import http.client as hc

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                if "/blobs/" in self.path:
                    self.send_response(307)
                    self.send_header("Location", f"http://{backend}{self.path}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = hc.HTTPConnection(backend, timeout=10)
                conn.request("GET", self.path, headers={"Accept": self.headers.get("Accept", "")})
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                self.send_response(resp.status)
                for k in ("Content-Type", "Docker-Content-Digest"):
                    if resp.headers.get(k):
                        self.send_header(k, resp.headers[k])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_blob_redirects_are_followed(engine, image, fresh, serve):
    reg = serve()
    tag_as(engine, image, f"{reg.addr}/cdn/bb:1")
    push(engine, f"{reg.addr}/cdn/bb:1")
    front = Redirector(reg.addr)
    try:
        (res,) = pull(fresh, f"{front.addr}/cdn/bb:1")
    finally:
        front.stop()
    assert res.image_id == image


def test_zstd_and_plain_layers(engine, rootfs, tmp_path, distribution, fresh, remote):
    """A pulled zstd layer goes out as it is stored, in an OCI manifest; an imported one, kept
    as a tar-split, is gzipped for the wire (a Docker schema2 manifest), as docker does."""
    from dockyard import _native
    from dockyard.engine.images import _go_arch

    r = remote(distribution)
    plain = tar_dir(rootfs, tmp_path / "bb.tar")
    info = _native.compress(str(plain), str(tmp_path / "bb.tar.zst"), "zstd")
    zst = (tmp_path / "bb.tar.zst").read_bytes()
    cfg = json.dumps({"architecture": _go_arch(), "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [info["diff_id"]]}}).encode()
    upload(r, "z/src", zst)
    upload(r, "z/src", cfg)
    put_manifest(r, "z/src", "zstd", {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", cfg),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+zstd", zst)]})
    pull(engine, f"{distribution}/z/src:zstd")
    tag_as(engine, engine.images.resolve(f"{distribution}/z/src:zstd"), f"{distribution}/z/bb:zstd")
    (rootfs / "plain").write_text("a different layer\n")  # else the store shares the zstd one
    engine.import_image(str(tar_dir(rootfs, tmp_path / "bb2.tar.zst", "zst")), f"{distribution}/z/bb:plain")
    (z,) = push(engine, f"{distribution}/z/bb:zstd")
    (p,) = push(engine, f"{distribution}/z/bb:plain")
    data, media, digest = r.get_manifest("z/bb", "zstd")
    assert media == "application/vnd.oci.image.manifest.v1+json" and digest == z.digest
    assert json.loads(data)["layers"][0] == desc("application/vnd.oci.image.layer.v1.tar+zstd", zst)
    data, media, digest = r.get_manifest("z/bb", "plain")
    assert media == "application/vnd.docker.distribution.manifest.v2+json"
    assert json.loads(data)["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    for tag in ("zstd", "plain"):
        (res,) = pull(fresh, f"{distribution}/z/bb:{tag}")
        assert res.image_id == engine.images.resolve(f"{distribution}/z/bb:{tag}")
    layers = {l["compression"] for i in ("zstd", "plain")
              for l in fresh.images.layers(fresh.images.resolve(f"{distribution}/z/bb:{i}"))}
    assert layers == {"zstd", "gzip"}
