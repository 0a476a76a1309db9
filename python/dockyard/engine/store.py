"""The on-disk store: SQLite metadata, content-addressed blobs and extracted layers.

Layout under the root (``DOCKYARD_ROOT``, default ``/var/lib/dockyard``)::

    state.db                 SQLite (WAL): images, tags, layers, image_layers, containers ...
    blobs/sha256/<hex>       configs; layer blobs as they arrived (gzip, zstd or plain), or an
                             imported or loaded layer's tar-split (its tar minus file contents)
    layers/<chain-hex>/      each layer extracted once, whiteouts in overlay form
    tmp/<pid>-<rand>/        staging; anything here belongs to a live process or is garbage
    lock                     flock: shared while a process uses the store, exclusive to sweep

Crash safety: a blob or layer is written under ``tmp/``, verified, then renamed into place
inside the SQLite transaction that registers it, so a crash leaves at worst an unregistered
file or directory.  :meth:`Store.sweep` removes those; it runs when a process opens the store
and finds no other process using it (the exclusive flock succeeds).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

SCHEMA_VERSION = 4  # bump when SCHEMA changes (user_version tells whether to run it)
SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id          TEXT PRIMARY KEY,          -- sha256:<hex of config>
    created     TEXT NOT NULL,             -- the config's "created", RFC 3339
    size        INTEGER NOT NULL,          -- sum of layer content sizes
    parent      TEXT NOT NULL DEFAULT '',  -- local parent (commit/build), as docker
    added_at    REAL NOT NULL              -- when this store learnt of it
);
CREATE TABLE IF NOT EXISTS tags (
    name        TEXT PRIMARY KEY,          -- docker.io/library/busybox:latest
    image_id    TEXT NOT NULL REFERENCES images(id)
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS repo_digests (
    name        TEXT NOT NULL,             -- docker.io/library/busybox@sha256:...
    image_id    TEXT NOT NULL REFERENCES images(id),
    PRIMARY KEY (name)
);
CREATE TABLE IF NOT EXISTS layers (
    chain_id    TEXT PRIMARY KEY,
    diff_id     TEXT NOT NULL,
    parent      TEXT,                      -- chain id of the layer below, NULL at the bottom
    blob        TEXT NOT NULL,             -- digest of the blob kept in blobs/
    blob_size   INTEGER NOT NULL,
    compression TEXT NOT NULL,             -- none | gzip | zstd | tar-split (blob: see split.rs)
    size        INTEGER NOT NULL,          -- uncompressed tar bytes
    content_size INTEGER NOT NULL          -- bytes of regular files (docker's layer size)
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    chain_id    TEXT NOT NULL REFERENCES layers(chain_id),
    PRIMARY KEY (image_id, idx)
);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS containers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    image_id    TEXT NOT NULL REFERENCES images(id),
    created     TEXT NOT NULL,
    spec        TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id);
CREATE INDEX IF NOT EXISTS containers_by_created ON containers(created, id);  -- covers the list's first query
DROP INDEX IF EXISTS containers_created;  -- (schema 2 and 3's, which did not cover it)
-- the few containers that have --link (every start asks which running ones link to it)
CREATE INDEX IF NOT EXISTS containers_linking ON containers(id)
    WHERE json_array_length(spec, '$.HostConfig.Links') > 0;
-- a number that changes with every change to a container's row, so the container list re-reads
-- and re-encodes only the rows that changed (a side table: a store made by version 1 gains it
-- without altering containers)
CREATE TABLE IF NOT EXISTS container_revs (
    id          TEXT PRIMARY KEY REFERENCES containers(id) ON DELETE CASCADE,
    rev         INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO container_revs SELECT id, 0 FROM containers;
CREATE TRIGGER IF NOT EXISTS containers_rev_insert AFTER INSERT ON containers BEGIN
    INSERT OR REPLACE INTO container_revs VALUES (NEW.id, 0);
END;
CREATE TRIGGER IF NOT EXISTS containers_rev_update AFTER UPDATE ON containers BEGIN
    UPDATE container_revs SET rev = rev + 1 WHERE id = NEW.id;
END;
"""


def default_root() -> Path:
    return Path(os.environ.get("DOCKYARD_ROOT", "/var/lib/dockyard"))


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI chain IDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    import hashlib

    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def _hex(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hexpart


def pid_alive(pid: int) -> bool:
    """A live process (a zombie, dead but not yet reaped, counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


#: The store and the run dir are private to root, as dockerd keeps its root: 0710, the group
#: (``dockyard`` when it exists, as for the socket) may only pass through, others not at all.
#: Only these top directories need it: a container's process sees its rootfs and volumes through
#: mounts made by root, never through these paths, so ``--user nobody`` containers still work.
PRIVATE_MODE = 0o710


def private_dir(path: Path) -> None:
    """Make ``path`` (and missing parents) and make it private: owner root, mode 0710, group
    ``dockyard`` when that group exists.  Also for a directory made by someone else (a store
    adopted from an older version, say): its mode is tightened, never loosened."""
    import stat

    path.mkdir(parents=True, exist_ok=True)
    st = os.stat(path)
    mode = stat.S_IMODE(st.st_mode)
    if mode & ~PRIVATE_MODE & 0o777:
        os.chmod(path, mode & PRIVATE_MODE)
    if os.geteuid() == 0:
        gid = _dockyard_gid()
        if st.st_uid != 0 or st.st_gid != gid:
            os.chown(path, 0, gid)


_GID: list[int] = []


def _dockyard_gid() -> int:
    if not _GID:
        import grp

        try:
            _GID.append(grp.getgrnam("dockyard").gr_gid)
        except KeyError:
            _GID.append(0)
    return _GID[0]


def write_atomic(dest: str | os.PathLike[str], data: bytes, mode: int = 0o600, tmp_dir: Path | None = None,
                 fsync: bool = True) -> None:
    """Write ``data`` to a temporary name beside ``dest`` (or in ``tmp_dir``, on the same file
    system), fsync, rename over ``dest``.  On any failure (ENOSPC, EDQUOT, a signal) the
    temporary file is removed: nothing but ``dest``, old or new, is ever left."""
    dest = Path(dest)
    tag = f"{os.getpid()}-{os.urandom(4).hex()}"
    tmp = tmp_dir / f"{tag}.tmp" if tmp_dir is not None else dest.with_name(f".{dest.name}.{tag}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def private_file(path: Path) -> None:
    """Tighten an existing file to 0600 (a store adopted from a version that left it 0644)."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)


def run_root() -> Path:
    """``$DOCKYARD_RUN``: sockets, runtime state, attach sockets, network namespaces."""
    return Path(os.environ.get("DOCKYARD_RUN", "/run/dockyard"))


class Store:
    """One handle on the store.  Cheap to open; safe to use from several processes at once."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        private_dir(self.root)
        if not (self.root / "tmp").is_dir():  # a new root (tmp/ is made last)
            for sub in ("blobs/sha256", "layers", "containers", "volumes", "tmp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        if run_root().is_dir():  # (made by the daemon before it opens the store; not made here)
            private_dir(run_root())
        db_path = self.root / "state.db"
        if not db_path.exists():
            # SQLite gives the -wal and -shm files the database file's mode: make it 0600 first
            os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        else:
            for suffix in ("", "-wal", "-shm"):
                private_file(self.root / f"state.db{suffix}")
        self._lock_fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
            alone = False
        else:
            alone = True
        self.db = sqlite3.connect(
            db_path, timeout=60, isolation_level=None, check_same_thread=False
        )
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        if self.db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            self.db.executescript(SCHEMA)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        if alone:
            self.sweep()
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH)

    def close(self) -> None:
        self.db.close()
        os.close(self._lock_fd)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; a rename done inside is undone by sweep() on a crash.
        On a nearly full disk the reserve goes first (:func:`keep_reserve`)."""
        keep_reserve(self.root)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if self.db.in_transaction:  # SQLite rolls back by itself after SQLITE_FULL
                self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    # -- paths ----------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / _hex(digest)

    def layer_path(self, chain_id: str) -> Path:
        return self.root / "layers" / _hex(chain_id)

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private directory under tmp/, removed on exit whatever happens."""
        path = self.root / "tmp" / f"{os.getpid()}-{os.urandom(6).hex()}"
        path.mkdir()
        try:
            yield path
        finally:
            remove_tree(path)

    # -- blobs ----------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def put_blob_bytes(self, data: bytes) -> str:
        import hashlib

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        dest = self.blob_path(digest)
        if not dest.exists():
            write_atomic(dest, data, mode=0o644, tmp_dir=self.root / "tmp")
        return digest

    def adopt_blob(self, tmp: Path, digest: str) -> None:
        """Move a verified file into the blob store (a no-op if the blob is already there)."""
        dest = self.blob_path(digest)
        if dest.exists():
            tmp.unlink(missing_ok=True)
        else:
            os.rename(tmp, dest)

    def read_blob(self, digest: str) -> bytes:
        from .. import _native  # (hashlib would load OpenSSL: milliseconds of every start-up)

        path = self.blob_path(digest)
        data = path.read_bytes()
        if _native.sha256_file(str(path)) != digest:
            from ..errors import DockyardError

            raise DockyardError(f"blob {digest} is corrupt in the store")
        return data

    # -- garbage ---------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Remove what a crashed process left: staging dirs, unregistered layers and blobs.

        Only call with the exclusive lock held (no other process is using the store).  Every
        write that can leave an unregistered layer or blob behind runs inside a staging dir
        under tmp/, so the scan of layers/ and blobs/ happens only when tmp/ shows that a
        process died mid-write: the common case costs one listdir."""
        crashed = False
        for entry in (self.root / "tmp").iterdir():
            pid = entry.name.split("-", 1)[0]
            if not pid.isdigit() or not pid_alive(int(pid)) or int(pid) == os.getpid():
                remove_tree(entry)
                crashed = True
        if not crashed:
            return
        known_layers = {_hex(r[0]) for r in self.db.execute("SELECT chain_id FROM layers")}
        for entry in (self.root / "layers").iterdir():
            if entry.name not in known_layers:
                remove_tree(entry)
        referenced = self.referenced_blobs()
        for entry in (self.root / "blobs" / "sha256").iterdir():
            # No other process is using the store, so an unreferenced blob is garbage.
            if entry.name not in referenced:
                entry.unlink(missing_ok=True)

    def referenced_blobs(self) -> set[str]:
        refs = {_hex(r[0]) for r in self.db.execute("SELECT id FROM images")}
        refs |= {_hex(r[0]) for r in self.db.execute("SELECT blob FROM layers")}
        return refs

    def delete_unreferenced(self, chain_ids_: list[str], blobs: list[str]) -> None:
        """After a transaction that dropped references: delete layers/blobs nobody uses now."""
        for chain_id in chain_ids_:
            path = self.layer_path(chain_id)
            if path.exists():
                row = self.db.execute("SELECT 1 FROM layers WHERE chain_id=?", (chain_id,)).fetchone()
                if row is None:
                    remove_tree(path)
        if blobs:
            referenced = self.referenced_blobs()
            for digest in blobs:
                if _hex(digest) not in referenced:
                    self.blob_path(digest).unlink(missing_ok=True)


#: Space kept in ``<root>/reserve`` for the database (see :func:`keep_reserve`).
RESERVE_BYTES = 4 << 20


def keep_reserve(root: Path) -> None:
    """Keep room for the database on the store's file system.

    A container that fills the disk (its upper dir is on it) must not stop ``rm``, ``rmi`` or
    ``prune`` from freeing it, yet SQLite needs a few free pages to commit even a delete.  So
    ``<root>/reserve`` holds :data:`RESERVE_BYTES` preallocated while space is plentiful; when
    less than that is free it is deleted before the next transaction begins, which hands its
    space to the database, and it is made again once four times as much is free.  Costs one
    statvfs and one stat per transaction."""
    path = os.path.join(root, "reserve")
    try:
        st = os.statvfs(root)
    except OSError:
        return
    free = (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize
    if free < RESERVE_BYTES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    elif free >= 4 * RESERVE_BYTES and not os.path.exists(path):
        tmp = os.path.join(root, "tmp", f"{os.getpid()}-reserve-{os.urandom(4).hex()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
            os.rename(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        finally:
            os.close(fd)


def is_mountpoint(path: Path) -> bool:
    """``path`` is a mount point (False when it cannot be looked at)."""
    try:
        return os.path.ismount(path)
    except OSError:
        return False


def remove_tree(path: Path) -> None:
    """rm -rf: never follows a symlink out of ``path``; a missing path is not an error."""
    import stat

    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        path.unlink(missing_ok=True)
        return

    def onerror(func, p, exc_info):
        if not isinstance(exc_info[1], FileNotFoundError):
            raise exc_info[1]

    shutil.rmtree(path, onerror=onerror)


def dumps(obj: object) -> str:
    """JSON as Go's encoding/json writes it compactly (the bytes that get hashed)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def tree_size(path: str | Path) -> int:
    """Bytes of the non-directories under ``path``, hardlinks once (docker's directory size)."""
    total, seen = 0, set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
