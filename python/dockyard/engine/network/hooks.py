"""Where the container engine calls into volumes and networks (see engine/containers.py).

Each hook takes the :class:`~dockyard.engine.containers.Containers` instance and a container
record, so containers.py only holds one call per step:

    create   on_create (validate, Docker-shaped HostConfig) and on_insert (make volumes, endpoints)
    start    on_start (namespace, veth, address, ports, mounts, link env) and etc_files
    exit     on_stop (everything the start made, address released)
    rm       on_remove (endpoints; anonymous volumes with -v or --rm)
    inspect  mounts, network_settings
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from ...errors import InvalidArgument


def networks(containers):
    net = getattr(containers, "_dy_networks", None)
    if net is None:
        from . import Networks

        net = Networks(containers.store)
        containers._dy_networks = net
    return net


def volumes(containers):
    vol = getattr(containers, "_dy_volumes", None)
    if vol is None:
        from ..volumes import Volumes

        vol = Volumes(containers.store)
        containers._dy_volumes = vol
    return vol


def on_create(containers, opts, image_cfg: dict) -> tuple[dict, dict, dict]:
    """Validate the mount and network options; returns (Config, HostConfig, spec) additions.
    Nothing is made here: a bad value changes nothing."""
    from ..containers import config_volumes
    from .syntax import parse_link, parse_publish

    def spec_of(ref: str) -> list[dict]:
        cid = containers.resolve(ref)
        return json.loads(containers.store.db.execute("SELECT spec FROM containers WHERE id=?", (cid,)).fetchone()[0]
                          ).get("_Mounts") or []

    points, tmpfs = volumes(containers).resolve_mounts(
        list(getattr(opts, "volumes", []) or []), list(getattr(opts, "mounts", []) or []),
        list(getattr(opts, "tmpfs", []) or []), list(getattr(opts, "volumes_from", []) or []),
        config_volumes(image_cfg, opts), spec_of)
    mode = opts.network or "default"
    links = [parse_link(v) for v in getattr(opts, "links", []) or []]
    user_net = mode not in ("default", "bridge", "host", "none") and not mode.startswith("container:")
    for target, _ in links if not user_net else []:  # on a user network a link is a DNS alias, resolved late
        try:
            containers.resolve(target)
        except Exception:
            raise InvalidArgument(f"could not get container for {target}: No such container: {target}") from None

    def resolve_container(ref: str) -> str:
        return containers.resolve(ref)

    plan = networks(containers).plan(mode, list(getattr(opts, "network_aliases", []) or []),
                                     getattr(opts, "ip", "") or "", [t for t, _ in links], resolve_container,
                                     getattr(opts, "endpoint", None))
    bindings = []
    for p in getattr(opts, "publish", []) or []:
        bindings += parse_publish(p)
    if plan["mode"].startswith("container:") and (bindings or getattr(opts, "publish_all", False)):
        raise InvalidArgument("conflicting options: port publishing and the container type network mode")
    for h in getattr(opts, "add_host", []) or []:
        name, sep, ip = h.partition(":")
        if not sep or not name:
            raise InvalidArgument(f"invalid argument \"{h}\" for \"--add-host\" flag: bad format for add-host: \"{h}\"")
        try:
            if ip != "host-gateway":  # dockerd's name for the host's address on the default bridge
                ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid argument \"{h}\" for \"--add-host\" flag: invalid IP address in add-host: \"{ip}\"") from None
    for d in getattr(opts, "dns", []) or []:
        try:
            ipaddress.ip_address(d)
        except ValueError:
            raise InvalidArgument(f"invalid argument \"{d}\" for \"--dns\" flag: {d} is not an ip address") from None
    exposed = dict(image_cfg.get("ExposedPorts") or {})
    port_bindings: dict[str, list] = {}
    for b in bindings:
        key = f"{b['port']}/{b['proto']}"
        exposed.setdefault(key, {})
        port_bindings.setdefault(key, []).append({"HostIp": b["host_ip"], "HostPort": b["host_port"]})
    for e in getattr(opts, "expose", []) or []:
        if ":" in e:
            raise InvalidArgument(f"invalid range format for --expose: {e}, error: Invalid containerPort: {e}")
        for b in parse_publish(e):
            exposed.setdefault(f"{b['port']}/{b['proto']}", {})
    config = {"ExposedPorts": exposed} if exposed else {}
    mac = (getattr(opts, "endpoint", None) or {}).get("mac")
    if mac:
        config["MacAddress"] = mac
    host = {
        "Binds": list(getattr(opts, "volumes", []) or []) or None,
        "NetworkMode": plan["mode"],
        "PortBindings": port_bindings,
        "PublishAllPorts": bool(getattr(opts, "publish_all", False)),
        "Links": [f"/{t}:{a}" for t, a in links] or None,
        "VolumesFrom": list(getattr(opts, "volumes_from", []) or []) or None,
        "Dns": list(getattr(opts, "dns", []) or []),
        "DnsOptions": list(getattr(opts, "dns_option", []) or []),
        "DnsSearch": list(getattr(opts, "dns_search", []) or []),
        "ExtraHosts": list(getattr(opts, "add_host", []) or []) or None,
    }
    if tmpfs:
        host["Tmpfs"] = tmpfs
    mounts_flag = [{"Type": m["Type"], "Source": m.get("Name") or m.get("Source", ""), "Target": m["Destination"],
                    **({"ReadOnly": True} if not m["RW"] else {})}
                   for m in points if m.get("_from_flag")]
    if mounts_flag:
        host["Mounts"] = mounts_flag
    spec = {"_Mounts": points, "_Networks": plan["networks"], "_Ports": bindings}
    return config, host, spec


def on_insert(containers, db, cid: str, name: str, spec: dict) -> None:
    """Inside the transaction that inserts the container: create its volumes and endpoints."""
    vols = volumes(containers)
    for mp in spec.get("_Mounts") or []:
        if mp["Type"] != "volume":
            continue
        if not mp["Name"]:
            from ..names import new_id

            mp["Name"] = new_id()
            mp["_anonymous"] = True
        if db.execute("SELECT 1 FROM volumes WHERE name=?", (mp["Name"],)).fetchone() is None:
            from ..images import now_rfc3339

            vols.path(mp["Name"]).mkdir(parents=True, exist_ok=True)
            db.execute("INSERT INTO volumes (name, created, labels, anonymous) VALUES (?,?,?,?)",
                       (mp["Name"], now_rfc3339(), "{}", int(bool(mp.get("_anonymous")))))
        mp["Source"] = str(vols.path(mp["Name"]))
    host = spec["HostConfig"]
    if host.get("Links"):
        host["Links"] = [f"{l.split(':')[0]}:/{name}/{l.split(':', 1)[1]}" for l in host["Links"]]
    networks(containers).add_endpoints(db, cid, spec.get("_Networks") or [])


def on_start(containers, rec: dict, rootfs: Path) -> dict:
    """Before the runtime runs: the network namespace (a path; None: the host's; "": a new one the
    runtime makes), the volume and tmpfs mounts, and the link variables."""
    spec = rec["spec"]
    host = spec["HostConfig"]
    mode = host.get("NetworkMode") or "default"
    net = networks(containers)
    links = host.get("Links") or []
    env = net.link_env(rec, links) if links else []
    from .manager import wanted_ports

    ports = wanted_ports(spec)
    path = net.setup(rec, mode, ports)
    try:
        mounts = volumes(containers).oci_mounts(spec.get("_Mounts") or [], host.get("Tmpfs") or {}, rootfs)
        if ports or net.needs_dns(rec["id"]):
            net.notify_dns()  # the helper: DNS sockets, loopback proxy listeners (an error if a port is taken)
        _update_linkers(containers, rec)
    except BaseException:
        net.teardown(rec["id"])
        raise
    return {"netns": path, "mounts": mounts, "env": env}


def _update_linkers(containers, rec: dict) -> None:
    """Docker: a linked container's restart updates the /etc/hosts of those linking to it."""
    net = networks(containers)
    for other in net.linked_from(rec["name"]):
        try:
            orec = containers.load(other)
            d = containers.dir(other)
            hosts = d / "hosts"
            text = net.hosts_file(orec, orec["spec"]["HostConfig"].get("NetworkMode") or "default",
                                  orec["spec"]["HostConfig"].get("ExtraHosts") or [],
                                  orec["spec"]["HostConfig"].get("Links") or [])
            with open(hosts, "r+") as f:  # in place: the container sees it through its bind mount
                f.write(text)
                f.truncate()
        except (OSError, ValueError):
            pass


def etc_files(containers, rec: dict, hosts: str, resolv: str) -> tuple[str, str]:
    """/etc/hosts and /etc/resolv.conf contents for a starting container."""
    host = rec["spec"]["HostConfig"]
    mode = host.get("NetworkMode") or "default"
    net = networks(containers)
    if mode.startswith("container:"):
        other = containers.dir(mode.split(":", 1)[1])
        try:
            return (other / "hosts").read_text(), (other / "resolv.conf").read_text()
        except OSError:
            return hosts, resolv
    base = resolv
    if mode == "host":
        try:
            base = Path("/etc/resolv.conf").read_text()
        except OSError:
            pass
    from .dns import daemon_dns, resolv_conf

    dns, search, options = daemon_dns()  # (the daemon's, for what the container does not set)
    return (net.hosts_file(rec, mode, host.get("ExtraHosts") or [], host.get("Links") or []),
            resolv_conf(mode, host.get("Dns") or dns, host.get("DnsSearch") or search,
                        host.get("DnsOptions") or options, base,
                        embedded=mode in ("default", "bridge") and net.needs_dns(rec["id"])))


def on_stop(containers, cid: str) -> None:
    net = networks(containers)
    eps = net.endpoints(cid)
    dns = any(ep["net_name"] != "bridge" or ep["ports"] != "[]" for ep in eps)
    net.teardown(cid, eps=eps)
    if dns:
        from . import dns as dns_mod

        dns_mod.sync(containers.store.root, spawn=False, timeout=1.0)


def on_remove(containers, rec: dict, remove_volumes: bool) -> None:
    networks(containers).forget(rec["id"])
    auto = rec["spec"]["HostConfig"].get("AutoRemove")
    volumes(containers).release(rec["spec"].get("_Mounts") or [], remove_volumes or bool(auto))


def mounts(rec: dict) -> list[dict]:
    from ..volumes import public_mounts

    return public_mounts(rec["spec"].get("_Mounts") or [])


def network_settings(containers, rec: dict) -> dict:
    return networks(containers).settings(rec)


def ports(containers, rec: dict) -> dict:
    return network_settings(containers, rec)["Ports"]


def ps_columns(containers, rec: dict) -> dict:
    """``ps``'s Ports ("0.0.0.0:8080->80/tcp, 81/tcp"), Networks and Mounts columns."""
    net = networks(containers)
    ports = []
    if rec["state"].get("Running"):
        for key, bindings in sorted(net.settings(rec)["Ports"].items(),
                                    key=lambda kv: (int(kv[0].split("/")[0]), kv[0])):
            if bindings:
                ports += [(f"[{b['HostIp']}]" if ":" in b["HostIp"] else b["HostIp"]) + f":{b['HostPort']}->{key}"
                          for b in bindings]
            else:
                ports.append(key)
    mode = rec["spec"]["HostConfig"].get("NetworkMode") or "default"
    names = [ep["net_name"] for ep in net.endpoints(rec["id"])] or ([mode] if mode in ("host", "none") else [])
    mounts = [m.get("Name") or m.get("Source", "") for m in rec["spec"].get("_Mounts") or []]
    return {"Ports": ", ".join(ports), "Networks": ",".join(names), "Mounts": ",".join(mounts)}
