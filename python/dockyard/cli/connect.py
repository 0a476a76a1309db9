"""The CLI's way to its daemon: ``-H``, ``$DOCKYARD_HOST``, or the default socket, started on demand.

The CLI is a client of ``dockyard daemon`` (the engine lives there, as in Docker).  The address
is ``-H``/``--host``, else ``$DOCKYARD_HOST``, else ``unix://$DOCKYARD_RUN/dockyard.sock``.  When
nothing listens on that default socket, the CLI starts a daemon there (for an unprivileged user a
rootless one: see dockyard.rootless) and says so once, on stderr; an explicit address is never
started, only reported when it does not answer.

A daemon serves one root.  When the CLI is given one (``--root`` or ``$DOCKYARD_ROOT``), it sends
it with every request and a daemon serving another root refuses (409) instead of quietly acting
on the wrong store.  A daemon the CLI starts gets that root.
"""

from __future__ import annotations

import os
import sys

# How long a starting daemon may take to listen (opening the store, live restore).
START_TIMEOUT = 30.0


def connect(host: str | None, root: str | None):
    """A :class:`dockyard.client.Client` for this command, starting the default daemon when needed."""
    from ..client import Client, Connection

    explicit = host or os.environ.get("DOCKYARD_HOST") or None
    client = Client(explicit, timeout=None)
    root = root or os.environ.get("DOCKYARD_ROOT") or None
    if root:
        client.api.headers["Dockyard-Root"] = os.path.abspath(root)
    path = client.api.path
    try:
        client.api.adopt(Connection(path, None))
        return client
    except (FileNotFoundError, ConnectionRefusedError):
        if explicit:
            return client  # the first request reports "Cannot connect ... Is the daemon running?"
    except OSError:
        return client  # (permission denied...) the first request reports it in docker's words
    start_daemon(path, root)
    return client


def _listening(path: str) -> bool:
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def start_daemon(path: str, root: str | None, announce: bool = True) -> int:
    """Start ``dockyard daemon`` on ``path`` (detached, logging next to its socket); wait until
    it listens, and say so on stderr (``announce``).  A lock keeps concurrent CLIs from starting
    two.  Returns the daemon's pid (0 when another CLI started it meanwhile)."""
    import fcntl

    run = os.path.dirname(path)
    os.makedirs(run, mode=0o711, exist_ok=True)
    lock = os.open(os.path.join(run, "daemon.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _listening(path):
            return 0  # another CLI started it while we waited
        log_path = os.path.join(run, "daemon.log")
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        # its runtime state beside its socket; its socket and root are this CLI's, whatever a
        # daemon.json says (cli/daemon.py)
        env = dict(os.environ, DOCKYARD_RUN=run, DOCKYARD_AUTOSTARTED="1")
        if root:
            env["DOCKYARD_ROOT"] = os.path.abspath(root)
        cmd = [sys.executable, "-c", "import sys; from dockyard.cli import main; sys.exit(main())",
               "daemon", "-H", "unix://" + path]
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                pid = _spawn_detached(cmd, env, log, notify=ready_w)
            finally:
                os.close(log)
                os.close(ready_w)
            _wait_ready(ready_r, pid, path, log_path)
        finally:
            os.close(ready_r)
        if announce:
            sys.stderr.write(f"dockyard: no daemon was listening on unix://{path}; started one "
                             f"(pid {pid}, log {log_path})\n")
            sys.stderr.flush()
        return pid
    finally:
        os.close(lock)


def _wait_ready(ready: int, pid: int, path: str, log_path: str) -> None:
    """Until the daemon says it listens on its end of the ``ready`` pipe; end of file there is
    its exit (only it holds the write end).  START_TIMEOUT is a deadline, not a poll."""
    import select

    from ..errors import DockyardError

    poller = select.poll()
    poller.register(ready, select.POLLIN)
    if poller.poll(START_TIMEOUT * 1000):
        if os.read(ready, 64).startswith(b"READY=1"):
            return
        raise DockyardError(f"the dockyard daemon did not start: {_last_line(log_path)}")
    _kill(pid)
    raise DockyardError(f"the dockyard daemon did not listen on unix://{path} within "
                        f"{START_TIMEOUT:.0f} s (log: {log_path})")


def _last_line(path: str) -> str:
    try:
        with open(path, "rb") as f:
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


def _spawn_detached(cmd: list[str], env: dict, log: int, notify: int | None = None) -> int:
    """Run ``cmd`` as a daemon: forked twice (init reaps it; we never wait for it), its own
    session, stdin from /dev/null, stdout and stderr to ``log``, ``notify`` (if given) as its
    fd 3, named in ``DOCKYARD_NOTIFY_FD``.  Returns its pid."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only execs
        try:
            os.close(r)
            os.setsid()
            grandchild = os.fork()
            if grandchild:
                os.write(w, str(grandchild).encode())
                os._exit(0)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            if notify is not None:
                if notify == 3:
                    os.set_inheritable(3, True)
                else:
                    os.dup2(notify, 3)  # (dup2's copy is inheritable)
                env = dict(env, DOCKYARD_NOTIFY_FD="3")
            os.closerange(3 if notify is None else 4, 1024)
            os.execve(cmd[0], cmd, env)
        finally:
            os._exit(127)
    os.close(w)
    try:
        data = b""
        while chunk := os.read(r, 32):
            data += chunk
    finally:
        os.close(r)
        os.waitpid(child, 0)
    return int(data or b"0")


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
