"""``--change`` instructions (``docker import -c``, later ``commit -c``) applied to an image config.

Only the instructions Docker allows there: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
STOPSIGNAL, USER, VOLUME, WORKDIR.  The syntax is the Dockerfile's, one instruction a string.
"""

from __future__ import annotations

import json
import posixpath
import re

from ..errors import InvalidArgument

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")


def split_words(text: str) -> list[str]:
    """Split on blanks, honouring '…', "…" and backslash escapes, as the Dockerfile's ENV does."""
    words: list[str] = []
    cur: list[str] = []
    have = False
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"' and i + 1 < len(text):
                i += 1
                cur.append(text[i])
            else:
                cur.append(c)
        elif c in "'\"":
            quote, have = c, True
        elif c == "\\" and i + 1 < len(text):
            i += 1
            cur.append(text[i])
            have = True
        elif c.isspace():
            if have or cur:
                words.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(c)
            have = True
        i += 1
    if quote:
        raise InvalidArgument(f"unmatched quote in {text!r}")
    if have or cur:
        words.append("".join(cur))
    return words


def _json_or_shell(args: str) -> list[str]:
    stripped = args.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", stripped]


def _pairs(instruction: str, args: str) -> list[tuple[str, str]]:
    words = split_words(args)
    if not words:
        raise InvalidArgument(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        # Legacy form: ENV KEY value with spaces
        key, _, value = args.strip().partition(" ")
        if not value.strip() and instruction == "ENV":
            raise InvalidArgument(f"ENV names can not be blank: {args!r}" if not key else f"ENV must have two arguments: {args!r}")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        pairs.append((key, value))
    return pairs


def _port(spec: str) -> str:
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if not re.fullmatch(r"\d+(-\d+)?", port) or proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid containerPort: {spec}")
    return f"{port}/{proto}"


def apply_changes(config: dict, changes: list[str]) -> dict:
    """Return ``config`` (the image's "config" object) with the instructions applied."""
    config = dict(config)
    for change in changes:
        text = change.strip()
        if not text:
            continue
        instruction, _, args = text.partition(" ")
        if "\t" in instruction:
            instruction, _, rest = instruction.partition("\t")
            args = rest + " " + args
        upper = instruction.upper()
        if upper not in ALLOWED:
            raise InvalidArgument(f"{instruction} is not a valid change command")
        args = args.strip()
        if upper == "CMD":
            config["Cmd"] = _json_or_shell(args)
        elif upper == "ENTRYPOINT":
            config["Entrypoint"] = _json_or_shell(args)
        elif upper == "ENV":
            env = list(config.get("Env") or [])
            for key, value in _pairs(upper, args):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            config["Env"] = env
        elif upper == "LABEL":
            labels = dict(config.get("Labels") or {})
            labels.update(_pairs(upper, args))
            config["Labels"] = labels
        elif upper == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            for word in split_words(args):
                ports[_port(word)] = {}
            config["ExposedPorts"] = ports
        elif upper == "VOLUME":
            vols = dict(config.get("Volumes") or {})
            paths = _json_or_shell(args) if args.startswith("[") else split_words(args)
            if args.startswith("[") and paths[:2] == ["/bin/sh", "-c"]:
                paths = split_words(args)
            for path in paths:
                vols[path] = {}
            config["Volumes"] = vols
        elif upper == "WORKDIR":
            if not args:
                raise InvalidArgument("WORKDIR requires exactly one argument")
            base = config.get("WorkingDir") or "/"
            config["WorkingDir"] = posixpath.normpath(posixpath.join(base, args))
        elif upper == "USER":
            if not args:
                raise InvalidArgument("USER requires exactly one argument")
            config["User"] = args
        elif upper == "STOPSIGNAL":
            config["StopSignal"] = args
        elif upper == "ONBUILD":
            config["OnBuild"] = list(config.get("OnBuild") or []) + [args]
    return config
