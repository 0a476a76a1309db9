"""Layer extraction, packing and diffing (``dockyard.layers``) against real tools.

Run as root: owners, device nodes and ``trusted.*`` xattrs need it; tests that need root skip
with the reason otherwise.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard import layers
from dockyard.errors import LayerError

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (owners, device nodes, trusted.* xattrs)")
has_zstd = shutil.which("zstd") is not None


# ---------------------------------------------------------------------------------------------
# helpers


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def xattrs(p: Path) -> dict[str, bytes]:
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for n in sorted(names):
        if n == "security.selinux":
            continue
        out[n] = os.getxattr(p, n, follow_symlinks=False)
    return out


def snapshot(root: Path, *, mtimes: bool | str = True, root_attrs: bool = True) -> dict[str, tuple]:
    """Everything about a tree that a layer carries, keyed by relative path."""
    out: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], str] = {}
    paths = [root, *sorted(root.rglob("*"))]
    for p in paths:
        rel = "." if p == root else str(p.relative_to(root))
        st = p.lstat()
        kind = stat.S_IFMT(st.st_mode)
        if p == root and not root_attrs:
            continue
        extra: object = None
        if stat.S_ISREG(kind):
            key = (st.st_dev, st.st_ino)
            if key in inodes:
                extra = ("link", inodes[key])
            else:
                inodes[key] = rel
                extra = hashlib.sha256(p.read_bytes()).hexdigest()
        elif stat.S_ISLNK(kind):
            extra = os.readlink(p)
        elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
            extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
        out[rel] = (
            kind,
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            None if not mtimes or p == root else st.st_mtime_ns // 10**9 if mtimes == "s" else st.st_mtime_ns,
            st.st_size if stat.S_ISREG(kind) else None,
            extra,
            xattrs(p),
        )
    return out


def gnu_tar(*args: str | os.PathLike[str]) -> None:
    subprocess.run(["tar", *map(str, args)], check=True, capture_output=True)


def gnu_extract(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    gnu_tar(
        "-xpf", archive, "-C", dest, "--xattrs", "--xattrs-include=*", "--numeric-owner",
        "--same-owner",
    )


def make_tree(root: Path) -> Path:
    """A tree with a bit of everything a layer may hold."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir()
    (root / "etc/hostname").write_text("box\n")
    (root / "etc/empty").write_bytes(b"")
    (root / "bin").mkdir(mode=0o755)
    big = root / "bin/big"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    big.chmod(0o4755)
    (root / "bin/sgid").write_bytes(b"#!/bin/sh\n")
    (root / "bin/sgid").chmod(0o2755)
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    os.symlink("../etc/hostname", root / "bin/rel-link")
    os.symlink("/etc/passwd", root / "bin/abs-link")
    os.link(root / "etc/hostname", root / "etc/hardlink")
    deep = root / ("d" * 60) / ("e" * 60) / ("f" * 60)
    deep.mkdir(parents=True)
    (deep / ("g" * 120)).write_text("deep\n")
    (root / "caf\u00e9 space").write_text("unicode\n")
    os.mkfifo(root / "fifo")
    os.setxattr(root / "etc/hostname", "user.note", b"hello\x00world")
    if ROOT:
        os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(root / "loop", 0o660 | stat.S_IFBLK, os.makedev(7, 0))
        os.chown(root / "etc/hostname", 1000, 1001)
        os.chown(root / "bin/rel-link", 7, 8, follow_symlinks=False)
        os.chown(root / "tmp", 3000000, 3000001)  # bigger than ustar's 7 octal digits
        os.setxattr(root / "bin/sgid", "trusted.dockyard", b"t")
        os.setxattr(root / "bin/big", "security.capability",
                    bytes.fromhex("0100000200200000000000000000000000000000"))
        os.chown(root / "bin/big", 0, 0)
    # Fixed, varied times (after chown: it does not touch mtime, but keep it obvious).
    for i, p in enumerate(sorted(root.rglob("*"), reverse=True)):
        os.utime(p, ns=(1_600_000_000_000_000_000 + i * 1_000_000_007,) * 2, follow_symlinks=False)
    return root


def outside_untouched(tmp: Path):
    """Sentinels around ``dest``; returns (dest, check) where check() asserts nothing moved."""
    box = tmp / "box"
    dest = box / "dest"
    dest.mkdir(parents=True)
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    before = snapshot(tmp, root_attrs=False)

    def check() -> None:
        after = {k: v for k, v in snapshot(tmp, root_attrs=False).items()
                 if not k.startswith("box/dest/") and k != "box/dest"}
        want = {k: v for k, v in before.items() if not k.startswith("box/dest/") and k != "box/dest"}
        # box's own mtime may not change either: nothing was created beside dest.
        assert after == want

    return dest, outside, check


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    return buf.getvalue()


def ti(name: str, kind: bytes = tarfile.REGTYPE, **kw) -> tarfile.TarInfo:
    t = tarfile.TarInfo(name)
    t.type = kind
    t.mtime = kw.pop("mtime", 1_600_000_000)
    t.mode = kw.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    for k, v in kw.items():
        setattr(t, k, v)
    return t


def write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


# ---------------------------------------------------------------------------------------------
# extraction against GNU tar


@pytest.mark.parametrize("fmt", ["pax", "gnu"])
@pytest.mark.parametrize("comp", ["gzip", "zstd", "none"])
def test_extract_matches_gnu_tar(tmp_path: Path, fmt: str, comp: str) -> None:
    if comp == "zstd" and not has_zstd:
        pytest.skip("zstd CLI not installed")
    src = make_tree(tmp_path / "src")
    archive = tmp_path / "layer.tar"
    # GNU tar stores xattrs only in POSIX (pax) archives.
    xattr_flags = ["--xattrs", "--xattrs-include=*"] if fmt == "pax" else []
    gnu_tar(*xattr_flags, f"--format={fmt}", "--numeric-owner", "-cf", archive, "-C", src, ".")
    raw = archive.read_bytes()
    if comp == "gzip":
        subprocess.run(["gzip", "-k", "-6", archive], check=True)
        archive = archive.with_suffix(".tar.gz")
    elif comp == "zstd":
        subprocess.run(["zstd", "-q", "-k", archive, "-o", f"{archive}.zst"], check=True)
        archive = Path(f"{archive}.zst")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    info = layers.extract(archive, ours)
    gnu_extract(archive, theirs)
    assert snapshot(ours) == snapshot(theirs)
    assert info["diff_id"] == sha(raw)
    assert info["digest"] == sha(archive.read_bytes())
    assert info["size"] == len(raw)
    assert info["compressed_size"] == archive.stat().st_size
    assert info["compression"] == comp
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        members = t.getmembers()
    assert info["entries"] == len(members)
    # Docker's layer size: regular files plus symlink target lengths.
    assert info["content_size"] == sum(m.size for m in members if m.isreg()) + sum(
        len(m.linkname) for m in members if m.issym()
    )


def test_extract_python_tarfile_formats(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    # (ustar cannot hold the big ids of make_tree; test_ustar_prefix covers it.)
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        archive = tmp_path / f"l{fmt}.tar"
        with tarfile.open(archive, "w", format=fmt) as t:
            for p in [src, *sorted(src.rglob("*"))]:
                rel = "." if p == src else str(p.relative_to(src))
                t.add(p, arcname=rel, recursive=False)
        ours, theirs = tmp_path / f"o{fmt}", tmp_path / f"t{fmt}"
        ours.mkdir()
        layers.extract(archive, ours)
        gnu_extract(archive, theirs)
        assert snapshot(ours, mtimes=True) == snapshot(theirs, mtimes=True), fmt


def test_ustar_prefix(tmp_path: Path) -> None:
    name = "p" * 120 + "/" + "n" * 90
    data = tar_bytes([(ti(name), b"x"), (ti("l", tarfile.SYMTYPE, linkname="t" * 100), None)], tarfile.USTAR_FORMAT)
    dest = tmp_path / "d"
    dest.mkdir()
    layers.extract(write(tmp_path, "l.tar", data), dest)
    assert (dest / name).read_bytes() == b"x"
    assert os.readlink(dest / "l") == "t" * 100


def test_fractional_pax_mtime_and_big_ids(tmp_path: Path) -> None:
    t = ti("f", mtime=1_700_000_000.25, uid=5_000_000, gid=6_000_000)
    t.pax_headers = {"mtime": "1700000000.123456789"}
    archive = write(tmp_path, "l.tar", tar_bytes([(t, b"x")]))
    dest = tmp_path / "d"
    dest.mkdir()
    layers.extract(archive, dest)
    st = (dest / "f").lstat()
    assert st.st_mtime_ns == 1_700_000_000_123_456_789
    if ROOT:
        assert (st.st_uid, st.st_gid) == (5_000_000, 6_000_000)


def test_offset_length_and_tee(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    archive = tmp_path / "l.tar.gz"
    gnu_tar("-czf", archive, "-C", src, ".")
    blob = archive.read_bytes()
    outer = write(tmp_path, "outer", b"A" * 1000 + blob + b"B" * 777)
    dest = tmp_path / "d"
    dest.mkdir()
    info = layers.extract(outer, dest, offset=1000, length=len(blob), tee=tmp_path / "copy")
    assert info["digest"] == sha(blob)
    assert (tmp_path / "copy").read_bytes() == blob
    assert (dest / "etc/hostname").read_text() == "box\n"
    assert layers.sha256_file(outer, 1000, len(blob)) == sha(blob)
    assert layers.sha256_file(archive) == sha(blob)


def test_later_members_replace_earlier(tmp_path: Path) -> None:
    data = tar_bytes([
        (ti("a", tarfile.DIRTYPE), None),
        (ti("a/child"), b"1"),
        (ti("a"), b"file now"),          # a file replaces the directory
        (ti("b"), b"file"),
        (ti("b", tarfile.DIRTYPE), None),  # a directory replaces the file
        (ti("b/c"), b"2"),
        (ti("s", tarfile.SYMTYPE, linkname="b"), None),
        (ti("s"), b"not a link"),          # a file replaces the symlink, not its target
        (ti("d", tarfile.DIRTYPE, mode=0o700), None),
        (ti("d", tarfile.DIRTYPE, mode=0o751), None),  # directories merge; the last mode wins
    ])
    dest = tmp_path / "d"
    dest.mkdir()
    layers.extract(write(tmp_path, "l.tar", data), dest)
    assert (dest / "a").read_bytes() == b"file now"
    assert (dest / "b/c").read_bytes() == b"2"
    assert (dest / "s").read_bytes() == b"not a link" and not (dest / "s").is_symlink()
    assert stat.S_IMODE((dest / "d").stat().st_mode) == 0o751


def test_dir_mtime_set_after_content(tmp_path: Path) -> None:
    data = tar_bytes([
        (ti("d", tarfile.DIRTYPE, mtime=1000), None),
        (ti("d/f", mtime=2000), b"x"),
        (ti("d/sub", tarfile.DIRTYPE, mtime=3000), None),
        (ti("d/sub/g", mtime=4000), b"y"),
        (ti("d/l", tarfile.SYMTYPE, linkname="f", mtime=5000), None),
    ])
    dest = tmp_path / "x"
    dest.mkdir()
    layers.extract(write(tmp_path, "l.tar", data), dest)
    assert (dest / "d").stat().st_mtime == 1000
    assert (dest / "d/sub").stat().st_mtime == 3000
    assert (dest / "d/l").lstat().st_mtime == 5000


# ---------------------------------------------------------------------------------------------
# pack


@pytest.mark.parametrize("comp", ["gzip", "zstd", "none"])
def test_pack_roundtrip_and_determinism(tmp_path: Path, comp: str) -> None:
    src = make_tree(tmp_path / "src")
    a, b = tmp_path / "a.layer", tmp_path / "b.layer"
    ia = layers.pack(src, a, compression=comp)
    ib = layers.pack(src, b, compression=comp)
    assert a.read_bytes() == b.read_bytes()
    assert ia == ib
    assert ia["digest"] == sha(a.read_bytes())
    assert ia["compression"] == comp
    dest = tmp_path / "dest"
    dest.mkdir()
    ie = layers.extract(a, dest)
    assert ie["diff_id"] == ia["diff_id"] and ie["digest"] == ia["digest"]
    assert ie["entries"] == ia["entries"] and ie["content_size"] == ia["content_size"]
    # Root attributes are not part of a layer.
    # pack keeps whole seconds.
    want = snapshot(src, root_attrs=False, mtimes="s")
    assert snapshot(dest, root_attrs=False, mtimes="s") == want
    # GNU tar reads it the same way.
    theirs = tmp_path / "theirs"
    gnu_extract(a, theirs)
    assert snapshot(theirs, root_attrs=False, mtimes="s") == want


def test_pack_format_details(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    out = tmp_path / "l.tar"
    layers.pack(src, out, compression="none")
    with tarfile.open(out) as t:
        ms = t.getmembers()
    names = [m.name for m in ms]
    assert names[0] == "bin" and "etc/hardlink" in names
    for m in ms:
        assert m.uname == "" and m.gname == ""
        assert "atime" not in m.pax_headers and "ctime" not in m.pax_headers
    # Hard links by inode: the first in archive order carries the data.
    first = next(m for m in ms if m.name == "etc/hardlink")
    second = next(m for m in ms if m.name == "etc/hostname")
    assert first.isreg() and second.islnk() and second.linkname == "etc/hardlink"
    # Raw names: directories carry a trailing slash.
    raw = out.read_bytes()
    assert b"etc/\x00" in raw
    # Parents precede children, each directory's names sorted bytewise.
    assert names == sorted(names, key=lambda n: n.split("/"))


def test_compress_decompress(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    plain = tmp_path / "l.tar"
    layers.pack(src, plain, compression="none")
    for comp in ("gzip", "zstd"):
        z = tmp_path / f"l.{comp}"
        ci = layers.compress(plain, z, comp)
        assert ci["diff_id"] == sha(plain.read_bytes())
        assert ci["digest"] == sha(z.read_bytes())
        back = tmp_path / f"back.{comp}.tar"
        di = layers.decompress(z, back)
        assert back.read_bytes() == plain.read_bytes()
        assert di["digest"] == ci["digest"] and di["diff_id"] == ci["diff_id"]
        assert di["compression"] == comp
    with gzip.open(tmp_path / "l.gzip") as f:
        assert f.read() == plain.read_bytes()


# ---------------------------------------------------------------------------------------------
# errors


def test_error_mapping(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    with pytest.raises(FileNotFoundError) as e:
        layers.extract(tmp_path / "missing", dest)
    assert e.value.filename == str(tmp_path / "missing")
    with pytest.raises(NotADirectoryError):
        layers.extract(write(tmp_path, "l.tar", tar_bytes([])), write(tmp_path, "file", b""))
    with pytest.raises(ValueError):
        layers.pack(dest, tmp_path / "x", compression="lz4")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        layers.extract(tmp_path / "l.tar", dest, whiteouts="aufs")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        layers.sha256_file(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------
# hostile and damaged layers


def _hostile_cases(outside: Path) -> list[tuple[str, list[tuple[tarfile.TarInfo, bytes | None]], str]]:
    out = str(outside)
    sym, hard, d = tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE
    return [
        ("dotdot", [(ti("../evil"), b"x")], "../evil"),
        ("dotdot-deep", [(ti("a/../../evil"), b"x")], "a/../../evil"),
        ("dotdot-to-outside", [(ti("../../outside/passwd"), b"pwned")], "../../outside/passwd"),
        ("symlink-then-file", [(ti("link", sym, linkname=out), None), (ti("link/evil"), b"x")], "link/evil"),
        ("symlink-to-root", [(ti("r", sym, linkname="/"), None), (ti("r" + out + "/passwd"), b"x")],
         "r" + out + "/passwd"),
        ("symlink-dotdot-chain", [(ti("a", d), None), (ti("a/up", sym, linkname="../.."), None),
                                  (ti("a/up/outside/passwd"), b"x")], "a/up/outside/passwd"),
        ("dir-replaced-by-symlink", [(ti("d", d), None), (ti("d/ok"), b"1"), (ti("d", sym, linkname=out), None),
                                     (ti("d/passwd"), b"x")], "d/passwd"),
        ("hardlink-dotdot", [(ti("h", hard, linkname="../../outside/passwd"), None)], "h"),
        ("hardlink-through-symlink", [(ti("s", sym, linkname=out), None), (ti("h", hard, linkname="s/passwd"), None)],
         "h"),
        ("whiteout-dotdot-name", [(ti("a", d), None), (ti("a/.wh.."), b"")], "a/.wh.."),
        ("whiteout-escape", [(ti("../.wh.passwd"), b"")], "../.wh.passwd"),
        ("whiteout-through-symlink", [(ti("s", sym, linkname=out), None), (ti("s/.wh.passwd"), b"")], "s/.wh.passwd"),
        ("opaque-through-symlink", [(ti("s", sym, linkname=out), None), (ti("s/.wh..wh..opq"), b"")],
         "s/.wh..wh..opq"),
        ("pax-path-escape", [(ti("x", pax_headers={"path": "../../outside/passwd"}), b"x")], "../../outside/passwd"),
    ]


@pytest.mark.parametrize("whiteouts", ["overlay", "apply"])
@pytest.mark.parametrize("case", [c[0] for c in _hostile_cases(Path("/x"))])
def test_hostile_layers_are_refused(tmp_path: Path, case: str, whiteouts: str) -> None:
    scene = tmp_path / "scene"
    _, members, member = next(c for c in _hostile_cases(scene / "outside") if c[0] == case)
    layer = write(tmp_path, "layer.tar", tar_bytes(members))
    dest, _, check = outside_untouched(scene)
    with pytest.raises(LayerError) as e:
        layers.extract(layer, dest, whiteouts=whiteouts)
    assert e.value.member == member
    assert str(e.value).startswith(f'layer member "{member}": ')
    check()


def _damaged(mangle: str) -> tuple[bytes, str | None]:
    plain = tar_bytes([(ti("a"), b"a" * 5000), (ti("b"), b"b" * 5000), (ti("c"), b"c")])
    if mangle == "checksum":
        data = bytearray(plain)
        data[plain.index(b"b\0") + 101] ^= 0x01  # in b's mode field
        return bytes(data), "b"
    if mangle == "truncated-data":
        return plain[: plain.index(b"b" * 100) + 100], "b"
    if mangle == "truncated-header":
        return plain[: plain.index(b"b\0") + 200], None
    if mangle == "truncated-gzip":
        z = gzip.compress(plain)
        return z[: len(z) // 2], None
    if mangle == "bad-gzip":
        z = bytearray(gzip.compress(plain))
        z[15:25] = b"\xff" * 10
        return bytes(z), None
    if mangle == "bad-gzip-trailer":  # the deflate data decodes; the crc32 does not match
        z = bytearray(gzip.compress(plain))
        z[-6] ^= 0x01
        return bytes(z), None
    if mangle == "truncated-zstd":
        if not has_zstd:
            pytest.skip("zstd CLI not installed")
        z = subprocess.run(["zstd", "-q", "-c"], input=plain, capture_output=True, check=True).stdout
        return z[:-7], None
    big = ti("huge")
    big.size = 1 << 30
    return big.tobuf(tarfile.USTAR_FORMAT) + b"x" * 4096, "huge"


GZIP_DECODERS = ["default", "zlib"]


DAMAGE = ["checksum", "truncated-data", "truncated-header", "truncated-gzip", "bad-gzip", "bad-gzip-trailer",
          "truncated-zstd", "big-member"]


@pytest.mark.parametrize(
    ("mangle", "decoder"),
    [(m, "default") for m in DAMAGE] + [(m, "zlib") for m in DAMAGE if "gzip" in m],
)
def test_damaged_layers_are_refused(tmp_path: Path, mangle: str, decoder: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if decoder == "zlib":
        monkeypatch.setenv("DOCKYARD_GZIP", "zlib")
    data, member = _damaged(mangle)
    layer = write(tmp_path, "layer", data)
    dest, _, check = outside_untouched(tmp_path / "scene")
    with pytest.raises(LayerError) as e:
        layers.extract(layer, dest)
    if member is not None:
        assert e.value.member == member
        assert str(e.value).startswith(f'layer member "{member}": ')
    else:
        assert str(e.value).startswith("layer: ")
    if mangle == "truncated-header":
        assert 'header after member "a"' in str(e.value)
    check()


@pytest.mark.parametrize("decoder", GZIP_DECODERS)
def test_gzip_decoders_agree(tmp_path: Path, decoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Either gzip decoder yields the same digests and tree: one member, or several (what
    `cat a.gz b.gz` and some parallel compressors write), read through a byte range."""
    if decoder == "zlib":
        monkeypatch.setenv("DOCKYARD_GZIP", "zlib")
    big = bytes(range(256)) * 3000 + os.urandom(300_000)
    plain = tar_bytes([(ti("d", tarfile.DIRTYPE), None), (ti("d/big"), big), (ti("d/small"), b"x" * 10)])
    half = len(plain) // 2
    members = gzip.compress(plain[:half]) + gzip.compress(plain[half:], compresslevel=1)
    for name, z in (("one", gzip.compress(plain)), ("two", members)):
        outer = write(tmp_path, f"{name}.outer", b"HEAD" + z + b"TAIL")
        dest = tmp_path / name
        dest.mkdir()
        info = layers.extract(outer, dest, offset=4, length=len(z))
        assert info["diff_id"] == "sha256:" + hashlib.sha256(plain).hexdigest()
        assert info["digest"] == "sha256:" + hashlib.sha256(z).hexdigest()
        assert (dest / "d" / "big").read_bytes() == big
        assert (dest / "d" / "small").read_bytes() == b"x" * 10


def test_gzip_decoder_is_isal_where_it_can_be(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build on a machine with libisal-dev (CI installs it) uses ISA-L."""
    probe = shutil.which("pkg-config") and subprocess.run(["pkg-config", "--exists", "libisal"]).returncode == 0
    if not probe:
        pytest.skip("libisal-dev is not installed: the core was built with zlib-rs only")
    assert layers.gzip_decoder() == "isa-l"
    monkeypatch.setenv("DOCKYARD_GZIP", "zlib")
    assert layers.gzip_decoder() == "zlib-rs"


def test_gnu_sparse_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "sparse"
    with open(f, "wb") as fh:
        fh.seek(10 * 1024 * 1024)
        fh.write(b"end")
    archive = tmp_path / "s.tar"
    gnu_tar("--sparse", "--format=gnu", "-cf", archive, "-C", tmp_path, "sparse")
    dest = tmp_path / "d"
    dest.mkdir()
    with pytest.raises(LayerError, match="sparse") as e:
        layers.extract(archive, dest)
    assert e.value.member == "sparse"


def test_absolute_names_are_stripped(tmp_path: Path) -> None:
    scene = tmp_path / "scene"
    outside = scene / "outside"
    layer = write(tmp_path, "l.tar", tar_bytes([(ti(str(outside / "passwd")), b"inside"), (ti("/etc/x"), b"y")]))
    dest, outside, check = outside_untouched(scene)
    layers.extract(layer, dest)
    assert (dest / str(outside).lstrip("/") / "passwd").read_bytes() == b"inside"
    assert (dest / "etc/x").read_bytes() == b"y"
    check()


def test_symlink_targets_may_point_anywhere(tmp_path: Path) -> None:
    scene = tmp_path / "scene"
    members = [(ti("l", tarfile.SYMTYPE, linkname=str(scene / "outside/passwd")), None), (ti("l"), b"replaced")]
    layer = write(tmp_path, "l.tar", tar_bytes(members))
    dest, outside, check = outside_untouched(scene)
    layers.extract(layer, dest)
    assert (dest / "l").read_bytes() == b"replaced"
    check()


# ---------------------------------------------------------------------------------------------
# whiteouts


def _whiteout_layer() -> bytes:
    d = tarfile.DIRTYPE
    return tar_bytes([
        (ti("o", d), None),
        (ti("o/mine"), b"new"),
        (ti("o/.wh..wh..opq"), b""),   # after this layer's own o/mine: order must not matter
        (ti(".wh.gone"), b""),
        (ti("keep", d), None),
        (ti("keep/.wh.f"), b""),
        (ti("keep/.wh..wh.plnk"), b""),  # aufs bookkeeping: ignored
    ])


@needs_root
def test_whiteouts_overlay(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    info = layers.extract(write(tmp_path, "l.tar", _whiteout_layer()), dest, whiteouts="overlay")
    assert info["entries"] == 7
    for p in ("gone", "keep/f"):
        st = (dest / p).lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dest / "o", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(dest)) == ["gone", "keep", "o"]
    assert os.listdir(dest / "keep") == ["f"]
    # Round trip: packing the extracted layer as an upper dir gives the whiteouts back.
    out = tmp_path / "again.tar"
    layers.pack(dest, out, compression="none", upper=True)
    with tarfile.open(out) as t:
        names = t.getnames()
    assert names == [".wh.gone", "keep", "keep/.wh.f", "o", "o/.wh..wh..opq", "o/mine"]


def test_whiteouts_apply(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    (dest / "o/olddir").mkdir(parents=True)
    (dest / "o/old").write_text("old")
    (dest / "o/olddir/x").write_text("old")
    (dest / "gone").mkdir()
    (dest / "gone/x").write_text("old")
    (dest / "keep").mkdir()
    (dest / "keep/f").write_text("old")
    (dest / "keep/g").write_text("stays")
    layers.extract(write(tmp_path, "l.tar", _whiteout_layer()), dest, whiteouts="apply")
    assert sorted(os.listdir(dest)) == ["keep", "o"]
    assert os.listdir(dest / "o") == ["mine"]
    assert os.listdir(dest / "keep") == ["g"]


# ---------------------------------------------------------------------------------------------
# diff, changes, pack(changes=...)


def copy_tree(src: Path, dest: Path) -> None:
    subprocess.run(["cp", "-a", "--", str(src), str(dest)], check=True)


def test_diff_and_pack_changes(tmp_path: Path) -> None:
    old = make_tree(tmp_path / "old")
    new = tmp_path / "new"
    copy_tree(old, new)
    assert layers.diff(old, new) == []
    (new / "etc/hostname").write_text("other\n")
    shutil.rmtree(new / ("d" * 60))
    (new / "added").mkdir()
    (new / "added/file").write_text("a")
    os.chmod(new / "bin/sgid", 0o755)
    os.utime(new / "bin", ns=(0, 5), follow_symlinks=False)
    os.unlink(new / "bin/rel-link")
    os.symlink("elsewhere", new / "bin/rel-link")
    got = layers.diff(old, new)
    assert got == [
        ("A", "/added"),
        ("A", "/added/file"),
        ("C", "/bin"),
        ("C", "/bin/rel-link"),
        ("C", "/bin/sgid"),
        ("D", "/" + "d" * 60),
        ("C", "/etc"),
        ("C", "/etc/hardlink"),  # same inode as hostname: its size and mtime changed too
        ("C", "/etc/hostname"),
    ]
    # A layer of just the changes, applied onto a copy of old, gives new.
    layer = tmp_path / "changes.tar"
    layers.pack(new, layer, compression="none", changes=got)
    with tarfile.open(layer) as t:
        names = t.getnames()
    # Parents included; the whiteout sits where the deleted entry sorted.
    assert names == [
        "added", "added/file", "bin", "bin/rel-link", "bin/sgid", ".wh." + "d" * 60, "etc",
        "etc/hardlink", "etc/hostname",
    ]
    target = tmp_path / "target"
    copy_tree(old, target)
    layers.extract(layer, target, whiteouts="apply")
    assert snapshot(target, root_attrs=False, mtimes="s") == snapshot(new, root_attrs=False, mtimes="s")


@needs_root
def test_changes_of_overlay_upper(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/passwd").write_text("x")
    (lower / "etc/shadow").write_text("x")
    (lower / "var/lib").mkdir(parents=True)
    (lower / "var/lib/old").write_text("x")
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/passwd").write_text("y")
    os.mknod(upper / "etc/shadow", stat.S_IFCHR, 0)
    (upper / "new").mkdir()
    (upper / "new/f").write_text("z")
    (upper / "var/lib").mkdir(parents=True)
    os.setxattr(upper / "var/lib", "trusted.overlay.opaque", b"y")
    (upper / "var/lib/fresh").write_text("z")
    assert layers.changes(upper, [lower]) == [
        ("C", "/etc"),
        ("C", "/etc/passwd"),
        ("D", "/etc/shadow"),
        ("A", "/new"),
        ("A", "/new/f"),
        ("C", "/var"),
        ("C", "/var/lib"),
        ("A", "/var/lib/fresh"),
    ]
    # Without lowers everything present is new.
    assert ("A", "/etc/passwd") in layers.changes(upper)
    # An upper dir packs into an OCI layer that applies onto the lower.
    layer = tmp_path / "up.tar.gz"
    layers.pack(upper, layer, upper=True)
    flat = tmp_path / "flat"
    shutil.copytree(lower, flat)
    layers.extract(layer, flat, whiteouts="apply")
    assert not (flat / "etc/shadow").exists()
    assert (flat / "etc/passwd").read_text() == "y"
    assert os.listdir(flat / "var/lib") == ["fresh"]


# ---------------------------------------------------------------------------------------------
# other writers and other threads


def test_writer_pool_gives_the_same_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_tree(tmp_path / "src")
    archive = tmp_path / "l.tar.gz"
    gnu_tar("--xattrs", "--xattrs-include=*", "--format=pax", "-czf", archive, "-C", src, ".")
    trees = []
    for writers in ("0", "3"):
        monkeypatch.setenv("DOCKYARD_EXTRACT_WRITERS", writers)
        dest = tmp_path / f"w{writers}"
        dest.mkdir()
        layers.extract(archive, dest)
        trees.append(snapshot(dest, root_attrs=False))
    assert trees[0] == trees[1]


@pytest.mark.skipif(not ROOT, reason="needs root (a private dockerd)")
def test_layer_written_by_docker(tmp_path: Path, dockerd) -> None:
    """A layer written by Go's archive/tar (docker build + docker save), read in place."""
    import json
    import uuid

    ctx = tmp_path / "ctx"
    root = ctx / "root"
    root.mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/conf").write_text("x = 1\n")
    (root / "bin").mkdir()
    (root / "bin/tool").write_bytes(os.urandom(100_000))
    (root / "bin/tool").chmod(0o4755)
    os.symlink("tool", root / "bin/alias")
    os.link(root / "bin/tool", root / "bin/hard")
    long = root / ("x" * 90) / ("y" * 90)
    long.mkdir(parents=True)
    (long / ("z" * 100)).write_text("long")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY root/ /\n")
    tag = f"dockyard-test-{uuid.uuid4().hex[:12]}"
    env = {**dockerd.env, "DOCKER_BUILDKIT": "0"}  # the session's private dockerd (conftest)
    saved = tmp_path / "save.tar"
    subprocess.run(["docker", "build", "-q", "-t", tag, str(ctx)], check=True, capture_output=True, env=env)
    try:
        subprocess.run(["docker", "save", "-o", str(saved), tag], check=True, capture_output=True, env=env)
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, env=env)
    with tarfile.open(saved) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        member = outer.getmember(manifest[0]["Layers"][0])
        layer_bytes = outer.extractfile(member).read()  # type: ignore[union-attr]
    ours = tmp_path / "ours"
    ours.mkdir()
    info = layers.extract(saved, ours, offset=member.offset_data, length=member.size)
    assert info["digest"] == sha(layer_bytes) and info["compression"] == "none"
    layer_file = write(tmp_path, "layer.tar", layer_bytes)
    theirs = tmp_path / "theirs"
    gnu_extract(layer_file, theirs)
    assert snapshot(ours, root_attrs=False) == snapshot(theirs, root_attrs=False)
    assert (ours / "bin/tool").stat().st_ino == (ours / "bin/hard").stat().st_ino
    assert os.readlink(ours / "bin/alias") == "tool"
