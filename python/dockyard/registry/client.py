"""The distribution-spec client: :class:`Registry` (transport and auth for one remote) and
:func:`pull` / :func:`push` over an engine.

Transport: one keep-alive ``http.client`` connection per thread and host (layers move in
parallel threads).  HTTPS is the default; plain HTTP is used for loopback addresses and
tried (after HTTPS without verification) for registries listed as insecure, as Docker
does.  Insecure registries come from ``$DOCKYARD_INSECURE_REGISTRIES`` (comma or space
separated hosts, host:port or CIDRs) and the ``insecure-registries`` key of
``/etc/dockyard/daemon.json`` (or ``$DOCKYARD_DAEMON_CONFIG``) and ``/etc/docker/daemon.json``.
``$DOCKYARD_HUB_ENDPOINT`` (``http://127.0.0.1:5000``) redirects Docker Hub (``docker.io``)
to another server: the tests use it so the Hub code path never leaves the machine.

Auth: a request goes out with whatever the registry asked for last (no ping first); a 401
carries the challenge: Bearer (a token from the realm for the request's scopes, fetched with
the user's Basic credentials when there are any) or Basic.  Tokens are cached per scope set.

Pull never trusts the network: every manifest and config is hashed before it is parsed, and
every layer's compressed digest and uncompressed diff ID are checked by the extractor in the
same pass that writes it.  A layer is extracted as it downloads: the bytes read from the
socket go to the blob file the store keeps and into a pipe the native extractor reads
(decompress, hash, write files), and layers move in parallel.  Everything is written under a
staging directory and registered in one transaction at the end, so a failed pull leaves
nothing in the store.  The one thing it leaves is each blob's bytes as far as they came,
under ``<root>/partial/<hex>`` (never registered, never read but by a pull): a pull cut
short, interrupted or killed is resumed by the next one, which feeds the extractor what is
kept and asks the registry for the rest with Range; the digests are checked over both.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import http.client
import ipaddress
import json
import os
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import reference as refs
from ..errors import DockyardError, LayerError
from . import auth
from .common import (
    ACCEPT, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, INDEX_TYPES, LAYER_TYPES,
    MANIFEST_TYPES, OCI_CONFIG, OCI_MANIFEST, BadCredentials, Denied, DigestMismatch, RegistryError, Unauthorized,
    sha256, valid_digest,
)

HUB_API = "registry-1.docker.io"
MANIFEST_LIMIT = 4 << 20
CHUNK = 1 << 20
# Layers pulled (downloaded and extracted) at once: dockerd's --max-concurrent-downloads
# default; the daemon's option of that name overrides it (see _downloads).
DOWNLOADS = 3
UPLOADS = 4

# progress(layer_id, status, current, total): what the CLI renders.
Progress = Callable[[str, str, "int | None", "int | None"], None]


def _no_progress(layer: str, status: str, current: int | None = None, total: int | None = None) -> None:
    pass


# -- where a registry is --------------------------------------------------------------------------


def _insecure_entries() -> list[str]:
    entries = (os.environ.get("DOCKYARD_INSECURE_REGISTRIES") or "").replace(",", " ").split()
    paths = [os.environ.get("DOCKYARD_DAEMON_CONFIG") or "/etc/dockyard/daemon.json", "/etc/docker/daemon.json"]
    for path in paths:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            entries += [str(e) for e in data.get("insecure-registries") or []]
    return entries


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_insecure(netloc: str) -> bool:
    """Whether plain HTTP (and unverified TLS) is allowed for ``host[:port]``."""
    host = urllib.parse.urlsplit("//" + netloc).hostname or netloc
    if _is_loopback(host):
        return True
    for entry in _insecure_entries():
        if entry in (netloc, host):
            return True
        if "/" in entry:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def endpoint(domain: str) -> tuple[str | None, str]:
    """(scheme or None when to be found out, netloc) of a registry's API."""
    if domain in auth.HUB_DOMAINS:
        override = os.environ.get("DOCKYARD_HUB_ENDPOINT")
        if override:
            parts = urllib.parse.urlsplit(override if "//" in override else "//" + override)
            return parts.scheme or None, parts.netloc
        return "https", HUB_API
    host = urllib.parse.urlsplit("//" + domain).hostname or domain
    if _is_loopback(host):
        return "http", domain
    return (None if is_insecure(domain) else "https"), domain


# -- transport ------------------------------------------------------------------------------------


class Response:
    """A response whose body is read by the caller (``read``) or at once (``body``)."""

    def __init__(self, raw: http.client.HTTPResponse, url: str) -> None:
        self.raw = raw
        self.url = url
        self.status = raw.status
        self.headers = raw.headers

    def _failed(self, exc: BaseException) -> RegistryError:
        self.raw.close()
        return RegistryError(f"{self.url.split('?')[0]}: reading the response failed: {exc or type(exc).__name__}")

    def read(self, n: int = CHUNK) -> bytes:
        try:
            return self.raw.read(n)
        except (OSError, http.client.HTTPException) as exc:
            raise self._failed(exc) from None

    def readinto(self, buf: memoryview) -> int:
        try:
            return self.raw.readinto(buf)
        except (OSError, http.client.HTTPException) as exc:
            raise self._failed(exc) from None

    def body(self, limit: int = MANIFEST_LIMIT) -> bytes:
        try:
            data = self.raw.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise self._failed(exc) from None
        if len(data) > limit:
            self.raw.close()
            raise RegistryError(f"{self.url}: response larger than {limit} bytes")
        return data

    def drain(self) -> None:
        try:
            while self.raw.read(CHUNK):
                pass
        except (OSError, http.client.HTTPException):
            self.raw.close()


class Registry:
    """One remote registry: where it is, how to reach it, and the auth it asked for."""

    def __init__(self, domain: str, credentials: tuple[str, str] | None = None,
                 use_stored_credentials: bool = True) -> None:
        self.domain = domain
        self.scheme, self.netloc = endpoint(domain)
        self.credentials = credentials if credentials is not None else (
            auth.credentials(domain) if use_stored_credentials else None)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[tuple[str, ...], str] = {}
        self._all: list[http.client.HTTPConnection] = []  # every thread's, to close at the end

    # -- connections --

    def _conn(self, scheme: str, netloc: str, fresh: bool = False) -> http.client.HTTPConnection:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        key = (scheme, netloc)
        conn = conns.get(key)
        if conn is not None and fresh:
            conn.close()
            conn = None
        if conn is None:
            if scheme == "https":
                ctx = ssl.create_default_context()
                if is_insecure(netloc):
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                conn = http.client.HTTPSConnection(netloc, timeout=60, context=ctx, blocksize=CHUNK)
            else:
                conn = http.client.HTTPConnection(netloc, timeout=60, blocksize=CHUNK)
            conns[key] = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()

    def _scheme(self) -> str:
        """The scheme for an insecure registry: HTTPS if it answers TLS, else HTTP."""
        if self.scheme is None:
            try:
                conn = self._conn("https", self.netloc)
                conn.timeout = 10
                conn.request("GET", "/v2/")
                conn.getresponse().read()
                conn.timeout = 60
                self.scheme = "https"
            except (ssl.SSLError, OSError, http.client.HTTPException):
                self._conn("https", self.netloc, fresh=True).close()
                self.scheme = "http"
        return self.scheme

    def _send(self, method: str, url: str, headers: dict[str, str], body) -> http.client.HTTPResponse:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (0, 1):
            conn = self._conn(parts.scheme, parts.netloc, fresh=attempt == 1)
            pos = body.tell() if hasattr(body, "tell") else None
            try:
                conn.request(method, target, body=body, headers=headers)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady) as exc:
                conn.close()
                if attempt == 1 or (hasattr(body, "read") and pos is None):
                    raise RegistryError(f"{method} {url}: {exc or type(exc).__name__}") from None
                if pos is not None:
                    body.seek(pos)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise RegistryError(f"{method} {url}: {exc or type(exc).__name__}") from None
        raise AssertionError("unreachable")

    def url(self, path: str) -> str:
        return f"{self._scheme()}://{self.netloc}{path}"

    # -- auth --

    def _authorization(self, scopes: tuple[str, ...]) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        kind, params = challenge
        if kind == "basic":
            if self.credentials:
                user, password = self.credentials
                return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            return None
        if kind == "bearer":
            with self._lock:
                token = self._tokens.get(scopes)
            if token is None:
                token = self._fetch_token(params, scopes)
                with self._lock:
                    self._tokens[scopes] = token
            return "Bearer " + token
        return None

    def _fetch_token(self, params: dict[str, str], scopes: tuple[str, ...]) -> str:
        realm = params.get("realm")
        if not realm:
            raise Unauthorized(f"{self.domain}: the registry's Bearer challenge has no realm")
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", s) for s in scopes]
        if self.credentials and self.credentials[0] != "<token>":
            query.append(("account", self.credentials[0]))
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {"User-Agent": "dockyard"}
        if self.credentials:
            user, password = self.credentials
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        raw = self._send("GET", url, headers, None)
        data = raw.read(1 << 20)
        if raw.status == 401 or raw.status == 403:
            raise BadCredentials(f"Get {url.split('?')[0]}: unauthorized: incorrect username or password",
                                 "UNAUTHORIZED", raw.status)
        if raw.status != 200:
            raise RegistryError(f"token server {realm} answered {raw.status}", "", raw.status)
        try:
            doc = json.loads(data)
            return doc.get("token") or doc["access_token"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RegistryError(f"token server {realm} sent no token") from None

    # -- requests --

    def request(self, method: str, path: str, scopes: tuple[str, ...], headers: dict[str, str] | None = None,
                body=None, ok: tuple[int, ...] = (200,)) -> Response:
        """Send a request (``path`` is a path on the registry or an absolute URL it gave us),
        answering one auth challenge and following redirects; raise unless the status is in
        ``ok``.  The caller reads the body."""
        url = path if "://" in path else self.url(path)
        base = dict(headers or {})
        base.setdefault("User-Agent", "dockyard")
        retried = False
        redirects = 0
        while True:
            hdrs = dict(base)
            same_host = urllib.parse.urlsplit(url).netloc == self.netloc
            if same_host:
                authz = self._authorization(scopes)
                if authz:
                    hdrs["Authorization"] = authz
            raw = self._send(method, url, hdrs, body)
            resp = Response(raw, url)
            if raw.status == 401 and same_host and not retried:
                header = raw.headers.get("WWW-Authenticate", "")
                resp.drain()
                if not header:
                    raise Unauthorized(f"{self.domain}: unauthorized (no WWW-Authenticate)", "UNAUTHORIZED", 401)
                kind, params = auth.parse_challenge(header)
                self._challenge = (kind, params)
                with self._lock:
                    self._tokens.pop(scopes, None)
                retried = True
                if hasattr(body, "seek"):
                    body.seek(0)
                continue
            if raw.status in (301, 302, 303, 307, 308) and raw.headers.get("Location") and redirects < 5:
                resp.drain()
                url = urllib.parse.urljoin(url, raw.headers["Location"])
                redirects += 1
                if raw.status == 303:
                    method, body = "GET", None
                continue
            if raw.status in ok:
                return resp
            raise self._error(method, url, resp)

    def _error(self, method: str, url: str, resp: Response) -> RegistryError:
        try:
            data = resp.body(1 << 16)
        except (RegistryError, OSError, http.client.HTTPException):
            data = b""
        code, message = "", ""
        try:
            errors = json.loads(data).get("errors") or []
            if errors:
                code = errors[0].get("code", "")
                message = errors[0].get("message", "")
        except (ValueError, AttributeError):
            pass
        text = f"{code.lower().replace('_', ' ')}: {message}" if code else (
            data.decode(errors="replace").strip()[:200] or http.client.responses.get(resp.status, ""))
        where = f"{method} {url.split('?')[0]}"
        if resp.status == 401:
            exc: RegistryError = Unauthorized(f"{where}: {text or 'unauthorized'}", code or "UNAUTHORIZED", 401)
        elif resp.status == 403:
            exc = Denied(f"{where}: {text or 'denied'}", code or "DENIED", 403)
        else:
            exc = RegistryError(f"{where}: {resp.status} {text}", code, resp.status)
        exc.detail = text if code else ""  # "manifest unknown: <the registry's message>"
        return exc

    # -- API --

    def ping(self) -> None:
        """GET /v2/ with credentials: what ``login`` checks."""
        resp = self.request("GET", "/v2/", (), ok=(200,))
        resp.drain()

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest; the digest is computed, and checked
        against the one asked for and the one the registry claims."""
        scopes = (f"repository:{repo}:pull",)
        try:
            resp = self.request("GET", f"/v2/{repo}/manifests/{reference}", scopes, {"Accept": ACCEPT})
        except RegistryError as exc:
            if exc.http_status == 404 or exc.code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"):
                # dockerd's words: the registry's error code and message after the reference
                raise RegistryError(f"manifest for {self.domain}/{repo}:{reference} not found: "
                                    f"{exc.detail or 'manifest unknown'}", exc.code, 404) from None
            raise
        data = resp.body()
        digest = sha256(data)
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(f"manifest {reference} of {repo} does not match its digest: it is {digest}")
        claimed = resp.headers.get("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise DigestMismatch(f"manifest {repo}:{reference} does not match the digest the registry "
                                 f"sent ({claimed}): it is {digest}")
        media = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            doc = json.loads(data)
        except ValueError:
            raise RegistryError(f"manifest {repo}:{reference} is not valid JSON") from None
        if not isinstance(doc, dict):
            raise RegistryError(f"manifest {repo}:{reference} is not a JSON object")
        if doc.get("mediaType"):
            media = doc["mediaType"]
        return data, media, digest

    def get_blob_bytes(self, repo: str, digest: str, limit: int = 64 << 20) -> bytes:
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", (f"repository:{repo}:pull",))
        data = resp.body(limit)
        if sha256(data) != digest:
            raise DigestMismatch(f"blob {digest} of {repo} does not match its digest: it is {sha256(data)}")
        return data

    def tags(self, repo: str) -> list[str]:
        out: list[str] = []
        path: str | None = f"/v2/{repo}/tags/list?n=1000"
        while path:
            resp = self.request("GET", path, (f"repository:{repo}:pull",))
            doc = json.loads(resp.body())
            out += doc.get("tags") or []
            link = resp.headers.get("Link", "")
            path = None
            if 'rel="next"' in link:
                path = link[link.index("<") + 1:link.index(">")]
        return out

    def has_blob(self, repo: str, digest: str, scopes: tuple[str, ...]) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes, ok=(200, 404))
        resp.drain()
        return resp.status == 200


# -- pull -----------------------------------------------------------------------------------------


@dataclass
class PullResult:
    reference: str           # what was pulled, normalised (docker.io/library/busybox:latest)
    image_id: str
    digest: str              # the manifest (or index) digest the reference resolved to
    new: bool                # False: the image was there already ("Image is up to date")
    messages: list[str] = field(default_factory=list)


def parse_platform(value: str | None) -> tuple[str, str, str]:
    from ..engine.images import _go_arch

    if not value:
        return "linux", _go_arch(), ""
    parts = value.lower().split("/")
    osname = parts[0] or "linux"
    arch = parts[1] if len(parts) > 1 else _go_arch()
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    variant = parts[2] if len(parts) > 2 else ""
    return osname, arch, variant


def _choose(index: dict, platform: tuple[str, str, str], where: str) -> dict:
    osname, arch, variant = platform
    candidates = []
    for desc in index.get("manifests") or []:
        p = desc.get("platform") or {}
        if p.get("os") != osname or p.get("architecture") != arch:
            continue
        if variant and p.get("variant", "") != variant:
            continue
        candidates.append(desc)
    if not candidates:
        want = "/".join(x for x in platform if x)
        raise RegistryError(f"no matching manifest for {want} in the manifest list entries of {where}")
    if arch == "arm64" and not variant:  # prefer v8 as docker does
        candidates.sort(key=lambda d: (d.get("platform") or {}).get("variant", "") not in ("", "v8"))
    return candidates[0]


def pull(engine, name: str, *, platform: str | None = None, all_tags: bool = False,
         progress: Progress | None = None, registry: Registry | None = None) -> list[PullResult]:
    """``docker pull``: every image that ``name`` (or, with ``all_tags``, its repository)
    names, registered under its tag and ``name@digest``."""
    ref = refs.parse(name)
    if all_tags and (ref.tag or ref.digest):
        raise DockyardError("tag can't be used with --all-tags/-a")
    reg = registry or Registry(ref.domain)
    try:
        if all_tags:
            targets = [ref.with_tag(t) for t in sorted(reg.tags(ref.path))]
        else:
            targets = [ref.with_default_tag()]
        return [_pull_one(engine, reg, target, parse_platform(platform), progress or _no_progress)
                for target in targets]
    finally:
        if registry is None:
            reg.close()


def _pull_one(engine, reg: Registry, ref: refs.Reference, platform: tuple[str, str, str],
              progress: Progress) -> PullResult:
    from ..engine.store import chain_ids

    repo = ref.path
    reference = ref.digest or ref.tag or "latest"
    try:
        data, media, digest = reg.get_manifest(repo, reference)
    except (Unauthorized, Denied) as exc:
        detail = str(exc).split(": ", 1)[-1]
        raise type(exc)(f"pull access denied for {ref.familiar_name}, repository does not exist or may "
                        f"require 'dockyard login': {detail}", exc.code, exc.http_status) from None
    top_digest = digest
    doc = json.loads(data)
    if media in INDEX_TYPES or (not media and "manifests" in doc):
        desc = _choose(doc, platform, f"{ref.familiar_name}:{reference}")
        if not valid_digest(str(desc.get("digest"))):
            raise RegistryError(f"{ref.familiar()}: the index names an unsupported digest {desc.get('digest')!r}")
        data, media, digest = reg.get_manifest(repo, desc["digest"])
        if desc.get("size") not in (None, len(data)):
            raise DigestMismatch(f"manifest {desc['digest']} is {len(data)} bytes, the index says {desc['size']}")
        doc = json.loads(data)
    if media not in MANIFEST_TYPES and not (not media and "layers" in doc):
        if doc.get("schemaVersion") == 1:
            raise RegistryError(f"{ref.familiar()}: Docker schema 1 manifests are not supported")
        raise RegistryError(f"{ref.familiar()}: unsupported manifest media type {media!r}")
    try:
        config_desc = doc["config"]
        layer_descs = doc.get("layers") or []
        for d in [config_desc, *layer_descs]:
            if not valid_digest(d["digest"]):
                raise RegistryError(f"{ref.familiar()}: unsupported digest {d['digest']!r}")
    except (KeyError, TypeError):
        raise RegistryError(f"{ref.familiar()}: malformed manifest") from None
    progress("", f"{ref.tag or ref.digest}: Pulling from {ref.path}", None, None)
    images = engine.images
    store = engine.store
    image_id = config_desc["digest"]
    exists = store.db.execute("SELECT 1 FROM images WHERE id=?", (image_id,)).fetchone() is not None
    if exists:
        config = images.config_bytes(image_id)
    else:
        config = reg.get_blob_bytes(repo, image_id)
    try:
        diff_ids = json.loads(config)["rootfs"]["diff_ids"] or []
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"{ref.familiar()}: the image config is malformed") from None
    if len(diff_ids) != len(layer_descs):
        raise RegistryError(f"{ref.familiar()}: the manifest has {len(layer_descs)} layers, the config "
                            f"{len(diff_ids)}")
    for d in layer_descs:
        if "foreign" in d.get("mediaType", "") or "nondistributable" in d.get("mediaType", ""):
            if d.get("urls"):
                raise RegistryError(f"{ref.familiar()}: foreign layers are not supported")
    tags = [str(ref)] if ref.tag else []
    repo_digest = f"{ref.name}@{top_digest}"
    if exists:
        # nothing to fetch (dockerd prints no layer lines then); "newer" means the reference
        # moved: a tag (or the digest reference) that did not name this image before
        named = [(t, "tags") for t in tags] or [(repo_digest, "repo_digests")]
        moved = any(store.db.execute(f"SELECT 1 FROM {table} WHERE name=? AND image_id=?",
                                     (name, image_id)).fetchone() is None for name, table in named)
        _record(engine, image_id, tags, repo_digest)
        return PullResult(str(ref), image_id, top_digest, moved)

    chains = chain_ids(diff_ids)
    known = {r[0] for r in store.db.execute("SELECT chain_id FROM layers")}
    records: list[dict | None] = [None] * len(layer_descs)
    todo = []
    for i, (d, diff_id, chain) in enumerate(zip(layer_descs, diff_ids, chains)):
        if chain in known:
            records[i] = {"diff_id": diff_id, "chain_id": chain, "existing": True}
            progress(_short(d["digest"]), "Already exists", None, None)
        else:
            todo.append(i)
            progress(_short(d["digest"]), "Pulling fs layer", None, None)

    _expire_partials(store)
    held: list[_Partial] = []  # locked until the image is registered (or the pull fails)
    lock = threading.Lock()
    with store.staging() as stage, contextlib.ExitStack() as release:
        release.callback(lambda: [p.close() for p in held])
        _spread(stage)

        def one(i: int) -> dict:
            d = layer_descs[i]
            short = _short(d["digest"])
            target = stage / f"layer{i}"
            target.mkdir()
            if store.has_blob(d["digest"]):
                blob_file = stage / f"none{i}"
                # with a progress detail, as dockerd sends it: a client off a terminal skips it
                progress(short, "Extracting", 0, d.get("size") or None)
                rec = _extract(store.blob_path(d["digest"]), target, d["digest"], diff_ids[i])
            else:
                part = _Partial.open(store, d["digest"], stage / f"blob{i}")
                with lock:
                    held.append(part)
                blob_file = part.path
                try:
                    rec = _fetch_layer(reg, repo, d, part, target, diff_ids[i], short, progress)
                except (DigestMismatch, LayerError) as exc:
                    if isinstance(exc, CutShort):
                        raise  # the prefix is good: the next pull goes on from its end
                    again = part.held > 0
                    part.reset()
                    if not again:
                        raise
                    # What a cut-short pull kept may be what is wrong (a crash can leave
                    # garbage in a file's last pages): once more, from the first byte.
                    from ..engine.store import remove_tree

                    remove_tree(target)
                    target.mkdir()
                    try:
                        rec = _fetch_layer(reg, repo, d, part, target, diff_ids[i], short, progress)
                    except (DigestMismatch, LayerError) as exc2:
                        if not isinstance(exc2, CutShort):
                            part.reset()
                        raise
            rec["dir"], rec["blob_file"], rec["chain_id"] = target, blob_file, chains[i]
            rec["blob"], rec["blob_size"], rec["blob_compression"] = d["digest"], rec["compressed_size"], rec["compression"]
            progress(short, "Pull complete", None, None)
            return rec

        if todo:
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(_downloads(len(todo))) as pool:
                futures = {i: pool.submit(one, i) for i in todo}
                try:
                    for i, fut in futures.items():
                        records[i] = fut.result()
                except BaseException:
                    for fut in futures.values():
                        fut.cancel()
                    raise
        from ..engine.images import NewImage

        image_id, _ = images.register(NewImage(config, tags), records)  # type: ignore[arg-type]
        _record(engine, image_id, [], repo_digest)
        for part in held:
            part.drop()  # one the store did not adopt (another pull registered the layer first)
    return PullResult(str(ref), image_id, top_digest, True)


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


def _downloads(layers: int) -> int:
    """Layers pulled at once: the daemon's ``--max-concurrent-downloads`` (which sets
    ``$DOCKYARD_MAX_CONCURRENT_DOWNLOADS``), else ``max-concurrent-downloads`` in the daemon's
    config file, else dockerd's default (3); 0 means no limit, as in dockerd."""
    value: object = os.environ.get("DOCKYARD_MAX_CONCURRENT_DOWNLOADS", "")
    if not value:
        path = os.environ.get("DOCKYARD_DAEMON_CONFIG") or "/etc/dockyard/daemon.json"
        try:
            with open(path) as f:
                value = json.load(f).get("max-concurrent-downloads", "")
        except (OSError, ValueError, AttributeError):
            value = ""
    n = int(value) if isinstance(value, int) or (isinstance(value, str) and value.isdigit()) else DOWNLOADS
    return max(1, min(n or layers, layers))


def _spread(path: Path) -> None:
    """Mark ``path`` as the top of unrelated hierarchies (``chattr +T``, FS_TOPDIR_FL): ext4
    then places each directory made in it (a layer) by the Orlov allocator, in a block group
    of its own with room to spare, instead of beside its parent.  Beside the parent is where
    the store's (and every other program's) recent deletes are, and on an ext4 without a
    journal each inode allocated there first walks past every inode deleted in the last
    minute (``find_inode_bit`` -> ``recently_deleted``, a buffer lookup each): 0.6 s of
    system time for one 140 MB layer of 1400 files on this machine's root file system, 0.06 s
    in a group of its own.  Not every file system has the flag: then nothing changes."""
    import array

    flags = array.array("i", [0, 0])  # FS_IOC_*FLAGS read and write an int; room for a long
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.ioctl(fd, 0x80086601, flags, True)  # FS_IOC_GETFLAGS
        if not flags[0] & 0x00020000:  # FS_TOPDIR_FL
            flags[0] |= 0x00020000
            fcntl.ioctl(fd, 0x40086602, flags, True)  # FS_IOC_SETFLAGS
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data):]


def _grow_pipe(fd: int) -> None:
    """A pipe of 1 MiB (the default ceiling for an unprivileged one) rather than 64 KiB: the
    downloader's chunk goes in with one write and the extractor takes it with one read."""
    for size in (CHUNK, 256 << 10):
        try:
            fcntl.fcntl(fd, 1031, size)  # F_SETPIPE_SZ
            return
        except OSError:
            continue


class CutShort(DigestMismatch):
    """A blob whose connection dropped on every try: the bytes that came are good so far."""


#: A kept prefix untouched for this long is dropped (by the next pull on the same store).
PARTIAL_TTL = 7 * 24 * 3600


def _partial_dir(store) -> Path:
    # Beside tmp/ rather than in it: tmp/ holds only what a live process is writing (the
    # sweep empties it after a crash), and these must outlast the process.
    return store.root / "partial"


def _expire_partials(store) -> None:
    try:
        entries = list(os.scandir(_partial_dir(store)))
    except OSError:
        return
    old = time.time() - PARTIAL_TTL
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < old:
                os.unlink(entry.path)


class _Partial:
    """The file a layer's blob downloads into.  It lives under the store's temp area keyed by
    digest (``partial/<hex>``) and outlasts a pull that is cut short, interrupted or
    killed, so the next pull feeds the extractor what it holds and asks the registry for the
    rest with Range (``held`` bytes).  An flock says who is writing it: another pull of the
    same blob at the same time downloads to a private ``fallback`` file instead.  The lock
    stays until the image is registered (its blob renamed into the store) or the pull fails."""

    def __init__(self, fd: int, path: Path, kept: bool) -> None:
        self.fd, self.path, self.kept = fd, path, kept
        size = os.fstat(fd).st_size
        self.held = size

    @classmethod
    def open(cls, store, digest: str, fallback: Path) -> _Partial:
        path = _partial_dir(store) / digest.partition(":")[2]
        for _ in range(3):
            try:
                path.parent.mkdir(mode=0o700, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                break
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return cls(fd, path, True)
            os.close(fd)  # renamed into the store (or reset) while we waited: a new one
        fd = os.open(fallback, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        return cls(fd, fallback, False)

    def reset(self) -> None:
        """Its bytes are wrong: start over from the first."""
        os.ftruncate(self.fd, 0)
        self.held = 0

    def drop(self) -> None:
        """The image is registered: a kept file still at its path (the store took none, another
        pull registered the layer first) is not needed any more.  One the store adopted has
        been renamed into blobs/: the descriptor is that blob now, so only the path is looked at."""
        if self.fd < 0 or not self.kept:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)

    def close(self) -> None:
        """Unlock; a kept file that holds nothing (reset, or cut before its first byte) goes."""
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            st = os.fstat(self.fd)
            if self.kept and st.st_size == 0 and os.stat(self.path).st_ino == st.st_ino:
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = -1


def _feed(sink: int, fd: int, count: int) -> bool:
    """Copy the first ``count`` bytes of ``fd`` into the pipe ``sink`` (in the kernel); False
    when the reader has gone."""
    off = 0
    try:
        while off < count:
            sent = os.sendfile(sink, fd, off, count - off)
            if not sent:
                raise CutShort("a kept prefix shrank while it was read")
            off += sent
    except BrokenPipeError:
        return False
    return True


def _fetch_layer(reg: Registry, repo: str, desc: dict, part: _Partial, target: Path, diff_id: str,
                 short: str, progress: Progress) -> dict:
    """Download a layer's blob to ``part`` and extract it into ``target`` in the same pass:
    each chunk read from the socket goes to the file and into a pipe that the native extractor
    reads (decompressing, hashing and writing files on its own threads), so extraction ends
    as the last byte arrives.  What ``part`` holds from an earlier pull goes into the pipe
    first, and the download asks for the rest (Range); resumed downloads continue the same
    stream: the extractor sees one body.  Both digests are checked once the stream ends, over
    prefix and rest alike."""
    from .. import _native

    digest = desc["digest"]
    blob_file = part.path
    r, w = os.pipe()
    _grow_pipe(w)
    box: dict = {}

    def extract() -> None:
        try:
            box["info"] = _native.extract(f"/proc/self/fd/{r}", str(target))
        except BaseException as exc:  # (handed to the pulling thread)
            box["error"] = exc
        finally:
            os.close(r)  # the downloader's next write fails (EPIPE): it goes on to the file alone

    extractor = threading.Thread(target=extract, name=f"dockyard-extract-{short}", daemon=True)
    extractor.start()
    failure: BaseException | None = None
    try:
        _download(reg, repo, desc, part, lambda n, total: progress(short, "Downloading", n, total), sink=w)
        progress(short, "Verifying Checksum", None, None)
        progress(short, "Download complete", None, None)
        # with a progress detail, as dockerd sends it: a client off a terminal skips it
        size = desc.get("size") or None
        progress(short, "Extracting", size, size)
    except BaseException as exc:
        failure = exc
    finally:
        os.close(w)  # end of stream: the extractor drains, checks and returns
        extractor.join()
    if failure is not None:
        raise failure
    error = box.get("error")
    if isinstance(error, LayerError):
        # Corrupt bytes usually break decompression before the digest is known: say which.
        actual = _native.sha256_file(str(blob_file))
        if actual != digest:
            raise DigestMismatch(f"layer {digest} does not match its digest: its content is {actual}") from None
        raise LayerError(f"layer {digest} is not a valid layer: {error}", error.member) from None
    if error is not None:
        raise error
    return _checked(box["info"], digest, diff_id)


def _download(reg: Registry, repo: str, desc: dict, part: _Partial, report: Callable[[int, int], None],
              attempts: int = 3, sink: int | None = None) -> None:
    """Fetch a blob to ``part`` (and, in order, to the file descriptor ``sink`` until it is
    closed at the other end), after the ``part.held`` bytes it has from an earlier pull (fed
    to ``sink`` first).  A connection that drops is resumed where it stopped (a Range
    request; a registry that ignores it and starts over has the bytes we hold skipped), up to
    ``attempts`` times, as docker does.  The digest is checked by the extractor, in the pass
    that reads the bytes anyway."""
    digest, size = desc["digest"], desc.get("size")
    fd = part.fd
    n = part.held
    if size is not None and n > size:
        part.reset()
        n = 0
    if n and sink is not None and not _feed(sink, fd, n):
        sink = None
    os.lseek(fd, n, os.SEEK_SET)
    if n and n == size:
        report(n, size)
        return
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    failure = ""
    for _ in range(attempts):
        headers = {"Range": f"bytes={n}-"} if n else {}
        resp = reg.request("GET", f"/v2/{repo}/blobs/{digest}", (f"repository:{repo}:pull",), headers,
                           ok=(200, 206))
        start = 0
        if resp.status == 206:
            crange = resp.headers.get("Content-Range", "")
            first = crange.removeprefix("bytes ").split("-")[0].strip()
            start = int(first) if first.isdigit() else n
        skip = n - start  # bytes of this body that we hold already
        if skip < 0:
            resp.raw.close()
            raise RegistryError(f"layer {digest}: the registry resumed at byte {start}, not {n}")
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else (size or 0)
        if size is not None and length and length.isdigit() and total != size:
            resp.raw.close()
            raise DigestMismatch(f"layer {digest}: the registry sends {total} bytes, the manifest says {size}")
        last = n
        try:
            while True:
                got = resp.readinto(view)
                if not got:
                    break
                chunk = view[:got]
                if skip:
                    drop = min(skip, got)
                    skip -= drop
                    chunk = chunk[drop:]
                    if not chunk:
                        continue
                _write_all(fd, chunk)
                if sink is not None:
                    try:
                        _write_all(sink, chunk)
                    except BrokenPipeError:
                        sink = None  # the extractor stopped: it says why; the file gets the rest
                n += len(chunk)
                if n - last >= (4 << 20):
                    report(n, total)
                    last = n
        except RegistryError as exc:
            failure = str(exc)
            continue
        want = size if size is not None else total
        if not want or n == want:
            report(n, total)
            return
        if n > want:
            break
        resp.raw.close()
        failure = f"{n} of {want} bytes arrived"
    want = size if size is not None else n
    if failure and n < want:
        raise CutShort(f"layer {digest} was cut short: {n} of {want} bytes arrived")
    raise DigestMismatch(f"layer {digest} is larger than its manifest says ({n} bytes, not {want})")


def _extract(src: Path, target: Path, digest: str, diff_id: str) -> dict:
    from .. import _native

    try:
        info = _native.extract(str(src), str(target))
    except LayerError as exc:
        # Corrupt bytes usually break decompression before the digest is known: say which.
        actual = _native.sha256_file(str(src))
        if actual != digest:
            raise DigestMismatch(f"layer {digest} does not match its digest: its content is {actual}") from None
        raise LayerError(f"layer {digest} is not a valid layer: {exc}", exc.member) from None
    return _checked(info, digest, diff_id)


def _checked(info, digest: str, diff_id: str) -> dict:
    if info["digest"] != digest:
        raise DigestMismatch(f"layer {digest} does not match its digest: its content is {info['digest']}")
    if info["diff_id"] != diff_id:
        raise DigestMismatch(f"layer {digest} does not match the image config: its diff ID is "
                             f"{info['diff_id']}, the config says {diff_id}")
    return dict(info)


def _record(engine, image_id: str, tags: list[str], repo_digest: str) -> None:
    with engine.store.transaction() as db:
        for tag in tags:
            db.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (tag, image_id))
        db.execute("INSERT OR REPLACE INTO repo_digests VALUES (?,?)", (repo_digest, image_id))


# -- push -----------------------------------------------------------------------------------------


@dataclass
class PushResult:
    reference: str
    digest: str
    size: int


@dataclass
class _Blob:
    digest: str
    size: int
    media: str
    path: Path | None = None
    data: bytes | None = None
    label: str = ""


def push(engine, name: str, *, all_tags: bool = False, progress: Progress | None = None,
         chunk_size: int | None = None, registry: Registry | None = None) -> list[PushResult]:
    """``docker push``: the image ``name`` names (or every tag of its repository) with its
    layers, config and a manifest (Docker schema2 when every layer is gzip, else OCI)."""
    progress = progress or _no_progress
    ref = refs.parse(name)
    if ref.digest:
        raise DockyardError("cannot push a digest reference")
    if all_tags:
        if ref.tag:
            raise DockyardError("tag can't be used with --all-tags/-a")
        tags = [t for t in _all_tags(engine) if t.rsplit(":", 1)[0] == ref.name]
        if not tags:
            raise DockyardError(f"An image does not exist locally with the tag: {ref.familiar_name}")
    else:
        tags = [str(ref.with_default_tag())]
    reg = registry or Registry(ref.domain)
    env_chunk = os.environ.get("DOCKYARD_PUSH_CHUNK_SIZE")
    if chunk_size is None and env_chunk:
        chunk_size = int(env_chunk)
    progress("", f"The push refers to repository [{ref.name}]", None, None)
    try:
        return [_push_one(engine, reg, refs.parse(t), progress, chunk_size) for t in tags]
    finally:
        if registry is None:
            reg.close()


def _all_tags(engine) -> list[str]:
    return [r[0] for r in engine.store.db.execute("SELECT name FROM tags ORDER BY name")]


def _push_one(engine, reg: Registry, ref: refs.Reference, progress: Progress,
              chunk_size: int | None) -> PushResult:
    images, store = engine.images, engine.store
    try:
        image_id = images.resolve(str(ref))
    except DockyardError:
        raise DockyardError(f"An image does not exist locally with the tag: {ref.familiar()}") from None
    repo = ref.path
    config = images.config_bytes(image_id)
    layers = images.layers(image_id)
    # Repositories on the same registry that hold this image already: mount sources.
    sources = []
    for name in images.digests_of(image_id) + images.tags_of(image_id):
        other = refs.parse(name)
        if other.domain == ref.domain and other.path != repo and other.path not in sources:
            sources.append(other.path)
    with store.staging() as stage:
        blobs: list[_Blob] = []
        docker_types = all(l["compression"] != "zstd" for l in layers)
        for l in layers:
            label = _short(l["diff_id"])
            progress(label, "Preparing", None, None)
            # Registries and docker expect compressed layers: a plain tar, or a tar-split's
            # rebuilt tar, is gzipped for the wire.
            path, digest, size, compression = images.layer_blob(l, stage, ("gzip", "zstd"), "gzip")
            media = DOCKER_LAYER_GZIP if docker_types else LAYER_TYPES[compression]
            blobs.append(_Blob(digest, size, media, path, label=label))
        config_blob = _Blob(image_id, len(config), DOCKER_CONFIG if docker_types else OCI_CONFIG, data=config)
        scopes = (f"repository:{repo}:pull,push",) + tuple(f"repository:{s}:pull" for s in sources)

        def one(blob: _Blob) -> None:
            _push_blob(reg, repo, blob, scopes, sources, chunk_size, progress)

        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(UPLOADS) as pool:
            futures = [pool.submit(one, b) for b in blobs]
            for fut in futures:
                fut.result()
        _push_blob(reg, repo, config_blob, scopes, sources, chunk_size, _no_progress)
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker_types else OCI_MANIFEST,
            "config": {"mediaType": config_blob.media, "size": config_blob.size, "digest": config_blob.digest},
            "layers": [{"mediaType": b.media, "size": b.size, "digest": b.digest} for b in blobs],
        }
        data = json.dumps(manifest, indent=3).encode()
        digest = sha256(data)
        resp = reg.request("PUT", f"/v2/{repo}/manifests/{ref.tag}", scopes,
                           {"Content-Type": manifest["mediaType"], "Content-Length": str(len(data))},
                           body=data, ok=(201, 200, 202))
        resp.drain()
        claimed = resp.headers.get("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise DigestMismatch(f"the registry stored the manifest as {claimed}, expected {digest}")
        from ..engine.images import TAR_SPLIT

        for l, b in zip(layers, blobs):
            if l["compression"] == TAR_SPLIT and b.path is not None and b.path.parent == stage:
                images.keep_blob(l, b.path, b.digest, b.size, "gzip")
    _record(engine, image_id, [], f"{ref.name}@{digest}")
    progress("", f"{ref.tag}: digest: {digest} size: {len(data)}", None, None)
    return PushResult(str(ref), digest, len(data))


class _Reporting:
    """A file that reports how far it has been read (the body of a monolithic upload)."""

    def __init__(self, f, report: Callable[[int], None]) -> None:
        self.f, self.report, self.done, self.last = f, report, 0, 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.done += len(data)
        if self.done - self.last >= (4 << 20):
            self.report(self.done)
            self.last = self.done
        return data

    def tell(self) -> int:
        return self.f.tell()

    def seek(self, pos: int, whence: int = 0) -> int:
        self.done = self.last = 0
        return self.f.seek(pos, whence)


def _location(resp: Response, base: str) -> str:
    loc = resp.headers.get("Location")
    if not loc:
        raise RegistryError(f"{base}: the registry sent no upload location")
    return urllib.parse.urljoin(base, loc)


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)


def _push_blob(reg: Registry, repo: str, blob: _Blob, scopes: tuple[str, ...], sources: list[str],
               chunk_size: int | None, progress: Progress) -> None:
    if reg.has_blob(repo, blob.digest, scopes):
        progress(blob.label, "Layer already exists", None, None)
        return
    start = None
    for source in sources:
        resp = reg.request("POST", f"/v2/{repo}/blobs/uploads/?" + urllib.parse.urlencode(
            {"mount": blob.digest, "from": source}), scopes, {"Content-Length": "0"}, body=b"", ok=(201, 202))
        resp.drain()
        if resp.status == 201:
            progress(blob.label, f"Mounted from {source}", None, None)
            return
        start = _location(resp, resp.url)  # the registry opened an ordinary upload instead
        break
    if start is None:
        resp = reg.request("POST", f"/v2/{repo}/blobs/uploads/", scopes, {"Content-Length": "0"}, body=b"",
                           ok=(202,))
        resp.drain()
        start = _location(resp, resp.url)
    progress(blob.label, "Pushing", 0, blob.size)
    if blob.data is not None:
        body_len = len(blob.data)
        resp = reg.request("PUT", _with_query(start, digest=blob.digest), scopes,
                           {"Content-Type": "application/octet-stream", "Content-Length": str(body_len)},
                           body=blob.data, ok=(201, 204))
        resp.drain()
    elif not chunk_size or blob.size <= chunk_size:
        with open(blob.path, "rb") as f:  # type: ignore[arg-type]
            body = _Reporting(f, lambda n: progress(blob.label, "Pushing", n, blob.size))
            resp = reg.request("PUT", _with_query(start, digest=blob.digest), scopes,
                               {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)},
                               body=body, ok=(201, 204))
            resp.drain()
    else:
        location = start
        with open(blob.path, "rb") as f:  # type: ignore[arg-type]
            offset = 0
            while offset < blob.size:
                chunk = f.read(chunk_size)
                resp = reg.request("PATCH", location, scopes, {
                    "Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}, body=chunk, ok=(202, 204))
                resp.drain()
                location = _location(resp, location)
                offset += len(chunk)
                progress(blob.label, "Pushing", offset, blob.size)
        resp = reg.request("PUT", _with_query(location, digest=blob.digest), scopes,
                           {"Content-Length": "0"}, body=b"", ok=(201, 204))
        resp.drain()
    claimed = resp.headers.get("Docker-Content-Digest")
    if claimed and claimed != blob.digest:
        raise DigestMismatch(f"the registry stored blob {blob.digest} as {claimed}")
    progress(blob.label, "Pushed", None, None)


def login(server: str | None, user: str, password: str) -> str:
    """Check credentials against a registry and store them; returns the key used."""
    domain = auth.server_key(server or auth.HUB_KEY)
    if domain == auth.HUB_KEY:
        domain = "docker.io"
    reg = Registry(domain, credentials=(user, password))
    try:
        reg.ping()
    except BadCredentials:
        raise
    except Unauthorized:
        raise Unauthorized(f"login attempt to {reg.url('/v2/')} failed with status: 401 Unauthorized",
                           "UNAUTHORIZED", 401) from None
    finally:
        reg.close()
    auth.store_credentials(domain if domain != "docker.io" else auth.HUB_KEY, user, password)
    return domain

