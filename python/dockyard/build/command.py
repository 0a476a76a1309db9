"""``dockyard build`` as a plain function, and a click-free argument parser for it.

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
    params: dict = {"tags": [], "build_args": [], "labels": [], "file": None, "target": "", "no_cache": False,
                    "quiet": False, "iidfile": None, "progress": "auto", "network": "none", "context": None}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "-" or not arg.startswith("-"):
            if params["context"] is not None:
                return None
            params["context"] = arg
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if not arg.startswith("--") and len(arg) > 2:  # -tname, -qt...: leave to click
            return None
        spec = _FLAGS.get(name)
        if spec is None:
            return None
        key, takes, repeat = spec
        if takes:
            if not eq:
                if i >= len(argv):
                    return None
                value = argv[i]
                i += 1
            if repeat:
                params[key].append(value)
            else:
                params[key] = value
        elif eq:
            return None
        else:
            params[key] = True
    if params["context"] is None or params["progress"] not in PROGRESS:
        return None
    return params


def fast_build(session, argv: list[str]) -> int | None:  # noqa: ANN001
    params = parse_build_args(argv)
    if params is None:
        return None
    run_build(session, params["context"], params["tags"], params["file"], params["build_args"], params["target"],
              params["no_cache"], params["labels"], params["quiet"], params["iidfile"], params["progress"],
              params["network"])
    return 0


def run_build(session, context_path: str, tags: list[str], file: str | None, build_args: list[str],  # noqa: ANN001
              target: str, no_cache: bool, labels: list[str], quiet: bool, iidfile: str | None, progress: str,
              network: str) -> str:
    """Build; progress on stdout (only the ID with ``quiet``); returns the image ID."""
    import signal

    from .. import reference as refs
    from ..errors import InvalidArgument, InvalidReference
    from .builder import BuildOptions, Builder

    quiet = quiet or progress == "quiet"
    norm_tags = []
    for t in tags:
        try:
            norm_tags.append(str(refs.parse_repository_tag(t).with_default_tag()))
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
    engine = session.engine
    out = sys.stdout

    def term(signum, frame):  # noqa: ANN001
        raise KeyboardInterrupt

    def emit(line: str) -> None:
        if not quiet:
            out.write(line + "\n")
            out.flush()

    old = signal.signal(signal.SIGTERM, term)
    try:
        with engine.store.staging() as stage:
            ctx_dir, dockerfile, name = read_context(context_path, file, stage)
            opts = BuildOptions(ctx_dir, dockerfile, name, norm_tags, args, target, no_cache, label_map,
                                network, context_is_archive=context_path == "-")
            image_id = Builder(engine, opts, emit).build()
    finally:
        signal.signal(signal.SIGTERM, old)
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(image_id)
    if quiet:
        out.write(image_id + "\n")
    else:
        out.write(f"Successfully built {image_id.split(':', 1)[1][:12]}\n")
        for t in tags:
            out.write(f"Successfully tagged {refs.parse_repository_tag(t).with_default_tag().familiar()}\n")
    out.flush()
    return image_id


def read_context(path: str, file: str | None, stage) -> tuple:  # noqa: ANN001
    """(context dir or None, Dockerfile bytes, Dockerfile name) for PATH, ``-`` and ``-f``."""
    from pathlib import Path

    from .errors import BuildError

    if path == "-":
        data = sys.stdin.buffer.read()
        if _is_tar(data):
            ctx = stage / "context"
            ctx.mkdir()
            archive = stage / "context.tar"
            archive.write_bytes(data)
            from .. import _native

            _native.extract(str(archive), str(ctx), whiteouts="apply")
            archive.unlink()
            name = file or "Dockerfile"
            try:
                dockerfile = (ctx / name).read_bytes()
            except OSError:
                raise BuildError(f"unable to prepare context: Cannot locate specified Dockerfile: {name}") from None
            return ctx, dockerfile, name
        if file:
            raise BuildError("unable to prepare context: the Dockerfile is on stdin; -f cannot be used")
        return None, data, "Dockerfile"
    ctx = Path(path)
    if not ctx.is_dir():
        raise BuildError(f'unable to prepare context: path "{path}" not found')
    if file == "-":
        return ctx, sys.stdin.buffer.read(), "Dockerfile"
    df_path = Path(file) if file else ctx / "Dockerfile"
    try:
        dockerfile = df_path.read_bytes()
    except OSError:
        raise BuildError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                         f"lstat {df_path.absolute()}: no such file or directory" if not file else
                         f"unable to prepare context: Cannot locate specified Dockerfile: {file}") from None
    try:
        name = str(df_path.resolve().relative_to(ctx.resolve()))
    except ValueError:
        name = df_path.name
    return ctx, dockerfile, name


def _is_tar(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b" or data[:4] == b"\x28\xb5\x2f\xfd":
        return True
    return len(data) >= 262 and data[257:262] == b"ustar"


def main(argv: list[str] | None = None) -> int:
    """A click-free ``dockyard build`` entry point (``python -m dockyard.build.command ARGS``),
    with the CLI's error handling: one line on stderr and Docker's exit codes."""
    from ..errors import DockyardError

    argv = sys.argv[1:] if argv is None else argv

    class _Session:
        def __init__(self) -> None:
            self._engine = None

        @property
        def engine(self):  # noqa: ANN201
            if self._engine is None:
                from ..engine import Engine

                self._engine = Engine(None)
            return self._engine

    session = _Session()
    try:
        code = fast_build(session, argv)
        if code is None:
            from ..cli import main as cli_main

            return cli_main(["build", *argv])
        return code
    except DockyardError as exc:
        sys.stderr.write((str(exc) if exc.client_side else f"Error response from daemon: {exc}") + "\n")
        return getattr(exc, "cli_exit", None) or 1
    except KeyboardInterrupt:
        return 130
    finally:
        if session._engine is not None:
            session._engine.close()


if __name__ == "__main__":
    sys.exit(main())
