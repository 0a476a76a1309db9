"""The engine: the model and its policy, used in-process (``dockyard.Engine``) or by the daemon."""

from __future__ import annotations

import os
from pathlib import Path

from .images import Images, LayerSource
from .store import Store, tree_size

TYPE_CHECKING = False  # (typing costs milliseconds of every command's start-up)
if TYPE_CHECKING:
    from typing import IO


class Engine:
    """Everything dockyard manages on one host, under one root.

    >>> engine = Engine("/tmp/dy")                       # doctest: +SKIP
    >>> image_id = engine.import_image("rootfs.tar.gz", "myimage:1")
    >>> engine.images.inspect("myimage:1")["Id"] == image_id
    True
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.store = Store(root)
        self.images = Images(self.store)
        self._containers = None

    @property
    def containers(self):
        """Container operations (loaded on first use: image commands never pay for them)."""
        if self._containers is None:
            from .containers import Containers

            self._containers = Containers(self.store, self.images)
        return self._containers

    @property
    def root(self) -> Path:
        return self.store.root

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- image operations that need more than the Images table ------------------------------------

    def import_image(
        self,
        source: str | IO[bytes],
        reference: str | None = None,
        changes: list[str] | None = None,
        message: str = "",
        platform: str | None = None,
    ) -> str:
        """``docker import``: a tar, tar.gz or tar.zst (a path or a binary stream) as an image."""
        if isinstance(source, (str, os.PathLike)):
            return self.images.import_layer(LayerSource(os.fspath(source)), reference, changes, message, platform)
        from .archive import spool

        with self.store.staging() as stage:
            path = spool(source, stage)
            return self.images.import_layer(LayerSource(path), reference, changes, message, platform)

    def load(self, source: str | IO[bytes]) -> list[str]:
        """``docker load``: docker-archive or OCI archive (optionally gzip/zstd compressed)."""
        from . import archive

        if isinstance(source, (str, os.PathLike)):
            return archive.load(self.images, os.fspath(source))
        with self.store.staging() as stage:
            return archive.load(self.images, archive.spool(source, stage))

    def save(self, names: list[str], out: IO[bytes], format: str = "docker-archive") -> None:
        from . import archive

        archive.save(self.images, names, out, format)

    def disk_usage(self) -> dict:
        """``docker system df``: counts and bytes of images and containers (writable layers)."""
        usage = {"Images": self.images.disk_usage()}
        recs = self.containers.all()
        sizes = {r["id"]: tree_size(self.containers.dir(r["id"]) / "upper") for r in recs}
        running = [r["id"] for r in recs if r["state"]["Running"]]
        usage["Containers"] = {
            "total": len(recs), "active": len(running), "size": sum(sizes.values()),
            "reclaimable": sum(v for k, v in sizes.items() if k not in running),
        }
        return usage
