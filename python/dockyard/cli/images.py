"""Image commands: images, import, load, save, tag, rmi, history, inspect, image prune."""

from __future__ import annotations

import sys

import click

from . import CONTEXT, pass_session
from .output import echo, fail_if, print_inspect, print_rows, short_id, since

IMAGE_HEADERS = {
    "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
    "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
    "VirtualSize": "VIRTUAL SIZE",
}
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_TABLE_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


def image_rows(summaries: list[dict], no_trunc: bool, digests: bool) -> list[dict]:
    """One row per repository:tag as ``docker images`` shows them (``<none>`` when untagged)."""
    from ..units import human_size
    from .output import go_time

    rows = []
    for s in summaries:
        base = {
            "ID": short_id(s["Id"], no_trunc),
            "CreatedSince": since(s["Created"]),
            "CreatedAt": go_time(s["Created"]),
            "Size": human_size(s["Size"], 3),
            "VirtualSize": human_size(s["Size"]),
            "SharedSize": "N/A",
            "UniqueSize": "N/A",
            "Containers": str(s["Containers"]) if s.get("Containers", -1) >= 0 else "N/A",
        }
        by_repo: dict[str, list[str]] = {}
        for d in s["RepoDigests"]:
            repo, _, digest = d.rpartition("@")
            by_repo.setdefault(repo, []).append(digest)
        seen_repos = set()
        for tag in s["RepoTags"]:
            repo, _, t = tag.rpartition(":")
            seen_repos.add(repo)
            ds = by_repo.get(repo) or ["<none>"]
            rows.append(dict(base, Repository=repo, Tag=t, Digest=ds[0]))
        for repo, ds in by_repo.items():
            if repo not in seen_repos:
                for d in ds:
                    rows.append(dict(base, Repository=repo, Tag="<none>", Digest=d))
        if not s["RepoTags"] and not s["RepoDigests"]:
            rows.append(dict(base, Repository="<none>", Tag="<none>", Digest="<none>"))
    return rows


def _list(session, repository: str | None, quiet: bool, all_: bool, digests: bool,
          no_trunc: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    from ..engine.filters import IMAGE_KEYS, parse_filters

    parsed = parse_filters(filters, IMAGE_KEYS)
    if repository:
        parsed.setdefault("reference", []).append(repository)
    summaries = session.engine.images.summaries(all_=all_, filters=parsed)
    rows = image_rows(summaries, no_trunc, digests)
    if digests and not fmt:
        fmt = IMAGES_TABLE_DIGESTS
    print_rows(rows, fmt, IMAGES_TABLE, IMAGE_HEADERS, quiet_field="ID", quiet=quiet)


def list_options(f):  # noqa: ANN001, ANN201
    for deco in reversed([
        click.argument("repository", required=False),
        click.option("-q", "--quiet", is_flag=True, help="Only show image IDs"),
        click.option("-a", "--all", "all_", is_flag=True, help="Show all images (default hides intermediate images)"),
        click.option("--digests", is_flag=True, help="Show digests"),
        click.option("--no-trunc", is_flag=True, help="Don't truncate output"),
        click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided"),
        click.option("--format", "fmt", help="Format output using a custom template"),
    ]):
        f = deco(f)
    return f


@click.command("images", context_settings=CONTEXT)
@list_options
@pass_session
def images(session, repository, quiet, all_, digests, no_trunc, filters, fmt):  # noqa: ANN001
    """List images."""
    _list(session, repository, quiet, all_, digests, no_trunc, filters, fmt)


@click.command("ls", context_settings=CONTEXT)
@list_options
@pass_session
def image_ls(session, repository, quiet, all_, digests, no_trunc, filters, fmt):  # noqa: ANN001
    """List images."""
    _list(session, repository, quiet, all_, digests, no_trunc, filters, fmt)


@click.command("import", context_settings=CONTEXT)
@click.argument("source")
@click.argument("reference", required=False)
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", help="Set commit message for imported image")
@click.option("--platform", default=None, help="Set platform if server is multi-platform capable")
@pass_session
def import_(session, source, reference, changes, message, platform):  # noqa: ANN001
    """Import the contents from a tarball to create a filesystem image."""
    if source.startswith(("http://", "https://")):
        from ..errors import InvalidArgument

        raise InvalidArgument("importing from a URL is not supported; download the file and import it")
    src = sys.stdin.buffer if source == "-" else source
    image_id = session.engine.import_image(src, reference, list(changes), message, platform)
    echo(image_id + "\n")


@click.command("load", context_settings=CONTEXT)
@click.option("-i", "--input", "input_", default=None, help="Read from tar archive file, instead of STDIN")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
@click.option("--platform", multiple=True, help="Load only the given platform(s)")
@pass_session
def load(session, input_, quiet, platform):  # noqa: ANN001
    """Load an image from a tar archive or STDIN."""
    if input_ is None and sys.stdin.isatty():
        from ..errors import InvalidArgument

        raise InvalidArgument("requested load from stdin, but stdin is empty")
    lines = session.engine.load(input_ if input_ else sys.stdin.buffer)
    if not quiet:
        echo("".join(line + "\n" for line in lines))


@click.command("save", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT")
@click.option("--format", "fmt", default="docker-archive", type=click.Choice(["docker-archive", "oci-archive"]),
              help="Archive format (docker-archive or oci-archive)")
@click.option("--platform", multiple=True, help="Save only the given platform(s)")
@pass_session
def save(session, names, output, fmt, platform):  # noqa: ANN001
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    import os

    from ..errors import InvalidArgument

    engine = session.engine
    for name in names:
        engine.images.resolve(name)  # fail before writing anything
    if output is None:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        engine.save(list(names), sys.stdout.buffer, fmt)
        sys.stdout.buffer.flush()
        return
    tmp = f"{output}.dockyard-{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            engine.save(list(names), f, fmt)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@click.command("tag", context_settings=CONTEXT)
@click.argument("source")
@click.argument("target")
@pass_session
def tag(session, source, target):  # noqa: ANN001
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    session.engine.images.tag(source, target)


@click.command("rmi", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@pass_session
def rmi(session, names, force, no_prune):  # noqa: ANN001
    """Remove one or more images."""
    from ..errors import DockyardError

    errors = []
    for name in names:
        try:
            items = session.engine.images.remove(name, force=force, prune=not no_prune)
        except DockyardError as exc:
            errors.append(f"Error response from daemon: {exc}")
            continue
        echo("".join(f"{k}: {v}\n" for item in items for k, v in item.items()))
    fail_if(errors)


@click.command("history", context_settings=CONTEXT)
@click.argument("name")
@click.option("-H", "--human", default=True, type=bool, help="Print sizes and dates in human readable format")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("--format", "fmt", help="Format output using a custom template")
@pass_session
def history(session, name, human, no_trunc, quiet, fmt):  # noqa: ANN001
    """Show the history of an image."""
    from ..units import human_size
    from .output import go_time

    rows = []
    for h in session.engine.images.history(name):
        created_by = h["CreatedBy"].replace("\t", " ")
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append({
            "ID": h["Id"] if h["Id"] == "<missing>" else short_id(h["Id"], no_trunc),
            "CreatedSince": since(h["Created"]) if human else go_time(h["Created"]),
            "CreatedAt": go_time(h["Created"]),
            "CreatedBy": created_by,
            "Size": human_size(h["Size"], 3) if human else str(h["Size"]),
            "Comment": h["Comment"],
        })
    headers = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
               "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
    default = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    print_rows(rows, fmt, default, headers, quiet_field="ID", quiet=quiet)


def _inspect(session, names, fmt, kinds=("image",)):  # noqa: ANN001
    from ..errors import DockyardError, NotFound

    engine = session.engine
    getters = {"container": lambda n: engine.containers.inspect(n), "image": engine.images.inspect}
    found, errors = [], []
    for name in names:
        for i, kind in enumerate(kinds):
            try:
                found.append(getters[kind](name))
                break
            except NotFound as exc:
                if i == len(kinds) - 1:
                    msg = f"No such object: {name}" if len(kinds) > 1 else str(exc)
                    errors.append(f"Error: {msg}" if len(kinds) > 1 else f"Error response from daemon: {msg}")
            except DockyardError as exc:
                errors.append(str(exc) if exc.client_side else f"Error response from daemon: {exc}")
                break
    print_inspect(found, fmt)
    fail_if(errors)


@click.command("inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format output using a custom template")
@click.option("--type", "type_", default=None, type=click.Choice(["container", "image"]),
              help="Return JSON for specified type")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container")
@pass_session
def inspect(session, names, fmt, type_, size):  # noqa: ANN001
    """Return low-level information on dockyard objects."""
    _inspect(session, names, fmt, (type_,) if type_ else ("container", "image"))


@click.command("inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format output using a custom template")
@pass_session
def image_inspect(session, names, fmt):  # noqa: ANN001
    """Display detailed information on one or more images."""
    _inspect(session, names, fmt)


@click.command("prune", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help='Provide filter values (e.g. "until=<timestamp>")')
@pass_session
def image_prune(session, all_, force, filters):  # noqa: ANN001
    """Remove unused images."""
    from ..engine.filters import parse_filters
    from ..units import human_size
    from .output import confirm

    parsed = parse_filters(filters, ("until", "label"))
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if all_ else "WARNING! This will remove all dangling images.")
    if not confirm(warning + "\nAre you sure you want to continue?", force):
        return
    report = session.engine.images.prune(all_=all_, filters=parsed)
    out = []
    if report["ImagesDeleted"]:
        out.append("Deleted Images:")
        for item in report["ImagesDeleted"]:
            for k, v in item.items():
                out.append(f"{k.lower()}: {v}")
        out.append("")
    out.append(f"Total reclaimed space: {human_size(report['SpaceReclaimed'])}")
    echo("\n".join(out) + "\n")


@click.group("image", context_settings=CONTEXT)
def image_group() -> None:
    """Manage images."""


for _name, _cmd in (("ls", image_ls), ("list", image_ls), ("import", import_), ("load", load), ("save", save),
                    ("tag", tag), ("rm", rmi), ("remove", rmi), ("history", history),
                    ("inspect", image_inspect), ("prune", image_prune)):
    image_group.add_command(_cmd, _name)
