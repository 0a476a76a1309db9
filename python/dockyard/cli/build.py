"""``dockyard build``: build an image from a Dockerfile."""

from __future__ import annotations

import os
import sys

import click

from . import CONTEXT, pass_session


@click.command("build", context_settings=CONTEXT)
@click.argument("context_path", metavar="PATH | -")
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag in the 'name:tag' format")
@click.option("-f", "--file", "file", default=None, help="Name of the Dockerfile (Default is 'PATH/Dockerfile')")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables")
@click.option("--target", default="", help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success")
@click.option("--iidfile", default=None, help="Write the image ID to the file")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty", "quiet"]), default="auto",
              help="Set type of progress output")
@click.option("--platform", default=None, help="Set platform if server is multi-platform capable")
@click.option("--network", default="none", help="Set the networking mode for the RUN instructions during build")
@click.option("--rm/--no-rm", "rm", default=True, hidden=True)
@click.option("--force-rm", is_flag=True, hidden=True)
@click.option("--pull", is_flag=True, hidden=True)
@pass_session
def build(session, context_path, tags, file, build_args, target, no_cache, labels, quiet, iidfile,  # noqa: ANN001
          progress, platform, network, rm, force_rm, pull) -> None:
    """Build an image from a Dockerfile."""
    import signal

    from .. import reference as refs
    from ..build import BuildOptions, Builder
    from ..build.errors import BuildError
    from ..errors import InvalidArgument, InvalidReference

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

    def term(signum, frame):  # noqa: ANN001
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, term)
    out = sys.stdout

    def emit(line: str) -> None:
        if not quiet:
            out.write(line + "\n")
            out.flush()

    with engine.store.staging() as stage:
        ctx_dir, dockerfile, name = _read_context(context_path, file, stage)
        opts = BuildOptions(ctx_dir, dockerfile, name, norm_tags, args, target, no_cache, label_map,
                            network, context_is_archive=context_path == "-")
        try:
            image_id = Builder(engine, opts, emit).build()
        except BuildError:
            raise
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


def _read_context(path: str, file: str | None, stage) -> tuple:  # noqa: ANN001
    """(context dir or None, Dockerfile bytes, Dockerfile name) for PATH, ``-`` and ``-f``."""
    from pathlib import Path

    from ..build.errors import BuildError

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
        shown = file or "Dockerfile"
        raise BuildError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                         f"lstat {df_path.absolute()}: no such file or directory" if not file else
                         f"unable to prepare context: Cannot locate specified Dockerfile: {shown}") from None
    try:
        name = str(df_path.resolve().relative_to(ctx.resolve()))
    except ValueError:
        name = df_path.name
    return ctx, dockerfile, name


def _is_tar(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b" or data[:4] == b"\x28\xb5\x2f\xfd":
        return True
    return len(data) >= 262 and data[257:262] == b"ustar"
