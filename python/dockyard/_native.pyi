"""Type stub for ``dockyard._native`` (Rust, built by maturin).  Users import
:mod:`dockyard.layers` instead; this module is an implementation detail."""

import os
from typing import Literal, TypedDict

_Path = str | os.PathLike[str]
_Compression = Literal["gzip", "zstd", "none"]
_Kind = Literal["A", "C", "D"]

class StreamInfo(TypedDict):
    digest: str
    diff_id: str
    compressed_size: int
    size: int
    compression: _Compression

class SplitInfo(TypedDict):
    digest: str
    size: int

class LayerInfo(StreamInfo):
    entries: int
    content_size: int
    split: SplitInfo | None

def extract(
    src: _Path,
    dest: _Path,
    *,
    offset: int = 0,
    length: int | None = None,
    whiteouts: Literal["overlay", "apply"] = "overlay",
    tee: _Path | None = None,
    split: _Path | None = None,
) -> LayerInfo: ...
def extract_at(
    src: _Path,
    dest: int,
    name: _Path,
    *,
    whiteouts: Literal["overlay", "apply"] = "apply",
    devices: list[int] | None = None,
) -> LayerInfo: ...
def open_in_root(root: int, path: _Path, *, follow: bool = True, directory: bool = False) -> int: ...
def pack(
    src: _Path,
    dest: _Path,
    *,
    compression: _Compression = "gzip",
    level: int | None = None,
    upper: bool = False,
    changes: list[tuple[str, str]] | None = None,
) -> LayerInfo: ...
def diff(old: _Path, new: _Path) -> list[tuple[_Kind, str]]: ...
def changes(upper: _Path, lowers: list[_Path] = ...) -> list[tuple[_Kind, str]]: ...
def decompress(src: _Path, dest: _Path, *, offset: int = 0, length: int | None = None) -> StreamInfo: ...
def compress(
    src: _Path,
    dest: _Path,
    compression: _Compression = "gzip",
    level: int | None = None,
    *,
    offset: int = 0,
    length: int | None = None,
) -> StreamInfo: ...
def assemble(
    split: _Path, layer: _Path, dest: _Path, compression: _Compression = "none", level: int | None = None
) -> StreamInfo: ...
def sha256_file(path: _Path, offset: int = 0, length: int | None = None) -> str: ...
def gzip_decoder() -> str: ...
def mount_overlay(lowers: list[_Path], upper: _Path, work: _Path, target: _Path) -> None: ...  # upper = work = "": read-only
def umount(target: _Path, detach: bool = True) -> None: ...
def mount_tmpfs(target: _Path, source: str, options: str) -> None: ...
def userns_fd(uids: list[tuple[int, int, int]], gids: list[tuple[int, int, int]]) -> int: ...
def idmap_mount(source: _Path, target: _Path, userns: int) -> None: ...
