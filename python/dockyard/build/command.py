"""``dockyard build`` as a plain function (a client of the daemon), and a click-free argument parser.

The click command (``dockyard.cli.build``) is a thin wrapper over :func:`run_build`.
:func:`fast_build` parses Docker's flags itself, as ``cli.runner.fast_run`` does for ``run``: a
cached rebuild does almost nothing, so the CLI's start-up is most of its time, and click's
import is a large part of that.  ``cli/__init__.main`` can route ``build`` here the way it
routes ``run`` (``None`` means "let click handle these arguments": help, an unknown flag...).
"""

from __future__ import annotations

import os
import sys

# flag -> (key, takes a value, repeatable)
_FLAGS: dict[str, tuple[str, bool, bool]] = {
    "-t": ("tags", True, True), "--tag": ("tags", True, True),
    "-f": ("file", True, False), "--file": ("file", True, False),
    "--build-arg": ("build_args", True, True), "--target": ("target", True, False),
    "--no-cache": ("no_cache", False, False), "--label": ("labels", True, True),
    "-q": ("quiet", False, False), "--quiet": ("quiet", False, False),
    "--iidfile": ("iidfile", True, False), "--progress": ("progress", True, False),
    "--platform": ("platform", True, False), "--network": ("network", True, False),
    "--rm": ("rm", False, False), "--no-rm": ("no_rm", False, False), "--force-rm": ("force_rm", False, False),
    "--pull": ("pull", False, False),
    "--shm-size": ("shm_size", True, False), "-m": ("memory", True, False), "--memory": ("memory", True, False),
    "--ulimit": ("ulimits", True, True),
}
PROGRESS = ("auto", "plain", "tty", "quiet")


def parse_build_args(argv: list[str]) -> dict | None:
    """Docker's ``build`` flags; None for anything this parser does not handle."""
    from ..cli.fast import parse

    parsed = parse(argv, _FLAGS, {"tags": [], "build_args": [], "labels": [], "file": None, "target": "",
                                  "no_cache": False, "quiet": False, "iidfile": None, "progress": "auto",
                                  "network": "none", "shm_size": None, "memory": None, "ulimits": []})
    if parsed is None or len(parsed[1]) != 1 or parsed[0]["progress"] not in PROGRESS:
        return None
    params, positional = parsed
    params["context"] = positional[0]
    return params


def fast_build(session, argv: list[str]) -> int | None:
    params = parse_build_args(argv)
    if params is None:
        return None
    run_build(session, params["context"], params["tags"], params["file"], params["build_args"], params["target"],
              params["no_cache"], params["labels"], params["quiet"], params["iidfile"], params["progress"],
              params["network"], pull=bool(params.get("pull")),
              limits=limit_params(params["shm_size"], params["memory"], params["ulimits"]))
    return 0


def limit_params(shm_size: str | None, memory: str | None, ulimits: list[str]) -> dict:
    """``--shm-size``, ``--memory`` and ``--ulimit`` as the docker CLI sends them to ``/build``
    (``shmsize``, ``memory``, ``ulimits``), checked as it checks them."""
    import json

    from ..cli.output import client_error as _client_error
    from ..errors import InvalidArgument
    from ..units import parse_size

    def client_error(message: str) -> InvalidArgument:
        exc = _client_error(message)
        exc.cli_exit = 125  # (a flag the docker CLI cannot parse: 125, as for run)
        return exc

    out: dict = {}
    for flag, key, value in (("shm-size", "shmsize", shm_size), ("memory", "memory", memory)):
        if value:
            try:
                out[key] = parse_size(value)
            except InvalidArgument as exc:
                raise client_error(f'invalid argument "{value}" for "--{flag}" flag: {exc}') from None
    if ulimits:
        from ..engine.spec import parse_ulimit

        items = []
        for u in ulimits:
            try:
                parse_ulimit(u)
            except InvalidArgument as exc:
                raise client_error(f'invalid argument "{u}" for "--ulimit" flag: {exc}') from None
            name, _, limits = u.partition("=")
            soft, _, hard = limits.partition(":")
            items.append({"Name": name, "Hard": int(hard or soft), "Soft": int(soft)})
        out["ulimits"] = json.dumps(items)
    return out


def run_build(session, context_path: str, tags: list[str], file: str | None, build_args: list[str],
              target: str, no_cache: bool, labels: list[str], quiet: bool, iidfile: str | None, progress: str,
              network: str, pull: bool = False, limits: dict | None = None) -> str:
    """Build through the daemon (``POST /build``, as the docker CLI's classic builder): the context
    goes as a tar made on the fly, the daemon's JSON output is printed as it comes (only the ID
    with ``quiet``); returns the image ID.  SIGTERM or Ctrl-C half-closes the connection, which
    cancels the build, and waits (a bounded time) for the daemon to finish cleaning up."""
    import _signal as signal  # the C module: ``signal`` makes its enums first (~3 ms of start-up)

    from .. import reference as refs
    from ..cli.output import messages, stream_error
    from ..errors import DockyardError, InvalidArgument, InvalidReference

    quiet = quiet or progress == "quiet"
    for t in tags:
        try:
            refs.parse_repository_tag(t)
        except InvalidReference as exc:
            err = InvalidArgument(f'invalid argument "{t}" for "-t, --tag" flag: {exc}')
            err.client_side = True
            raise err from None
    args: dict[str, str | None] = {}
    for item in build_args:
        key, eq, value = item.partition("=")
        args[key] = value if eq else os.environ.get(key)
    label_map = {}
    for item in labels:
        key, _, value = item.partition("=")
        label_map[key] = value
    body, name = open_context(context_path, file)
    params = {"t": list(tags) or None, "dockerfile": name, "buildargs": args or None, "labels": label_map or None,
              "target": target or None, "nocache": no_cache or None, "q": quiet or None,
              "networkmode": network or None, "rm": True, "pull": pull or None, **(limits or {})}
    state: dict = {"sock": None, "cancelled": False}

    def stop(signum, frame):
        sock = state["sock"]
        if sock is None or state["cancelled"]:
            raise KeyboardInterrupt
        state["cancelled"] = True
        _half_close(sock)

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    out = sys.stdout
    image_id = ""
    try:
        try:
            resp = session.api.request("POST", "/build", params, body, headers={"Content-Type": "application/x-tar"},
                                       stream=True, timeout=None)
        except DockyardError:
            body.check()  # a context that could not be read: said first, as docker's CLI does
            raise
        conn = getattr(resp, "_dockyard_conn", None)
        state["sock"] = getattr(conn, "sock", None)
        try:
            body.check()
        except DockyardError:
            session.api.finish(resp)  # (closes the connection: the daemon stops what it began)
            raise
        for msg in messages(session.api, resp):
            if state["cancelled"]:
                continue  # draining: the daemon is unwinding the build
            err = stream_error(msg)
            if err is not None:
                raise err
            aux = msg.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
            text = msg.get("stream")
            if text and not quiet:
                out.write(text)
                out.flush()
    except OSError:
        if not state["cancelled"]:
            raise
    finally:
        state["sock"] = None
        for sig, handler in old.items():
            signal.signal(sig, handler)
        body.close()
    if state["cancelled"]:
        raise KeyboardInterrupt
    if not image_id:
        raise DockyardError("the daemon ended the build without an image ID")
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(image_id)
    if quiet:
        out.write(image_id + "\n")
        out.flush()
    return image_id


# How long a cancelled build may take to unwind in the daemon before the CLI stops waiting.
CANCEL_WAIT = 30.0


def _half_close(sock) -> None:
    """Tell the daemon we are gone (it cancels the build), keep reading until it has cleaned up;
    past CANCEL_WAIT, shut the connection down entirely."""
    import socket
    import threading

    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return

    def give_up() -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    timer = threading.Timer(CANCEL_WAIT, give_up)
    timer.daemon = True
    timer.start()


def open_context(path: str, file: str | None) -> tuple:
    """(body, Dockerfile name in it) for PATH, ``-`` and ``-f``, as docker's CLI sends them: a
    directory as a tar made as the request reads it (``.dockerignore`` applied, the Dockerfile
    and ``.dockerignore`` always sent), a tar on stdin as it is, a Dockerfile on stdin alone.
    The body's ``check()`` raises what kept a directory from being read, once it is sent."""
    from .errors import BuildError

    if path == "-":
        stdin = sys.stdin.buffer
        head = b""
        while len(head) < 512:
            chunk = stdin.read1(512 - len(head))
            if not chunk:
                break
            head += chunk
        body = _Prefixed(head, stdin)
        if _is_tar(head):
            return body, file or "Dockerfile"
        if file:
            raise BuildError("unable to prepare context: the Dockerfile is on stdin; -f cannot be used")
        return body, "Dockerfile"
    if not os.path.isdir(path):
        raise BuildError(f'unable to prepare context: path "{path}" not found')
    extra = None  # a Dockerfile from elsewhere (stdin, outside the context): added under a random name
    if file == "-":
        extra = sys.stdin.buffer.read()
        name = ""
    else:
        df_path = file or os.path.join(path, "Dockerfile")
        if not os.path.isfile(df_path):
            raise BuildError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                             f"lstat {os.path.abspath(df_path)}: no such file or directory" if not file else
                             f"unable to prepare context: Cannot locate specified Dockerfile: {file}")
        name = os.path.relpath(os.path.realpath(df_path), os.path.realpath(path))
        if name == ".." or name.startswith("../"):
            extra = _read(df_path)
    if extra is not None:
        name = ".dockerfile." + os.urandom(10).hex()
    return TarStream(path, name, extra), name


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class _Prefixed:
    """A stream with bytes already read in front of it."""

    def __init__(self, head: bytes, rest) -> None:
        self.head = head
        self.rest = rest

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out = self.head if n < 0 else self.head[:n]
            self.head = self.head[len(out):]
            return out
        return self.rest.read(n)

    def close(self) -> None:
        pass

    def check(self) -> None:
        pass


class TarStream:
    """The context directory as a tar (POSIX pax, as Go's archive/tar writes the docker CLI's),
    made member by member as the request reads it: no thread, no pipe, never whole in memory or
    on disk.  Owners are root and mtimes whole seconds, as the docker CLI sends them; a file
    linked more than once is sent once and then as hard links; sockets are left out.

    A file that cannot be read while packing ends the tar with bytes no tar has (the daemon
    refuses the context, and never builds from part of it); :meth:`check` then raises docker's
    one line for it (``error checking context: ...``)."""

    def __init__(self, ctx: str, dockerfile: str, extra: bytes | None) -> None:
        from .context import Ignore, walk

        ignore = Ignore.read(ctx)
        ignore.keep(".dockerignore", *([dockerfile] if extra is None else []))
        self.ctx = ctx
        self.names = walk(ctx, ignore, "")
        self.dockerfile = dockerfile
        self.extra = extra
        self._members = self._generate()
        self._buf = bytearray()
        self.error: OSError | None = None

    def read(self, n: int = -1) -> bytes:
        buf = self._buf
        while (n < 0 or len(buf) < n) and self._members is not None:
            try:
                buf += next(self._members)
            except StopIteration:
                self._members = None
            except OSError as exc:  # (an OSError out of read() would be taken for a broken connection)
                self._members = None
                self.error = exc
                buf += b"\xff" * 1024
        if n < 0 or n >= len(buf):
            out = bytes(buf)
            buf.clear()
        else:
            out = bytes(buf[:n])
            del buf[:n]
        return out

    def close(self) -> None:
        self._members = None

    def check(self) -> None:
        """Raise what stopped the packing (an unreadable file...), as docker's CLI reports it."""
        if self.error is not None:
            from .errors import BuildError

            exc, self.error = self.error, None
            detail = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
            raise BuildError(f"error checking context: {detail}")

    def _generate(self):
        import time

        inodes: dict[tuple[int, int], str] = {}
        ignore_text = None
        for rel in self.names:
            path = os.path.join(self.ctx, rel)
            if rel == ".dockerignore" and self.extra is not None:
                ignore_text = _read(path)
                continue
            st = os.lstat(path)
            mode = st.st_mode
            fmt = mode & 0o170000
            link = ""
            size = 0
            dev = None
            if fmt != 0o040000 and st.st_nlink > 1:  # a file met before under another name
                key = (st.st_dev, st.st_ino)
                link = inodes.setdefault(key, rel)
                if link != rel:
                    yield tar_header(rel, mode, 0, int(st.st_mtime), b"1", link)
                    continue
                link = ""
            if fmt == 0o100000:  # regular
                kind, size = b"0", st.st_size
            elif fmt == 0o040000:
                kind = b"5"
                rel += "/"
            elif fmt == 0o120000:
                kind, link = b"2", os.readlink(path)
            elif fmt in (0o020000, 0o060000):
                kind, dev = (b"3" if fmt == 0o020000 else b"4"), st.st_rdev
            elif fmt == 0o010000:
                kind = b"6"
            else:  # a socket: docker's CLI leaves it out too
                continue
            yield tar_header(rel, mode, size, int(st.st_mtime), kind, link, dev)
            if size:
                yield from _file_blocks(path, size)
        if self.extra is not None:
            now = int(time.time())
            ignore_text = (ignore_text or b"") + f"\n{self.dockerfile}\n".encode()
            for member, data in ((self.dockerfile, self.extra), (".dockerignore", ignore_text)):
                yield tar_header(member, 0o600, len(data), now, b"0")
                yield data + bytes(-len(data) % 512)
        yield bytes(1024)  # the end: two zero blocks


def _file_blocks(path: str, size: int):
    """A file's ``size`` bytes padded to whole blocks (it must not have shrunk meanwhile)."""
    with open(path, "rb") as f:
        left = size
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise OSError(5, "file changed size while it was sent", path)
            left -= len(chunk)
            yield chunk
    yield bytes(-size % 512)


def tar_header(name: str, mode: int, size: int, mtime: int, kind: bytes, link: str = "",
               dev: int | None = None) -> bytes:
    """One member's ustar header, after a pax header for what ustar cannot hold (a long or
    non-ASCII name or link target, a size or mtime out of range).  Owner 0:0, no user names."""
    bname, blink = os.fsencode(name), os.fsencode(link)
    pax: list[tuple[bytes, bytes]] = []
    if len(bname) > 100 or not bname.isascii():
        pax.append((b"path", bname))
    if len(blink) > 100 or not blink.isascii():
        pax.append((b"linkpath", blink))
    if not 0 <= size < 8 ** 11:
        pax.append((b"size", b"%d" % size))
        size = 0
    if not 0 <= mtime < 8 ** 11:
        pax.append((b"mtime", b"%d" % mtime))
        mtime = 0
    out = b""
    if pax:
        records = b""
        try:
            for _, value in pax:
                value.decode("utf-8")
        except UnicodeDecodeError:
            records += b"21 hdrcharset=BINARY\n"
        for key, value in pax:
            n = len(key) + len(value) + 3
            total = 0
            while total != n + len(str(total)):  # the length counts its own digits
                total = n + len(str(total))
            records += b"%d %s=%s\n" % (total, key, value)
        out = _ustar(b"././@PaxHeader", 0, len(records), 0, b"x", b"", None) + records + \
            bytes(-len(records) % 512)
    return out + _ustar(bname[:100], mode, size, mtime, kind, blink[:100], dev)


def _ustar(name: bytes, mode: int, size: int, mtime: int, kind: bytes, link: bytes, dev: int | None) -> bytes:
    if dev is not None:
        devs = b"%07o\0%07o\0" % (os.major(dev) & 0o7777777, os.minor(dev) & 0o7777777)
    else:
        devs = bytes(16)
    head = b"".join((
        name.ljust(100, b"\0"), b"%07o\0" % (mode & 0o7777), b"0000000\0", b"0000000\0",
        b"%011o\0" % size, b"%011o\0" % mtime, b"        ", kind, link.ljust(100, b"\0"),
        b"ustar\x0000", bytes(64), devs, bytes(167),
    ))
    return head[:148] + b"%06o\0 " % sum(head) + head[156:]


def _is_tar(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b" or data[:4] == b"\x28\xb5\x2f\xfd" or data[:3] == b"BZh" or data[:6] == b"\xfd7zXZ\x00":
        return True
    return len(data) >= 262 and data[257:262] == b"ustar"


def main(argv: list[str] | None = None) -> int:
    """A click-free ``dockyard build`` entry point (``python -m dockyard.build.command ARGS``),
    with the CLI's session (the daemon's client) and error handling: one line on stderr and
    Docker's exit codes."""
    from ..cli import Session, split_globals
    from ..errors import DockyardError

    session = Session()
    argv = split_globals(sys.argv[1:] if argv is None else list(argv), session)
    try:
        code = fast_build(session, argv)
        if code is None:
            session.close()
            from ..cli import main as cli_main

            return cli_main(["build", *argv])
        return code
    except DockyardError as exc:
        sys.stderr.write((str(exc) if exc.client_side else f"Error response from daemon: {exc}") + "\n")
        return getattr(exc, "cli_exit", None) or 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        sys.stderr.write(f"Error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "") + "\n")
        return 1
    finally:
        session.close()


if __name__ == "__main__":
    sys.exit(main())
