"""``/_ping``, ``/version``, ``/info``, ``/events``, ``/system/df``, and the volume and network
routes (thin wrappers over engine/volumes.py and engine/network/)."""

from __future__ import annotations

import os
import platform
import queue
import time

from .. import __version__
from ..errors import InvalidArgument
from .http import API_VERSION, MIN_API_VERSION, STREAMED, Reply, Request, Router


def routes(r: Router) -> None:
    r.add("GET", "/_ping", ping)
    r.add("HEAD", "/_ping", ping)
    r.add("GET", "/version", version)
    r.add("GET", "/info", info)
    r.add("GET", "/events", events)
    r.add("GET", "/system/df", df)


def ping(d, req: Request) -> Reply:
    return Reply(200, b"OK", "text/plain; charset=utf-8",
                 {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
                  "Builder-Version": "1", "Swarm": "inactive"})


def version(d, req: Request) -> dict:
    kernel = platform.release()
    return {
        "Platform": {"Name": "dockyard"},
        "Components": [{"Name": "Engine", "Version": __version__,
                        "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                                    "Os": "linux", "Arch": _arch(), "KernelVersion": kernel,
                                    "GoVersion": "python" + platform.python_version()}}],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": "python" + platform.python_version(), "Os": "linux",
        "Arch": _arch(), "KernelVersion": kernel, "BuildTime": "",
    }


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def info(d, req: Request) -> dict:
    from ..engine import userns

    with d.engines.get() as engine:
        recs = engine.containers.all()
        n_images = engine.store.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    running = sum(1 for r in recs if r["state"]["Running"] and not r["state"]["Paused"])
    paused = sum(1 for r in recs if r["state"]["Paused"])
    from ..engine.cgroupstats import is_v2

    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    from .. import rootless

    # rootless on cgroup v1: no cgroups at all (dockerd's driver "none")
    cgroupless = rootless.active() and not is_v2()
    limits = not cgroupless
    return {
        "ID": _daemon_id(d), "Containers": len(recs), "ContainersRunning": running,
        "ContainersPaused": paused, "ContainersStopped": len(recs) - running - paused,
        "Images": n_images, "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]],
        "DockerRootDir": str(d.root), "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                                                 "Log": ["json-file"]},
        "MemoryLimit": limits, "SwapLimit": limits, "CpuCfsPeriod": limits, "CpuCfsQuota": limits,
        "CPUShares": limits, "CPUSet": limits, "PidsLimit": limits, "IPv4Forwarding": True,
        "Debug": False, "NFd": len(os.listdir("/proc/self/fd")), "NGoroutines": 0,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "LoggingDriver": "json-file",
        "CgroupDriver": "none" if cgroupless else "cgroupfs", "CgroupVersion": "2" if is_v2() else "1", "NEventsListener": len(d.events.subscribers),
        "KernelVersion": platform.release(), "OperatingSystem": _os_name(), "OSVersion": "",
        "OSType": "linux", "Architecture": platform.machine(), "NCPU": os.cpu_count() or 1, "MemTotal": mem,
        "IndexServerAddress": "https://index.docker.io/v1/", "RegistryConfig": {
            "IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
        "GenericResources": None, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": platform.node(),
        "Labels": [], "ExperimentalBuild": False, "ServerVersion": __version__, "Runtimes": {
            # "runc" is the name dockerd's clients send (docker-py runtime='runc'): dockyard-runtime
            # answers runc's command line, so both names run it
            "runc": {"path": "dockyard-runtime"}, "dockyard": {"path": "dockyard-runtime"}},
        "DefaultRuntime": "runc", "Swarm": {
            "LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": False, "Error": "",
            "RemoteManagers": None}, "LiveRestoreEnabled": not rootless.active(), "Isolation": "", "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin"] + (["name=userns"] if os.environ.get(userns.ENV) else [])
        + (["name=rootless"] if rootless.active() else []),
        "Warnings": ["WARNING: " + rootless.NO_CGROUPS_V1] if cgroupless else None,
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
    }


def _daemon_id(d) -> str:
    path = d.root / "daemon" / "id"
    try:
        return path.read_text().strip()
    except OSError:
        ident = os.urandom(16).hex()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(ident)
        return ident


def _os_name() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _match(ev: dict, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        attrs = ev["Actor"]["Attributes"]
        if key == "type" and ev["Type"] not in values:
            return False
        if key == "event" and ev["Action"].split(":")[0] not in values:
            return False
        if key in ("container", "image") and not (ev["Type"] == key and (
                ev["Actor"]["ID"] in values or attrs.get("name") in values
                or any(ev["Actor"]["ID"].startswith(v) for v in values))):
            return False
        if key == "label" and not any(
                (v.partition("=")[0] in attrs and (not v.partition("=")[1] or attrs[v.partition("=")[0]] == v.partition("=")[2]))
                for v in values):
            return False
    return True


def events(d, req: Request):
    from .logs import parse_ts

    since, until = parse_ts(req.arg("since")), parse_ts(req.arg("until"))
    if until and until < since:
        raise InvalidArgument(f"`since` time ({req.arg('since')}) cannot be after `until` time ({req.arg('until')})")
    filters = req.filters()
    for key in filters:
        if key not in ("type", "event", "container", "image", "label", "volume", "network", "daemon", "scope"):
            raise InvalidArgument(f"Invalid filter '{key}'")
    q = d.events.subscribe()
    try:
        out = req.start_stream("application/json")
        req._started = True
        if req.arg("since"):
            with d.events.lock:
                past = [e for e in d.events.history if e["timeNano"] / 1e9 >= since]
            for ev in past:
                if (not until or ev["timeNano"] / 1e9 < until) and _match(ev, filters):
                    out.json(ev)
        while not d.stopping.is_set():
            if until and time.time() >= until:
                break
            try:
                # up to ``until`` exactly; without it, a second at a time only so that a daemon
                # shutting down ends the stream (events wake it at once either way)
                ev = q.get(timeout=max(0.0, until - time.time()) if until else 1.0)
            except queue.Empty:
                continue
            if until and ev["timeNano"] / 1e9 >= until:
                break
            if _match(ev, filters):
                out.json(ev)
        out.close()
    finally:
        d.events.unsubscribe(q)
    return STREAMED


def container_sizes(engine, rec: dict) -> tuple[int, int]:
    """dockerd's ``SizeRw`` and ``SizeRootFs`` of one container: the bytes of its writable
    overlay upper dir (walked without following symlinks, a symlink counting its own length,
    each hardlinked inode once: docker's ``directory.Size``), and that plus its image's layers
    (dockerd's ``rwlayer.Parent().Size()``, the image's ``Size``).  ``inspect --size``,
    ``ps --size`` and ``system df`` all come here."""
    from ..engine.store import tree_size

    rw = tree_size(engine.containers.dir(rec["id"]) / "upper")
    row = engine.store.db.execute("SELECT size FROM images WHERE id=?", (rec["image_id"],)).fetchone()
    return rw, (row[0] if row else 0) + rw


def df(d, req: Request) -> dict:
    """``docker system df``'s data, in dockerd's shape: ``LayersSize`` counts each layer once;
    each image has its ``Containers`` and ``SharedSize`` (bytes of its layers other images use
    too); each container its ``SizeRw`` (its writable layer)."""
    from ..engine.store import tree_size
    from .containers import _summary

    with d.engines.get() as engine:
        images = engine.images.summaries(all_=True)
        layers_size = engine.images.disk_usage()["size"]
        db = engine.store.db
        users: dict[str, int] = {}
        for (image_id,) in db.execute("SELECT image_id FROM containers"):
            users[image_id] = users.get(image_id, 0) + 1
        shared = dict(db.execute(
            "SELECT il.image_id, COALESCE(SUM(l.content_size), 0) FROM image_layers il "
            "JOIN layers l ON l.chain_id = il.chain_id WHERE il.chain_id IN "
            "(SELECT chain_id FROM image_layers GROUP BY chain_id HAVING COUNT(DISTINCT image_id) > 1) "
            "GROUP BY il.image_id").fetchall())
        recs = engine.containers.all()
        sizes = {rec["id"]: container_sizes(engine, rec) for rec in recs}
        try:
            from .resources import _volumes

            vols_api = _volumes(engine)
            vol_users = vols_api.users()
            vols = []
            for v in vols_api.list():
                size = tree_size(v["Mountpoint"])
                vols.append(dict(v, UsageData={"Size": size, "RefCount": len(vol_users.get(v["Name"], []))}))
        except ImportError:
            vols = []
    images = [dict(i, Containers=users.get(i["Id"], 0), SharedSize=shared.get(i["Id"], 0)) for i in images]
    containers = []
    for rec in recs:
        containers.append(with_sizes(_summary(rec), *sizes[rec["id"]]))
    return {"LayersSize": layers_size, "Images": images, "Containers": containers, "Volumes": vols,
            "BuildCache": []}


def with_sizes(summary: dict, rw: int, rootfs: int) -> dict:
    """A ``/containers/json`` entry with its sizes, as dockerd gives them: a zero is left out
    (``omitempty``), so a container that wrote nothing has only ``SizeRootFs``."""
    if rw:
        summary["SizeRw"] = rw
    if rootfs:
        summary["SizeRootFs"] = rootfs
    return summary
