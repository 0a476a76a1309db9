"""Image archives: ``docker save`` archives (classic and Docker 25+ OCI layout) and OCI archives.

Reading never copies a layer out of the archive first: the outer tar is indexed once and each
layer is extracted in place (offset and length) by the native extractor, several at a time.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .. import reference as refs
from ..errors import ArchiveError, DockyardError
from .images import Images, LayerSource, NewImage, _familiar, _go_arch
from .store import _hex, dumps

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
LAYER_TYPES = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass
class Member:
    name: str
    offset: int
    size: int


class ArchiveIndex:
    """The regular files of an outer tar, by normalised name, with symlinks resolved."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.members: dict[str, Member] = {}
        links: dict[str, str] = {}
        try:
            with tarfile.open(path, "r:") as tf:
                for info in tf:
                    name = _norm(info.name)
                    if info.isreg():
                        self.members[name] = Member(name, info.offset_data, info.size)
                    elif info.issym():
                        links[name] = _norm(posixpath.join(posixpath.dirname(name), info.linkname))
                    elif info.islnk():
                        links[name] = _norm(info.linkname)
        except tarfile.TarError as exc:
            raise ArchiveError(f"invalid image archive: {exc}") from None
        for name, target in links.items():
            for _ in range(16):
                if target in self.members:
                    self.members[name] = self.members[target]
                    break
                if target not in links:
                    break
                target = links[target]

    def has(self, name: str) -> bool:
        return _norm(name) in self.members

    def member(self, name: str) -> Member:
        try:
            return self.members[_norm(name)]
        except KeyError:
            raise ArchiveError(f"invalid image archive: {name} is missing") from None

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        m = self.member(name)
        if m.size > limit:
            raise ArchiveError(f"invalid image archive: {name} is too large ({m.size} bytes)")
        with open(self.path, "rb") as f:
            f.seek(m.offset)
            data = f.read(m.size)
        if len(data) != m.size:
            raise ArchiveError(f"invalid image archive: {name} is cut short")
        return data

    def read_json(self, name: str) -> object:
        try:
            return json.loads(self.read(name))
        except ValueError as exc:
            raise ArchiveError(f"invalid image archive: {name} is not valid JSON: {exc}") from None

    def blob(self, digest: str) -> str:
        try:
            return f"blobs/sha256/{_hex(digest)}"
        except ValueError:
            raise ArchiveError(f"invalid image archive: unsupported digest {digest!r}") from None


def _norm(name: str) -> str:
    name = posixpath.normpath("/" + name).lstrip("/")
    return name


def _sha256(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class PlannedImage:
    config: bytes
    layers: list[LayerSource]
    tags: list[str]


def _plan_docker(index: ArchiveIndex) -> list[PlannedImage]:
    manifest = index.read_json("manifest.json")
    if not isinstance(manifest, list):
        raise ArchiveError("invalid image archive: manifest.json is not a list")
    plans = []
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise ArchiveError("invalid image archive: an entry of manifest.json has no Config")
        config = index.read(entry["Config"])
        base = posixpath.basename(entry["Config"]).removesuffix(".json")
        if len(base) == 64 and _sha256(config) != "sha256:" + base:
            raise ArchiveError(f"invalid image archive: {entry['Config']} does not match its digest")
        diff_ids = _diff_ids(config, entry["Config"])
        layer_names = entry.get("Layers") or []
        if len(layer_names) != len(diff_ids):
            raise ArchiveError(
                f"invalid image archive: {len(layer_names)} layers for {len(diff_ids)} diff IDs in the config"
            )
        layers = []
        for name, diff_id in zip(layer_names, diff_ids):
            m = index.member(name)
            layers.append(LayerSource(index.path, m.offset, m.size, expected_diff_id=diff_id, member=name))
        tags = [str(refs.parse_repository_tag(t).with_default_tag()) for t in entry.get("RepoTags") or []]
        plans.append(PlannedImage(config, layers, tags))
    return plans


def _diff_ids(config: bytes, where: str) -> list[str]:
    try:
        parsed = json.loads(config)
        diff_ids = parsed["rootfs"]["diff_ids"] or []
    except (ValueError, KeyError, TypeError):
        raise ArchiveError(f"invalid image archive: {where} is not an image config") from None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise ArchiveError(f"invalid image archive: {where} has malformed diff_ids")
    return diff_ids


def _platform_ok(platform: dict | None) -> bool:
    if not platform:
        return True
    return platform.get("os", "linux") == "linux" and platform.get("architecture", _go_arch()) == _go_arch()


def _plan_oci(index: ArchiveIndex) -> list[PlannedImage]:
    layout = index.read_json("oci-layout")
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise ArchiveError("invalid image archive: oci-layout is malformed")
    top = index.read_json("index.json")
    plans: list[PlannedImage] = []

    def verified(desc: dict) -> bytes:
        digest = desc.get("digest", "")
        data = index.read(index.blob(digest))
        if _sha256(data) != digest:
            raise ArchiveError(f"invalid image archive: blob {digest} does not match its digest")
        return data

    def walk(idx: dict, names: list[str], depth: int = 0) -> None:
        if depth > 4:
            raise ArchiveError("invalid image archive: indexes nest too deep")
        for desc in idx.get("manifests") or []:
            annotations = desc.get("annotations") or {}
            here = list(names)
            name = annotations.get("io.containerd.image.name") or annotations.get("org.opencontainers.image.ref.name")
            if name:
                tag = _tag_from_annotation(name)
                if tag:
                    here = here + [tag]
            media = desc.get("mediaType", "")
            if media in (OCI_INDEX, DOCKER_LIST):
                walk(json.loads(verified(desc)), here, depth + 1)
                continue
            if media not in (OCI_MANIFEST, DOCKER_MANIFEST):
                continue
            if not _platform_ok(desc.get("platform")):
                continue
            manifest = json.loads(verified(desc))
            config = verified(manifest["config"])
            diff_ids = _diff_ids(config, manifest["config"]["digest"])
            layer_descs = manifest.get("layers") or []
            if len(layer_descs) != len(diff_ids):
                raise ArchiveError("invalid image archive: manifest layers and config diff IDs differ in number")
            layers = []
            for ldesc, diff_id in zip(layer_descs, diff_ids):
                name = index.blob(ldesc.get("digest", ""))
                m = index.member(name)
                layers.append(LayerSource(index.path, m.offset, m.size, expected_diff_id=diff_id,
                                          expected_digest=ldesc["digest"], member=name))
            plans.append(PlannedImage(config, layers, here))

    walk(top, [])
    if not plans:
        raise ArchiveError("invalid image archive: no image for linux/" + _go_arch())
    return plans


def _tag_from_annotation(value: str) -> str | None:
    """A full reference in an annotation names the image; a bare tag (``latest``) does not."""
    if "/" not in value and ":" not in value and "@" not in value:
        return None
    try:
        ref = refs.parse(value)
    except DockyardError:
        return None
    if ref.digest and not ref.tag:
        return None
    return str(ref.with_default_tag())


def load(images: Images, path: str) -> list[str]:
    """Load every image of an archive; returns docker's ``Loaded image: …`` lines."""
    store = images.store
    with store.staging() as stage:
        path = _uncompressed(path, stage)
        index = ArchiveIndex(path)
        if index.has("manifest.json"):
            plans = _plan_docker(index)
        elif index.has("index.json"):
            plans = _plan_oci(index)
        else:
            raise ArchiveError("invalid image archive: it has neither manifest.json nor index.json")
        lines: list[str] = []
        for n, plan in enumerate(plans):
            sub = stage / f"image{n}"
            sub.mkdir()
            records = images.extract_layers(sub, plan.layers)
            image_id, moved = images.register(NewImage(plan.config, plan.tags), records)
            lines += moved
            if plan.tags:
                lines += [f"Loaded image: {_familiar(t)}" for t in plan.tags]
            else:
                lines.append(f"Loaded image ID: {image_id}")
    return lines


def _uncompressed(path: str, stage: Path) -> str:
    """A gzip- or zstd-compressed archive (``docker save | gzip``) is unpacked to a file first."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == GZIP_MAGIC or magic == ZSTD_MAGIC:
        from .. import _native

        out = stage / "archive.tar"
        _native.decompress(path, str(out))
        return str(out)
    return path


def spool(stream: IO[bytes], stage: Path) -> str:
    """Copy a stream (stdin) to a file under ``stage``; archives are read by offset."""
    out = stage / "input"
    with open(out, "wb") as f:
        while True:
            chunk = stream.read(1 << 20)
            if not chunk:
                break
            f.write(chunk)
    return str(out)


# -- writing ---------------------------------------------------------------------------------------


class _Writer:
    """A tar written in order with fixed, reproducible metadata."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self.tar = tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT)
        self.dirs: set[str] = set()
        self.files: set[str] = set()

    def _dir(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.dirs:
                self.dirs.add(d)
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                self.tar.addfile(info)

    def add_bytes(self, name: str, data: bytes) -> None:
        if name in self.files:
            return
        self._dir(name)
        self.files.add(name)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        self.tar.addfile(info, io.BytesIO(data))

    def add_file(self, name: str, path: str) -> None:
        if name in self.files:
            return
        self._dir(name)
        self.files.add(name)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = os.stat(path).st_size, 0o644, 0
        with open(path, "rb") as f:
            self.tar.addfile(info, f)

    def close(self) -> None:
        self.tar.close()


def save(images: Images, names: list[str], out: IO[bytes], fmt: str = "docker-archive") -> None:
    """Write images to ``out`` as a docker-archive (Docker 25+ layout, readable by every
    docker/podman/skopeo) or as an OCI archive."""
    if fmt not in ("docker-archive", "oci-archive"):
        raise ArchiveError(f"unknown archive format {fmt!r}: use docker-archive or oci-archive")
    store = images.store
    chosen: dict[str, list[str]] = {}
    for name in names:
        image_id = images.resolve(name)
        tags = chosen.setdefault(image_id, [])
        try:
            ref = refs.parse(name)
        except DockyardError:
            ref = None
        if ref is not None and not ref.digest and not name.startswith("sha256:") and not (
            refs.is_id_prefix(name) and not images.store.db.execute(
                "SELECT 1 FROM tags WHERE name=?", (str(ref.with_default_tag()),)).fetchone()
        ):
            full = str(ref.with_default_tag())
            if ref.tag is None:
                # A repository name alone saves every tag of it, as docker does.
                for tag in images.tags_of(image_id):
                    if tag.rsplit(":", 1)[0] == ref.name and tag not in tags:
                        tags.append(tag)
            elif full not in tags:
                tags.append(full)
    writer = _Writer(out)
    index_manifests: list[dict] = []
    docker_manifest: list[dict] = []
    repositories: dict[str, dict[str, str]] = {}
    with store.staging() as stage:
        for image_id, tags in chosen.items():
            config = images.config_bytes(image_id)
            layer_descs = []
            layer_paths = []
            for layer in images.layers(image_id):
                # docker-archive layers are plain tar; an OCI archive keeps a blob as it is.
                accept = ("none", "gzip", "zstd") if fmt == "oci-archive" else ("none",)
                if layer["compression"] in accept:
                    digest, size, media = layer["blob"], layer["blob_size"], LAYER_TYPES[layer["compression"]]
                else:
                    digest, size, media = layer["diff_id"], layer["size"], LAYER_TYPES["none"]
                name = f"blobs/sha256/{_hex(digest)}"
                if name not in writer.files:
                    path, *_ = images.layer_blob(layer, stage, accept, "none")
                    writer.add_file(name, str(path))
                    if path.parent == stage:
                        path.unlink()
                layer_descs.append({"mediaType": media, "digest": digest, "size": size})
                layer_paths.append(name)
            config_name = f"blobs/sha256/{_hex(image_id)}"
            writer.add_bytes(config_name, config)
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": image_id, "size": len(config)},
                "layers": layer_descs,
            }
            manifest_bytes = dumps(manifest).encode()
            manifest_digest = _sha256(manifest_bytes)
            writer.add_bytes(f"blobs/sha256/{_hex(manifest_digest)}", manifest_bytes)
            desc = {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest_bytes)}
            if tags:
                for tag in tags:
                    ref = refs.parse(tag)
                    index_manifests.append(dict(desc, annotations={
                        "io.containerd.image.name": str(ref),
                        "org.opencontainers.image.ref.name": ref.tag or "latest",
                    }))
                    repositories.setdefault(ref.familiar_name, {})[ref.tag or "latest"] = _hex(
                        images.layers(image_id)[-1]["diff_id"]) if images.layers(image_id) else _hex(image_id)
            else:
                index_manifests.append(desc)
            docker_manifest.append({
                "Config": config_name,
                "RepoTags": [refs.parse(t).familiar() for t in tags] or None,
                "Layers": layer_paths,
            })
        writer.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_manifests}
        writer.add_bytes("index.json", dumps(index).encode())
        if fmt == "docker-archive":
            writer.add_bytes("manifest.json", dumps(docker_manifest).encode())
            if repositories:
                writer.add_bytes("repositories", dumps(repositories).encode())
        writer.close()
