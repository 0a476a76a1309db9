"""The per-container supervisors (``dockyard-runtime shim``) seen from the engine: found by their
command lines in /proc, the one of a container's init, and a process ended on a pidfd."""

from __future__ import annotations

import os
import signal as signals
from pathlib import Path

from .store import pid_alive

def shim_cmdline(argv: list[bytes], runtime_root: Path) -> str:
    """The container ID if ``argv`` is a supervisor's (``dockyard-runtime --root R shim ... --id
    ID``) under ``runtime_root``, else ''."""
    try:
        if argv[1:3] != [b"--root", str(runtime_root).encode()] or argv[3] != b"shim":
            return ""
        return argv[argv.index(b"--id") + 1].decode()
    except (IndexError, ValueError, UnicodeDecodeError):
        return ""


def _argv(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def find_supervisors(runtime_root: Path) -> dict[str, list[int]]:
    """Every live supervisor under ``runtime_root``, by container ID (one walk of /proc)."""
    out: dict[str, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            cid = shim_cmdline(_argv(int(entry.name)), runtime_root)
            if cid and pid_alive(int(entry.name)):
                out.setdefault(cid, []).append(int(entry.name))
    return out


def supervisor_of(pid: int, runtime_root: Path, cid: str) -> int:
    """The supervisor of a container's init (its parent, the shim being a subreaper), or 0."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return ppid if shim_cmdline(_argv(ppid), runtime_root) == cid else 0


def end_process(pid: int, grace: float = 3.0) -> None:
    """Wait (on a pidfd, no polling) up to ``grace`` seconds for ``pid`` to exit, then SIGKILL it."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(int(grace * 1000)):
            signals.pidfd_send_signal(fd, signals.SIGKILL)
            poller.poll(int(grace * 1000))
    finally:
        os.close(fd)


def signal_init(state: dict, sig: int) -> bool:
    """Signal the container's init directly, as the runtime's ``kill`` would, without starting
    the runtime (a process each time: most of a ``rm -f``'s cost).  The pidfd pins the process,
    and it must be the supervisor's child: a pid reused since the record was read is never
    signalled.  False when that cannot be made sure (the caller asks the runtime then)."""
    pid, shim = state.get("Pid") or 0, state.get("ShimPid") or 0
    if not pid or not shim:
        return False
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            if int(f.read().rsplit(b")", 1)[1].split()[1]) != shim:
                return False
        signals.pidfd_send_signal(fd, sig)
        return True
    except (OSError, ValueError, IndexError):
        return False
    finally:
        os.close(fd)
