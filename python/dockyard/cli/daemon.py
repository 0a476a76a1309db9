"""``dockyard daemon``: serve the Docker Engine API (see dockyard.daemon)."""

from __future__ import annotations

import click

from . import CONTEXT


@click.command("daemon", context_settings=CONTEXT)
@click.option("-H", "--host", "host", default=None, metavar="unix://PATH",
              help="Socket to listen on (default unix://$DOCKYARD_RUN/dockyard.sock, "
                   "DOCKYARD_RUN defaults to /run/dockyard)")
@click.option("--root", default=None, metavar="DIR",
              help="Root of the store (default $DOCKYARD_ROOT or /var/lib/dockyard)")
@click.option("-D", "--debug", is_flag=True, help="Log every request")
@click.option("--ipv6", is_flag=True, help="Enable IPv6 networking on the default bridge (with --fixed-cidr-v6)")
@click.option("--fixed-cidr-v6", default="", metavar="CIDR", help="IPv6 subnet of the default bridge")
@click.option("--default-address-pool", "pools", multiple=True, metavar="base=CIDR,size=N",
              help="Default address pools for user networks (an IPv6 base: the subnets of networks made with --ipv6)")
@click.option("--mtu", type=int, default=None, metavar="N",
              help="MTU of the default bridge's container interfaces (default 1500)")
@click.option("--bip", default=None, metavar="CIDR",
              help="The default bridge's address and subnet (e.g. 10.50.0.1/24; default: a free subnet)")
@click.option("--ip", "default_ip", default=None, metavar="IP",
              help="Default IP when binding container ports on the default bridge (default 0.0.0.0)")
@click.option("--icc", type=click.BOOL, default=None, metavar="BOOL",
              help="Enable inter-container communication on the default bridge (default true)")
@click.option("--max-concurrent-downloads", "downloads", type=int, default=None, metavar="N",
              help="Layers pulled at once, each downloaded and extracted together (default 3; 0: no limit)")
@click.option("--userns-remap", "userns_remap", default="", metavar="default|USER[:GROUP]",
              help="Run containers in a user namespace: their root is the first of USER's subordinate ids "
                   "(/etc/subuid, /etc/subgid; 'default': the user dockremap, created when missing)")
@click.pass_context
def daemon(ctx, host, root, debug, ipv6, fixed_cidr_v6, pools, mtu, bip, default_ip, icc, downloads,
           userns_remap) -> None:
    """Run the dockyard daemon: the Docker Engine API on a unix socket.

    The socket is owned by root and the group 'dockyard' if it exists, mode 0660: only root
    and that group can use it.  The docker CLI and docker-py work against it
    (DOCKER_HOST=unix://PATH).  SIGTERM stops the daemon gracefully; containers keep running
    and a new daemon takes them over (live restore).  Logs go to stderr.
    """
    from .. import rootless
    from ..daemon import serve

    path = None
    if host:
        path = host[len("unix://"):] if host.startswith("unix://") else ""
        if not path:
            raise click.BadParameter(f"{host!r}: only unix sockets are served (unix:///path/to/socket)",
                                     param_hint="'-H'")
    root = root or getattr(ctx.obj, "root", None)
    _network_settings(ipv6, fixed_cidr_v6, pools)
    if mtu is not None:
        if mtu < 0:
            raise click.BadParameter(f"invalid MTU: {mtu}", param_hint="'--mtu'")
        import os

        os.environ["DOCKYARD_MTU"] = str(mtu or 1500)  # engine/network/manager.py reads it
    if bip:
        import ipaddress
        import os

        try:
            iface = ipaddress.IPv4Interface(bip)
        except ValueError:
            raise click.BadParameter(f"invalid CIDR address: {bip}", param_hint="'--bip'") from None
        if iface.network.prefixlen > 30 or iface.ip in (iface.network.network_address, iface.network.broadcast_address):
            raise click.BadParameter(f"{bip}: not a host address of a subnet with room for containers",
                                     param_hint="'--bip'")
        os.environ["DOCKYARD_BIP"] = str(iface)  # (the manager reads it)
    if default_ip is not None:
        import ipaddress
        import os

        try:
            os.environ["DOCKYARD_DEFAULT_IP"] = str(ipaddress.ip_address(default_ip))  # (the manager reads it)
        except ValueError:
            raise click.BadParameter(f"invalid IP address: {default_ip}", param_hint="'--ip'") from None
    if icc is not None:
        import os

        os.environ["DOCKYARD_ICC"] = "true" if icc else "false"  # (the manager reads it)
    if downloads is not None:
        if downloads < 0:  # dockerd's words
            raise click.BadParameter(f"invalid max concurrent downloads: {downloads}",
                                     param_hint="'--max-concurrent-downloads'")
        import os

        os.environ["DOCKYARD_MAX_CONCURRENT_DOWNLOADS"] = str(downloads)  # registry/pull.py reads it
    if userns_remap and rootless.wanted():
        raise click.BadParameter("remapping is not supported in rootless mode (its containers are in the daemon's "
                                 "user namespace already)", param_hint="'--userns-remap'")
    if userns_remap:
        import os

        from ..engine import userns
        from ..errors import DockyardError

        try:
            os.environ[userns.ENV] = userns.resolve(userns_remap)  # engine/userns.py reads it
        except DockyardError as exc:
            raise click.BadParameter(str(exc), param_hint="'--userns-remap'") from None
    if rootless.wanted():  # an unprivileged user: the daemon in namespaces of its own
        if root:
            import os

            os.environ["DOCKYARD_ROOT"] = os.path.abspath(root)
        raise click.exceptions.Exit(rootless.run_daemon(lambda: serve(path, root, debug=debug), path))
    raise click.exceptions.Exit(serve(path, root, debug=debug))


def _network_settings(ipv6: bool, fixed_cidr_v6: str, pools: tuple) -> None:
    """dockerd's IPv6 flags, checked, to the engine (engine/network/manager.py reads them)."""
    import ipaddress
    import os

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
