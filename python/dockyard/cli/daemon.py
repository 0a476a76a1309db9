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
@click.pass_context
def daemon(ctx, host, root, debug) -> None:  # noqa: ANN001
    """Run the dockyard daemon: the Docker Engine API on a unix socket.

    The socket is owned by root and the group 'dockyard' if it exists, mode 0660: only root
    and that group can use it.  The docker CLI and docker-py work against it
    (DOCKER_HOST=unix://PATH).  SIGTERM stops the daemon gracefully; containers keep running
    and a new daemon takes them over (live restore).  Logs go to stderr.
    """
    from ..daemon import serve

    path = None
    if host:
        path = host[len("unix://"):] if host.startswith("unix://") else ""
        if not path:
            raise click.BadParameter(f"{host!r}: only unix sockets are served (unix:///path/to/socket)",
                                     param_hint="'-H'")
    root = root or getattr(ctx.obj, "root", None)
    raise click.exceptions.Exit(serve(path, root, debug=debug))
