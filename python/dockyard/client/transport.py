"""The SDK's transport: a small HTTP/1.1 client over the daemon's unix socket (keep-alive,
chunked, upgrade), Docker's stream frames, and the errors of the API."""

from __future__ import annotations

import os
import sys

from .. import _wire
from ..errors import (
    Conflict, ConnectionFailed, ContainerNotFound, DockyardError, ImageNotFound, InvalidArgument, NotFound,
)

TYPE_CHECKING = False  # typing: milliseconds the CLI never pays
if TYPE_CHECKING:
    from typing import Any, Iterator

    from .models import Container

API_VERSION = "1.45"


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
    from ..rootless import apply_defaults

    apply_defaults()  # an unprivileged user's daemon is a rootless one, in its own places
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

    def __init__(self, f, status: int, headers: dict[str, str], method: str) -> None:
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

    def exchange(self, method: str, url: str, headers: dict[str, str], body, fd: int | None = None) -> Response:
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
        from .. import errors

        cls = getattr(errors, kind, None)
        if isinstance(cls, type) and issubclass(cls, DockyardError) and cls.__module__ == errors.__name__ \
                and getattr(cls, "status", None) == status:
            return cls(message)
    # another daemon (dockerd, podman): from the status and, for a 404, what was asked for
    # (a create's missing object is its image), never from the message's words
    if status == 404:
        route = path.split("?", 1)[0]
        if route.startswith("/images/") or route == "/containers/create":
            return ImageNotFound(message)
        if route.startswith("/containers/"):
            return ContainerNotFound(message)
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status == 400:
        return InvalidArgument(message)
    return APIError(message, status)


def frames(read, tty: bool) -> Iterator[tuple[int, bytes]]:
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
