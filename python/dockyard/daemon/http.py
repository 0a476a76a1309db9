"""A small HTTP/1.1 server for the Engine API over a unix socket (stdlib only).

Why not aiohttp or h11: the daemon needs three things from HTTP -- keep-alive JSON requests,
chunked streams (logs, events, progress) and connection hijacking (attach, exec: ``Upgrade:
tcp`` answered by ``101 UPGRADED``, then raw bytes both ways).  ``http.server`` gives the raw
socket after the headers, which is all hijacking needs, and a thread per connection keeps
engine calls (blocking: SQLite, subprocesses) simple.  It costs no dependency and little memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import DockyardError, InvalidArgument

#: the newest API version served, and the oldest accepted (as dockerd 25+)
API_VERSION = "1.45"
MIN_API_VERSION = "1.24"

_VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")


class Streamed:
    """Returned by a handler that wrote its own response (stream or hijack)."""


STREAMED = Streamed()


class Reply:
    def __init__(self, status: int = 200, body: bytes | object = b"", content_type: str = "application/json",
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


class Request:
    """One request as a handler sees it."""

    def __init__(self, handler: Handler, method: str, path: str, query: dict[str, list[str]], version: str) -> None:
        self.handler = handler
        self.method = method
        self.path = path
        self.query = query
        self.version = version  # the API version of the path (or the newest)
        self.headers = handler.headers
        self._body_read = False

    # -- query ------------------------------------------------------------------------------------

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.arg(name)
        if value is None:
            return default
        low = value.lower()
        if low in ("1", "true", "yes"):
            return True
        if low in ("", "0", "false", "no"):
            return False
        raise InvalidArgument(f"invalid value for query parameter {name!r}: {value!r} is not a boolean")

    def int(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InvalidArgument(f"invalid value for query parameter {name!r}: {value!r} is not an integer") from None

    def filters(self) -> dict[str, list[str]]:
        """Docker's ``filters`` query: JSON ``{"key": ["v"]}`` or the old ``{"key": {"v": true}}``."""
        raw = self.arg("filters")
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise InvalidArgument(f"invalid filter: {raw!r} is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidArgument("invalid filter: expected a JSON object")
        out: dict[str, list[str]] = {}
        for key, value in data.items():
            if isinstance(value, dict):
                out[key] = [k for k, v in value.items() if v]
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[key] = list(value)
            else:
                raise InvalidArgument(f"invalid filter {key!r}: expected a list of strings")
        return out

    # -- body -------------------------------------------------------------------------------------

    @property
    def stream(self):  # noqa: ANN201
        """The body as a binary file (chunked transfer decoded)."""
        self._body_read = True
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            return ChunkedReader(self.handler.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        return LimitedReader(self.handler.rfile, length)

    def body_fd(self) -> int | None:
        """The file the client handed over instead of a body (dockyard's extension, used by its
        CLI for ``import`` and ``load``: the daemon reads the user's file in place, with the
        user's own permission to open it, and nothing is copied through the socket).

        The client sends ``Dockyard-Body-Fd: 1``, ``Expect: 100-continue`` and
        ``Content-Length: 1``; after the 100 (sent while the request was parsed) it sends that one
        byte with the descriptor attached (SCM_RIGHTS).  None when the request has a normal body.
        The caller owns (closes) the descriptor."""
        if self.headers.get("Dockyard-Body-Fd") != "1" or self._body_read:
            return None
        self._body_read = True
        msg, ancdata, _flags, _addr = self.handler.connection.recvmsg(1, socket.CMSG_SPACE(4))
        fds = [int.from_bytes(data[i:i + 4], sys.byteorder) for level, kind, data in ancdata
               if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS for i in range(0, len(data) - 3, 4)]
        for extra in fds[1:]:
            os.close(extra)
        if msg != b"\0" or not fds:
            raise InvalidArgument("Dockyard-Body-Fd: no file descriptor came with the request")
        return fds[0]

    @contextlib.contextmanager
    def body_source(self):  # noqa: ANN201
        """The body as what the engine's archive readers take: the path of the client's own file
        when it handed over a regular one (:meth:`body_fd`; read in place), else a binary stream."""
        fd = self.body_fd()
        if fd is None:
            yield self.stream
            return
        try:
            import stat

            if stat.S_ISREG(os.fstat(fd).st_mode) and os.lseek(fd, 0, os.SEEK_CUR) == 0:
                yield f"/proc/self/fd/{fd}"
            else:
                with os.fdopen(fd, "rb", closefd=False) as f:
                    yield f
        finally:
            os.close(fd)

    def body(self) -> bytes:
        return self.stream.read()

    def json(self, required: bool = True) -> object:
        raw = self.body()
        if not raw.strip():
            if required:
                raise InvalidArgument("request body is empty: a JSON object is required")
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise InvalidArgument(f"invalid JSON in request body: {exc}") from None

    # -- responses written by the handler ---------------------------------------------------------

    def start_stream(self, content_type: str = "application/json", status: int = 200,
                     headers: dict[str, str] | None = None) -> ChunkedWriter:
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Transfer-Encoding", "chunked")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h._common_headers()
        h.end_headers()
        h.wfile.flush()
        return ChunkedWriter(h.wfile)

    def hijack(self, content_type: str) -> socket.socket:
        """Answer ``101 UPGRADED`` (or 200 when the client did not ask to upgrade) and hand over
        the raw connection; the connection is closed once the handler returns."""
        h = self.handler
        upgrade = "upgrade" in (self.headers.get("Connection") or "").lower()
        if upgrade:
            h.send_response_only(101, "UPGRADED")
            h.send_header("Connection", "Upgrade")
            h.send_header("Upgrade", "tcp")
        else:
            h.send_response_only(200, "OK")
        h.send_header("Content-Type", content_type)
        h._common_headers()
        h.end_headers()
        h.wfile.flush()
        h.close_connection = True
        return h.connection


class LimitedReader:
    def __init__(self, f, length: int) -> None:  # noqa: ANN001
        self.f = f
        self.left = length

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        if not data:
            self.left = 0
        return data

    def readinto(self, buf) -> int:  # noqa: ANN001
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 16):
            pass


class ChunkedReader:
    def __init__(self, f) -> None:  # noqa: ANN001
        self.f = f
        self.left = 0
        self.done = False

    def _next(self) -> None:
        line = self.f.readline(1024)
        if not line:
            self.done = True
            return
        try:
            self.left = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise InvalidArgument("malformed chunked request body") from None
        if self.left == 0:
            while self.f.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            self.done = True

    def read(self, n: int = -1) -> bytes:
        out = []
        want = n if n is not None and n >= 0 else None
        while not self.done and (want is None or want > 0):
            if self.left == 0:
                self._next()
                continue
            take = self.left if want is None else min(want, self.left)
            data = self.f.read(take)
            if not data:
                self.done = True
                break
            out.append(data)
            self.left -= len(data)
            if want is not None:
                want -= len(data)
            if self.left == 0:
                self.f.readline(8)  # the CRLF after a chunk
        return b"".join(out)

    def readinto(self, buf) -> int:  # noqa: ANN001
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 16):
            pass


class ChunkedWriter:
    """A streamed response body; ``close`` writes the last chunk."""

    def __init__(self, f) -> None:  # noqa: ANN001
        self.f = f
        self.closed = False

    def write(self, data: bytes) -> int:
        if data:
            self.f.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.f.flush()
        return len(data)

    def json(self, obj: object) -> None:
        self.write(json.dumps(obj).encode() + b"\n")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.f.write(b"0\r\n\r\n")
                self.f.flush()
            except OSError:
                pass


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern, object]] = []

    def add(self, method: str, pattern: str, func) -> None:  # noqa: ANN001
        rx = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
        rx = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", rx) + "$")
        self.routes.append((method, rx, func))

    def route(self, method: str, pattern: str):  # noqa: ANN201
        def deco(func):  # noqa: ANN001, ANN202
            self.add(method, pattern, func)
            return func
        return deco

    def match(self, method: str, path: str):  # noqa: ANN201
        allowed = False
        fallback = None
        for m, rx, func in self.routes:
            found = rx.match(path)
            if found:
                params = {k: unquote(v) for k, v in found.groupdict().items()}
                if m == method:
                    return func, params
                if m == "GET" and method == "HEAD" and fallback is None:
                    fallback = (func, params)
                allowed = True
        if fallback is not None:
            return fallback
        return None, allowed


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Docker/dockyard"
    sys_version = "(linux)"
    router: Router
    context: object  # the daemon, passed to every route

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def address_string(self) -> str:
        return "unix"

    def _common_headers(self) -> None:
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True

    def _dispatch(self) -> None:
        started = time.monotonic()
        split = urlsplit(self.path)
        path = split.path
        version = API_VERSION
        m = _VERSIONED.match(path)
        if m:
            version, path = m.group(1), m.group(2)
        query = parse_qs(split.query, keep_blank_values=True)
        method = self.command
        req = Request(self, method, path, query, version)
        status = 500
        try:
            if m and _vtuple(version) < _vtuple(MIN_API_VERSION):
                raise InvalidArgument(f"client version {version} is too old. Minimum supported API version is "
                                      f"{MIN_API_VERSION}, please upgrade your client to a newer version")
            if m and _vtuple(version) > _vtuple(API_VERSION):
                raise InvalidArgument(f"client version {version} is too new. Maximum supported API version is "
                                      f"{API_VERSION}")
            want = self.headers.get("Dockyard-Root")
            if want and want != str(getattr(self.context, "root", want)):
                from ..errors import Conflict

                raise Conflict(f"this daemon serves the root {self.context.root}, not {want} (set DOCKYARD_RUN "
                               "or -H to reach the daemon of that root)")
            func, params = self.router.match(method, path)
            if func is None:
                if params:
                    self._send(405, {"message": f"method {method} not allowed for {path}"})
                    status = 405
                else:
                    self._send(404, {"message": "page not found"})
                    status = 404
                return
            result = func(self.context, req, **params)
            if result is STREAMED:
                status = 200
                return
            if not req._body_read and method in ("POST", "PUT"):
                _drain(req)
            if isinstance(result, Reply):
                status = result.status
                self._send(result.status, result.body, result.content_type, result.headers)
            elif result is None:
                status = 204
                self._send(204, b"")
            else:
                status = 200
                self._send(200, result)
        except DockyardError as exc:
            status = exc.status
            self._error(exc.status, str(exc), req)
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception as exc:  # a bug: log it, answer 500 in Docker's shape
            import traceback

            traceback.print_exc(file=sys.stderr)
            self._error(500, f"internal error: {type(exc).__name__}: {exc}", req)
        finally:
            log = getattr(self.context, "log", None)
            if log is not None:
                log.debug("%s %s -> %s (%.1f ms)", method, self.path, status, (time.monotonic() - started) * 1000)

    def _error(self, status: int, message: str, req: Request) -> None:
        if self.wfile.closed:
            return
        if getattr(req, "_started", False):
            return
        if not req._body_read and self.command in ("POST", "PUT"):
            # an error before the body was read: read a small one (the client is still
            # sending it); do not read a big one, close the connection after the answer
            length = self.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) <= 1 << 20:
                _drain(req)
            else:
                self.close_connection = True
        try:
            self._send(status, {"message": message})
        except OSError:
            self.close_connection = True

    def _send(self, status: int, body: bytes | object, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode() + b"\n"
            content_type = "application/json"
        self.send_response(status)
        if status != 204 and body:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._common_headers()
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch


def _drain(req: Request) -> None:
    try:
        s = req.stream
        while s.read(1 << 16):
            pass
    except Exception:  # noqa: BLE001
        req.handler.close_connection = True


def _vtuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (0,)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def make_server(path: str, router: Router, context: object) -> Server:
    handler = type("BoundHandler", (Handler,), {"router": router, "context": context})
    return Server(path, handler, bind_and_activate=True)


def stream_produced(req, produce, content_type: str = "application/x-tar") -> Streamed:  # noqa: ANN001
    """Send what ``produce(fd)`` writes to a pipe's write end (closed here afterwards) as a
    streamed body: the producer runs in a thread, the response copies as it comes."""
    import os
    import threading

    r, w = os.pipe()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            produce(w)
        except BaseException as exc:  # noqa: BLE001  (reported below: headers are already sent)
            failed.append(exc)
        finally:
            os.close(w)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    out = req.start_stream(content_type)
    req._started = True
    with os.fdopen(r, "rb") as f:
        while chunk := f.read(1 << 16):
            out.write(chunk)
    t.join()
    if failed:
        # No final chunk: the client sees the body end early (as dockerd's reset connection),
        # rather than a short archive that looks complete.
        log = getattr(req.handler.context, "log", None)
        if log is not None:
            log.error("%s %s: failed while streaming: %s", req.method, req.path, failed[0])
        req.handler.close_connection = True
        out.flush()
        return STREAMED
    out.close()
    return STREAMED
