"""``dockyard registry serve``: the OCI distribution spec over a directory.

Layout under ``--root`` (names and references are checked against distribution's grammar
before any of them becomes a path, so ``..``, ``%2e``, empty or upper-case components and
the like never reach the file system)::

    blobs/sha256/<hex>                            every blob and manifest, by digest
    repositories/<name>/_layers/<hex>             the blob is in the repository (empty file)
    repositories/<name>/_manifests/revisions/<hex>  the manifest is in it (holds its media type)
    repositories/<name>/_manifests/tags/<tag>     holds the digest the tag points at
    uploads/<uuid>, uploads/<uuid>.repo           uploads in progress

Files are written to a temporary name and renamed, so a crash never leaves a partial blob
or link.  A blob is stored once however many repositories link it (cross-repository mounts
only add a link).

Access: with no ``--users`` file everyone may read and write.  With one, repositories
matching a ``--public`` pattern (shell-style, ``library/*``) are readable by anyone, every
other read and every write needs a user; users named by ``--read-only`` may only read.
Clients authenticate with Basic credentials on each request or (``--auth token``, the
default, as Docker Hub and distribution do) with a bearer token from ``/token``: a 401
carries ``WWW-Authenticate: Bearer realm=…,service=…,scope=…``.  A token carries only the
actions it was granted, so a token obtained for ``pull`` cannot push.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import auth
from .common import ALL_MANIFEST_TYPES, INDEX_TYPES, sha256, valid_digest, valid_name, valid_tag

MANIFEST_LIMIT = 4 << 20
UUID_RE = re.compile(r"[0-9a-f]{32}")
SERVICE = "dockyard-registry"

ROUTES = [
    ("tags", re.compile(r"^/v2/(.+)/tags/list$")),
    ("manifest", re.compile(r"^/v2/(.+)/manifests/([^/]+)$")),
    ("uploads", re.compile(r"^/v2/(.+)/blobs/uploads/?$")),
    ("upload", re.compile(r"^/v2/(.+)/blobs/uploads/([^/]+)$")),
    ("blob", re.compile(r"^/v2/(.+)/blobs/([^/]+)$")),
]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 detail: object = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.detail = detail


class Storage:
    """The registry's files; every path it builds comes from a validated name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("blobs/sha256", "repositories", "uploads", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._hashes: dict[str, tuple[object, int]] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0
        # Temporary files of a crash are garbage; so are uploads abandoned (below).
        now = time.time()
        for entry in (root / "tmp").iterdir():
            try:
                if entry.stat().st_mtime < now - 3600:
                    entry.unlink()
            except OSError:
                pass
        self.expire_uploads()

    #: an upload that received nothing for this long is abandoned: removed (distribution purges
    #: its abandoned uploads the same way, by age)
    upload_expiry = 86400.0

    def expire_uploads(self) -> None:
        """Remove abandoned uploads (a client that died or was cut off mid-push leaves one);
        runs when an upload starts, at most once per ``upload_expiry / 4`` (and 10 minutes)."""
        now = time.time()
        with self._lock:
            if now < self._next_sweep:
                return
            self._next_sweep = now + min(600.0, self.upload_expiry / 4)
        for entry in (self.root / "uploads").iterdir():
            u = entry.name.split(".", 1)[0]
            if not UUID_RE.fullmatch(u):
                continue
            try:
                idle_since = self.upload(u).stat().st_mtime
            except FileNotFoundError:
                idle_since = entry.stat().st_mtime if entry.exists() else 0  # a .repo alone
            if idle_since < now - self.upload_expiry:
                self.drop_upload(u)

    def blob(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest[7:]

    def repo(self, name: str) -> Path:
        return self.root / "repositories" / name

    def layer_link(self, name: str, digest: str) -> Path:
        return self.repo(name) / "_layers" / digest[7:]

    def revision(self, name: str, digest: str) -> Path:
        return self.repo(name) / "_manifests" / "revisions" / digest[7:]

    def tag(self, name: str, tag: str) -> Path:
        return self.repo(name) / "_manifests" / "tags" / tag

    def write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "tmp" / uuid.uuid4().hex
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # (a full disk leaves nothing behind)
            raise

    def put_blob(self, data: bytes) -> str:
        digest = sha256(data)
        if not self.blob(digest).exists():
            self.write(self.blob(digest), data)
        return digest

    def exists(self, name: str) -> bool:
        return (self.repo(name) / "_manifests").is_dir() or (self.repo(name) / "_layers").is_dir()

    def repositories(self) -> list[str]:
        base = self.root / "repositories"
        out = []
        for dirpath, dirnames, _ in os.walk(base):
            if "_manifests" in dirnames:
                out.append(os.path.relpath(dirpath, base))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(out)

    # -- uploads --

    def upload(self, u: str) -> Path:
        return self.root / "uploads" / u

    def start_upload(self, name: str) -> str:
        self.expire_uploads()
        u = uuid.uuid4().hex
        self.upload(u).touch()
        self.upload(u).with_suffix(".repo").write_text(name)
        with self._lock:
            self._hashes[u] = (hashlib.sha256(), 0)
        return u

    def upload_repo(self, u: str) -> str | None:
        if not UUID_RE.fullmatch(u):
            return None
        try:
            return self.upload(u).with_suffix(".repo").read_text()
        except FileNotFoundError:
            return None

    def upload_state(self, u: str) -> tuple[object, int]:
        with self._lock:
            state = self._hashes.get(u)
        if state is None:  # a restart lost it: hash what is there
            h = hashlib.sha256()
            n = 0
            with open(self.upload(u), "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    n += len(chunk)
            state = (h, n)
        return state

    def set_upload_state(self, u: str, state: tuple[object, int]) -> None:
        with self._lock:
            self._hashes[u] = state

    def drop_upload(self, u: str) -> None:
        with self._lock:
            self._hashes.pop(u, None)
        self.upload(u).unlink(missing_ok=True)
        self.upload(u).with_suffix(".repo").unlink(missing_ok=True)


class Access:
    """Who may do what: htpasswd users, read-only users, public patterns, tokens."""

    def __init__(self, users: auth.Users | None, public: list[str], read_only: list[str], mode: str) -> None:
        self.users = users
        self.public = public
        self.read_only = set(read_only)
        self.mode = mode
        self.tokens = auth.Tokens()

    def allowed(self, user: str | None, name: str) -> set[str]:
        if self.users is None:
            return {"pull", "push", "delete", "*"}
        if user is None:
            return {"pull"} if any(fnmatch.fnmatchcase(name, p) for p in self.public) else set()
        if user in self.read_only:
            return {"pull"}
        return {"pull", "push", "delete", "*"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dockyard-registry"
    sys_version = ""
    server: RegistryServer

    # -- plumbing --

    def log_message(self, format: str, *args: object) -> None:
        if self.server.log:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def log_error(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} - error: {format % args}\n")

    def handle_one_request(self) -> None:
        # A TLS ClientHello on the plain-HTTP port (a client probing for HTTPS, as Docker does
        # for insecure registries): hang up at once instead of waiting for a request line.
        if self.server.scheme == "http":
            try:
                first = self.rfile.peek(1)[:1]
            except OSError:
                first = b""
            if first == b"\x16":
                self.close_connection = True
                return
        super().handle_one_request()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._body_read = False
        parts = urllib.parse.urlsplit(self.path)
        self.query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        path = parts.path
        try:
            if path in ("/v2", "/v2/"):
                self._check_any()
                self._send(200, b"{}", {"Content-Type": "application/json"})
            elif path == "/token" and method in ("GET", "POST"):
                self._token()
            elif path == "/v2/_catalog" and method == "GET":
                self._catalog()
            else:
                for kind, pattern in ROUTES:
                    m = pattern.match(path)
                    if m:
                        name = m.group(1)
                        if not valid_name(name):
                            raise ApiError(400, "NAME_INVALID", "invalid repository name", detail={"name": name})
                        getattr(self, f"_{kind}")(method, name, *m.groups()[1:])
                        break
                else:
                    raise ApiError(404, "NOT_FOUND" if path.startswith("/v2/") else "UNSUPPORTED",
                                   "the requested resource was not found")
        except ApiError as exc:
            self._api_error(exc)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug or the disk: the client gets a spec error, not a hang-up
            self.close_connection = True
            self.log_error("%s %s: %s: %s", method, path, type(exc).__name__, exc)
            try:
                self._api_error(ApiError(500, "UNKNOWN", f"internal error: {type(exc).__name__}"))
            except OSError:
                pass
        if not self._body_read and not self.close_connection:
            # An unread body would be taken for the next request: skip a small one, else hang up.
            length = self.headers.get("Content-Length", "0")
            if self.headers.get("Transfer-Encoding") or not length.isdigit() or int(length) > (1 << 20):
                self.close_connection = True
            elif int(length):
                self.rfile.read(int(length))

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _api_error(self, exc: ApiError) -> None:
        doc = {"errors": [{"code": exc.code, "message": exc.message, "detail": exc.detail}]}
        body = json.dumps(doc).encode()
        self._send(exc.status, body, dict(exc.headers, **{"Content-Type": "application/json"}))

    def _read_body(self, sink, limit: int | None = None) -> int:
        """Copy the request body (Content-Length or chunked) to ``sink(bytes)``."""
        self._body_read = True
        total = 0
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ApiError(400, "BLOB_UPLOAD_INVALID", "chunked body cut short")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += self._copy(sink, size, total, limit)
                self.rfile.readline(8)
            return total
        length = int(self.headers.get("Content-Length") or 0)
        return self._copy(sink, length, 0, limit)

    def _copy(self, sink, size: int, already: int, limit: int | None) -> int:
        if limit is not None and already + size > limit:
            self.close_connection = True
            raise ApiError(413, "SIZE_INVALID", f"body larger than {limit} bytes")
        left = size
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                self.close_connection = True
                raise ApiError(400, "BLOB_UPLOAD_INVALID", "request body cut short")
            sink(chunk)
            left -= len(chunk)
        return size

    def _read_bytes(self, limit: int) -> bytes:
        parts: list[bytes] = []
        self._read_body(parts.append, limit)
        return b"".join(parts)

    # -- auth --

    def _identity(self) -> tuple[str, object] | None:
        """("user", name) from Basic, ("token", claims) from Bearer, None when anonymous.
        Bad credentials are a 401, never anonymous access."""
        header = self.headers.get("Authorization", "")
        access = self.server.access
        if not header or access.users is None:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            import base64

            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise self._challenge("", "malformed Basic credentials") from None
            if not access.users.check(user, password):
                raise self._challenge("", "incorrect username or password")
            return ("user", user)
        if scheme.lower() == "bearer":
            claims = access.tokens.verify(value.strip())
            if claims is None:
                raise self._challenge("", "invalid or expired token", "invalid_token")
            return ("token", claims)
        raise self._challenge("", f"unsupported authorization scheme {scheme}")

    def _challenge(self, scope: str, message: str = "authentication required", error: str = "") -> ApiError:
        access = self.server.access
        if access.mode == "basic":
            header = f'Basic realm="{SERVICE}"'
        else:
            host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
            header = f'Bearer realm="{self.server.scheme}://{host}/token",service="{SERVICE}"'
            if scope:
                header += f',scope="{scope}"'
            if error:
                header += f',error="{error}"'
        return ApiError(401, "UNAUTHORIZED", message, {"WWW-Authenticate": header})

    def _check_any(self) -> None:
        """/v2/: any valid user (or anyone when there are no users)."""
        if self.server.access.users is None:
            return
        if self._identity() is None:
            raise self._challenge("")

    def _can(self, name: str, actions: list[str], challenge: bool = True) -> bool:
        access = self.server.access
        if access.users is None:
            return True
        ident = self._identity()
        scope = f"repository:{name}:{','.join(actions)}"
        if ident is None:
            granted = access.allowed(None, name)
        elif ident[0] == "token":
            granted = set()
            for entry in ident[1].get("access") or []:  # type: ignore[union-attr]
                if entry.get("type") == "repository" and entry.get("name") == name:
                    granted |= set(entry.get("actions") or [])
            if "*" in granted:
                granted |= {"pull", "push", "delete"}
        else:
            granted = access.allowed(str(ident[1]), name)
        if all(a in granted for a in actions):
            return True
        if not challenge:
            return False
        if ident is None:
            raise self._challenge(scope)
        if ident[0] == "token":
            raise self._challenge(scope, "insufficient scope for this request", "insufficient_scope")
        raise ApiError(403, "DENIED", "requested access to the resource is denied")

    def _token(self) -> None:
        access = self.server.access
        if access.users is None:
            raise ApiError(404, "UNSUPPORTED", "this registry needs no token")
        user = None
        ident = self._identity()
        if ident is not None:
            if ident[0] != "user":
                raise ApiError(401, "UNAUTHORIZED", "the token endpoint takes Basic credentials")
            user = str(ident[1])
        granted = []
        for scope in self.query.get("scope", []):
            for one in scope.split(" "):
                parts = one.split(":")
                if len(parts) < 3:
                    continue
                kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
                if kind == "repository" and valid_name(name):
                    ok = access.allowed(user, name)
                    give = [a for a in actions if a in ok]
                elif kind == "registry" and name == "catalog" and user is not None:
                    give = ["*"]
                else:
                    give = []
                if give:
                    granted.append({"type": kind, "name": name, "actions": give})
        token, lifetime = access.tokens.issue(user or "", granted)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = json.dumps({"token": token, "access_token": token, "expires_in": lifetime,
                           "issued_at": issued}).encode()
        self._send(200, body, {"Content-Type": "application/json"})

    # -- catalog and tags --

    def _page(self, items: list[str], base: str) -> tuple[list[str], dict[str, str]]:
        """Pagination as the spec has it: ``n`` results after ``last``, a Link to the rest."""
        last = (self.query.get("last") or [""])[0]
        if last:
            items = [i for i in items if i > last]
        headers = {"Content-Type": "application/json"}
        n_text = (self.query.get("n") or [""])[0]
        if n_text:
            try:
                n = int(n_text)
            except ValueError:
                raise ApiError(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested") from None
            if n < 0:
                raise ApiError(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
            if len(items) > n:
                items = items[:n]
                if items:
                    q = urllib.parse.urlencode({"n": n, "last": items[-1]})
                    headers["Link"] = f'<{base}?{q}>; rel="next"'
        return items, headers

    def _catalog(self) -> None:
        access = self.server.access
        user = None
        if access.users is not None:
            ident = self._identity()
            if ident is None:
                raise self._challenge("registry:catalog:*")
            if ident[0] == "token":
                claims: dict = ident[1]  # type: ignore[assignment]
                if not any(a.get("type") == "registry" and a.get("name") == "catalog"
                           for a in claims.get("access") or []):
                    raise self._challenge("registry:catalog:*", "insufficient scope for this request",
                                          "insufficient_scope")
                user = claims.get("sub") or None
            else:
                user = str(ident[1])
        # The repositories this user may read.
        repos = [r for r in self.server.storage.repositories() if "pull" in access.allowed(user, r)]
        repos, headers = self._page(repos, "/v2/_catalog")
        self._send(200, json.dumps({"repositories": repos}).encode(), headers)

    def _tags(self, method: str, name: str) -> None:
        if method not in ("GET", "HEAD"):
            raise ApiError(405, "UNSUPPORTED", "method not allowed")
        self._can(name, ["pull"])
        tags_dir = self.server.storage.repo(name) / "_manifests" / "tags"
        if not self.server.storage.exists(name):
            raise ApiError(404, "NAME_UNKNOWN", "repository name not known to registry", detail={"name": name})
        tags = sorted(os.listdir(tags_dir)) if tags_dir.is_dir() else []
        tags, headers = self._page(tags, f"/v2/{name}/tags/list")
        self._send(200, json.dumps({"name": name, "tags": tags}).encode(), headers)

    # -- manifests --

    def _resolve(self, name: str, reference: str) -> str:
        st = self.server.storage
        if valid_digest(reference):
            digest = reference
        elif valid_tag(reference):
            try:
                digest = st.tag(name, reference).read_text().strip()
            except FileNotFoundError:
                raise ApiError(404, "MANIFEST_UNKNOWN", "manifest unknown",
                               detail={"name": name, "tag": reference}) from None
        else:
            raise ApiError(400, "TAG_INVALID" if ":" not in reference else "DIGEST_INVALID",
                           "invalid reference", detail={"reference": reference})
        if not st.revision(name, digest).exists():
            raise ApiError(404, "MANIFEST_UNKNOWN", "manifest unknown", detail={"name": name, "digest": digest})
        return digest

    def _manifest(self, method: str, name: str, reference: str) -> None:
        st = self.server.storage
        if method in ("GET", "HEAD"):
            self._can(name, ["pull"])
            digest = self._resolve(name, reference)
            media = st.revision(name, digest).read_text().strip()
            data = st.blob(digest).read_bytes()
            self._send(200, data, {"Content-Type": media, "Docker-Content-Digest": digest,
                                   "Etag": f'"{digest}"'})
        elif method == "PUT":
            self._can(name, ["pull", "push"])
            if not (valid_digest(reference) or valid_tag(reference)):
                raise ApiError(400, "TAG_INVALID", "invalid reference", detail={"reference": reference})
            data = self._read_bytes(MANIFEST_LIMIT)
            digest = sha256(data)
            if valid_digest(reference) and reference != digest:
                raise ApiError(400, "DIGEST_INVALID", "provided digest did not match uploaded content",
                               detail={"digest": reference, "computed": digest})
            media = self._check_manifest(name, data)
            st.put_blob(data)
            st.write(st.revision(name, digest), media.encode())
            if not valid_digest(reference):
                st.write(st.tag(name, reference), digest.encode())
            self._send(201, b"", {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest})
        elif method == "DELETE":
            self._can(name, ["delete"])
            if valid_digest(reference):
                digest = self._resolve(name, reference)
                tags_dir = st.repo(name) / "_manifests" / "tags"
                for tag in os.listdir(tags_dir) if tags_dir.is_dir() else []:
                    if st.tag(name, tag).read_text().strip() == digest:
                        st.tag(name, tag).unlink(missing_ok=True)
                st.revision(name, digest).unlink()
            else:
                self._resolve(name, reference)
                st.tag(name, reference).unlink()
            self._send(202)
        else:
            raise ApiError(405, "UNSUPPORTED", "method not allowed")

    def _check_manifest(self, name: str, data: bytes) -> str:
        st = self.server.storage
        try:
            doc = json.loads(data)
        except ValueError:
            raise ApiError(400, "MANIFEST_INVALID", "manifest invalid: not JSON") from None
        if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
            raise ApiError(400, "MANIFEST_INVALID", "manifest invalid: schemaVersion must be 2")
        media = doc.get("mediaType") or (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if not media:
            media = "application/vnd.oci.image.index.v1+json" if "manifests" in doc else \
                "application/vnd.oci.image.manifest.v1+json"
        if media not in ALL_MANIFEST_TYPES:
            raise ApiError(400, "MANIFEST_INVALID", f"manifest invalid: unsupported media type {media}")
        try:
            if media in INDEX_TYPES:
                for desc in doc.get("manifests") or []:
                    if not valid_digest(desc["digest"]) or not st.revision(name, desc["digest"]).exists():
                        raise ApiError(400, "MANIFEST_BLOB_UNKNOWN", "manifest references an unknown manifest",
                                       detail={"digest": desc["digest"]})
            else:
                for desc in [doc["config"], *(doc.get("layers") or [])]:
                    if desc.get("urls"):
                        continue  # a foreign layer lives elsewhere
                    if not valid_digest(desc["digest"]) or not st.layer_link(name, desc["digest"]).exists():
                        raise ApiError(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry",
                                       detail={"digest": desc["digest"]})
        except (KeyError, TypeError, AttributeError):
            raise ApiError(400, "MANIFEST_INVALID", "manifest invalid: malformed descriptors") from None
        return media

    # -- blobs --

    def _blob(self, method: str, name: str, digest: str) -> None:
        st = self.server.storage
        if not valid_digest(digest):
            raise ApiError(400, "DIGEST_INVALID", "invalid digest", detail={"digest": digest})
        if method in ("GET", "HEAD"):
            self._can(name, ["pull"])
            path = st.blob(digest)
            if not st.layer_link(name, digest).exists() or not path.exists():
                raise ApiError(404, "BLOB_UNKNOWN", "blob unknown to registry", detail={"digest": digest})
            size = path.stat().st_size
            headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest,
                       "Etag": f'"{digest}"', "Accept-Ranges": "bytes"}
            start, end = 0, size - 1
            # RFC 9110 byte ranges: first-last, first- and the suffix -N (the last N bytes); a
            # list of ranges or one not understood is answered with the whole blob (allowed)
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
            if m and not m.group(1) and not m.group(2):
                m = None
            if m:  # a client resuming a download, or reading a part
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:
                    start, end = max(0, size - int(m.group(2))), size - 1
                    if int(m.group(2)) == 0:
                        start = size  # (a zero-length suffix is unsatisfiable)
                if start > end:
                    raise ApiError(416, "BLOB_UNKNOWN", "range not satisfiable", {"Content-Range": f"bytes */{size}"})
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            self._send(206 if m else 200, b"", headers, length=end - start + 1 if size else 0)
            if method == "GET" and size:
                with open(path, "rb") as f:
                    self.wfile.flush()
                    self.connection.sendfile(f, start, end - start + 1)
        elif method == "DELETE":
            self._can(name, ["delete"])
            link = st.layer_link(name, digest)
            if not link.exists():
                raise ApiError(404, "BLOB_UNKNOWN", "blob unknown to registry", detail={"digest": digest})
            link.unlink()
            self._send(202, b"", {"Docker-Content-Digest": digest})
        else:
            raise ApiError(405, "UNSUPPORTED", "method not allowed")

    def _uploads(self, method: str, name: str) -> None:
        st = self.server.storage
        if method != "POST":
            raise ApiError(405, "UNSUPPORTED", "method not allowed")
        self._can(name, ["pull", "push"])
        mount, source = (self.query.get("mount") or [""])[0], (self.query.get("from") or [""])[0]
        if mount and source:
            if valid_digest(mount) and valid_name(source) and st.layer_link(source, mount).exists() \
                    and self._can(source, ["pull"], challenge=False):
                st.write(st.layer_link(name, mount), b"")
                self._send(201, b"", {"Location": f"/v2/{name}/blobs/{mount}", "Docker-Content-Digest": mount})
                return
        u = st.start_upload(name)
        digest = (self.query.get("digest") or [""])[0]
        if digest:  # monolithic upload in the POST itself (nobody knows its uuid: never kept)
            try:
                self._append(u)
            except BaseException:
                st.drop_upload(u)
                raise
            self._finish(name, u, digest)
            return
        self._send(202, b"", {"Location": f"/v2/{name}/blobs/uploads/{u}", "Range": "0-0",
                              "Docker-Upload-UUID": u})

    def _append(self, u: str) -> int:
        """Append the body to the upload.  A body cut short keeps what arrived, and the upload's
        progress (``Range`` of GET and of the next answers) says so: the client resumes from
        there, as the spec has it (it said 0-0 and kept the bytes: the resumed upload then held
        them twice and failed its digest)."""
        st = self.server.storage
        h, size = st.upload_state(u)
        got = [0]
        with open(st.upload(u), "ab") as f:
            def sink(chunk: bytes) -> None:
                f.write(chunk)
                h.update(chunk)  # type: ignore[attr-defined]
                got[0] += len(chunk)
            try:
                self._read_body(sink)
            finally:
                f.flush()
                st.set_upload_state(u, (h, size + got[0]))
        return size + got[0]

    def _finish(self, name: str, u: str, digest: str) -> None:
        st = self.server.storage
        if not valid_digest(digest):
            st.drop_upload(u)
            raise ApiError(400, "DIGEST_INVALID", "invalid digest", detail={"digest": digest})
        h, _ = st.upload_state(u)
        computed = "sha256:" + h.hexdigest()  # type: ignore[attr-defined]
        if computed != digest:
            st.drop_upload(u)
            raise ApiError(400, "DIGEST_INVALID", "provided digest did not match uploaded content",
                           detail={"digest": digest, "computed": computed})
        dest = st.blob(digest)
        if dest.exists():
            st.upload(u).unlink(missing_ok=True)
        else:
            os.rename(st.upload(u), dest)
        st.drop_upload(u)
        st.write(st.layer_link(name, digest), b"")
        self._send(201, b"", {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})

    def _upload(self, method: str, name: str, u: str) -> None:
        st = self.server.storage
        if st.upload_repo(u) != name:
            raise ApiError(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", detail={"uuid": u})
        if method in ("GET", "HEAD"):
            self._can(name, ["pull"])
            _, size = st.upload_state(u)
            self._send(204, b"", {"Location": f"/v2/{name}/blobs/uploads/{u}", "Range": f"0-{max(size - 1, 0)}",
                                  "Docker-Upload-UUID": u})
            return
        self._can(name, ["pull", "push"])
        if method == "PATCH":
            _, size = st.upload_state(u)
            rng = self.headers.get("Content-Range")
            if rng:
                m = re.fullmatch(r"(?:bytes[ =])?(\d+)-(\d+)(?:/\d+|/\*)?", rng.strip())
                if not m or int(m.group(1)) != size:
                    self.close_connection = True
                    raise ApiError(416, "BLOB_UPLOAD_INVALID", "content range does not follow the upload",
                                   {"Range": f"0-{max(size - 1, 0)}", "Location": f"/v2/{name}/blobs/uploads/{u}"})
            size = self._append(u)
            self._send(202, b"", {"Location": f"/v2/{name}/blobs/uploads/{u}", "Range": f"0-{max(size - 1, 0)}",
                                  "Docker-Upload-UUID": u})
        elif method == "PUT":
            self._append(u)
            self._finish(name, u, (self.query.get("digest") or [""])[0])
        elif method == "DELETE":
            st.drop_upload(u)
            self._send(204)
        else:
            raise ApiError(405, "UNSUPPORTED", "method not allowed")


class RegistryServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], root: Path, access: Access, log: bool = False,
                 tls: tuple[str, str] | None = None) -> None:
        self.storage = Storage(root)
        self.access = access
        self.log = log
        self.scheme = "https" if tls else "http"
        super().__init__(address, Handler)
        if tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--listen wants HOST:PORT, not {listen!r}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def make_server(listen: str, root: str | os.PathLike[str], users: str | None = None, public: list[str] = (),
                read_only: list[str] = (), auth_mode: str = "token", log: bool = False,
                tls: tuple[str, str] | None = None) -> RegistryServer:
    access = Access(auth.Users(users) if users else None, list(public), list(read_only), auth_mode)
    return RegistryServer(parse_listen(listen), Path(root), access, log, tls)
