"""``network create|ls|inspect|rm|connect|disconnect|prune`` and ``port``: requests to the
daemon's ``/networks`` routes and ``GET /containers/{id}/json``."""

from __future__ import annotations

import click

from . import CONTEXT, pass_session
from .output import echo, fail_if, parse_filters, print_inspect, print_rows

# The bridge driver's options dockyard implements (anything else is refused, not ignored).
BRIDGE_OPTIONS = ("com.docker.network.bridge.enable_icc", "com.docker.network.bridge.enable_ip_masquerade",
                  "com.docker.network.bridge.host_binding_ipv4", "com.docker.network.bridge.name",
                  "com.docker.network.driver.mtu")


def _path(ref: str, suffix: str = "") -> str:
    from ..client import quote

    return "/networks/" + quote(ref, safe="") + suffix


def _consolidate_ipam(subnets: tuple, ranges: tuple, gateways: tuple, aux: tuple) -> list[dict]:
    """docker's CLI ``consolidateIpam``: each --ip-range, --gateway and --aux-address goes to the
    --subnet that contains it; values that do not parse are left for the daemon to report."""
    import ipaddress

    from ..errors import InvalidArgument

    def fail(msg: str) -> None:
        err = InvalidArgument(msg)
        err.client_side = True
        raise err

    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        fail("every ip-range or gateway must have a corresponding subnet")
    configs = [{"Subnet": s} for s in subnets]
    nets = []
    for s in subnets:
        try:
            nets.append(ipaddress.ip_network(s, strict=False))
        except ValueError:
            nets.append(None)

    def owner(value: str, what: str) -> dict | None:
        try:
            addr = ipaddress.ip_network(value, strict=False) if what == "range" else ipaddress.ip_address(value)
        except ValueError:
            return configs[0] if configs else None
        for cfg, net in zip(configs, nets):
            if net is not None and net.version == addr.version and (
                    addr.subnet_of(net) if what == "range" else addr in net):
                return cfg
        fail(f"no matching subnet for {'range' if what == 'range' else 'gateway' if what == 'gateway' else 'aux-address'} {value}")
        return None

    for r in ranges:
        cfg = owner(r, "range")
        if cfg is not None:
            if cfg.get("IPRange"):
                fail(f"cannot configure multiple ranges ({r}, {cfg['IPRange']}) on the same subnet ({cfg['Subnet']})")
            cfg["IPRange"] = r
    for g in gateways:
        cfg = owner(g, "gateway")
        if cfg is not None:
            if cfg.get("Gateway"):
                fail(f"cannot configure multiple gateways ({g}, {cfg['Gateway']}) for the same subnet ({cfg['Subnet']})")
            cfg["Gateway"] = g
    for a in aux:
        key, _, value = a.partition("=")
        cfg = owner(value, "aux")
        if cfg is not None:
            cfg.setdefault("AuxiliaryAddresses", {})[key] = value
    return configs


@click.group("network", context_settings=CONTEXT)
def network_group() -> None:
    """Manage networks."""


@network_group.command("create", context_settings=CONTEXT)
@click.argument("name")
@click.option("-d", "--driver", default="bridge", help="Driver to manage the Network")
@click.option("--subnet", multiple=True, help="Subnet in CIDR format that represents a network segment")
@click.option("--gateway", multiple=True, help="IPv4 or IPv6 Gateway for the master subnet")
@click.option("--ip-range", multiple=True, help="Allocate container ip from a sub-range")
@click.option("--aux-address", multiple=True, help="Auxiliary IPv4 or IPv6 addresses used by Network driver")
@click.option("--ipam-driver", default="default", help="IP Address Management Driver")
@click.option("--ipam-opt", multiple=True, help="Set IPAM driver specific options")
@click.option("--ipv6", is_flag=True, help="Enable IPv6 networking")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("--label", multiple=True, help="Set metadata on a network")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options")
@pass_session
def create(session, name, driver, subnet, gateway, ip_range, aux_address, ipam_driver, ipam_opt, ipv6, internal,
           label, opt):
    """Create a network."""
    from ..errors import InvalidArgument

    labels = {k: v for k, _, v in (l.partition("=") for l in label)}
    options = {k: v for k, _, v in (o.partition("=") for o in opt)}
    for key in options:
        if key not in BRIDGE_OPTIONS:
            raise InvalidArgument(f"unsupported network option {key!r} (supported: {', '.join(BRIDGE_OPTIONS)})")
    body = {"Name": name, "Driver": driver, "Internal": internal, "Labels": labels, "Options": options,
            "EnableIPv6": ipv6,
            "IPAM": {"Driver": ipam_driver, "Config": _consolidate_ipam(subnet, ip_range, gateway, aux_address),
                     "Options": {k: v for k, _, v in (o.partition("=") for o in ipam_opt)}}}
    echo(session.api.json("POST", "/networks/create", None, body)["Id"] + "\n")


@network_group.command("ls", context_settings=CONTEXT)
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'driver=bridge')")
@click.option("--format", "fmt", default=None, help="Pretty-print networks using a Go template")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@pass_session
def ls(session, quiet, filters, fmt, no_trunc):
    """List networks."""
    rows = []
    for n in sorted(session.api.json("GET", "/networks", {"filters": parse_filters(filters) or None}) or [],
                    key=lambda n: n["Name"]):
        labels = n.get("Labels") or {}
        rows.append({"ID": n["Id"] if no_trunc else n["Id"][:12], "Name": n["Name"], "Driver": n["Driver"],
                     "Scope": n["Scope"], "IPv6": str(bool(n.get("EnableIPv6"))).lower(),
                     "Internal": str(bool(n.get("Internal"))).lower(),
                     "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())), "CreatedAt": n["Created"]})
    print_rows(rows, fmt, "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
               {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
                "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"},
               quiet_field="ID", quiet=quiet)


network_group.add_command(ls, "list")


@network_group.command("inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None, help="Format the output using the given Go template")
@click.option("-v", "--verbose", is_flag=True, help="Verbose output for diagnostics")
@pass_session
def inspect(session, names, fmt, verbose):
    """Display detailed information on one or more networks."""
    from ..errors import NotFound

    nets, errors = [], []
    for n in names:
        try:
            nets.append(session.api.json("GET", _path(n), {"verbose": verbose or None}))
        except NotFound as exc:
            errors.append(f"Error response from daemon: {exc}")
    print_inspect(nets, fmt)
    fail_if(errors)


@network_group.command("rm", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist")
@pass_session
def rm(session, names, force):
    """Remove one or more networks."""
    from ..errors import DockyardError, NotFound

    errors = []
    for n in names:
        try:
            session.api.json("DELETE", _path(n))
            echo(n + "\n")
        except NotFound as exc:
            if not force:
                errors.append(f"Error response from daemon: {exc}")
        except DockyardError as exc:
            errors.append(f"Error response from daemon: {exc}")
    fail_if(errors)


network_group.add_command(rm, "remove")


@network_group.command("prune", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<label>')")
@pass_session
def prune(session, force, filters):
    """Remove all unused networks."""
    from .output import confirm

    parsed = parse_filters(filters)
    if not confirm("WARNING! This will remove all custom networks not used by at least one container.\n"
                   "Are you sure you want to continue?", force):
        return
    deleted = session.api.json("POST", "/networks/prune", {"filters": parsed or None}).get("NetworksDeleted") or []
    if deleted:
        echo("Deleted Networks:\n" + "".join(n + "\n" for n in deleted))


@network_group.command("connect", context_settings=CONTEXT)
@click.argument("network")
@click.argument("container")
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container")
@click.option("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
@click.option("--ip6", default="", help="IPv6 address (e.g., 2001:db8::33)")
@click.option("--link", multiple=True, help="Add link to another container")
@click.option("--link-local-ip", multiple=True, help="Add a link-local address for the container")
@click.option("--driver-opt", multiple=True, help="driver options for the network")
@pass_session
def connect(session, network, container, alias, ip, ip6, link, link_local_ip, driver_opt):
    """Connect a container to a network."""
    ipam = {k: v for k, v in (("IPv4Address", ip), ("IPv6Address", ip6), ("LinkLocalIPs", list(link_local_ip)))
            if v}
    endpoint = {"Aliases": list(alias) or None, "IPAMConfig": ipam or None, "Links": list(link) or None,
                "DriverOpts": {k: v for k, _, v in (o.partition("=") for o in driver_opt)} or None}
    session.api.json("POST", _path(network, "/connect"), None, {"Container": container, "EndpointConfig": endpoint})


@network_group.command("disconnect", context_settings=CONTEXT)
@click.argument("network")
@click.argument("container")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@pass_session
def disconnect(session, network, container, force):
    """Disconnect a container from a network."""
    session.api.json("POST", _path(network, "/disconnect"), None, {"Container": container, "Force": force})


@click.command("port", context_settings=CONTEXT)
@click.argument("container")
@click.argument("private_port", required=False, default="")
@pass_session
def port(session, container, private_port):
    """List port mappings or a specific mapping for the container."""
    from ..client import quote
    from ..errors import NotFound

    info = session.api.json("GET", f"/containers/{quote(container, safe='')}/json")
    mapping = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if private_port:
        num, _, proto = private_port.partition("/")
        key = f"{num}/{proto or 'tcp'}"
        found = mapping.get(key)
        if not found:
            err = NotFound(f"Error: No public port '{private_port}' published for {container}")
            err.client_side = True  # docker's CLI says it itself
            raise err
        echo("".join(f"{_host_port(b)}\n" for b in found))
        return
    lines = []
    for key in sorted(mapping, key=lambda k: (int(k.split("/")[0]), k)):
        for b in mapping[key] or []:
            lines.append(f"{key} -> {_host_port(b)}\n")
    echo("".join(lines))


def _host_port(b: dict) -> str:
    """docker's ``port``: an IPv6 host address in brackets ([::]:8080)."""
    ip = b["HostIp"]
    return f"[{ip}]:{b['HostPort']}" if ":" in ip else f"{ip}:{b['HostPort']}"
