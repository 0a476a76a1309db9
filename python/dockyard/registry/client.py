"""The distribution-spec client: :class:`Registry` (transport and auth for one remote) and
``login``; :mod:`.pull` and :mod:`.push` move images with it.

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
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import ssl
import threading
import urllib.parse
from collections.abc import Callable

from . import auth
from .common import (
    ACCEPT, BadCredentials, Denied, DigestMismatch, RegistryError, Unauthorized,
    sha256,
)

HUB_API = "registry-1.docker.io"
MANIFEST_LIMIT = 4 << 20
CHUNK = 1 << 20
# Layers pulled (downloaded and extracted) at once: dockerd's --max-concurrent-downloads
# default; the daemon's option of that name overrides it (see pull._downloads).
DOWNLOADS = 3
UPLOADS = 4

# progress(layer_id, status, current, total): what the CLI renders.
Progress = Callable[[str, str, "int | None", "int | None"], None]


def no_progress(layer: str, status: str, current: int | None = None, total: int | None = None) -> None:
    pass


# -- where a registry is --------------------------------------------------------------------------


def _daemon_list(env: str, key: str, docker_too: bool = True) -> list[str]:
    """``$env`` (comma or space separated) and ``key`` of the daemon's configuration file
    (``/etc/dockyard/daemon.json`` or ``$DOCKYARD_DAEMON_CONFIG``; with ``docker_too``,
    ``/etc/docker/daemon.json`` too)."""
    entries = (os.environ.get(env) or "").replace(",", " ").split()
    paths = [os.environ.get("DOCKYARD_DAEMON_CONFIG") or "/etc/dockyard/daemon.json"]
    for path in paths + (["/etc/docker/daemon.json"] if docker_too else []):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            entries += [str(e) for e in data.get(key) or []]
    return entries


def _insecure_entries() -> list[str]:
    return _daemon_list("DOCKYARD_INSECURE_REGISTRIES", "insecure-registries")


def hub_mirrors() -> list[str]:
    """The Docker Hub mirrors a pull tries first, as dockerd's ``--registry-mirror`` (URLs, in
    order): ``$DOCKYARD_REGISTRY_MIRRORS`` and the daemon's file's ``registry-mirrors``."""
    return list(dict.fromkeys(m.rstrip("/") for m in _daemon_list("DOCKYARD_REGISTRY_MIRRORS", "registry-mirrors",
                                                                  docker_too=False)))


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
                 use_stored_credentials: bool = True, at: str = "") -> None:
        """``at``: a URL to reach the registry at instead (a Hub mirror)."""
        self.domain = domain
        self.mirror = bool(at)
        self.scheme, self.netloc = endpoint(domain)
        if at:
            parts = urllib.parse.urlsplit(at)
            self.scheme, self.netloc = parts.scheme, parts.netloc
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
            from .. import rootless

            if rootless.active():  # the host's loopback and network, through the port driver
                conn._create_connection = rootless.host_connection  # type: ignore[attr-defined]
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


def short_id(digest: str) -> str:
    """A layer's label in progress lines: the first 12 hex digits of its digest."""
    return digest.partition(":")[2][:12]


def record_names(engine, image_id: str, tags: list[str], repo_digest: str) -> None:
    """Tags and the repository digest a pull or push gave ``image_id``, in one transaction."""
    with engine.store.transaction() as db:
        for tag in tags:
            db.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (tag, image_id))
        db.execute("INSERT OR REPLACE INTO repo_digests VALUES (?,?)", (repo_digest, image_id))


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
