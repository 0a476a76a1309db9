"""``GET /containers/{id}/logs`` (and the log replayed by ``attach?logs=1``): the json-file log
streamed in blocks, ``--since``/``--until``/``--tail``/``--timestamps``, and ``--follow`` woken by
inotify and the container's exit, never by a timer."""

from __future__ import annotations

import os
import struct
import threading
import time

from ..errors import DockyardError, InvalidArgument, NotFound
from .http import STREAMED, Request


def frame(kind: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", kind, len(data)) + data


def logs(d, req: Request, id: str):
    """``docker logs``: the json-file log streamed in blocks (the daemon holds about one block,
    whatever the log's size); ``--tail`` read from the end; ``-f`` woken by inotify on the log
    and by the container's ``die`` event, never by a timer."""
    from ..engine.images import parse_time
    from ..engine.jsonlog import iter_json_file, rotated, tail_json_file, tail_json_log

    follow, stdout, stderr, stamps = req.bool("follow"), req.bool("stdout"), req.bool("stderr"), req.bool("timestamps")
    if not stdout and not stderr:
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    tail = req.arg("tail") or "all"
    count = -1
    if tail != "all":
        try:
            count = int(tail)
        except ValueError:
            raise InvalidArgument(f'invalid value for "tail": {tail!r}') from None
    since = parse_ts(req.arg("since"))
    until = parse_ts(req.arg("until"))
    with d.engines.get() as engine:
        cid = engine.containers.resolve(id)
        rec = engine.containers.load(cid)
        path = engine.containers.logs(cid)
    tty = rec["spec"]["Config"].get("Tty")
    events = d.events.subscribe() if follow else None  # before the state is read: no exit slips by
    try:
        if follow:
            with d.engines.get() as engine:
                try:
                    follow = engine.containers.refresh(engine.containers.load(cid))["state"]["Running"]
                except NotFound:
                    follow = False
        out = req.start_stream("application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream")
        req._started = True

        def emit(entries: list[dict]) -> None:
            buf = []
            for e in entries:
                err = e.get("stream") == "stderr"
                if (err and not stderr) or (not err and not stdout):
                    continue
                if since or until:
                    t = parse_time(e.get("time", ""))
                    if since and t < since or until and t >= until:
                        continue
                text = e.get("log", "").encode("utf-8", "surrogateescape")
                if stamps:
                    text = e.get("time", "").encode() + b" " + text
                buf.append(text if tty else frame(2 if err else 1, text))
            if buf:
                out.write(b"".join(buf))

        def copy_file(f, pos: int) -> int:
            for pos, entries in iter_json_file(f, pos):
                emit(entries)
            return pos

        # the log's rotated files (oldest first) before the log itself, which is read (and
        # followed) from one open file: a rotation meanwhile renames it, it does not move it
        files = rotated(path)
        try:
            cur = open(path, "rb")
        except FileNotFoundError:
            cur = None
        try:
            if count >= 0:
                pos, entries = tail_json_file(cur, count) if cur else (0, [])
                for older in reversed(files[:-1]):  # (the newest rotated file first)
                    if len(entries) >= count:
                        break
                    entries = tail_json_log(older, count - len(entries))[1] + entries
                emit(entries)
            else:
                for older in files[:-1]:
                    try:
                        with open(older, "rb") as f:
                            copy_file(f, 0)
                    except FileNotFoundError:
                        pass  # (rotated away meanwhile)
                pos = copy_file(cur, 0) if cur else 0
            if follow and not (until and time.time() >= until):
                follow_log(d, req, cid, path, cur, pos, copy_file, events, until)
        finally:
            if cur is not None:
                cur.close()
        out.close()
    finally:
        if events is not None:
            d.events.unsubscribe(events)
    return STREAMED


def follow_log(d, req: Request, cid: str, path, f, pos: int, copy_file, events, until: float) -> None:
    """``logs -f`` after what was there: copy what the supervisor appends until the container
    dies or is removed, ``until`` passes or the client goes away.  Woken by inotify (a file of
    the log's directory was written or made) and by the event bus (a pipe written by a thread
    that waits for this container's ``die``/``destroy``); nothing here wakes on a timer.  ``f``:
    the log, open, read up to ``pos`` (None: not there yet).  When the supervisor rotates the log,
    the rest of the old file is copied, then the new one from its start."""
    import select

    ino = Inotify()
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    done = threading.Event()
    opened = []

    def catch_up() -> None:
        nonlocal f, pos
        while True:
            if f is None:
                try:
                    f = open(path, "rb")
                except FileNotFoundError:
                    return
                opened.append(f)
                pos = 0
            if os.fstat(f.fileno()).st_size < pos:
                pos = 0  # emptied (max-file 1): what is there now is new
            pos = copy_file(f, pos)
            try:
                now = os.stat(path).st_ino
            except FileNotFoundError:
                return
            if now == os.fstat(f.fileno()).st_ino:
                return
            copy_file(f, pos)  # rotated: the rest of the old file (whole by now: it rotates between
            f = None           # writes), then the new one from its start

    def watch_events() -> None:
        while not done.is_set():
            ev = events.get()
            if ev is None:
                return
            if ev.get("id") == cid and ev.get("Action") in ("die", "destroy"):
                break
        try:
            os.write(wake_w, b"x")
        except OSError:
            pass

    watcher = threading.Thread(target=watch_events, name=f"logs-{cid[:12]}", daemon=True)
    try:
        ino.watch(path.parent, Inotify.IN_MODIFY | Inotify.IN_CREATE | Inotify.IN_MOVED_TO)
        watcher.start()
        poller = select.poll()
        poller.register(ino.fd, select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        client = req.handler.connection.fileno()
        poller.register(client, select.POLLHUP)  # (a half-close is not the end: only a hang-up)
        catch_up()  # what came between the first read and the watch
        exited = False
        while not exited:
            timeout = None if not until else max(0.0, until - time.time()) * 1000
            ready = poller.poll(timeout)
            if not ready:
                return  # until passed
            for fd, _mask in ready:
                if fd == client:
                    req.handler.close_connection = True
                    return
                if fd == ino.fd:
                    ino.drain()
                elif fd == wake_r:
                    exited = True
            catch_up()  # (after a die: the supervisor wrote everything before the exit)
    finally:
        done.set()
        events.put(None)  # ends the watcher's wait
        if watcher.ident is not None:
            watcher.join()  # before its pipe is closed (a reused fd number must not get its byte)
        ino.close()
        os.close(wake_r)
        os.close(wake_w)
        for g in opened:
            g.close()


class Inotify:
    """The least of inotify(7) over ctypes (the stdlib has none): watches, drained unread."""

    IN_MODIFY, IN_MOVED_TO, IN_CREATE = 0x2, 0x80, 0x100
    IN_NONBLOCK = os.O_NONBLOCK
    IN_CLOEXEC = os.O_CLOEXEC

    def __init__(self) -> None:
        import ctypes

        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(self.IN_NONBLOCK | self.IN_CLOEXEC)
        if self.fd < 0:
            err = ctypes.get_errno()
            raise DockyardError(f"inotify_init1: {os.strerror(err)}")

    def watch(self, path, mask: int = IN_MODIFY) -> None:
        import ctypes

        if self._libc.inotify_add_watch(self.fd, os.fsencode(str(path)), mask) < 0:
            err = ctypes.get_errno()
            if err != 2:  # ENOENT: a container whose log is not there yet still ends with its die
                raise DockyardError(f"inotify_add_watch {path}: {os.strerror(err)}")

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.fd)


def parse_ts(value: str | None) -> float:
    """The API's ``since``/``until``: ``seconds[.nanoseconds]`` (or RFC 3339).  Computed as
    parse_time computes a log entry's time, so a client passing an entry's own timestamp gets
    exactly that entry's value (float rounding never moves it across the bound)."""
    if not value or value == "0":
        return 0.0
    secs, dot, frac = value.partition(".")
    if secs.isdigit() and (not dot or frac.isdigit()):
        return float(int(secs)) + (int(frac[:9].ljust(9, "0")) / 1e9 if frac else 0.0)
    try:
        return float(value)
    except ValueError:
        from ..engine.images import parse_time

        t = parse_time(value)
        if not t:
            raise InvalidArgument(f"invalid timestamp: {value!r}") from None
        return t


def replay_log(conn, path, tty: bool, want: dict[int, bool]) -> None:
    """``attach?logs=1``: what the container has written so far, before the live stream."""
    from ..engine.jsonlog import iter_json_log, rotated

    for _, entries in (x for p in rotated(path) for x in iter_json_log(p)):  # a block at a time
        out = []
        for e in entries:
            kind = 2 if e.get("stream") == "stderr" else 1
            if want.get(kind, True):
                data = e.get("log", "").encode()
                out.append(data if tty else frame(kind, data))
        if out:
            conn.sendall(b"".join(out))
