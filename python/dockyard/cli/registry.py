"""Registry commands: pull, push, login, logout, and ``registry serve``."""

from __future__ import annotations

import sys
import threading
import time

import click

from . import CONTEXT, pass_session


class ProgressPrinter:
    """Docker's pull/push progress: one line per layer, redrawn in place on a terminal; on
    anything else, one plain line per status change (no bars), as docker prints them."""

    def __init__(self, stream=None, tty: bool | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet = quiet
        self.lines: list[str] = []   # layer ids in the order their lines were printed
        self.last: dict[str, float] = {}
        self.lock = threading.Lock()

    def __call__(self, layer: str, status: str, current: int | None = None, total: int | None = None) -> None:
        if self.quiet:
            return
        with self.lock:
            if not layer:
                self._write(status + "\n")
                self.lines = []
                return
            if current is not None and not self.tty:
                return
            text = f"{layer}: {status}"
            if current is not None:
                now = time.monotonic()
                if now - self.last.get(layer, 0) < 0.1 and current != total:
                    return
                self.last[layer] = now
                text += " " + _bar(current, total)
            if not self.tty:
                self._write(text + "\n")
                return
            if layer not in self.lines:
                self.lines.append(layer)
                self._write(text + "\n")
                return
            up = len(self.lines) - self.lines.index(layer)
            self._write(f"\x1b[{up}A\x1b[2K\r{text}\x1b[{up}B\r")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _bar(current: int, total: int | None) -> str:
    from ..units import human_size

    if not total:
        return human_size(current)
    width = 50
    done = min(width, current * width // total)
    arrow = ">" if done < width else ""
    bar = "=" * max(0, done - (1 if arrow else 0)) + arrow
    return f"[{bar:<{width}}]  {human_size(current)}/{human_size(total)}"


def _auth_header(domain: str) -> dict[str, str]:
    """``X-Registry-Auth`` with the user's stored credentials for ``domain`` (the CLI holds
    them, not the daemon), as docker's CLI sends it: base64url JSON."""
    import base64
    import json

    from ..registry import auth

    creds = auth.credentials(auth.HUB_KEY if domain in auth.HUB_DOMAINS else domain)
    if not creds:
        return {}
    user, password = creds
    body = {"serveraddress": domain}
    if user == "<token>":
        body["identitytoken"] = password
    else:
        body.update(username=user, password=password)
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(body).encode()).decode()}


def _render(session, resp, printer: ProgressPrinter) -> list[dict]:
    """Draw the daemon's JSON progress; raise the error it ends with; return the aux results."""
    from .output import messages, stream_error

    aux = []
    for msg in messages(session.api, resp):
        err = stream_error(msg)
        if err is not None:
            raise err
        if "aux" in msg:
            aux.append(msg["aux"])
        status = msg.get("status")
        if not status:
            continue
        detail = msg.get("progressDetail") or {}
        if detail.get("total"):
            printer(msg.get("id", ""), status, detail.get("current", 0), detail["total"])
        else:
            printer(msg.get("id", ""), status)
    return aux


@click.command("pull", context_settings=CONTEXT)
@click.argument("name")
@click.option("-a", "--all-tags", is_flag=True, help="Download all tagged images in the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--platform", default=None, metavar="OS/ARCH[/VARIANT]",
              help="Set platform if server is multi-platform capable.")
@pass_session
def pull(session, name: str, all_tags: bool, quiet: bool, platform: str | None) -> None:
    """Download an image from a registry."""
    from .. import reference as refs
    from ..errors import DockyardError

    printer = ProgressPrinter(quiet=quiet)
    ref = refs.parse(name)
    if all_tags and (ref.tag or ref.digest):
        raise DockyardError("tag can't be used with --all-tags/-a")
    if not quiet and not all_tags and not ref.tag and not ref.digest:
        printer("", "Using default tag: latest")
    if not all_tags:
        ref = ref.with_default_tag()
    # fromImage without a tag is the whole repository (dockerd's rule for -a)
    params = {"fromImage": ref.name, "tag": ref.digest or ref.tag, "platform": platform}
    resp = session.api.request("POST", "/images/create", params, headers=_auth_header(ref.domain),
                               stream=True, timeout=None)
    _render(session, resp, printer)
    sys.stdout.write((ref.name if all_tags else str(ref)) + "\n")


@click.command("push", context_settings=CONTEXT)
@click.argument("name")
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of an image to the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--chunk-size", type=int, default=None, hidden=True,
              help="Upload blobs in PATCH chunks of this many bytes (default: one PUT).")
@pass_session
def push(session, name: str, all_tags: bool, quiet: bool, chunk_size: int | None) -> None:
    """Upload an image to a registry."""
    from .. import reference as refs
    from ..client import quote
    from ..errors import DockyardError

    printer = ProgressPrinter(quiet=quiet)
    ref = refs.parse(name)
    if ref.digest:
        raise DockyardError("cannot push a digest reference")
    if all_tags and ref.tag:
        raise DockyardError("tag can't be used with --all-tags/-a")
    if not all_tags:
        ref = ref.with_default_tag()
    # no ``tag``: every tag of the repository (dockerd's rule); ``chunksize`` is dockyard's own
    resp = session.api.request("POST", f"/images/{quote(ref.name, safe='/:')}/push",
                               {"tag": ref.tag, "chunksize": chunk_size}, headers=_auth_header(ref.domain),
                               stream=True, timeout=None)
    results = _render(session, resp, printer)
    if quiet:
        for r in results:
            sys.stdout.write(f"{ref.name}:{r.get('Tag', '')}\n")


@click.command("login", context_settings=CONTEXT)
@click.argument("server", required=False)
@click.option("-u", "--username", default=None, help="Username.")
@click.option("-p", "--password", default=None, help="Password.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
def login(server: str | None, username: str | None, password: str | None, password_stdin: bool) -> None:
    """Log in to a registry (Docker Hub unless SERVER is given)."""
    from ..errors import InvalidArgument
    from ..registry.client import login as do_login

    if password and password_stdin:
        raise click.UsageError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise click.UsageError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    if password:
        if not password_stdin:
            sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if not username:
        if not sys.stdin.isatty():
            raise InvalidArgument("Error: Cannot perform an interactive login from a non TTY device")
        username = click.prompt("Username")
    if not password:
        if not sys.stdin.isatty():
            raise InvalidArgument("Error: Cannot perform an interactive login from a non TTY device")
        password = click.prompt("Password", hide_input=True)
    do_login(server, username, password)
    sys.stdout.write("Login Succeeded\n")


@click.command("logout", context_settings=CONTEXT)
@click.argument("server", required=False)
def logout(server: str | None) -> None:
    """Log out from a registry (Docker Hub unless SERVER is given)."""
    from ..registry import auth

    key = auth.server_key(server or auth.HUB_KEY)
    if auth.erase_credentials(key):
        sys.stdout.write(f"Removing login credentials for {key}\n")
    else:
        sys.stdout.write(f"Not logged in to {key}\n")


@click.group("registry", context_settings=CONTEXT)
def registry_group() -> None:
    """Run a registry (the OCI distribution spec) and manage its users."""


@registry_group.command("serve", context_settings=CONTEXT)
@click.option("--listen", default="127.0.0.1:5000", show_default=True, metavar="ADDR",
              help="HOST:PORT to listen on (port 0 picks a free one).")
@click.option("--root", "root_dir", required=True, metavar="DIR", help="Where the registry keeps its data.")
@click.option("--users", default=None, metavar="HTPASSWD",
              help="htpasswd file (bcrypt) of users; without one, anyone may read and write.")
@click.option("--public", multiple=True, metavar="PATTERN",
              help="Repositories matching PATTERN (shell-style, e.g. 'library/*') are readable by anyone.")
@click.option("--read-only", "read_only", multiple=True, metavar="USER", help="USER may read but not write.")
@click.option("--auth", "auth_mode", type=click.Choice(["token", "basic"]), default="token", show_default=True,
              help="What a 401 asks for: a bearer token from /token, or Basic credentials.")
@click.option("--tls-cert", default=None, metavar="FILE", help="Serve HTTPS with this certificate.")
@click.option("--tls-key", default=None, metavar="FILE", help="The certificate's private key.")
@click.option("--log", is_flag=True, help="Log every request to stderr.")
def serve(listen: str, root_dir: str, users: str | None, public: tuple[str, ...], read_only: tuple[str, ...],
          auth_mode: str, tls_cert: str | None, tls_key: str | None, log: bool) -> None:
    """Serve a registry until interrupted (SIGINT or SIGTERM)."""
    import signal

    from ..registry.server import make_server

    tls = (tls_cert, tls_key or tls_cert) if tls_cert else None
    try:
        server = make_server(listen, root_dir, users, list(public), list(read_only), auth_mode, log, tls)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    host, port = server.server_address[:2]

    def stop(signum, frame) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    sys.stderr.write(f"dockyard registry listening on {server.scheme}://{host}:{port}\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@registry_group.command("htpasswd", context_settings=CONTEXT)
@click.argument("user")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.option("-p", "--password", default=None, help="Password.")
def htpasswd(user: str, password_stdin: bool, password: str | None) -> None:
    """Print an htpasswd line (bcrypt) for USER."""
    from ..registry.auth import hash_password

    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    sys.stdout.write(f"{user}:{hash_password(password)}\n")
