"""``dockyard daemon``: the Docker Engine API over a unix socket, one engine per host.

Routes are thin (one engine call each; see containers.py, images.py, execs.py, system.py);
what the daemon adds to the engine is only what needs a long-lived process: the exit monitor
(events, ``wait``, auto-remove), restart policies with Docker's back-off, exec sessions, and
hijacked attach/exec connections (core.py, streams.py).

Live restore: containers are supervised by their own ``dockyard-runtime shim``, never by the
daemon, so stopping or killing the daemon leaves them running; a new daemon finds them in the
store, records the exits it missed from the supervisors' exit files, and watches the rest.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

__all__ = ["serve", "default_socket", "build_router"]


def default_socket() -> str:
    return str(Path(os.environ.get("DOCKYARD_RUN", "/run/dockyard")) / "dockyard.sock")


def build_router():
    from . import containers, execs, images, swarm, system
    from .http import Router

    r = Router()
    system.routes(r)
    swarm.routes(r)
    containers.routes(r)
    execs.routes(r)
    images.routes(r)
    try:
        from . import resources

        resources.routes(r)
    except ImportError:
        pass
    return r


def _prepare_socket(path: str) -> None:
    """Refuse to steal a live daemon's socket; remove a stale one."""
    if os.path.lexists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
        else:
            from ..errors import Conflict

            raise Conflict(f"a daemon is already listening on {path}")
        finally:
            probe.close()
    Path(path).parent.mkdir(parents=True, exist_ok=True)


def _secure_socket(path: str) -> None:
    """root-owned, group ``dockyard`` when that group exists, mode 0660."""
    import grp

    gid = 0
    try:
        gid = grp.getgrnam("dockyard").gr_gid
    except KeyError:
        pass
    try:
        os.chown(path, 0 if os.geteuid() == 0 else -1, gid if os.geteuid() == 0 else -1)
    except OSError:
        pass
    os.chmod(path, 0o660)


def _raise_open_files() -> None:
    """The soft limit of open files up to the hard one (as Go does for dockerd, whose unit also
    asks for no limit): at 1,000 containers the daemon holds more than 1,024 files, a pidfd and
    more for each.  Containers inherit it, as they inherit dockerd's under its unit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        try:
            with open("/proc/sys/fs/nr_open") as f:
                hard = int(f.read())
        except (OSError, ValueError):
            hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        except (ValueError, OSError):
            pass


def _notify_fd() -> int | None:
    """The pipe of the CLI that started this daemon (``DOCKYARD_NOTIFY_FD``), kept from the
    processes the daemon starts: its end of file must mean that the daemon is gone."""
    try:
        fd = int(os.environ.pop("DOCKYARD_NOTIFY_FD", ""))
        os.set_inheritable(fd, False)
    except (ValueError, OSError):
        return None
    return fd


def _notify_ready(fd: int | None) -> None:
    """Say that the daemon listens: on the starting CLI's pipe, and to systemd when it runs the
    daemon as a ``Type=notify`` unit (``NOTIFY_SOCKET``, as dockerd does)."""
    import socket

    if fd is not None:
        try:
            os.write(fd, b"READY=1\n")
        except OSError:
            pass
        os.close(fd)
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if addr.startswith(("/", "@")):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(b"READY=1", "\0" + addr[1:] if addr.startswith("@") else addr)
        except OSError:
            pass


def serve(path: str | None = None, root: str | None = None, ready: threading.Event | None = None,
          debug: bool = False, level: str = "") -> int:
    """Serve until SIGTERM/SIGINT; containers keep running afterwards (live restore).
    ``level``: dockerd's --log-level (debug, info, warn, error, fatal; --debug is debug)."""
    from .core import Daemon
    from .http import make_server

    path = path or default_socket()
    notify = _notify_fd()
    _raise_open_files()
    log = logging.getLogger("dockyard.daemon")
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.DEBUG if debug else {"warn": logging.WARNING, "error": logging.ERROR,
                                             "fatal": logging.CRITICAL}.get(level, logging.INFO))
    _prepare_socket(path)
    daemon = Daemon(root)
    daemon.start()
    old_umask = os.umask(0o117)
    try:
        server = make_server(path, build_router(), daemon)
    finally:
        os.umask(old_umask)
    _secure_socket(path)
    pidfile = os.path.splitext(path)[0] + ".pid"  # dockyard.sock -> dockyard.pid, as docker's
    with open(pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")
    stop = threading.Event()

    from .. import rootless

    def on_signal(signum, frame) -> None:
        if not stop.is_set():
            stop.set()
            log.info("received %s: shutting down (%s)", signal.Signals(signum).name,
                     "stopping containers: rootless" if rootless.active() else "containers keep running")
            threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    log.info("dockyard daemon listening on unix://%s (root %s, pid %d)", path, daemon.root, os.getpid())
    if ready is not None:
        ready.set()
    _notify_ready(notify)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        daemon.shutdown()
        server.server_close()
        for leftover in (path, pidfile):
            try:
                os.unlink(leftover)
            except OSError:
                pass
        log.info("dockyard daemon stopped")
    return 0
