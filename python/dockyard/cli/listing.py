"""The listings users run most, ``ps`` and ``images``, without click: rows from the API's
summaries, rendered as docker's CLI renders them.  Both the click commands and the click-free
paths (:mod:`dockyard.cli.fast`) call :func:`list_containers` and :func:`list_images`."""

from __future__ import annotations

from .. import _wire
from .output import echo, parse_filters, print_rows, short_id, since

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


def list_images(session, repository: str | None, quiet: bool, all_: bool, digests: bool,
                no_trunc: bool, filters: tuple[str, ...] | list[str], fmt: str | None) -> None:
    """``docker images``."""
    parsed = parse_filters(filters)
    if repository:
        parsed.setdefault("reference", []).append(repository)
    summaries = session.api.json("GET", "/images/json", {"all": all_ or None, "filters": parsed or None})
    rows = image_rows(summaries, no_trunc, digests)
    if digests and not fmt:
        fmt = IMAGES_TABLE_DIGESTS
    print_rows(rows, fmt, IMAGES_TABLE, IMAGE_HEADERS, quiet_field="ID", quiet=quiet)


PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED",
              "CreatedAt": "CREATED AT", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES",
              "State": "STATE", "Labels": "LABELS", "Size": "SIZE", "Mounts": "MOUNTS", "Networks": "NETWORKS"}
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_TABLE_SIZE = PS_TABLE + "\t{{.Size}}"


def size_text(summary: dict) -> str:
    """The SIZE column, as the docker CLI writes it: "1.05MB (virtual 3.03MB)" (the writable
    layer, then it and the image together); "0B" when the daemon gave no sizes."""
    from ..units import human_size

    rw = human_size(summary.get("SizeRw") or 0, 3)
    rootfs = summary.get("SizeRootFs") or 0
    return f"{rw} (virtual {human_size(rootfs, 3)})" if rootfs > 0 else rw


def ports_text(ports: list[dict]) -> str:
    """The PORTS column from the API's ``Ports``: "127.0.0.1:8080->80/tcp, 81/tcp"."""
    items = []
    for p in ports or []:
        key = f"{p.get('PrivatePort', 0)}/{p.get('Type') or 'tcp'}"
        ip = p.get("IP", "")
        text = f"{f'[{ip}]' if ':' in ip else ip}:{p['PublicPort']}->{key}" if p.get("PublicPort") else key
        items.append(((p.get("PrivatePort", 0), key), text))
    items.sort(key=lambda kv: kv[0])
    return ", ".join(text for _, text in items)


def ps_rows(summaries: list[dict], no_trunc: bool) -> list[dict]:
    """``GET /containers/json`` entries as ps's columns."""
    from .output import go_time

    rows = []
    for c in summaries:
        command = c.get("Command") or ""
        if not no_trunc and len(command) > 20:
            command = command[:19] + "…"
        created = float(c.get("Created") or 0)
        labels = c.get("Labels") or {}
        nets = ((c.get("NetworkSettings") or {}).get("Networks")) or {}
        rows.append({
            "ID": c["Id"] if no_trunc else c["Id"][:12],
            "Image": c.get("Image", ""),
            "Command": _wire.json_string(command),
            "RunningFor": since(created),
            "CreatedAt": go_time(created),
            "Status": c.get("Status", ""),
            "State": c.get("State", ""),
            "Ports": ports_text(c.get("Ports") or []),
            "Names": ((c.get("Names") or [""])[0]).lstrip("/"),
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "Mounts": ",".join(m.get("Name") or m.get("Source", "") for m in c.get("Mounts") or []),
            "Networks": ",".join(nets),
            "Size": size_text(c),
        })
    return rows


def list_containers(session, all_: bool, quiet: bool, latest: bool, last: int,
                    filters: tuple[str, ...] | list[str], fmt: str | None, no_trunc: bool,
                    size: bool | None = None) -> None:
    """``docker ps``; ``size`` (``-s``) asks the daemon for sizes and adds the SIZE column.  As
    the docker CLI does, a ``--format`` that uses ``.Size`` asks for them too, unless ``--quiet``
    or ``--size=false`` (``size`` False rather than None) says not to."""
    import re

    parsed = parse_filters(filters)
    if latest:
        last = 1
    want_size = bool(size) or (size is None and not quiet and bool(fmt) and re.search(r"\.Size\b", fmt or ""))
    params = {"all": all_ or last >= 0, "limit": last if last > 0 else None, "filters": parsed or None,
              "size": True if want_size else None}
    # -q needs the IDs alone: our daemon then sends only them (another daemon ignores the header)
    summaries = session.api.json("GET", "/containers/json", params,
                                 headers={"Dockyard-Fields": "Id"} if quiet else None) or []
    if last >= 0:
        summaries = summaries[:last]
    if quiet:  # the IDs alone (what print_rows would print, without making every column first)
        echo("".join((c["Id"] if no_trunc else c["Id"][:12]) + "\n" for c in summaries))
        return
    if fmt == "table":  # the docker CLI's NewContainerFormat: the default table (with -s, SIZE too)
        fmt = None
    print_rows(ps_rows(summaries, no_trunc), fmt, PS_TABLE_SIZE if size else PS_TABLE, PS_HEADERS,
               quiet_field="ID", quiet=quiet)

