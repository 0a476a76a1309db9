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
}
PROGRESS = ("auto", "plain", "tty", "quiet")


def parse_build_args(argv: list[str]) -> dict | None:
    """Docker's ``build`` flags; None for anything this parser does not handle."""
    from ..cli.fast import parse

    parsed = parse(argv, _FLAGS, {"tags": [], "build_args": [], "labels": [], "file": None, "target": "",
                                  "no_cache": False, "quiet": False, "iidfile": None, "progress": "auto",
                                  "network": "none"})
    if parsed is None or len(parsed[1]) != 1 or parsed[0]["progress"] not in PROGRESS:
        return None
    params, positional = parsed
    params["context"] = positional[0]
    return params


def fast_build(session, argv: list[str]) -> int | None:  # noqa: ANN001
    params = parse_build_args(argv)
    if params is None:
        return None
    run_build(session, params["context"], params["tags"], params["file"], params["build_args"], params["target"],
              params["no_cache"], params["labels"], params["quiet"], params["iidfile"], params["progress"],
              params["network"])
    return 0


def run_build(session, context_path: str, tags: list[str], file: str | None, build_args: list[str],  # noqa: ANN001, C901
              target: str, no_cache: bool, labels: list[str], quiet: bool, iidfile: str | None, progress: str,
              network: str) -> str:
    """Build through the daemon (``POST /build``, as the docker CLI's classic builder): the context
    goes as a tar made on the fly, the daemon's JSON output is printed as it comes (only the ID
    with ``quiet``); returns the image ID.  SIGTERM or Ctrl-C half-closes the connection, which
    cancels the build, and waits (a bounded time) for the daemon to finish cleaning up."""
    import signal

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
    body, name, packer = open_context(context_path, file)
    params = {"t": list(tags) or None, "dockerfile": name, "buildargs": args or None, "labels": label_map or None,
              "target": target or None, "nocache": no_cache or None, "q": quiet or None,
              "networkmode": network or None, "rm": True}
    state: dict = {"sock": None, "cancelled": False}

    def stop(signum, frame):  # noqa: ANN001
        sock = state["sock"]
        if sock is None or state["cancelled"]:
            raise KeyboardInterrupt
        state["cancelled"] = True
        _half_close(sock)

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    out = sys.stdout
    image_id = ""
    try:
        resp = session.api.request("POST", "/build", params, body, headers={"Content-Type": "application/x-tar"},
                                   stream=True, timeout=None)
        conn = getattr(resp, "_dockyard_conn", None)
        state["sock"] = getattr(conn, "sock", None)
        if packer is not None:
            packer.check()
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
        if packer is not None:
            packer.join()
    if state["cancelled"]:
        raise KeyboardInterrupt
    if packer is not None:
        packer.check()
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


def _half_close(sock) -> None:  # noqa: ANN001
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
    """(body, Dockerfile name in it, packer or None) for PATH, ``-`` and ``-f``, as docker's CLI
    sends them: a directory as a tar made on the fly (``.dockerignore`` applied, the Dockerfile and
    ``.dockerignore`` always sent), a tar on stdin as it is, a Dockerfile on stdin alone."""
    from pathlib import Path

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
            return body, file or "Dockerfile", None
        if file:
            raise BuildError("unable to prepare context: the Dockerfile is on stdin; -f cannot be used")
        return body, "Dockerfile", None
    ctx = Path(path)
    if not ctx.is_dir():
        raise BuildError(f'unable to prepare context: path "{path}" not found')
    extra = None  # a Dockerfile from elsewhere (stdin, outside the context): added under a random name
    if file == "-":
        extra = sys.stdin.buffer.read()
        name = ""
    else:
        df_path = Path(file) if file else ctx / "Dockerfile"
        if not df_path.is_file():
            raise BuildError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                             f"lstat {df_path.absolute()}: no such file or directory" if not file else
                             f"unable to prepare context: Cannot locate specified Dockerfile: {file}")
        try:
            name = df_path.resolve().relative_to(ctx.resolve()).as_posix()
        except ValueError:
            extra = df_path.read_bytes()
            name = ""
    if extra is not None:
        name = ".dockerfile." + os.urandom(10).hex()
    packer = _Packer(ctx, name, extra)
    return packer.reader, name, packer


class _Prefixed:
    """A stream with bytes already read in front of it."""

    def __init__(self, head: bytes, rest) -> None:  # noqa: ANN001
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


class _Packer:
    """The context directory as a tar, written by a thread into a pipe the request reads: the
    context streams to the daemon, never whole in memory or on disk.  Owners are root and mtimes
    whole seconds, as the docker CLI sends them."""

    def __init__(self, ctx, dockerfile: str, extra: bytes | None) -> None:  # noqa: ANN001
        import threading

        from .context import Context, Ignore

        ignore = Ignore.read(ctx)
        ignore.keep(".dockerignore", *([dockerfile] if extra is None else []))
        self.ctx = ctx
        self.names = Context(ctx, ignore).walk("")
        self.dockerfile = dockerfile
        self.extra = extra
        self.error: BaseException | None = None
        r, w = os.pipe()
        self.reader = os.fdopen(r, "rb")
        self.thread = threading.Thread(target=self._run, args=(w,), daemon=True)
        self.thread.start()

    def _run(self, w: int) -> None:
        import io
        import tarfile
        import time

        with os.fdopen(w, "wb") as f:
            try:
                with tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tf:
                    ignore_text = None
                    for rel in self.names:
                        if rel == ".dockerignore" and self.extra is not None:
                            ignore_text = (self.ctx / rel).read_bytes()
                            continue
                        info = tf.gettarinfo(str(self.ctx / rel), arcname=rel)
                        if info is None:  # a socket: docker's CLI leaves it out too
                            continue
                        info.uid = info.gid = 0
                        info.uname = info.gname = ""
                        info.mtime = int(info.mtime)
                        if info.isreg():
                            with open(self.ctx / rel, "rb") as src:
                                tf.addfile(info, src)
                        else:
                            tf.addfile(info)
                    if self.extra is not None:
                        now = int(time.time())
                        ignore_text = (ignore_text or b"") + f"\n{self.dockerfile}\n".encode()
                        for member, data in ((self.dockerfile, self.extra), (".dockerignore", ignore_text)):
                            info = tarfile.TarInfo(member)
                            info.size, info.mode, info.mtime = len(data), 0o600, now
                            tf.addfile(info, io.BytesIO(data))
            except BrokenPipeError:
                pass  # the request stopped reading (the daemon refused it): its error says why
            except BaseException as exc:  # noqa: BLE001
                self.error = exc
                try:
                    f.write(b"\xff" * 1024)  # no valid tar any more: the daemon refuses the context
                except OSError:
                    pass

    def join(self) -> None:
        self.thread.join()

    def check(self) -> None:
        """Raise what stopped the packing (an unreadable file...), as docker's CLI reports it."""
        if self.error is not None:
            from .errors import BuildError

            exc = self.error
            self.error = None
            detail = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.filename else str(exc)
            raise BuildError(f"error checking context: {detail}")


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
