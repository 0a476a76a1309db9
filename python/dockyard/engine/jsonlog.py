"""Docker's json-file container log read back: one JSON object per line (``log``, ``stream``,
``time``), read forward in bounded blocks or backwards for ``--tail``."""

from __future__ import annotations

import json
import os
from pathlib import Path

#: How much of a json-file log is read (and parsed) at a time: ``logs`` of any size costs the
#: daemon about this much memory, not the log's size.
LOG_BLOCK = 1 << 20


#: the options each log driver takes (dockerd's lists; json-file's labels, env and tag, which
#: add "attrs" to each line, dockyard does not write, and refuses)
LOG_OPTS = {"json-file": ("max-size", "max-file", "compress"), "local": ("max-size", "max-file", "compress"),
            "none": ()}
DOCKER_ONLY_OPTS = ("labels", "labels-regex", "env", "env-regex", "tag")


def check_log_opts(driver: str, opts: dict[str, str]) -> None:
    """A create's log options, checked by name as dockerd checks them then (their values are
    checked when the container starts: :func:`rotation`)."""
    from ..errors import InvalidArgument

    for key in opts:
        if driver == "json-file" and key in DOCKER_ONLY_OPTS:
            raise InvalidArgument(f"log opt '{key}' of the json-file log driver is not supported by dockyard "
                                  f"(it has {', '.join(LOG_OPTS[driver])})")
        if key not in LOG_OPTS.get(driver, ()):
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver" if driver == "json-file"
                                  else f"unknown log opt '{key}' for log driver {driver}")


def rotation(driver: str, opts: dict[str, str]) -> tuple[int, int]:
    """(max-size in bytes, 0 for none; max-file) of a container's log, as dockerd reads them when
    it starts the container: json-file keeps one growing file unless max-size is given; local
    keeps 5 files of 20 MB unless told otherwise.  Errors are dockerd's."""
    from ..errors import DockyardError
    from ..units import parse_human_size

    def fail(why: str) -> DockyardError:
        return DockyardError(f"failed to initialize logging driver: {why}")

    local = driver == "local"
    size, files = (20_000_000, 5) if local else (0, 1)
    if "max-size" in opts:
        try:
            size = parse_human_size(opts["max-size"])
        except DockyardError as exc:
            raise fail(str(exc)) from None
        if size <= 0:
            raise fail("max-size must be a positive number")
    if "max-file" in opts:
        value = opts["max-file"]
        if not value.lstrip("+-").isdigit():
            raise fail(f'strconv.Atoi: parsing "{value}": invalid syntax')
        files = int(value)
        if files < 1:
            raise fail("max-file cannot be less than 1")
    compress = opts.get("compress", "true" if local else "false")
    if compress not in ("true", "false", "1", "0", "t", "f", "True", "False", "TRUE", "FALSE", "T", "F"):
        raise fail(f'strconv.ParseBool: parsing "{compress}": invalid syntax')
    if compress.lower() in ("true", "1", "t") and not local:
        if files < 2 or not size:
            raise fail("compress cannot be true when max-file is less than 2 or max-size is not set")
        raise fail("compress is not supported by dockyard's json-file log (its rotated files stay as they are)")
    return size, files


def rotated(path: Path) -> list[Path]:
    """The rotated files of a log (``PATH.1``, ``PATH.2``, ...: the supervisor's rotation),
    oldest first, then the log itself."""
    out = []
    n = 1
    while (p := path.with_name(f"{path.name}.{n}")).exists():
        out.append(p)
        n += 1
    return [*reversed(out), path]


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
        yield from iter_json_file(f, pos)


def iter_json_file(f, pos: int = 0):
    """:func:`iter_json_log` of an open log file (which a rotation may have renamed)."""
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
        return tail_json_file(f, count)


def tail_json_file(f, count: int) -> tuple[int, list[dict]]:
    """:func:`tail_json_log` of an open log file."""
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
