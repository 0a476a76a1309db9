"""Rootless mode: ``dockyard daemon`` run by an unprivileged user, its containers and its store
that user's, with no privilege on the host beyond the user's subordinate ids.

Where things live (as docker's and podman's rootless modes): the store in
``$XDG_DATA_HOME/dockyard`` (``~/.local/share/dockyard``), the socket and runtime state in
``$XDG_RUNTIME_DIR/dockyard`` (``/tmp/dockyard-run-UID`` when that is unset).  The CLI of an
unprivileged user uses those places, and starts the daemon there on demand, as root's does.

How (the part rootlesskit plays for docker):

- The daemon forks.  The child makes a user namespace; the parent maps it with ``newuidmap`` and
  ``newgidmap`` (Debian's ``uidmap``, setuid root: the only privileged step): the user is root
  inside, and the user's ranges in ``/etc/subuid``/``/etc/subgid`` are ids 1 and up.  The child
  then makes a mount and a network namespace of its own and serves the API from there: overlay
  mounts (with ``userxattr``), bridges, veths and nf_tables work as they do for root, inside
  namespaces the user owns.  Containers share that user namespace (as docker's rootless ones
  do): root in a container is the user on the host, and a process that breaks out of the
  container's other namespaces is that unprivileged user.
- Egress: ``slirp4netns`` (Debian) gives the child's network namespace a tap device routed
  through the user's own sockets on the host (10.0.2.0/24, no access to the host's loopback).
  Without it the daemon still works; its containers reach nothing outside.
- The port driver: the parent stays in the host's namespaces and serves requests on a unix
  socket (``rootless.sock`` beside the daemon's): "a socket bound to this host address" (for a
  published port: the network helper's proxy then accepts on it and relays to the container)
  and "a socket connected to this address" (the registry client's, so ``pull`` from
  ``127.0.0.1:5000`` reaches the host's loopback).  The socket is made in the host's network
  namespace and handed over (SCM_RIGHTS); nothing else crosses.
- Cgroups: on cgroup v1 (this project's CI hosts) a user may not write them: containers run
  without a cgroup and a resource limit is refused (the runtime's words are dockerd's rootless
  warning).  With cgroup v2 and a subtree delegated to the user, limits work.

The daemon's stop stops its containers: they live in namespaces that end with the daemon, which
a new daemon could not reach (no live restore in rootless mode, as with docker's).
"""

from __future__ import annotations

import os

DRIVER_ENV = "DOCKYARD_ROOTLESS_DRIVER"  # in the daemon inside its namespaces, and its helpers


def active() -> bool:
    """Whether this process is a rootless daemon inside its namespaces (or one of its helpers)."""
    return bool(os.environ.get(DRIVER_ENV))


def wanted() -> bool:
    """Whether this process runs as an unprivileged user outside such a daemon."""
    return os.geteuid() != 0 and not active()


def apply_defaults() -> None:
    """An unprivileged user's store and run directory, unless the environment names them."""
    if not wanted():
        return
    if not os.environ.get("DOCKYARD_ROOT"):
        data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        os.environ["DOCKYARD_ROOT"] = os.path.join(data, "dockyard")
    if not os.environ.get("DOCKYARD_RUN"):
        os.environ["DOCKYARD_RUN"] = os.path.join(runtime_dir(), "dockyard")


def runtime_dir() -> str:
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isdir(xdg):
        return xdg
    return f"/tmp/dockyard-run-{os.geteuid()}"


# -- the parent: namespaces, ids, slirp4netns, port driver ---------------------------------------

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
MS_REC, MS_SLAVE = 0x4000, 0x80000
NO_CGROUPS_V1 = ("Running in rootless-mode without cgroups. To enable cgroups in rootless-mode, you need to "
                 "boot the system in cgroup v2 mode.")


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _private_dir(path: str) -> None:
    """``path`` (and a missing parent in /tmp) made 0700 for this user; one that exists must be
    this user's and not writable by others (a directory another user made in /tmp first)."""
    import stat

    parent = os.path.dirname(path)
    if parent.startswith("/tmp/dockyard-run-"):
        os.makedirs(parent, mode=0o700, exist_ok=True)
    os.makedirs(path, mode=0o700, exist_ok=True)
    for p in (parent, path) if parent.startswith("/tmp/dockyard-run-") else (path,):
        st = os.lstat(p)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            from .errors import DaemonSetupError

            raise DaemonSetupError(f"{p} is not a private directory of this user's: refusing to use it")


def _id_args(own: int, ranges: list[tuple[int, int]]) -> list[str]:
    """newuidmap's triples: 0 -> the user, then 1.. -> the subordinate ranges in file order."""
    args, inside = ["0", str(own), "1"], 1
    for start, count in ranges:
        args += [str(inside), str(start), str(count)]
        inside += count
    return args


def id_ranges() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """This user's subordinate uid and gid ranges (by name or number), or a clear error."""
    import pwd
    import shutil

    from .engine.userns import ETC, _ranges
    from .errors import DaemonSetupError

    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    missing = [t for t in ("newuidmap", "newgidmap") if not shutil.which(t)]
    if missing:
        raise DaemonSetupError(f"rootless mode needs {' and '.join(missing)} (Debian's package uidmap)")
    subuids = _ranges(ETC / "subuid", {name, str(uid)})
    subgids = _ranges(ETC / "subgid", {name, str(uid)})
    if not subuids or not subgids:
        which = "/etc/subuid" if not subuids else "/etc/subgid"
        raise DaemonSetupError(f"rootless mode needs subordinate ids for {name}: {which} has no range for it "
                            f"(as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name})")
    return subuids, subgids


def run_daemon(serve, socket_path: str | None = None) -> int:
    """``dockyard daemon`` of an unprivileged user: ``serve()`` runs in a child inside the new
    namespaces; this process maps its ids, gives it slirp4netns, serves the port driver, and
    ends with it (forwarding SIGTERM, SIGINT and SIGHUP to it)."""
    import contextlib
    import signal
    import socket
    import sys

    subuids, subgids = id_ranges()
    run = os.environ["DOCKYARD_RUN"]
    _private_dir(run)
    os.makedirs(os.environ["DOCKYARD_ROOT"], mode=0o700, exist_ok=True)
    driver_path = os.path.join(run, "rootless.sock")
    from .daemon import _prepare_socket, default_socket

    _prepare_socket(socket_path or default_socket())  # a live daemon there: say so before anything is made
    with contextlib.suppress(FileNotFoundError):
        os.unlink(driver_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    listener.bind(driver_path)
    listener.listen(64)
    pidfile = os.path.join(run, "rootless.pid")  # this process: the one to signal (it forwards)
    with open(pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")
    to_parent_r, to_parent_w = os.pipe()
    to_child_r, to_child_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: becomes the daemon
        code = 1
        try:
            listener.close()
            os.close(to_parent_r)
            os.close(to_child_w)
            code = _child(to_parent_w, to_child_r, driver_path, serve)
        except BaseException as exc:  # (its parent reports the exit status)
            sys.stderr.write(f"dockyard daemon: {exc}\n")
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(to_parent_w)
    os.close(to_child_r)
    slirp = None
    forwarded = {s: signal.signal(s, lambda signum, _f: _forward(pid, signum))
                 for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        try:
            _step(to_parent_r, "make a user namespace")
            for tool, own, ranges in (("newuidmap", os.getuid(), subuids), ("newgidmap", os.getgid(), subgids)):
                _run_tool([tool, str(pid), *_id_args(own, ranges)])
            os.write(to_child_w, b"1")
            _step(to_parent_r, "make its mount and network namespaces")
            slirp = _slirp4netns(pid)
            os.write(to_child_w, b"1")
        except BaseException:
            _forward(pid, signal.SIGKILL)
            raise
        finally:
            os.close(to_parent_r)
            os.close(to_child_w)
        return _drive(listener, pid)
    finally:
        for s, old in forwarded.items():
            signal.signal(s, old)
        listener.close()
        for leftover in (driver_path, pidfile):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
        if slirp is not None:
            slirp.terminate()
            slirp.wait()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _step(fd: int, what: str) -> None:
    """The child's byte saying it did ``what``; end of file is its failure (it said why)."""
    if os.read(fd, 1) != b"1":
        from .errors import DaemonSetupError

        raise DaemonSetupError(f"the rootless daemon could not {what}")


def _run_tool(cmd: list[str]) -> None:
    import subprocess

    from .errors import DaemonSetupError

    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise DaemonSetupError(f"{cmd[0]} failed: {lines[-1] if lines else f'exit status {proc.returncode}'}")


def _child(to_parent: int, from_parent: int, driver_path: str, serve) -> int:
    """In the child: the user namespace, root in it once mapped, then the mount and network
    namespaces; then the daemon."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWUSER), "unshare user namespace")
    os.write(to_parent, b"1")
    if os.read(from_parent, 1) != b"1":
        return 1
    os.setresgid(0, 0, 0)
    os.setgroups([])
    os.setresuid(0, 0, 0)
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare mount and network namespaces")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "make / a slave mount")
    from .engine.network.netlink import LOOPBACK_INDEX, Netlink

    with Netlink() as nl:
        nl.set_up(LOOPBACK_INDEX, "lo")
    os.write(to_parent, b"1")
    os.close(to_parent)
    if os.read(from_parent, 1) != b"1":
        return 1
    os.close(from_parent)
    os.environ[DRIVER_ENV] = driver_path
    return serve()


def _slirp4netns(pid: int):
    """slirp4netns on the child's network namespace, once it says the tap is configured; None
    when it is not installed or cannot start (no /dev/net/tun for this user, say): the daemon
    then runs without egress, and says so in its log."""
    import select
    import shutil
    import subprocess
    import sys

    exe = shutil.which("slirp4netns")
    if exe is None:
        return None
    r, w = os.pipe()
    try:
        proc = subprocess.Popen([exe, "--configure", "--mtu=65520", "--disable-host-loopback", f"--ready-fd={w}",
                                 f"--userns-path=/proc/{pid}/ns/user", "--netns-type=path", f"/proc/{pid}/ns/net",
                                 "tap0"], pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        os.close(w)
        w = -1
        poller = select.poll()
        poller.register(r, select.POLLIN)
        if not poller.poll(10_000) or os.read(r, 1) != b"1":  # a deadline, not a poll
            proc.kill()
            _, err = proc.communicate()
            lines = err.decode(errors="replace").strip().splitlines()
            sys.stderr.write(f"dockyard daemon: warning: slirp4netns did not start ({lines[0] if lines else 'no reason given'}):"
                             " containers have no network beyond this host's published ports\n")
            sys.stderr.flush()
            return None
        return proc
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def _drive(listener, pid: int) -> int:
    """Serve the port driver until the child exits; its exit status."""
    import select

    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(listener.fileno(), select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            if any(fd == pidfd for fd, _ in events):
                break
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                _serve_request(conn)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    finally:
        os.close(pidfd)


def _serve_request(conn) -> None:
    import json
    import socket

    conn.settimeout(5)
    try:
        req = json.loads(conn.recv(4096) or b"{}")
        made = _make(req)
    except OSError as exc:
        reply = {"errno": exc.errno or 0, "error": exc.strerror or str(exc)}
        made = None
    except (ValueError, KeyError, TypeError) as exc:
        reply = {"errno": 22, "error": f"bad request: {exc}"}
        made = None
    else:
        reply = {"ok": True}
    try:
        data = json.dumps(reply).encode()
        if made is not None:
            socket.send_fds(conn, [data], [made.fileno()])
        else:
            conn.sendall(data)
    except OSError:
        pass
    finally:
        if made is not None:
            made.close()


def _make(req: dict):
    """A socket in the host's network namespace: bound (and listening) or connected."""
    import socket

    if req["op"] == "connect":
        return socket.create_connection((req["host"], int(req["port"])), timeout=float(req.get("timeout") or 30))
    if req["op"] != "socket":
        raise ValueError(f"unknown operation {req['op']!r}")
    return bind_host(req["type"], req["ip"], int(req["port"]), bool(req.get("listen")))


def bind_host(proto: str, ip: str, port: int, listen: bool):
    """A TCP or UDP socket bound to ``ip:port`` in this process's network namespace, listening
    if asked (a published port's proxy): IPv6 alone on an IPv6 address; SO_REUSEADDR on a TCP
    socket (connections in TIME-WAIT on the port, normal after traffic, do not hold it; another
    program's listener still does) and on a listener."""
    import socket

    v6 = ":" in ip
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, kind)
    try:
        if v6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM or listen:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        if listen and kind == socket.SOCK_STREAM:
            s.listen(128)
    except BaseException:
        s.close()
        raise
    return s


# -- the child's side: asking the parent for host sockets ---------------------------------------

def _ask(req: dict):
    import json
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.connect(os.environ[DRIVER_ENV])
        s.sendall(json.dumps(req).encode())
        data, fds, _, _ = socket.recv_fds(s, 4096, 1)
    reply = json.loads(data or b"{}")
    if not fds:
        raise OSError(int(reply.get("errno") or 5), reply.get("error") or "the rootless port driver did not answer")
    sock = socket.socket(fileno=fds[0])
    sock.set_inheritable(False)
    sock.setblocking(True)  # (a connect with a timeout left the shared file non-blocking)
    return sock


def host_socket(proto: str, ip: str, port: int, listen: bool):
    """:func:`bind_host` on the host: here, or, under a rootless daemon, in the host's network
    namespace by its port driver.  OSError as bind(2) would raise it."""
    if active():
        return _ask({"op": "socket", "type": proto, "ip": ip, "port": port, "listen": listen})
    return bind_host(proto, ip, port, listen)


def host_connection(address: tuple, timeout: float | None = None, source_address=None):
    """``socket.create_connection`` made on the host (for the registry client)."""
    sock = _ask({"op": "connect", "host": address[0], "port": address[1], "timeout": timeout})
    sock.settimeout(timeout)
    return sock
