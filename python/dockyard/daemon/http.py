"""A small HTTP/1.1 server for the Engine API over a unix socket (stdlib only).

Why not aiohttp or h11: the daemon needs three things from HTTP -- keep-alive JSON requests,
chunked streams (logs, events, progress) and connection hijacking (attach, exec: ``Upgrade:
tcp`` answered by ``101 UPGRADED``, then raw bytes both ways).  ``http.server`` gives the raw
socket after the headers, which is all hijacking needs, and a thread per connection keeps
engine calls (blocking: SQLite, subprocesses) simple.  It costs no dependency and little memory.

A thread exists only while a request is read and answered: between requests a keep-alive
connection is parked with the server's idle watcher (one thread, one selector for all of them),
which hands it to a new thread when the next request arrives and closes it after
:attr:`Server.idle_timeout`.  A request line and headers must arrive within
:attr:`Server.header_timeout`; bodies and responses have no timeout (a ``load`` from a slow pipe,
``logs -f``).  Errors the HTTP layer answers itself (bad request line, over-long URL or headers,
unknown method) are JSON ``{"message": ...}`` with dockerd's status, never an HTML page.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import DockyardError, InvalidArgument

#: the newest API version served, and the oldest accepted (as dockerd 25+)
API_VERSION = "1.45"
MIN_API_VERSION = "1.24"

_VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")

#: the longest request line taken (dockerd, Go's net/http: 1 MiB of request line and headers;
#: longer gets 431)
MAX_REQUEST_LINE = 1 << 20


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

    def before(self, version: str) -> bool:
        """Whether the request asks for an API version older than ``version`` (dockerd shapes
        some answers by it)."""
        return _vtuple(self.version) < _vtuple(version)

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
    def stream(self):
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
    def body_source(self):
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

    def _json_body(self) -> bytes | bytearray:
        """A JSON body in one buffer of its declared length, filled in place (a body read as
        bytes, joined, then decoded kept several copies of a big one alive at once)."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        length = self.headers.get("Content-Length")
        if "chunked" in te or length is None or not length.isdigit():
            return self.body()
        self._body_read = True
        buf = bytearray(int(length))
        view, got = memoryview(buf), 0
        while got < len(buf):
            n = self.handler.rfile.readinto(view[got:])
            if not n:
                break
            got += n
        view.release()
        del buf[got:]
        return buf

    def json(self, required: bool = True) -> object:
        raw = self._json_body()
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

    def hijack(self, content_type: str, until_read: bool = False) -> socket.socket:
        """Answer ``101 UPGRADED`` (or 200 when the client did not ask to upgrade) and hand over
        the raw connection; the connection is closed once the handler returns.  With
        ``until_read``, return once the client has read the answer (see :func:`send_until_read`)."""
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
        h.send_header("Server", h.version_string())  # (dockerd's hijacked answers have it too)
        h.close_connection = True
        if until_read:
            lines, h._headers_buffer = h._headers_buffer, []
            send_until_read(h.connection, b"".join(lines) + b"\r\n")
        else:
            h.end_headers()
            h.wfile.flush()
        return h.connection


def send_until_read(conn: socket.socket, data: bytes, limit: float = 0.05) -> None:
    """Send ``data`` in one write and return once the peer has read it, or after ``limit``
    seconds.  docker-py reads a hijacked stream from the raw socket beneath the
    buffered reader that parsed the answer: bytes that arrive together with the answer land in
    that buffer and are lost (``attach?logs=1&stream=0`` answered b'' about one time in three).

    The peer's read is an event on a unix socket whose send buffer is the smallest the kernel
    allows (about 4.6 KB): it is writable (POLLOUT) only while what the peer has not read
    takes at most a quarter of it, and a write queued counts its data and the kernel's
    overhead for it: on this machine's kernel, one write of more than 192 bytes is past the
    mark.  So the answer (a 101 is 203 bytes or more), queued, makes the socket unwritable,
    and the peer's read of it (one buffer, freed at once) makes it writable again and wakes
    the poll.  Where the answer does not reach the mark (a shorter one, a kernel with smaller
    overheads) there is no event to wait for, and this returns at once, as it does for TCP
    (whose queue empties when the bytes are acknowledged, not read)."""
    import fcntl
    import select
    import termios

    if conn.family != socket.AF_UNIX:
        conn.sendall(data)
        return
    before = conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 0)  # the kernel's minimum
    try:
        conn.sendall(data)
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLOUT)
        deadline = time.monotonic() + limit
        unread = bytearray(4)
        while True:
            fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, unread)
            if not int.from_bytes(unread, sys.byteorder) or poller.poll(0):
                return  # all read, or nothing more to wait on by event
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                return
    except OSError:
        return  # the peer has gone: the caller's next write says so
    finally:
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, before // 2)  # (the kernel doubles it)


class LimitedReader:
    def __init__(self, f, length: int) -> None:
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

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 16):
            pass


class ChunkedReader:
    def __init__(self, f) -> None:
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

    def readinto(self, buf) -> int:
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

    def __init__(self, f) -> None:
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

    def add(self, method: str, pattern: str, func) -> None:
        rx = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
        rx = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", rx) + "$")
        self.routes.append((method, rx, func))

    def route(self, method: str, pattern: str):
        def deco(func):
            self.add(method, pattern, func)
            return func
        return deco

    def match(self, method: str, path: str):
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

    def log_message(self, format: str, *args: object) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def _common_headers(self) -> None:
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")

    def __getattr__(self, name: str):
        # any method (PATCH, OPTIONS, ...) goes to the router, which answers 404 as dockerd does
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def setup(self) -> None:
        super().setup()
        self.parked = False

    def handle(self) -> None:
        """Answer the requests that are there, then park the connection (no thread while it
        is idle) unless it is to be closed."""
        self.close_connection = False
        while not self.close_connection:
            if not self._request_waiting():
                self.parked = not self.close_connection  # (at the end of the stream: closed)
                return
            self.handle_one_request()

    def _request_waiting(self) -> bool:
        """Bytes of a next request are here (in rfile's buffer or the socket), without waiting."""
        sock = self.connection
        sock.settimeout(0)
        try:
            if self.rfile.peek(1):
                return True
            # an empty peek is both "nothing yet" and the end of the stream: a client that
            # hung up stays readable, and parking it again would wake the watcher forever
            if not sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                self.close_connection = True
            return False
        except BlockingIOError:
            return False
        except OSError:
            self.close_connection = True
            return True  # (handle_one_request then reads the end and closes)
        finally:
            sock.settimeout(None)

    def resume(self) -> None:
        """The idle watcher saw the next request arrive: serve it in this (new) thread."""
        self.parked = False
        try:
            self.handle()
        except Exception:
            self.server.handle_error(self.connection, self.client_address)
            self.close_connection = True
            self.parked = False
        finally:
            if not self.parked:
                self.finish()
                self.server.shutdown_request(self.connection)
            else:
                self.server.park(self)

    def finish(self) -> None:
        if self.parked:
            with contextlib.suppress(OSError):
                self.wfile.flush()
            return
        super().finish()

    def handle_one_request(self) -> None:
        """Read a request line and headers (within the server's header timeout), dispatch."""
        try:
            self.connection.settimeout(self.server.header_timeout)
            try:
                line = self.rfile.readline(MAX_REQUEST_LINE + 1)
                if len(line) > MAX_REQUEST_LINE:
                    self.requestline = self.request_version = self.command = ""
                    self.close_connection = True
                    self.send_error(431, "Request Header Fields Too Large")
                    return
                if not line:
                    self.close_connection = True
                    return
                self.raw_requestline = line
                if not self.parse_request():  # (it answered: send_error)
                    return
            finally:
                self.connection.settimeout(None)
            getattr(self, "do_" + self.command)()
            self.wfile.flush()
        except (ConnectionError, BrokenPipeError, TimeoutError):
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's errors (malformed request, headers too long, ...) as dockerd's JSON."""
        from http import HTTPStatus

        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        self.close_connection = True
        self.command = self.command if isinstance(getattr(self, "command", None), str) else ""
        self.request_version = "HTTP/1.1"  # (an unparsable line counts as HTTP/0.9: no status line)
        body = json.dumps({"message": message or phrase}).encode() + b"\n"
        try:
            self.send_response(code, phrase)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            pass

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
            if func is None:  # (dockerd: a path it knows with a method it does not is 404 too)
                _drain_small(req)
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
            self._error(exc.status, str(exc), req, error_kind(exc))
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
            length = self.headers.get("Content-Length") or ""
            if length.isdigit() and int(length) >= BIG_BODY:
                req = None  # (the request's objects go first)
                _trim()

    def _error(self, status: int, message: str, req: Request, kind: str = "") -> None:
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
            self._send(status, {"message": message, "kind": kind} if kind else {"message": message})
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


def _drain_small(req: Request) -> None:
    """Read a small unread body (the connection stays usable); close after a big one."""
    h = req.handler
    length = h.headers.get("Content-Length")
    chunked = "chunked" in (h.headers.get("Transfer-Encoding") or "").lower()
    if not chunked and (length is None or length == "0"):
        return
    if not chunked and length.isdigit() and int(length) <= 1 << 20:
        _drain(req)
    else:
        h.close_connection = True


def _drain(req: Request) -> None:
    try:
        s = req.stream
        while s.read(1 << 16):
            pass
    except Exception:
        req.handler.close_connection = True


def error_kind(exc: BaseException) -> str:
    """The error's kind for the reply (``kind``, beside dockerd's ``message``; Docker's clients
    ignore it, dockyard's client raises the same class): the nearest class of dockyard.errors."""
    for cls in type(exc).__mro__:
        if cls.__module__ == "dockyard.errors" and cls.__name__ != "DockyardError":
            return cls.__name__
    return ""


def _vtuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (0,)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A thread per request being served; idle keep-alive connections wait in one selector."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    #: seconds a kept-alive connection may sit idle before it is closed (Go's http.Transport,
    #: the docker CLI's, drops its own idle connections after 90 s)
    idle_timeout = 120.0
    #: seconds to send a request line and headers once started
    header_timeout = 60.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._parked: dict[int, tuple[Handler, float]] = {}  # fd -> (handler, idle since)
        self._parked_lock = threading.Lock()
        self._closed = False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._watcher = threading.Thread(target=self._watch_idle, name="http-idle", daemon=True)
        self._watcher.start()

    def process_request_thread(self, request, client_address) -> None:
        """A new connection's thread: serve what it sends, then park it or close it."""
        handler = None
        try:
            handler = self.RequestHandlerClass(request, client_address, self)
        except Exception:
            self.handle_error(request, client_address)
        if handler is not None and handler.parked:
            self.park(handler)  # (last: from here on another thread may own it)
        else:
            self.shutdown_request(request)

    def park(self, handler: Handler) -> None:
        with self._parked_lock:
            if not self._closed:
                self._parked[handler.connection.fileno()] = (handler, time.monotonic())
                self._selector.register(handler.connection, selectors.EVENT_READ, handler)
                handler = None
        if handler is None:
            self._wake()
        else:  # the server is closed: so is the connection
            handler.parked = False
            with contextlib.suppress(OSError):
                handler.finish()
            self.shutdown_request(handler.connection)

    def idle_connections(self) -> int:
        with self._parked_lock:
            return len(self._parked)

    def _wake(self) -> None:
        with self._parked_lock, contextlib.suppress(BlockingIOError, OSError):
            if self._wake_w >= 0:  # (-1: the watcher has ended)
                os.write(self._wake_w, b"x")

    def _watch_idle(self) -> None:
        """Hand a parked connection to a new thread when its next request arrives; close it
        once idle for :attr:`idle_timeout` (the select's timeout is the nearest deadline)."""
        while True:
            with self._parked_lock:
                oldest = min((since for _, since in self._parked.values()), default=None)
            timeout = None if oldest is None else max(0.0, oldest + self.idle_timeout - time.monotonic())
            ready = self._selector.select(timeout)
            if self._closed:
                with self._parked_lock:
                    self._selector.close()
                    os.close(self._wake_r)
                    os.close(self._wake_w)
                    self._wake_w = -1
                return
            for key, _ in ready:
                if key.fileobj == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    continue
                handler = self._unpark(key.fileobj)
                if handler is not None:
                    t = threading.Thread(target=handler.resume, daemon=True)
                    t.start()
            now = time.monotonic()
            with self._parked_lock:
                expired = [h for h, since in self._parked.values() if now - since >= self.idle_timeout]
            for handler in expired:
                if self._unpark(handler.connection) is not None:
                    handler.parked = False
                    with contextlib.suppress(OSError):
                        handler.finish()
                    self.shutdown_request(handler.connection)

    def _unpark(self, sock) -> Handler | None:
        with self._parked_lock:
            entry = self._parked.pop(sock.fileno(), None)
            if entry is not None:
                self._selector.unregister(sock)
        return entry[0] if entry else None

    def server_close(self) -> None:
        super().server_close()
        with self._parked_lock:
            self._closed = True
            parked = list(self._parked.values())
            self._parked.clear()
        for handler, _ in parked:
            with contextlib.suppress(OSError, ValueError, KeyError):
                self._selector.unregister(handler.connection)
            handler.parked = False
            with contextlib.suppress(OSError):
                handler.finish()
            super().shutdown_request(handler.connection)
        self._wake()  # the watcher sees _closed, closes the selector and returns

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


#: a body this big is followed by a malloc_trim: its objects were freed, give the pages back
BIG_BODY = 4 << 20


def _trim() -> None:
    """malloc_trim(0): freed memory of every malloc arena (each request thread may have used
    its own) goes back to the kernel.  Tens of ms for a daemon of a few hundred MB, and only
    after a big body."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def _return_big_frees() -> None:
    """Have malloc give big blocks straight back to the kernel when freed: glibc's moving
    mmap threshold otherwise serves a freed 50 MB request body's successors from the heap,
    and the daemon keeps hundreds of MB it no longer uses.  Setting the threshold fixes it."""
    import ctypes

    M_MMAP_THRESHOLD = -3
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 256 << 10)


def make_server(path: str, router: Router, context: object, idle_timeout: float | None = None,
                header_timeout: float | None = None) -> Server:
    handler = type("BoundHandler", (Handler,), {"router": router, "context": context})
    _return_big_frees()
    server = Server(path, handler, bind_and_activate=True)
    if idle_timeout is not None:
        server.idle_timeout = idle_timeout
    if header_timeout is not None:
        server.header_timeout = header_timeout
    return server


def stream_produced(req, produce, content_type: str = "application/x-tar") -> Streamed:
    """Send what ``produce(fd)`` writes to a pipe's write end (closed here afterwards) as a
    streamed body: the producer runs in a thread, the response copies as it comes."""
    import os
    import threading

    r, w = os.pipe()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            produce(w)
        except BaseException as exc:  # (reported below: headers are already sent)
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
