"""``/volumes`` and ``/networks``: thin wrappers over engine/volumes.py and engine/network/."""

from __future__ import annotations

from ..errors import InvalidArgument
from .http import Reply, Request, Router


def routes(r: Router) -> None:
    r.add("GET", "/volumes", volume_list)
    r.add("POST", "/volumes/create", volume_create)
    r.add("POST", "/volumes/prune", volume_prune)
    r.add("GET", "/volumes/{name}", volume_inspect)
    r.add("DELETE", "/volumes/{name}", volume_remove)
    r.add("GET", "/networks", network_list)
    r.add("POST", "/networks/create", network_create)
    r.add("POST", "/networks/prune", network_prune)
    r.add("GET", "/networks/{id}", network_inspect)
    r.add("DELETE", "/networks/{id}", network_remove)
    r.add("POST", "/networks/{id}/connect", network_connect)
    r.add("POST", "/networks/{id}/disconnect", network_disconnect)


def _volumes(engine):
    from ..engine.network.hooks import volumes

    return volumes(engine.containers)


def _networks(engine):
    from ..engine.network.hooks import networks

    return networks(engine.containers)


def _body(req: Request, fields: set[str]) -> dict:
    body = req.json(required=False) or {}
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON in request body: expected an object")
    for key in body:
        if key not in fields:
            raise InvalidArgument(f"json: unknown field {key!r}")
    return body


def _strmap(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"json: {what} must be an object of strings")
    return dict(value)


def volume_list(d, req: Request) -> dict:
    with d.engines.get() as engine:
        return {"Volumes": _volumes(engine).list(req.filters()), "Warnings": None}


def volume_create(d, req: Request) -> Reply:
    body = _body(req, {"Name", "Driver", "DriverOpts", "Labels", "ClusterVolumeSpec"})
    name = body.get("Name") or ""
    if not isinstance(name, str):
        raise InvalidArgument("json: Name must be a string")
    with d.engines.get() as engine:
        vols = _volumes(engine)
        name = vols.create(name, _strmap(body.get("Labels"), "Labels"), body.get("Driver") or "local",
                           _strmap(body.get("DriverOpts"), "DriverOpts"))
        info = vols.inspect(name)
    d.events.emit("volume", "create", name, {"driver": "local"})
    return Reply(201, info)


def volume_inspect(d, req: Request, name: str) -> dict:
    with d.engines.get() as engine:
        return _volumes(engine).inspect(name)


def volume_remove(d, req: Request, name: str) -> None:
    with d.engines.get() as engine:
        _volumes(engine).remove(name, force=req.bool("force"))
    d.events.emit("volume", "destroy", name, {"driver": "local"})


def volume_prune(d, req: Request) -> dict:
    filters = req.filters()
    # API 1.42 made prune keep named volumes unless ``all=true``; older clients expect them gone
    old_api = tuple(int(x) for x in req.version.split(".")) < (1, 42)
    with d.engines.get() as engine:
        deleted, space = _volumes(engine).prune(filters, all_=old_api)
    return {"VolumesDeleted": deleted or None, "SpaceReclaimed": space}


def network_list(d, req: Request) -> list:
    with d.engines.get() as engine:
        return _networks(engine).list(req.filters())


def _network_types():
    from .create import ENDPOINT, _B, _STR, _STRMAP, _list, _map, _struct

    pool = _struct("network.IPAMConfig", {"Subnet": _STR, "IPRange": _STR, "Gateway": _STR,
                                          "AuxiliaryAddresses": _map(_STR)})
    ipam = _struct("network.IPAM", {"Driver": _STR, "Options": _STRMAP, "Config": _list(pool)})
    create = _struct("types.NetworkCreateRequest", {
        "Name": _STR, "CheckDuplicate": _B, "Driver": _STR, "Scope": _STR, "EnableIPv6": _B, "IPAM": ipam,
        "Internal": _B, "Attachable": _B, "Ingress": _B, "ConfigOnly": _B, "Options": _STRMAP, "Labels": _STRMAP})
    connect = _struct("types.NetworkConnect", {"Container": _STR, "EndpointConfig": ENDPOINT})
    disconnect = _struct("types.NetworkDisconnect", {"Container": _STR, "Force": _B})
    return create, connect, disconnect


def _decode(req: Request, which: int) -> dict:
    from .create import go_decode

    body = req.json(required=False) or {}
    return go_decode(body, _network_types()[which]) or {}  # type: ignore[return-value]


def _endpoint(ep: dict) -> dict:
    """An API EndpointSettings (create's NetworkingConfig, connect's EndpointConfig) as the
    engine's endpoint options."""
    ipam = ep.get("IPAMConfig") or {}
    return {"ip6": ipam.get("IPv6Address") or "", "link_local": list(ipam.get("LinkLocalIPs") or []),
            "links": list(ep.get("Links") or []), "driver_opts": dict(ep.get("DriverOpts") or {}),
            "mac": ep.get("MacAddress") or ""}


def network_create(d, req: Request) -> Reply:
    body = _decode(req, 0)
    name = body.get("Name")
    if not name:
        raise InvalidArgument("network name is required")
    ipam = body.get("IPAM") or {}
    configs = [c or {} for c in ipam.get("Config") or []]
    with d.engines.get() as engine:
        nid = _networks(engine).create(name, internal=bool(body.get("Internal")), labels=body.get("Labels") or {},
                                       driver=body.get("Driver") or "bridge", options=body.get("Options") or {},
                                       configs=configs, ipv6=bool(body.get("EnableIPv6")),
                                       ipam_driver=ipam.get("Driver") or "default", ipam_options=ipam.get("Options"))
    d.events.emit("network", "create", nid, {"name": name, "type": "bridge"})
    return Reply(201, {"Id": nid, "Warning": ""})


def network_inspect(d, req: Request, id: str) -> dict:
    with d.engines.get() as engine:
        return _networks(engine).inspect(id)


def network_remove(d, req: Request, id: str) -> None:
    with d.engines.get() as engine:
        nid = _networks(engine).remove(id)
    d.events.emit("network", "destroy", nid or id, {"name": id})


def network_prune(d, req: Request) -> dict:
    filters = req.filters()
    for key in filters:
        if key != "label":  # dockerd also knows until and label!; the engine does not (yet): refused, not ignored
            raise InvalidArgument(f"Invalid filter '{key}'")
    with d.engines.get() as engine:
        deleted = _networks(engine).prune(filters)
    return {"NetworksDeleted": deleted or None}


def network_connect(d, req: Request, id: str) -> None:
    body = _decode(req, 1)
    ep = body.get("EndpointConfig") or {}
    with d.engines.get() as engine:
        c = engine.containers
        rec = c.refresh(c.load(c.resolve(body.get("Container") or "")))
        _networks(engine).connect(rec, id, list(ep.get("Aliases") or []),
                                  ((ep.get("IPAMConfig") or {}).get("IPv4Address") or ""), _endpoint(ep))
    d.events.emit("network", "connect", id, {"container": rec["id"]})


def network_disconnect(d, req: Request, id: str) -> None:
    from ..errors import NotFound

    body = _decode(req, 2)
    name = body.get("Container") or ""
    with d.engines.get() as engine:
        c = engine.containers
        try:
            rec = c.refresh(c.load(c.resolve(name)))
        except NotFound:
            if not body.get("Force"):
                raise
            _networks(engine).disconnect_gone(id, name)  # a container that is gone: its stale endpoint
            return
        _networks(engine).disconnect(rec, id, bool(body.get("Force")))
    d.events.emit("network", "disconnect", id, {"container": rec["id"]})
