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


def _volumes(engine):  # noqa: ANN001, ANN202
    from ..engine.network.hooks import volumes

    return volumes(engine.containers)


def _networks(engine):  # noqa: ANN001, ANN202
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


def volume_list(d, req: Request) -> dict:  # noqa: ANN001
    with d.engines.get() as engine:
        return {"Volumes": _volumes(engine).list(req.filters()), "Warnings": None}


def volume_create(d, req: Request) -> Reply:  # noqa: ANN001
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


def volume_inspect(d, req: Request, name: str) -> dict:  # noqa: ANN001
    with d.engines.get() as engine:
        return _volumes(engine).inspect(name)


def volume_remove(d, req: Request, name: str) -> None:  # noqa: ANN001
    with d.engines.get() as engine:
        _volumes(engine).remove(name, force=req.bool("force"))
    d.events.emit("volume", "destroy", name, {"driver": "local"})


def volume_prune(d, req: Request) -> dict:  # noqa: ANN001
    filters = req.filters()
    # API 1.42 made prune keep named volumes unless ``all=true``; older clients expect them gone
    old_api = tuple(int(x) for x in req.version.split(".")) < (1, 42)
    with d.engines.get() as engine:
        deleted, space = _volumes(engine).prune(filters, all_=old_api)
    return {"VolumesDeleted": deleted or None, "SpaceReclaimed": space}


def network_list(d, req: Request) -> list:  # noqa: ANN001
    with d.engines.get() as engine:
        return _networks(engine).list(req.filters())


def network_create(d, req: Request) -> Reply:  # noqa: ANN001
    body = _body(req, {"Name", "CheckDuplicate", "Driver", "Scope", "Internal", "Attachable", "Ingress", "IPAM",
                       "EnableIPv4", "EnableIPv6", "Options", "Labels", "ConfigOnly", "ConfigFrom"})
    name = body.get("Name")
    if not name or not isinstance(name, str):
        raise InvalidArgument("network name is required")
    ipam = body.get("IPAM") or {}
    configs = ipam.get("Config") or [] if isinstance(ipam, dict) else []
    if len(configs) > 1:
        raise InvalidArgument("only one IPv4 subnet per network is supported")
    subnet = (configs[0].get("Subnet") or "") if configs else ""
    gateway = (configs[0].get("Gateway") or "") if configs else ""
    if configs and configs[0].get("IPRange"):
        raise InvalidArgument("IPRange is not supported")
    with d.engines.get() as engine:
        nid = _networks(engine).create(name, subnet, gateway, bool(body.get("Internal")),
                                       _strmap(body.get("Labels"), "Labels"), body.get("Driver") or "bridge",
                                       _strmap(body.get("Options"), "Options"))
    d.events.emit("network", "create", nid, {"name": name, "type": "bridge"})
    return Reply(201, {"Id": nid, "Warning": ""})


def network_inspect(d, req: Request, id: str) -> dict:  # noqa: ANN001, A002
    with d.engines.get() as engine:
        return _networks(engine).inspect(id)


def network_remove(d, req: Request, id: str) -> None:  # noqa: ANN001, A002
    with d.engines.get() as engine:
        nid = _networks(engine).remove(id)
    d.events.emit("network", "destroy", nid or id, {"name": id})


def network_prune(d, req: Request) -> dict:  # noqa: ANN001
    filters = req.filters()
    for key in filters:
        if key != "label":  # dockerd also knows until and label!; the engine does not (yet): refused, not ignored
            raise InvalidArgument(f"Invalid filter '{key}'")
    with d.engines.get() as engine:
        deleted = _networks(engine).prune(filters)
    return {"NetworksDeleted": deleted or None}


def network_connect(d, req: Request, id: str) -> None:  # noqa: ANN001, A002
    body = _body(req, {"Container", "EndpointConfig"})
    ep = body.get("EndpointConfig") or {}
    with d.engines.get() as engine:
        c = engine.containers
        rec = c.refresh(c.load(c.resolve(body.get("Container") or "")))
        _networks(engine).connect(rec, id, list(ep.get("Aliases") or []),
                                  ((ep.get("IPAMConfig") or {}).get("IPv4Address") or ""))
    d.events.emit("network", "connect", id, {"container": rec["id"]})


def network_disconnect(d, req: Request, id: str) -> None:  # noqa: ANN001, A002
    body = _body(req, {"Container", "Force"})
    with d.engines.get() as engine:
        c = engine.containers
        rec = c.refresh(c.load(c.resolve(body.get("Container") or "")))
        _networks(engine).disconnect(rec, id, bool(body.get("Force")))
    d.events.emit("network", "disconnect", id, {"container": rec["id"]})
