"""Images: register, resolve, tag, remove, inspect, list and prune them.

An image is its config JSON (the image ID is the sha256 of those exact bytes) plus the layers
its ``rootfs.diff_ids`` name.  Every change here is one SQLite transaction; the layer
directories and blobs it adds are renamed into place inside that transaction (see store.py).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import reference as refs
from ..errors import Conflict, DockyardError, ImageNotFound, InvalidReference, LayerError
from .store import Store, _hex, chain_ids, dumps

# The fields of an image's "config", in the order Docker 28's inspect shows them.
CONFIG_FIELDS = (
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
    "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped",
    "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild",
    "Labels", "StopSignal", "StopTimeout", "Shell",
)


def now_rfc3339() -> str:
    """UTC time with nanoseconds, as Go's time.RFC3339Nano writes it."""
    ns = time.time_ns()
    base = datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return base + (f".{frac}" if frac else "") + "Z"


def parse_time(value: str) -> float:
    """RFC 3339 (with up to nanoseconds, Z or an offset) to a POSIX timestamp; 0 when absent."""
    if not value:
        return 0.0
    s = value.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    frac = ""
    if "." in s:
        head, _, rest = s.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        s, frac = head + rest, digits
    try:
        ts = datetime.fromisoformat(s).timestamp()
    except ValueError:
        return 0.0
    return ts + (int(frac[:9].ljust(9, "0")) / 1e9 if frac else 0.0)


def compact_config(config: dict | None) -> dict:
    """An image's run config with empty fields left out, in Docker's field order."""
    config = config or {}
    out = {}
    for key in CONFIG_FIELDS:
        value = config.get(key)
        if value not in (None, "", False, [], {}, 0):
            out[key] = value
    for key, value in config.items():  # keep anything we do not know of
        if key not in out and key not in CONFIG_FIELDS and value not in (None, "", [], {}):
            out[key] = value
    return out


@dataclass
class LayerSource:
    """Where a layer's bytes are: a file, or a part of one (a member of an outer archive)."""

    path: str
    offset: int = 0
    length: int | None = None
    expected_diff_id: str | None = None  # from the config: verified after extraction
    expected_digest: str | None = None   # from a manifest: verified after extraction
    member: str = ""                     # for messages
    own: bool = False                    # a staged file of just this layer: becomes the blob


# The ``compression`` of a layer whose blob is its tar-split (see split.rs): the tar is rebuilt
# from the extracted tree when it is needed (save, push), as Docker does, instead of keeping a
# second copy of the layer.
TAR_SPLIT = "tar-split"


@dataclass
class NewImage:
    config_bytes: bytes
    tags: list[str] = field(default_factory=list)  # normalised references
    parent: str = ""


class Images:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- resolving ------------------------------------------------------------------------------

    def resolve(self, name: str) -> str:
        """Image ID for a reference, a full ID or an unambiguous ID prefix."""
        db = self.store.db
        if name.startswith("sha256:") and len(name) == 71:
            if db.execute("SELECT 1 FROM images WHERE id=?", (name,)).fetchone():
                return name
            raise ImageNotFound(f"No such image: {name}")
        ref = None
        try:
            ref = refs.parse(name)
        except DockyardError:
            if not refs.is_id_prefix(name):
                raise
        if ref is not None:
            if ref.digest:
                row = db.execute(
                    "SELECT image_id FROM repo_digests WHERE name=?", (f"{ref.name}@{ref.digest}",)
                ).fetchone()
                if row is None and db.execute("SELECT 1 FROM images WHERE id=?", (ref.digest,)).fetchone():
                    row = (ref.digest,)
            else:
                row = db.execute(
                    "SELECT image_id FROM tags WHERE name=?", (str(ref.with_default_tag()),)
                ).fetchone()
            if row:
                return row[0]
        missing = name
        if ref is not None and not ref.digest:
            missing = ref.with_default_tag().familiar()
        if refs.is_id_prefix(name):
            prefix = name if name.startswith("sha256:") else "sha256:" + name
            rows = db.execute(
                "SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "g")
            ).fetchall()
            if len(rows) == 1:
                return rows[0][0]
            if len(rows) > 1:
                raise ImageNotFound(f"No such image: {name} (the ID prefix is ambiguous)")
        raise ImageNotFound(f"No such image: {missing}")

    def config_bytes(self, image_id: str) -> bytes:
        return self.store.read_blob(image_id)

    def config(self, image_id: str) -> dict:
        return json.loads(self.config_bytes(image_id))

    def layers(self, image_id: str) -> list[dict]:
        """The image's layers, bottom first, as rows of the layers table (dicts)."""
        rows = self.store.db.execute(
            "SELECT l.* FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id "
            "WHERE il.image_id=? ORDER BY il.idx",
            (image_id,),
        ).fetchall()
        return [dict(r) for r in rows]

    def layer_dirs(self, image_id: str) -> list[Path]:
        """Extracted layer directories, bottom first (overlay wants them top first)."""
        return [self.store.layer_path(r["chain_id"]) for r in self.layers(image_id)]

    def flatten(self, name: str, dest: Path) -> None:
        """Apply every layer of the image in order onto ``dest``: the tree ``docker export`` of a
        fresh container holds (whiteouts applied, not kept)."""
        from .. import _native

        with self.store.staging() as stage:
            for layer in self.layers(self.resolve(name)):
                path, *_ = self.layer_blob(layer, stage, ("none", "gzip", "zstd"), "none")
                info = _native.extract(str(path), str(dest), whiteouts="apply")
                if path.parent == stage:
                    path.unlink()
                if info["diff_id"] != layer["diff_id"]:
                    raise DockyardError(f"layer {layer['chain_id']} is corrupt in the store")

    def keep_blob(self, layer: dict, path: Path, digest: str, size: int, compression: str) -> None:
        """Keep ``path``, a blob made from a tar-split layer (a push gzips one for the wire), as
        that layer's blob instead of its tar-split: the next push sends the same bytes without
        compressing them again.  (Docker compresses on every push to a registry that lacks the
        layer.)"""
        store = self.store
        with store.transaction() as db:
            store.adopt_blob(path, digest)
            db.execute(
                "UPDATE layers SET blob=?, blob_size=?, compression=? WHERE diff_id=? AND compression=?",
                (digest, size, compression, layer["diff_id"], TAR_SPLIT),
            )
        store.delete_unreferenced([], [layer["blob"]])

    def layer_blob(self, layer: dict, stage: Path, accept: tuple[str, ...], make: str) -> tuple[Path, str, int, str]:
        """The layer as a blob file: the stored blob when its compression is one of ``accept``,
        otherwise one written under ``stage`` with compression ``make`` (rebuilt from the tree
        for a tar-split) and checked against the diff ID.  Returns the path, digest, size and
        compression."""
        from .. import _native

        blob = self.store.blob_path(layer["blob"])
        if layer["compression"] in accept:
            return blob, layer["blob"], layer["blob_size"], layer["compression"]
        tmp = stage / f"{_hex(layer['diff_id'])}.{make}"
        try:
            if layer["compression"] == TAR_SPLIT and not blob.exists():
                # A push swapped it for a gzip meanwhile (keep_blob): use what is there now.
                row = self.store.db.execute("SELECT * FROM layers WHERE chain_id=?", (layer["chain_id"],)).fetchone()
                if row is not None and row["blob"] != layer["blob"]:
                    return self.layer_blob(dict(row), stage, accept, make)
            if layer["compression"] == TAR_SPLIT:
                info = _native.assemble(str(blob), str(self.store.layer_path(layer["chain_id"])), str(tmp), make)
            elif make == "none":
                info = _native.decompress(str(blob), str(tmp))
            else:
                info = _native.compress(str(blob), str(tmp), make)
        except LayerError as exc:
            tmp.unlink(missing_ok=True)
            raise DockyardError(f"layer {layer['chain_id']} is corrupt in the store: {exc}") from None
        if info["diff_id"] != layer["diff_id"]:
            tmp.unlink(missing_ok=True)
            raise DockyardError(f"layer {layer['chain_id']} is corrupt in the store")
        if make == "none":
            return tmp, info["diff_id"], info["size"], make
        return tmp, info["digest"], info["compressed_size"], make

    def tags_of(self, image_id: str) -> list[str]:
        return [r[0] for r in self.store.db.execute(
            "SELECT name FROM tags WHERE image_id=? ORDER BY name", (image_id,))]

    def digests_of(self, image_id: str) -> list[str]:
        return [r[0] for r in self.store.db.execute(
            "SELECT name FROM repo_digests WHERE image_id=? ORDER BY name", (image_id,))]

    # -- adding ---------------------------------------------------------------------------------

    def extract_layers(self, stage: Path, sources: list[LayerSource]) -> list[dict]:
        """Extract every layer the store lacks into ``stage``, in parallel, verifying digests.

        Returns one record per source: diff_id, chain_id, and for new layers the staged
        directory, the blob to keep (``blob_file``: the layer's tar-split, or its bytes when the
        tree cannot give them back, or the source itself when it is ``own``) and the sizes."""
        from .. import _native

        def one(index: int, src: LayerSource) -> dict:
            target = stage / f"layer{index}"
            target.mkdir()
            keep = stage / f"keep{index}"
            try:
                info = _native.extract(src.path, str(target), offset=src.offset, length=src.length,
                                       split=None if src.own else str(keep))
            except LayerError as exc:
                where = f" in {src.member}" if src.member else ""
                raise LayerError(f"invalid layer{where}: {exc}", exc.member) from None
            if src.expected_diff_id and info["diff_id"] != src.expected_diff_id:
                raise LayerError(
                    f"layer {src.member or index} does not match the image config: "
                    f"its content is {info['diff_id']}, the config says {src.expected_diff_id}"
                )
            if src.expected_digest and info["digest"] != src.expected_digest:
                raise LayerError(
                    f"layer {src.member or index} does not match its manifest: "
                    f"digest {info['digest']}, expected {src.expected_digest}"
                )
            if src.own:
                blob = (Path(src.path), info["digest"], info["compressed_size"], info["compression"])
            elif info["split"] is not None:
                blob = (keep, info["split"]["digest"], info["split"]["size"], TAR_SPLIT)
            else:
                # A member replaced an earlier one, so the tree cannot give the stream back:
                # keep the layer's own bytes (a second read of the source).
                copy = _native.compress(src.path, str(keep), "none", offset=src.offset, length=src.length)
                if copy["digest"] != info["digest"]:
                    raise DockyardError(f"layer {src.member or src.path} changed while it was read")
                blob = (keep, info["digest"], info["compressed_size"], info["compression"])
            info["dir"] = target
            info["blob_file"], info["blob"], info["blob_size"], info["blob_compression"] = blob
            return info

        records: list[dict | None] = [None] * len(sources)
        known = self.store.db.execute("SELECT chain_id FROM layers").fetchall()
        known_chains = {r[0] for r in known}
        todo: list[int] = []
        # A layer whose chain is already registered need not be read at all (as docker load).
        expected = [s.expected_diff_id for s in sources]
        if all(expected):
            for i, chain in enumerate(chain_ids(expected)):  # type: ignore[arg-type]
                if chain in known_chains:
                    records[i] = {"diff_id": expected[i], "chain_id": chain, "existing": True}
                else:
                    todo.append(i)
        else:
            todo = list(range(len(sources)))
        workers = min(len(todo), max(1, (os.cpu_count() or 2)))
        if workers == 1:  # one layer (import, most loads of a new base): no pool to start
            records[todo[0]] = one(todo[0], sources[todo[0]])
        elif workers:
            import concurrent.futures  # not on the path of commands that extract nothing

            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                futures = {i: pool.submit(one, i, sources[i]) for i in todo}
                for i, fut in futures.items():
                    records[i] = fut.result()
        diff_ids = [r["diff_id"] for r in records]  # type: ignore[index]
        for rec, chain in zip(records, chain_ids(diff_ids)):
            rec["chain_id"] = chain  # type: ignore[index]
        return records  # type: ignore[return-value]

    def register(self, new: NewImage, layer_records: list[dict]) -> tuple[str, list[str]]:
        """Register an image whose layers are extracted (or known) in one transaction.

        Returns the image ID and the messages about tags moved off older images."""
        config = json.loads(new.config_bytes)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if [r["diff_id"] for r in layer_records] != diff_ids:
            raise DockyardError("internal error: layers do not match the config's diff_ids")
        moved: list[str] = []
        renamed: list[Path] = []
        try:
            self._register(new, config, layer_records, moved, renamed)
        except BaseException:
            for path in renamed:  # rolled back: the directories must not stay registered-looking
                from .store import remove_tree

                remove_tree(path)
            raise
        return self.resolve_id(new.config_bytes), moved

    @staticmethod
    def resolve_id(config_bytes: bytes) -> str:
        import hashlib

        return "sha256:" + hashlib.sha256(config_bytes).hexdigest()

    def _register(self, new: NewImage, config: dict, layer_records: list[dict],
                  moved: list[str], renamed: list[Path]) -> None:
        store = self.store
        with store.transaction() as db:
            config_digest = store.put_blob_bytes(new.config_bytes)
            image_id = config_digest
            parent_chain = None
            size = 0
            for rec in layer_records:
                chain = rec["chain_id"]
                row = db.execute("SELECT content_size FROM layers WHERE chain_id=?", (chain,)).fetchone()
                if row is None:
                    if rec.get("existing"):
                        raise DockyardError(f"layer {chain} vanished while the image was loaded")
                    blob_digest = rec["blob"]
                    store.adopt_blob(rec["blob_file"], blob_digest)
                    dest = store.layer_path(chain)
                    os.rename(rec["dir"], dest)
                    renamed.append(dest)
                    db.execute(
                        "INSERT INTO layers VALUES (?,?,?,?,?,?,?,?)",
                        (chain, rec["diff_id"], parent_chain, blob_digest, rec["blob_size"],
                         rec["blob_compression"], rec["size"], rec["content_size"]),
                    )
                    size += rec["content_size"]
                else:
                    size += row[0]
                parent_chain = chain
            if db.execute("SELECT 1 FROM images WHERE id=?", (image_id,)).fetchone() is None:
                db.execute(
                    "INSERT INTO images VALUES (?,?,?,?,?)",
                    (image_id, config.get("created") or "", size, new.parent, time.time()),
                )
                db.executemany(
                    "INSERT INTO image_layers VALUES (?,?,?)",
                    [(image_id, i, r["chain_id"]) for i, r in enumerate(layer_records)],
                )
            for tag in new.tags:
                old = db.execute("SELECT image_id FROM tags WHERE name=?", (tag,)).fetchone()
                if old and old[0] != image_id:
                    moved.append(
                        f"The image {refs.parse(tag).familiar()} already exists, renaming the old "
                        f"one with ID {old[0]} to empty string"
                    )
                db.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (tag, image_id))

    def import_layer(
        self,
        source: LayerSource,
        tag: str | None = None,
        changes: list[str] | None = None,
        message: str = "",
        platform: str | None = None,
    ) -> str:
        """``docker import``: one layer from a tar (plain, gzip or zstd) becomes an image."""
        from .changes import apply_changes

        target = str(refs.parse_repository_tag(tag).with_default_tag()) if tag else None
        run_config = apply_changes({}, changes or [])
        with self.store.staging() as stage:
            (record,) = self.extract_layers(stage, [source])
            created = now_rfc3339()
            osname, arch = "linux", _go_arch()
            if platform:
                osname, _, arch = platform.partition("/")
                arch = arch.split("/")[0] or _go_arch()
            history = {"created": created, "comment": message or "Imported from -"}
            config = {
                "architecture": arch,
                "comment": message or "Imported from -",
                "config": run_config,
                "created": created,
                "history": [history],
                "os": osname,
                "rootfs": {"type": "layers", "diff_ids": [record["diff_id"]]},
            }
            new = NewImage(dumps(config).encode(), [target] if target else [])
            image_id, _ = self.register(new, [record])
        return image_id

    # -- tags and removal -----------------------------------------------------------------------

    def tag(self, source: str, target: str) -> None:
        try:
            name = str(refs.parse_repository_tag(target).with_default_tag())
        except InvalidReference as exc:
            err = InvalidReference(f'Error parsing reference: "{target}" is not a valid repository/tag: {exc}')
            err.client_side = True
            raise err from None
        image_id = self.resolve(source)
        with self.store.transaction() as db:
            db.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (name, image_id))

    def _containers_using(self, image_id: str) -> list[dict]:
        rows = self.store.db.execute(
            "SELECT id, state FROM containers WHERE image_id=?", (image_id,)
        ).fetchall()
        out = []
        for row in rows:
            state = json.loads(row["state"] or "{}")
            out.append({"id": row["id"], "running": bool(state.get("Running"))})
        return out

    def remove(self, name: str, force: bool = False, prune: bool = True) -> list[dict]:
        """``docker rmi``: untag, and delete the image once no tag and no container holds it.

        Returns Docker's response items: ``{"Untagged": ...}`` and ``{"Deleted": ...}``."""
        image_id = self.resolve(name)
        short = _hex(image_id)[:12]
        by_ref = None
        try:
            parsed = refs.parse(name)
        except DockyardError:
            parsed = None
        if parsed is not None:
            full = str(parsed) if parsed.digest else str(parsed.with_default_tag())
            table = "repo_digests" if parsed.digest else "tags"
            if self.store.db.execute(f"SELECT 1 FROM {table} WHERE name=?", (full,)).fetchone():
                by_ref = (table, full, parsed)
        users = self._containers_using(image_id)
        tags = self.tags_of(image_id)
        digests = self.digests_of(image_id)
        items: list[dict] = []
        if by_ref is not None:
            _, full, parsed = by_ref
            single = len(tags) + len(digests) <= 1
            # dockerd's rule: once the last tag of a repository goes, that repository's digest
            # references go with it (else the image would linger as "<none>" with a digest)
            drop = [full]
            if not parsed.digest and not any(t != full and refs.parse(t).name == parsed.name for t in tags):
                drop += [d for d in digests if refs.parse(d).name == parsed.name]
            if len(tags) + len(digests) > len(drop):
                with self.store.transaction() as db:
                    for name_ in drop:
                        db.execute(f"DELETE FROM {'repo_digests' if '@' in name_ else 'tags'} WHERE name=?", (name_,))
                return [{"Untagged": _familiar(n)} for n in drop]
            if users and not force and single:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - '
                    f"container {users[0]['id'][:12]} is using its referenced image {short}"
                )
        else:
            if len(tags) + len(digests) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {short} (must be forced) - image is referenced "
                    "in multiple repositories"
                )
            running = [u for u in users if u["running"]]
            if running:
                raise Conflict(
                    f"conflict: unable to delete {short} (cannot be forced) - image is being used "
                    f"by running container {running[0]['id'][:12]}"
                )
            if users and not force:
                raise Conflict(
                    f"conflict: unable to delete {short} (must be forced) - image is being used "
                    f"by stopped container {users[0]['id'][:12]}"
                )
        children = self.store.db.execute("SELECT 1 FROM images WHERE parent=?", (image_id,)).fetchone()
        if children and not (by_ref or force):
            raise Conflict(
                f"conflict: unable to delete {short} (cannot be forced) - image has dependent child images"
            )
        for name_ in tags:
            items.append({"Untagged": _familiar(name_)})
        for name_ in digests:
            items.append({"Untagged": _familiar(name_)})
        if users or children:
            # Untag only: a container (or a child image) still needs the image.
            with self.store.transaction() as db:
                db.execute("DELETE FROM tags WHERE image_id=?", (image_id,))
                db.execute("DELETE FROM repo_digests WHERE image_id=?", (image_id,))
            return items
        items += self._delete(image_id)
        return items

    def _delete(self, image_id: str) -> list[dict]:
        """Delete an image and every layer no other image uses; one transaction."""
        layers = self.layers(image_id)
        deleted = [{"Deleted": image_id}]
        dropped: list[str] = []
        blobs = [image_id]
        with self.store.transaction() as db:
            db.execute("DELETE FROM tags WHERE image_id=?", (image_id,))
            db.execute("DELETE FROM repo_digests WHERE image_id=?", (image_id,))
            db.execute("DELETE FROM image_layers WHERE image_id=?", (image_id,))
            db.execute("DELETE FROM images WHERE id=?", (image_id,))
            for layer in reversed(layers):
                chain = layer["chain_id"]
                if db.execute("SELECT 1 FROM image_layers WHERE chain_id=? LIMIT 1", (chain,)).fetchone():
                    break  # this layer and every one below it are still in use
                db.execute("DELETE FROM layers WHERE chain_id=?", (chain,))
                dropped.append(chain)
                blobs.append(layer["blob"])
                deleted.append({"Deleted": chain})
        self.store.delete_unreferenced(dropped, blobs)
        return deleted

    def prune(self, all_: bool = False, filters: dict[str, list[str]] | None = None) -> dict:
        """``docker image prune``: dangling images (or with ``all_`` every unused one)."""
        from .filters import image_matches

        db = self.store.db
        deleted: list[dict] = []
        reclaimed = 0
        used = {r[0] for r in db.execute("SELECT image_id FROM containers")}
        parents = {r[0] for r in db.execute("SELECT parent FROM images WHERE parent != ''")}
        # Children before parents, so a chain of unused images goes in one prune.
        rows = db.execute("SELECT id, size, created FROM images ORDER BY added_at DESC").fetchall()
        for row in rows:
            image_id = row["id"]
            if image_id in used or image_id in parents:
                continue
            tags = self.tags_of(image_id)
            if (tags or self.digests_of(image_id)) and not all_:
                continue
            if filters and not image_matches(self, image_id, filters):
                continue
            layer_sizes = {l["chain_id"]: l["content_size"] for l in self.layers(image_id)}
            for name in tags + self.digests_of(image_id):
                deleted.append({"Untagged": _familiar(name)})
            items = self._delete(image_id)
            deleted += items
            reclaimed += sum(layer_sizes.get(i["Deleted"], 0) for i in items[1:])
            parents = {r[0] for r in db.execute("SELECT parent FROM images WHERE parent != ''")}
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # -- views ----------------------------------------------------------------------------------

    def inspect(self, name: str) -> dict:
        """The image in Docker's ``/images/{name}/json`` shape."""
        image_id = self.resolve(name)
        config = self.config(image_id)
        row = self.store.db.execute("SELECT * FROM images WHERE id=?", (image_id,)).fetchone()
        layers = self.layers(image_id)
        top = self.store.layer_path(layers[-1]["chain_id"]) if layers else None
        lower = [str(self.store.layer_path(l["chain_id"])) for l in reversed(layers[:-1])]
        data: dict = {}
        if top is not None:
            data = {"UpperDir": str(top)}
            if lower:
                data["LowerDir"] = ":".join(lower)
        out = {
            "Id": image_id,
            "RepoTags": [_familiar(t) for t in self.tags_of(image_id)],
            "RepoDigests": [_familiar(d) for d in self.digests_of(image_id)],
            "Parent": row["parent"],
            "Comment": config.get("comment", ""),
            "Created": config.get("created", ""),
            "DockerVersion": config.get("docker_version", ""),
            "Author": config.get("author", ""),
            "Config": compact_config(config.get("config")),
            "Architecture": config.get("architecture", ""),
            "Os": config.get("os", ""),
            "Size": row["size"],
            "GraphDriver": {"Data": data, "Name": "overlay"},
            "RootFS": {"Type": "layers", "Layers": list((config.get("rootfs") or {}).get("diff_ids") or [])},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }
        if config.get("variant"):
            out["Variant"] = config["variant"]
        if config.get("os.version"):
            out["OsVersion"] = config["os.version"]
        return out

    def summaries(self, all_: bool = False, filters: dict[str, list[str]] | None = None) -> list[dict]:
        """Docker's ``/images/json``: one summary per image, newest first."""
        from .filters import image_matches

        db = self.store.db
        used: dict[str, int] = {}
        for r in db.execute("SELECT image_id, COUNT(*) FROM containers GROUP BY image_id"):
            used[r[0]] = r[1]
        parents = {r[0] for r in db.execute("SELECT parent FROM images WHERE parent != ''")}
        out = []
        for row in db.execute("SELECT * FROM images").fetchall():
            image_id = row["id"]
            tags = self.tags_of(image_id)
            digests = self.digests_of(image_id)
            if not all_ and not tags and not digests and image_id in parents:
                continue  # an intermediate image: shown only with -a, as docker
            if filters and not image_matches(self, image_id, filters):
                continue
            config = self.config(image_id)
            repo_tags = [_familiar(t) for t in tags]
            repo_digests = [_familiar(d) for d in digests]
            if filters and "reference" in filters:
                # As docker: the summary keeps only the names that matched the reference filter.
                from .filters import reference_match

                pats = filters["reference"]
                repo_tags = [t for t in repo_tags if any(reference_match(p, [t]) for p in pats)]
                repo_digests = [d for d in repo_digests if any(reference_match(p, [d]) for p in pats)]
            out.append({
                "Id": image_id,
                "ParentId": row["parent"],
                "RepoTags": repo_tags,
                "RepoDigests": repo_digests,
                "Created": int(parse_time(row["created"])),
                "Size": row["size"],
                "SharedSize": -1,
                "Labels": (config.get("config") or {}).get("Labels") or {},
                "Containers": used.get(image_id, 0),
            })
        out.sort(key=lambda s: (s["Created"], s["Id"]), reverse=True)
        return out

    def history(self, name: str) -> list[dict]:
        """Docker's ``/images/{name}/history``: newest first."""
        image_id = self.resolve(name)
        config = self.config(image_id)
        layers = self.layers(image_id)
        sizes = [l["content_size"] for l in layers]
        out = []
        for entry in config.get("history") or []:
            size = 0
            if not entry.get("empty_layer"):
                size = sizes.pop(0) if sizes else 0
            out.append({
                "Id": "<missing>",
                "Created": int(parse_time(entry.get("created", ""))),
                "CreatedBy": entry.get("created_by", ""),
                "Tags": None,
                "Size": size,
                "Comment": entry.get("comment", ""),
            })
        if not out:  # an image without history: one line for the image itself
            out.append({"Id": "<missing>", "Created": int(parse_time(config.get("created", ""))),
                        "CreatedBy": "", "Tags": None, "Size": sum(sizes), "Comment": ""})
        out.reverse()
        out[0]["Id"] = image_id
        out[0]["Tags"] = [_familiar(t) for t in self.tags_of(image_id)] or None
        return out

    def disk_usage(self) -> dict:
        """The image part of ``docker system df``."""
        db = self.store.db
        images = db.execute("SELECT id FROM images").fetchall()
        used = {r[0] for r in db.execute("SELECT image_id FROM containers")}
        total = db.execute("SELECT COALESCE(SUM(content_size),0) FROM layers").fetchone()[0]
        active_layers = db.execute(
            "SELECT COALESCE(SUM(content_size),0) FROM layers WHERE chain_id IN "
            "(SELECT chain_id FROM image_layers WHERE image_id IN (SELECT image_id FROM containers))"
        ).fetchone()[0]
        return {
            "total": len(images),
            "active": len([i for i in images if i[0] in used]),
            "size": total,
            "reclaimable": total - active_layers,
        }


def _familiar(full: str) -> str:
    return refs.parse(full).familiar()


def _go_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)
