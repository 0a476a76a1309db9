"""``docker pull`` over a :class:`~.client.Registry`.

Pull never trusts the network: every manifest and config is hashed before it is parsed, and
every layer's compressed digest and uncompressed diff ID are checked by the extractor in the
same pass that writes it.  A layer is extracted as it downloads: the bytes read from the
socket go to the blob file the store keeps and into a pipe the native extractor reads
(decompress, hash, write files), and layers move in parallel.  Everything is written under a
staging directory and registered in one transaction at the end, so a failed pull leaves
nothing in the store.  The one thing it leaves is each blob's bytes as far as they came,
under ``<root>/partial/<hex>`` (never registered, never read but by a pull): a pull cut
short, interrupted or killed is resumed by the next one, which feeds the extractor what is
kept and asks the registry for the rest with Range; the digests are checked over both.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import reference as refs
from ..errors import DockyardError, LayerError
from . import auth
from .client import CHUNK, DOWNLOADS, Progress, Registry, no_progress, record_names, short_id
from .common import INDEX_TYPES, MANIFEST_TYPES, Denied, DigestMismatch, RegistryError, Unauthorized, valid_digest

log = logging.getLogger("dockyard.daemon")


@dataclass
class PullResult:
    reference: str           # what was pulled, normalised (docker.io/library/busybox:latest)
    image_id: str
    digest: str              # the manifest (or index) digest the reference resolved to
    new: bool                # False: the image was there already ("Image is up to date")
    messages: list[str] = field(default_factory=list)


def parse_platform(value: str | None) -> tuple[str, str, str]:
    from ..engine.images import _go_arch

    if not value:
        return "linux", _go_arch(), ""
    parts = value.lower().split("/")
    osname = parts[0] or "linux"
    arch = parts[1] if len(parts) > 1 else _go_arch()
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    variant = parts[2] if len(parts) > 2 else ""
    return osname, arch, variant


def _choose(index: dict, platform: tuple[str, str, str], where: str) -> dict:
    osname, arch, variant = platform
    candidates = []
    for desc in index.get("manifests") or []:
        p = desc.get("platform") or {}
        if p.get("os") != osname or p.get("architecture") != arch:
            continue
        if variant and p.get("variant", "") != variant:
            continue
        candidates.append(desc)
    if not candidates:
        want = "/".join(x for x in platform if x)
        raise RegistryError(f"no matching manifest for {want} in the manifest list entries of {where}")
    if arch == "arm64" and not variant:  # prefer v8 as docker does
        candidates.sort(key=lambda d: (d.get("platform") or {}).get("variant", "") not in ("", "v8"))
    return candidates[0]


def pull(engine, name: str, *, platform: str | None = None, all_tags: bool = False,
         progress: Progress | None = None, registry: Registry | None = None) -> list[PullResult]:
    """``docker pull``: every image that ``name`` (or, with ``all_tags``, its repository)
    names, registered under its tag and ``name@digest``."""
    ref = refs.parse(name)
    if all_tags and (ref.tag or ref.digest):
        raise DockyardError("tag can't be used with --all-tags/-a")
    if ref.domain in auth.HUB_DOMAINS and not (registry is not None and registry.mirror):
        from .client import hub_mirrors

        for mirror in hub_mirrors():  # first, as dockerd: a mirror that cannot serve it, the next
            # (with the credentials the client sent for the Hub, as dockerd's: none stored are sent)
            reg = Registry(ref.domain, credentials=registry.credentials if registry is not None else None,
                           use_stored_credentials=False, at=mirror)
            try:
                return pull(engine, name, platform=platform, all_tags=all_tags, progress=progress, registry=reg)
            except (RegistryError, OSError) as exc:
                log.info("pull %s from the mirror %s failed (%s): trying the next", name, mirror, exc)
            finally:
                reg.close()
    reg = registry or Registry(ref.domain)
    try:
        if all_tags:
            targets = [ref.with_tag(t) for t in sorted(reg.tags(ref.path))]
        else:
            targets = [ref.with_default_tag()]
        return [_pull_one(engine, reg, target, parse_platform(platform), progress or no_progress)
                for target in targets]
    finally:
        if registry is None:
            reg.close()


def _pull_one(engine, reg: Registry, ref: refs.Reference, platform: tuple[str, str, str],
              progress: Progress) -> PullResult:
    from ..engine.store import chain_ids

    repo = ref.path
    reference = ref.digest or ref.tag or "latest"
    try:
        data, media, digest = reg.get_manifest(repo, reference)
    except (Unauthorized, Denied) as exc:
        detail = str(exc).split(": ", 1)[-1]
        raise type(exc)(f"pull access denied for {ref.familiar_name}, repository does not exist or may "
                        f"require 'dockyard login': {detail}", exc.code, exc.http_status) from None
    top_digest = digest
    doc = json.loads(data)
    if media in INDEX_TYPES or (not media and "manifests" in doc):
        desc = _choose(doc, platform, f"{ref.familiar_name}:{reference}")
        if not valid_digest(str(desc.get("digest"))):
            raise RegistryError(f"{ref.familiar()}: the index names an unsupported digest {desc.get('digest')!r}")
        data, media, digest = reg.get_manifest(repo, desc["digest"])
        if desc.get("size") not in (None, len(data)):
            raise DigestMismatch(f"manifest {desc['digest']} is {len(data)} bytes, the index says {desc['size']}")
        doc = json.loads(data)
    if media not in MANIFEST_TYPES and not (not media and "layers" in doc):
        if doc.get("schemaVersion") == 1:
            raise RegistryError(f"{ref.familiar()}: Docker schema 1 manifests are not supported")
        raise RegistryError(f"{ref.familiar()}: unsupported manifest media type {media!r}")
    try:
        config_desc = doc["config"]
        layer_descs = doc.get("layers") or []
        for d in [config_desc, *layer_descs]:
            if not valid_digest(d["digest"]):
                raise RegistryError(f"{ref.familiar()}: unsupported digest {d['digest']!r}")
    except (KeyError, TypeError):
        raise RegistryError(f"{ref.familiar()}: malformed manifest") from None
    progress("", f"{ref.tag or ref.digest}: Pulling from {ref.path}", None, None)
    images = engine.images
    store = engine.store
    image_id = config_desc["digest"]
    exists = store.db.execute("SELECT 1 FROM images WHERE id=?", (image_id,)).fetchone() is not None
    if exists:
        config = images.config_bytes(image_id)
    else:
        config = reg.get_blob_bytes(repo, image_id)
    try:
        diff_ids = json.loads(config)["rootfs"]["diff_ids"] or []
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"{ref.familiar()}: the image config is malformed") from None
    if len(diff_ids) != len(layer_descs):
        raise RegistryError(f"{ref.familiar()}: the manifest has {len(layer_descs)} layers, the config "
                            f"{len(diff_ids)}")
    for d in layer_descs:
        if "foreign" in d.get("mediaType", "") or "nondistributable" in d.get("mediaType", ""):
            if d.get("urls"):
                raise RegistryError(f"{ref.familiar()}: foreign layers are not supported")
    tags = [str(ref)] if ref.tag else []
    repo_digest = f"{ref.name}@{top_digest}"
    if exists:
        # nothing to fetch (dockerd prints no layer lines then); "newer" means the reference
        # moved: a tag (or the digest reference) that did not name this image before
        named = [(t, "tags") for t in tags] or [(repo_digest, "repo_digests")]
        moved = any(store.db.execute(f"SELECT 1 FROM {table} WHERE name=? AND image_id=?",
                                     (name, image_id)).fetchone() is None for name, table in named)
        record_names(engine, image_id, tags, repo_digest)
        return PullResult(str(ref), image_id, top_digest, moved)

    chains = chain_ids(diff_ids)
    known = {r[0] for r in store.db.execute("SELECT chain_id FROM layers")}
    records: list[dict | None] = [None] * len(layer_descs)
    todo = []
    for i, (d, diff_id, chain) in enumerate(zip(layer_descs, diff_ids, chains)):
        if chain in known:
            records[i] = {"diff_id": diff_id, "chain_id": chain, "existing": True}
            progress(short_id(d["digest"]), "Already exists", None, None)
        else:
            todo.append(i)
            progress(short_id(d["digest"]), "Pulling fs layer", None, None)

    prune_partials(store, older_than=PARTIAL_TTL)
    held: list[_Partial] = []  # locked until the image is registered (or the pull fails)
    lock = threading.Lock()
    with store.staging() as stage, contextlib.ExitStack() as release:
        release.callback(lambda: [p.close() for p in held])

        def one(i: int) -> dict:
            d = layer_descs[i]
            short = short_id(d["digest"])
            target = stage / f"layer{i}"
            target.mkdir()
            if store.has_blob(d["digest"]):
                blob_file = stage / f"none{i}"
                # with a progress detail, as dockerd sends it: a client off a terminal skips it
                progress(short, "Extracting", 0, d.get("size") or None)
                rec = _extract(store.blob_path(d["digest"]), target, d["digest"], diff_ids[i])
            else:
                part = _Partial.open(store, d["digest"], stage / f"blob{i}")
                with lock:
                    held.append(part)
                blob_file = part.path
                try:
                    rec = _fetch_layer(reg, repo, d, part, target, diff_ids[i], short, progress)
                except (DigestMismatch, LayerError) as exc:
                    if isinstance(exc, CutShort):
                        raise  # the prefix is good: the next pull goes on from its end
                    again = part.held > 0
                    part.reset()
                    if not again:
                        raise
                    # What a cut-short pull kept may be what is wrong (a crash can leave
                    # garbage in a file's last pages): once more, from the first byte.
                    from ..engine.store import remove_tree

                    remove_tree(target)
                    target.mkdir()
                    try:
                        rec = _fetch_layer(reg, repo, d, part, target, diff_ids[i], short, progress)
                    except (DigestMismatch, LayerError) as exc2:
                        if not isinstance(exc2, CutShort):
                            part.reset()
                        raise
            rec["dir"], rec["blob_file"], rec["chain_id"] = target, blob_file, chains[i]
            rec["blob"], rec["blob_size"], rec["blob_compression"] = d["digest"], rec["compressed_size"], rec["compression"]
            progress(short, "Pull complete", None, None)
            return rec

        if todo:
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(_downloads(len(todo))) as pool:
                futures = {i: pool.submit(one, i) for i in todo}
                try:
                    for i, fut in futures.items():
                        records[i] = fut.result()
                except BaseException:
                    for fut in futures.values():
                        fut.cancel()
                    raise
        from ..engine.images import NewImage

        image_id, _ = images.register(NewImage(config, tags), records)  # type: ignore[arg-type]
        record_names(engine, image_id, [], repo_digest)
        for part in held:
            part.drop()  # one the store did not adopt (another pull registered the layer first)
    return PullResult(str(ref), image_id, top_digest, True)


def _downloads(layers: int) -> int:
    """Layers pulled at once: the daemon's ``--max-concurrent-downloads`` (or daemon.json's
    ``max-concurrent-downloads``: cli/daemon.py puts either in
    ``$DOCKYARD_MAX_CONCURRENT_DOWNLOADS``), else dockerd's default (3); 0 means no limit, as in
    dockerd."""
    value = os.environ.get("DOCKYARD_MAX_CONCURRENT_DOWNLOADS", "")
    n = int(value) if value.isdigit() else DOWNLOADS
    return max(1, min(n or layers, layers))


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data):]


class _Appender:
    """Appends a blob's bytes to its file from ``offset`` on, past the page cache (O_DIRECT)
    where the file system allows it.  The store keeps the compressed blob for push and save but
    nothing reads it during the pull (the extractor gets the same bytes from a pipe): written
    through the cache it took a page per 4 KiB, fresh memory, which was about a sixth of a
    pull's CPU on this project's VMs (13% of perf's samples, a fifth of them idle).  Whole
    aligned blocks go out from a page-aligned buffer; what is left at :meth:`close` (under a
    block) is written through the cache.  Ordinary writes where the file system refuses
    direct I/O, where a resumed prefix ends off a block, and from the first write that shows a
    device slower than :attr:`SLOW` on (there the cache is the better buffer: the download
    would wait for the disk).  :meth:`close` must run however the download ends: the file then
    holds every byte given, in order (what a later pull resumes from)."""

    BLOCK = 4096
    SLOW = 0.02  # seconds for a MiB written direct (50 MB/s)

    def __init__(self, fd: int, offset: int) -> None:
        import mmap

        self.fd, self.off, self.fill = fd, offset, 0
        direct = offset % self.BLOCK == 0 and self._set_direct(True)
        self.buf = mmap.mmap(-1, CHUNK) if direct else None

    def _set_direct(self, on: bool) -> bool:
        flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETFL, flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)
        except OSError:
            return False  # (tmpfs before Linux 6.6, some FUSE file systems)
        return True

    def write(self, data: memoryview) -> None:
        while data and self.buf is not None:
            take = min(len(data), CHUNK - self.fill)
            self.buf[self.fill:self.fill + take] = data[:take]
            self.fill += take
            data = data[take:]
            if self.fill == CHUNK:
                self._flush()
        if data:
            self._pwrite(data)

    def _flush(self) -> None:
        assert self.buf is not None
        whole = self.fill - self.fill % self.BLOCK
        if not whole:
            return
        start, t0 = self.off, time.monotonic()
        with memoryview(self.buf) as view:
            try:
                self._pwrite(view[:whole])
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._to_cache(self.off - start)  # the device wants an alignment beyond 4 KiB
                return
        self.buf.move(0, whole, self.fill - whole)
        self.fill -= whole
        if time.monotonic() - t0 > self.SLOW * whole / CHUNK:
            self._to_cache(0)

    def _to_cache(self, done: int) -> None:
        """Ordinary writes from now on, starting with the staged bytes after the first ``done``."""
        buf, self.buf = self.buf, None
        assert buf is not None
        try:
            self._set_direct(False)
            with memoryview(buf) as view:
                self._pwrite(view[done:self.fill])
            self.fill = 0
        finally:
            buf.close()

    def _pwrite(self, data: memoryview) -> None:
        while data:
            wrote = os.pwrite(self.fd, data, self.off)
            self.off += wrote
            data = data[wrote:]

    def close(self) -> None:
        if self.buf is not None:
            self._flush()  # whole blocks direct (unless this turns to the cache)
            if self.buf is not None:
                self._to_cache(0)  # the tail, under a block
        os.lseek(self.fd, self.off, os.SEEK_SET)


def _grow_pipe(fd: int) -> None:
    """A pipe of 1 MiB (the default ceiling for an unprivileged one) rather than 64 KiB: the
    downloader's chunk goes in with one write and the extractor takes it with one read."""
    for size in (CHUNK, 256 << 10):
        try:
            fcntl.fcntl(fd, 1031, size)  # F_SETPIPE_SZ
            return
        except OSError:
            continue


class CutShort(DigestMismatch):
    """A blob whose connection dropped on every try: the bytes that came are good so far."""


#: A kept prefix untouched for this long is dropped (by the next pull on the same store).
PARTIAL_TTL = 7 * 24 * 3600


def _partial_dir(store) -> Path:
    # Beside tmp/ rather than in it: tmp/ holds only what a live process is writing (the
    # sweep empties it after a crash), and these must outlast the process.
    return store.root / "partial"


def prune_partials(store, older_than: float | None = None) -> int:
    """Drop the kept prefixes of blobs that no pull is writing (their flock is free): all of
    them (``image prune``, and so ``system prune``), or those untouched for ``older_than``
    seconds (each pull, with PARTIAL_TTL); the bytes freed."""
    try:
        entries = list(os.scandir(_partial_dir(store)))
    except OSError:
        return 0
    cutoff = None if older_than is None else time.time() - older_than
    freed = 0
    for entry in entries:
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (a pull that opens it after sees
            st = os.fstat(fd)                               # another inode, and starts over)
            if cutoff is None or st.st_mtime < cutoff:
                os.unlink(entry.path)
                freed += st.st_size
        except OSError:
            pass  # being written by a pull (BlockingIOError), or gone already
        finally:
            os.close(fd)
    return freed


class _Partial:
    """The file a layer's blob downloads into.  It lives under the store's temp area keyed by
    digest (``partial/<hex>``) and outlasts a pull that is cut short, interrupted or
    killed, so the next pull feeds the extractor what it holds and asks the registry for the
    rest with Range (``held`` bytes).  An flock says who is writing it: another pull of the
    same blob at the same time downloads to a private ``fallback`` file instead.  The lock
    stays until the image is registered (its blob renamed into the store) or the pull fails."""

    def __init__(self, fd: int, path: Path, kept: bool) -> None:
        self.fd, self.path, self.kept = fd, path, kept
        size = os.fstat(fd).st_size
        self.held = size

    @classmethod
    def open(cls, store, digest: str, fallback: Path) -> _Partial:
        path = _partial_dir(store) / digest.partition(":")[2]
        for _ in range(3):
            try:
                path.parent.mkdir(mode=0o700, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                break
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return cls(fd, path, True)
            os.close(fd)  # renamed into the store (or reset) while we waited: a new one
        fd = os.open(fallback, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        return cls(fd, fallback, False)

    def reset(self) -> None:
        """Its bytes are wrong: start over from the first."""
        os.ftruncate(self.fd, 0)
        self.held = 0

    def drop(self) -> None:
        """The image is registered: a kept file still at its path (the store took none, another
        pull registered the layer first) is not needed any more.  One the store adopted has
        been renamed into blobs/: the descriptor is that blob now, so only the path is looked at."""
        if self.fd < 0 or not self.kept:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)

    def close(self) -> None:
        """Unlock; a kept file that holds nothing (reset, or cut before its first byte) goes."""
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            st = os.fstat(self.fd)
            if self.kept and st.st_size == 0 and os.stat(self.path).st_ino == st.st_ino:
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = -1


def _feed(sink: int, fd: int, count: int) -> bool:
    """Copy the first ``count`` bytes of ``fd`` into the pipe ``sink`` (in the kernel); False
    when the reader has gone."""
    off = 0
    try:
        while off < count:
            sent = os.sendfile(sink, fd, off, count - off)
            if not sent:
                raise CutShort("a kept prefix shrank while it was read")
            off += sent
    except BrokenPipeError:
        return False
    return True


def _fetch_layer(reg: Registry, repo: str, desc: dict, part: _Partial, target: Path, diff_id: str,
                 short: str, progress: Progress) -> dict:
    """Download a layer's blob to ``part`` and extract it into ``target`` in the same pass:
    each chunk read from the socket goes to the file and into a pipe that the native extractor
    reads (decompressing, hashing and writing files on its own threads), so extraction ends
    as the last byte arrives.  What ``part`` holds from an earlier pull goes into the pipe
    first, and the download asks for the rest (Range); resumed downloads continue the same
    stream: the extractor sees one body.  Both digests are checked once the stream ends, over
    prefix and rest alike."""
    from .. import _native

    digest = desc["digest"]
    blob_file = part.path
    r, w = os.pipe()
    _grow_pipe(w)
    box: dict = {}

    def extract() -> None:
        try:
            box["info"] = _native.extract(f"/proc/self/fd/{r}", str(target))
        except BaseException as exc:  # (handed to the pulling thread)
            box["error"] = exc
        finally:
            os.close(r)  # the downloader's next write fails (EPIPE): it goes on to the file alone

    extractor = threading.Thread(target=extract, name=f"dockyard-extract-{short}", daemon=True)
    extractor.start()
    failure: BaseException | None = None
    try:
        _download(reg, repo, desc, part, lambda n, total: progress(short, "Downloading", n, total), sink=w)
        progress(short, "Verifying Checksum", None, None)
        progress(short, "Download complete", None, None)
        # with a progress detail, as dockerd sends it: a client off a terminal skips it
        size = desc.get("size") or None
        progress(short, "Extracting", size, size)
    except BaseException as exc:
        failure = exc
    finally:
        os.close(w)  # end of stream: the extractor drains, checks and returns
        extractor.join()
    if failure is not None:
        raise failure
    error = box.get("error")
    if isinstance(error, LayerError):
        # Corrupt bytes usually break decompression before the digest is known: say which.
        actual = _native.sha256_file(str(blob_file))
        if actual != digest:
            raise DigestMismatch(f"layer {digest} does not match its digest: its content is {actual}") from None
        raise LayerError(f"layer {digest} is not a valid layer: {error}", error.member) from None
    if error is not None:
        raise error
    return _checked(box["info"], digest, diff_id)


def _download(reg: Registry, repo: str, desc: dict, part: _Partial, report: Callable[[int, int], None],
              attempts: int = 3, sink: int | None = None) -> None:
    """Fetch a blob to ``part`` (and, in order, to the file descriptor ``sink`` until it is
    closed at the other end), after the ``part.held`` bytes it has from an earlier pull (fed
    to ``sink`` first).  A connection that drops is resumed where it stopped (a Range
    request; a registry that ignores it and starts over has the bytes we hold skipped), up to
    ``attempts`` times, as docker does.  The digest is checked by the extractor, in the pass
    that reads the bytes anyway."""
    size = desc.get("size")
    fd = part.fd
    n = part.held
    if size is not None and n > size:
        part.reset()
        n = 0
    if n and sink is not None and not _feed(sink, fd, n):
        sink = None
    if n and n == size:
        report(n, size)
        return
    out = _Appender(fd, n)
    try:
        _receive(reg, repo, desc, out, n, report, attempts, sink)
    finally:
        out.close()


def _receive(reg: Registry, repo: str, desc: dict, out: _Appender, n: int, report: Callable[[int, int], None],
             attempts: int, sink: int | None) -> None:
    """The download loop of :func:`_download`, from byte ``n``: to ``out`` and ``sink``."""
    digest, size = desc["digest"], desc.get("size")
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    failure = ""
    for _ in range(attempts):
        headers = {"Range": f"bytes={n}-"} if n else {}
        resp = reg.request("GET", f"/v2/{repo}/blobs/{digest}", (f"repository:{repo}:pull",), headers,
                           ok=(200, 206))
        start = 0
        if resp.status == 206:
            crange = resp.headers.get("Content-Range", "")
            first = crange.removeprefix("bytes ").split("-")[0].strip()
            start = int(first) if first.isdigit() else n
        skip = n - start  # bytes of this body that we hold already
        if skip < 0:
            resp.raw.close()
            raise RegistryError(f"layer {digest}: the registry resumed at byte {start}, not {n}")
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else (size or 0)
        if size is not None and length and length.isdigit() and total != size:
            resp.raw.close()
            raise DigestMismatch(f"layer {digest}: the registry sends {total} bytes, the manifest says {size}")
        last = n
        try:
            while True:
                got = resp.readinto(view)
                if not got:
                    break
                chunk = view[:got]
                if skip:
                    drop = min(skip, got)
                    skip -= drop
                    chunk = chunk[drop:]
                    if not chunk:
                        continue
                out.write(chunk)
                if sink is not None:
                    try:
                        _write_all(sink, chunk)
                    except BrokenPipeError:
                        sink = None  # the extractor stopped: it says why; the file gets the rest
                n += len(chunk)
                if n - last >= (4 << 20):
                    report(n, total)
                    last = n
        except RegistryError as exc:
            failure = str(exc)
            continue
        want = size if size is not None else total
        if not want or n == want:
            report(n, total)
            return
        if n > want:
            break
        resp.raw.close()
        failure = f"{n} of {want} bytes arrived"
    want = size if size is not None else n
    if failure and n < want:
        raise CutShort(f"layer {digest} was cut short: {n} of {want} bytes arrived")
    raise DigestMismatch(f"layer {digest} is larger than its manifest says ({n} bytes, not {want})")


def _extract(src: Path, target: Path, digest: str, diff_id: str) -> dict:
    from .. import _native

    try:
        info = _native.extract(str(src), str(target))
    except LayerError as exc:
        # Corrupt bytes usually break decompression before the digest is known: say which.
        actual = _native.sha256_file(str(src))
        if actual != digest:
            raise DigestMismatch(f"layer {digest} does not match its digest: its content is {actual}") from None
        raise LayerError(f"layer {digest} is not a valid layer: {exc}", exc.member) from None
    return _checked(info, digest, diff_id)


def _checked(info, digest: str, diff_id: str) -> dict:
    if info["digest"] != digest:
        raise DigestMismatch(f"layer {digest} does not match its digest: its content is {info['digest']}")
    if info["diff_id"] != diff_id:
        raise DigestMismatch(f"layer {digest} does not match the image config: its diff ID is "
                             f"{info['diff_id']}, the config says {diff_id}")
    return dict(info)
