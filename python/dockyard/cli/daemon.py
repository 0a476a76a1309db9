"""``dockyard daemon``: serve the Docker Engine API (see dockyard.daemon)."""

from __future__ import annotations

import os

import click

from . import CONTEXT


@click.command("daemon", context_settings=CONTEXT)
@click.option("-H", "--host", "host", default=None, metavar="unix://PATH",
              help="Socket to listen on (default unix://$DOCKYARD_RUN/dockyard.sock, "
                   "DOCKYARD_RUN defaults to /run/dockyard)")
@click.option("--root", default=None, metavar="DIR",
              help="Root of the store (default $DOCKYARD_ROOT or /var/lib/dockyard)")
@click.option("-D", "--debug", is_flag=True, help="Log every request")
@click.option("-l", "--log-level", "log_level", default=None,
              type=click.Choice(["debug", "info", "warn", "error", "fatal"]),
              help='The daemon\'s logging level (default "info"; "debug" is --debug)')
@click.option("--ipv6", is_flag=True, help="Enable IPv6 networking on the default bridge (with --fixed-cidr-v6)")
@click.option("--fixed-cidr-v6", default="", metavar="CIDR", help="IPv6 subnet of the default bridge")
@click.option("--default-address-pool", "pools", multiple=True, metavar="base=CIDR,size=N",
              help="Default address pools for user networks (an IPv6 base: the subnets of networks made with --ipv6)")
@click.option("--mtu", type=int, default=None, metavar="N",
              help="MTU of the default bridge's container interfaces (default 1500)")
@click.option("--bip", default=None, metavar="CIDR",
              help="The default bridge's address and subnet (e.g. 10.50.0.1/24; default: a free subnet)")
@click.option("--fixed-cidr", default=None, metavar="CIDR",
              help="The IPv4 addresses the default bridge gives containers (a part of its subnet)")
@click.option("--ip", "default_ip", default=None, metavar="IP",
              help="Default IP when binding container ports on the default bridge (default 0.0.0.0)")
@click.option("--icc", type=click.BOOL, default=None, metavar="BOOL",
              help="Enable inter-container communication on the default bridge (default true)")
@click.option("--dns", "dns", multiple=True, metavar="IP", help="DNS server for the containers")
@click.option("--dns-search", "dns_search", multiple=True, metavar="DOMAIN",
              help="DNS search domain for the containers")
@click.option("--dns-opt", "dns_opts", multiple=True, metavar="OPTION", help="DNS option for the containers")
@click.option("--registry-mirror", "mirrors", multiple=True, metavar="URL",
              help="A Docker Hub mirror pulls try first (http:// or https://)")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]|CIDR",
              help="A registry reached without TLS verification (then over plain HTTP)")
@click.option("--log-driver", default=None, metavar="DRIVER",
              help="Default driver for container logs (json-file, local or none; default json-file)")
@click.option("--log-opt", "log_opts", multiple=True, metavar="KEY=VALUE",
              help="Default log driver options for containers (max-size, max-file)")
@click.option("--default-shm-size", "shm_size", default=None, metavar="SIZE",
              help="Default size of a container's /dev/shm (default 64MiB)")
@click.option("--default-ulimit", "ulimits", multiple=True, metavar="NAME=SOFT[:HARD]",
              help="Default ulimits for containers (a container's own --ulimit of the same name wins)")
@click.option("--cgroup-parent", "cgroup_parent", default=None, metavar="PATH",
              help="Parent cgroup of the containers that set none of their own (default /dockyard; a relative "
                   "path is below the daemon's own cgroup)")
@click.option("--max-concurrent-downloads", "downloads", type=int, default=None, metavar="N",
              help="Layers pulled at once, each downloaded and extracted together (default 3; 0: no limit)")
@click.option("--userns-remap", "userns_remap", default="", metavar="default|USER[:GROUP]",
              help="Run containers in a user namespace: their root is the first of USER's subordinate ids "
                   "(/etc/subuid, /etc/subgid; 'default': the user dockremap, created when missing)")
@click.option("--config-file", default=None, metavar="PATH",
              help="dockerd's daemon.json: its settings for the flags above (default $DOCKYARD_DAEMON_CONFIG, or "
                   "/etc/dockyard/daemon.json when it exists)")
@click.pass_context
def daemon(ctx, config_file, **flags) -> None:
    """Run the dockyard daemon: the Docker Engine API on a unix socket.

    The socket is owned by root and the group 'dockyard' if it exists, mode 0660: only root
    and that group can use it.  The docker CLI and docker-py work against it
    (DOCKER_HOST=unix://PATH).  SIGTERM stops the daemon gracefully; containers keep running
    and a new daemon takes them over (live restore).  Logs go to stderr.
    """
    from types import SimpleNamespace

    from .. import rootless
    from ..daemon import serve

    config_file = config_file or _default_config()
    if config_file:
        flags.update(_config_file(ctx, config_file))  # (a setting in both is refused there)
        os.environ["DOCKYARD_DAEMON_CONFIG"] = os.path.abspath(config_file)  # (the registry client reads it)
    f = SimpleNamespace(**flags)
    path = None
    if f.host:
        path = f.host[len("unix://"):] if f.host.startswith("unix://") else ""
        if not path:
            raise click.BadParameter(f"{f.host!r}: only unix sockets are served (unix:///path/to/socket)",
                                     param_hint="'-H'")
    root = f.root or getattr(ctx.obj, "root", None)
    _network_settings(f.ipv6, f.fixed_cidr_v6, f.pools)
    _bridge_settings(f.mtu, f.bip, f.fixed_cidr, f.default_ip, f.icc)
    if f.log_driver or f.log_opts:
        _log_settings(f.log_driver or "json-file", f.log_opts)
    if f.dns or f.dns_search or f.dns_opts:
        _dns_settings(f.dns, f.dns_search, f.dns_opts)
    if f.shm_size or f.ulimits or f.cgroup_parent:
        _container_defaults(f.shm_size, f.ulimits, f.cgroup_parent)
    if f.mirrors or f.insecure:
        for url in f.mirrors:
            _check_mirror(url, "'--registry-mirror'")
        for name, values in (("DOCKYARD_REGISTRY_MIRRORS", f.mirrors), ("DOCKYARD_INSECURE_REGISTRIES", f.insecure)):
            if values:  # (registry/client.py reads them, with the config file's)
                os.environ[name] = " ".join([*os.environ.get(name, "").replace(",", " ").split(), *values])
    if f.downloads is not None:
        if f.downloads < 0:  # dockerd's words
            raise click.BadParameter(f"invalid max concurrent downloads: {f.downloads}",
                                     param_hint="'--max-concurrent-downloads'")

        os.environ["DOCKYARD_MAX_CONCURRENT_DOWNLOADS"] = str(f.downloads)  # registry/pull.py reads it
    if f.userns_remap and rootless.wanted():
        raise click.BadParameter("remapping is not supported in rootless mode (its containers are in the daemon's "
                                 "user namespace already)", param_hint="'--userns-remap'")
    if f.userns_remap:
        from ..engine import userns
        from ..errors import DockyardError

        try:
            os.environ[userns.ENV] = userns.resolve(f.userns_remap)  # engine/userns.py reads it
        except DockyardError as exc:
            raise click.BadParameter(str(exc), param_hint="'--userns-remap'") from None
    level = f.log_level or ""
    debug = f.debug or level == "debug"
    if rootless.wanted():  # an unprivileged user: the daemon in namespaces of its own
        if root:
            os.environ["DOCKYARD_ROOT"] = os.path.abspath(root)
        raise click.exceptions.Exit(rootless.run_daemon(lambda: serve(path, root, debug=debug, level=level), path))
    raise click.exceptions.Exit(serve(path, root, debug=debug, level=level))


def _bridge_settings(mtu: int | None, bip: str | None, fixed_cidr: str | None, default_ip: str | None,
                     icc: bool | None) -> None:
    """The default bridge's flags (--mtu, --bip, --fixed-cidr, --ip, --icc), checked, to the
    engine (engine/network/manager.py reads them)."""
    import ipaddress

    if mtu is not None:
        if mtu < 0:
            raise click.BadParameter(f"invalid MTU: {mtu}", param_hint="'--mtu'")
        os.environ["DOCKYARD_MTU"] = str(mtu or 1500)
    iface = None
    if bip:
        try:
            iface = ipaddress.IPv4Interface(bip)
        except ValueError:
            raise click.BadParameter(f"invalid CIDR address: {bip}", param_hint="'--bip'") from None
        if iface.network.prefixlen > 30 or iface.ip in (iface.network.network_address, iface.network.broadcast_address):
            raise click.BadParameter(f"{bip}: not a host address of a subnet with room for containers",
                                     param_hint="'--bip'")
        os.environ["DOCKYARD_BIP"] = str(iface)
    if fixed_cidr:
        try:
            rng = ipaddress.IPv4Network(fixed_cidr, strict=False)
        except ValueError:
            raise click.BadParameter(f"invalid CIDR address: {fixed_cidr}", param_hint="'--fixed-cidr'") from None
        if iface is not None and not rng.subnet_of(iface.network):
            raise click.BadParameter(f"{fixed_cidr} is not within the subnet of --bip {bip}", param_hint="'--fixed-cidr'")
        os.environ["DOCKYARD_FIXED_CIDR"] = str(rng)  # (without --bip, the manager checks it against the subnet)
    if default_ip is not None:
        try:
            os.environ["DOCKYARD_DEFAULT_IP"] = str(ipaddress.ip_address(default_ip))
        except ValueError:
            raise click.BadParameter(f"invalid IP address: {default_ip}", param_hint="'--ip'") from None
    if icc is not None:
        os.environ["DOCKYARD_ICC"] = "true" if icc else "false"


DEFAULT_CONFIG = "/etc/dockyard/daemon.json"

# daemon.json's keys (dockerd's names) for the flags: (parameter, the flag's name, its type)
CONFIG_KEYS = {
    "hosts": ("host", "-H", list), "data-root": ("root", "--root", str), "debug": ("debug", "--debug", bool),
    "log-level": ("log_level", "--log-level", str),
    "ipv6": ("ipv6", "--ipv6", bool), "fixed-cidr-v6": ("fixed_cidr_v6", "--fixed-cidr-v6", str),
    "default-address-pools": ("pools", "--default-address-pool", list), "mtu": ("mtu", "--mtu", int),
    "bip": ("bip", "--bip", str), "fixed-cidr": ("fixed_cidr", "--fixed-cidr", str),
    "ip": ("default_ip", "--ip", str), "icc": ("icc", "--icc", bool),
    "max-concurrent-downloads": ("downloads", "--max-concurrent-downloads", int),
    "userns-remap": ("userns_remap", "--userns-remap", str),
    "log-driver": ("log_driver", "--log-driver", str), "log-opts": ("log_opts", "--log-opt", dict),
    "dns": ("dns", "--dns", list), "dns-search": ("dns_search", "--dns-search", list),
    "dns-opts": ("dns_opts", "--dns-opt", list),
    "default-shm-size": ("shm_size", "--default-shm-size", str),
    "default-ulimits": ("ulimits", "--default-ulimit", dict),
    "cgroup-parent": ("cgroup_parent", "--cgroup-parent", str),
}
# read where they are used: insecure-registries by the registry client (registry/client.py),
# from this same file
READ_ELSEWHERE = {"insecure-registries": list, "registry-mirrors": list}
# dockerd's settings that dockyard has as it is: accepted with these values, refused with others
AS_DOCKYARD_IS = {"live-restore": True, "iptables": True, "ip-forward": True, "storage-driver": "overlay2",
                  "userland-proxy": True, "experimental": False}


def _default_config() -> str:
    """$DOCKYARD_DAEMON_CONFIG or /etc/dockyard/daemon.json, when it exists ("": none; only a
    --config-file that is not there is an error, as dockerd's)."""

    path = os.environ.get("DOCKYARD_DAEMON_CONFIG") or DEFAULT_CONFIG
    return path if os.path.exists(path) else ""


def _config_file(ctx: click.Context, path: str) -> dict:
    """The flags' values that ``path`` (dockerd's daemon.json format) gives, checked as dockerd
    checks them: a key that is also given as a flag, a key that is not a setting, or a value of
    the wrong type is an error naming it."""
    import json

    from click.core import ParameterSource

    try:
        with open(path, "rb") as f:
            data = json.loads(f.read() or b"{}")
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"unable to configure the daemon with file {path}: {exc}",
                                 param_hint="'--config-file'") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"unable to configure the daemon with file {path}: not a JSON object",
                                 param_hint="'--config-file'")
    unknown = sorted(k for k in data if k not in CONFIG_KEYS and k not in AS_DOCKYARD_IS and k not in READ_ELSEWHERE)
    if unknown:
        raise click.BadParameter(f"the following directives don't match any configuration option: "
                                 f"{', '.join(unknown)}", param_hint="'--config-file'")
    for key, value in data.items():
        if key in READ_ELSEWHERE and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise click.BadParameter(f"{key}: {json.dumps(value)} is not a list of strings", param_hint="'--config-file'")
        if key == "registry-mirrors":
            for url in value:
                _check_mirror(url, "'--config-file'")
        if key in AS_DOCKYARD_IS and value != AS_DOCKYARD_IS[key]:
            raise click.BadParameter(f"{key}: {json.dumps(value)} is not supported (dockyard has "
                                     f"{json.dumps(AS_DOCKYARD_IS[key])})", param_hint="'--config-file'")
    out: dict = {}
    both = []
    for key, value in data.items():
        if key not in CONFIG_KEYS or (key in ("hosts", "data-root") and os.environ.get("DOCKYARD_AUTOSTARTED")):
            continue  # (a daemon a CLI started: on that CLI's socket and root)
        param, flag, kind = CONFIG_KEYS[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            what = {int: "an integer", str: "a string", bool: "a boolean", list: "a list", dict: "an object"}[kind]
            raise click.BadParameter(f"{key}: {json.dumps(value)} is not {what}", param_hint="'--config-file'")
        if ctx.get_parameter_source(param) == ParameterSource.COMMANDLINE:
            both.append(f"{key}: (from flag: {ctx.params[param]}, from file: {json.dumps(value)})")
            continue
        if key == "hosts":
            if len(value) != 1 or not isinstance(value[0], str):
                raise click.BadParameter("hosts: one unix socket (unix:///path)", param_hint="'--config-file'")
            value = value[0]
        elif key == "log-opts":
            if not all(isinstance(v, str) for v in value.values()):
                raise click.BadParameter("log-opts: its values are strings", param_hint="'--config-file'")
            value = tuple(f"{k}={v}" for k, v in value.items())
        elif key == "log-level" and value not in ("debug", "info", "warn", "error", "fatal"):
            raise click.BadParameter(f'log-level: unable to parse logging level: {value}', param_hint="'--config-file'")
        elif key in ("dns", "dns-search", "dns-opts"):
            if not all(isinstance(v, str) for v in value):
                raise click.BadParameter(f"{key}: a list of strings", param_hint="'--config-file'")
            value = tuple(value)
        elif key == "default-ulimits":  # {"nofile": {"Name": "nofile", "Soft": N, "Hard": N}}, as dockerd's
            try:
                value = tuple(f"{u.get('Name') or name}={int(u['Soft'])}:{int(u['Hard'])}" for name, u in value.items())
            except (AttributeError, KeyError, TypeError, ValueError):
                raise click.BadParameter('default-ulimits: {"NAME": {"Name": "NAME", "Soft": N, "Hard": N}, ...}',
                                         param_hint="'--config-file'") from None
        elif key == "default-address-pools":
            try:
                value = tuple(f"base={p['base']},size={p['size']}" for p in value)
            except (TypeError, KeyError):
                raise click.BadParameter('default-address-pools: a list of {"base": CIDR, "size": N}',
                                         param_hint="'--config-file'") from None
        out[param] = value
    if both:
        raise click.BadParameter("the following directives are specified both as a flag and in the configuration "
                                 f"file: {', '.join(both)}", param_hint="'--config-file'")
    return out


def _check_mirror(url: str, hint: str) -> None:
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"invalid mirror: {url!r} is not an http:// or https:// URL", param_hint=hint)
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise click.BadParameter(f"invalid mirror: path, query, or fragment at end of the URI {url!r}", param_hint=hint)


def _dns_settings(dns: tuple, search: tuple, opts: tuple) -> None:
    """The daemon's DNS settings for containers, checked, to the engine (network/dns.py reads
    them)."""
    import ipaddress

    for server in dns:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise click.BadParameter(f"IP address is not correctly formatted: {server}", param_hint="'--dns'") from None
    for name, values in (("DOCKYARD_DNS", dns), ("DOCKYARD_DNS_SEARCH", search), ("DOCKYARD_DNS_OPTS", opts)):
        if any(not v or any(c.isspace() for c in v) for v in values):
            raise click.BadParameter(f"{' '.join(values)!r}: an empty value or one with a space",
                                     param_hint="'--" + name[9:].lower().replace("_", "-").replace("opts", "opt") + "'")
        if values:
            os.environ[name] = " ".join(values)


def _container_defaults(shm_size: str | None, ulimits: tuple, cgroup_parent: str | None) -> None:
    """The daemon's --default-shm-size, --default-ulimit and --cgroup-parent, checked, to the
    engine (which fills them into each create, or start, that does not set its own:
    engine/containers.py, engine/cgroupstats.py)."""
    if cgroup_parent:
        os.environ["DOCKYARD_CGROUP_PARENT"] = cgroup_parent
    from ..errors import DockyardError
    from ..units import parse_size

    if shm_size:
        try:
            size = parse_size(shm_size)
        except DockyardError as exc:
            raise click.BadParameter(str(exc), param_hint="'--default-shm-size'") from None
        if size <= 0:
            raise click.BadParameter(f"invalid size: '{shm_size}'", param_hint="'--default-shm-size'")
        os.environ["DOCKYARD_DEFAULT_SHM_SIZE"] = str(size)
    if ulimits:
        from ..engine.spec import parse_ulimit

        for u in ulimits:
            try:
                parse_ulimit(u)
            except DockyardError as exc:
                raise click.BadParameter(str(exc), param_hint="'--default-ulimit'") from None
        os.environ["DOCKYARD_DEFAULT_ULIMITS"] = " ".join(ulimits)


def _log_settings(driver: str, opts: tuple) -> None:
    """The daemon's default LogConfig, checked as a container's would be at create and start,
    to the engine (engine/containers.py reads it)."""
    import json

    from ..engine.containers import LOG_DRIVERS
    from ..engine.jsonlog import check_log_opts, rotation
    from ..errors import DockyardError

    config = {}
    for o in opts:
        key, eq, value = o.partition("=")
        if not eq:
            raise click.BadParameter(f"{o}: not KEY=VALUE", param_hint="'--log-opt'")
        config[key] = value
    if driver not in LOG_DRIVERS:
        raise click.BadParameter(f"the {driver} log driver is not supported by dockyard (it has "
                                 f"{', '.join(LOG_DRIVERS)})", param_hint="'--log-driver'")
    try:
        check_log_opts(driver, config)
        rotation(driver, config)
    except DockyardError as exc:
        raise click.BadParameter(str(exc), param_hint="'--log-opt'") from None
    os.environ["DOCKYARD_LOG_CONFIG"] = json.dumps({"Type": driver, "Config": config})


def _network_settings(ipv6: bool, fixed_cidr_v6: str, pools: tuple) -> None:
    """dockerd's IPv6 flags, checked, to the engine (engine/network/manager.py reads them)."""
    import ipaddress

    if fixed_cidr_v6:
        try:
            net = ipaddress.IPv6Network(fixed_cidr_v6, strict=False)
        except ValueError:
            raise click.BadParameter(f"invalid IPv6 subnet {fixed_cidr_v6!r}", param_hint="'--fixed-cidr-v6'") from None
        os.environ["DOCKYARD_FIXED_CIDR_V6"] = str(net)
    if ipv6:
        os.environ["DOCKYARD_IPV6"] = "1"
    items = []
    for p in pools:
        fields = dict(f.partition("=")[::2] for f in p.split(","))
        try:
            base = ipaddress.ip_network(fields.get("base", ""), strict=False)
            size = int(fields.get("size", ""))
        except ValueError:
            raise click.BadParameter(f"invalid address pool {p!r}", param_hint="'--default-address-pool'") from None
        if not base.prefixlen <= size <= base.max_prefixlen:
            raise click.BadParameter(f"{p!r}: size must be within {base.prefixlen}..{base.max_prefixlen}",
                                     param_hint="'--default-address-pool'")
        items.append(f"{base},{size}")
    if items:
        os.environ["DOCKYARD_ADDRESS_POOLS"] = " ".join(items)
