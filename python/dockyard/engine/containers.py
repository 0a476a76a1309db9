"""Containers: create, start, stop, kill, wait, remove, list, inspect, logs.

A container is a row in the ``containers`` table (its Docker-shaped Config and HostConfig in
``spec``, its State in ``state``) and a directory ``containers/<id>/`` holding the OCI bundle
(``bundle/config.json``, ``bundle/rootfs`` where the overlay is mounted: by the runtime, in the
container's own mount namespace, so the host's shows an empty directory), the overlay's
``upper``/``work``, the generated ``hostname``/``hosts``/``resolv.conf``, the json-file log and
the supervisor's exit file.

Exits: the daemon hears each supervisor's exit as an event (a pidfd in its epoll set) and
records it once; its reads have no side effects (``all(refresh=False)``).  Used in-process, without
a daemon, state is refreshed when it is read instead: a container recorded as running whose
supervisor has written its exit file, or has vanished, is marked exited then (and its rootfs
unmounted).  A CLI or daemon killed at any point thus leaves state that the next reader repairs.
"""

from __future__ import annotations

import json
import logging
import os
import signal as signals
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..errors import Conflict, ContainerNotFound, DockyardError, InvalidArgument, NotFound, start_error_code
from .images import Images, now_rfc3339, parse_time
from .jsonlog import read_json_log, rotation
from .names import check_name, new_id, random_name
from .runtime import Runtime, StartError, run_dir
from .spec import (DEFAULT_PATH, ProcessSpec, Resources, build_spec, capabilities, default_shm_size, default_ulimits,
                   parse_signal)
from .store import Store, is_mountpoint, pid_alive as _alive, remove_tree, write_atomic
from .snapshots import Snapshots
from .supervisors import end_process, signal_init, supervisor_of

log = logging.getLogger("dockyard.engine")

#: Containers whose exit is known but could not be recorded yet (disk full): said once each.
_UNRECORDED: set[str] = set()


class _TakenNames:
    """``name in taken``: one lookup in the names' index (not a set of every name, per create)."""

    def __init__(self, db) -> None:
        self.db = db

    def __contains__(self, name: object) -> bool:
        return self.db.execute("SELECT 1 FROM containers WHERE name=?", (name,)).fetchone() is not None


def _record(row) -> dict:
    rec = dict(row)
    rec["spec"] = json.loads(rec["spec"])
    rec["state"] = dict(EMPTY_STATE, **json.loads(rec["state"] or "{}"))
    return rec


def cgroup_of(rec: dict) -> str:
    """The cgroup a running container was started in (:func:`.cgroupstats.container_cgroup`;
    one started before the path was recorded is in the only place there was then)."""
    return rec["state"].get("Cgroup") or f"/dockyard/{rec['id']}"


def _bundle_cgroup(d: Path) -> str:
    """The cgroup a container's bundle asked the runtime for (its last start's)."""
    try:
        return json.loads((d / "bundle" / "config.json").read_bytes())["linux"]["cgroupsPath"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""


_EXIT_LOCKS: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
_EXIT_LOCKS_GUARD = threading.Lock()


def _exit_lock(cid: str) -> threading.Lock:
    """The lock under which a container's exit is recorded (one per container, this process)."""
    with _EXIT_LOCKS_GUARD:
        lock = _EXIT_LOCKS.get(cid)
        if lock is None:
            lock = _EXIT_LOCKS[cid] = threading.Lock()
        return lock


@dataclass
class CreateOptions:
    """What ``docker create``/``run`` take, typed.  Empty values mean "the image's default"."""

    image: str
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None       # [] resets the image's entrypoint (--entrypoint "")
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""                      # Config.Domainname (the UTS namespace's NIS domain)
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool | None = None  # close stdin when the attached client goes (None: open_stdin)
    labels: dict[str, str] = field(default_factory=dict)
    name: str = ""
    resources: Resources = field(default_factory=Resources)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    read_only: bool = False
    security_opt: list[str] = field(default_factory=list)
    init: bool = False
    restart: str = "no"
    auto_remove: bool = False
    stop_signal: str = ""
    stop_timeout: int | None = None
    healthcheck: dict | None = None           # Config.Healthcheck as given (merged with the image's)
    pid_mode: str = ""                        # "" (its own), "host" or "container:<name|id>"
    uts_mode: str = ""                        # "" (its own) or "host"
    group_add: list[str] = field(default_factory=list)
    log_config: dict | None = None            # {"Type": json-file|local|none, "Config": {...}}
    network: str = "default"
    # volumes and networks (engine/volumes.py, engine/network/): docker's flags, unparsed
    volumes: list[str] = field(default_factory=list)        # -v
    anon_volumes: list[str] = field(default_factory=list)   # Config.Volumes: anonymous volumes, as the image's VOLUME
    mounts: list[str] = field(default_factory=list)         # --mount
    tmpfs: list[str] = field(default_factory=list)          # --tmpfs
    volumes_from: list[str] = field(default_factory=list)   # --volumes-from
    publish: list[str] = field(default_factory=list)        # -p
    publish_all: bool = False                               # -P
    expose: list[str] = field(default_factory=list)         # --expose
    network_aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)          # --link NAME[:ALIAS]
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_option: list[str] = field(default_factory=list)
    add_host: list[str] = field(default_factory=list)
    ip: str = ""
    warnings: list[str] = field(default_factory=list)  # what the create answers with (dockerd's Warnings)
    # HostConfig fields kept as given (Runtime, Isolation, DeviceCgroupRules, VolumeDriver, CpuRealtime*)
    host_extra: dict = field(default_factory=dict)
    endpoint: dict = field(default_factory=dict)  # ip6, links, link_local, driver_opts, mac (engine/network)


EMPTY_STATE = {
    "Status": "created", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": False,
    "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": "0001-01-01T00:00:00Z",
    "FinishedAt": "0001-01-01T00:00:00Z",
}


class Containers(Snapshots):
    def __init__(self, store: Store, images: Images) -> None:
        self.store = store
        self.images = images
        self.runtime = Runtime(run_dir() / "runtime")

    # -- lookup ---------------------------------------------------------------------------------

    def dir(self, cid: str) -> Path:
        return self.store.root / "containers" / cid

    def attach_socket(self, cid: str) -> Path:
        """Under the run dir with a short name: a unix socket path must fit in 108 bytes."""
        return run_dir() / "attach" / f"{cid[:24]}.sock"

    def exit_fallback(self, cid: str) -> Path:
        """Where the supervisor writes the exit status when the store's file system is full
        (under the run dir, normally a tmpfs of its own)."""
        return run_dir() / "exits" / f"{cid}.json"

    def resolve(self, ref: str) -> str:
        """ID for a full ID, a name (with or without '/') or an unambiguous ID prefix."""
        db = self.store.db
        name = ref.lstrip("/")
        row = db.execute("SELECT id FROM containers WHERE id=? OR name=?", (ref, name)).fetchone()
        if row:
            return row[0]
        if ref and all(c in "0123456789abcdef" for c in ref):
            rows = db.execute("SELECT id FROM containers WHERE id >= ? AND id < ? LIMIT 2",
                              (ref, ref + "g")).fetchall()
            if len(rows) == 1:
                return rows[0][0]
            if len(rows) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise ContainerNotFound(f"No such container: {ref}")

    def get(self, ref: str) -> dict:
        """The container's record (spec, state), its state brought up to date."""
        return self.refresh(self.load(self.resolve(ref)))

    def running(self, ref: str, action: str = "") -> dict:
        """:meth:`get`, refusing (409) a container that is not running or is paused."""
        rec = self.get(ref)
        cid = rec["id"]
        if not rec["state"]["Running"]:
            raise Conflict(f"container {cid} is not running")
        if rec["state"]["Paused"] and action:
            raise Conflict(f"container {cid} is paused, unpause the container before {action}")
        return rec

    def load(self, cid: str) -> dict:
        row = self.store.db.execute("SELECT * FROM containers WHERE id=?", (cid,)).fetchone()
        if row is None:
            raise ContainerNotFound(f"No such container: {cid}")
        return _record(row)

    def _save_state(self, cid: str, state: dict) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE containers SET state=? WHERE id=?", (json.dumps(state), cid))

    def set_health(self, cid: str, started_at: str, health: dict) -> bool:
        """Record a probe's outcome in ``State.Health``, only while the run it probed (the one
        started at ``started_at``) is the container's current one; False when it is not."""
        with self.store.transaction() as db:
            cur = db.execute(
                "UPDATE containers SET state=json_set(state, '$.Health', json(?)) WHERE id=? "
                "AND json_extract(state, '$.Running') AND json_extract(state, '$.StartedAt')=?",
                (json.dumps(health), cid, started_at))
            return cur.rowcount == 1

    # -- create ---------------------------------------------------------------------------------

    def create(self, opts: CreateOptions) -> str:
        image_id = self.images.resolve(opts.image)
        image_cfg = self.images.config(image_id).get("config") or {}
        from .network import hooks as net_hooks

        net_config, net_host, net_spec = net_hooks.on_create(self, opts, image_cfg)  # validates; makes nothing
        for cap in opts.cap_add + opts.cap_drop:
            capabilities([cap], [], False)  # validates the name
        if opts.stop_signal:
            parse_signal(opts.stop_signal)
        restart = parse_restart(opts.restart)
        if opts.auto_remove and restart["Name"] not in ("", "no"):
            raise InvalidArgument("Conflicting options: --restart and --rm")
        entrypoint = opts.entrypoint if opts.entrypoint is not None else (image_cfg.get("Entrypoint") or [])
        if opts.cmd:
            cmd = opts.cmd
        elif opts.entrypoint is not None:
            cmd = []  # a new entrypoint drops the image's CMD, as docker
        else:
            cmd = image_cfg.get("Cmd") or []
        if not entrypoint and not cmd:
            raise InvalidArgument("no command specified")
        env = merge_env(image_cfg.get("Env") or [], opts.env)
        _check_modes(opts)
        driver = opts.host_extra.get("VolumeDriver") or "local"
        if driver != "local" and (opts.anon_volumes or any(v.split(":")[0] and not v.startswith("/")
                                                           for v in opts.volumes if ":" in v)):
            # dockerd looks the driver up when it makes the container's volumes: only local exists
            raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        log_config = _with_daemon_log_config(dict(opts.log_config or {}))
        log_type = log_config.get("Type") or "json-file"
        if log_type in DOCKER_ONLY_LOG_DRIVERS:
            raise InvalidArgument(f"the {log_type} log driver is not supported by dockyard "
                                  f"(it has {', '.join(LOG_DRIVERS)})")
        if log_type not in LOG_DRIVERS:
            raise InvalidArgument(f'error looking up logging plugin {log_type}: plugin "{log_type}" not found')
        from .jsonlog import check_log_opts

        check_log_opts(log_type, dict(log_config.get("Config") or {}))
        cid = new_id()
        if opts.uts_mode == "host":
            import platform

            hostname = platform.node()  # (as dockerd records it)
        else:
            hostname = opts.hostname or cid[:12]
        config = {
            "Hostname": hostname, "Domainname": opts.domainname, "User": opts.user or image_cfg.get("User", ""),
            "AttachStdin": opts.open_stdin, "AttachStdout": True, "AttachStderr": True,
            "Tty": opts.tty, "OpenStdin": opts.open_stdin, "StdinOnce": opts.open_stdin if opts.stdin_once is None else opts.stdin_once,
            "Env": env, "Cmd": opts.cmd if opts.cmd else (None if opts.entrypoint is not None else image_cfg.get("Cmd")),
            "Image": opts.image, "Volumes": config_volumes(image_cfg, opts),
            "WorkingDir": opts.workdir or image_cfg.get("WorkingDir", ""),
            "Entrypoint": entrypoint or None, "OnBuild": None,
            "Labels": {**(image_cfg.get("Labels") or {}), **opts.labels},
        }
        if image_cfg.get("ExposedPorts"):
            config["ExposedPorts"] = image_cfg["ExposedPorts"]
        stop_signal = opts.stop_signal or image_cfg.get("StopSignal", "")
        if stop_signal:
            config["StopSignal"] = stop_signal
        if opts.stop_timeout is not None:
            config["StopTimeout"] = opts.stop_timeout
        from . import health

        health.validate(opts.healthcheck)
        healthcheck = health.merge(opts.healthcheck, image_cfg.get("Healthcheck"))
        if healthcheck:
            config["Healthcheck"] = healthcheck
        res = _with_daemon_defaults(opts.resources)
        host_config = {
            "NetworkMode": net_host.pop("NetworkMode"),
            "RestartPolicy": restart, "AutoRemove": opts.auto_remove,
            "CapAdd": opts.cap_add or None, "CapDrop": opts.cap_drop or None,
            "Privileged": opts.privileged, "ReadonlyRootfs": opts.read_only,
            "SecurityOpt": opts.security_opt or None, "Init": opts.init or None,
            "Memory": res.memory,
            # dockerd's record of what the start does (spec.py): -m alone allows as much swap again
            "MemorySwap": res.memory_swap or (2 * res.memory if res.memory > 0 else 0),
            "MemoryReservation": res.memory_reservation,
            "NanoCpus": res.nano_cpus, "CpuShares": res.cpu_shares, "CpuQuota": res.cpu_quota,
            "CpuPeriod": res.cpu_period, "CpusetCpus": res.cpuset_cpus, "CpusetMems": res.cpuset_mems,
            "PidsLimit": res.pids_limit or None, "Ulimits": [
                {"Name": _ulimit_name(u["type"]), "Soft": u["soft"], "Hard": u["hard"]} for u in res.ulimits
            ] or None,
            "Devices": [dict(dev) for dev in res.devices],
            "PidMode": opts.pid_mode, "UTSMode": opts.uts_mode, "GroupAdd": list(opts.group_add) or None,
            "LogConfig": {"Type": log_type, "Config": dict(log_config.get("Config") or {})},
            "ShmSize": res.shm_size,
        }
        if res.sysctls:
            host_config["Sysctls"] = dict(res.sysctls)  # (dockerd's omitempty)
        host_config.update(opts.host_extra)
        config.update(net_config)
        host_config.update(net_host)
        spec = {**net_spec, "Config": config, "HostConfig": host_config, "Path": (entrypoint + cmd)[0],
                "Args": (entrypoint + cmd)[1:], "Resources": asdict(res)}
        with self.store.transaction() as db:
            taken = _TakenNames(db)
            name = check_name(opts.name) if opts.name else random_name(taken)
            if name in taken:
                other = db.execute("SELECT id FROM containers WHERE name=?", (name,)).fetchone()[0]
                raise Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container "{other}". '
                    "You have to remove (or rename) that container to be able to reuse that name."
                )
            if (host_config.get("UsernsMode") or "").startswith("auto"):
                from . import userns

                held = [json.loads(r[0]) for r in db.execute(
                    "SELECT json_extract(spec, '$._UsernsAuto') FROM containers"
                    " WHERE json_extract(spec, '$._UsernsAuto') IS NOT NULL")]
                spec["_UsernsAuto"] = userns.allocate_auto(host_config["UsernsMode"], held)
            d = self.dir(cid)
            for sub in ("bundle/rootfs", "upper", "work"):
                (d / sub).mkdir(parents=True)
            net_hooks.on_insert(self, db, cid, name, spec)  # volumes and network endpoints, same transaction
            db.execute(
                "INSERT INTO containers (id, name, image_id, created, spec, state) VALUES (?,?,?,?,?,?)",
                (cid, name, image_id, now_rfc3339(), json.dumps(spec), json.dumps(EMPTY_STATE)),
            )
        return cid

    # -- start ----------------------------------------------------------------------------------

    def _mount_rootfs(self, rec: dict) -> Path:
        from .. import _native

        d = self.dir(rec["id"])
        target = d / "bundle" / "rootfs"
        if is_mountpoint(target):
            return target
        _native.mount_overlay([str(p) for p in self._lowers(rec)], str(d / "upper"), str(d / "work"), str(target))
        return target

    def _lowers(self, rec: dict) -> list[Path]:
        """The lower layers of the container's overlay, topmost first: the init layer, then the
        image's layers from the last to the first."""
        return [self.init_layer(), *reversed(self.images.layer_dirs(rec["image_id"]))]

    def init_layer(self) -> Path:
        """The mount points the runtime needs, and docker's empty /.dockerenv (which software
        reads to know it runs in a container), as a read-only layer above the image (docker's
        "init layer", with its entries and modes): they then never show up as the container's
        own changes, and an export has them as docker's has."""
        path = self.store.root / "init-layer3"  # (init-layer had no /.dockerenv, init-layer2 no /dev/console)
        if path.exists():  # made complete under tmp/, then renamed into place
            return path
        tmp = self.store.root / "tmp" / f"{os.getpid()}-init-{os.urandom(4).hex()}"  # threads too
        remove_tree(tmp)
        for d in ("dev/pts", "dev/shm", "proc", "sys", "etc"):
            (tmp / d).mkdir(parents=True, mode=0o755)
        for f in ("etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv", "dev/console"):
            (tmp / f).write_bytes(b"")
            os.chmod(tmp / f, 0o755)  # (as moby's initlayer makes them)
        os.symlink("/proc/mounts", tmp / "etc" / "mtab")
        try:
            os.rename(tmp, path)
        except OSError:  # another process made it first
            remove_tree(tmp)
        # An earlier version's goes, unless a container is running: its overlay, mounted in the
        # container's own mount namespace (where this process cannot see it), may have it as a
        # lower layer (then it stays: a few empty files).
        if not self.store.db.execute(
                "SELECT 1 FROM containers WHERE json_extract(state, '$.Running') LIMIT 1").fetchone():
            for name in ("init-layer", "init-layer2"):
                remove_tree(self.store.root / name)
        return path

    def _unmount_rootfs(self, cid: str, view_only: bool = False) -> None:
        """Unmount what the host holds of a container: its root's view and, unless only the
        view (a running container's copy-up or export view), its --ipc shareable /dev/shm."""
        from .. import _native

        target = self.dir(cid) / "bundle" / "rootfs"
        if is_mountpoint(target):
            _native.umount(str(target))
        # --userns-remap: the idmapped view of the store a start left (a crash between its
        # mount and the runtime's): a removal of the directory must never walk into it
        _native_umount(self.dir(cid) / "idmap")
        shm = self.dir(cid) / "shm"  # --ipc shareable's /dev/shm (containers that joined keep their bind)
        if not view_only and is_mountpoint(shm):
            _native.umount(str(shm))

    def _write_etc(self, rec: dict, rootfs: Path) -> list[dict]:
        """hostname, hosts and resolv.conf for the container, bind-mounted over the image's."""
        d = self.dir(rec["id"])
        cfg = rec["spec"]["Config"]
        hostname = cfg["Hostname"]
        (d / "hostname").write_text(hostname + "\n")
        hosts = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                 "ff02::2\tip6-allrouters\n")
        from .network.hooks import etc_files

        hosts, resolv = etc_files(self, rec, hosts, _host_resolv_conf())
        (d / "hosts").write_text(hosts)
        (d / "resolv.conf").write_text(resolv)
        mounts = []
        for name in ("resolv.conf", "hostname", "hosts"):
            mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": str(d / name),
                           "options": ["rbind", "rprivate"]})
        return mounts

    def start(self, ref: str, attach: bool = False) -> dict:
        """Start a created or exited container; returns its state.  With ``attach`` the process
        starts only once a client has connected to :meth:`attach_socket` (foreground run)."""
        cid = self.resolve(ref)
        rec = self.refresh(self.load(cid))
        state = rec["state"]
        if state["Running"]:
            return state  # docker: starting a running container is a no-op
        if rec["spec"]["HostConfig"].get("_removing"):
            raise Conflict(f"container {cid} is marked for removal and cannot be started")
        d = self.dir(cid)
        self._clear_runtime(cid)  # what a start that was never recorded (a crash) left, if anything
        from . import userns

        remap = userns.applies(rec["spec"])
        # The runtime mounts the overlay, in the container's mount namespace: the host's holds no
        # mount per running container (each would be copied into the namespace of every container
        # started after it, and detached from it again: O(containers) per start).  Copy-up into
        # new volumes reads the image through a host view, gone before the start.  In rootless
        # mode the daemon keeps mounting it (its overlays need userxattr, which the runtime's
        # mount does not set).
        volumes = any(mp["Type"] == "volume" for mp in rec["spec"].get("_Mounts") or [])
        by_runtime = remap is not None or not _in_user_namespace()
        mounted = volumes or not by_runtime
        rootfs = self._mount_rootfs(rec) if mounted else d / "bundle" / "rootfs"
        try:
            bundle_spec = self._bundle_spec(rec, rootfs, mounted)
            if remap is not None:
                userns.remap_bundle(self, rec, remap, bundle_spec)
            elif by_runtime:
                self._unmount_rootfs(cid, view_only=True)  # the copy-up view, if one was made
                bundle_spec.setdefault("annotations", {})["dockyard.rootfs.overlay"] = json.dumps(
                    {"lower": [str(p) for p in self._lowers(rec)], "upper": str(d / "upper"), "work": str(d / "work")})
            # 0600 as dockerd's container files; no temporary file left on a full disk; no fsync
            # (made again at every start)
            write_atomic(d / "bundle" / "config.json", json.dumps(bundle_spec).encode(), fsync=False)
            cfg = rec["spec"]["Config"]
            log = d / f"{cid}-json.log"
            log_config = rec["spec"]["HostConfig"].get("LogConfig") or {}
            max_size, max_file = rotation(_log_type(rec), dict(log_config.get("Config") or {}))
            if _log_type(rec) == "none":
                log = Path(os.devnull)  # (the supervisor appends its JSON lines to nothing)
            self.attach_socket(cid).parent.mkdir(parents=True, exist_ok=True)
            self.exit_fallback(cid).parent.mkdir(parents=True, exist_ok=True)
            pid, shim_pid = self.runtime.shim(d / "bundle", cid, log, d / "exit.json", self.attach_socket(cid),
                                    tty=cfg["Tty"], stdin=cfg["OpenStdin"], wait_attach=attach,
                                    exit_fallback=self.exit_fallback(cid), log_max=(max_size, max_file))
        except BaseException as exc:
            self._unmount_rootfs(cid)
            self.runtime.delete(cid)
            self.attach_socket(cid).unlink(missing_ok=True)  # the supervisor's, bound before it failed
            from .network.hooks import on_stop as net_stop

            net_stop(self, cid)  # namespace, veth, rules, address
            code = state["ExitCode"]
            if isinstance(exc, StartError):
                code = start_error_code(str(exc))
                if code != 128:
                    exc.status = 400  # dockerd: a command that cannot run is the caller's mistake
            state = dict(state, Error=str(exc), ExitCode=code)
            self._save_state(cid, state)
            raise
        if remap is not None:
            _native_umount(d / "idmap")  # the container's overlay holds its layers by now
        state = dict(EMPTY_STATE, Status="running", Running=True, Pid=pid, StartedAt=now_rfc3339())
        state["ShimPid"], state["Cgroup"] = shim_pid, bundle_spec["linux"]["cgroupsPath"]
        from . import health

        if health.settings(cfg):
            # "starting" again at each start; the probes' log is kept, as dockerd keeps it
            state["Health"] = dict(health.starting(), Log=(rec["state"].get("Health") or {}).get("Log") or [])
        self._save_state(cid, state)
        return state

    def _bundle_spec(self, rec: dict, rootfs: Path, mounted: bool) -> dict:
        """The OCI spec of a starting container; ``mounted``: its overlay is mounted at ``rootfs``
        here (else the runtime mounts it, in the container's namespace)."""
        from .cgroupstats import container_cgroup
        from .seccomp import default_profile, from_docker_profile

        spec = rec["spec"]
        cfg, host = spec["Config"], spec["HostConfig"]
        res = Resources(**spec["Resources"])
        args = [spec["Path"], *spec["Args"]]
        caps = capabilities(host.get("CapAdd") or [], host.get("CapDrop") or [], host["Privileged"])
        seccomp: dict | None = default_profile(caps)
        no_new_privs = False
        for opt in host.get("SecurityOpt") or []:
            key, _, value = opt.partition("=") if "=" in opt else opt.partition(":")
            if key == "no-new-privileges":
                no_new_privs = value in ("", "true")
            elif key == "seccomp":
                if value == "unconfined":
                    seccomp = None
                elif value.lstrip().startswith("{"):
                    seccomp = from_docker_profile(value)  # the profile itself, as the docker CLI sends it
                else:
                    try:
                        seccomp = from_docker_profile(Path(value).read_text())
                    except OSError as exc:
                        raise InvalidArgument(f"opening seccomp profile ({value}) failed: {exc.strerror}") from None
            elif key in ("label", "apparmor"):
                pass  # no LSM here; accepted as docker does on hosts without one
            else:
                raise InvalidArgument(f"Invalid --security-opt: {opt!r}")
        namespaces = [{"type": "mount"}]
        if host.get("CgroupnsMode") != "host":
            namespaces.append({"type": "cgroup"})
        ipc_ns, shm_source = self._ipc(rec, res.shm_size)
        if ipc_ns is not None:
            namespaces.insert(1, ipc_ns)
        if host.get("UTSMode") != "host":
            namespaces.append({"type": "uts"})
        pid_mode = host.get("PidMode") or ""
        if pid_mode.startswith("container:"):
            namespaces.append({"type": "pid", "path": self._pid_ns_of(pid_mode.partition(":")[2])})
        elif pid_mode != "host":
            namespaces.append({"type": "pid"})
        from .network.hooks import on_start as net_start

        net = net_start(self, rec, rootfs)  # netns (None: the host's; "": a new one), volume mounts, link env
        if net["netns"] is not None:
            namespaces.append({"type": "network", "path": net["netns"]} if net["netns"] else {"type": "network"})
        # As docker: PATH defaults when the config has none, HOSTNAME unless given.
        env = [] if any(e.startswith("PATH=") for e in cfg["Env"]) else [DEFAULT_PATH]
        if not any(e.startswith("HOSTNAME=") for e in cfg["Env"]):
            env.append(f"HOSTNAME={cfg['Hostname']}")
        env += net["env"] + cfg["Env"]  # docker: link variables, then the container's own
        if cfg["Tty"] and not any(e.startswith("TERM=") for e in env):
            env.append("TERM=xterm")
        annotations = dict(host.get("Annotations") or {})
        if host.get("Init"):
            # The runtime's own init stays PID 1 (reaps, forwards signals): no binary in the rootfs.
            annotations["dockyard.init"] = "true"
        p = ProcessSpec(
            args=args, env=env, cwd=cfg["WorkingDir"] or "/", user=cfg["User"], tty=cfg["Tty"],
            hostname="" if host.get("UTSMode") == "host" else cfg["Hostname"], cap_add=host.get("CapAdd") or [],
            domainname="" if host.get("UTSMode") == "host" else cfg.get("Domainname") or "",
            group_add=host.get("GroupAdd") or [], cap_drop=host.get("CapDrop") or [],
            privileged=host["Privileged"], no_new_privileges=no_new_privs, read_only=host["ReadonlyRootfs"],
            seccomp=seccomp, resources=res, extra_mounts=self._write_etc(rec, rootfs) + net["mounts"],
            namespaces=namespaces, cgroups_path=container_cgroup(rec["id"], host.get("CgroupParent") or ""),
            annotations=annotations,
            oom_score_adj=int(host.get("OomScoreAdj") or 0),  # (0 too, as dockerd: not the daemon's own)
            shm_source=shm_source,
        )
        # --user is resolved against the container's files: through the overlay where it is
        # mounted here (rootless, or a view for a copy-up), else read from its layers (see start)
        layers = None if mounted else [self.dir(rec["id"]) / "upper", *self._lowers(rec)]
        return build_spec(str(rootfs), p, layers=layers)

    def _ipc(self, rec: dict, shm_size: int) -> tuple[dict | None, str | None]:
        """--ipc as dockerd's: the IPC namespace entry (None: the host's) and where /dev/shm
        comes from (see ProcessSpec.shm_source).  A shareable container's /dev/shm is a tmpfs
        on the host (``shm`` in its directory, unmounted when it stops) that ``container:X``
        binds; the donor must be running and shareable."""
        mode = rec["spec"]["HostConfig"].get("IpcMode") or "private"
        if mode == "host":
            return None, "/dev/shm"
        if mode == "none":
            return {"type": "ipc"}, ""
        if mode == "shareable":
            shm = self.dir(rec["id"]) / "shm"
            shm.mkdir(mode=0o700, exist_ok=True)
            if not is_mountpoint(shm):
                from .. import _native

                _native.mount_tmpfs(str(shm), "shm", f"mode=1777,size={(shm_size or default_shm_size()) // 1024}k")
            return {"type": "ipc"}, str(shm)
        if mode.startswith("container:"):
            donor = self.refresh(self.load(self.resolve(mode.partition(":")[2])))
            if not donor["state"]["Running"]:
                raise Conflict(f"cannot join IPC of a non running container: {donor['id']}")
            if (donor["spec"]["HostConfig"].get("IpcMode") or "private") != "shareable":
                raise Conflict(f"can't join IPC of container {donor['id']}: non-shareable IPC (hint: use "
                               "IpcMode:shareable for the donor container)")
            return {"type": "ipc", "path": f"/proc/{donor['state']['Pid']}/ns/ipc"}, str(self.dir(donor["id"]) / "shm")
        return {"type": "ipc"}, None

    def _pid_ns_of(self, ref: str) -> str:
        """--pid container:X: the path of X's PID namespace (X must be running)."""
        try:
            other = self.refresh(self.load(self.resolve(ref)))
        except ContainerNotFound:
            raise InvalidArgument(f"cannot join PID of a non running container: {ref}") from None
        if not other["state"]["Running"]:
            raise Conflict(f"cannot join PID of a non running container: {other['id']}")
        return f"/proc/{other['state']['Pid']}/ns/pid"

    # -- state ----------------------------------------------------------------------------------

    def refresh(self, rec: dict) -> dict:
        """Fold what the supervisor recorded into the stored state (see the module's docstring).

        An exit is recorded once: the daemon's monitor and a stop or restart can notice the same
        exit together, and the second must not tear down (network, mounts) what a restart has
        just set up again.  So the record is re-read under a per-container lock first."""
        state = rec["state"]
        if not state["Running"]:
            return rec
        if (_alive(state["Pid"]) or _alive(state.get("ShimPid", 0))) and not (self.dir(rec["id"]) / "exit.json").exists() \
                and not self.exit_fallback(rec["id"]).exists():
            return rec  # the common case, without the lock: still running
        with _exit_lock(rec["id"]):
            try:
                rec["state"] = self.load(rec["id"])["state"]
            except ContainerNotFound:
                return rec
            return self._record_exit(rec)

    def _record_exit(self, rec: dict) -> dict:
        state = rec["state"]
        if not state["Running"]:
            return rec
        cid = rec["id"]
        exit_file = self.dir(cid) / "exit.json"
        info = _read_exit(exit_file) or _read_exit(self.exit_fallback(cid))
        if info is None:
            if _alive(state["Pid"]) or _alive(state.get("ShimPid", 0)):
                return rec  # running, or exited with the supervisor still draining its output
            info = _read_exit(exit_file) or _read_exit(self.exit_fallback(cid))  # written just now?
        if info is None:
            # Supervisor and process are gone without an exit file: record an unknown exit.
            info = {"exit_code": 255, "finished_at": now_rfc3339(), "oom_killed": False}
        state = dict(state, Status="exited", Running=False, Paused=False, Pid=0,
                     ExitCode=int(info.get("exit_code", 255)), OOMKilled=bool(info.get("oom_killed")),
                     FinishedAt=info.get("finished_at") or now_rfc3339())
        if state.get("Health"):
            # dockerd's rule: a container whose probes stopped with it is unhealthy
            state["Health"] = dict(state["Health"], Status="unhealthy")
        self._unmount_rootfs(cid)
        if "id" not in info:
            self.runtime.delete(cid)  # the supervisor died without its exit file: clean up for it
        from .network.hooks import on_stop as net_stop

        try:
            net_stop(self, cid)  # namespace, veth, rules, address
            self._save_state(cid, state)
        except (sqlite3.OperationalError, OSError) as exc:
            if not _disk_full(exc):
                raise
            # Known but not recorded: reads show it; the next read records it once there is room
            # (the exit file stays until then). Said once, not at every read.
            if cid not in _UNRECORDED:
                _UNRECORDED.add(cid)
                log.warning("container %s exited (%s) but the exit cannot be recorded yet: %s", cid[:12],
                            state["ExitCode"], exc)
            rec["state"] = state
            return rec
        _UNRECORDED.discard(cid)
        self.exit_fallback(cid).unlink(missing_ok=True)
        rec["state"] = state
        return rec

    def _clear_runtime(self, cid: str, shims: list[int] | tuple[int, ...] = ()) -> None:
        """Remove what a start left in the runtime for a container recorded as not running: its
        process, cgroups and runtime state (``delete -f``), then wait for its supervisor to go
        (it would remove the next start's attach socket), and the exit files.  Nothing to do,
        and no process run, in the common case (no runtime state)."""
        state_dir = self.runtime.root / cid
        pids = set(shims)
        try:
            init = int(json.loads((state_dir / "state.json").read_text()).get("pid") or 0)
        except (OSError, ValueError, AttributeError):
            init = 0
        shim = supervisor_of(init, self.runtime.root, cid) if init else 0
        if shim:
            pids.add(shim)
        if state_dir.exists():
            self.runtime.delete(cid)
        for pid in pids:
            end_process(pid)
        (self.dir(cid) / "exit.json").unlink(missing_ok=True)
        self.exit_fallback(cid).unlink(missing_ok=True)
        self.attach_socket(cid).unlink(missing_ok=True)

    def reconcile(self, cid: str, shims: list[int] | tuple[int, ...] = ()) -> dict:
        """After a daemon died mid-start: make a record that says "not running" match what the
        runtime and the supervisors say.  A process that runs under its supervisor is adopted
        (recorded running, its address kept); anything half made (supervisor, process, cgroups,
        runtime state, rootfs mount, namespace, veth, leased address) is torn down and the
        record stays as it was.  A record that says running is :meth:`refresh`'s business."""
        rec = self.load(cid)
        if rec["state"]["Running"]:
            return self.refresh(rec)
        rt = self.runtime.state(cid) if (self.runtime.root / cid).exists() else None
        if rt and rt.get("status") in ("running", "paused") and _alive(int(rt.get("pid") or 0)):
            pid = int(rt["pid"])
            shim = supervisor_of(pid, self.runtime.root, cid) or next((s for s in shims if _alive(s)), 0)
            if shim:
                paused = rt["status"] == "paused"
                state = dict(EMPTY_STATE, Status="paused" if paused else "running", Running=True, Paused=paused,
                             Pid=pid, StartedAt=rt.get("created") or now_rfc3339(), ShimPid=shim,
                             Cgroup=_bundle_cgroup(self.dir(cid)))
                self._save_state(cid, state)
                rec["state"] = state
                log.info("container %s: adopted its running process %d (its start was never recorded)",
                         cid[:12], pid)
                return rec
        from .network.hooks import networks

        leased = any(ep["ip"] for ep in networks(self).endpoints(cid))
        netns = networks(self).netns_path(cid)
        rootfs = self.dir(cid) / "bundle" / "rootfs"
        if rt is None and not shims and not leased and not netns.exists() and not is_mountpoint(rootfs):
            return rec
        log.info("container %s: removing what an unrecorded start left", cid[:12])
        self._clear_runtime(cid, shims)
        self._unmount_rootfs(cid)
        from .network.hooks import on_stop as net_stop

        net_stop(self, cid)  # namespace, veth, rules, address
        return rec

    def wait(self, ref: str, timeout: float | None = None) -> dict:
        """Block until the container is not running; returns its state.  Woken by the exit of
        its supervisor (which writes the exit file, then exits), or of the process when the
        supervisor is gone: a pidfd, not a timer; ``timeout`` is a deadline."""
        import select as select_

        cid = self.resolve(ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            rec = self.refresh(self.load(cid))
            state = rec["state"]
            if not state["Running"]:
                return state
            fd = -1
            for pid in (state.get("ShimPid", 0), state["Pid"]):
                if pid and _alive(pid):
                    try:
                        fd = os.pidfd_open(pid)
                        break
                    except OSError:
                        continue
            if fd < 0:
                continue  # both gone since the refresh: the next one records the exit
            try:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                # poll, not select: a daemon with 1,000 containers holds fds past select's 1024
                poller = select_.poll()
                poller.register(fd, select_.POLLIN)
                ready = poller.poll(None if left is None else left * 1000)
            finally:
                os.close(fd)
            if not ready:
                raise DockyardError(f"timed out waiting for container {cid[:12]}")

    def kill(self, ref: str, sig: str | int = "KILL") -> None:
        cid = self.resolve(ref)
        num = parse_signal(sig)
        rec = self.refresh(self.load(cid))
        if not rec["state"]["Running"]:
            raise Conflict(f"Cannot kill container: {ref}: container {cid} is not running")
        if rec["state"]["Paused"] and num == signals.SIGKILL:
            self.runtime.resume(cid)
        self._signal(rec, num)

    def stop(self, ref: str, timeout: int | None = None, sig: str | None = None,
             before_kill: Callable[[], None] | None = None) -> None:
        """SIGTERM (or the stop signal), then SIGKILL after the timeout (10 s default), as docker;
        ``before_kill`` is called before that SIGKILL (the daemon says its kill event)."""
        cid = self.resolve(ref)
        rec = self.refresh(self.load(cid))
        if not rec["state"]["Running"]:
            return
        cfg = rec["spec"]["Config"]
        num = parse_signal(sig or cfg.get("StopSignal") or "TERM")
        grace = timeout if timeout is not None else cfg.get("StopTimeout", 10)
        if rec["state"]["Paused"]:
            self.runtime.resume(cid)
        self._signal(rec, num)
        try:
            self.wait(cid, timeout=grace if grace >= 0 else None)
        except DockyardError:
            if before_kill is not None:
                before_kill()
            self._signal(rec, signals.SIGKILL, all_=True)
            self.wait(cid, timeout=30)

    def _signal(self, rec: dict, num: int, all_: bool = False) -> None:
        """``num`` to a running container's init, or with ``all_`` to every process of it.  The
        init is signalled directly (see :func:`signal_init`), with no runtime process started;
        for ``all_`` only in a PID namespace of its own (the default), whose other processes
        the kernel kills with its init.  Otherwise (``--pid host`` or another container's, or
        an init that cannot be made sure of) the runtime signals, all of its cgroup's for
        ``all_``."""
        own = not (all_ and rec["spec"]["HostConfig"].get("PidMode"))
        if not (own and signal_init(rec["state"], num)):
            self.runtime.kill(rec["id"], num, all_=all_)

    def pause(self, ref: str) -> None:
        rec = self.running(ref)
        cid = rec["id"]
        if rec["state"]["Paused"]:
            raise Conflict(f"Container {cid} is already paused")
        self.runtime.pause(cid)
        self._save_state(cid, dict(rec["state"], Paused=True, Status="paused"))

    def unpause(self, ref: str) -> None:
        cid = self.resolve(ref)
        rec = self.refresh(self.load(cid))
        if not rec["state"]["Paused"]:
            raise Conflict(f"Container {cid} is not paused")
        self.runtime.resume(cid)
        self._save_state(cid, dict(rec["state"], Paused=False, Status="running"))

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> str:
        cid = self.resolve(ref)
        rec = self.refresh(self.load(cid))
        if rec["state"]["Running"]:
            if not force:
                raise Conflict(
                    f"cannot remove container \"/{rec['name']}\": container is running: stop the container "
                    "before removing or force remove"
                )
            if rec["state"]["Paused"]:
                self.runtime.resume(cid)
            self._signal(rec, signals.SIGKILL, all_=True)
            try:
                self.wait(cid, timeout=30)
            except DockyardError:
                pass
        # Whatever exists goes, even if the record says created (a start that was never
        # recorded); the directory (the upper dir: what a container wrote) before the record,
        # so that on a full disk the space comes back first.
        self._clear_runtime(cid)
        self._unmount_rootfs(cid)
        remove_tree(self.dir(cid))
        with self.store.transaction() as db:
            db.execute("DELETE FROM containers WHERE id=?", (cid,))
        _UNRECORDED.discard(cid)
        from .network.hooks import on_remove as net_remove

        net_remove(self, rec, volumes)  # namespace, veth, address, endpoints; anonymous volumes with -v or --rm
        return cid

    #: ``docker update``'s fields: HostConfig name -> Resources attribute
    UPDATABLE = {"Memory": "memory", "MemorySwap": "memory_swap", "MemoryReservation": "memory_reservation",
                 "NanoCpus": "nano_cpus", "CpuShares": "cpu_shares", "CpuQuota": "cpu_quota",
                 "CpuPeriod": "cpu_period", "CpusetCpus": "cpuset_cpus", "CpusetMems": "cpuset_mems",
                 "PidsLimit": "pids_limit"}

    def update(self, ref: str, changes: dict, restart: str | None = None) -> list[str]:
        """``docker update``: new limits (HostConfig names, see :attr:`UPDATABLE`) and restart
        policy, kept for later starts and applied at once to the cgroup of a running container.
        Returns warnings."""
        from .spec import check_nano_cpus, linux_resources

        cid = self.resolve(ref)
        rec = self.refresh(self.load(cid))
        spec = rec["spec"]
        res = Resources(**spec["Resources"])
        for key, value in changes.items():
            setattr(res, self.UPDATABLE[key], value)
        if res.memory and 0 < res.memory < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        check_nano_cpus(res.nano_cpus)
        if res.memory_swap > 0 and res.memory and res.memory_swap < res.memory:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
        if res.memory_reservation and res.memory and res.memory < res.memory_reservation:
            raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, "
                                  "see usage")
        policy = spec["HostConfig"]["RestartPolicy"]
        if restart is not None:
            policy = parse_restart(restart)
            if spec["HostConfig"].get("AutoRemove") and policy["Name"] not in ("", "no"):
                raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled for the "
                                      "container")
        if rec["state"]["Running"] and changes:
            oci = linux_resources(res)
            oci.pop("devices", None)
            if "PidsLimit" in changes and not res.pids_limit:
                oci["pids"] = {"limit": -1}
            try:
                self.runtime.update(cid, oci)
            except DockyardError as exc:
                raise DockyardError(f"Cannot update container {cid}: {exc}") from None
        spec["Resources"] = asdict(res)
        spec["HostConfig"].update({k: getattr(res, a) for k, a in self.UPDATABLE.items()},
                                  PidsLimit=res.pids_limit or None, RestartPolicy=policy)
        with self.store.transaction() as db:
            db.execute("UPDATE containers SET spec=? WHERE id=?", (json.dumps(spec), cid))
        return []

    def remove_link(self, link: str) -> None:
        """``docker rm --link /PARENT/ALIAS``: the parent's legacy link of that alias goes (the
        linked container stays), as dockerd's rmLink."""
        name = link if link.startswith("/") else "/" + link
        parent, _, alias = name.rpartition("/")
        if not parent:
            # (dockerd answers this with a plain error: 500)
            raise DockyardError("Conflict, cannot remove the default link name of the container")
        try:
            pid = self.resolve(parent)
        except NotFound:
            raise NotFound(f"Cannot get parent {parent} for link name {name}") from None
        rec = self.load(pid)
        spec = rec["spec"]
        links = spec["HostConfig"].get("Links") or []
        kept = [l for l in links if l.split(":", 1)[-1] != f"/{rec['name']}/{alias}"]
        if len(kept) == len(links):
            raise ContainerNotFound(f"No such container: {name}")
        spec["HostConfig"]["Links"] = kept or None
        with self.store.transaction() as db:
            db.execute("UPDATE containers SET spec=? WHERE id=?", (json.dumps(spec), pid))

    def rename(self, ref: str, new: str) -> None:
        cid = self.resolve(ref)
        name = check_name(new)
        with self.store.transaction() as db:
            other = db.execute("SELECT id FROM containers WHERE name=?", (name,)).fetchone()
            if other and other[0] != cid:
                raise Conflict(f'Error when allocating new name: Conflict. The container name "/{name}" is '
                               f'already in use by container "{other[0]}". You have to remove (or rename) '
                               "that container to be able to reuse that name.")
            db.execute("UPDATE containers SET name=? WHERE id=?", (name, cid))

    # -- views ----------------------------------------------------------------------------------

    def all(self, refresh: bool = True) -> list[dict]:
        """Every container, newest first (one query), with its state refreshed unless the caller
        hears of exits itself (the daemon: its reads have no side effects)."""
        rows = self.store.db.execute("SELECT * FROM containers ORDER BY created DESC").fetchall()
        return [self.refresh(_record(row)) for row in rows] if refresh else [_record(row) for row in rows]

    def revisions(self) -> list[tuple[str, int]]:
        """Every container's ID and revision (a number that changes with any change to its row),
        newest first: what changed since an earlier look, without reading the rows."""
        cur = self.store.db.cursor()
        cur.row_factory = None  # plain tuples: a thousand sqlite3.Row objects cost more than the query
        return cur.execute("SELECT c.id, r.rev FROM containers c JOIN container_revs r ON r.id = c.id "
                           "ORDER BY c.created DESC").fetchall()

    def inspect(self, ref: str) -> dict:
        from .network import hooks as net_hooks

        rec = self.refresh(self.load(self.resolve(ref)))
        cid = rec["id"]
        d = self.dir(cid)
        spec = rec["spec"]
        state = rec["state"]
        host = dict(spec["HostConfig"])
        state = {k: v for k, v in state.items() if k not in ("ShimPid", "Cgroup")}
        for key in ("CapAdd", "CapDrop", "SecurityOpt", "Ulimits"):
            host.setdefault(key, None)
        return {
            "Id": cid,
            "Created": rec["created"],
            "Path": spec["Path"],
            "Args": spec["Args"],
            "State": state,
            "Image": rec["image_id"],
            "ResolvConfPath": str(d / "resolv.conf"),
            "HostnamePath": str(d / "hostname"),
            "HostsPath": str(d / "hosts"),
            "LogPath": str(d / f"{cid}-json.log"),
            "Name": "/" + rec["name"],
            "RestartCount": 0,
            "Driver": "overlay",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": host,
            "GraphDriver": {"Data": {"MergedDir": str(d / "bundle" / "rootfs"), "UpperDir": str(d / "upper"),
                                     "WorkDir": str(d / "work")}, "Name": "overlay"},
            "Mounts": net_hooks.mounts(rec),
            "Config": spec["Config"],
            "NetworkSettings": net_hooks.network_settings(self, rec),
        }

    def read_log(self, cid: str, pos: int = 0) -> tuple[int, list[dict]]:
        """:func:`read_json_log` of this container's log."""
        return read_json_log(self.dir(cid) / f"{cid}-json.log", pos)

    def logs(self, ref: str) -> Path:
        cid = self.resolve(ref)
        if _log_type(self.load(cid)) == "none":
            from ..errors import NotImplementedHere

            raise NotImplementedHere("configured logging driver does not support reading")
        return self.log_path(cid)

    def log_path(self, cid: str) -> Path:
        """Where the supervisor writes the container's json-file log (absent with ``none``)."""
        return self.dir(cid) / f"{cid}-json.log"


#: the log drivers dockyard serves (json-file is what it writes; local is read the same way here;
#: none keeps no log, so ``logs`` has nothing to read, as dockerd's)
LOG_DRIVERS = ("json-file", "local", "none")
#: dockerd's other built-in drivers: refused by name rather than taken for a missing plugin
DOCKER_ONLY_LOG_DRIVERS = ("syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "etwlogs", "gcplogs",
                           "logentries")


def _check_modes(opts: CreateOptions) -> None:
    """--pid and --uts as dockerd checks them at create."""
    if opts.pid_mode not in ("", "host") and not (opts.pid_mode.startswith("container:") and opts.pid_mode[10:]):
        raise InvalidArgument(f"invalid PID mode: {opts.pid_mode}")
    if opts.uts_mode not in ("", "host"):
        raise InvalidArgument(f"invalid UTS mode: {opts.uts_mode}")
    if opts.uts_mode == "host" and opts.hostname:
        raise InvalidArgument("Conflicting options: hostname and the UTS mode")


def _with_daemon_log_config(cfg: dict) -> dict:
    """A create's LogConfig merged with the daemon's --log-driver/--log-opt, as dockerd merges
    them: no type takes the daemon's; the daemon's options fill those not given, for its type."""
    raw = os.environ.get("DOCKYARD_LOG_CONFIG")
    if not raw:
        return cfg
    default = json.loads(raw)
    out = {"Type": cfg.get("Type") or default.get("Type") or "json-file", "Config": dict(cfg.get("Config") or {})}
    if out["Type"] == (default.get("Type") or "json-file"):
        out["Config"] = {**(default.get("Config") or {}), **out["Config"]}
    return out


def _with_daemon_defaults(res: Resources) -> Resources:
    """A create's resources with the daemon's --default-shm-size and --default-ulimit filled
    in, as dockerd does at create (so inspect shows them): a ulimit the create names is its own."""
    named = {u["type"] for u in res.ulimits}
    return replace(res, shm_size=res.shm_size or default_shm_size(),
                   ulimits=[*res.ulimits, *(u for u in default_ulimits() if u["type"] not in named)])


def _log_type(rec: dict) -> str:
    return (rec["spec"]["HostConfig"].get("LogConfig") or {}).get("Type") or "json-file"


def config_volumes(image_cfg: dict, opts: CreateOptions) -> dict | None:
    """Config.Volumes: the image's VOLUMEs and those the create asked for (dockerd's union)."""
    out = {**(image_cfg.get("Volumes") or {}), **{v: {} for v in getattr(opts, "anon_volumes", ())}}
    return out or None


def parse_restart(value: str) -> dict:
    name, _, count = (value or "no").partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise InvalidArgument(f"invalid restart policy format: {value}")
    if count and name != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise InvalidArgument(f"invalid restart policy format: maximum retry count must be an integer: {value}") from None
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": retries}


def merge_env(base: list[str], override: list[str]) -> list[str]:
    """Image env, then -e values replacing same-named entries (order kept, as docker)."""
    # Linear (it rebuilt the list once per -e value: a 10,000-entry Env took 4.3 s), same
    # result: the image's entries not overridden, in order, then each -e name's last value.
    last = {item.split("=", 1)[0]: i for i, item in enumerate(override)}
    out = [e for e in base if e.split("=", 1)[0] not in last]
    out += [item for i, item in enumerate(override) if last[item.split("=", 1)[0]] == i]
    return out


def _ulimit_name(rtype: str) -> str:
    return rtype.removeprefix("RLIMIT_").lower()


def _read_exit(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL, or ENOSPC/EDQUOT: by code, never by message."""
    import errno

    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _native_umount(path: Path) -> None:
    """Unmount ``path`` if it is a mount (an idmapped bind of the same file system, which
    os.path.ismount does not see)."""
    from .. import _native

    if path.exists():
        _native.umount(str(path))


def _host_resolv_conf() -> str:
    """The host's resolv.conf, without loopback nameservers (unreachable from a container)."""
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        lines = []
    out = [l for l in lines if not (l.startswith("nameserver") and (" 127." in l or " ::1" in l))]
    return "\n".join(out) + "\n"


def since_started(state: dict) -> float:
    return parse_time(state.get("StartedAt", ""))


_USERNS: list[bool] = []


def _in_user_namespace() -> bool:
    """Whether this process runs in a user namespace (rootless mode), not the host's."""
    if not _USERNS:
        try:
            with open("/proc/self/uid_map") as f:
                _USERNS.append(f.read().split() != ["0", "0", "4294967295"])
        except OSError:
            _USERNS.append(False)
    return _USERNS[0]
