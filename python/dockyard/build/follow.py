"""A RUN step's output, followed as its container writes it: woken by inotify when the log grows
and by a pidfd when the container's supervisor is gone."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


class StderrLine(str):
    """A line a RUN wrote to its stderr (the daemon wraps it as the classic builder does)."""


def follow(containers, cid: str, supervisor: int, out: Callable[[str], None], flush: Callable[[], None]) -> int:
    """Stream a RUN step's container log to ``out`` until it exits; its exit code.

    Woken by events, never a timer: inotify says the log grew, and a pidfd of the container's
    supervisor says it has gone, which it does once the exit file and the last of the log
    are written."""
    log = containers.logs(cid)
    exit_file = containers.dir(cid) / "exit.json"
    pos = 0
    buf = b""

    def drain() -> None:
        nonlocal pos, buf
        try:
            with open(log, "rb") as f:
                f.seek(pos)
                data = f.read()
        except FileNotFoundError:
            return
        pos += len(data)
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            text = entry.get("log", "").rstrip("\n")
            out(StderrLine(text) if entry.get("stream") == "stderr" else text)

    with ExitWatch(log, supervisor) as watch:
        # (the exit file checked after the pidfd is open: a supervisor gone before it was
        # opened, whose pid was then reused, is not waited for; the log read after the watch
        # is set: what came before it has woken nothing)
        while True:
            drain()
            flush()
            if exit_file.exists() or not watch.wait():
                break
    state = containers.wait(cid, timeout=60)
    drain()
    return int(state.get("ExitCode", 1))


class ExitWatch:
    """Wakes a RUN step's follower: :meth:`wait` returns True when the log was written to
    (inotify ``IN_MODIFY``), False once the supervisor (``pid``) has exited (its pidfd is
    readable).  Without pidfd_open (Linux < 5.3) or a pid, the supervisor is checked for life
    once a second instead (``kill(pid, 0)``), the one timer left, on old kernels only."""

    IN_MODIFY = 0x2

    def __init__(self, log: Path, pid: int) -> None:
        import ctypes
        import select

        self.pid = pid
        self.pidfd = -1
        self.gone = False
        self.poller = select.poll()
        if pid > 0:
            try:
                self.pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                self.gone = True
            except (AttributeError, OSError):
                pass
            else:
                self.poller.register(self.pidfd, select.POLLIN)
        libc = ctypes.CDLL(None, use_errno=True)
        self.ino = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.ino >= 0:
            libc.inotify_add_watch(self.ino, os.fsencode(str(log)), self.IN_MODIFY)
            self.poller.register(self.ino, select.POLLIN)

    def wait(self) -> bool:
        while not self.gone:
            ready = dict(self.poller.poll(None if self.pidfd >= 0 else 1000))
            if self.pidfd in ready:
                self.gone = True
            elif self.ino in ready:
                try:
                    while os.read(self.ino, 4096):
                        pass
                except BlockingIOError:
                    pass
                return True
            elif self.pidfd < 0:  # (old kernel) a second has passed
                from ..engine.store import pid_alive

                if not pid_alive(self.pid):
                    self.gone = True
                elif self.ino < 0:
                    return True  # no inotify either: the log is read once a second
        return False

    def __enter__(self) -> ExitWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in (self.pidfd, self.ino):
            if fd >= 0:
                os.close(fd)
