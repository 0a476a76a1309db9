"""Volumes and a container's mounts: named and anonymous volumes, binds, tmpfs.

A volume is a row in ``volumes`` and a directory ``volumes/<name>/_data``.  The row is written
in the transaction that creates it, after the directory exists, so a crash leaves at worst an
unregistered directory (removed when a volume of that name is created again).

A container's mounts are resolved once, at create time, into a list of Docker-shaped
``MountPoint`` records stored in its spec (``_Mounts``): what ``inspect`` shows as ``Mounts``
and what ``start`` turns into OCI bind/tmpfs mounts.  Which containers use a volume is read
from those records, so there is no second table to keep in step.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from ..errors import Conflict, InvalidArgument, NotFound
from .store import Store, remove_tree, tree_size

SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (
    name        TEXT PRIMARY KEY,
    created     TEXT NOT NULL,
    labels      TEXT NOT NULL DEFAULT '{}',
    options     TEXT NOT NULL DEFAULT '{}',
    anonymous   INTEGER NOT NULL DEFAULT 0
);
"""

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


class VolumeNotFound(NotFound):
    pass


class MountFlagError(InvalidArgument):
    """A --mount value docker's CLI itself refuses."""

    client_side = True


class Volumes:
    def __init__(self, store: Store) -> None:
        self.store = store
        if store.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='volumes'").fetchone():
            return  # no write lock taken on the common path
        with store.transaction() as db:
            for stmt in filter(str.strip, SCHEMA.split(";")):
                db.execute(stmt)

    def path(self, name: str) -> Path:
        return self.store.root / "volumes" / name / "_data"

    # -- the volume commands ---------------------------------------------------------------------

    def create(self, name: str = "", labels: dict[str, str] | None = None, driver: str = "local",
               options: dict[str, str] | None = None, anonymous: bool = False) -> str:
        from .images import now_rfc3339
        from .names import new_id

        if driver not in ("", "local"):
            raise NotFound(f"create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found")
        if options:
            raise InvalidArgument(f"create {name}: volume options are not supported by the local driver here: "
                                  + ",".join(sorted(options)))
        if not name:
            name, anonymous = new_id(), True
        elif len(name) < 2:
            raise InvalidArgument(f"create {name}: volume name is too short, names should be at least two "
                                  "alphanumeric characters")
        elif not NAME_RE.match(name):
            raise InvalidArgument(
                f'create {name}: "{name}" includes invalid characters for a local volume name, only '
                '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')
        db = self.store.db
        if db.execute("SELECT 1 FROM volumes WHERE name=?", (name,)).fetchone():
            return name  # docker: creating an existing volume is a no-op
        data = self.path(name)
        if not data.exists():
            data.mkdir(parents=True, mode=0o755)
        with self.store.transaction() as db:
            db.execute("INSERT OR IGNORE INTO volumes (name, created, labels, anonymous) VALUES (?,?,?,?)",
                       (name, now_rfc3339(), json.dumps(labels or {}), int(anonymous)))
        return name

    def exists(self, name: str) -> bool:
        return self.store.db.execute("SELECT 1 FROM volumes WHERE name=?", (name,)).fetchone() is not None

    def inspect(self, name: str) -> dict:
        row = self.store.db.execute("SELECT * FROM volumes WHERE name=?", (name,)).fetchone()
        if row is None:
            raise VolumeNotFound(f"get {name}: no such volume")
        return {
            "CreatedAt": _docker_time(row["created"]),
            "Driver": "local",
            "Labels": json.loads(row["labels"]) or None,
            "Mountpoint": str(self.path(name)),
            "Name": name,
            "Options": None,
            "Scope": "local",
        }

    def names(self) -> list[str]:
        return [r[0] for r in self.store.db.execute("SELECT name FROM volumes ORDER BY name")]

    def list(self, filters: dict[str, list[str]] | None = None) -> list[dict]:
        filters = filters or {}
        for key in filters:
            if key not in ("dangling", "name", "label", "driver"):
                raise InvalidArgument(f"Invalid filter '{key}'")
        used = self.users()
        out = []
        for name in self.names():
            vol = self.inspect(name)
            if "name" in filters and not any(f in name for f in filters["name"]):
                continue
            if "driver" in filters and "local" not in filters["driver"]:
                continue
            if "dangling" in filters:
                want = {v.lower() in ("true", "1") for v in filters["dangling"]}
                if (name not in used) not in want:
                    continue
            if "label" in filters and not all(_label_match(vol["Labels"] or {}, f) for f in filters["label"]):
                continue
            out.append(vol)
        return out

    def users(self) -> dict[str, list[str]]:
        """volume name -> IDs of the containers (in any state) whose mounts name it."""
        out: dict[str, list[str]] = {}
        # SQLite reads the JSON (in C): a Python parse of every record cost 35 ms at 1,000
        # containers, and this runs at each removal of a container with volumes
        for cid, name in self.store.db.execute(
                "SELECT c.id, json_extract(m.value, '$.Name') FROM containers c, json_each(c.spec, '$._Mounts') m "
                "WHERE json_extract(m.value, '$.Type') = 'volume'"):
            out.setdefault(name, []).append(cid)
        return out

    def remove(self, name: str, force: bool = False) -> None:
        if not self.exists(name):
            if force:
                return
            raise VolumeNotFound(f"get {name}: no such volume")
        users = self.users().get(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        with self.store.transaction() as db:
            db.execute("DELETE FROM volumes WHERE name=?", (name,))
        remove_tree(self.path(name).parent)

    def prune(self, filters: dict[str, list[str]] | None = None, all_: bool = False) -> tuple[list[str], int]:
        """The volumes no container uses: anonymous ones only, or named ones too with ``all_``
        or the ``all=true`` filter (dockerd's rule since API 1.42)."""
        filters = dict(filters or {})
        for key in filters:
            if key not in ("label", "label!", "all"):
                raise InvalidArgument(f"Invalid filter '{key}'")
        for value in filters.pop("all", []):
            if value.lower() not in ("1", "true", "0", "false"):
                raise InvalidArgument(f"invalid filter 'all={value}'")
            all_ = all_ or value.lower() in ("1", "true")
        anonymous = {r[0] for r in self.store.db.execute("SELECT name FROM volumes WHERE anonymous=1")}
        used = self.users()
        deleted, space = [], 0
        for vol in self.list({"label": filters["label"]} if "label" in filters else None):
            if vol["Name"] in used or not (all_ or vol["Name"] in anonymous):
                continue
            if "label!" in filters and any(_label_match(vol["Labels"] or {}, f) for f in filters["label!"]):
                continue
            space += tree_size(self.path(vol["Name"]))
            self.remove(vol["Name"])
            deleted.append(vol["Name"])
        return deleted, space

    # -- a container's mounts ---------------------------------------------------------------------

    def resolve_mounts(self, binds: list[str], mounts: list[str], tmpfs: list[str], volumes_from: list[str],
                       image_volumes: dict | None, containers_spec: "callable") -> tuple[list[dict], dict]:
        """-v, --mount, --tmpfs, --volumes-from and the image's VOLUMEs -> (MountPoints, Tmpfs map).

        Validates everything before creating anything; the volumes named (and anonymous ones)
        are made by network/hooks.py's ``on_insert``, in the transaction that adds the container."""
        points: dict[str, dict] = {}

        def add(mp: dict) -> None:
            dest = mp["Destination"]
            if dest in points and not points[dest].get("_weak"):
                raise InvalidArgument(f"Duplicate mount point: {dest}")
            points[dest] = mp

        tmpfs_map: dict[str, str] = {}
        for spec in tmpfs:
            dest, _, opts = spec.partition(":")
            _check_dest(dest)
            if dest in tmpfs_map:
                raise InvalidArgument(f"Duplicate mount point: {dest}")
            tmpfs_map[dest] = opts
        for ref in volumes_from:
            cref, _, mode = ref.partition(":")
            if mode not in ("", "ro", "rw"):
                raise InvalidArgument(f"invalid mode: {mode}")
            for mp in containers_spec(cref):
                copied = {k: v for k, v in mp.items() if not k.startswith("_")}
                if mode:
                    copied["RW"] = mode == "rw"
                    copied["Mode"] = mode
                add(dict(copied, _weak=True))
        for dest in sorted(image_volumes or {}):
            if dest not in points and dest not in tmpfs_map:
                points[dest] = {"Type": "volume", "Name": "", "Source": "", "Destination": dest, "Driver": "local",
                                "Mode": "", "RW": True, "Propagation": "", "_anonymous": True, "_weak": True}
        for spec in binds:
            add(parse_bind(spec))
        for spec in mounts:
            mp = parse_mount(spec)
            if mp["Type"] == "tmpfs":
                if mp["Destination"] in tmpfs_map or mp["Destination"] in points:
                    raise InvalidArgument(f"Duplicate mount point: {mp['Destination']}")
            add(mp)
        for dest in tmpfs_map:
            if dest in points and not points[dest].get("_weak"):
                raise InvalidArgument(f"Duplicate mount point: {dest}")
            points.pop(dest, None)
        out = []
        for mp in points.values():
            mp.pop("_weak", None)
            if mp["Type"] == "bind" and not os.path.exists(mp["Source"]) and not mp.get("_from_flag"):
                mp["_create_source"] = True  # docker: -v makes a missing host directory; --mount refuses
            elif mp["Type"] == "bind" and not os.path.exists(mp["Source"]):
                raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path does not exist: {mp['Source']}")
            if mp["Type"] == "volume" and mp["Name"] and not NAME_RE.match(mp["Name"]):
                raise InvalidArgument(
                    f'create {mp["Name"]}: "{mp["Name"]}" includes invalid characters for a local volume name, only '
                    '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')
            out.append(mp)
        out.sort(key=lambda m: m["Destination"])
        return out, tmpfs_map

    def oci_mounts(self, points: list[dict], tmpfs_map: dict[str, str], rootfs: Path) -> list[dict]:
        """OCI mounts for a starting container; copies image content into empty new volumes."""
        out = []
        for mp in points:
            if mp["Type"] == "tmpfs":
                opts = ["nosuid", "nodev", "noexec"] + _tmpfs_opts(mp.get("_TmpfsOptions", ""))
                out.append({"destination": mp["Destination"], "type": "tmpfs", "source": "tmpfs", "options": opts})
                continue
            source = mp["Source"]
            if mp["Type"] == "volume":
                source = str(self.path(mp["Name"]))
                if not os.path.isdir(source):  # removed under us: recreate, as docker does
                    self.create(mp["Name"])
                if not mp.get("_NoCopy"):
                    _copy_up(rootfs, mp["Destination"], Path(source))
            elif not os.path.exists(source) and mp.get("_create_source"):
                os.makedirs(source, mode=0o755, exist_ok=True)
            elif not os.path.exists(source):
                raise InvalidArgument(f"error while mounting volume: bind source path does not exist: {source}")
            opts = ["rbind", "rprivate" if not mp.get("Propagation") else mp["Propagation"]]
            if not mp["RW"]:
                opts.append("ro")
            out.append({"destination": mp["Destination"], "type": "bind", "source": source, "options": opts})
        for dest, opts in tmpfs_map.items():
            out.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                        "options": ["nosuid", "nodev", "noexec"] + _tmpfs_opts(opts)})
        out.sort(key=lambda m: m["destination"].rstrip("/").count("/"))
        return out

    def release(self, points: list[dict], remove_anonymous: bool) -> None:
        """A container is gone: remove its anonymous volumes if asked (``rm -v``, ``--rm``)."""
        if not remove_anonymous or not any(mp["Type"] == "volume" and mp.get("_anonymous") for mp in points):
            return
        users = self.users()
        for mp in points:
            if mp["Type"] == "volume" and mp.get("_anonymous") and not users.get(mp["Name"]):
                try:
                    self.remove(mp["Name"])
                except (NotFound, Conflict):
                    pass


def public_mounts(points: list[dict]) -> list[dict]:
    """inspect's Mounts: the MountPoints without the engine's private keys."""
    return [{k: v for k, v in mp.items() if not k.startswith("_")} for mp in points]


def parse_bind(spec: str) -> dict:
    """``-v`` syntax: NAME:/dest[:opts], /host:/dest[:opts], or /dest (anonymous)."""
    parts = spec.split(":")
    if len(parts) == 1:
        _check_dest(parts[0], spec)
        return {"Type": "volume", "Name": "", "Source": "", "Destination": parts[0], "Driver": "local",
                "Mode": "", "RW": True, "Propagation": "", "_anonymous": True}
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    src, dest = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    _check_dest(dest, spec)
    rw, propagation = True, ""
    for opt in filter(None, mode.split(",")):
        if opt in ("ro", "rw"):
            rw = opt == "rw"
        elif opt in ("z", "Z", "nocopy", "consistent", "cached", "delegated"):
            pass
        elif opt in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
            propagation = opt
        else:
            raise InvalidArgument(f"invalid mode: {mode}")
    if src.startswith("/") or src.startswith("."):
        if not src.startswith("/"):
            raise InvalidArgument(f"invalid volume specification: '{spec}'")
        return {"Type": "bind", "Source": os.path.normpath(src), "Destination": dest, "Mode": mode, "RW": rw,
                "Propagation": propagation or "rprivate"}
    mp = {"Type": "volume", "Name": src, "Source": "", "Destination": dest, "Driver": "local",
          "Mode": mode or "z", "RW": rw, "Propagation": ""}
    if "nocopy" in mode.split(","):
        mp["_NoCopy"] = True
    return mp


def parse_mount(spec: str) -> dict:
    """``--mount type=volume|bind|tmpfs,source=…,target=…,readonly,…``."""
    fields: dict[str, str] = {}
    flags = set()
    for item in spec.split(","):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq:
            if key in ("readonly", "ro", "volume-nocopy"):
                flags.add(key)
                continue
            raise MountFlagError(f"invalid argument \"{spec}\" for \"--mount\" flag: invalid field '{item}' must be a key=value pair")
        if key in ("src", "source"):
            key = "source"
        elif key in ("dst", "destination", "target"):
            key = "target"
        elif key in ("readonly", "ro"):
            if value.lower() in ("1", "true"):
                flags.add("readonly")
            elif value.lower() not in ("0", "false"):
                raise InvalidArgument(f"invalid argument \"{spec}\" for \"--mount\" flag: invalid value for readonly: {value}")
            continue
        elif key not in ("type", "bind-propagation", "volume-nocopy", "volume-driver", "volume-label",
                         "volume-opt", "tmpfs-size", "tmpfs-mode", "consistency", "bind-nonrecursive"):
            raise MountFlagError(f"invalid argument \"{spec}\" for \"--mount\" flag: unexpected key '{key}' in '{item}'")
        fields[key] = value
    kind = fields.get("type", "volume")
    target = fields.get("target", "")
    if not target:
        raise MountFlagError(f"invalid argument \"{spec}\" for \"--mount\" flag: target is required")
    _check_dest(target, spec)
    rw = "readonly" not in flags and "ro" not in flags
    mp = _parse_mount_kind(kind, fields, rw, flags, target, spec)
    mp["_from_flag"] = True
    return mp


def _parse_mount_kind(kind: str, fields: dict, rw: bool, flags: set, target: str, spec: str) -> dict:
    if kind == "bind":
        src = fields.get("source", "")
        if not src:
            raise InvalidArgument("invalid mount config for type \"bind\": field Source must not be empty")
        if not src.startswith("/"):
            raise InvalidArgument(f"invalid mount config for type \"bind\": invalid mount path: '{src}' mount path must be absolute")
        return {"Type": "bind", "Source": os.path.normpath(src), "Destination": target, "Mode": "", "RW": rw,
                "Propagation": fields.get("bind-propagation", "rprivate")}
    if kind == "volume":
        mp = {"Type": "volume", "Name": fields.get("source", ""), "Source": "", "Destination": target,
              "Driver": "local", "Mode": "z", "RW": rw, "Propagation": ""}  # docker 20.10 shows "z" here too
        if not mp["Name"]:
            mp["_anonymous"] = True
        if "volume-nocopy" in flags or fields.get("volume-nocopy", "").lower() in ("1", "true"):
            mp["_NoCopy"] = True
        return mp
    if kind == "tmpfs":
        if fields.get("source"):
            raise InvalidArgument("invalid mount config for type \"tmpfs\": field Source must not be specified")
        opts = []
        if fields.get("tmpfs-size"):
            from ..units import parse_size

            opts.append(f"size={parse_size(fields['tmpfs-size'])}")
        if fields.get("tmpfs-mode"):
            opts.append(f"mode={fields['tmpfs-mode']}")
        if not rw:
            opts.append("ro")
        return {"Type": "tmpfs", "Source": "", "Destination": target, "Mode": "", "RW": rw, "Propagation": "",
                "_TmpfsOptions": ",".join(opts)}
    raise InvalidArgument(f"invalid mount config for type \"{kind}\": mount type unknown")


def _check_dest(dest: str, spec: str = "") -> None:
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid mount config: invalid mount path: '{dest}' mount path must be absolute"
                              if not spec else f"invalid volume specification: '{spec}': invalid mount config for "
                              f"type \"volume\": invalid mount path: '{dest}' mount path must be absolute")
    if os.path.normpath(dest) == "/":
        raise InvalidArgument(f"invalid volume specification: '{spec or dest}': invalid mount config: destination can't be '/'")


def _tmpfs_opts(opts: str) -> list[str]:
    out = []
    for o in filter(None, opts.split(",")):
        if o.startswith("size="):
            from ..units import parse_size

            try:
                o = f"size={parse_size(o[5:])}"
            except Exception:
                raise InvalidArgument(f"invalid tmpfs option {o!r}") from None
        out.append(o)
    return out


def _copy_up(rootfs: Path, dest: str, volume: Path) -> None:
    """Docker's copy-up: an empty volume mounted over a non-empty image directory starts with a
    copy of it (owner and mode of the directory too)."""
    from .. import _native

    # The image directory is resolved once, beneath the root (its symlinks scoped to it, a final
    # one not followed), and copied from that descriptor: a link the image or an earlier run
    # left on the way never leads to the host's files.
    try:
        root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        try:
            src = _native.open_in_root(root, dest, follow=False, directory=True)
        except OSError:
            return
        try:
            if any(volume.iterdir()):
                return
            if os.listdir(src):
                # One cp per copy-up (rare: a new volume's first mount): keeps owners, modes,
                # xattrs, links; it reads the directory through our descriptor, by no name.
                subprocess.run(["cp", "-a", "--", f"/proc/self/fd/{src}/.", str(volume)], check=True,
                               capture_output=True, pass_fds=(src,))
            st = os.fstat(src)
            os.chown(volume, st.st_uid, st.st_gid)
            os.chmod(volume, st.st_mode & 0o7777)
        finally:
            os.close(src)
    finally:
        os.close(root)




def _label_match(labels: dict, f: str) -> bool:
    k, eq, v = f.partition("=")
    return k in labels and (not eq or labels[k] == v)


def _docker_time(rfc3339: str) -> str:
    """docker prints a volume's CreatedAt with seconds and a zone: 2024-01-02T03:04:05Z."""
    return rfc3339.split(".")[0].rstrip("Z") + "Z" if "." in rfc3339 else rfc3339
