"""The Dockerfile parser: text -> :class:`Instruction` list, with Docker's rules.

* Parser directives (``# escape=``, ``# syntax=``) only at the very top; after the first other
  line every ``#`` line is a comment.
* Comment lines are dropped, also in the middle of a continued instruction; blank continuation
  lines are skipped.  A line ending with the escape character (and blanks) continues.
* ``RUN``/``CMD``/``ENTRYPOINT``/``COPY``/``ADD``/``VOLUME``/``SHELL`` take a JSON array of
  strings or a shell form; ``ENV``/``LABEL`` take ``k=v`` pairs (or ENV's legacy ``k v``);
  ``ARG`` takes ``name[=default]`` words.
* Heredocs (``RUN <<EOF``, ``COPY <<EOF /dest``; ``<<-`` strips tabs; a quoted name turns
  expansion off) for RUN, COPY and ADD.

Arguments are not expanded here: the builder expands them with the variables in scope.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .errors import DockerfileError

INSTRUCTIONS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)
FLAGS = {
    "FROM": {"platform"},
    "COPY": {"from", "chown", "chmod", "link"},
    "ADD": {"chown", "chmod", "link"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
    "RUN": set(),
}
HEREDOC_INSTRUCTIONS = ("RUN", "COPY", "ADD")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"(?<![<\w])<<(-?)(\"|'|)([A-Za-z_][A-Za-z0-9_.-]*)\2")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")


@dataclass
class Heredoc:
    name: str
    content: str
    expand: bool = True
    chomp: bool = False


@dataclass
class Instruction:
    cmd: str                          # upper case: "RUN"
    line: int                         # first line, 1-based
    end_line: int
    original: str                     # the logical line, continuations joined
    rest: str = ""                    # arguments after the flags, blanks trimmed
    flags: dict[str, str | None] = field(default_factory=dict)
    json: bool = False                # exec (JSON) form
    args: list[str] = field(default_factory=list)      # JSON list, shell command, or words
    pairs: list[tuple[str, str | None]] = field(default_factory=list)  # ENV, LABEL, ARG
    heredocs: list[Heredoc] = field(default_factory=list)
    trigger: Instruction | None = None  # ONBUILD's instruction
    legacy_kv: bool = False           # ENV k v


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"
    syntax: str = ""
    file: str = "Dockerfile"


def parse(text: str | bytes, file: str = "Dockerfile") -> Dockerfile:
    """Parse a whole Dockerfile; raises :class:`DockerfileError` with the position at fault."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DockerfileError(f"the Dockerfile is not valid UTF-8 (byte {exc.start})", file=file) from None
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    lines = [l[:-1] if l.endswith("\r") else l for l in lines]
    if lines and lines[-1] == "":
        lines.pop()
    escape = "\\"
    syntax = ""
    seen: set[str] = set()
    n = 0
    # directives
    while n < len(lines):
        m = _DIRECTIVE.match(lines[n])
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key not in ("escape", "syntax", "check"):
            break
        if key in seen:
            raise DockerfileError(f"only one {key} parser directive can be used", n + 1, 1, file)
        seen.add(key)
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(f"invalid escape token '{value}' does not match ` or \\", n + 1, 1, file)
            escape = value
        elif key == "syntax":
            syntax = value
        n += 1
    cont = re.compile(re.escape(escape) + r"[ \t]*$")
    out: list[Instruction] = []
    total = len(lines)
    while n < total:
        raw = lines[n]
        n += 1
        start = n
        stripped = raw.lstrip(" \t")
        if stripped.startswith("#") or not stripped.strip():
            continue
        line, ended = _trim_cont(stripped, cont)
        while not ended and n < total:
            nxt = lines[n]
            n += 1
            bare = nxt.lstrip(" \t")
            if bare.startswith("#"):
                continue
            if not bare.strip():
                continue
            part, ended = _trim_cont(nxt, cont)
            line += part
        if not line.strip():
            continue
        inst = parse_line(raw[: len(raw) - len(stripped)] + line, start, n, escape, file)
        if inst.cmd in HEREDOC_INSTRUCTIONS:
            for hd in _heredoc_names(inst, escape):
                body: list[str] = []
                done = False
                while n < total:
                    l = lines[n]
                    n += 1
                    check = l.lstrip("\t") if hd.chomp else l
                    if check == hd.name:
                        done = True
                        break
                    body.append(l.lstrip("\t") if hd.chomp else l)
                if not done:
                    raise DockerfileError("unterminated heredoc", start, 1, file)
                hd.content = "".join(b + "\n" for b in body)
                inst.heredocs.append(hd)
            inst.end_line = n
        out.append(inst)
    return Dockerfile(out, escape, syntax, file)


def _trim_cont(line: str, cont: re.Pattern) -> tuple[str, bool]:
    m = cont.search(line)
    if m:
        return line[: m.start()], False
    return line, True


def _heredoc_names(inst: Instruction, escape: str) -> list[Heredoc]:
    if inst.json:
        return []
    found = []
    text = inst.rest
    i = 0
    quote = ""
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == escape and quote == '"':
                i += 1
        elif c in "'\"":
            quote = c
        elif c == escape:
            i += 1
        elif text.startswith("<<", i):
            m = _HEREDOC.match(text, i)
            if m and (i == 0 or text[i - 1] not in "<"):
                found.append(Heredoc(m.group(3), "", expand=not m.group(2), chomp=bool(m.group(1))))
                i = m.end()
                continue
        i += 1
    return found


def parse_line(line: str, start: int, end: int, escape: str = "\\", file: str = "Dockerfile",
               onbuild: bool = False) -> Instruction:
    """One logical line into an :class:`Instruction` (its arguments checked, not expanded)."""
    body = line.strip()
    parts = re.split(r"[ \t]+", body, maxsplit=1)
    word = parts[0]
    cmd = word.upper()
    rest = parts[1] if len(parts) > 1 else ""
    indent = len(line) - len(line.lstrip())
    if cmd not in INSTRUCTIONS:
        raise DockerfileError(f"unknown instruction: {word}", start, indent + 1, file)
    inst = Instruction(cmd, start, end, body)
    column = indent + len(word) + 2

    def fail(message: str, col: int = 0) -> DockerfileError:
        return DockerfileError(message, start, col or column, file)

    if cmd != "ONBUILD":
        rest = _extract_flags(inst, rest, escape, fail)
    rest = rest.strip()
    inst.rest = rest
    if cmd in ("RUN", "CMD", "ENTRYPOINT", "SHELL"):
        value = _maybe_json(rest)
        if value is not None:
            inst.json, inst.args = True, value
        elif cmd == "SHELL":
            raise fail("SHELL requires the arguments to be in JSON form")
        else:
            inst.args = [rest] if rest else []
        if cmd == "RUN" and not inst.args:
            raise fail("RUN requires at least one argument")
        if cmd == "SHELL" and not inst.args:
            raise fail("SHELL requires at least one argument")
    elif cmd in ("COPY", "ADD", "VOLUME"):
        value = _maybe_json(rest)
        if value is not None:
            inst.json, inst.args = True, value
        else:
            inst.args = rest.split()
        if cmd == "VOLUME" and not inst.args:
            raise fail("VOLUME requires at least one argument")
        if cmd in ("COPY", "ADD") and len(inst.args) < 2 and not (inst.args and "<<" in rest):
            raise fail(f"{cmd} requires at least two arguments, but only {len(inst.args)} provided")
    elif cmd in ("ENV", "LABEL"):
        words = parse_words(rest, escape)
        if not words:
            raise fail(f"{cmd} requires at least one argument" if cmd == "LABEL" else "ENV must have two arguments")
        if "=" not in words[0]:
            kv = re.split(r"[ \t]+", rest, maxsplit=1)
            if len(kv) < 2:
                raise fail(f"{cmd} must have two arguments")
            inst.pairs = [(kv[0], kv[1])]
            inst.legacy_kv = True
        else:
            for w in words:
                if "=" not in w:
                    raise fail(f"Syntax error - can't find = in {json.dumps(w)}. Must be of the form: name=value")
                k, _, v = w.partition("=")
                inst.pairs.append((k, v))
        for k, _ in inst.pairs:
            if not k:
                raise fail(f"{cmd} names can not be blank")
    elif cmd == "ARG":
        words = parse_words(rest, escape)
        if not words:
            raise fail("ARG requires exactly one argument")
        for w in words:
            k, eq, v = w.partition("=")
            if not k:
                raise fail("ARG names can not be blank")
            inst.pairs.append((k, v if eq else None))
    elif cmd == "FROM":
        words = rest.split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise fail("FROM requires either one or three arguments")
        if len(words) == 3 and not _STAGE_NAME.match(words[2].lower()):
            raise fail(f"invalid name for build stage: {json.dumps(words[2])}, name can't start with a "
                       "number or contain symbols")
        inst.args = words
    elif cmd == "EXPOSE":
        inst.args = rest.split()
        if not inst.args:
            raise fail("EXPOSE requires at least one argument")
    elif cmd in ("USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"):
        if not rest:
            raise fail(f"{cmd} requires exactly one argument")
        if cmd == "STOPSIGNAL" and len(rest.split()) != 1:
            raise fail("STOPSIGNAL requires exactly one argument")
        inst.args = [rest]
    elif cmd == "HEALTHCHECK":
        words = rest.split(None, 1)
        if not words:
            raise fail("HEALTHCHECK requires at least one argument")
        kind = words[0].upper()
        if kind == "NONE":
            if len(words) > 1:
                raise fail("HEALTHCHECK NONE takes no arguments")
            if inst.flags:
                raise fail("HEALTHCHECK NONE takes no flags")
            inst.args = ["NONE"]
        elif kind == "CMD":
            cmdtext = words[1].strip() if len(words) > 1 else ""
            if not cmdtext:
                raise fail("Missing command after HEALTHCHECK CMD")
            value = _maybe_json(cmdtext)
            if value is not None:
                inst.json, inst.args = True, ["CMD", *value]
            else:
                inst.args = ["CMD-SHELL", cmdtext]
        else:
            raise fail(f"Unknown type {json.dumps(kind)} in HEALTHCHECK (try CMD)")
    elif cmd == "ONBUILD":
        if not rest:
            raise fail("ONBUILD requires at least one argument")
        sub = rest.split(None, 1)[0].upper()
        if sub == "ONBUILD":
            raise fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if sub in ("FROM", "MAINTAINER"):
            raise fail(f"{sub} isn't allowed as an ONBUILD trigger")
        inst.trigger = parse_line(rest, start, end, escape, file, onbuild=True)
        inst.args = [rest]
    if cmd == "CMD" and inst.json is False and not rest:
        inst.args = []
    return inst


def _extract_flags(inst: Instruction, rest: str, escape: str, fail) -> str:
    allowed = FLAGS.get(inst.cmd, set())
    while True:
        stripped = rest.lstrip()
        if not stripped.startswith("--"):
            return rest
        m = re.match(r"--([^\s=]*)(?:=((?:\"[^\"]*\"|'[^']*'|\S)*))?", stripped)
        assert m is not None
        name, value = m.group(1), m.group(2)
        if name == "":  # "--" ends the flags
            return stripped[m.end():]
        if name not in allowed:
            raise fail(f"Unknown flag: {name}")
        if name in inst.flags:
            raise fail(f"Duplicate flag specified: {name}")
        if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        inst.flags[name] = value
        rest = stripped[m.end():]


def _maybe_json(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def parse_words(rest: str, escape: str = "\\") -> list[str]:
    """Split on blanks keeping quotes and escapes in the words (Docker's ``parseWords``)."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    in_word = False
    i = 0
    n = len(rest)
    while i < n:
        ch = rest[i]
        if not in_word and not quote:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    i += 1
                    continue
                word.append(ch)
                i += 1
                ch = rest[i]
            word.append(ch)
            i += 1
            continue
        if ch.isspace():
            in_word = False
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok = [], False
            i += 1
            continue
        if ch in "'\"":
            quote, blank_ok = ch, True
        if ch == escape:
            if i + 1 == n:
                i += 1
                continue
            word.append(ch)
            i += 1
            ch = rest[i]
        word.append(ch)
        i += 1
    if in_word or quote:
        if blank_ok or word:
            words.append("".join(word))
    return words


@dataclass
class Stage:
    index: int
    name: str                  # "" when unnamed
    base: str                  # the FROM argument, not expanded
    platform: str | None
    from_inst: Instruction
    instructions: list[Instruction] = field(default_factory=list)


def split_stages(df: Dockerfile) -> tuple[list[Instruction], list[Stage]]:
    """Meta ARGs (before the first FROM) and the stages."""
    meta: list[Instruction] = []
    stages: list[Stage] = []
    names: set[str] = set()
    for inst in df.instructions:
        if inst.cmd == "FROM":
            name = inst.args[2].lower() if len(inst.args) == 3 else ""
            if name and name in names:
                raise DockerfileError(f"duplicate name {name}", inst.line, 1, df.file)
            if name:
                names.add(name)
            stages.append(Stage(len(stages), name, inst.args[0], inst.flags.get("platform"), inst))
        elif not stages:
            if inst.cmd != "ARG":
                raise DockerfileError(f"no build stage in current context (the first instruction is "
                                      f"{inst.cmd}; a Dockerfile must begin with FROM, or ARG then FROM)",
                                      inst.line, 1, df.file)
            meta.append(inst)
        else:
            stages[-1].instructions.append(inst)
    if not stages:
        raise DockerfileError(f"the Dockerfile ({df.file}) cannot be empty" if not df.instructions else
                              "no build stage in current context", 0, 0, df.file)
    return meta, stages


# -- instruction arguments -------------------------------------------------------------------------

def parse_port(spec: str, inst: Instruction, file: str) -> list[str]:
    port, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if ":" in port:
        port = port.rsplit(":", 1)[1]
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", port)
    if not m or proto not in ("tcp", "udp", "sctp"):
        raise DockerfileError(f"Invalid containerPort: {spec}", inst.line, 1, file)
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    if hi < lo:
        raise DockerfileError(f"Invalid range specified for the Port: {spec}", inst.line, 1, file)
    return [f"{p}/{proto}" for p in range(lo, hi + 1)]


def parse_duration(text: str, inst: Instruction, file: str) -> int:
    """Go's ``time.ParseDuration``, in nanoseconds; its message as the Dockerfile's error."""
    from ..units import parse_go_duration

    try:
        return parse_go_duration(text)
    except ValueError as exc:
        raise DockerfileError(str(exc), inst.line, 1, file) from None
