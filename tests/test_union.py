"""engine/union.py: a file of a container's root read from its layers, checked against what a
real overlay mount of the same layers shows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.engine.union import read_file
from support import needs_root


def whiteout(p: Path) -> None:
    os.mknod(p, 0o600 | 0o020000, os.makedev(0, 0))


def opaque(p: Path) -> None:
    os.setxattr(p, "trusted.overlay.opaque", b"y")


@pytest.fixture
def layers(tmp_path):
    """upper, mid, base (top first), with whiteouts, an opaque directory, links and a file that
    shadows a directory."""
    up, mid, base = (tmp_path / n for n in ("upper", "mid", "base"))
    for d in (up, mid, base):
        (d / "etc").mkdir(parents=True)
    (base / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (base / "etc" / "group").write_text("root:x:0:\n")
    (base / "etc" / "gone").write_text("base\n")
    (base / "etc" / "deep").mkdir()
    (base / "etc" / "deep" / "old").write_text("old\n")
    (base / "etc" / "deep" / "kept").write_text("kept\n")
    (base / "lib").mkdir()
    (base / "lib" / "x").write_text("lib x\n")
    (base / "abs").symlink_to("/etc/passwd")
    (base / "up").symlink_to("../../../../etc/group")  # .. stops at the root
    (base / "loop").symlink_to("loop")
    (mid / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nbob:x:1234:1234::/home/bob:/bin/sh\n")
    (mid / "etc" / "deep").mkdir()
    (mid / "etc" / "deep" / "new").write_text("new\n")
    (mid / "lib").write_text("a file over a directory\n")
    (up / "etc" / "deep").mkdir()
    (up / "libdir").symlink_to("lib")
    (up / "etc" / "link").symlink_to("deep/new")
    return [up, mid, base]


@needs_root
def test_lookup_agrees_with_a_real_overlay(layers, tmp_path):
    from dockyard import _native

    up, mid, base = layers
    whiteout(up / "etc" / "gone")
    whiteout(mid / "etc" / "deep" / "kept")
    opaque(mid / "etc" / "deep")  # hides base's etc/deep/old (and kept)
    (tmp_path / "work").mkdir()
    merged = tmp_path / "merged"
    merged.mkdir()
    paths = ["/etc/passwd", "/etc/group", "/etc/gone", "/etc/deep/old", "/etc/deep/new", "/etc/deep/kept",
             "/etc/link", "/lib", "/lib/x", "/libdir/x", "/abs", "/up", "/loop", "/nothing", "/etc/passwd/x",
             "/etc/../etc/./passwd", "/etc", "../../etc/group"]
    got = {p: read_file(layers, p) for p in paths}
    _native.mount_overlay([str(mid), str(base)], str(up), str(tmp_path / "work"), str(merged))
    try:
        from dockyard.engine.spec import secure_path

        def seen(p: str) -> bytes | None:
            host = secure_path(str(merged), p)
            return Path(host).read_bytes() if os.path.isfile(host) and not os.path.islink(host) else None

        want = {p: seen(p) for p in paths if p != "/loop"}
    finally:
        _native.umount(str(merged))
    assert {p: v for p, v in got.items() if p != "/loop"} == want
    assert got["/loop"] is None
    # what the lookup is for: bob comes from the middle layer, the upper's whiteout hides "gone"
    assert b"bob:x:1234" in got["/etc/passwd"] and got["/etc/gone"] is None
    assert got["/etc/deep/new"] == b"new\n" and got["/etc/deep/old"] is None and got["/lib/x"] is None


def test_user_resolved_from_layers(layers):
    from dockyard.engine.spec import resolve_user

    u = resolve_user([Path(p) for p in layers], "bob")
    assert (u.uid, u.gid, u.home) == (1234, 1234, "/home/bob")
    assert resolve_user([Path(p) for p in layers], "").uid == 0
