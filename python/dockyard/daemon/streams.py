"""Hijacked connections: attach relays the container supervisor's socket, exec runs
``dockyard-runtime exec`` under the daemon and relays its stdio.

On the client side of the hijack Docker speaks raw bytes in (stdin) and, without a TTY, 8-byte
``[stream,0,0,0,len32]`` frames out (1 stdout, 2 stderr), raw bytes with a TTY.  The supervisor
speaks the same frames both ways (0 stdin, 3 exit, 4 resize, 5 close stdin), so stdout/stderr
frames pass through unchanged."""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import threading


def _frame(kind: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", kind, len(data)) + data


def _connect(path: str) -> socket.socket:
    """The supervisor's attach socket.  It listens before the supervisor reports the container
    created or started, and goes when the supervisor exits: a refused or missing socket means
    the container has gone, which no retry would change."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


def detach_key_bytes(spec: str) -> bytes:
    """Docker's detach-key syntax ("ctrl-p,ctrl-q", "ctrl-x", "a,b") as bytes; "" -> the default.
    ValueError (dockerd's words) for anything else."""
    if not spec:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    specials = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
    for key in spec.split(","):
        low = key.lower()
        if len(key) == 1:
            out.append(ord(key))
        elif low.startswith("ctrl-") and len(low) == 6 and ("a" <= low[5] <= "z" or low[5] in specials):
            out.append(ord(low[5]) - ord("a") + 1 if "a" <= low[5] <= "z" else specials[low[5]])
        else:
            raise ValueError(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


class DetachMatcher:
    """Docker's escape proxy: finds the detach keys in a client's input across reads.  The bytes
    of a partial match are held back and go on once the match fails, as dockerd's."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = bytearray()

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(the bytes to pass on, whether the keys were seen: the rest of ``data`` is dropped)."""
        keys, held = self.keys, self.held
        if not keys:
            return data, False
        out = bytearray()
        for b in data:
            if b == keys[len(held)]:
                held.append(b)
                if len(held) == len(keys):
                    return bytes(out), True
                continue
            out += held
            held.clear()
            if b == keys[0]:
                held.append(b)
                if len(keys) == 1:
                    return bytes(out), True
            else:
                out.append(b)
        return bytes(out), False


#: run_exec's answer when the client detached.  dockerd (20.10, measured) ends the exec then:
#: its process is killed and exec inspect shows it stopped with exit code 126
DETACHED = -1


def _kill_exec(proc: subprocess.Popen) -> None:
    """SIGKILL the exec's command (the runtime's child: a host pid) and the runtime's process,
    and reap the latter."""
    import signal

    try:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        children = []
    for pid in children + [proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    proc.wait()


def relay_attach(conn: socket.socket, sock_path: str, tty: bool, stdin: bool, want: dict[int, bool],
                 size: tuple[int, int] | None = None, connected=None, close_stdin: bool = False,
                 detach_keys: bytes = DEFAULT_DETACH_KEYS) -> None:
    """Relay a hijacked client connection to the container's supervisor.  When the client's
    input ends (EOF, or it went away: a detach), the container's stdin is closed only with
    ``close_stdin`` (dockerd's rule: Config.StdinOnce and no TTY), so ``-it`` survives a detach.
    The detach keys in the client's input end the attach and leave the container running; the
    bytes of a partial match go on to the container once the match fails, as dockerd's."""
    try:
        sup = _connect(sock_path)
    except OSError:
        if connected:
            connected(None)
        return
    lock = threading.Lock()
    done = threading.Event()

    def resize(rows: int, cols: int) -> None:
        with lock:
            try:
                sup.sendall(_frame(4, struct.pack(">HH", rows, cols)))
            except OSError:
                pass

    if size:
        resize(*size)
    if connected:
        connected(resize)

    escape = DetachMatcher(detach_keys).feed

    def pump_in() -> None:
        while not done.is_set():
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                if stdin and close_stdin:
                    with lock:
                        try:
                            sup.sendall(_frame(5, b""))
                        except OSError:
                            pass
                return
            detached = False
            if stdin and detach_keys:
                data, detached = escape(data)  # may hold back everything: a partial sequence
            if detached:
                if data:
                    with lock:
                        try:
                            sup.sendall(_frame(0, data))
                        except OSError:
                            pass
                try:
                    sup.shutdown(socket.SHUT_RDWR)  # ends the relay below; the container runs on
                except OSError:
                    pass
                return
            if stdin and data:
                with lock:
                    try:
                        sup.sendall(_frame(0, data))
                    except OSError:
                        return

    threading.Thread(target=pump_in, daemon=True).start()
    try:
        while True:
            head = _recv_exact(sup, 8)
            if len(head) < 8:
                break
            kind, size = head[0], struct.unpack(">I", head[4:])[0]
            payload = _recv_exact(sup, size)
            if kind in (1, 2):
                if not want.get(kind, True):
                    continue
                conn.sendall(payload if tty else head + payload)
            elif kind == 3:
                break
    except OSError:
        pass
    finally:
        done.set()
        try:
            sup.close()
        except OSError:
            pass
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def exec_command(runtime_root: str, cid: str, cfg: dict, detach: bool, tty: bool) -> list[str]:
    from ..engine.runtime import binary

    args = [binary(), "--root", runtime_root, "exec"]
    if tty and not detach:
        args.append("--tty")
    if detach:
        args.append("--detach")
    for e in cfg.get("Env") or []:
        args += ["--env", e]
    if cfg.get("WorkingDir"):
        args += ["--cwd", cfg["WorkingDir"]]
    if cfg.get("User"):
        args += ["--user", cfg["User"]]
    return args + [cid, "--", *cfg["Cmd"]]


#: an exec whose command could not start: dockerd's exit code (moby clobbers every start error's)
START_FAILED = 126


def start_error(reason: str) -> str:
    """dockerd's words (over runc) for an exec whose command could not start."""
    return f"OCI runtime exec failed: exec failed: unable to start container process: {reason}: unknown"


def spawn_exec(record: dict, args: list[str], **popen) -> subprocess.Popen:
    """Start ``dockyard-runtime exec`` (``args`` from :func:`exec_command`) and return once its
    command was exec'd, or could not be: then ``record["_start_error"]`` holds the runtime's
    reason (told over a pipe, not mixed into the command's stderr) and the process has exited."""
    r, w = os.pipe()
    at = len(args) - len(record["_cfg"]["Cmd"]) - 2  # the options end before the container's ID
    args = args[:at] + ["--start-fd", str(w)] + args[at:]
    try:
        proc = subprocess.Popen(args, pass_fds=(w,), start_new_session=True, **popen)
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    record["Pid"] = proc.pid
    with os.fdopen(r, "rb") as f:
        reason = f.read().decode(errors="replace").strip()  # EOF at the command's exec
    if reason:
        record["_start_error"] = reason
        proc.wait()
    return proc


def run_exec(record: dict, args: list[str], conn: socket.socket | None, tty: bool, stdin: bool,
             framed: bool | None = None, detach_keys: bytes = b"") -> int:
    """Run the exec process (on a pty with ``tty``); relay it over ``conn`` (None: detached), in
    Docker's stdout/stderr frames when ``framed`` (default: without a tty; dockerd frames by
    the start's Tty, the pty comes from the create's).  Returns its exit code
    (:data:`START_FAILED`, with ``record["_start_error"]``, if its command could not start)."""
    if framed is None:
        framed = not tty
    if conn is None:
        proc = spawn_exec(record, args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        return START_FAILED if record.get("_start_error") else proc.wait()
    if tty:
        import pty
        import tty as ttymod

        master, slave = pty.openpty()
        ttymod.setraw(slave)
        record["_pty"] = master
        size = record.get("_size")
        if size:
            set_winsize(master, *size)  # the runtime's tty proxy reads it from its stdin at start
        try:
            proc = spawn_exec(record, args, stdin=slave, stdout=slave, stderr=slave)
        finally:
            os.close(slave)
        if record.get("_start_error"):
            record.pop("_pty", None)
            os.close(master)
            return START_FAILED
        return _relay_pty(proc, master, conn, stdin, framed, DetachMatcher(detach_keys if stdin else b""))
    proc = spawn_exec(record, args, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if record.get("_start_error"):
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                f.close()
        return START_FAILED
    lock = threading.Lock()

    def out(stream, kind: int) -> None:
        fd = stream.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                return
            with lock:
                try:
                    conn.sendall(_frame(kind, data) if framed else data)
                except OSError:
                    pass

    readers = [threading.Thread(target=out, args=(proc.stdout, 1), daemon=True),
               threading.Thread(target=out, args=(proc.stderr, 2), daemon=True)]
    for t in readers:
        t.start()
    detached = threading.Event()
    exited = threading.Event()
    if stdin:
        matcher = DetachMatcher(detach_keys)

        def pump() -> None:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break
                data, gone = matcher.feed(data)
                try:
                    if data:
                        proc.stdin.write(data)
                        proc.stdin.flush()
                except (OSError, ValueError):
                    break
                if gone:
                    # dockerd's detach: the client's stream ends, the exec runs on (stdin open)
                    with lock:
                        detached.set()
                    _wake(r_wake_w)
                    return
            try:
                proc.stdin.close()
            except OSError:
                pass

        r_wake, r_wake_w = os.pipe()

        def waiter() -> None:
            proc.wait()
            exited.set()
            _wake(r_wake_w)

        threading.Thread(target=pump, daemon=True).start()
        threading.Thread(target=waiter, daemon=True).start()
        os.read(r_wake, 1)  # (blocks until a thread wakes it: no select, whose fds end at 1024)
        os.close(r_wake)
        os.close(r_wake_w)
        if detached.is_set() and not exited.is_set():
            _kill_exec(proc)
            for t in readers:
                t.join()
            return DETACHED
    code = proc.wait()
    for t in readers:
        t.join()
    return code


def _wake(fd: int) -> None:
    try:
        os.write(fd, b"x")
    except OSError:
        pass


def set_winsize(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import termios

    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except OSError:
        pass


def _relay_pty(proc: subprocess.Popen, master: int, conn: socket.socket, stdin: bool, framed: bool = False,
               matcher: DetachMatcher | None = None) -> int:
    stop = threading.Event()
    wake_r, wake_w = os.pipe()  # the client detached

    def pump() -> None:
        while not stop.is_set():
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            if stdin:
                gone = False
                if matcher is not None:
                    data, gone = matcher.feed(data)
                try:
                    if data:
                        os.write(master, data)
                except OSError:
                    return
                if gone:
                    _wake(wake_w)
                    return

    threading.Thread(target=pump, daemon=True).start()
    # woken by output or by the exec's exit (its pidfd), never by a timer: once it has exited,
    # what it wrote is in the pty's buffer already and is drained without waiting
    try:
        exited = os.pidfd_open(proc.pid)
    except OSError:
        exited = -1
    gone = False
    detached = False
    try:
        while True:
            wait = [master, wake_r] + ([exited] if exited >= 0 and not gone else [])
            poller = select.poll()  # (not select: a daemon's fds go past 1024 at 1,000 containers)
            for fd in wait:
                poller.register(fd, select.POLLIN)
            r = [fd for fd, _ in poller.poll(0 if gone else None)]  # readable, hung up or in error
            if wake_r in r and not gone:
                detached = True
                break
            if exited in r:
                gone = True
                continue
            if not r:
                break  # exited, and nothing left to read
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""  # EIO: the exec's side of the pty is closed
            if not data:
                break
            try:
                conn.sendall(_frame(1, data) if framed else data)
            except OSError:
                pass
    finally:
        if exited >= 0:
            os.close(exited)
        os.close(wake_r)
        os.close(wake_w)
    stop.set()
    if detached:
        _kill_exec(proc)
        os.close(master)
        return DETACHED
    code = proc.wait()
    os.close(master)
    return code
