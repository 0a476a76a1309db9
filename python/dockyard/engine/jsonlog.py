"""Docker's json-file container log read back: one JSON object per line (``log``, ``stream``,
``time``), read forward in bounded blocks or backwards for ``--tail``."""

from __future__ import annotations

import json
import os
from pathlib import Path

#: How much of a json-file log is read (and parsed) at a time: ``logs`` of any size costs the
#: daemon about this much memory, not the log's size.
LOG_BLOCK = 1 << 20


def _parse_log_lines(data: bytes) -> list[dict]:
    entries = []
    for line in data.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            pass  # a damaged line is skipped, as docker's json-file reader does
    return entries


def iter_json_log(path: Path, pos: int = 0):
    """Complete entries of a json-file log from byte ``pos`` (``log``, ``stream``, ``time``), in
    batches of about :data:`LOG_BLOCK` bytes: ``(position after the batch, entries)``.  A last
    line without its newline (being written) is left for the next call from that position."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        f.seek(pos)
        rest = b""
        while block := f.read(LOG_BLOCK):
            data = rest + block if rest else block
            end = data.rfind(b"\n") + 1
            rest = data[end:]
            if end:
                pos += end
                yield pos, _parse_log_lines(data[:end] if rest else data)


def read_json_log(path: Path, pos: int = 0) -> tuple[int, list[dict]]:
    """All complete entries from byte ``pos`` and the position after them (for small logs and
    tests; ``logs`` streams with :func:`iter_json_log` and :func:`tail_json_log`)."""
    entries: list[dict] = []
    for pos, batch in iter_json_log(path, pos):
        entries += batch
    return pos, entries


def tail_json_log(path: Path, count: int) -> tuple[int, list[dict]]:
    """The last ``count`` complete entries, read backwards from the end (``logs --tail``: the
    cost is that of the entries, not of the log), and the position after the last whole line
    (where ``logs -f`` goes on)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return 0, []
    with f:
        size = f.seek(0, os.SEEK_END)
        start, blocks, newlines, block = size, [], 0, 64 << 10
        # count+1 newlines: the first one ends the line before the oldest wanted one
        while start > 0 and newlines <= count:
            n = min(block, start)
            start -= n
            f.seek(start)
            data = f.read(n)
            blocks.append(data)
            newlines += data.count(b"\n")
            block = min(block * 2, LOG_BLOCK)
    data = b"".join(reversed(blocks))
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1]
    if start > 0:
        lines = lines[1:]  # (its beginning is before what was read)
    if count == 0:
        lines = []
    entries = _parse_log_lines(b"\n".join(lines[-count:] if count else []))
    return start + end, entries
