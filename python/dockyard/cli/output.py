"""Rendering shared by commands: Docker's JSON, tables and ``--format`` templates."""

from __future__ import annotations

import sys
import time

from .. import _wire

TYPE_CHECKING = False  # click, json and collections are imported where used: start-up
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


def go_json(obj: object, indent: int | None = None) -> str:
    """JSON as Go's encoding/json writes it: HTML characters escaped, UTF-8 kept."""
    import json

    if indent is None:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    else:
        text = json.dumps(obj, indent=indent, ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def echo(text: str) -> None:
    """Write text that already ends in a newline (or is empty)."""
    if text:
        sys.stdout.write(text)
    sys.stdout.flush()


def print_inspect(objs: list[object], fmt: str | None) -> None:
    """``inspect``: an indented JSON list, or one rendered template per object."""
    if fmt:
        from ..template import compile as compile_template

        tmpl = compile_template(fmt)
        echo("".join(tmpl.render(o) + "\n" for o in objs))
    else:
        echo(go_json(objs, indent=4) + "\n")


def print_rows(
    rows: list[Mapping[str, object]],
    fmt: str | None,
    default: str,
    headers: Mapping[str, str],
    quiet_field: str | None = None,
    quiet: bool = False,
) -> None:
    """A listing: ``-q`` prints one field; ``--format`` a template (``table`` or not), else the
    default table.  ``headers`` maps field names to Docker's column titles."""
    from .. import template

    if quiet and quiet_field:
        echo("".join(f"{r[quiet_field]}\n" for r in rows))
        return
    fmt = fmt or default
    if fmt == "json":
        fmt = "{{json .}}"
    if template.is_table(fmt):
        echo(template.format_table(fmt, rows, headers))
    else:
        echo(template.render_lines(fmt, rows))


def since(ts: float) -> str:
    from ..units import human_duration

    if ts <= 0:
        return "N/A"
    return human_duration(max(0.0, time.time() - ts)) + " ago"


def go_time(ts: float) -> str:
    """A timestamp as Go's time.Time.String() prints local time: ``2006-01-02 15:04:05 -0700 MST``."""
    lt = time.localtime(ts)
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", lt) + (time.strftime("%Z", lt) if lt.tm_zone not in ("UTC",) else "UTC")


def short_id(image_id: str, no_trunc: bool = False) -> str:
    if no_trunc:
        return image_id
    return image_id.split(":", 1)[-1][:12]


def confirm(prompt: str, force: bool) -> bool:
    if force:
        return True
    sys.stdout.write(prompt + " [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def multi(values: Iterable[str]) -> list[str]:
    return [v for v in values if v]


def fail_if(errors: list[str]) -> None:
    """Print per-object errors (after the successes), then exit 1 as docker does."""
    if errors:
        import click

        for message in errors:
            click.echo(message, err=True)
        raise click.exceptions.Exit(1)


def parse_filters(values: Iterable[str]) -> dict[str, list[str]]:
    """``--filter k=v`` flags as the API's ``filters`` (the daemon checks the keys, as dockerd)."""
    from ..errors import InvalidArgument

    out: dict[str, list[str]] = {}
    for value in values:
        key, eq, arg = value.partition("=")
        key = key.strip().lower()
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {value}")
        out.setdefault(key, []).append(arg)
    return out


def messages(api, resp):
    """The JSON messages of a streamed response (pull/push progress, build, load), one a line;
    the response is finished afterwards, also when the caller stops early."""
    from ..errors import DockyardError

    try:
        while line := resp.readline():
            if not line.strip():
                continue
            try:
                msg = _wire.loads(line)
            except ValueError:
                raise DockyardError(f"malformed message from the daemon: {line[:200]!r}") from None
            if isinstance(msg, dict):
                yield msg
    finally:
        api.finish(resp)


def stream_error(msg: Mapping) -> Exception | None:
    """The error a stream message carries, as docker's CLI reports it: the message alone (no
    "Error response from daemon:"), exiting with ``errorDetail.code`` when there is one."""
    detail = msg.get("errorDetail") or {}
    text = detail.get("message") or msg.get("error")
    if not text:
        return None
    from ..errors import DockyardError

    err = DockyardError(str(text))
    err.client_side = True
    code = detail.get("code")
    if isinstance(code, int) and code > 0:
        err.cli_exit = code  # type: ignore[attr-defined]
    return err


def client_error(message: str):
    """An error the CLI finds itself: printed bare, as docker's own (no "Error response from daemon")."""
    from ..errors import InvalidArgument

    exc = InvalidArgument(message)
    exc.client_side = True
    return exc


def copy_body(api, resp, out) -> None:
    """Copy a streamed (binary) response to ``out`` as it comes."""
    try:
        while chunk := resp.read1(1 << 16):
            out.write(chunk)
    finally:
        api.finish(resp)


def check_reference(name: str) -> None:
    """A target name, checked here as docker's CLI does before it asks the daemon."""
    from .. import reference as refs
    from ..errors import InvalidReference

    try:
        refs.parse_repository_tag(name)
    except InvalidReference as exc:
        err = InvalidReference(f'Error parsing reference: "{name}" is not a valid repository/tag: {exc}')
        err.client_side = True
        raise err from None
