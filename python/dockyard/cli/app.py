"""The click application: the ``dockyard`` group, loading each subcommand's module on use."""

from __future__ import annotations

import click

from . import COMMANDS, CONTEXT, Session


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        import importlib

        return getattr(importlib.import_module(spec[0]), spec[1])

    def resolve_command(self, ctx, args):
        name = args[0] if args else ""
        cmd = self.get_command(ctx, name)
        if cmd is None and name and not name.startswith("-"):
            raise UnknownCommand(name)
        return super().resolve_command(ctx, args)


class UnknownCommand(Exception):
    pass


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(None, "-v", "--version", package_name="dockyard",
                      message="dockyard version %(version)s")
@click.option("-H", "--host", default=None, metavar="unix://PATH",
              help="Daemon socket to connect to (default $DOCKYARD_HOST, else "
                   "unix://$DOCKYARD_RUN/dockyard.sock, started on demand for root).")
@click.option("--root", envvar="DOCKYARD_ROOT", default=None, metavar="DIR",
              help="Root of dockyard's state (default /var/lib/dockyard, or $DOCKYARD_ROOT).")
@click.pass_context
def cli(ctx: click.Context, host: str | None, root: str | None) -> None:
    """A container engine in the Docker mould: same commands, same flags, same image formats."""
    session = ctx.ensure_object(Session)
    session.root = root or session.root
    session.host = host or session.host


