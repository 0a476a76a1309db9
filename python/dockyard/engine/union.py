"""A file of a container's root read from its layers, as overlayfs would show it, without
mounting them.

A container's overlay is mounted by the runtime inside the container's own mount namespace, so
the host's holds no mount per container (each one would be copied into, and detached from, the
namespace of every container started after it).  Before the start the engine still reads a few
files of that root (``/etc/passwd`` and ``/etc/group``, to resolve ``--user``): it looks them up
here, in the layer directories, the way overlayfs merges them:

- the layers are searched top first (the container's upper dir, then the lower ones);
- a whiteout (a character device 0:0) hides the name in every layer below it;
- a directory merges with the directories of the same name below it, down to the first
  non-directory or whiteout, or stopping at an opaque one (``trusted.overlay.opaque`` = ``y``,
  or ``user.overlay.opaque`` where the overlay was mounted with ``userxattr``);
- anything else (a file, a symlink) is the topmost one alone.

Symbolic links are followed by this lookup, within the root (as if it were ``/``: ``..`` stops
at the top, an absolute target starts from the top again), never by the host's path resolution:
every host path it touches is ``lstat``-ed first and files are opened with ``O_NOFOLLOW``.  The
layers are read-only image layers and the upper dir of a container that is not running.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_LINKS = 40
_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")


def _opaque(path: str) -> bool:
    for name in _OPAQUE:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _lookup(dirs: list[str], name: str) -> tuple[str, object] | None:
    """``name`` in the merged directory made of ``dirs`` (top first): ("dir", [its dirs]),
    ("link", target), ("file", host path); None when absent, whited out or of another kind."""
    merged: list[str] = []
    for d in dirs:
        p = os.path.join(d, name)
        try:
            st = os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISDIR(st.st_mode):
            merged.append(p)
            if _opaque(p):
                break
            continue
        if merged:  # a non-directory (or whiteout) below a directory ends the merge
            break
        if stat.S_ISLNK(st.st_mode):
            return "link", os.readlink(p)
        if stat.S_ISREG(st.st_mode):
            return "file", p
        return None  # a whiteout, a device, a fifo...
    return ("dir", merged) if merged else None


def read_file(layers: list[Path], path: str) -> bytes | None:
    """The content of ``path`` (absolute, inside the root) in the union of ``layers`` (top
    first); None when it is absent, not a regular file, or behind too many links."""
    top = [str(p) for p in layers]
    stack: list[list[str]] = [top]  # the merged directories from the root down to the current one
    parts = [p for p in path.split("/") if p not in ("", ".")]
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if len(stack) > 1:
                stack.pop()
            continue
        found = _lookup(stack[-1], part)
        if found is None:
            return None
        kind, what = found
        if kind == "dir":
            stack.append(what)  # type: ignore[arg-type]
            continue
        if kind == "link":
            links += 1
            if links > MAX_LINKS:
                return None
            target = str(what)
            if target.startswith("/"):
                del stack[1:]
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        if parts:  # a file where a directory was wanted
            return None
        try:
            fd = os.open(str(what), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read()
    return None  # a directory
