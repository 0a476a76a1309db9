"""Layer tars: extract, pack, diff, (de)compress and digest, in native code.

Every function here releases the GIL while it works and raises:

* :class:`dockyard.errors.LayerError` for a damaged or hostile layer (its ``member`` names the
  tar member at fault: a bad checksum, a truncated stream, a path that escapes the root...);
* the matching :class:`OSError` subclass, with ``errno`` and ``filename``, when a file of ours
  fails (``FileNotFoundError`` for a missing source, ``OSError(ENOSPC)`` for a full disk);
* :class:`ValueError` for a meaningless argument (an unknown compression or whiteout mode).

Results are plain dicts (see :class:`LayerInfo`); digests are ``"sha256:<hex>"``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from dockyard import _native

if TYPE_CHECKING:
    from dockyard._native import LayerInfo, StreamInfo

__all__ = [
    "LayerInfo",
    "StreamInfo",
    "assemble",
    "changes",
    "compress",
    "decompress",
    "diff",
    "extract",
    "gzip_decoder",
    "pack",
    "sha256_file",
]

Path = str | os.PathLike[str]
Compression = Literal["gzip", "zstd", "none"]


def extract(
    src: Path,
    dest: Path,
    *,
    offset: int = 0,
    length: int | None = None,
    whiteouts: Literal["overlay", "apply"] = "overlay",
    tee: Path | None = None,
    split: Path | None = None,
) -> LayerInfo:
    """Extract the layer stored in ``src`` into the existing directory ``dest``.

    ``length`` bytes of ``src`` from ``offset`` are read (``None``: to the end), so a layer
    inside an outer archive is read in place. Compression (gzip, zstd or none) is detected from
    the magic bytes. In the same pass the raw bytes are hashed (``digest``), the tar stream is
    hashed (``diff_id``), and with ``tee`` the raw bytes are also copied to that file.
    With ``split``, the tar stream's tar-split is written to that file: every byte but file
    contents, which :func:`assemble` reads back from ``dest`` to rebuild the exact stream.

    Owners (numeric), modes, mtimes, symlinks, hardlinks, devices, fifos and xattrs are kept.
    ``whiteouts="overlay"`` writes OCI whiteouts the way overlayfs reads them (a 0/0 character
    device, ``trusted.overlay.opaque=y``); ``"apply"`` deletes what they name from ``dest``
    (flattening layers onto one tree).

    Safety: nothing outside ``dest`` is ever created, changed or removed. A leading ``/`` is
    stripped (as Docker does); ``..`` that climbs above ``dest`` is refused; a member whose path
    goes through a symlink, at any depth, is refused (symlinks are never followed, even ones
    that would stay inside); hardlink targets obey the same rules. On error ``dest`` may hold
    part of the layer: the caller removes it.

    Returns ``digest``, ``diff_id``, ``compressed_size``, ``size`` (tar bytes), ``compression``,
    ``entries`` (members) and ``content_size`` (Docker's layer size: regular file sizes plus
    symlink target lengths, hardlinks once), and ``split``: the record's ``digest`` and
    ``size``, or ``None`` when a member replaced or removed what an earlier one made (the tree
    then cannot give the stream back, and the file is removed).
    """
    return _native.extract(src, dest, offset=offset, length=length, whiteouts=whiteouts, tee=tee, split=split)


def pack(
    src: Path,
    dest: Path,
    *,
    compression: Compression = "gzip",
    level: int | None = None,
    upper: bool = False,
    changes: list[tuple[str, str]] | None = None,
) -> LayerInfo:
    """Write a layer tar of directory ``src`` to the file ``dest``.

    The output is deterministic: the same tree gives the same bytes (entries depth first, each
    directory's names sorted bytewise; numeric owners, empty user/group names, integer mtimes;
    PAX headers only when needed; hardlinks by inode). ``upper=True`` reads ``src`` as an
    overlayfs upper directory (whiteout devices become ``.wh.NAME``, opaque directories get
    ``.wh..wh..opq``). ``changes`` (as returned by :func:`diff`/:func:`changes`) packs only
    those paths and their parent directories, ``"D"`` as a whiteout.

    gzip is written in parallel, pigz style (1 MiB pieces joined into one deflate stream), so
    the bytes do not depend on the machine, but are not those of single-stream ``gzip -6``.

    Returns the same keys as :func:`extract`; ``digest`` is the digest of ``dest``.
    """
    return _native.pack(src, dest, compression=compression, level=level, upper=upper, changes=changes)


def diff(old: Path, new: Path) -> list[tuple[Literal["A", "C", "D"], str]]:
    """Docker-style changes from tree ``old`` to tree ``new``, sorted by path.

    ``A`` added (and everything below an added directory), ``D`` deleted (only the top of a
    deleted tree), ``C`` changed (type, mode, owner, size, mtime, link target, device, xattrs)
    and every directory with a changed child.
    """
    return _native.diff(old, new)


def changes(upper: Path, lowers: list[Path] | None = None) -> list[tuple[Literal["A", "C", "D"], str]]:
    """Changes recorded in an overlayfs upper directory over ``lowers`` (topmost first).

    Whiteouts are ``D``; paths present in a lower are ``C``, others ``A``; an opaque directory
    is ``C`` and its content ``A``. Sorted by path.
    """
    return _native.changes(upper, list(lowers or []))


def decompress(src: Path, dest: Path, *, offset: int = 0, length: int | None = None) -> StreamInfo:
    """Write the plain tar of the layer in ``src`` (any compression) to ``dest``.

    Returns ``digest`` (of the raw input), ``diff_id`` (of the tar written), both sizes and the
    detected ``compression``.
    """
    return _native.decompress(src, dest, offset=offset, length=length)


def compress(
    src: Path,
    dest: Path,
    compression: Compression = "gzip",
    level: int | None = None,
    *,
    offset: int = 0,
    length: int | None = None,
) -> StreamInfo:
    """Compress the plain tar in ``src`` into ``dest``; deterministic for the same input.

    Returns ``digest`` (of ``dest``), ``diff_id`` (of the input tar) and both sizes.
    """
    return _native.compress(src, dest, compression, level, offset=offset, length=length)


def assemble(split: Path, layer: Path, dest: Path, compression: Compression = "none",
             level: int | None = None) -> StreamInfo:
    """Rebuild the tar stream recorded by ``extract(..., split=)`` from the extracted tree
    ``layer`` into ``dest``, compressed with ``compression``.

    Returns ``digest`` (of ``dest``) and ``diff_id`` (of the tar): the diff ID is the check that
    the tree still holds what was extracted. A recorded file that is missing, shorter, or
    reached through a symlink is an error.
    """
    return _native.assemble(split, layer, dest, compression, level)


def sha256_file(path: Path, offset: int = 0, length: int | None = None) -> str:
    """``"sha256:<hex>"`` of ``length`` bytes of ``path`` from ``offset`` (``None``: to the end)."""
    return _native.sha256_file(path, offset, length)


def gzip_decoder() -> str:
    """What decompresses gzip layers: ``"isa-l"`` when the core was built against ISA-L
    (Debian's libisal-dev; faster) and ``DOCKYARD_GZIP=zlib`` is not set, else
    ``"zlib-rs"``. Both give the same bytes and the same errors for damaged input."""
    return _native.gzip_decoder()
