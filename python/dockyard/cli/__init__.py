"""The ``dockyard`` command: Docker's verbs and flags.

Start-up matters (every ``dockyard run`` pays it), so subcommands are imported only when they
are called, and the engine only when a command needs it.  Errors become one line on stderr and
Docker's exit codes in :func:`main`; a traceback in front of a user is a bug.
"""

from __future__ import annotations

import os
import sys

# command name -> (module, attribute); modules load only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "image": ("dockyard.cli.images", "image_group"),
    "images": ("dockyard.cli.images", "images"),
    "import": ("dockyard.cli.images", "import_"),
    "load": ("dockyard.cli.images", "load"),
    "save": ("dockyard.cli.images", "save"),
    "tag": ("dockyard.cli.images", "tag"),
    "rmi": ("dockyard.cli.images", "rmi"),
    "history": ("dockyard.cli.images", "history"),
    "inspect": ("dockyard.cli.images", "inspect"),
    "system": ("dockyard.cli.system", "system_group"),
    "container": ("dockyard.cli.containers", "container_group"),
    "run": ("dockyard.cli.containers", "run"),
    "create": ("dockyard.cli.containers", "create"),
    "start": ("dockyard.cli.containers", "start"),
    "stop": ("dockyard.cli.containers", "stop"),
    "restart": ("dockyard.cli.containers", "restart"),
    "kill": ("dockyard.cli.containers", "kill"),
    "wait": ("dockyard.cli.containers", "wait"),
    "rm": ("dockyard.cli.containers", "rm"),
    "rename": ("dockyard.cli.containers", "rename"),
    "update": ("dockyard.cli.containers", "update"),
    "pause": ("dockyard.cli.containers", "pause"),
    "unpause": ("dockyard.cli.containers", "unpause"),
    "ps": ("dockyard.cli.containers", "ps"),
    "logs": ("dockyard.cli.containers", "logs"),
    "commit": ("dockyard.cli.containers", "commit"),
    "diff": ("dockyard.cli.containers", "diff"),
    "export": ("dockyard.cli.containers", "export"),
    "exec": ("dockyard.cli.containers", "exec_"),
    "attach": ("dockyard.cli.containers", "attach"),
    "top": ("dockyard.cli.containers", "top"),
    "stats": ("dockyard.cli.containers", "stats"),
    "cp": ("dockyard.cli.containers", "cp"),
    "version": ("dockyard.cli.system", "version"),
    "info": ("dockyard.cli.system", "system_info"),
    "events": ("dockyard.cli.system", "system_events"),
    "volume": ("dockyard.cli.volumes", "volume_group"),
    "network": ("dockyard.cli.networks", "network_group"),
    "port": ("dockyard.cli.networks", "port"),
    "build": ("dockyard.cli.build", "build"),
    "pull": ("dockyard.cli.registry", "pull"),
    "push": ("dockyard.cli.registry", "push"),
    "login": ("dockyard.cli.registry", "login"),
    "logout": ("dockyard.cli.registry", "logout"),
    "registry": ("dockyard.cli.registry", "registry_group"),
    "daemon": ("dockyard.cli.daemon", "daemon"),
}

from .fast import FAST  # noqa: E402  (click-free paths: run, build, import)

# Commands whose own failures Docker reports with 125 (the container ones report the process's).
RUN_COMMANDS = {"run", "create"}


CONTEXT = {"help_option_names": ["--help"], "max_content_width": 100}


class Session:
    """What commands share: the daemon's client (see :mod:`dockyard.cli.connect`), connected on
    first use, and for the few commands that run no daemon of their own an in-process engine."""

    def __init__(self, root: str | None = None, host: str | None = None) -> None:
        self.root = root
        self.host = host
        self._engine = None
        self._client = None

    @property
    def client(self):
        """The :class:`dockyard.client.Client` of the daemon (started on demand, see connect.py)."""
        if self._client is None:
            from .connect import connect

            self._client = connect(self.host, self.root)
        return self._client

    @property
    def api(self):
        """The client's transport: ``json``, ``read``, ``request``, ``hijack``."""
        return self.client.api

    @property
    def engine(self):
        if self._engine is None:
            from ..engine import Engine

            self._engine = Engine(self.root)
        return self._engine

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._engine is not None:
            self._engine.close()


GLOBAL_OPTIONS = {"-H": "host", "--host": "host", "--root": "root"}


def split_globals(args: list[str], session: Session) -> list[str]:
    """Take the global options in front of the command (``-H unix://…``, ``--root DIR``)."""
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        attr = GLOBAL_OPTIONS.get(name)
        if attr is None:
            break
        if not eq:
            if i + 1 >= len(args):
                break
            i += 1
            value = args[i]
        setattr(session, attr, value)
        i += 1
    return args[i:]


def pass_session(f):
    """Pass the command's :class:`Session` as its first argument (click is imported only by the
    command modules, never on the fast path of ``run``)."""
    import click

    return click.make_pass_decorator(Session)(f)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command; turn every error into one line and an exit code."""
    from ..errors import DockyardError
    from ..rootless import apply_defaults

    apply_defaults()  # an unprivileged user's own store and socket (rootless mode)
    session = Session()
    args = split_globals(sys.argv[1:] if argv is None else list(argv), session)
    command = next((a for a in args if not a.startswith("-")), "")
    failure = 125 if command in RUN_COMMANDS else 1
    try:
        if args and args[0] in FAST:
            import importlib

            module, function = FAST[args[0]]
            code = getattr(importlib.import_module(module), function)(session, args[1:])
            if code is not None:
                return code
        return _click_main(session, args, failure)
    except DockyardError as exc:
        _err(str(exc) if exc.client_side else f"Error response from daemon: {exc}")
        if command == "create" and (not exc.client_side or getattr(exc, "not_a_flag", False)):
            return 1  # (the docker CLI: its own checks of the flags 125, anything else 1)
        return getattr(exc, "cli_exit", None) or failure
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Stdout closed early (`dockyard images | head`): not an error; silence the flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        _err(f"Error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return failure
    except Exception as exc:  # a bug: one line for the user, the traceback on request
        if os.environ.get("DOCKYARD_DEBUG"):
            import traceback

            traceback.print_exc()
        _err(f"Error: internal error: {type(exc).__name__}: {exc} (DOCKYARD_DEBUG=1 shows where)")
        return failure
    finally:
        session.close()


def _click_main(session: Session, args: list[str], failure: int) -> int:
    import click

    from .app import UnknownCommand, cli

    try:
        with cli.make_context("dockyard", list(args), obj=session) as ctx:
            cli.invoke(ctx)
        return 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except UnknownCommand as exc:
        _err(f"dockyard: '{exc.args[0]}' is not a dockyard command.\nSee 'dockyard --help'")
        return 1
    except click.ClickException as exc:
        _err(f"dockyard: {exc.format_message()}")
        ctx_ = getattr(exc, "ctx", None)
        if ctx_ is not None:
            _err(f"See '{ctx_.command_path} --help'.")
        return 125 if failure == 125 else (exc.exit_code or 1)
    except click.exceptions.Abort:
        return 130


def _err(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


def entry() -> None:
    sys.exit(main())
