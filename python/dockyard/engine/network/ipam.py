"""Address management: the pools networks take their subnets from, the check of a create
request's IPAM pools, and the address a container's endpoint gets (the one asked for, else its
previous one, else the first free).  Subnets in use on the host (its routes) are avoided."""

from __future__ import annotations

import ipaddress
import socket

from ...errors import Conflict, DockyardError, InvalidArgument, NotFound


class Forbidden(DockyardError):
    status = 403

# Address pools, walked lazily (building 4096 network objects up front costs ~0.1 s per run):
# default bridges get a /16 from 10.200-239, user networks a /24 from 10.240-255.
DEFAULT_POOL = ("10.{0}.0.0/16", range(200, 240), range(1))
USER_POOL = ("10.{0}.{1}.0/24", range(240, 256), range(256))
RESERVED = ["172.17.0.0/16", "10.88.0.0/16"]  # docker's and podman's defaults


def choose(net_name: str, subnet: str, gateway: str, pool: dict, want: str, prev: str, used: set):
    net = ipaddress.ip_network(subnet)
    gw = ipaddress.ip_address(gateway)
    taken = {str(gw)} | set((pool.get("AuxiliaryAddresses") or {}).values()) | used
    if want:
        if want in taken:
            raise Conflict(f"Address already in use: {want}")
        return ipaddress.ip_address(want)
    if prev and prev not in taken and ipaddress.ip_address(prev) in net:
        return ipaddress.ip_address(prev)  # (the subnet may have moved since)
    rng = ipaddress.ip_network(pool["IPRange"]) if pool.get("IPRange") else net
    ends = {net.network_address} | ({net.broadcast_address} if net.version == 4 else set())
    for host in (rng if rng != net else net.hosts()):
        if host not in ends and str(host) not in taken:
            return host
    raise DockyardError(f"no available IPv{net.version} addresses on network {net_name}")


def pool_config(cfg: dict) -> dict:
    """One IPAM pool of a create request, checked; ``_net`` and ``_family`` added."""
    sub = cfg.get("Subnet") or ""
    try:
        net = ipaddress.ip_network(sub, strict=False)
    except ValueError:
        raise InvalidArgument(f"Invalid subnet {sub} : invalid CIDR address: {sub}") from None
    fam = net.version
    if net.prefixlen > (30 if fam == 4 else 126):
        raise InvalidArgument(f"Invalid subnet {sub} : too small for any container")
    out: dict = {"Subnet": sub, "_net": net, "_family": fam}
    rng = cfg.get("IPRange") or ""
    if rng:
        try:
            r = ipaddress.ip_network(rng, strict=False)
        except ValueError:
            raise InvalidArgument(f"Invalid ip range {rng}: invalid CIDR address: {rng}") from None
        if r.version != fam or not r.subnet_of(net):  # (dockerd 20.10 took one outside and never used it)
            raise InvalidArgument(f"Invalid ip range {rng}: it is not within subnet {sub}")
        out["IPRange"] = rng
    gw = cfg.get("Gateway") or ""
    if gw:
        try:
            g = ipaddress.ip_address(gw)
        except ValueError:
            raise InvalidArgument(f"invalid gateway address: {gw}") from None
        if g.version != fam or g not in net or g == net.network_address or (fam == 4 and g == net.broadcast_address):
            err = InvalidArgument(f"no matching subnet for gateway {gw}")
            err.client_side = True  # docker's CLI checks this one itself
            raise err
        out["Gateway"] = gw
    aux = cfg.get("AuxiliaryAddresses") or {}
    for k, v in aux.items():
        try:
            a = ipaddress.ip_address(v)
        except ValueError:
            raise InvalidArgument(f"invalid auxiliary address {k}: {v}") from None
        if a.version != fam or a not in net:
            raise Forbidden(f"auxiliary address: ({k}:{v}) must belong to the master pool: {sub}")
    if aux:
        out["AuxiliaryAddresses"] = dict(aux)
    return out


def with_gateway(pool: dict) -> dict:
    """The pool in use: its subnet normalized, its gateway the first address unless given."""
    net = pool["_net"]
    return dict(pool, Subnet=str(net), Gateway=pool.get("Gateway") or str(net.network_address + 1))


def pick_from(pools: list[tuple[str, int]], taken: list, version: int = 6):
    """The first subnet of the daemon's --default-address-pool pools of that IP version that
    overlaps nothing taken."""
    for base, size in pools:
        try:
            b = ipaddress.ip_network(base, strict=False)
        except ValueError:
            continue
        if b.version != version or size < b.prefixlen:
            continue
        for cand in b.subnets(new_prefix=size):
            if not any(cand.overlaps(t) for t in taken if t.version == version) and (
                    version == 6 or not any(cand.overlaps(ipaddress.IPv4Network(r)) for r in RESERVED)):
                return cand
    raise NotFound(f"could not find an available, non-overlapping IPv{version} address pool among the defaults to "
                   "assign to the network")


def pick6(pools: list[tuple[str, int]], taken: list) -> ipaddress.IPv6Network:
    return pick_from(pools, taken, 6)


def pick(pool: tuple, taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    fmt, outer, inner = pool
    avoid = taken + [ipaddress.IPv4Network(r) for r in RESERVED]
    for a in outer:
        for b in inner:
            cand = ipaddress.IPv4Network(fmt.format(a, b))
            if not any(cand.overlaps(t) for t in avoid):
                return cand
    raise DockyardError("could not find an available, non-overlapping IPv4 address pool among the defaults to "
                        "assign to the network")


def host_routes(family: int = socket.AF_INET) -> list:
    from .netlink import Netlink

    try:
        with Netlink() as nl:
            return nl.routes(family)
    except OSError:
        return []
