"""JSON and unix-socket reading from CPython's C modules alone, for the CLI's start-up.

Every CLI command talks JSON to the daemon over a unix socket.  The stdlib's ``json`` imports
``re`` (and with it ``enum``), and ``socket`` imports ``enum`` and ``selectors``: about 10 ms of
a ~60 ms ``dockyard run``, paid before any work.  ``_json`` and ``_socket``, the C halves those
modules wrap, cost nothing to import.  This module gives what the client needs of them:

- :func:`dumps`/:func:`loads`: ``json.dumps`` (default separators, ASCII) and ``json.loads``,
  raising ``ValueError`` (as ``json.JSONDecodeError`` is) on bad input;
- :class:`Reader`: the buffered ``readline``/``read1`` a ``socket.makefile("rb")`` gives.
"""

from __future__ import annotations

import _json
import _socket

AF_UNIX = _socket.AF_UNIX
SOCK_STREAM = _socket.SOCK_STREAM
SHUT_WR = _socket.SHUT_WR
SHUT_RDWR = _socket.SHUT_RDWR
SOL_SOCKET = _socket.SOL_SOCKET
SCM_RIGHTS = _socket.SCM_RIGHTS
socket = _socket.socket


def _default(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ": ", ", ",
                             False, False, True)


def dumps(obj: object) -> str:
    """``json.dumps(obj)``."""
    return "".join(_encode(obj, 0))


#: ``json.dumps(text, ensure_ascii=False)`` for a string: quoted and escaped, UTF-8 kept
json_string = _json.encode_basestring


def _constant(name: str) -> float:
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)


_scan = _json.make_scanner(_Context())
_SPACE = " \t\n\r"


def loads(data: str | bytes | bytearray) -> object:
    """``json.loads(data)`` (UTF-8 when bytes)."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    start = len(text) - len(text.lstrip(_SPACE))
    try:
        obj, end = _scan(text, start)
    except StopIteration:
        raise ValueError(f"Expecting value: char {start}") from None
    if text[end:].strip(_SPACE):
        raise ValueError(f"Extra data: char {end}")
    return obj


class Reader:
    """Buffered reads from a socket: ``readline(limit)``, ``read1(n)`` and ``read(n)``."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.closed = False

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self.buf.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                end += 1
                break
            if 0 <= limit <= len(self.buf):
                end = limit
                break
            if not self._fill():
                end = len(self.buf)
                break
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def read1(self, n: int = 65536) -> bytes:
        if not self.buf and not self._fill():
            return b""
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self, n: int = -1) -> bytes:
        while (n < 0 or len(self.buf) < n) and self._fill():
            pass
        if n < 0:
            n = len(self.buf)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def close(self) -> None:
        self.closed = True
