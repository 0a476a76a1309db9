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
    """Buffered reads from a socket: ``readline(limit)``, ``read1(n)`` and ``read(n)``.  The
    buffer is consumed by moving an offset, so many small reads cost no copying of the rest."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0
        self.closed = False

    def _fill(self) -> bool:
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def _take(self, n: int) -> bytes:
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += len(out)
        return out

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self.buf.find(b"\n", self.pos)
            have = len(self.buf) - self.pos
            if end >= 0 and (limit < 0 or end - self.pos < limit):
                return self._take(end + 1 - self.pos)
            if 0 <= limit <= have:
                return self._take(limit)
            if not self._fill():
                return self._take(len(self.buf) - self.pos)

    def read1(self, n: int = 65536) -> bytes:
        if self.pos >= len(self.buf) and not self._fill():
            return b""
        return self._take(n)

    def read(self, n: int = -1) -> bytes:
        parts = []
        while n != 0:
            if self.pos >= len(self.buf) and not self._fill():
                break
            part = self._take(len(self.buf) - self.pos if n < 0 else n)
            parts.append(part)
            if n > 0:
                n -= len(part)
        return b"".join(parts)

    def close(self) -> None:
        self.closed = True
