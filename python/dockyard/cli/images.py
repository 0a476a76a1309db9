"""Image commands: images, import, load, save, tag, rmi, history, inspect, image prune.

Each is a request to the daemon (``session.api``), rendered as docker's CLI renders it;
archives (import, load, save) stream through without being held in memory.
"""

from __future__ import annotations

import sys

import click

from . import CONTEXT, pass_session
from .listing import list_images
from .output import (
    check_reference, copy_body, echo, fail_if, messages, print_inspect, print_rows, short_id, since, stream_error,
)

def list_options(f):
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
def images(session, repository, quiet, all_, digests, no_trunc, filters, fmt):
    """List images."""
    list_images(session, repository, quiet, all_, digests, no_trunc, filters, fmt)


@click.command("ls", context_settings=CONTEXT)
@list_options
@pass_session
def image_ls(session, repository, quiet, all_, digests, no_trunc, filters, fmt):
    """List images."""
    list_images(session, repository, quiet, all_, digests, no_trunc, filters, fmt)


@click.command("import", context_settings=CONTEXT)
@click.argument("source")
@click.argument("reference", required=False)
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", help="Set commit message for imported image")
@click.option("--platform", default=None, help="Set platform if server is multi-platform capable")
@pass_session
def import_(session, source, reference, changes, message, platform):
    """Import the contents from a tarball to create a filesystem image."""
    from .fast import run_import

    run_import(session, source, reference, list(changes), message, platform)


@click.command("load", context_settings=CONTEXT)
@click.option("-i", "--input", "input_", default=None, help="Read from tar archive file, instead of STDIN")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
@click.option("--platform", multiple=True, help="Load only the given platform(s)")
@pass_session
def load(session, input_, quiet, platform):
    """Load an image from a tar archive or STDIN."""
    if input_ is None and sys.stdin.isatty():
        from ..errors import InvalidArgument

        raise InvalidArgument("requested load from stdin, but stdin is empty")
    src = open(input_, "rb") if input_ else sys.stdin.buffer
    try:
        resp = session.api.request("POST", "/images/load", {"quiet": quiet or None},
                                   headers={"Content-Type": "application/x-tar"}, stream=True, timeout=None,
                                   body_fd=src.fileno())
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    for msg in messages(session.api, resp):
        err = stream_error(msg)
        if err is not None:
            raise err
        if not quiet and msg.get("stream"):
            echo(msg["stream"])


@click.command("save", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT")
@click.option("--format", "fmt", default="docker-archive", type=click.Choice(["docker-archive", "oci-archive"]),
              help="Archive format (docker-archive or oci-archive)")
@click.option("--platform", multiple=True, help="Save only the given platform(s)")
@pass_session
def save(session, names, output, fmt, platform):
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    import os

    from ..errors import DockyardError, InvalidArgument

    if output is None and sys.stdout.isatty():
        raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    # the daemon answers 404 for a missing name before it sends anything
    params = {"names": list(names), "format": fmt if fmt != "docker-archive" else None}
    resp = session.api.request("GET", "/images/get", params, stream=True, timeout=None)
    if output is None:
        copy_body(session.api, resp, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    tmp = f"{output}.dockyard-{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            copy_body(session.api, resp, f)
        if not resp.done:
            raise DockyardError("the daemon ended the archive early")
        os.replace(tmp, output)
    finally:
        session.api.finish(resp)
        if os.path.exists(tmp):
            os.unlink(tmp)


@click.command("tag", context_settings=CONTEXT)
@click.argument("source")
@click.argument("target")
@pass_session
def tag(session, source, target):
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    from .. import reference as refs

    check_reference(target)
    ref = refs.parse_repository_tag(target)
    session.api.json("POST", f"/images/{_quote(source)}/tag", {"repo": ref.name, "tag": ref.tag})


def _quote(name: str) -> str:
    from ..client import quote

    return quote(name, safe="/:@")


@click.command("rmi", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@pass_session
def rmi(session, names, force, no_prune):
    """Remove one or more images."""
    from ..errors import DockyardError

    errors = []
    for name in names:
        try:
            items = session.api.json("DELETE", f"/images/{_quote(name)}",
                                     {"force": force or None, "noprune": no_prune or None}) or []
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
def history(session, name, human, no_trunc, quiet, fmt):
    """Show the history of an image."""
    from ..units import human_size
    from .output import go_time

    rows = []
    for h in session.api.json("GET", f"/images/{_quote(name)}/history") or []:
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


# docker inspect's order without --type (the swarm kinds aside)
INSPECT_KINDS = ("container", "image", "network", "volume")


# The docker CLI (25+) decodes an image's Config into the OCI image config with Docker's
# extensions (dockerspec.DockerOCIImageConfig) before a template sees it: these fields, in this
# order, each left out when empty.  Without --format it prints the daemon's JSON as it came.
_OCI_CONFIG_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                      "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell")


def _image_as_the_cli_reads_it(obj: dict) -> dict:
    from ..template import Struct

    cfg = obj.get("Config")
    if not isinstance(cfg, dict):
        return obj
    return dict(obj, Config=Struct((k, cfg[k]) for k in _OCI_CONFIG_FIELDS if cfg.get(k)))


def _inspect(session, names, fmt, kinds=("image",), size=False):
    from ..client import quote
    from ..errors import DockyardError, NotFound

    def path(kind: str, name: str) -> tuple[str, dict | None]:
        if kind == "container":
            return f"/containers/{quote(name, safe='')}/json", {"size": size or None}
        if kind == "image":
            return f"/images/{_quote(name)}/json", None
        return f"/{kind}s/{quote(name, safe='')}", None

    found, errors = [], []
    for name in names:
        for i, kind in enumerate(kinds):
            try:
                obj = session.api.json("GET", *path(kind, name))
                found.append(_image_as_the_cli_reads_it(obj) if kind == "image" and fmt else obj)
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
@click.option("--type", "type_", default=None, type=click.Choice(list(INSPECT_KINDS)),
              help="Return JSON for specified type")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container")
@pass_session
def inspect(session, names, fmt, type_, size):
    """Return low-level information on dockyard objects."""
    _inspect(session, names, fmt, (type_,) if type_ else INSPECT_KINDS, size)


@click.command("inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format output using a custom template")
@pass_session
def image_inspect(session, names, fmt):
    """Display detailed information on one or more images."""
    _inspect(session, names, fmt)


@click.command("prune", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help='Provide filter values (e.g. "until=<timestamp>")')
@pass_session
def image_prune(session, all_, force, filters):
    """Remove unused images."""
    from ..units import human_size
    from .output import confirm, parse_filters

    parsed = parse_filters(filters)
    if all_:
        parsed["dangling"] = ["false"]
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if all_ else "WARNING! This will remove all dangling images.")
    if not confirm(warning + "\nAre you sure you want to continue?", force):
        return
    report = session.api.json("POST", "/images/prune", {"filters": parsed or None}, timeout=None) or {}
    out = []
    if report.get("ImagesDeleted"):
        out.append("Deleted Images:")
        for item in report["ImagesDeleted"]:
            for k, v in item.items():
                out.append(f"{k.lower()}: {v}")
        out.append("")
    out.append(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}")
    echo("\n".join(out) + "\n")


@click.group("image", context_settings=CONTEXT)
def image_group() -> None:
    """Manage images."""


for _name, _cmd in (("ls", image_ls), ("list", image_ls), ("import", import_), ("load", load), ("save", save),
                    ("tag", tag), ("rm", rmi), ("remove", rmi), ("history", history),
                    ("inspect", image_inspect), ("prune", image_prune)):
    image_group.add_command(_cmd, _name)
