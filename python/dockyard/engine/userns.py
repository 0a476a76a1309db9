"""User namespace remapping (``dockyard daemon --userns-remap default|USER[:GROUP]``).

As dockerd: the container's root is the first id of USER's subordinate ranges (``/etc/subuid``,
``/etc/subgid``; several ranges are stacked, container ids counting up across them), and
``default`` means the user ``dockremap``, created when missing with a free range of 65536 ids.
dockerd runs ``useradd``/``usermod``; dockyard writes the same entries to ``/etc/passwd``,
``/etc/group`` and the subordinate id files itself (a pip-installed engine cannot count on the
shadow tools), each file replaced atomically.

Unlike dockerd, nothing is chowned: the container's overlay is mounted by the runtime inside the
container's user namespace over an idmapped view of the store (see ``Containers._bundle_spec``),
so layers stay shared and unchanged on disk and the upper dir gets the image's ids.  Volumes are
plain binds, as dockerd's: a new volume's directory belongs to the remapped root, and what the
container writes there belongs to the mapped ids on the host (root inside).

The daemon passes the resolved ``USER:GROUP`` to the engine in ``DOCKYARD_USERNS_REMAP``.
A container opts out with ``--userns host``, or gets a range of its own with ``--userns auto``
(below).  An unprivileged user's daemon (rootless mode) is dockyard.rootless.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidArgument

ENV = "DOCKYARD_USERNS_REMAP"
DEFAULT_USER = "dockremap"
ETC = Path("/etc")  # (tests point it elsewhere)


@dataclass(frozen=True)
class Remap:
    user: str
    group: str
    uids: tuple[tuple[int, int, int], ...]  # (inside, outside, count)
    gids: tuple[tuple[int, int, int], ...]

    @property
    def root(self) -> tuple[int, int]:
        """The host ids of the container's root."""
        return self.uids[0][1], self.gids[0][1]

    def spec(self) -> dict:
        return {"uidMappings": [{"containerID": i, "hostID": o, "size": n} for i, o, n in self.uids],
                "gidMappings": [{"containerID": i, "hostID": o, "size": n} for i, o, n in self.gids]}


def _entries(path: Path) -> list[list[str]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _ranges(path: Path, names: set[str]) -> list[tuple[int, int]]:
    out = []
    for f in _entries(path):
        if len(f) >= 3 and f[0] in names and f[1].isdigit() and f[2].isdigit():
            out.append((int(f[1]), int(f[2])))
    return out


def _id_map(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int, int], ...]:
    """dockerd's createIDMap: container ids from 0 upwards across the ranges, in file order."""
    out, inside = [], 0
    for start, count in ranges:
        out.append((inside, start, count))
        inside += count
    return tuple(out)


def _append(path: Path, line: str) -> None:
    """Append one line to an /etc file, the file replaced atomically (its mode kept)."""
    try:
        old = path.read_bytes()
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        old, mode = b"", 0o644
    if old and not old.endswith(b"\n"):
        old += b"\n"
    tmp = path.with_name(f".{path.name}.dockyard-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, old + line.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def _free_range(size: int = 65536) -> int:
    """The first start >= 100000 overlapping no range of /etc/subuid nor /etc/subgid."""
    taken = sorted({(s, n) for p in ("subuid", "subgid") for f in _entries(ETC / p)
                    if len(f) >= 3 and f[1].isdigit() and f[2].isdigit() for s, n in [(int(f[1]), int(f[2]))]})
    start = 100000
    for s, n in taken:
        if s < start + size and start < s + n:
            start = s + n
    return start


def ensure_default_user() -> None:
    """The ``dockremap`` user and group (a system account with no login) and its ranges."""
    users = {f[0]: f for f in _entries(ETC / "passwd")}
    groups = {f[0]: f for f in _entries(ETC / "group")}
    if DEFAULT_USER not in users:
        used = {int(f[2]) for f in users.values() if len(f) > 2 and f[2].isdigit()}
        used |= {int(f[2]) for f in groups.values() if len(f) > 2 and f[2].isdigit()}
        uid = next(i for i in range(999, 99, -1) if i not in used)  # useradd -r: from the top down
        if DEFAULT_USER not in groups:
            _append(ETC / "group", f"{DEFAULT_USER}:x:{uid}:")
            gid = uid
        else:
            gid = int(groups[DEFAULT_USER][2])
        _append(ETC / "passwd", f"{DEFAULT_USER}:x:{uid}:{gid}::/nonexistent:/bin/false")
    if not _ranges(ETC / "subuid", {DEFAULT_USER}) or not _ranges(ETC / "subgid", {DEFAULT_USER}):
        start = _free_range()
        for p in ("subuid", "subgid"):
            if not _ranges(ETC / p, {DEFAULT_USER}):
                _append(ETC / p, f"{DEFAULT_USER}:{start}:65536")


def resolve(value: str) -> str:
    """``--userns-remap``'s value as ``USER:GROUP`` (names), checked as dockerd checks it;
    ``default`` creates ``dockremap`` when missing."""
    if value == "default":
        ensure_default_user()
        value = f"{DEFAULT_USER}:{DEFAULT_USER}"
    user, _, group = value.partition(":")
    if not user:
        raise InvalidArgument(f"Invalid user/group specification in --userns-remap: {value!r}")
    users = _entries(ETC / "passwd")
    if user.isdigit():
        names = [f[0] for f in users if len(f) > 2 and f[2] == user]
        if not names:
            raise InvalidArgument(f"Uid {user} has no entry in /etc/passwd: it cannot be used in --userns-remap")
        user = names[0]
    elif not any(f[0] == user for f in users):
        raise InvalidArgument(f"Error during uid lookup for {user}: no such user")
    group = group or user
    if group.isdigit():
        names = [f[0] for f in _entries(ETC / "group") if len(f) > 2 and f[2] == group]
        group = names[0] if names else group
    remap = load(f"{user}:{group}")
    return f"{remap.user}:{remap.group}"


def load(value: str) -> Remap:
    user, _, group = value.partition(":")
    uids = _ranges(ETC / "subuid", {user})
    gids = _ranges(ETC / "subgid", {group})
    if not uids:
        raise InvalidArgument(f"No subuid ranges found for user {user!r}")
    if not gids:
        raise InvalidArgument(f"No subgid ranges found for group {group!r}")
    return Remap(user, group, _id_map(uids), _id_map(gids))


_LOCK = threading.Lock()
_CURRENT: dict[str, Remap] = {}
_FDS: dict[Remap, int] = {}


def current() -> Remap | None:
    """The daemon's remapping, None when off (read from ``DOCKYARD_USERNS_REMAP``)."""
    value = os.environ.get(ENV, "")
    if not value:
        return None
    with _LOCK:
        if value not in _CURRENT:
            _CURRENT[value] = load(value)
        return _CURRENT[value]


@contextmanager
def userns_fd(remap: Remap) -> Iterator[int]:
    """A user namespace with the remapping (for an idmapped mount): the daemon's made once per
    process, a ``--userns auto`` container's made for the call and closed after."""
    from .. import _native

    if remap.user == AUTO_USER:
        fd = _native.userns_fd(list(remap.uids), list(remap.gids))
        try:
            yield fd
        finally:
            os.close(fd)
        return
    with _LOCK:
        fd = _FDS.get(remap)
        if fd is None:
            fd = _FDS[remap] = _native.userns_fd(list(remap.uids), list(remap.gids))
    yield fd


def applies(spec: dict) -> Remap | None:
    """The remapping for a container (its record's spec): its own range with ``--userns auto``,
    none when it opted out (``--userns host``), else the daemon's, if any."""
    mode = spec["HostConfig"].get("UsernsMode") or ""
    if mode == "host":
        return None
    if mode.startswith("auto"):
        (uid, gid, size) = spec["_UsernsAuto"]
        return Remap(AUTO_USER, AUTO_USER, ((0, uid, size),), ((0, gid, size),))
    return current()


# -- --userns auto -------------------------------------------------------------------------------
#
# As podman's: each container gets a range of its own, taken from the subordinate ids of the user
# ``containers`` (/etc/subuid, /etc/subgid) and kept in its record for its whole life; ranges never
# overlap.  The size is 65536 (podman's largest) unless ``auto:size=N``: podman sizes the range
# from the highest id in the image, which takes a walk of every layer.

AUTO_USER = "containers"
AUTO_SIZE = 65536


def check_mode(mode: str) -> str:
    """A container's ``UsernsMode`` as given to create: "", "host", "auto" or "auto:size=N";
    InvalidArgument (dockerd's words) otherwise."""
    if mode in ("", "host", "auto"):
        return mode
    if mode.startswith("auto:"):
        for opt in mode[5:].split(","):
            key, _, value = opt.partition("=")
            if key != "size" or not value.isdigit() or not 0 < int(value) <= 1 << 32:
                raise InvalidArgument(f"invalid USER mode: {mode}: unknown or invalid option {opt!r} (want size=N)")
        return mode
    raise InvalidArgument(f"invalid USER mode: {mode}")


def _auto_size(mode: str) -> int:
    for opt in mode[5:].split(","):
        if opt.startswith("size="):
            return int(opt[5:])
    return AUTO_SIZE


def _first_free(pool: list[tuple[int, int]], taken: list[tuple[int, int]], size: int) -> int | None:
    """The lowest start of ``size`` ids inside one range of ``pool`` overlapping nothing taken."""
    taken = sorted(taken)
    for start, count in pool:
        at = start
        for t_start, t_size in taken:
            if t_start + t_size <= at:
                continue
            if t_start >= at + size:
                break
            at = t_start + t_size
        if at + size <= start + count:
            return at
    return None


def allocate_auto(mode: str, taken: list[tuple[int, int, int]]) -> list[int]:
    """``[uid, gid, size]`` for a new ``--userns auto`` container, given the ranges other
    containers hold (``(uid, gid, size)`` each).  Called inside the store's write transaction,
    which serializes creates."""
    size = _auto_size(mode)
    uids = _ranges(ETC / "subuid", {AUTO_USER})
    gids = _ranges(ETC / "subgid", {AUTO_USER})
    if not uids or not gids:
        which = "subuid" if not uids else "subgid"
        raise InvalidArgument(f"cannot find mappings for user \"{AUTO_USER}\": no {which} ranges found for "
                              f"user \"{AUTO_USER}\" in /etc/{which}")
    uid = _first_free(uids, [(u, n) for u, _, n in taken], size)
    gid = _first_free(gids, [(g, n) for _, g, n in taken], size)
    if uid is None or gid is None:
        raise InvalidArgument(f"not enough unused IDs in user namespace: the subordinate ids of \"{AUTO_USER}\" "
                              f"have no free range of {size}")
    return [uid, gid, size]


def _check_reachable(root: Path, remap: Remap) -> None:
    """InvalidArgument, in one line, when a directory above the data root keeps the remapped
    root out (the runtime would fail with a bare EACCES on the first layer)."""
    uid, gid = remap.root
    for d in root.parents:
        st = d.stat()
        if st.st_mode & 0o001 or (st.st_uid == uid and st.st_mode & 0o100) or (st.st_gid == gid and st.st_mode & 0o010):
            continue
        raise InvalidArgument(f"user namespace remapping: the container's root (uid {uid} on the host) cannot reach the "
                              f"data root {root}: {d} is mode {st.st_mode & 0o7777:04o} (it needs o+x)")


def remap_bundle(ctrs, rec: dict, remap: Remap, spec: dict) -> None:
    """The bundle of a container that runs remapped: it gets a user namespace with ``remap``
    and its overlay is mounted by the runtime inside it, over an idmapped view of the store
    (``containers/<id>/idmap``, attached until the runtime has mounted; the engine unmounts it
    after the start): its root sees the image's files as its own, its writes reach the upper
    dir with the image's ids, and no layer is chowned or copied.  Volumes are plain binds, each
    new one handed to the remapped root (as dockerd's remapped volumes are)."""
    from .. import _native
    from .containers import _native_umount

    root = ctrs.store.root
    d = ctrs.dir(rec["id"])
    ctrs._unmount_rootfs(rec["id"], view_only=True)  # the copy-up view, if one was made
    # The runtime mounts as the container's root, an unprivileged host user: it must get
    # through the store root to the view (0711, as dockerd's data root under remapping).
    mode = root.stat().st_mode
    if not mode & 0o001:
        os.chmod(root, (mode & 0o7777) | 0o001)
    _check_reachable(root, remap)
    view = d / "idmap"
    view.mkdir(exist_ok=True)
    _native_umount(view)
    with userns_fd(remap) as fd:
        _native.idmap_mount(str(root), str(view), fd)

    def seen(p: Path) -> str:
        return str(view / p.relative_to(root))

    spec.setdefault("annotations", {})["dockyard.rootfs.overlay"] = json.dumps(
        {"lower": [seen(p) for p in ctrs._lowers(rec)], "upper": seen(d / "upper"), "work": seen(d / "work")})
    linux = spec["linux"]
    linux["namespaces"].append({"type": "user"})
    linux.update(remap.spec())
    root_uid, root_gid = remap.root
    volumes = root / "volumes"
    # sysfs needs the network namespace to belong to the container's user namespace: one the
    # runtime makes does (--network none); one the engine made before, or the host's, does not
    own_netns = any(ns["type"] == "network" and not ns.get("path") for ns in linux["namespaces"])
    for m in spec.get("mounts") or []:
        if m.get("type") == "sysfs" and not own_netns:
            # the host's /sys, read-only, as runc falls back to
            m.update(type="bind", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])
        src = Path(m.get("source") or "")
        if m.get("type") == "bind" and src.is_relative_to(volumes):
            st = src.stat()
            if (st.st_uid, st.st_gid) == (0, 0):
                os.chown(src, root_uid, root_gid)
