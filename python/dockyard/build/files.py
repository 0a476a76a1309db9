"""The files COPY and ADD write into a build's root: paths resolved inside the root as if it were
``/`` (symlinks never lead out), ``mkdir -p`` with owners, one file, directory, link or device
copied with its mode and times, ADD's local archives, and ``--chown`` names looked up in the
root's own /etc/passwd and /etc/group."""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

from .errors import BuildError
from .parser import Instruction


class OnlyNames:
    has_exclusions = False

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def excluded(self, rel: str) -> bool:
        return rel in self.names

    def may_include_below(self, rel: str) -> bool:
        return False


class NoIgnore:
    has_exclusions = False

    def excluded(self, rel: str) -> bool:
        return False

    def may_include_below(self, rel: str) -> bool:
        return False


def resolve_in(root: Path, path: str, follow_last: bool = True) -> Path:
    """``path`` inside ``root`` with symlinks resolved as if ``root`` were ``/`` (never outside)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        cur = root.joinpath(*done, part)
        if (parts or follow_last) and os.path.islink(cur):
            hops += 1
            if hops > 40:
                raise BuildError(f"too many levels of symbolic links resolving {path}")
            target = os.readlink(cur)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    return root.joinpath(*done)


def mkdir_all(root: Path, path: str, uid: int, gid: int) -> Path:
    """``mkdir -p`` inside ``root``; new directories are 0755 and owned by uid:gid."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if uid < 0:
        uid, gid = 0, 0
    cur = "/"
    real = root
    for part in parts:
        cur = posixpath.join(cur, part)
        real = resolve_in(root, cur)
        if not os.path.lexists(real):
            os.mkdir(real, 0o755)
            os.chown(real, uid, gid)
            os.chmod(real, 0o755)
        elif not os.path.isdir(real):
            raise BuildError(f"cannot copy to {path}: {cur} is not a directory")
    return real


def replace_file(path: Path) -> None:
    if os.path.lexists(path) and not os.path.isdir(path):
        os.unlink(path)


def copy_one(src: Path, root: Path, dest: str, uid: int, gid: int, mode: int | None) -> None:
    st = os.lstat(src)
    if uid < 0:
        uid, gid = st.st_uid, st.st_gid
    parent = resolve_in(root, posixpath.dirname(dest))
    if not os.path.isdir(parent):
        parent = mkdir_all(root, posixpath.dirname(dest), uid, gid)
    target = parent / posixpath.basename(dest)
    if stat.S_ISDIR(st.st_mode):
        if os.path.islink(target):  # a directory through a symlink: followed inside the root only
            target = resolve_in(root, dest)
        if os.path.lexists(target) and not os.path.isdir(target):
            os.unlink(target)
        if not os.path.lexists(target):
            os.mkdir(target)
        os.chown(target, uid, gid)
        os.chmod(target, mode if mode is not None else stat.S_IMODE(st.st_mode))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        return
    if os.path.islink(target):  # Docker resolves the destination in the root, the last link too
        target = resolve_in(root, dest)
        if not os.path.isdir(target.parent):
            mkdir_all(root, str("/" / target.parent.relative_to(root)), uid, gid)
    if os.path.lexists(target):
        if os.path.isdir(target) and not os.path.islink(target):
            raise BuildError(f"cannot overwrite directory {dest} with a non-directory")
        os.unlink(target)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), target)
        os.lchown(target, uid, gid)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        return
    if stat.S_ISREG(st.st_mode):
        fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            fd_out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                remaining = st.st_size
                while remaining > 0:
                    n = os.sendfile(fd_out, fd_in, None, min(remaining, 1 << 30))
                    if n == 0:
                        break
                    remaining -= n
            finally:
                os.close(fd_out)
        finally:
            os.close(fd_in)
    else:
        os.mknod(target, st.st_mode, st.st_rdev)
    os.chown(target, uid, gid)
    os.chmod(target, mode if mode is not None else stat.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def is_archive(path: Path) -> bool:
    """A tar, plain or compressed (gzip, bzip2, xz): ADD unpacks it.  A compressed file that is not
    a tar is copied as it is, as Docker does."""
    import tarfile

    with open(path, "rb") as f:
        head = f.read(512)
    if len(head) >= 262 and head[257:262] == b"ustar":
        return True
    if not (head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00"):
        return False
    try:
        with tarfile.open(path, "r:*") as tf:
            return tf.next() is not None
    except (tarfile.TarError, EOFError, OSError):
        return False


def extract_archive(src: Path, dest: Path) -> None:
    """ADD's local archive: its members (owners and modes kept) written under ``dest``."""
    import tarfile

    try:
        with tarfile.open(src, "r:*") as tf:
            def check(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
                tarfile.tar_filter(member, path)  # refuses absolute names, "..", links that escape
                return member                     # but keeps modes and owners, as Docker does

            tf.extractall(dest, numeric_owner=True, filter=check)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BuildError(f"ADD failed: cannot extract {src.name}: {exc}") from None


def parse_chown(spec: str, root: Path, inst: Instruction, file: str) -> tuple[int, int]:
    user, _, group = spec.partition(":")
    group = group or user

    def lookup(name: str, db: str, what: str) -> int:
        if name.isdigit():
            return int(name)
        try:
            text = resolve_in(root, f"/etc/{db}").read_text()
        except OSError:
            text = ""
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[0] == name:
                return int(fields[2])
        raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't find {what} {name}")

    return lookup(user, "passwd", "uid for user"), lookup(group, "group", "gid for group")
