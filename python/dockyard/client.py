"""``dockyard.Client``: the Python SDK, docker-py's shape with types, over the daemon's socket.

>>> import dockyard
>>> client = dockyard.Client()                        # doctest: +SKIP
>>> client.containers.run("busybox", ["echo", "hi"])  # doctest: +SKIP
b'hi\\n'

Lean on purpose (the CLI imports it on every command): a small HTTP/1.1 client of its own
(keep-alive, chunked, upgrade) instead of ``http.client`` (whose email/ssl imports cost more
than everything else here), over :mod:`dockyard._wire` (JSON and sockets straight from the C
modules, without the ``re``/``enum`` imports of ``json`` and ``socket``).  Errors are dockyard's own tree (:mod:`dockyard.errors`): the daemon sends
``{"message": ...}`` with the status of the error it raised, and the client raises the same
class again (404 -> ``ContainerNotFound``/``ImageNotFound``/``NotFound`` by route, 409 ->
``Conflict``, 400 -> ``InvalidArgument``); no HTTP type leaks out.
"""

from __future__ import annotations

import builtins
import os
import sys

from . import _wire
from .errors import (
    Conflict, ConnectionFailed, ContainerNotFound, DockyardError, ImageNotFound, InvalidArgument, NotFound,
)

TYPE_CHECKING = False  # typing, dataclasses, http.client, urllib: ~40 ms the CLI never pays
if TYPE_CHECKING:
    from typing import Any, Iterator

API_VERSION = "1.45"

__all__ = ["Client", "Container", "Image", "ContainerError", "ExecResult", "ContainerNotFound",
           "APIError"]


class APIError(DockyardError):
    """A daemon error with a status the tree has no class for (5xx)."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class ContainerError(DockyardError):
    """``containers.run`` (not detached): the command exited non-zero."""

    def __init__(self, container: Container, exit_status: int, command: list[str] | None, image: str,
                 stderr: bytes) -> None:
        super().__init__(f"Command '{' '.join(command or [])}' in image '{image}' returned non-zero exit "
                         f"status {exit_status}: {stderr.decode(errors='replace').strip()}")
        self.container = container
        self.exit_status = exit_status
        self.stderr = stderr
        self.exit_code = exit_status


def _default_host() -> str:
    host = os.environ.get("DOCKYARD_HOST")
    if host:
        return host
    return "unix://" + os.path.join(os.environ.get("DOCKYARD_RUN", "/run/dockyard"), "dockyard.sock")


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str, safe: str = "/") -> str:
    """Percent-encode (urllib.parse.quote without its import cost)."""
    ok = _SAFE | frozenset(safe.encode())
    return "".join(chr(b) if b in ok else f"%{b:02X}" for b in str(text).encode())


def urlencode(items: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, '')}={quote(v, '')}" for k, v in items)


class Response:
    """An HTTP/1.1 response body (Content-Length, chunked, or until close)."""

    def __init__(self, f, status: int, headers: dict[str, str], method: str) -> None:  # noqa: ANN001
        self.f = f
        self.status = status
        self.headers = headers
        te = headers.get("transfer-encoding", "").lower()
        self.chunked = "chunked" in te
        length = headers.get("content-length")
        self.left = int(length) if length is not None and not self.chunked else None
        if method == "HEAD" or status in (101, 204, 304):
            self.left, self.chunked = 0, False
        self.chunk_left = 0
        self.done = self.left == 0
        self.keep = headers.get("connection", "").lower() != "close" and (self.chunked or self.left is not None)
        self._dockyard_conn: Connection | None = None

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def read1(self, n: int = 65536) -> bytes:
        if self.done:
            return b""
        if self.chunked:
            if self.chunk_left == 0:
                line = self.f.readline(1024)
                if not line:  # the connection ended before the last chunk: the body is cut short
                    self.done = True
                    raise ConnectionFailed("the daemon ended the response early (the operation failed; see its log)")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.f.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    self.done = True
                    return b""
                self.chunk_left = size
            data = self.f.read1(min(n, self.chunk_left))
            if not data:
                self.done = True
                return b""
            self.chunk_left -= len(data)
            if self.chunk_left == 0:
                self.f.readline(8)
            return data
        want = n if self.left is None else min(n, self.left)
        data = self.f.read1(want) if want else b""
        if self.left is not None:
            self.left -= len(data)
            if self.left <= 0:
                self.done = True
        if not data:
            self.done = True
        return data

    def read(self, n: int = -1) -> bytes:
        out = []
        while n < 0 or n > 0:
            data = self.read1(65536 if n < 0 else n)
            if not data:
                break
            out.append(data)
            if n > 0:
                n -= len(data)
        return b"".join(out)

    def recv(self, n: int) -> bytes:
        return self.read1(n)

    def readline(self) -> bytes:
        buf = bytearray()
        while not buf.endswith(b"\n"):
            if self.chunked and self.chunk_left:
                # read within the current chunk only
                line = self.f.readline(self.chunk_left)
                self.chunk_left -= len(line)
                if self.chunk_left == 0:
                    self.f.readline(8)
                buf += line
                continue
            data = self.read1(1)
            if not data:
                break
            buf += data
        return bytes(buf)


class Connection:
    def __init__(self, path: str, timeout: float | None) -> None:
        self.sock = _wire.socket(_wire.AF_UNIX, _wire.SOCK_STREAM)
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.f = _wire.Reader(self.sock)
        self.response: Response | None = None

    def close(self) -> None:
        try:
            self.f.close()
        finally:
            self.sock.close()

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def exchange(self, method: str, url: str, headers: dict[str, str], body, fd: int | None = None) -> Response:  # noqa: ANN001
        head = [f"{method} {url} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
        if fd is not None:
            # dockyard's own extension: the body is an open file handed over with SCM_RIGHTS
            # (one byte carries it), once the daemon has said 100 Continue; see daemon/http.py
            head += ["Content-Length: 1", "Dockyard-Body-Fd: 1", "Expect: 100-continue"]
            self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            status = self._read_head()[0]
            if status != 100:
                raise ConnectionResetError(f"the daemon answered {status} instead of 100 Continue")
            self.sock.sendmsg([b"\0"], [(_wire.SOL_SOCKET, _wire.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])
        elif body is None:
            if method in ("POST", "PUT"):
                head.append("Content-Length: 0")
            self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        elif isinstance(body, (bytes, bytearray)):
            head.append(f"Content-Length: {len(body)}")
            self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + bytes(body))
        else:  # a file: chunked
            head.append("Transfer-Encoding: chunked")
            self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            while chunk := body.read(1 << 20):
                self.sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.sock.sendall(b"0\r\n\r\n")
        while True:
            status, hdrs = self._read_head()
            if status == 100:
                continue
            resp = Response(self.f, status, hdrs, method)
            self.response = resp
            return resp

    def _read_head(self) -> tuple[int, dict[str, str]]:
        line = self.f.readline(65537)
        if not line:
            raise ConnectionResetError("the daemon closed the connection")
        status = int(line.split(None, 2)[1])
        hdrs: dict[str, str] = {}
        while True:
            h = self.f.readline(65537)
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs


class Transport:
    """HTTP/1.1 over the unix socket: one kept-alive connection, a fresh one for streams and
    hijacked requests."""

    def __init__(self, base_url: str | None = None, timeout: float | None = 60) -> None:
        url = base_url or _default_host()
        if not url.startswith("unix://"):
            raise InvalidArgument(f"only unix:// hosts are supported, not {url!r}")
        self.path = url[len("unix://"):]
        self.timeout = timeout
        self.headers: dict[str, str] = {}  # sent with every request
        self._conn: Connection | None = None

    def clone(self) -> Transport:
        """A transport to the same daemon with a connection of its own (one per thread)."""
        other = Transport(f"unix://{self.path}", self.timeout)
        other.headers = dict(self.headers)
        return other

    def adopt(self, conn: Connection) -> None:
        """Use an already-open connection for the next request."""
        self.close()
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @staticmethod
    def _url(path: str, params: dict | None) -> str:
        url = f"/v{API_VERSION}{path}"
        if params:
            items = []
            for k, v in params.items():
                if v is None:
                    continue
                if isinstance(v, bool):
                    v = "1" if v else "0"
                elif isinstance(v, dict) or (isinstance(v, list) and k == "filters"):
                    v = _wire.dumps(v)
                if isinstance(v, list):
                    items += [(k, str(x)) for x in v]
                else:
                    items.append((k, str(v)))
            url += "?" + urlencode(items)
        return url

    def _connect(self, timeout: float | None) -> Connection:
        try:
            return Connection(self.path, timeout)
        except FileNotFoundError:
            raise ConnectionFailed(f"Cannot connect to the dockyard daemon at unix://{self.path}. "
                                "Is the dockyard daemon running?") from None
        except PermissionError:
            raise ConnectionFailed(f"permission denied while trying to connect to the dockyard daemon "
                                f"socket at unix://{self.path}") from None
        except ConnectionRefusedError:
            raise ConnectionFailed(f"Cannot connect to the dockyard daemon at unix://{self.path}: "
                                "connection refused") from None

    def request(self, method: str, path: str, params: dict | None = None, body: Any = None,
                headers: dict | None = None, stream: bool = False, timeout: float | None = -1,
                body_fd: int | None = None) -> Response:
        """One request.  ``body_fd``: instead of a body, hand the daemon this open file (the
        daemon reads it in place: no copy through the socket; dockyard's daemon only)."""
        hdrs = {"Host": "dockyard", **self.headers, **(headers or {})}
        data = body
        if body is not None and not isinstance(body, (bytes, bytearray)) and not hasattr(body, "read"):
            data = _wire.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        url = self._url(path, params)
        t = self.timeout if timeout == -1 else timeout
        for attempt in (0, 1):
            reused = False
            if stream or self._conn is None:
                conn = self._connect(t)
            else:
                conn, reused = self._conn, True
                conn.settimeout(t)
            if not stream:
                self._conn = None
            try:
                resp = conn.exchange(method, url, hdrs, data, body_fd)
            except (ConnectionError, BrokenPipeError, ValueError, IndexError, OSError) as exc:
                conn.close()
                if reused and not attempt and not hasattr(data, "read"):
                    continue  # the kept-alive connection had gone stale: once more, fresh
                raise ConnectionFailed(f"error talking to the dockyard daemon at unix://{self.path}: {exc}") from None
            resp._dockyard_conn = conn
            if resp.status >= 400:
                raw = resp.read()
                self.finish(resp)
                raise _error(resp.status, raw, path)
            if not stream:
                resp._dockyard_keep = True  # type: ignore[attr-defined]
            return resp
        raise AssertionError("unreachable")

    def finish(self, resp: Response) -> None:
        """Done with a response: keep its connection for the next request when it can be."""
        conn = resp._dockyard_conn
        if conn is None:
            return
        resp._dockyard_conn = None
        if getattr(resp, "_dockyard_keep", False) and resp.done and resp.keep and self._conn is None:
            self._conn = conn
        else:
            conn.close()

    def read(self, method: str, path: str, params: dict | None = None, body: Any = None, **kw: Any) -> bytes:
        resp = self.request(method, path, params, body, stream=True, **kw)
        try:
            return resp.read()
        finally:
            self.finish(resp)

    def json(self, method: str, path: str, params: dict | None = None, body: Any = None, **kw: Any) -> Any:
        resp = self.request(method, path, params, body, **kw)
        try:
            raw = resp.read()
        finally:
            self.finish(resp)
        if not raw:
            return None
        if "json" not in (resp.getheader("Content-Type") or ""):
            return raw
        try:
            return _wire.loads(raw)
        except ValueError:
            return [_wire.loads(line) for line in raw.splitlines() if line.strip()]

    def hijack(self, path: str, params: dict | None = None, body: Any = None) -> _Prefixed:
        """POST with ``Upgrade: tcp``; returns the raw socket after ``101 UPGRADED``."""
        s = _wire.socket(_wire.AF_UNIX, _wire.SOCK_STREAM)
        s.connect(self.path)
        data = _wire.dumps(body).encode() if body is not None else b""
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        head = (f"POST {self._url(path, params)} HTTP/1.1\r\nHost: dockyard\r\nConnection: Upgrade\r\n"
                f"Upgrade: tcp\r\n{extra}Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
        s.sendall(head.encode() + data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        header, _, rest = buf.partition(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1]) if header.startswith(b"HTTP/") else 500
        if status >= 400:
            # the body follows (Content-Length): read what there is
            s.settimeout(5)
            try:
                while chunk := s.recv(65536):
                    rest += chunk
            except OSError:
                pass
            s.close()
            raise _error(status, rest, path)
        return _Prefixed(s, rest)


class _Prefixed:
    """A socket with bytes already read in front of it."""

    def __init__(self, sock: _wire.socket, first: bytes) -> None:
        self.sock = sock
        self.first = first

    def recv(self, n: int) -> bytes:
        if self.first:
            out, self.first = self.first[:n], self.first[n:]
            return out
        return self.sock.recv(n)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()


def _error(status: int, raw: bytes, path: str) -> DockyardError:
    kind = ""
    try:
        doc = _wire.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError(raw)
        message, kind = doc.get("message", ""), doc.get("kind") or ""
    except ValueError:
        message = raw.decode(errors="replace").strip()
    if kind:
        # dockyard's daemon says the kind: the same class, no guessing from the words
        from . import errors

        cls = getattr(errors, kind, None)
        if isinstance(cls, type) and issubclass(cls, DockyardError) and cls.__module__ == errors.__name__ \
                and getattr(cls, "status", None) == status:
            return cls(message)
    # another daemon (dockerd, podman): from the status and, for 404s, the words
    if status == 404:
        low = message.lower()
        if "no such image" in low or (path.startswith("/images") and "container" not in low):
            return ImageNotFound(message)
        if "no such container" in low or path.startswith("/containers"):
            return ContainerNotFound(message)
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status == 400:
        return InvalidArgument(message)
    return APIError(message, status)


def frames(read, tty: bool) -> Iterator[tuple[int, bytes]]:  # noqa: ANN001
    """(stream, bytes) from ``read(n)`` (b"" at the end): Docker's 8-byte ``[kind,0,0,0,len32]``
    frames without a TTY (1 stdout, 2 stderr), raw bytes as stdout with one."""
    if tty:
        while chunk := read(65536):
            yield 1, chunk
        return
    buf = b""
    while True:
        chunk = read(65536)
        if not chunk:
            return
        buf += chunk
        while len(buf) >= 8:
            size = int.from_bytes(buf[4:8], "big")
            if len(buf) < 8 + size:
                break
            yield buf[0], buf[8:8 + size]
            buf = buf[8 + size:]


# -- models -----------------------------------------------------------------------------------------

class Model:
    id_attribute = "Id"

    def __init__(self, attrs: dict, client: Client, collection: Any) -> None:
        self.attrs = attrs
        self.client = client
        self.collection = collection

    @property
    def id(self) -> str:
        return self.attrs.get(self.id_attribute, "")

    @property
    def short_id(self) -> str:
        ident = self.id
        return ident[:19] if ident.startswith("sha256:") else ident[:12]

    def reload(self) -> None:
        self.attrs = self.collection.get(self.id).attrs

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.short_id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and other.id == self.id

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.id))


class ExecResult:
    """``exit_code`` (None when detached or streamed) and ``output``; unpacks like docker-py's."""

    __slots__ = ("exit_code", "output")

    def __init__(self, exit_code: int | None, output: bytes | tuple[bytes | None, bytes | None]) -> None:
        self.exit_code = exit_code
        self.output = output

    def __iter__(self):  # noqa: ANN204
        return iter((self.exit_code, self.output))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExecResult) and (other.exit_code, other.output) == (self.exit_code, self.output)

    def __repr__(self) -> str:
        return f"ExecResult(exit_code={self.exit_code!r}, output={self.output!r})"


class Container(Model):
    @property
    def name(self) -> str:
        return (self.attrs.get("Name") or (self.attrs.get("Names") or [""])[0]).lstrip("/")

    @property
    def status(self) -> str:
        state = self.attrs.get("State")
        return state.get("Status", "") if isinstance(state, dict) else (state or "")

    @property
    def labels(self) -> dict[str, str]:
        return (self.attrs.get("Config") or {}).get("Labels") or self.attrs.get("Labels") or {}

    @property
    def image(self) -> Image | None:
        ident = self.attrs.get("Image") or self.attrs.get("ImageID")
        return self.client.images.get(ident) if ident else None

    def _api(self, method: str, suffix: str, params: dict | None = None, body: Any = None, **kw: Any) -> Any:
        return self.client.api.json(method, f"/containers/{self.id}{suffix}", params, body, **kw)

    def start(self) -> None:
        self._api("POST", "/start")

    def stop(self, timeout: int | None = None, signal: str | None = None) -> None:
        self._api("POST", "/stop", {"t": timeout, "signal": signal}, timeout=None)

    def restart(self, timeout: int | None = None) -> None:
        self._api("POST", "/restart", {"t": timeout}, timeout=None)

    def kill(self, signal: str | int = "KILL") -> None:
        self._api("POST", "/kill", {"signal": signal})

    def pause(self) -> None:
        self._api("POST", "/pause")

    def unpause(self) -> None:
        self._api("POST", "/unpause")

    def rename(self, name: str) -> None:
        self._api("POST", "/rename", {"name": name})

    def remove(self, force: bool = False, v: bool = False) -> None:
        self._api("DELETE", "", {"force": force, "v": v})

    def wait(self, condition: str = "not-running", timeout: float | None = None) -> dict:
        return self._api("POST", "/wait", {"condition": condition}, timeout=timeout)

    def top(self, ps_args: str | None = None) -> dict:
        return self._api("GET", "/top", {"ps_args": ps_args})

    def diff(self) -> list[dict]:
        return self._api("GET", "/changes") or []

    def stats(self, stream: bool = False) -> dict:
        return self._api("GET", "/stats", {"stream": stream}, timeout=None)

    def _tty(self) -> bool:
        cfg = self.attrs.get("Config")
        if cfg is None:
            self.reload()
            cfg = self.attrs.get("Config") or {}
        return bool(cfg.get("Tty"))

    def logs(self, stdout: bool = True, stderr: bool = True, timestamps: bool = False, tail: int | str = "all",
             follow: bool = False, stream: bool = False, since: int | None = None) -> bytes | Iterator[bytes]:
        params = {"stdout": stdout, "stderr": stderr, "timestamps": timestamps, "tail": tail,
                  "follow": follow or stream, "since": since}
        tty = self._tty()
        resp = self.client.api.request("GET", f"/containers/{self.id}/logs", params, stream=True, timeout=None)

        def chunks() -> Iterator[bytes]:
            try:
                for _, data in frames(resp.recv, tty):
                    yield data
            finally:
                self.client.api.finish(resp)

        if stream:
            return chunks()
        return b"".join(chunks())

    def exec_run(self, cmd: str | list[str], stdout: bool = True, stderr: bool = True, stdin: bool = False,
                 tty: bool = False, privileged: bool = False, user: str = "", detach: bool = False,
                 stream: bool = False, environment: dict[str, str] | list[str] | None = None,
                 workdir: str | None = None, demux: bool = False) -> ExecResult:
        if isinstance(cmd, str):
            import shlex

            cmd = shlex.split(cmd)
        env = [f"{k}={v}" for k, v in environment.items()] if isinstance(environment, dict) else list(environment or [])
        body = {"Cmd": cmd, "AttachStdout": stdout, "AttachStderr": stderr, "AttachStdin": stdin, "Tty": tty,
                "Privileged": privileged, "User": user, "Env": env, "WorkingDir": workdir or ""}
        eid = self.client.api.json("POST", f"/containers/{self.id}/exec", None, body)["Id"]
        if detach:
            self.client.api.json("POST", f"/exec/{eid}/start", None, {"Detach": True, "Tty": tty})
            return ExecResult(None, b"")
        sock = self.client.api.hijack(f"/exec/{eid}/start", None, {"Detach": False, "Tty": tty})
        try:
            if not stdin:
                try:
                    sock.shutdown(_wire.SHUT_WR)
                except OSError:
                    pass
            parts = frames(sock.recv, tty)
            if stream:
                return ExecResult(None, (data for _, data in parts))  # type: ignore[arg-type]
            out: builtins.list[bytes] = []
            err: builtins.list[bytes] = []
            for kind, data in parts:
                (err if kind == 2 and demux else out).append(data)
        finally:
            if not stream:
                sock.close()
        code = self.client.api.json("GET", f"/exec/{eid}/json")["ExitCode"]
        if demux:
            return ExecResult(code, (b"".join(out) or None, b"".join(err) or None))
        return ExecResult(code, b"".join(out))

    def get_archive(self, path: str) -> tuple[bytes, dict]:
        import base64

        resp = self.client.api.request("GET", f"/containers/{self.id}/archive", {"path": path}, stream=True)
        try:
            stat = _wire.loads(base64.b64decode(resp.getheader("X-Docker-Container-Path-Stat") or "e30="))
            return resp.read(), stat if isinstance(stat, dict) else {}
        finally:
            self.client.api.finish(resp)

    def put_archive(self, path: str, data: bytes) -> bool:
        self.client.api.read("PUT", f"/containers/{self.id}/archive", {"path": path}, data,
                             headers={"Content-Type": "application/x-tar"})
        return True

    def export(self) -> bytes:
        return self.client.api.read("GET", f"/containers/{self.id}/export", timeout=None)

    def commit(self, repository: str | None = None, tag: str | None = None, message: str = "",
               author: str = "", changes: list[str] | None = None) -> Image:
        out = self.client.api.json("POST", "/commit", {"container": self.id, "repo": repository, "tag": tag,
                                                       "comment": message, "author": author,
                                                       "changes": changes or None}, {})
        return self.client.images.get(out["Id"])


class Image(Model):
    @property
    def tags(self) -> list[str]:
        return [t for t in self.attrs.get("RepoTags") or [] if t != "<none>:<none>"]

    @property
    def labels(self) -> dict[str, str]:
        return (self.attrs.get("Config") or {}).get("Labels") or {}

    def history(self) -> list[dict]:
        return self.client.api.json("GET", f"/images/{self.id}/history")

    def tag(self, repository: str, tag: str | None = None) -> bool:
        self.client.api.json("POST", f"/images/{self.id}/tag", {"repo": repository, "tag": tag})
        return True

    def save(self) -> bytes:
        return self.client.api.read("GET", f"/images/{self.id}/get", timeout=None)


# -- collections ------------------------------------------------------------------------------------

class ContainerSpec:
    """What ``containers.create``/``run`` take (the ContainerCreate body, typed)."""

    def __init__(self, image: str, command: list[str] | str | None = None, *,
                 name: str | None = None,
                 entrypoint: list[str] | str | None = None,
                 environment: dict[str, str] | list[str] | None = None,
                 working_dir: str | None = None,
                 user: str | None = None,
                 hostname: str | None = None,
                 tty: bool = False,
                 stdin_open: bool = False,
                 labels: dict[str, str] | None = None,
                 auto_remove: bool = False,
                 restart_policy: dict | None = None,
                 mem_limit: int | None = None,
                 nano_cpus: int | None = None,
                 pids_limit: int | None = None,
                 cap_add: list[str] | None = None,
                 cap_drop: list[str] | None = None,
                 privileged: bool = False,
                 read_only: bool = False,
                 init: bool | None = None,
                 volumes: list[str] | None = None,
                 network_mode: str | None = None,
                 ports: dict[str, Any] | None = None,
                 stop_signal: str | None = None) -> None:
        self.image = image
        self.command = command
        self.name = name
        self.entrypoint = entrypoint
        self.environment = environment
        self.working_dir = working_dir
        self.user = user
        self.hostname = hostname
        self.tty = tty
        self.stdin_open = stdin_open
        self.labels = labels if labels is not None else {}
        self.auto_remove = auto_remove
        self.restart_policy = restart_policy
        self.mem_limit = mem_limit
        self.nano_cpus = nano_cpus
        self.pids_limit = pids_limit
        self.cap_add = cap_add
        self.cap_drop = cap_drop
        self.privileged = privileged
        self.read_only = read_only
        self.init = init
        self.volumes = volumes
        self.network_mode = network_mode
        self.ports = ports
        self.stop_signal = stop_signal

    def __repr__(self) -> str:
        return f"ContainerSpec({self.image!r}, {self.command!r})"

    def body(self) -> dict:
        def listy(v: list[str] | str | None) -> list[str] | None:
            if v is None:
                return None
            if isinstance(v, str):
                import shlex

                return shlex.split(v)
            return list(v)

        env = self.environment
        env_list = [f"{k}={v}" for k, v in env.items()] if isinstance(env, dict) else list(env or [])
        host: dict[str, Any] = {"AutoRemove": self.auto_remove, "Privileged": self.privileged,
                                "ReadonlyRootfs": self.read_only}
        if self.restart_policy:
            host["RestartPolicy"] = self.restart_policy
        if self.mem_limit:
            host["Memory"] = self.mem_limit
        if self.nano_cpus:
            host["NanoCpus"] = self.nano_cpus
        if self.pids_limit:
            host["PidsLimit"] = self.pids_limit
        if self.cap_add:
            host["CapAdd"] = self.cap_add
        if self.cap_drop:
            host["CapDrop"] = self.cap_drop
        if self.init is not None:
            host["Init"] = self.init
        if self.volumes:
            host["Binds"] = self.volumes
        if self.network_mode:
            host["NetworkMode"] = self.network_mode
        body: dict[str, Any] = {"Image": self.image, "Cmd": listy(self.command), "Env": env_list,
                                "Tty": self.tty, "OpenStdin": self.stdin_open, "AttachStdin": self.stdin_open,
                                "StdinOnce": self.stdin_open, "Labels": self.labels, "HostConfig": host}
        if self.ports:
            exposed: dict[str, dict] = {}
            bindings: dict[str, builtins.list[dict]] = {}
            for port, host_port in self.ports.items():
                key = port if "/" in str(port) else f"{port}/tcp"
                exposed[key] = {}
                if host_port is not None:
                    bindings[key] = [{"HostIp": "", "HostPort": str(host_port)}]
            body["ExposedPorts"] = exposed
            host["PortBindings"] = bindings
        if self.entrypoint is not None:
            body["Entrypoint"] = listy(self.entrypoint)
        for key, value in (("WorkingDir", self.working_dir), ("User", self.user), ("Hostname", self.hostname),
                           ("StopSignal", self.stop_signal)):
            if value:
                body[key] = value
        return body


class ContainerCollection:
    def __init__(self, client: Client) -> None:
        self.client = client

    def _model(self, attrs: dict) -> Container:
        return Container(attrs, self.client, self)

    def get(self, container_id: str) -> Container:
        return self._model(self.client.api.json("GET", f"/containers/{quote(container_id, safe='')}/json"))

    def list(self, all: bool = False, filters: dict[str, Any] | None = None, limit: int = -1,  # noqa: A002
             sparse: bool = False) -> list[Container]:
        flt = {k: (v if isinstance(v, list) else [str(v)]) for k, v in (filters or {}).items()}
        rows = self.client.api.json("GET", "/containers/json", {"all": all, "limit": limit if limit > 0 else None,
                                                                "filters": flt or None})
        if sparse:
            return [self._model(r) for r in rows]
        out = []
        for r in rows:
            try:
                out.append(self.get(r["Id"]))
            except NotFound:
                pass  # removed meanwhile
        return out

    def create(self, image: str | ContainerSpec, command: builtins.list[str] | str | None = None, **kwargs: Any) -> Container:
        spec = image if isinstance(image, ContainerSpec) else ContainerSpec(image, command, **kwargs)
        out = self.client.api.json("POST", "/containers/create", {"name": spec.name}, spec.body())
        return self.get(out["Id"])

    def run(self, image: str | ContainerSpec, command: builtins.list[str] | str | None = None, *, detach: bool = False,
            remove: bool = False, stdout: bool = True, stderr: bool = False, stream: bool = False,
            **kwargs: Any) -> Container | bytes | Iterator[bytes]:
        """docker-py's ``run``: detached, the Container; else its output once it exits (raises
        :class:`ContainerError` on a non-zero exit)."""
        spec = image if isinstance(image, ContainerSpec) else ContainerSpec(image, command, **kwargs)
        if detach and remove:
            spec.auto_remove = True
        container = self.create(spec)
        container.start()
        if detach:
            try:
                container.reload()
            except NotFound:  # auto-removed already
                pass
            return container
        if stream:
            return container.logs(stdout=stdout, stderr=stderr, stream=True, follow=True)
        status = container.wait(timeout=None)
        code = status.get("StatusCode", 0)
        out = container.logs(stdout=stdout, stderr=stderr)
        err = container.logs(stdout=False, stderr=True) if code else b""
        err = err if isinstance(err, bytes) else b"".join(err)
        if remove:
            container.remove(force=True)
        if code:
            raise ContainerError(container, code, spec.body().get("Cmd"), spec.image, err)
        return out  # type: ignore[return-value]

    def prune(self, filters: dict | None = None) -> dict:
        return self.client.api.json("POST", "/containers/prune", {"filters": filters or None})


class ImageCollection:
    def __init__(self, client: Client) -> None:
        self.client = client

    def _model(self, attrs: dict) -> Image:
        return Image(attrs, self.client, self)

    def get(self, name: str) -> Image:
        return self._model(self.client.api.json("GET", f"/images/{quote(name, safe='/:@')}/json"))

    def list(self, name: str | None = None, all: bool = False, filters: dict | None = None) -> list[Image]:  # noqa: A002
        flt = {k: (v if isinstance(v, list) else [str(v)]) for k, v in (filters or {}).items()}
        if name:
            flt["reference"] = [name]
        rows = self.client.api.json("GET", "/images/json", {"all": all, "filters": flt or None})
        return [self.get(r["Id"]) for r in rows]

    def remove(self, image: str, force: bool = False, noprune: bool = False) -> builtins.list[dict]:
        return self.client.api.json("DELETE", f"/images/{quote(image, safe='/:@')}", {"force": force, "noprune": noprune})

    def prune(self, filters: dict | None = None) -> dict:
        return self.client.api.json("POST", "/images/prune", {"filters": filters or None})

    def load(self, data: bytes) -> builtins.list[Image]:
        msgs = self.client.api.json("POST", "/images/load", None, data, headers={"Content-Type": "application/x-tar"},
                                    timeout=None)
        msgs = msgs if isinstance(msgs, list) else [msgs]
        out = []
        for m in msgs:
            if isinstance(m, dict) and m.get("error"):
                raise APIError(m["error"], 400)  # a bad archive: dockerd streams its error
            text = (m or {}).get("stream", "")
            if ": " in text:
                out.append(self.get(text.split(": ", 1)[1].strip()))
        return out

    def import_image(self, data: bytes, repository: str | None = None, tag: str | None = None,
                     changes: builtins.list[str] | None = None) -> Image:
        msgs = self.client.api.json("POST", "/images/create", {"fromSrc": "-", "repo": repository, "tag": tag,
                                                               "changes": changes or None}, data,
                                    headers={"Content-Type": "application/x-tar"}, timeout=None)
        msgs = msgs if isinstance(msgs, list) else [msgs]
        return self.get(msgs[-1]["status"])

    def pull(self, repository: str, tag: str | None = None, all_tags: bool = False) -> Image:
        """Pull ``repository:tag`` (``latest`` unless given, as docker-py does; ``all_tags``: every
        tag, and the return value is the ``latest`` one)."""
        if tag is None and not all_tags and "@" not in repository and ":" not in repository.rsplit("/", 1)[-1]:
            tag = "latest"
        msgs = self.client.api.json("POST", "/images/create", {"fromImage": repository, "tag": tag}, timeout=None)
        for m in msgs if isinstance(msgs, list) else [msgs]:
            if isinstance(m, dict) and m.get("error"):
                raise APIError(m["error"], 500)
        name = repository if (tag is None or "@" in repository) else f"{repository}:{tag}"
        return self.get(name)


class Volume(Model):
    id_attribute = "Name"

    @property
    def name(self) -> str:
        return self.attrs.get("Name", "")

    @property
    def short_id(self) -> str:
        return self.name

    def remove(self, force: bool = False) -> None:
        self.client.api.json("DELETE", f"/volumes/{quote(self.name, safe='')}", {"force": force})


class VolumeCollection:
    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, name: str) -> Volume:
        return Volume(self.client.api.json("GET", f"/volumes/{quote(name, safe='')}"), self.client, self)

    def create(self, name: str = "", labels: dict[str, str] | None = None, driver: str = "local",
               driver_opts: dict[str, str] | None = None) -> Volume:
        attrs = self.client.api.json("POST", "/volumes/create", None, {"Name": name, "Labels": labels or {},
                                                                       "Driver": driver, "DriverOpts": driver_opts or {}})
        return Volume(attrs, self.client, self)

    def list(self, filters: dict | None = None) -> list[Volume]:
        out = self.client.api.json("GET", "/volumes", {"filters": filters or None})
        return [Volume(v, self.client, self) for v in out.get("Volumes") or []]

    def prune(self, filters: dict | None = None) -> dict:
        return self.client.api.json("POST", "/volumes/prune", {"filters": filters or None})


class Network(Model):
    @property
    def name(self) -> str:
        return self.attrs.get("Name", "")

    @property
    def containers(self) -> list[Container]:
        self.reload()
        return [self.client.containers.get(cid) for cid in (self.attrs.get("Containers") or {})]

    def connect(self, container: Container | str, aliases: list[str] | None = None, ipv4_address: str = "") -> None:
        cid = container.id if isinstance(container, Container) else container
        self.client.api.json("POST", f"/networks/{self.id}/connect", None, {
            "Container": cid, "EndpointConfig": {"Aliases": aliases or [], "IPAMConfig": {"IPv4Address": ipv4_address}}})

    def disconnect(self, container: Container | str, force: bool = False) -> None:
        cid = container.id if isinstance(container, Container) else container
        self.client.api.json("POST", f"/networks/{self.id}/disconnect", None, {"Container": cid, "Force": force})

    def remove(self) -> None:
        self.client.api.json("DELETE", f"/networks/{self.id}")


class NetworkCollection:
    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, network_id: str) -> Network:
        return Network(self.client.api.json("GET", f"/networks/{quote(network_id, safe='')}"), self.client, self)

    def create(self, name: str, driver: str = "bridge", internal: bool = False, labels: dict[str, str] | None = None,
               subnet: str = "", gateway: str = "", options: dict[str, str] | None = None) -> Network:
        ipam = {"Config": [{"Subnet": subnet, **({"Gateway": gateway} if gateway else {})}]} if subnet else {}
        out = self.client.api.json("POST", "/networks/create", None, {
            "Name": name, "Driver": driver, "Internal": internal, "Labels": labels or {}, "IPAM": ipam,
            "Options": options or {}})
        return self.get(out["Id"])

    def list(self, names: list[str] | None = None, filters: dict | None = None) -> list[Network]:
        flt = dict(filters or {})
        if names:
            flt["name"] = names
        return [Network(n, self.client, self) for n in self.client.api.json("GET", "/networks", {"filters": flt or None})]

    def prune(self, filters: dict | None = None) -> dict:
        return self.client.api.json("POST", "/networks/prune", {"filters": filters or None})


class Client:
    """The daemon at ``base_url`` (``unix://PATH``; default ``$DOCKYARD_HOST`` or
    ``unix://$DOCKYARD_RUN/dockyard.sock``)."""

    def __init__(self, base_url: str | None = None, timeout: float | None = 60) -> None:
        self.api = Transport(base_url, timeout)
        self.containers = ContainerCollection(self)
        self.images = ImageCollection(self)
        self.volumes = VolumeCollection(self)
        self.networks = NetworkCollection(self)

    @classmethod
    def from_env(cls) -> Client:
        return cls()

    def ping(self) -> bool:
        return self.api.json("GET", "/_ping") in (b"OK", "OK")

    def version(self) -> dict:
        return self.api.json("GET", "/version")

    def info(self) -> dict:
        return self.api.json("GET", "/info")

    def df(self) -> dict:
        return self.api.json("GET", "/system/df")

    def events(self, since: int | None = None, until: int | None = None, filters: dict | None = None,
               decode: bool = True) -> Iterator[Any]:
        """Each event as a dict (``decode``) or as its JSON line."""
        resp = self.api.request("GET", "/events", {"since": since, "until": until, "filters": filters or None},
                                stream=True, timeout=None)
        try:
            while line := resp.readline():
                if line.strip():
                    yield _wire.loads(line) if decode else line
        finally:
            self.api.finish(resp)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
