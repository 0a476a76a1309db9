"""The image store through ``dockyard.Engine``: import, load, save, tag, rmi, prune, inspect."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import tarfile
from pathlib import Path

import pytest

from support import needs_root, tar_dir, tree
from dockyard.errors import ArchiveError, Conflict, ImageNotFound, InvalidReference, LayerError

pytestmark = needs_root


def store_files(engine) -> dict[str, list[str]]:
    root = engine.root
    return {sub: sorted(os.listdir(root / sub)) for sub in ("layers", "blobs/sha256", "tmp")}


def test_import_registers_image_with_docker_ids(engine, rootfs_tar):
    image_id = engine.import_image(str(rootfs_tar), "myimg:v1", ["CMD [\"/bin/sh\"]", "ENV A=1 B=2"], "hello")
    config_bytes = engine.images.config_bytes(image_id)
    assert image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    config = json.loads(config_bytes)
    diff_id = "sha256:" + hashlib.sha256(rootfs_tar.read_bytes()).hexdigest()
    assert config["rootfs"] == {"type": "layers", "diff_ids": [diff_id]}
    assert config["config"]["Cmd"] == ["/bin/sh"]
    assert config["config"]["Env"] == ["A=1", "B=2"]
    assert config["comment"] == "hello" and config["history"][0]["comment"] == "hello"
    info = engine.images.inspect("myimg:v1")
    assert info["Id"] == image_id
    assert info["RepoTags"] == ["myimg:v1"]
    assert info["RootFS"]["Layers"] == [diff_id]
    assert info["Config"] == {"Env": ["A=1", "B=2"], "Cmd": ["/bin/sh"]}
    # Docker's layer size: lstat sizes of everything but directories (a symlink counts its target)
    assert info["Size"] == sum(p.lstat().st_size for p in rootfs_tar.parent.joinpath("rootfs").rglob("*")
                               if p.is_symlink() or not p.is_dir())
    # The same image by every name Docker accepts
    for name in ("myimg:v1", "docker.io/library/myimg:v1", image_id, image_id[7:19], image_id[:20]):
        assert engine.images.resolve(name) == image_id


@pytest.mark.parametrize("compression", ["", "gz", "zst"])
def test_import_compressed_layers_extract_the_same_tree(engine, rootfs, tmp_path, compression):
    tar = tar_dir(rootfs, tmp_path / f"layer.tar.{compression or 'plain'}", compression)
    image_id = engine.import_image(str(tar), "x")
    (layer,) = engine.images.layer_dirs(image_id)
    assert tree(layer) == tree(rootfs)
    assert store_files(engine)["tmp"] == []


def test_import_from_stream(engine, rootfs_tar):
    with open(rootfs_tar, "rb") as f:
        image_id = engine.import_image(f, "streamed")
    assert engine.images.inspect("streamed")["Id"] == image_id
    assert store_files(engine)["tmp"] == []


def test_import_changes_like_docker(engine, rootfs_tar):
    engine.import_image(str(rootfs_tar), "c", [
        "LABEL a=b", "EXPOSE 80 53/udp", "VOLUME /data", "WORKDIR /w", "USER 1000", "ENTRYPOINT /bin/sh",
        "STOPSIGNAL SIGTERM",
    ])
    cfg = engine.images.inspect("c")["Config"]
    assert cfg == {
        "User": "1000", "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Volumes": {"/data": {}},
        "WorkingDir": "/w", "Entrypoint": ["/bin/sh", "-c", "/bin/sh"], "Labels": {"a": "b"},
        "StopSignal": "SIGTERM",
    }


def test_same_layer_is_stored_once(engine, rootfs_tar):
    a = engine.import_image(str(rootfs_tar), "a", ["CMD a"])
    b = engine.import_image(str(rootfs_tar), "b", ["CMD b"])
    assert a != b
    assert len(store_files(engine)["layers"]) == 1
    engine.images.remove("a")
    assert len(store_files(engine)["layers"]) == 1  # b still uses it
    engine.images.remove("b")
    assert store_files(engine) == {"layers": [], "blobs/sha256": [], "tmp": []}


def test_import_keeps_a_tar_split_not_a_copy(engine, rootfs, tmp_path):
    """An imported layer keeps its tar-split (the tar minus file contents), and the exact tar
    is rebuilt from the tree when needed; a tree changed behind the store's back is caught."""
    import gzip

    from dockyard.errors import DockyardError

    tar = tar_dir(rootfs, tmp_path / "layer.tar.gz", "gz")
    image_id = engine.import_image(str(tar), "split:1")
    (layer,) = engine.images.layers(image_id)
    assert layer["compression"] == "tar-split"
    assert engine.store.blob_path(layer["blob"]).stat().st_size < tar.stat().st_size / 10
    with engine.store.staging() as stage:
        path, digest, size, _ = engine.images.layer_blob(layer, stage, ("none",), "none")
        assert path.read_bytes() == gzip.decompress(tar.read_bytes())
        assert (digest, size) == (layer["diff_id"], layer["size"])
    flat = tmp_path / "flat"
    flat.mkdir()
    engine.images.flatten("split:1", flat)
    assert tree(flat) == tree(rootfs)
    biggest = max((p for p in engine.images.layer_dirs(image_id)[0].rglob("*") if p.is_file() and not p.is_symlink()),
                  key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[:-1] + b"?")
    with open(tmp_path / "out.tar", "wb") as f, pytest.raises(DockyardError, match="corrupt in the store"):
        engine.save(["split:1"], f)
    assert store_files(engine)["tmp"] == []


def test_layer_whose_members_replace_each_other_keeps_its_bytes(engine, tmp_path):
    """The tree of a layer that writes a path twice cannot give its tar back, so the layer's
    own bytes are kept instead, and save still writes the tar the config names."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for content in (b"first\n", b"second\n"):
            info = tarfile.TarInfo("etc/motd")
            info.size = len(content)
            t.addfile(info, io.BytesIO(content))
    src = tmp_path / "dup.tar"
    src.write_bytes(raw.getvalue())
    image_id = engine.import_image(str(src), "dup:1")
    (layer,) = engine.images.layers(image_id)
    assert layer["compression"] == "none"
    assert engine.store.blob_path(layer["blob"]).read_bytes() == raw.getvalue()
    assert (engine.images.layer_dirs(image_id)[0] / "etc/motd").read_bytes() == b"second\n"
    out = tmp_path / "saved.tar"
    with open(out, "wb") as f:
        engine.save(["dup:1"], f)
    from dockyard import Engine

    with Engine(tmp_path / "other-root") as other:
        assert other.load(str(out)) == ["Loaded image: dup:1"]
        assert other.images.resolve("dup:1") == image_id


def test_tag_and_rmi_follow_docker(engine, rootfs_tar):
    image_id = engine.import_image(str(rootfs_tar), "bb:v1")
    engine.images.tag("bb:v1", "bb:v2")
    engine.images.tag(image_id[:12], "registry.local:5000/team/bb")
    assert engine.images.inspect(image_id)["RepoTags"] == ["bb:v1", "bb:v2", "registry.local:5000/team/bb:latest"]
    with pytest.raises(Conflict, match="must be forced.*multiple repositories"):
        engine.images.remove(image_id[7:19])
    assert engine.images.remove("bb:v1") == [{"Untagged": "bb:v1"}]
    assert engine.images.remove("registry.local:5000/team/bb") == [{"Untagged": "registry.local:5000/team/bb:latest"}]
    items = engine.images.remove("bb:v2")
    assert items[0] == {"Untagged": "bb:v2"}
    assert items[1] == {"Deleted": image_id}
    assert items[2]["Deleted"].startswith("sha256:")
    with pytest.raises(ImageNotFound, match="No such image: bb:v2"):
        engine.images.resolve("bb:v2")


def test_rmi_refuses_image_used_by_container(engine, rootfs_tar):
    image_id = engine.import_image(str(rootfs_tar), "used")
    with engine.store.transaction() as db:
        db.execute("INSERT INTO containers (id, name, image_id, created) VALUES (?,?,?,?)",
                   ("c" * 64, "ctr", image_id, "now"))
    with pytest.raises(Conflict, match="container cccccccccccc is using its referenced image"):
        engine.images.remove("used")
    with pytest.raises(Conflict, match="must be forced.*stopped container"):
        engine.images.remove(image_id)
    # -f untags, but the image stays while the container needs it
    assert engine.images.remove("used", force=True) == [{"Untagged": "used:latest"}]
    assert engine.images.resolve(image_id) == image_id
    with engine.store.transaction() as db:
        db.execute("DELETE FROM containers")


def test_invalid_references_are_refused(engine, rootfs_tar):
    for bad in ("UPPER", "a b", "x:" + "t" * 200, "bad//name", "a" * 64):
        with pytest.raises(InvalidReference):
            engine.import_image(str(rootfs_tar), bad)
    assert store_files(engine) == {"layers": [], "blobs/sha256": [], "tmp": []}


def test_prune_removes_dangling_then_all(engine, rootfs_tar, rootfs, tmp_path):
    dangling = engine.import_image(str(rootfs_tar))
    (rootfs / "extra").write_text("x")
    other = tar_dir(rootfs, tmp_path / "other.tar")
    tagged = engine.import_image(str(other), "keep")
    report = engine.images.prune()
    assert report["ImagesDeleted"][0] == {"Deleted": dangling}
    assert report["SpaceReclaimed"] > 0
    assert engine.images.resolve("keep") == tagged
    report = engine.images.prune(all_=True)
    assert {"Untagged": "keep:latest"} in report["ImagesDeleted"]
    assert store_files(engine) == {"layers": [], "blobs/sha256": [], "tmp": []}


def test_hostile_layer_leaves_nothing(engine, tmp_path):
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        info = tarfile.TarInfo("../../escaped")
        data = b"pwned"
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(LayerError, match="escaped"):
        engine.import_image(str(evil), "evil")
    assert not (tmp_path / "escaped").exists() and not (engine.root / "escaped").exists()
    assert store_files(engine) == {"layers": [], "blobs/sha256": [], "tmp": []}
    assert engine.store.db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0


def test_truncated_gzip_layer_is_refused(engine, rootfs, tmp_path):
    good = tar_dir(rootfs, tmp_path / "l.tar.gz", "gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(LayerError):
        engine.import_image(str(cut), "cut")
    assert store_files(engine) == {"layers": [], "blobs/sha256": [], "tmp": []}


# -- archives ------------------------------------------------------------------------------------


def make_docker_archive(tmp_path: Path, layers: list[Path], tags: list[str], oci_layout: bool = False,
                        fake_diff_ids: bool = False) -> Path:
    """A ``docker save`` archive written by hand: classic (<id>/layer.tar) or Docker 25+ (blobs/)."""
    from dockyard import layers as native

    diff_ids = []
    for p in layers:
        diff_ids.append(native.decompress(str(p), os.devnull)["diff_id"])
    if fake_diff_ids:
        diff_ids[-1] = "sha256:" + "ab" * 32
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": f"layer {i}"} for i in range(len(layers))],
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, separators=(",", ":")).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    out = tmp_path / "archive.tar"
    with tarfile.open(out, "w") as tf:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

        names = []
        if oci_layout:
            add(f"blobs/sha256/{config_hex}", config)
            for p in layers:
                names.append(f"blobs/sha256/{hashlib.sha256(p.read_bytes()).hexdigest()}")
                add(names[-1], p.read_bytes())
            add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            add("index.json", b'{"schemaVersion":2,"manifests":[]}')
            config_name = f"blobs/sha256/{config_hex}"
        else:
            for i, p in enumerate(layers):
                names.append(f"{i:064x}/layer.tar")
                add(names[-1], p.read_bytes())
            config_name = f"{config_hex}.json"
            add(config_name, config)
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": tags, "Layers": names}]).encode())
    return out


@pytest.fixture
def two_layers(tmp_path, rootfs) -> list[Path]:
    base = tar_dir(rootfs, tmp_path / "base.tar")
    top = tmp_path / "top"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "hostname").write_text("dockyard\n")
    (top / "bin").mkdir()
    (top / "bin" / ".wh.false").write_text("")           # delete /bin/false
    (top / "tmp").mkdir()
    (top / "tmp" / ".wh..wh..opq").write_text("")       # opaque /tmp
    (top / "tmp" / "new").write_text("fresh")
    return [base, tar_dir(top, tmp_path / "top.tar", "gz")]


@pytest.mark.parametrize("oci_layout", [False, True], ids=["classic", "docker25-oci-layout"])
def test_load_docker_archive_and_flatten(engine, tmp_path, two_layers, oci_layout):
    archive = make_docker_archive(tmp_path, two_layers, ["loaded:1"], oci_layout)
    lines = engine.load(str(archive))
    assert lines == ["Loaded image: loaded:1"]
    info = engine.images.inspect("loaded:1")
    assert info["Config"]["Cmd"] == ["/bin/sh"]
    assert len(info["RootFS"]["Layers"]) == 2
    flat = tmp_path / "flat"
    flat.mkdir()
    engine.images.flatten("loaded:1", flat)
    assert not (flat / "bin" / "false").exists() and (flat / "bin" / "true").is_symlink()
    assert (flat / "etc" / "hostname").read_text() == "dockyard\n"
    assert sorted(os.listdir(flat / "tmp")) == ["new"]
    # overlay form in the store: a 0/0 char device for the deleted file
    top = engine.images.layer_dirs(info["Id"])[1]
    st = (top / "bin" / "false").lstat()
    assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0
    assert os.getxattr(top / "tmp", "trusted.overlay.opaque") == b"y"
    # Loading again changes nothing and reads no layer
    assert engine.load(str(archive)) == ["Loaded image: loaded:1"]
    assert len(store_files(engine)["layers"]) == 2


def test_load_refuses_layer_that_does_not_match_config(engine, tmp_path, two_layers):
    archive = make_docker_archive(tmp_path, two_layers, ["bad:1"], fake_diff_ids=True)
    with pytest.raises(LayerError, match="does not match the image config"):
        engine.load(str(archive))
    assert engine.store.db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
    assert store_files(engine)["layers"] == [] and store_files(engine)["tmp"] == []


def test_load_rejects_garbage(engine, tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ArchiveError, match="invalid image archive"):
        engine.load(str(junk))
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    with pytest.raises(ArchiveError, match="neither manifest.json nor index.json"):
        engine.load(str(empty))


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_save_then_load_round_trip(engine, tmp_path, two_layers, fmt):
    engine.load(str(make_docker_archive(tmp_path, two_layers, ["rt:1"])))
    image_id = engine.images.resolve("rt:1")
    out = tmp_path / f"saved-{fmt}.tar"
    with open(out, "wb") as f:
        engine.save(["rt:1"], f, fmt)
    from dockyard import Engine

    with Engine(tmp_path / "other-root") as other:
        assert other.load(str(out)) == ["Loaded image: rt:1"]
        assert other.images.resolve("rt:1") == image_id
        assert tree(other.images.layer_dirs(image_id)[1]) == tree(engine.images.layer_dirs(image_id)[1])


def test_save_gzipped_archive_loads(engine, tmp_path, two_layers):
    engine.load(str(make_docker_archive(tmp_path, two_layers, ["gz:1"])))
    out = tmp_path / "saved.tar"
    with open(out, "wb") as f:
        engine.save(["gz:1"], f)
    subprocess.run(["gzip", "-k", str(out)], check=True)
    engine.images.remove("gz:1")
    assert engine.load(str(out) + ".gz") == ["Loaded image: gz:1"]


def test_store_survives_kill_during_import(tmp_path, rootfs):
    """kill -9 in the middle of an import: the next open finds a consistent store."""
    import signal
    import sys
    import time

    big = tmp_path / "big"
    big.mkdir()
    for i in range(3000):
        (big / f"f{i}").write_bytes(os.urandom(2048))
    tar = tar_dir(big, tmp_path / "big.tar", "gz")
    root = tmp_path / "killroot"
    code = ("import sys; from dockyard import Engine; e = Engine(sys.argv[1]); "
            "print('go', flush=True); e.import_image(sys.argv[2], 'k')")
    with subprocess.Popen([sys.executable, "-c", code, str(root), str(tar)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout.readline().strip() == b"go"
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    from dockyard import Engine

    with Engine(root) as e:
        n = e.store.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        layers = os.listdir(root / "layers")
        assert os.listdir(root / "tmp") == []
        if n == 0:
            assert layers == []
        else:
            assert len(layers) == 1 and e.images.inspect("k")["RepoTags"] == ["k:latest"]
        assert e.store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sqlite3.connect(root / "state.db").execute("SELECT COUNT(*) FROM layers").fetchone()[0] == len(layers)
