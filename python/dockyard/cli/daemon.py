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
def daemon(host, root, debug) -> None:  # noqa: ANN001
    """Run the dockyard daemon: the Docker Engine API on a unix socket.

    The socket is owned by root and the group 'dockyard' if it exists, mode 0660: only root
    and that group can use it.  The docker CLI and docker-py work against it
    (DOCKER_HOST=unix://PATH).  SIGTERM stops the daemon gracefully; containers keep running
    and a new daemon takes them over (live restore).  Logs go to stderr.
    """
    from ..daemon import serve
    from ..errors import InvalidArgument

    path = None
    if host:
        if not host.startswith("unix://"):
            raise InvalidArgument(f"only unix sockets are supported: {host!r} (use unix:///path)")
        path = host[len("unix://"):]
        if not path:
            raise InvalidArgument("empty socket path")
    raise click.exceptions.Exit(serve(path, root, debug=debug))
