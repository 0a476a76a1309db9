"""``/containers/...`` routes: each maps to one engine call (see engine/containers.py)."""

from __future__ import annotations

import json
import os
import struct
import threading
import time

from ..errors import Conflict, DockyardError, ImageNotFound, InvalidArgument, NotFound
from .http import STREAMED, Reply, Request, Router, stream_produced
from .logs import logs, replay_log


def routes(r: Router) -> None:
    r.add("GET", "/containers/json", list_)
    r.add("POST", "/containers/create", create)
    r.add("POST", "/containers/prune", prune)
    r.add("GET", "/containers/{id}/json", inspect)
    r.add("POST", "/containers/{id}/start", start)
    r.add("POST", "/containers/{id}/stop", stop)
    r.add("POST", "/containers/{id}/restart", restart)
    r.add("POST", "/containers/{id}/kill", kill)
    r.add("POST", "/containers/{id}/wait", wait)
    r.add("DELETE", "/containers/{id}", delete)
    r.add("DELETE", "/containers/{id}/{alias}", delete)  # ?link=1: /PARENT/ALIAS
    r.add("POST", "/containers/{id}/rename", rename)
    r.add("POST", "/containers/{id}/update", update)
    r.add("POST", "/containers/{id}/pause", pause)
    r.add("POST", "/containers/{id}/unpause", unpause)
    r.add("POST", "/containers/{id}/resize", resize)
    r.add("GET", "/containers/{id}/top", top)
    r.add("GET", "/containers/{id}/changes", changes)
    r.add("GET", "/containers/{id}/export", export)
    r.add("GET", "/containers/{id}/logs", logs)
    r.add("GET", "/containers/{id}/stats", stats)
    r.add("POST", "/containers/{id}/attach", attach)
    r.add("GET", "/containers/{id}/archive", archive_get)
    r.add("HEAD", "/containers/{id}/archive", archive_head)
    r.add("PUT", "/containers/{id}/archive", archive_put)
    r.add("POST", "/commit", commit)


def _summary(rec: dict, settings: dict | None = None, mounts: list | None = None) -> dict:
    """A ``GET /containers/json`` entry; ``settings`` is inspect's NetworkSettings (ports and
    networks), ``mounts`` inspect's Mounts."""
    from ..engine.images import parse_time

    spec = rec["spec"]
    cfg = spec["Config"]
    host = spec["HostConfig"]
    nets = (settings or {}).get("Networks") or {}
    return {
        "Id": rec["id"], "Names": ["/" + rec["name"]], "Image": cfg.get("Image", ""),
        "ImageID": rec["image_id"], "Command": _command(spec),
        "Created": int(parse_time(rec["created"])), "Ports": _ports((settings or {}).get("Ports") or {}),
        "Labels": cfg.get("Labels") or {},
        "State": rec["state"]["Status"], "Status": status_text(rec["state"]),
        "HostConfig": {"NetworkMode": host.get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": nets if isinstance(nets, dict) else {}},
        "Mounts": mounts or [],
    }


def status_text(state: dict, now: float | None = None, started: float | None = None,
                finished: float | None = None) -> str:
    """dockerd's Status: "Up 3 seconds", "Up 2 minutes (Paused)", "Exited (0) 2 minutes ago", "Created".
    ``started``/``finished``: the state's times already parsed."""
    from ..engine.images import parse_time
    from ..units import human_duration

    now = time.time() if now is None else now
    if state["Running"]:
        text = "Up " + human_duration(max(0.0, now - (parse_time(state["StartedAt"]) if started is None else started)))
        if state["Paused"]:
            return text + " (Paused)"
        status = (state.get("Health") or {}).get("Status")
        if status:
            return text + (" (health: starting)" if status == "starting" else f" ({status})")
        return text
    if state["Status"] == "created":
        return "Created"
    finished = parse_time(state["FinishedAt"]) if finished is None else finished
    return f"Exited ({state['ExitCode']}) " + human_duration(max(0.0, now - finished)) + " ago"


def ps_filter(recs: list[dict], filters: dict[str, list[str]]) -> list[dict]:
    """The list filters that need only the record: status, name, id, label, exited, ancestor,
    health."""
    from ..engine.filters import labels_match

    if not filters:
        return recs
    out = []
    for rec in recs:
        st = rec["state"]
        ok = True
        for key, values in filters.items():
            if key == "status":
                ok = st["Status"] in values
            elif key == "name":
                ok = any(v.lstrip("/") in rec["name"] for v in values)
            elif key == "id":
                ok = any(rec["id"].startswith(v) for v in values)
            elif key == "label":
                ok = labels_match(rec["spec"]["Config"].get("Labels") or {}, values)
            elif key == "exited":
                ok = not st["Running"] and st["Status"] == "exited" and str(st["ExitCode"]) in values
            elif key == "health":
                ok = ((st.get("Health") or {}).get("Status") or "none") in values
            elif key == "ancestor":
                ok = any(v in (rec["spec"]["Config"]["Image"], rec["image_id"], rec["image_id"][7:19]) for v in values)
            if not ok:
                break
        if ok:
            out.append(rec)
    return out


def _command(spec: dict) -> str:
    """dockerd's Command column: arguments with a space wrapped in single quotes."""
    args = [f"'{a}'" if " " in a else a for a in spec["Args"]]
    return " ".join([spec["Path"], *args]) if args else spec["Path"]


def list_(d, req: Request) -> list | Reply:
    all_ = req.bool("all")
    limit = req.int("limit", -1)
    filters = req.filters()
    allowed = {"status", "name", "id", "label", "exited", "ancestor", "before", "since", "network",
               "volume", "health", "isolation", "is-task", "publish", "expose"}
    for key in filters:
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
    for v in filters.get("status", []):
        if v not in ("created", "restarting", "running", "removing", "paused", "exited", "dead"):
            raise InvalidArgument(f"invalid filter 'status={v}'")
    for v in filters.get("health", []):
        if v not in ("starting", "healthy", "unhealthy", "none"):
            raise InvalidArgument(f"Unrecognised filter value for health: {v}")
    with d.engines.get() as engine:
        entries = _LISTING.entries(engine)  # exits are recorded as they happen (core.py)
        recs = [e.rec for e in entries]
        if limit is not None and limit > 0:
            recs = recs[:limit]
        elif not all_ and "status" not in filters and "exited" not in filters:
            recs = [r for r in recs if r["state"]["Running"]]
        recs = ps_filter(recs, {k: v for k, v in filters.items() if k in
                                ("status", "name", "id", "label", "exited", "ancestor", "health")})
        for key in ("before", "since"):
            for ref in filters.get(key, []):
                pivot = engine.containers.load(engine.containers.resolve(ref))["created"]
                recs = [r for r in recs if (r["created"] < pivot if key == "before" else r["created"] > pivot)]
        by_id = {e.rec["id"]: e for e in entries}
        now = time.time()
        if req.bool("size") or any(k in filters for k in ("network", "volume", "publish", "expose")):
            from .system import container_sizes, with_sizes

            out = []
            for rec in recs:
                summary = dict(by_id[rec["id"]].summary, Status=by_id[rec["id"]].status(now))
                if _summary_matches(summary, filters):
                    out.append(with_sizes(summary, *container_sizes(engine, rec)) if req.bool("size") else summary)
            return out
        if (req.headers.get("Dockyard-Fields") or "").strip() == "Id":
            # our CLI's ``ps -q`` reads the IDs alone: 70 bytes an entry to send and parse, not
            # 750; any other client, or any other value, gets whole entries
            return Reply(200, json.dumps([{"Id": rec["id"]} for rec in recs]).encode())
        # the common case: each entry's JSON made once, only its Status put in at each list; the
        # pieces joined once (1,000 entries: one 750 KB buffer, not one per entry and three copies)
        parts: list[bytes] = [b"["]
        for rec in recs:
            parts += by_id[rec["id"]].pieces(now)
            parts.append(b", ")
        parts[-1:] = [b"]\n"] if recs else [b"[]\n"]
        return Reply(200, b"".join(parts))


class _Entry:
    """A container as the list shows it: its record, its summary (``Status`` aside), that
    summary's JSON cut where ``Status`` goes, and the times ``Status`` is made from."""

    __slots__ = ("key", "rec", "summary", "_pre", "_post", "_started", "_finished", "_shown")
    _MARK = "\x00status\x00"

    def __init__(self, key: tuple, rec: dict, summary: dict) -> None:
        from ..engine.images import parse_time

        self.key, self.rec, self.summary = key, rec, summary
        encoded = json.dumps(dict(summary, Status=self._MARK)).encode()
        self._pre, _, self._post = encoded.partition(json.dumps(self._MARK).encode())
        state = rec["state"]
        self._started = parse_time(state["StartedAt"]) if state["Running"] else 0.0
        self._finished = parse_time(state["FinishedAt"]) if not state["Running"] else 0.0
        # (from, until, Status's JSON): the seconds since the start (or the exit) for which that
        # text holds; one value, for threads
        self._shown: tuple[float, float, bytes] = (0.0, -1.0, b"")

    def status(self, now: float) -> str:
        return status_text(self.rec["state"], now, self._started, self._finished)

    def pieces(self, now: float) -> tuple[bytes, bytes, bytes]:
        """The entry's JSON in three pieces: before Status, Status, after it."""
        # Status is made again only when its text can change, not for each of 1,000 entries at
        # each list: go-units' HumanDuration moves with the whole seconds under a minute, and
        # past it only at whole minutes (its hours round at half hours; days and more follow them)
        elapsed = max(0.0, now - (self._started if self.rec["state"]["Running"] else self._finished))
        shown = self._shown
        if not shown[0] <= elapsed < shown[1]:
            unit = 1.0 if elapsed < 60 else 60.0
            start = elapsed - elapsed % unit
            shown = self._shown = (start, start + unit, json.dumps(self.status(now)).encode())
        return self._pre, shown[2], self._post


class _Listing:
    """What ``GET /containers/json`` made of each container, kept while the container's row
    (its revision) and endpoint rows stay the same, so a list of 1,000 containers reads, parses
    and encodes only what changed since the last one (one query for the revisions, one for the
    endpoints, one per changed row).  ``Status`` ("Up 3 minutes") is made again only when its
    whole seconds change.  Entries are shared between requests:
    read them, copy before changing."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def entries(self, engine) -> list[_Entry]:
        """Every container's entry, newest first."""
        from ..engine.network import hooks

        net = hooks.networks(engine.containers)
        eps = net.endpoint_rows()
        with self._lock:
            old = self._entries
        fresh: dict[str, _Entry] = {}
        for cid, rev in engine.containers.revisions():
            key = (rev, eps.get(cid, ()))
            entry = old.get(cid)
            if entry is None or entry.key != key:
                try:
                    rec = engine.containers.load(cid)
                except NotFound:  # removed since the first query
                    continue
                try:
                    settings = net.settings(rec)
                except DockyardError:
                    settings = {}
                entry = _Entry(key, rec, _summary(rec, settings, hooks.mounts(rec)))
            fresh[cid] = entry
        with self._lock:
            self._entries = fresh
        return list(fresh.values())


_LISTING = _Listing()


def _port_set(values: list[str]) -> list[tuple[int, int, str]]:
    """``80``, ``80/udp``, ``8000-8010/tcp`` -> (first, last, proto) ranges."""
    out = []
    for v in values:
        port, _, proto = v.partition("/")
        first, _, last = port.partition("-")
        try:
            out.append((int(first), int(last or first), proto or "tcp"))
        except ValueError:
            raise InvalidArgument(f"invalid filter '{v}'") from None
    return out


def _summary_matches(summary: dict, filters: dict[str, list[str]]) -> bool:
    """The list filters that need the network settings or mounts: network, volume, publish,
    expose."""
    if "network" in filters:
        nets = summary["NetworkSettings"]["Networks"]
        names = set(nets) | {n.get("NetworkID", "") for n in nets.values()}
        if not any(v in names or any(i.startswith(v) for i in names if i) for v in filters["network"]):
            return False
    if "volume" in filters:
        points = {m.get(k) for m in summary["Mounts"] for k in ("Name", "Source", "Destination")} - {None, ""}
        if not any(v in points for v in filters["volume"]):
            return False
    for key, field in (("publish", "PublicPort"), ("expose", "PrivatePort")):
        if key in filters:
            ports = [(p.get(field), p["Type"]) for p in summary["Ports"] if p.get(field)]
            if not any(a <= port <= b and proto == pp for a, b, proto in _port_set(filters[key]) for port, pp in ports):
                return False
    return True


def _ports(bindings: dict) -> list:
    """inspect's ``{"80/tcp": [{"HostIp", "HostPort"}]}`` as the list's ``Ports``."""
    out = []
    for port, binds in bindings.items():
        num, _, proto = port.partition("/")
        if not binds:
            out.append({"PrivatePort": int(num), "Type": proto or "tcp"})
        for b in binds or []:
            out.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(num),
                        "PublicPort": int(b.get("HostPort") or 0), "Type": proto or "tcp"})
    return out


def _check_platform(engine, image: str, platform: str) -> None:
    """``create --platform``: the local image must be of that platform, else dockerd's "not
    found" (the CLI then pulls that platform, as for a missing image)."""
    from ..registry.pull import parse_platform

    want = parse_platform(platform)
    try:
        cfg = engine.images.config(engine.images.resolve(image))
    except ImageNotFound:
        return  # (the create says "No such image")
    have = (cfg.get("os") or "linux", cfg.get("architecture") or "", cfg.get("variant") or "")
    if have[:2] != want[:2] or (want[2] and have[2] != want[2]):
        def name(p: tuple[str, str, str]) -> str:
            return "/".join(x for x in p if x)

        raise ImageNotFound(f"image with reference {image} was found but does not match the specified platform: "
                            f"wanted {name(want)}, actual: {name(have)}")


def create(d, req: Request) -> Reply:
    from .create import options_from_body

    name = req.arg("name", "") or ""
    body = req.json()
    opts = options_from_body(body, name)
    with d.engines.get() as engine:
        if opts.image in ("hello-world", "hello-world:latest"):
            from ..engine import hello

            hello.ensure(engine)
        if req.arg("platform"):
            _check_platform(engine, opts.image, req.arg("platform"))
        try:
            cid = engine.containers.create(opts)
            size = (body.get("HostConfig") or {}).get("ConsoleSize") or [0, 0]
            if opts.tty and isinstance(size, list) and len(size) == 2 and all(
                    isinstance(x, int) and 0 < x < 65536 for x in size):
                with d.lock:
                    d.console_sizes[cid] = (size[0], size[1])  # the first resize frame of attach
        except ImageNotFound:
            from ..reference import parse

            try:
                ref = parse(opts.image).with_default_tag().familiar()
            except DockyardError:
                ref = opts.image
            raise ImageNotFound(f"No such image: {ref}") from None
        d.emit_container(engine, cid, "create")
    return Reply(201, {"Id": cid, "Warnings": opts.warnings})


#: HostConfig fields dockerd always reports, with its defaults (clients read them unconditionally)
HOST_DEFAULTS = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "PortBindings": {}, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0],
    "CgroupnsMode": "private", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None,
    "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
    "PublishAllPorts": False, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864, "Runtime": "runc",
    "Isolation": "", "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": [],
    "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [],
    "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "Devices": [], "DeviceCgroupRules": None,
    "DeviceRequests": None, "MemorySwappiness": None, "OomKillDisable": None, "CpuCount": 0,
    "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None,
}


def inspect(d, req: Request, id: str) -> dict:
    with d.engines.get() as engine:
        info = engine.containers.inspect(id)
    for key, value in HOST_DEFAULTS.items():
        info["HostConfig"].setdefault(key, value)
    policy = info["HostConfig"].get("RestartPolicy")
    if isinstance(policy, dict) and not policy.get("Name"):
        info["HostConfig"]["RestartPolicy"] = dict(policy, Name="no")  # dockerd's normal form
    if d.restarting(info["Id"]) and not info["State"]["Running"]:
        # dockerd between an exit and the restart its policy decided: running, restarting
        info["State"].update(Running=True, Restarting=True, Status="restarting")
    with d.lock:
        info["RestartCount"] = d.restart_counts.get(info["Id"], 0)
        info["ExecIDs"] = [k for k, v in d.execs.items() if v["ContainerID"] == info["Id"]] or None
    if req.bool("size"):
        from .system import container_sizes

        with d.engines.get() as engine:
            info["SizeRw"], info["SizeRootFs"] = container_sizes(engine, engine.containers.load(info["Id"]))
    if not req.before("1.44"):
        _dns_names(info, short_id_alias=req.before("1.45"))
    return info


def _dns_names(info: dict, short_id_alias: bool) -> None:
    """API 1.44's DNSNames of each endpoint: the names the network's DNS answers for the
    container (its name, its aliases, its short ID, its hostname), set while it is connected,
    on user networks.  From 1.45 on, Aliases are what the client gave, without the short ID
    that older versions show there."""
    short = info["Id"][:12]
    name, hostname = info["Name"].lstrip("/"), (info.get("Config") or {}).get("Hostname") or ""
    for net, ep in (info["NetworkSettings"].get("Networks") or {}).items():
        aliases = ep.get("Aliases") or []
        given = aliases[:-1] if net != "bridge" and aliases[-1:] == [short] else aliases
        if not short_id_alias:
            ep["Aliases"] = given or None
        names = [name, *given, short, hostname] if net not in ("bridge", "host", "none") and ep.get("EndpointID") else []
        ep["DNSNames"] = list(dict.fromkeys(n for n in names if n)) or None


def start(d, req: Request, id: str) -> Reply | None:
    with d.engines.get() as engine:
        cid = engine.containers.resolve(id)
        if engine.containers.refresh(engine.containers.load(cid))["state"]["Running"]:
            return Reply(304, b"")
    d.start_container(cid)
    return None


def stop(d, req: Request, id: str) -> Reply | None:
    timeout = req.int("t", None)
    if timeout is None:
        timeout = req.int("timeout", None)
    from ..engine.spec import parse_signal

    sig = req.arg("signal") or None
    if sig is not None:
        parse_signal(sig)  # a bad signal changes nothing (not even the restart policy's view)
    with d.engines.get() as engine:
        cid = engine.containers.resolve(id)
        if not engine.containers.refresh(engine.containers.load(cid))["state"]["Running"]:
            if d.restarting(cid):
                d.mark_stopped(cid)  # dockerd stops a restarting container: no restart comes
                return None
            return Reply(304, b"")
        d.mark_stopped(cid)
        # the kill event before the signal goes (the exit's die could otherwise come first),
        # with the signal sent: the stop signal unless the request names one
        stop_signal = sig or engine.containers.load(cid)["spec"]["Config"].get("StopSignal") or "TERM"
        d.emit_container(engine, cid, "kill", {"signal": str(parse_signal(stop_signal))})
        engine.containers.stop(cid, timeout, sig,
                               before_kill=lambda: d.emit_container(engine, cid, "kill", {"signal": "9"}))
        d.check_exit(cid)
        d.emit_container(engine, cid, "stop")
    return None


def restart(d, req: Request, id: str) -> None:
    timeout = req.int("t", None)
    with d.engines.get() as engine:
        cid = engine.containers.resolve(id)
        d.cancel_restart(cid)
        if engine.containers.refresh(engine.containers.load(cid))["state"]["Running"]:
            d.mark_stopped(cid)
            engine.containers.stop(cid, timeout, req.arg("signal") or None)
            d.check_exit(cid)
            d.emit_container(engine, cid, "stop")
    d.start_container(cid)
    with d.engines.get() as engine:
        d.emit_container(engine, cid, "restart")
    return None


def kill(d, req: Request, id: str) -> None:
    from ..engine.spec import parse_signal

    sig = req.arg("signal") or "KILL"
    num = parse_signal(sig)
    with d.engines.get() as engine:
        cid = engine.containers.resolve(id)
        rec = engine.containers.refresh(engine.containers.load(cid))
        if not rec["state"]["Running"]:
            raise Conflict(f"Cannot kill container: {id}: Container {cid} is not running")
        if num in (9, 15, 2):
            d.mark_stopped(cid)
        d.emit_container(engine, cid, "kill", {"signal": str(num)})
        engine.containers.kill(cid, num)
        if num == 9:
            # as dockerd: a SIGKILL returns once the exit is recorded (inspect right after
            # reads the exit code; die comes before the response)
            try:
                engine.containers.wait(cid, timeout=10)
            except DockyardError:
                pass
            d.check_exit(cid)
    return None


def wait(d, req: Request, id: str):
    """Headers go out at once (the docker CLI waits for them before it starts the container),
    the body when the condition is met."""
    condition = req.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidArgument(f"invalid condition: {condition!r}")
    q = d.events.subscribe()
    try:
        with d.engines.get() as engine:
            cid = engine.containers.resolve(id)
            state = engine.containers.refresh(engine.containers.load(cid))["state"]
        out = req.start_stream("application/json")
        req._started = True
        if condition == "not-running" and not state["Running"]:
            out.json({"StatusCode": state["ExitCode"], "Error": None})
            out.close()
            return STREAMED
        if state["Running"] and cid not in d.tracked:
            # (not started by this daemon: say, by an engine in another process) watched from
            # now on, so that its exit is an event like any other
            d.track(cid, {"state": state})
        code = None
        while True:
            ev = q.get()  # the die (or destroy) event: no timer
            if ev.get("id") != cid:
                continue
            if ev["Action"] == "die":
                code = int(ev["Actor"]["Attributes"].get("exitCode", "0"))
                if condition != "removed":
                    break
            elif ev["Action"] == "destroy":
                break
        out.json({"StatusCode": code if code is not None else 0, "Error": None})
        out.close()
        return STREAMED
    finally:
        d.events.unsubscribe(q)


def delete(d, req: Request, id: str, alias: str = "") -> None:
    force, volumes = req.bool("force"), req.bool("v")
    if req.bool("link"):
        with d.engines.get() as engine:
            engine.containers.remove_link(f"{id}/{alias}" if alias else id)
        return None
    if alias:
        raise NotFound("page not found")
    with d.engines.get() as engine:
        cid = engine.containers.resolve(id)
        rec = engine.containers.load(cid)
        if not force and d.restarting(cid):
            raise Conflict(f"cannot remove container \"/{rec['name']}\": container is restarting: stop the "
                           "container before removing or force remove")
        d.cancel_restart(cid)
        # the daemon's state file changes only if it names the container, or would have to (a
        # restart policy: a daemon killed mid-removal must not restart it); else no write at all
        with d.lock:
            persisted = cid in d.manually_stopped or cid in d.restart_counts
        policy = (rec["spec"]["HostConfig"].get("RestartPolicy") or {}).get("Name") or "no"
        persisted = persisted or policy != "no"
        if force:
            d.mark_stopped(cid, persist=persisted)
            # (loaded again: a restart that was starting has ended by now)
            if engine.containers.refresh(engine.containers.load(cid))["state"]["Running"]:
                # as dockerd: kill (signal 9), die, destroy; the die is said from the recorded
                # exit before the record goes (after it, nothing could say it)
                d.emit_container(engine, cid, "kill", {"signal": "9"})
                try:
                    engine.containers.kill(cid, 9)
                    engine.containers.wait(cid, timeout=30)
                except DockyardError:
                    pass  # it exited meanwhile, or the removal's own kill finishes the job
                d.check_exit(cid)
        try:
            engine.containers.remove(cid, force=force, volumes=volumes)
        except NotFound:
            if rec["spec"]["HostConfig"].get("AutoRemove"):
                return None  # its exit removed it (and said destroy)
            raise
        d.forget(cid)
        d._emit_container(rec, "destroy")
    if persisted:
        d.save_state()
    return None


def update(d, req: Request, id: str) -> dict:
    """``docker update``: Resources fields and RestartPolicy; a zero value means "unchanged", as
    the docker CLI sends every field."""
    from .create import HOST_FIELDS, _check

    body = req.json()
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON in request body: expected an object")
    from ..engine.containers import Containers

    allowed = {k: HOST_FIELDS[k] for k in (*Containers.UPDATABLE, "RestartPolicy", "BlkioWeight", "BlkioWeightDevice",
               "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps",
               "CpuRealtimePeriod", "CpuRealtimeRuntime", "Devices", "DeviceCgroupRules", "DeviceRequests",
               "KernelMemory", "KernelMemoryTCP", "MemorySwappiness", "OomKillDisable", "Ulimits", "CpuCount",
               "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth", "CgroupParent")}
    _check(body, allowed, "UpdateConfig")
    unsupported = [k for k in allowed if k not in Containers.UPDATABLE and k != "RestartPolicy" and body.get(k)]
    if unsupported:
        raise InvalidArgument(f"updating {', '.join(sorted(unsupported))} is not supported by dockyard")
    changes = {k: body[k] for k in Containers.UPDATABLE if k != "PidsLimit" and body.get(k)}
    if body.get("PidsLimit") is not None:
        changes["PidsLimit"] = max(int(body["PidsLimit"]), 0)
    restart = None
    policy = body.get("RestartPolicy") or {}
    if policy.get("Name"):
        restart = policy["Name"] + (f":{int(policy['MaximumRetryCount'])}" if policy.get("MaximumRetryCount") else "")
    with d.engines.get() as engine:
        warnings = engine.containers.update(id, changes, restart)
        d.emit_container(engine, id, "update")
    return {"Warnings": warnings}


def rename(d, req: Request, id: str) -> None:
    new = req.arg("name")
    if not new:
        raise InvalidArgument("name is required")
    with d.engines.get() as engine:
        engine.containers.rename(id, new)
        d.emit_container(engine, id if new in id else new, "rename")
    return None


def pause(d, req: Request, id: str) -> None:
    with d.engines.get() as engine:
        engine.containers.pause(id)
        d.emit_container(engine, id, "pause")


def unpause(d, req: Request, id: str) -> None:
    with d.engines.get() as engine:
        engine.containers.unpause(id)
        d.emit_container(engine, id, "unpause")


def resize(d, req: Request, id: str) -> Reply:
    h, w = req.int("h", 0), req.int("w", 0)
    if h < 0 or w < 0 or h > 65535 or w > 65535:
        raise InvalidArgument("invalid terminal size")
    with d.engines.get() as engine:
        cid = engine.containers.resolve(id)
        rec = engine.containers.refresh(engine.containers.load(cid))
        if not rec["state"]["Running"]:
            raise Conflict(f"Container {cid} is not running")
        path = str(engine.containers.attach_socket(cid))
    import socket

    # An attach that has not reached the supervisor yet must be its first client (the one the
    # process waits for): let it connect first.
    deadline = time.monotonic() + 2
    with d.attach_cond:
        while (cid in d.pending_attach or cid in d.connecting) and time.monotonic() < deadline:
            d.attach_cond.wait(deadline - time.monotonic())  # notified as each attach connects
        relays = list(d.resizers.get(cid, []))
    if relays:
        # through an attached client's own connection: no extra supervisor client
        relays[-1](h, w)
        return Reply(200, b"", "text/plain")

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(path)
            s.sendall(struct.pack(">BxxxI", 4, 4) + struct.pack(">HH", h, w))
    except OSError:
        pass
    return Reply(200, b"", "text/plain")


def top(d, req: Request, id: str) -> dict:
    import subprocess

    ps_args = (req.arg("ps_args") or "-ef").split()
    with d.engines.get() as engine:
        cid = engine.containers.resolve(id)
        rec = engine.containers.refresh(engine.containers.load(cid))
        if not rec["state"]["Running"]:
            raise Conflict(f"Container {cid} is not running")
        pids = set(engine.containers.runtime.ps(cid))
    proc = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DockyardError(f"Error running ps: {proc.stderr.strip()}")
    lines = proc.stdout.splitlines()
    titles = lines[0].split()
    if "PID" not in titles:
        raise DockyardError("Couldn't find PID field in ps output")
    col = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
            rows.append(fields)
    return {"Titles": titles, "Processes": rows}


def changes(d, req: Request, id: str) -> list:
    kinds = {"C": 0, "A": 1, "D": 2}
    with d.engines.get() as engine:
        return [{"Path": p, "Kind": kinds.get(k, 0)} for k, p in engine.containers.diff(id)]


def export(d, req: Request, id: str):
    with d.engines.get() as engine:
        cid = engine.containers.resolve(id)
        return stream_produced(req, lambda w: engine.containers.export(cid, f"/proc/self/fd/{w}"))


def _stats_doc(rec: dict, now: dict, prev: dict | None, read: str, preread: str) -> dict:
    def cpu(s: dict) -> dict:
        return {"cpu_usage": {"total_usage": s.get("cpu", 0), "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "system_cpu_usage": s.get("system", 0), "online_cpus": s.get("ncpu", 1),
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}

    return {
        "read": read, "preread": preread, "name": "/" + rec["name"], "id": rec["id"],
        "pids_stats": {"current": now.get("pids", 0)},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": now.get("blk_read", 0)},
            {"major": 0, "minor": 0, "op": "write", "value": now.get("blk_write", 0)}]},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": cpu(now), "precpu_stats": cpu(prev) if prev else {"cpu_usage": {"total_usage": 0},
                                                                      "throttling_data": {}},
        "memory_stats": {"usage": now.get("mem", 0), "limit": now.get("mem_limit", 0), "stats": {}},
        **({"networks": now["networks"]} if now.get("networks") else {}),
    }


NET_DEV_FIELDS = {0: "rx_bytes", 1: "rx_packets", 2: "rx_errors", 3: "rx_dropped",
                  8: "tx_bytes", 9: "tx_packets", 10: "tx_errors", 11: "tx_dropped"}


def _networks(pid: int) -> dict[str, dict[str, int]]:
    """The counters of a running container's interfaces, lo aside, keyed by name, as dockerd's
    stats has them: read from ``/proc/<pid>/net/dev``, which shows the network namespace of that
    process.  A container that shares the daemon's namespace (``--network host``) has none of its
    own, nor one with only lo (``--network none``): then ``{}``, and the document has no
    ``networks``, as dockerd's has not."""
    if pid <= 0:
        return {}
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
            return {}
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:  # the process is gone
        return {}
    out = {}
    for line in lines:
        name, _, counters = line.partition(":")
        name, values = name.strip(), counters.split()
        if name and name != "lo" and len(values) >= 12:
            out[name] = {key: int(values[i]) for i, key in NET_DEV_FIELDS.items()}
    return out


def _sample(rec: dict) -> dict:
    """A running container's cgroup counters and its interfaces' (``networks``)."""
    from ..engine.cgroupstats import sample
    from ..engine.containers import cgroup_of

    return dict(sample(cgroup_of(rec)), networks=_networks(rec["state"].get("Pid") or 0))


def stats(d, req: Request, id: str):
    from ..engine.images import now_rfc3339

    stream = req.bool("stream", True)
    one_shot = req.bool("one-shot")
    with d.engines.get() as engine:
        cid = engine.containers.resolve(id)
        rec = engine.containers.refresh(engine.containers.load(cid))
    zero = "0001-01-01T00:00:00Z"
    if not rec["state"]["Running"]:
        doc = _stats_doc(rec, {}, None, zero, zero)
        if not stream:
            return doc
    if not stream:
        first = _sample(rec)
        if one_shot:
            return _stats_doc(rec, first, None, now_rfc3339(), zero)
        t0 = now_rfc3339()
        time.sleep(1.0)
        return _stats_doc(rec, _sample(rec), first, now_rfc3339(), t0)
    out = req.start_stream("application/json")
    req._started = True
    prev, prev_t = None, zero
    while not d.stopping.is_set():
        with d.engines.get() as engine:
            try:
                rec = engine.containers.refresh(engine.containers.load(cid))
            except NotFound:
                break
        if not rec["state"]["Running"]:
            out.json(_stats_doc(rec, {}, None, zero, zero))
            break
        now, t = _sample(rec), now_rfc3339()
        out.json(_stats_doc(rec, now, prev, t, prev_t))
        prev, prev_t = now, t
        d.stopping.wait(1.0)  # dockerd's period between samples; a stopping daemon ends it at once
    out.close()
    return STREAMED


def attach(d, req: Request, id: str):
    """Hijack the connection and relay it to the container's supervisor.  A client that attaches
    before start (``docker run``) makes the start wait for it: the supervisor then starts the
    process only once we are connected, so no output is lost."""
    from .streams import detach_key_bytes, relay_attach

    want_stdin = req.bool("stdin")
    want = {1: req.bool("stdout"), 2: req.bool("stderr")}
    stream = req.bool("stream")
    logs = req.bool("logs")
    try:
        keys = detach_key_bytes(req.arg("detachKeys") or "")
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    with d.engines.get() as engine:
        cid = engine.containers.resolve(id)
        rec = engine.containers.refresh(engine.containers.load(cid))
        sock_path = str(engine.containers.attach_socket(cid))
        log_path = engine.containers.log_path(cid)
    tty = bool(rec["spec"]["Config"].get("Tty"))
    waiting = stream and not rec["state"]["Running"]
    if waiting:
        # registered before the 101 goes out: the client starts the container once it has it
        with d.attach_cond:
            d.pending_attach[cid] = d.pending_attach.get(cid, 0) + 1
    relaying = False
    try:
        conn = req.hijack("application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream",
                          until_read=logs)
        req._started = True
        if logs:
            replay_log(conn, log_path, tty, want)
        if not stream:
            return STREAMED
        if waiting and not _wait_started(d, cid, conn):
            return STREAMED
        relaying = True
    finally:
        with d.attach_cond:
            if relaying:
                # "connecting" before "pending" ends: a resize never slips in between and
                # becomes the supervisor's first client
                d.relays[cid] = d.relays.get(cid, 0) + 1
                d.connecting[cid] = d.connecting.get(cid, 0) + 1
            if waiting:
                d.pending_attach[cid] -= 1
                if not d.pending_attach[cid]:
                    del d.pending_attach[cid]
                    d.attach_abort.discard(cid)
            d.attach_cond.notify_all()
    with d.attach_cond:
        size = d.console_sizes.pop(cid, None) if tty else None

    resizer: list = []

    def connected(resize) -> None:
        with d.attach_cond:
            d.connecting[cid] -= 1
            if not d.connecting[cid]:
                del d.connecting[cid]
            if resize is not None:
                resizer.append(resize)
                d.resizers.setdefault(cid, []).append(resize)
            d.attach_cond.notify_all()

    try:
        cfg = rec["spec"]["Config"]
        relay_attach(conn, sock_path, tty=tty, stdin=want_stdin and bool(cfg.get("OpenStdin")), want=want,
                     size=size, connected=connected, close_stdin=bool(cfg.get("StdinOnce")) and not tty,
                     detach_keys=keys)
    finally:
        with d.attach_cond:
            d.relays[cid] -= 1
            if not d.relays[cid]:
                del d.relays[cid]
            for r in resizer:
                d.resizers.get(cid, []).remove(r)
            if not d.resizers.get(cid, True):
                del d.resizers[cid]
            d.attach_cond.notify_all()
    if cid in d.tracked:
        # the supervisor sent the exit frame: record the exit now rather than at the next tick
        try:
            d.check_exit(cid)
        except DockyardError:
            pass
    return STREAMED


def _wait_started(d, cid: str, conn) -> bool:
    """Wait for the container to start.  A client that half-closes (no stdin: docker does
    ``CloseWrite`` at once) still wants the output; a client that has gone altogether (POLLHUP
    on a unix socket), a start that failed or a removed container ends the wait (the daemon
    says so through ``attach_abort``).  No timer: the start, the abort and the daemon's
    shutdown write to a pipe of this wait's (``notify_attach``), polled with the client."""
    import select

    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLHUP)
    poller.register(r, select.POLLIN)
    with d.attach_cond:
        d.attach_wakers.add(w)  # before the first look: a start after it leaves a byte
    try:
        while True:
            with d.attach_cond:
                if cid in d.tracked:
                    return True
                if cid in d.attach_abort or d.stopping.is_set():
                    return False
            for fd, ev in poller.poll():
                if fd == r:
                    os.read(r, 64)
                elif ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    return False
    finally:
        with d.attach_cond:
            d.attach_wakers.discard(w)
        os.close(r)
        os.close(w)


# -- docker cp --------------------------------------------------------------------------------------

def archive_head(d, req: Request, id: str) -> Reply:
    with d.engines.get() as engine, engine.containers.archive_source(id, req.arg("path") or "") as src:
        return Reply(200, b"", "application/x-tar", {"X-Docker-Container-Path-Stat": src.stat_header()})


def archive_get(d, req: Request, id: str):
    with d.engines.get() as engine, engine.containers.archive_source(id, req.arg("path") or "") as src:
        out = req.start_stream("application/x-tar", headers={"X-Docker-Container-Path-Stat": src.stat_header()})
        req._started = True
        try:
            src.write_tar(out)
        except (OSError, DockyardError) as exc:
            # Headers are sent: no final chunk, so the client sees the body end early rather
            # than a short archive that looks complete.
            log = getattr(d, "log", None)
            if log is not None:
                log.error("archive %s:%s failed while streaming: %s", id, req.arg("path"), exc)
            req.handler.close_connection = True
            return STREAMED
        out.close()
    return STREAMED


def archive_put(d, req: Request, id: str) -> Reply:
    path = req.arg("path") or ""
    req.bool("noOverwriteDirNonDir")
    req.bool("copyUIDGID")  # dockerd keeps the archive's owners either way (with a USER, -a maps to it)
    with d.engines.get() as engine:
        engine.containers.archive_put(id, path, req.stream)
    return Reply(200, b"", "text/plain")  # dockerd's 200 (docker-py's put_archive checks for it)


def prune(d, req: Request) -> dict:
    from ..engine.filters import labels_match

    from ..engine.filters import timestamp
    from ..engine.images import parse_time

    filters = req.filters()
    for key in filters:
        if key not in ("until", "label", "label!"):
            raise InvalidArgument(f"invalid filter '{key}'")
    until = [timestamp(v) for v in filters.get("until", [])]
    deleted, reclaimed = [], 0
    with d.engines.get() as engine:
        for rec in engine.containers.all():
            if rec["state"]["Running"] or rec["state"]["Status"] not in ("exited", "created", "dead"):
                continue
            labels = rec["spec"]["Config"].get("Labels") or {}
            if "label" in filters and not labels_match(labels, filters["label"]):
                continue
            if any(labels_match(labels, [v]) for v in filters.get("label!", [])):
                continue
            if until and not all(parse_time(rec["created"]) < t for t in until):
                continue
            from .system import container_sizes

            try:
                size_rw = container_sizes(engine, rec)[0]  # what its writable layer held, as dockerd counts
            except (OSError, DockyardError):
                size_rw = 0
            try:
                engine.containers.remove(rec["id"])
            except DockyardError:
                continue
            d.forget(rec["id"])
            d._emit_container(rec, "destroy")
            deleted.append(rec["id"])
            reclaimed += size_rw or 0
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}


def commit(d, req: Request) -> Reply:
    container = req.arg("container")
    if not container:
        raise InvalidArgument("container is required")
    repo, tag = req.arg("repo") or "", req.arg("tag") or ""
    reference = f"{repo}:{tag}" if repo and tag else (repo or None)
    req.json(required=False)  # a container config to apply: dockerd's -c changes come as "changes"
    changes = req.args("changes")
    with d.engines.get() as engine:
        image_id = engine.containers.commit(container, reference, changes, req.arg("comment") or "",
                                            req.arg("author") or "", req.bool("pause", True))
    d.events.emit("image", "commit", image_id, {})
    return Reply(201, {"Id": image_id})
