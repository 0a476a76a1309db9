"""Click-free paths for the commands whose time is mostly the CLI's own start-up.

Importing click costs about 30 ms here, most of a ``dockyard run``.  For the commands in
:data:`FAST`, :func:`dockyard.cli.main` first tries a plain parser of Docker's flags; anything it
does not handle (``--help``, an unknown flag, a value glued to a short one, a missing value)
makes it return None and click takes over, so help and usage errors stay click's.  The click
commands call the same implementations, so both paths behave alike.
"""

from __future__ import annotations

# command -> (module, function(session, argv) -> exit code, or None for "let click parse it")
FAST: dict[str, tuple[str, str]] = {
    "run": ("dockyard.cli.runner", "fast_run"),
    "build": ("dockyard.build.command", "fast_build"),
    "import": ("dockyard.cli.fast", "fast_import"),
    "ps": ("dockyard.cli.fast", "fast_ps"),
    "images": ("dockyard.cli.fast", "fast_images"),
}

# flag -> (key, takes a value, repeatable)
Flags = dict[str, tuple[str, bool, bool]]


def parse(argv: list[str], flags: Flags, defaults: dict) -> tuple[dict, list[str]] | None:
    """Docker-style flags (``-c X``, ``--change X``, ``--change=X``) and positional arguments,
    in any order; None when something is unusual."""
    params = {k: (list(v) if isinstance(v, list) else v) for k, v in defaults.items()}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional += argv[i:]
            break
        if arg == "-" or not arg.startswith("-"):
            positional.append(arg)
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if not arg.startswith("--") and len(arg) > 2:
            # -aq: several switches; anything else (-cX, -n3) is click's job
            specs = [flags.get(f"-{c}") for c in arg[1:]]
            if not all(sp is not None and not sp[1] for sp in specs):
                return None
            for sp in specs:
                params[sp[0]] = True  # type: ignore[index]
            continue
        spec = flags.get(name)
        if spec is None:
            return None
        key, takes, repeat = spec
        if not takes:
            if eq:
                return None
            params[key] = True
            continue
        if not eq:
            if i >= len(argv):
                return None
            value = argv[i]
            i += 1
        if repeat:
            params[key].append(value)
        else:
            params[key] = value
    return params, positional


IMPORT_FLAGS: Flags = {
    "-c": ("changes", True, True), "--change": ("changes", True, True),
    "-m": ("message", True, False), "--message": ("message", True, False),
    "--platform": ("platform", True, False),
}


def fast_import(session, argv: list[str]) -> int | None:
    parsed = parse(argv, IMPORT_FLAGS, {"changes": [], "message": "", "platform": None})
    if parsed is None or not 1 <= len(parsed[1]) <= 2:
        return None
    params, positional = parsed
    run_import(session, positional[0], positional[1] if len(positional) > 1 else None, params["changes"],
               params["message"], params["platform"])
    return 0


def run_import(session, source: str, reference: str | None, changes: list[str], message: str,
               platform: str | None) -> None:
    """``dockyard import``: the daemon reads the file itself (its descriptor is handed over)."""
    import sys

    from .output import check_reference, echo, messages, stream_error

    if source.startswith(("http://", "https://")):
        from ..errors import InvalidArgument

        raise InvalidArgument("importing from a URL is not supported; download the file and import it")
    if reference:
        check_reference(reference)
    src = sys.stdin.buffer if source == "-" else open(source, "rb")
    try:
        resp = session.api.request("POST", "/images/create", {
            "fromSrc": "-", "repo": reference, "changes": list(changes) or None, "message": message or None,
            "platform": platform}, headers={"Content-Type": "application/x-tar"}, stream=True, timeout=None,
            body_fd=src.fileno())
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    image_id = ""
    for msg in messages(session.api, resp):
        err = stream_error(msg)
        if err is not None:
            raise err
        image_id = msg.get("status") or image_id
    echo(image_id + "\n")


PS_FLAGS: Flags = {
    "-a": ("all", False, False), "--all": ("all", False, False), "-q": ("quiet", False, False),
    "--quiet": ("quiet", False, False), "-l": ("latest", False, False), "--latest": ("latest", False, False),
    "-n": ("last", True, False), "--last": ("last", True, False), "-f": ("filters", True, True),
    "--filter": ("filters", True, True), "--format": ("format", True, False), "--no-trunc": ("no_trunc", False, False),
    "-s": ("size", False, False), "--size": ("size", False, False),
}


def fast_ps(session, argv: list[str]) -> int | None:
    parsed = parse(argv, PS_FLAGS, {"all": False, "quiet": False, "latest": False, "last": "-1", "filters": [],
                                    "format": None, "no_trunc": False, "size": False})
    if parsed is None or parsed[1] or not parsed[0]["last"].lstrip("-").isdigit():
        return None
    p = parsed[0]
    from .listing import list_containers

    list_containers(session, p["all"], p["quiet"], p["latest"], int(p["last"]), p["filters"], p["format"],
                    p["no_trunc"], p["size"] or None)
    return 0


IMAGES_FLAGS: Flags = {
    "-q": ("quiet", False, False), "--quiet": ("quiet", False, False), "-a": ("all", False, False),
    "--all": ("all", False, False), "--digests": ("digests", False, False), "--no-trunc": ("no_trunc", False, False),
    "-f": ("filters", True, True), "--filter": ("filters", True, True), "--format": ("format", True, False),
}


def fast_images(session, argv: list[str]) -> int | None:
    parsed = parse(argv, IMAGES_FLAGS, {"quiet": False, "all": False, "digests": False, "no_trunc": False,
                                        "filters": [], "format": None})
    if parsed is None or len(parsed[1]) > 1:
        return None
    p, positional = parsed
    from .listing import list_images

    list_images(session, positional[0] if positional else None, p["quiet"], p["all"], p["digests"], p["no_trunc"],
                p["filters"], p["format"])
    return 0
