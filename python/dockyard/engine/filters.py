"""``--filter`` for images (and, later, the other nouns), with Docker's keys and errors."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from .images import Images

IMAGE_KEYS = ("dangling", "label", "reference", "before", "since", "until")


def parse_filters(values: tuple[str, ...] | list[str], allowed: tuple[str, ...]) -> dict[str, list[str]]:
    """``["dangling=true", "label=a"]`` -> ``{"dangling": ["true"], "label": ["a"]}``."""
    out: dict[str, list[str]] = {}
    for value in values:
        key, eq, arg = value.partition("=")
        key = key.strip().lower()
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {value}")
        if key not in allowed:
            raise InvalidArgument(f"Invalid filter '{key}'")
        out.setdefault(key, []).append(arg)
    return out


def _bool(key: str, value: str) -> bool:
    low = value.lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise InvalidArgument(f"invalid filter '{key}={value}'")


def labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for want in wanted:
        key, eq, value = want.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def reference_match(pattern: str, familiar_names: list[str]) -> bool:
    """Docker matches the pattern against ``name`` and ``name:tag`` in their familiar forms."""
    for full in familiar_names:
        name = full.rsplit("@", 1)[0]
        repo = name
        if ":" in name.rsplit("/", 1)[-1]:
            repo = name.rsplit(":", 1)[0]
        if fnmatch.fnmatchcase(repo, pattern) or fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def image_matches(images: Images, image_id: str, filters: dict[str, list[str]]) -> bool:
    from .images import _familiar, parse_time

    tags = images.tags_of(image_id)
    if "dangling" in filters:
        want = _bool("dangling", filters["dangling"][-1])
        if want != (not tags):
            return False
    if "label" in filters:
        labels = (images.config(image_id).get("config") or {}).get("Labels") or {}
        if not labels_match(labels, filters["label"]):
            return False
    if "reference" in filters:
        names = [_familiar(t) for t in tags]
        if not any(reference_match(p, names) for p in filters["reference"]):
            return False
    created = None
    for key in ("before", "since"):
        for value in filters.get(key, []):
            other = images.resolve(value)
            mine = created if created is not None else parse_time(images.config(image_id).get("created", ""))
            created = mine
            theirs = parse_time(images.config(other).get("created", ""))
            if key == "before" and not mine < theirs:
                return False
            if key == "since" and not mine > theirs:
                return False
    for value in filters.get("until", []):
        from .images import parse_time as pt

        mine = pt(images.config(image_id).get("created", ""))
        limit = timestamp(value)
        if not mine < limit:
            return False
    return True


def timestamp(value: str) -> float:
    """Docker's ``until``: a Unix time, an RFC 3339 date, or a Go duration before now."""
    import re
    import time

    from .images import parse_time

    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)", value)
    if m:
        total = 0.0
        for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value):
            total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        return time.time() - total
    ts = parse_time(value)
    if not ts:
        raise InvalidArgument(f"invalid filter 'until={value}'")
    return ts
