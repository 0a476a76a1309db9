"""``docker push``: an image's layers (mounted from another repository when the registry has them), its
config and a manifest (Docker schema2 when every layer is gzip, else OCI)."""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import reference as refs
from ..errors import DockyardError
from .client import UPLOADS, Progress, Registry, Response, no_progress, record_names, short_id
from .common import (
    DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, LAYER_TYPES, OCI_CONFIG, OCI_MANIFEST, DigestMismatch,
    RegistryError, sha256,
)


@dataclass
class PushResult:
    reference: str
    digest: str
    size: int


@dataclass
class _Blob:
    digest: str
    size: int
    media: str
    path: Path | None = None
    data: bytes | None = None
    label: str = ""


def push(engine, name: str, *, all_tags: bool = False, progress: Progress | None = None,
         chunk_size: int | None = None, registry: Registry | None = None) -> list[PushResult]:
    """``docker push``: the image ``name`` names (or every tag of its repository) with its
    layers, config and a manifest (Docker schema2 when every layer is gzip, else OCI)."""
    progress = progress or no_progress
    ref = refs.parse(name)
    if ref.digest:
        raise DockyardError("cannot push a digest reference")
    if all_tags:
        if ref.tag:
            raise DockyardError("tag can't be used with --all-tags/-a")
        tags = [t for t in _all_tags(engine) if t.rsplit(":", 1)[0] == ref.name]
        if not tags:
            raise DockyardError(f"An image does not exist locally with the tag: {ref.familiar_name}")
    else:
        tags = [str(ref.with_default_tag())]
    reg = registry or Registry(ref.domain)
    env_chunk = os.environ.get("DOCKYARD_PUSH_CHUNK_SIZE")
    if chunk_size is None and env_chunk:
        chunk_size = int(env_chunk)
    progress("", f"The push refers to repository [{ref.name}]", None, None)
    try:
        return [_push_one(engine, reg, refs.parse(t), progress, chunk_size) for t in tags]
    finally:
        if registry is None:
            reg.close()


def _all_tags(engine) -> list[str]:
    return [r[0] for r in engine.store.db.execute("SELECT name FROM tags ORDER BY name")]


def _push_one(engine, reg: Registry, ref: refs.Reference, progress: Progress,
              chunk_size: int | None) -> PushResult:
    images, store = engine.images, engine.store
    try:
        image_id = images.resolve(str(ref))
    except DockyardError:
        raise DockyardError(f"An image does not exist locally with the tag: {ref.familiar()}") from None
    repo = ref.path
    config = images.config_bytes(image_id)
    layers = images.layers(image_id)
    # Repositories on the same registry that hold this image already: mount sources.
    sources = []
    for name in images.digests_of(image_id) + images.tags_of(image_id):
        other = refs.parse(name)
        if other.domain == ref.domain and other.path != repo and other.path not in sources:
            sources.append(other.path)
    with store.staging() as stage:
        blobs: list[_Blob] = []
        docker_types = all(l["compression"] != "zstd" for l in layers)
        for l in layers:
            label = short_id(l["diff_id"])
            progress(label, "Preparing", None, None)
            # Registries and docker expect compressed layers: a plain tar, or a tar-split's
            # rebuilt tar, is gzipped for the wire.
            path, digest, size, compression = images.layer_blob(l, stage, ("gzip", "zstd"), "gzip")
            media = DOCKER_LAYER_GZIP if docker_types else LAYER_TYPES[compression]
            blobs.append(_Blob(digest, size, media, path, label=label))
        config_blob = _Blob(image_id, len(config), DOCKER_CONFIG if docker_types else OCI_CONFIG, data=config)
        scopes = (f"repository:{repo}:pull,push",) + tuple(f"repository:{s}:pull" for s in sources)

        def one(blob: _Blob) -> None:
            _push_blob(reg, repo, blob, scopes, sources, chunk_size, progress)

        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(UPLOADS) as pool:
            futures = [pool.submit(one, b) for b in blobs]
            for fut in futures:
                fut.result()
        _push_blob(reg, repo, config_blob, scopes, sources, chunk_size, no_progress)
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker_types else OCI_MANIFEST,
            "config": {"mediaType": config_blob.media, "size": config_blob.size, "digest": config_blob.digest},
            "layers": [{"mediaType": b.media, "size": b.size, "digest": b.digest} for b in blobs],
        }
        data = json.dumps(manifest, indent=3).encode()
        digest = sha256(data)
        resp = reg.request("PUT", f"/v2/{repo}/manifests/{ref.tag}", scopes,
                           {"Content-Type": manifest["mediaType"], "Content-Length": str(len(data))},
                           body=data, ok=(201, 200, 202))
        resp.drain()
        claimed = resp.headers.get("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise DigestMismatch(f"the registry stored the manifest as {claimed}, expected {digest}")
        from ..engine.images import TAR_SPLIT

        for l, b in zip(layers, blobs):
            if l["compression"] == TAR_SPLIT and b.path is not None and b.path.parent == stage:
                images.keep_blob(l, b.path, b.digest, b.size, "gzip")
    record_names(engine, image_id, [], f"{ref.name}@{digest}")
    progress("", f"{ref.tag}: digest: {digest} size: {len(data)}", None, None)
    return PushResult(str(ref), digest, len(data))


class _Reporting:
    """A file that reports how far it has been read (the body of a monolithic upload)."""

    def __init__(self, f, report: Callable[[int], None]) -> None:
        self.f, self.report, self.done, self.last = f, report, 0, 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.done += len(data)
        if self.done - self.last >= (4 << 20):
            self.report(self.done)
            self.last = self.done
        return data

    def tell(self) -> int:
        return self.f.tell()

    def seek(self, pos: int, whence: int = 0) -> int:
        self.done = self.last = 0
        return self.f.seek(pos, whence)


def _location(resp: Response, base: str) -> str:
    loc = resp.headers.get("Location")
    if not loc:
        raise RegistryError(f"{base}: the registry sent no upload location")
    return urllib.parse.urljoin(base, loc)


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)


def _push_blob(reg: Registry, repo: str, blob: _Blob, scopes: tuple[str, ...], sources: list[str],
               chunk_size: int | None, progress: Progress) -> None:
    if reg.has_blob(repo, blob.digest, scopes):
        progress(blob.label, "Layer already exists", None, None)
        return
    start = None
    for source in sources:
        resp = reg.request("POST", f"/v2/{repo}/blobs/uploads/?" + urllib.parse.urlencode(
            {"mount": blob.digest, "from": source}), scopes, {"Content-Length": "0"}, body=b"", ok=(201, 202))
        resp.drain()
        if resp.status == 201:
            progress(blob.label, f"Mounted from {source}", None, None)
            return
        start = _location(resp, resp.url)  # the registry opened an ordinary upload instead
        break
    if start is None:
        resp = reg.request("POST", f"/v2/{repo}/blobs/uploads/", scopes, {"Content-Length": "0"}, body=b"",
                           ok=(202,))
        resp.drain()
        start = _location(resp, resp.url)
    progress(blob.label, "Pushing", 0, blob.size)
    if blob.data is not None:
        body_len = len(blob.data)
        resp = reg.request("PUT", _with_query(start, digest=blob.digest), scopes,
                           {"Content-Type": "application/octet-stream", "Content-Length": str(body_len)},
                           body=blob.data, ok=(201, 204))
        resp.drain()
    elif not chunk_size or blob.size <= chunk_size:
        with open(blob.path, "rb") as f:  # type: ignore[arg-type]
            body = _Reporting(f, lambda n: progress(blob.label, "Pushing", n, blob.size))
            resp = reg.request("PUT", _with_query(start, digest=blob.digest), scopes,
                               {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)},
                               body=body, ok=(201, 204))
            resp.drain()
    else:
        location = start
        with open(blob.path, "rb") as f:  # type: ignore[arg-type]
            offset = 0
            while offset < blob.size:
                chunk = f.read(chunk_size)
                resp = reg.request("PATCH", location, scopes, {
                    "Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}, body=chunk, ok=(202, 204))
                resp.drain()
                location = _location(resp, location)
                offset += len(chunk)
                progress(blob.label, "Pushing", offset, blob.size)
        resp = reg.request("PUT", _with_query(location, digest=blob.digest), scopes,
                           {"Content-Length": "0"}, body=b"", ok=(201, 204))
        resp.drain()
    claimed = resp.headers.get("Docker-Content-Digest")
    if claimed and claimed != blob.digest:
        raise DigestMismatch(f"the registry stored blob {blob.digest} as {claimed}")
    progress(blob.label, "Pushed", None, None)
