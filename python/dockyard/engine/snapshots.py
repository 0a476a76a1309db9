"""What a container's files become: ``diff``, ``commit`` (its upper dir as a new layer on its
image), ``export``, and ``cp`` in and out.  A part of :class:`~.containers.Containers`, kept
apart."""

from __future__ import annotations

from pathlib import Path

from ..errors import Conflict, DockyardError
from .images import now_rfc3339
from .store import is_mountpoint, pid_alive as _alive


class Snapshots:
    """The snapshot operations of :class:`~.containers.Containers` (a mixin: it uses the
    container store's ``resolve``, ``load``, ``refresh``, ``dir``, ``images``, ``runtime``,
    ``store`` and ``init_layer``)."""

    def diff(self, ref: str) -> list[tuple[str, str]]:
        """``docker diff``: what the container changed, as (A|C|D, path), sorted by path."""
        from .. import _native

        rec = self.load(self.resolve(ref))
        lowers = [str(self.init_layer())] + [str(p) for p in reversed(self.images.layer_dirs(rec["image_id"]))]
        return _native.changes(str(self.dir(rec["id"]) / "upper"), lowers)

    def commit(self, ref: str, reference: str | None = None, changes: list[str] | None = None,
               message: str = "", author: str = "", pause: bool = True) -> str:
        """``docker commit``: the container's upper dir becomes a new layer on its image."""
        from .changes import apply_changes
        from .images import NewImage
        from .store import dumps
        from .. import reference as refs

        cid = self.resolve(ref)
        rec = self.refresh(self.load(cid))
        target = str(refs.parse_repository_tag(reference).with_default_tag()) if reference else None
        paused_here = False
        if pause and rec["state"]["Running"] and not rec["state"]["Paused"]:
            try:
                self.runtime.pause(cid)
                paused_here = True
            except DockyardError:
                # it exited since (docker-py commits a `touch` right after its start; its
                # supervisor may still be draining): a stopped container's layer is still, so
                # the commit goes on unpaused, as dockerd's does for a stopped container
                if _alive(rec["state"]["Pid"]) and self.refresh(self.load(cid))["state"]["Running"]:
                    raise
        try:
            with self.store.staging() as stage:
                new_layer = self.snapshot(cid, stage)
                base = self.images.config(rec["image_id"])
                run_cfg = dict(base.get("config") or {})
                cfg = rec["spec"]["Config"]
                for key in ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels",
                            "StopSignal", "Volumes"):
                    if cfg.get(key) not in (None, "", [], {}):
                        run_cfg[key] = cfg[key]
                if cfg.get("Cmd") is None and "Cmd" in run_cfg and cfg.get("Entrypoint") != base.get("config", {}).get("Entrypoint"):
                    run_cfg.pop("Cmd")
                run_cfg = apply_changes(run_cfg, changes or [])
                created = now_rfc3339()
                history = list(base.get("history") or [])
                entry = {"created": created, "created_by": " ".join([rec["spec"]["Path"], *rec["spec"]["Args"]])}
                if author:
                    entry["author"] = author
                if message:
                    entry["comment"] = message
                history.append(entry)
                config = {
                    "architecture": base.get("architecture", "amd64"),
                    "author": author or None,
                    "comment": message or None,
                    "config": run_cfg,
                    "container": cid,
                    # the committed container's config, as dockerd records it (inspect shows it as
                    # ContainerConfig before API 1.45)
                    "container_config": dict(cfg),
                    "created": created,
                    "history": history,
                    "os": base.get("os", "linux"),
                    "rootfs": {"type": "layers", "diff_ids": list((base.get("rootfs") or {}).get("diff_ids") or [])
                               + [new_layer["diff_id"]]},
                }
                config = {k: v for k, v in config.items() if v is not None}
                records = [{"diff_id": l["diff_id"], "chain_id": l["chain_id"], "existing": True}
                           for l in self.images.layers(rec["image_id"])]
                from .store import chain_ids

                new_layer["chain_id"] = chain_ids([r["diff_id"] for r in records] + [new_layer["diff_id"]])[-1]
                image_id, _ = self.images.register(
                    NewImage(dumps(config).encode(), [target] if target else [], parent=rec["image_id"]),
                    records + [new_layer])
        finally:
            if paused_here:
                try:
                    self.runtime.resume(cid)
                except DockyardError:
                    if _alive(rec["state"]["Pid"]) and self.refresh(self.load(cid))["state"]["Running"]:
                        raise  # (one that exited as it was frozen has nothing to resume)
        return image_id

    def snapshot(self, ref: str, stage: Path) -> dict:
        """The container's changes as a new layer, extracted under ``stage`` and ready for
        :meth:`Images.register` (``diff_id``, ``digest``, sizes, ``dir``, ``blob_file``; the
        caller sets ``chain_id``).  Used by commit and by the builder."""
        from .. import _native
        from .images import LayerSource

        cid = self.resolve(ref)
        blob = stage / f"{cid[:12]}-layer.tar.gz"
        _native.pack(str(self.dir(cid) / "upper"), str(blob), compression="gzip", upper=True,
                     changes=self.diff(cid))
        sub = stage / f"{cid[:12]}-extract"
        sub.mkdir()
        (layer,) = self.images.extract_layers(sub, [LayerSource(str(blob), own=True)])
        return layer

    def export(self, ref: str, dest: str) -> None:
        """``docker export``: the container's whole filesystem as a tar written to ``dest``."""
        from .. import _native

        cid = self.resolve(ref)
        rec = self.refresh(self.load(cid))
        target = self.dir(cid) / "bundle" / "rootfs"
        if not is_mountpoint(target) and rec["state"]["Running"]:
            # its root is mounted in its own namespace only (--userns-remap), and a second
            # read-write overlay on its upper dir is not allowed: a read-only one with the upper
            # dir as its top layer, on a mount point of this call's
            lowers = [self.dir(cid) / "upper", self.init_layer(), *reversed(self.images.layer_dirs(rec["image_id"]))]
            with self.store.staging() as stage:
                view = stage / "export"
                view.mkdir()
                _native.mount_overlay([str(p) for p in lowers], "", "", str(view))
                try:
                    _native.pack(str(view), dest, compression="none")
                finally:
                    _native.umount(str(view))
            return
        mounted_here = not is_mountpoint(target)
        if mounted_here:
            self._mount_rootfs(rec)
        try:
            _native.pack(str(target), dest, compression="none")
        finally:
            if mounted_here:
                self._unmount_rootfs(cid, view_only=True)

    # -- docker cp --------------------------------------------------------------------------------

    def _with_rootfs(self, cid: str):
        """A context giving the container's merged root (mounted for the call if stopped)."""
        import contextlib

        @contextlib.contextmanager
        def ctx():
            rec = self.load(cid)
            target = self.dir(cid) / "bundle" / "rootfs"
            mounted_here = not is_mountpoint(target)
            if mounted_here:
                self._mount_rootfs(rec)
            try:
                yield str(target)
            finally:
                if mounted_here:
                    self._unmount_rootfs(cid, view_only=True)
        return ctx()

    def archive_source(self, ref: str, path: str):
        """``docker cp CONTAINER:PATH``: a context giving :class:`.cp.Source` (its stat header
        and its tar), ``path`` resolved once beneath the container's root."""
        from . import cp

        return cp.source(self, self.resolve(ref), ref, path)

    def archive_put(self, ref: str, path: str, stream) -> None:
        """``docker cp - CONTAINER:PATH``: extract the tar read from ``stream`` beneath the
        directory ``path``, resolved once in the container's root, never leaving it."""
        from . import cp

        cid = self.resolve(ref)
        if self.load(cid)["spec"]["HostConfig"].get("ReadonlyRootfs"):
            raise Conflict("container rootfs is marked read-only")
        cp.put(self, cid, ref, path, stream)
