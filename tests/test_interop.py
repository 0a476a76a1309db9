"""Images move between dockyard and the real peers: Docker, Podman, skopeo and umoci.

Each test drives the peer itself (a private dockerd, podman with a private store) and compares
what it sees with what dockyard sees: image IDs, configs, and the exact file tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from support import PeerCgroups, PeerDirs, extract_with_tar, need, needs_root, tree

pytestmark = needs_root

DOCKERFILE = """\
FROM dybusybox:base
RUN mkdir -p /data/sub && echo hello > /data/sub/f && ln -s sub/f /data/link && ln /data/sub/f /data/hard
RUN rm /bin/false && rm -rf /tmp && mkdir -m 1777 /tmp && touch /tmp/only
RUN mkdir /data/sub/deep && echo x > /data/sub/deep/y && chown 1000:1000 /data/sub/deep/y && chmod 4755 /data/sub/deep/y
RUN rm -rf /data/sub && mkdir /data/sub && echo replaced > /data/sub/new && mknod /data/fifo p
ENV GREETING=hi
CMD ["/bin/sh", "-c", "echo $GREETING"]
"""

# Files every runtime adds to a container's root (docker export shows them): not image content.
RUNTIME_FILES = ("/.dockerenv", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc/mtab", "/dev", "/proc",
                 "/sys")


@pytest.fixture(scope="module")
def docker_built(dockerd, docker_busybox, tmp_path_factory) -> str:
    """A five-layer image built by the real Docker: whiteouts, opaque dirs, links, setuid, fifo."""
    ctx = tmp_path_factory.mktemp("ctx")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    env = dict(dockerd.env, DOCKER_BUILDKIT="0")
    proc = subprocess.run(["docker", "build", "--network", "none", "-q", "-t", "dyinterop:built", str(ctx)],
                          env=env, capture_output=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"docker build could not run here: {proc.stderr.decode()[-300:]}")
    return "dyinterop:built"


def docker_export_tree(dockerd, image: str, work: Path) -> dict:
    cid = dockerd.docker("create", "--network", "none", image).stdout.decode().strip()
    try:
        out = work / "export.tar"
        dockerd.docker("export", "-o", str(out), cid)
        return tree(extract_with_tar(out, work / "exported"), ignore=RUNTIME_FILES)
    finally:
        dockerd.docker("rm", "-f", cid, check=False)


def flatten_tree(engine, image: str, work: Path) -> dict:
    flat = work / "flat"
    flat.mkdir()
    engine.images.flatten(image, flat)
    return tree(flat, ignore=RUNTIME_FILES)


def test_docker_save_loads_and_flattens_to_docker_export(dockerd, docker_built, engine, tmp_path):
    archive = tmp_path / "docker-save.tar"
    dockerd.docker("save", "-o", str(archive), docker_built)
    assert engine.load(str(archive)) == [f"Loaded image: {docker_built}"]
    docker_id = dockerd.docker("image", "inspect", "-f", "{{.Id}}", docker_built).stdout.decode().strip()
    ours = engine.images.inspect(docker_built)
    assert ours["Id"] == docker_id
    theirs = json.loads(dockerd.docker("image", "inspect", docker_built).stdout)[0]
    assert ours["RootFS"] == theirs["RootFS"]
    assert ours["Config"]["Env"] == theirs["Config"]["Env"] and ours["Config"]["Cmd"] == theirs["Config"]["Cmd"]
    assert ours["Created"] == theirs["Created"]
    assert ours["Size"] == theirs["Size"]
    assert flatten_tree(engine, docker_built, tmp_path) == docker_export_tree(dockerd, docker_built, tmp_path)


def test_dockyard_save_is_loaded_by_docker(dockerd, docker_built, engine, tmp_path):
    archive = tmp_path / "in.tar"
    dockerd.docker("save", "-o", str(archive), docker_built)
    engine.load(str(archive))
    engine.images.tag(docker_built, "dyroundtrip:1")
    out = tmp_path / "ours.tar"
    with open(out, "wb") as f:
        engine.save(["dyroundtrip:1"], f)
    try:
        loaded = dockerd.docker("load", "-i", str(out)).stdout.decode()
        assert "dyroundtrip:1" in loaded
        assert (dockerd.docker("image", "inspect", "-f", "{{.Id}}", "dyroundtrip:1").stdout.decode().strip()
                == engine.images.resolve("dyroundtrip:1"))
        run = dockerd.docker("run", "--rm", "--network", "none", "dyroundtrip:1", check=False)
        if run.returncode == 0:  # docker's runtime may be unavailable; the tree check below is what counts
            assert run.stdout == b"hi\n"
        assert docker_export_tree(dockerd, "dyroundtrip:1", tmp_path) == flatten_tree(engine, "dyroundtrip:1", tmp_path)
    finally:
        dockerd.docker("rmi", "dyroundtrip:1", check=False)


@pytest.fixture
def podman():
    import tempfile

    need("podman")
    cgroups = PeerCgroups("libpod_parent")
    dirs = PeerDirs("/run/runc")  # podman gives its runtime no --root: runc's default
    base = Path(tempfile.mkdtemp(prefix="dypm-", dir="/tmp"))  # podman wants a short runroot

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
               "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", *args]
        proc = subprocess.run(cmd, capture_output=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc

    try:
        yield run
    finally:
        run("system", "reset", "-f", check=False)
        shutil.rmtree(base, ignore_errors=True)
        cgroups.remove_new()
        dirs.remove_new()


def test_podman_round_trip(dockerd, docker_built, engine, podman, tmp_path):
    src = tmp_path / "docker.tar"
    dockerd.docker("save", "-o", str(src), docker_built)
    engine.load(str(src))
    ours = tmp_path / "ours.tar"
    with open(ours, "wb") as f:
        engine.save([docker_built], f)
    podman("load", "-i", str(ours))
    podman_id = podman("image", "inspect", "-f", "{{.Id}}", docker_built).stdout.decode().strip()
    assert "sha256:" + podman_id.removeprefix("sha256:") == engine.images.resolve(docker_built)
    oci = tmp_path / "podman-oci.tar"
    podman("save", "--format", "oci-archive", "-o", str(oci), docker_built)
    from dockyard import Engine

    with Engine(tmp_path / "root2") as other:
        lines = other.load(str(oci))
        assert len(lines) == 1
        loaded = lines[0].split(": ", 1)[1]
        image_id = other.images.resolve(loaded)
        assert other.images.inspect(image_id)["RootFS"] == engine.images.inspect(docker_built)["RootFS"]
        a, b = tmp_path / "a", tmp_path / "b"
        a.mkdir()
        b.mkdir()
        assert flatten_tree(other, image_id, a) == flatten_tree(engine, docker_built, b)


def test_skopeo_reads_and_writes_our_archives(dockerd, docker_built, engine, tmp_path):
    need("skopeo")
    src = tmp_path / "docker.tar"
    dockerd.docker("save", "-o", str(src), docker_built)
    engine.load(str(src))
    image_id = engine.images.resolve(docker_built)
    for fmt in ("docker-archive", "oci-archive"):
        ours = tmp_path / f"ours-{fmt}.tar"
        with open(ours, "wb") as f:
            engine.save([docker_built], f, fmt)
        raw = subprocess.run(["skopeo", "inspect", "--config", "--raw", f"{fmt}:{ours}"],
                             capture_output=True, check=True).stdout
        assert "sha256:" + __import__("hashlib").sha256(raw).hexdigest() == image_id
        # skopeo copies it to an OCI archive with a name; dockyard loads that back
        back = tmp_path / f"skopeo-{fmt}.tar"
        subprocess.run(["skopeo", "copy", "-q", f"{fmt}:{ours}", f"oci-archive:{back}:skopeo/copied:{fmt}"],
                       check=True, capture_output=True)
        from dockyard import Engine

        with Engine(tmp_path / f"root-{fmt}") as other:
            assert other.load(str(back)) == [f"Loaded image: skopeo/copied:{fmt}"]
            copied = other.images.inspect(f"skopeo/copied:{fmt}")
            assert copied["RootFS"] == engine.images.inspect(image_id)["RootFS"]
            mine = engine.images.inspect(image_id)["Config"]
            for key in ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels"):
                assert copied["Config"].get(key) == mine.get(key), key
            if fmt == "oci-archive":  # OCI to OCI keeps the config's bytes, so the ID too
                assert copied["Id"] == image_id


def test_umoci_unpacks_our_oci_archive_to_the_same_tree(dockerd, docker_built, engine, tmp_path):
    need("umoci")
    src = tmp_path / "docker.tar"
    dockerd.docker("save", "-o", str(src), docker_built)
    engine.load(str(src))
    oci = tmp_path / "ours-oci.tar"
    with open(oci, "wb") as f:
        engine.save([docker_built], f, "oci-archive")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(oci) as tf:
        tf.extractall(layout, filter="data")
    index = json.loads((layout / "index.json").read_text())
    tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], check=True, capture_output=True)
    theirs = tree(bundle / "rootfs", ignore=RUNTIME_FILES)
    assert theirs == flatten_tree(engine, docker_built, tmp_path)
    os.sync()
