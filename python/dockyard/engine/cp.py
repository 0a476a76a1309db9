"""``docker cp``'s two directions (GET/HEAD/PUT ``/containers/{id}/archive``) against a live,
hostile container.

A process in the container can swap any directory for a symlink at any time, so a path inside
the container is resolved exactly once, to a descriptor, beneath a descriptor of the
container's root (``_native.open_in_root``: ``openat2`` with ``RESOLVE_IN_ROOT``, symlinks
followed but scoped to the root); everything after works from descriptors: the upload is
extracted beneath the directory descriptor (``_native.extract_at``, whose walks never follow a
symlink), and the download walks the tree with ``openat(O_PATH | O_NOFOLLOW)`` one name at a
time, ``fstat`` on each descriptor and reading a regular file through the descriptor it was
stat'ed by. No path string is resolved twice.

The root of a running container is its mount namespace's view (``/proc/PID/root``: volumes,
binds and the container's own hostname/hosts/resolv.conf included), limited to the file
systems that hold files: its ``/proc``, ``/sys``, cgroup and ``/dev`` mounts are neither read
nor written (docker cp does not see them either), on the way down as at the top. A stopped
container's root is its root file system mounted for the call, with those three files served
from the container's directory as the running container would see them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import posixpath
import stat as st_
import tarfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..errors import DockyardError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from .containers import Containers

_OWN_ETC = ("hostname", "hosts", "resolv.conf")


def go_mode(st: os.stat_result) -> int:
    """Go's ``os.FileMode`` bits of a stat, as ``X-Docker-Container-Path-Stat`` carries them."""
    mode = st_.S_IMODE(st.st_mode) & 0o777
    kind = st_.S_IFMT(st.st_mode)
    mode |= {st_.S_IFDIR: 1 << 31, st_.S_IFLNK: 1 << 27, st_.S_IFIFO: 1 << 25, st_.S_IFSOCK: 1 << 24,
             st_.S_IFCHR: (1 << 26) | (1 << 21), st_.S_IFBLK: 1 << 26}.get(kind, 0)
    if st.st_mode & st_.S_ISUID:
        mode |= 1 << 23
    if st.st_mode & st_.S_ISGID:
        mode |= 1 << 22
    if st.st_mode & st_.S_ISVTX:
        mode |= 1 << 20
    return mode


# File systems mounted in a running container that are not its files (docker cp sees the root
# file system and the volumes, not these): never read, walked or written by cp.
_NOT_FILES = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "tmpfs", "devtmpfs", "securityfs",
    "debugfs", "tracefs", "bpf", "configfs", "fusectl", "pstore", "efivarfs", "binfmt_misc",
    "hugetlbfs", "autofs", "nsfs", "rpc_pipefs", "selinuxfs",
})


class Root:
    """A descriptor of a container's root (``fd``); for a running container the file systems
    (``st_dev``) that hold its files (``devices``: the root file system, volumes and binds),
    for a stopped one the files to serve in place of its ``/etc`` placeholders (by device and
    inode)."""

    def __init__(self, fd: int, swap: dict[tuple[int, int], Path], devices: frozenset[int] | None = None,
                 volumes: list[tuple[str, int]] | None = None) -> None:
        self.fd = fd
        self.swap = swap
        self.devices = devices
        # a stopped container's volumes and binds: (destination, descriptor of the source dir),
        # longest first; a path beneath a destination is resolved beneath its source
        self.volumes = sorted(volumes or [], key=lambda v: len(v[0]), reverse=True)

    def allowed(self, st: os.stat_result) -> bool:
        return self.devices is None or st.st_dev in self.devices

    def _where(self, path: str) -> tuple[int, str]:
        if self.volumes:
            norm = posixpath.normpath("/" + path)
            for dest, fd in self.volumes:
                if norm == dest or norm.startswith(dest + "/"):
                    rest = norm[len(dest):] or "/"
                    return fd, rest + ("/" if path.endswith("/") and rest != "/" else "")
        return self.fd, path

    def open(self, path: str, follow: bool, directory: bool = False) -> int:
        """``path`` in the container, resolved once: an ``O_PATH`` descriptor the caller closes."""
        from .. import _native

        fd, rest = self._where(path)
        if directory:
            return _native.open_in_root(fd, rest, follow=follow, directory=True)
        return _native.open_in_root(fd, rest, follow=follow)


@contextlib.contextmanager
def open_root(containers: Containers, cid: str) -> Iterator[Root]:
    """The container's root as its processes see it, for the duration of the block."""
    running = _running_root(containers, cid)
    if running is not None:
        fd, devices = running
        try:
            yield Root(fd, {}, devices)
        finally:
            os.close(fd)
        return
    with containers._with_rootfs(cid) as rootfs:
        fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        volumes: list[tuple[str, int]] = []
        try:
            # as dockerd mounts a stopped container's volumes for the call: its volumes and
            # binds (a created container's anonymous volume included) stand at their places
            for mp in containers.load(cid)["spec"].get("_Mounts") or []:
                if mp.get("Type") not in ("volume", "bind") or not mp.get("Source") or not mp.get("Destination"):
                    continue
                try:
                    vfd = os.open(mp["Source"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                except OSError:
                    continue  # (a bind of a file, or a source gone)
                volumes.append((posixpath.normpath("/" + mp["Destination"]), vfd))
            root = Root(fd, {}, volumes=volumes)
            own = containers.dir(cid)
            for name in _OWN_ETC:
                if not (own / name).is_file():
                    continue
                try:
                    placeholder = root.open(f"/etc/{name}", follow=False)
                except OSError:
                    continue
                try:
                    s = os.fstat(placeholder)
                finally:
                    os.close(placeholder)
                if st_.S_ISREG(s.st_mode):
                    root.swap[(s.st_dev, s.st_ino)] = own / name
            yield root
        finally:
            os.close(fd)
            for _, vfd in volumes:
                os.close(vfd)


def _running_root(containers: Containers, cid: str) -> tuple[int, frozenset[int]] | None:
    """``/proc/PID/root`` of the running container's first process and the devices of the file
    systems mounted there that hold its files, both read through one descriptor of
    ``/proc/PID``, which pins that very process (a recycled PID cannot stand in: the process
    must be in another mount namespace than ours, and in the container's cgroup); ``None`` when
    it is not running, or cannot be told apart (the root file system mounted on the host is
    then used, its files alone)."""
    from .containers import cgroup_of

    rec = containers.load(cid)
    state = rec["state"]
    pid = state.get("Pid") or 0
    if not state.get("Running") or pid <= 0:
        return None
    try:
        proc = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    root = -1
    try:
        root = os.open("root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
        theirs, ours = os.stat("ns/mnt", dir_fd=proc), os.stat("/proc/self/ns/mnt")
        if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino) or not _in_cgroup(proc, cgroup_of(rec)):
            raise ProcessLookupError(pid)
        mf = os.open("mountinfo", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
        with os.fdopen(mf, "rb") as f:
            devices = _file_devices(f.read())
        devices |= {os.fstat(root).st_dev}
        return root, frozenset(devices)
    except (FileNotFoundError, ProcessLookupError):  # it exited meanwhile
        if root >= 0:
            os.close(root)
        return None
    except BaseException:
        if root >= 0:
            os.close(root)
        raise
    finally:
        os.close(proc)


def _in_cgroup(proc: int, cgroup: str) -> bool:
    """Whether the process of ``/proc/PID`` (open as ``proc``) is in this container's cgroup
    (``cgroup``, as the runtime was asked): a PID recycled by any other process is not."""
    fd = os.open("cgroup", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
    with os.fdopen(fd, "rb") as f:
        lines = f.read().splitlines()
    want = cgroup.encode()
    if not want.startswith(b"/"):  # (relative: below the runtime's own cgroup, per hierarchy)
        return any(p.endswith(b"/" + want) or b"/" + want + b"/" in p
                   for p in (line.split(b":", 2)[-1] for line in lines))
    return any(p == want or p.startswith(want + b"/") for p in (line.split(b":", 2)[-1] for line in lines))


def _file_devices(mountinfo: bytes) -> set[int]:
    """Devices of the mounts in a ``mountinfo`` whose file system holds files (not ``proc``,
    ``sysfs``, cgroups, ``tmpfs``...)."""
    out = set()
    for line in mountinfo.splitlines():
        fields = line.split()
        try:
            fstype = fields[fields.index(b"-") + 1].decode()
            major, minor = (int(x) for x in fields[2].split(b":"))
        except (ValueError, IndexError):
            continue
        if fstype.split(".")[0] not in _NOT_FILES:
            out.add(os.makedev(major, minor))
    return out


def _names(path: str) -> tuple[str, str]:
    """The name ``path`` has in the stat header, and its top entry's name in the tar."""
    base = os.path.basename(path.rstrip("/"))
    arcname = "." if path.endswith("/.") or base in ("", ".", "..") else base
    return base or "/", arcname


class Source:
    """A file or directory in the container, open for ``docker cp`` from it: its stat header
    (:attr:`stat`) and :meth:`write_tar`."""

    def __init__(self, root: Root, fd: int, path: str) -> None:
        self.root, self.fd, self.path = root, fd, path
        self.name, self.arcname = _names(path)
        self.st = os.fstat(fd)
        own = root.swap.get((self.st.st_dev, self.st.st_ino))
        if own is not None:
            self.st = os.stat(own)

    def stat(self) -> dict:
        """The ``X-Docker-Container-Path-Stat`` document (decoded)."""
        link = os.readlink("", dir_fd=self.fd) if st_.S_ISLNK(self.st.st_mode) else ""
        mtime = datetime.fromtimestamp(self.st.st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {"name": self.name, "size": self.st.st_size, "mode": go_mode(self.st), "mtime": mtime,
                "linkTarget": link}

    def stat_header(self) -> str:
        return base64.b64encode(json.dumps(self.stat()).encode()).decode()

    def write_tar(self, out: IO[bytes]) -> None:
        """The tar of the source to ``out``, walked from its descriptor (never by path)."""
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            _Walk(tf, self.root).tree(self.fd, self.arcname)


class _Walk:
    def __init__(self, tf: tarfile.TarFile, root: Root) -> None:
        self.tf = tf
        self.swap = root.swap
        self.root = root
        self.links: dict[tuple[int, int], str] = {}

    def tree(self, top: int, arcname: str) -> None:
        """``top`` (an ``O_PATH`` descriptor, not closed here) and, for a directory, all beneath
        it, depth first in name order, with one open directory per level."""
        stack: list[tuple[int, list[str], str]] = []
        sub = self.entry(top, arcname)
        if sub is not None:
            stack.append(sub)
        try:
            while stack:
                dfd, names, prefix = stack[-1]
                if not names:
                    os.close(dfd)
                    stack.pop()
                    continue
                name = names.pop()
                try:
                    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                except FileNotFoundError:  # removed while we walked
                    continue
                try:
                    sub = self.entry(fd, f"{prefix}/{name}")
                finally:
                    os.close(fd)
                if sub is not None:
                    stack.append(sub)
        finally:
            for dfd, _, _ in stack:
                os.close(dfd)

    def entry(self, fd: int, arcname: str) -> tuple[int, list[str], str] | None:
        """Add the node open as ``fd``; for a directory, return it opened for listing, with its
        names (reversed, to pop in order) and its name in the tar."""
        st = os.fstat(fd)
        info = tarfile.TarInfo(arcname)
        info.mode = st_.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = st.st_mtime
        kind = st_.S_IFMT(st.st_mode)
        if not self.root.allowed(st):
            # A mount that is not the container's files (/proc, /sys, /dev...): its mount
            # point only, as the root file system has it, an empty directory.
            if kind == st_.S_IFDIR:
                info.type = tarfile.DIRTYPE
                self.tf.addfile(info)
            return None
        if kind == st_.S_IFREG:
            key = (st.st_dev, st.st_ino)
            own = self.swap.get(key)
            if own is None and st.st_nlink > 1 and key in self.links:
                info.type, info.linkname = tarfile.LNKTYPE, self.links[key]
                self.tf.addfile(info)
                return None
            if st.st_nlink > 1:
                self.links[key] = arcname
            # The very inode stat'ed above, reopened for reading (no name is looked up again).
            f = os.open(own, os.O_RDONLY | os.O_CLOEXEC) if own is not None else \
                os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
            with os.fdopen(f, "rb") as data:
                info.size = os.fstat(f).st_size
                self.tf.addfile(info, data)
            return None
        if kind == st_.S_IFDIR:
            info.type = tarfile.DIRTYPE
            self.tf.addfile(info)
            dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            try:
                return dfd, sorted(os.listdir(dfd), reverse=True), arcname.rstrip("/")
            except BaseException:
                os.close(dfd)
                raise
        if kind == st_.S_IFLNK:
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=fd)
        elif kind in (st_.S_IFCHR, st_.S_IFBLK):
            info.type = tarfile.CHRTYPE if kind == st_.S_IFCHR else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif kind == st_.S_IFIFO:
            info.type = tarfile.FIFOTYPE
        else:  # a socket: not archived, as docker
            return None
        self.tf.addfile(info)
        return None


def _check(path: str) -> None:
    if not path:
        raise InvalidArgument("path is required")


@contextlib.contextmanager
def source(containers: Containers, cid: str, ref: str, path: str) -> Iterator[Source]:
    """``path`` in the container, resolved once (a trailing ``/`` follows a final link and
    asks for a directory, as dockerd's lstat), for GET and HEAD."""
    _check(path)
    with open_root(containers, cid) as root:
        try:
            fd = root.open(path, follow=path.endswith("/"))
        except (FileNotFoundError, NotADirectoryError):
            if path.endswith(("/", "/.")):
                parent = path.rstrip("/").removesuffix("/.") or "/"
                try:
                    os.close(root.open(parent, follow=False))
                except (FileNotFoundError, NotADirectoryError):
                    pass
                else:
                    raise DockyardError(f"lstat {path.rstrip('/')}: not a directory") from None
            raise NotFound(f"Could not find the file {path} in container {ref}") from None
        try:
            if not root.allowed(os.fstat(fd)):
                raise NotFound(f"Could not find the file {path} in container {ref}")
            src = Source(root, fd, path)
            if path.endswith(("/", "/.")) and not st_.S_ISDIR(src.st.st_mode):
                raise DockyardError(f"lstat {path.rstrip('/')}: not a directory")
            yield src
        finally:
            os.close(fd)


@contextlib.contextmanager
def destination(containers: Containers, cid: str, ref: str, path: str) -> Iterator[tuple[int, frozenset[int] | None]]:
    """The directory ``path`` in the container, opened once (``O_RDONLY | O_DIRECTORY``) for
    PUT, and the file systems an extraction beneath it may enter: the upload is then
    extracted beneath this descriptor and nowhere else."""

    with open_root(containers, cid) as root:
        try:
            fd = root.open(path or "/", follow=True, directory=True)
        except FileNotFoundError:
            raise NotFound(f"Could not find the file {path} in container {ref}") from None
        except NotADirectoryError:
            raise InvalidArgument(f"extraction point is not a directory: {path}") from None
        try:
            if not root.allowed(os.fstat(fd)):
                raise InvalidArgument(f"extraction point is not in the container's files: {path}")
            yield fd, root.devices
        finally:
            os.close(fd)


def put(containers: Containers, cid: str, ref: str, path: str, stream: IO[bytes]) -> None:
    """Extract the tar read from ``stream`` into the directory ``path`` of the container."""
    from .. import _native

    with containers.store.staging() as stage, destination(containers, cid, ref, path) as (fd, devices):
        tar = stage / "put.tar"
        with open(tar, "wb") as f:
            while chunk := stream.read(1 << 20):
                f.write(chunk)
        _native.extract_at(str(tar), fd, path or "/", whiteouts="apply",
                           devices=sorted(devices) if devices is not None else None)
