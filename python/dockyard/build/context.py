"""The build context: a directory (or a tar unpacked into one) seen through ``.dockerignore``.

``.dockerignore`` follows Docker's rules exactly: lines starting with ``#`` are comments;
patterns are cleaned (``filepath.Clean``) and taken relative to the context root (a leading
``/`` is dropped), so ``*.key`` matches only at the root; ``*`` and ``?`` stop at ``/``,
``**`` spans any number of directories; ``!`` re-includes; the last matching pattern wins;
and a pattern that matches a directory excludes everything below it.  These are the rules of
the Docker CLI (moby/patternmatcher ``MatchesOrParentMatches`` and its directory walk), which
is where a directory context is filtered.

The CLI imports this module to send a directory context (:func:`walk`, :class:`Ignore`), so it
keeps its imports light: ``re`` only when there are patterns, ``pathlib`` and ``hashlib`` only in
the daemon's :class:`Context`.
"""

from __future__ import annotations

import os
import posixpath
import stat


def _clean(path: str) -> str:
    """Go's ``filepath.Clean`` for slash paths."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    joined = "/".join(out)
    return ("/" + joined) if rooted else (joined or ".")


class Pattern:
    def __init__(self, text: str) -> None:
        self.exclusion = text.startswith("!")
        self.text = text[1:] if self.exclusion else text
        self.dirs = self.text.split("/")
        import re

        try:
            self.regex = re.compile(self._compile(self.text), re.S)
        except re.error:
            from .errors import BuildError

            raise BuildError(f"error checking context: syntax error in pattern {self.text!r} "
                             "(.dockerignore)") from None

    @staticmethod
    def _compile(pattern: str) -> str:
        out = ["^"]
        i, n = 0, len(pattern)
        while i < n:
            ch = pattern[i]
            i += 1
            if ch == "*":
                if i < n and pattern[i] == "*":
                    i += 1
                    if i < n and pattern[i] == "/":
                        i += 1
                    out.append(".*" if i >= n else "(.*/)?")
                else:
                    out.append("[^/]*")
            elif ch == "?":
                out.append("[^/]")
            elif ch in ".$":
                out.append("\\" + ch)
            elif ch == "\\":
                if i < n:
                    import re

                    out.append(re.escape(pattern[i]))
                    i += 1
                else:
                    out.append("\\\\")
            elif ch == "[":
                j = pattern.find("]", i + 1 if i < n and pattern[i] in "!^" else i)
                if j < 0:
                    out.append("\\[")
                else:
                    body = pattern[i:j]
                    if body.startswith("!"):
                        body = "^" + body[1:]
                    out.append("[" + body.replace("\\", "\\\\") + "]")
                    i = j + 1
            elif ch in "+(){}|^":
                out.append("\\" + ch)
            else:
                out.append(ch)
        out.append("$")
        return "".join(out)

    def match(self, path: str) -> bool:
        return self.regex.match(path) is not None


class Ignore:
    """The patterns of one ``.dockerignore``."""

    def __init__(self, lines: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in lines:
            if raw.startswith("#"):
                continue
            text = raw.strip()
            if not text:
                continue
            invert = text.startswith("!")
            if invert:
                text = text[1:].strip()
            if text:
                text = _clean(text)
                if len(text) > 1 and text.startswith("/"):
                    text = text[1:]
            self.patterns.append(Pattern(("!" if invert else "") + text))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    @classmethod
    def read(cls, context: str | os.PathLike[str]) -> Ignore:
        try:
            with open(os.path.join(context, ".dockerignore"), errors="replace") as f:
                data = f.read()
        except (FileNotFoundError, NotADirectoryError):
            data = ""
        return cls(data.split("\n"))

    def keep(self, *names: str) -> None:
        """Never exclude these (Docker always sends the Dockerfile and .dockerignore)."""
        excluded = [n for n in names if self.excluded(n)]
        for name in excluded:
            self.patterns.append(Pattern("!" + name))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def excluded(self, rel: str) -> bool:
        """Is the context path ``rel`` (slash separated, no leading ``./``) excluded?"""
        if not self.patterns:
            return False
        rel = _clean(rel)
        parent = posixpath.dirname(rel)
        parent_dirs = parent.split("/") if parent not in ("", ".") else []
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue  # cannot change the outcome
            hit = p.match(rel)
            if not hit:  # a pattern that matches a parent directory matches what is below it
                for i in range(len(parent_dirs)):
                    if p.match("/".join(parent_dirs[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not p.exclusion
        return matched

    def may_include_below(self, rel_dir: str) -> bool:
        """Must the walk enter the excluded directory ``rel_dir``?  Docker's CLI does only when
        an exception pattern literally starts with ``rel_dir/``; otherwise the whole directory
        is skipped, even if a wildcard exception (``!*.txt``) would match something inside."""
        if not self.has_exclusions:
            return False
        prefix = rel_dir + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)


class Context:
    """A context directory with its ignore rules.  Paths are context-relative, slash-separated."""

    def __init__(self, root: str | os.PathLike[str], ignore: Ignore | None = None) -> None:
        from pathlib import Path

        self.root = Path(root)
        self.ignore = ignore if ignore is not None else Ignore.read(self.root)
        self._hashes: dict[str, str] = {}

    def walk(self, rel: str) -> list[str]:
        """``rel`` and everything below it that is not excluded, parents before children."""
        return walk(self.root, self.ignore, rel)

    def glob(self, pattern: str) -> list[str]:
        """Context paths matching a COPY source (Go's ``filepath.Match`` per component)."""
        pattern = _clean(pattern.lstrip("/")) if pattern.strip("/") else "."
        if not any(c in pattern for c in "*?["):
            return [pattern]
        parts = pattern.split("/")
        found = [""]
        for part in parts:
            nxt = []
            magic = any(c in part for c in "*?[")
            for base in found:
                d = self.root / base if base else self.root
                if magic:
                    try:
                        names = sorted(os.listdir(d))
                    except OSError:
                        continue
                    import re

                    try:
                        rx = re.compile(Pattern._compile(part))
                    except re.error:
                        from .errors import BuildError

                        raise BuildError(f"syntax error in pattern {part!r}") from None
                    for name in names:
                        if rx.match(name):
                            nxt.append(f"{base}/{name}" if base else name)
                else:
                    cand = f"{base}/{part}" if base else part
                    if os.path.lexists(self.root / cand):
                        nxt.append(cand)
            found = nxt
        return [f for f in found if not self.ignore.excluded(f)]

    def checksum(self, rels: list[str]) -> str:
        """A digest of names, types, modes, owners, link targets and contents (not mtimes)."""
        import hashlib

        h = hashlib.sha256()
        root = os.fspath(self.root)
        for rel in rels:
            path = os.path.join(root, rel) if rel not in ("", ".") else root
            st = os.lstat(path)
            # names and link targets as the bytes on disk (not UTF-8: surrogate escapes)
            h.update(os.fsencode(f"{rel}\0{st.st_mode:o}\0{st.st_uid}:{st.st_gid}\0"))
            if stat.S_ISREG(st.st_mode):
                h.update(self.file_hash(rel, path, st).encode())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.fsencode(os.readlink(path)))
            h.update(b"\n")
        return h.hexdigest()

    def file_hash(self, rel: str, path: str | os.PathLike[str], st: os.stat_result) -> str:
        digest = self._hashes.get(rel)
        if digest is None:
            import hashlib

            hh = hashlib.sha256()
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    hh.update(chunk)
            digest = self._hashes[rel] = hh.hexdigest()
        return digest


def walk(root: str | os.PathLike[str], ignore: Ignore, rel: str = "") -> list[str]:
    """``rel`` (context-relative) and everything below it in the context ``root`` that ``ignore``
    does not exclude, parents before children, names sorted as Docker's walk sorts them."""
    out: list[str] = []
    base = os.path.join(root, rel) if rel not in ("", ".") else os.fspath(root)

    def visit(path: str, r: str) -> None:
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except NotADirectoryError:
            return
        for e in entries:
            child = f"{r}/{e.name}" if r not in ("", ".") else e.name
            is_dir = e.is_dir(follow_symlinks=False)
            if ignore.excluded(child):
                if is_dir and ignore.may_include_below(child):
                    before = len(out)
                    visit(e.path, child)
                    if len(out) > before:
                        out.insert(before, child)
                continue
            out.append(child)
            if is_dir:
                visit(e.path, child)

    visit(base, rel)
    return out
