"""Authentication, both ends.

Client side: credentials in Docker's ``config.json`` format.  dockyard writes its own file
(``$DOCKYARD_CONFIG``, a file if it ends in ``.json`` else a directory holding
``config.json``; default ``~/.config/dockyard/config.json``) and also *reads* Docker's
(``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``), including its ``credsStore`` /
``credHelpers`` helpers, so a ``docker login`` is honoured.  Docker Hub's credentials are
keyed ``https://index.docker.io/v1/``, as Docker keys them.

Server side: htpasswd users (bcrypt only, as distribution) and the registry's own bearer
tokens: ``base64url(claims).base64url(HMAC-SHA256)``, signed with a key held by the serving
process, carrying the subject and the granted ``repository:name:actions`` access.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import threading
import time
from pathlib import Path

from ..errors import InvalidArgument

HUB_KEY = "https://index.docker.io/v1/"
HUB_DOMAINS = ("docker.io", "index.docker.io", "registry-1.docker.io")


# -- client: credentials --------------------------------------------------------------------------


def config_path() -> Path:
    env = os.environ.get("DOCKYARD_CONFIG")
    if env:
        p = Path(env)
        return p if p.suffix == ".json" else p / "config.json"
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "dockyard" / "config.json"


def docker_config_path() -> Path:
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) / "config.json" if env else Path(os.path.expanduser("~")) / ".docker" / "config.json"


def server_key(server: str) -> str:
    """The key a registry's credentials are stored under (Docker's convention)."""
    s = server.strip()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    host = s.split("/", 1)[0]
    if host in HUB_DOMAINS:
        return HUB_KEY
    return host


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _entry_credentials(entry: dict) -> tuple[str, str] | None:
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, password
    if entry.get("username") and entry.get("password"):
        return entry["username"], entry["password"]
    if entry.get("identitytoken"):
        return "<token>", entry["identitytoken"]
    return None


def _helper_credentials(helper: str, key: str) -> tuple[str, str] | None:
    import subprocess

    try:
        proc = subprocess.run([f"docker-credential-{helper}", "get"], input=key.encode(),
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        data = json.loads(proc.stdout)
        return data["Username"], data["Secret"]
    except (ValueError, KeyError, TypeError):
        return None


def _lookup(config: dict, key: str) -> tuple[str, str] | None:
    helper = (config.get("credHelpers") or {}).get(key)
    if helper:
        return _helper_credentials(helper, key)
    auths = config.get("auths") or {}
    for name, entry in auths.items():
        if server_key(name) == key and isinstance(entry, dict):
            creds = _entry_credentials(entry)
            if creds:
                return creds
    if config.get("credsStore"):
        return _helper_credentials(config["credsStore"], key)
    return None


def credentials(server: str) -> tuple[str, str] | None:
    """(user, password) for a registry: dockyard's own file first, then Docker's."""
    key = server_key(server)
    for path in (config_path(), docker_config_path()):
        creds = _lookup(_read_json(path), key)
        if creds:
            return creds
    return None


def _write_config(path: Path, config: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent="\t")
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def store_credentials(server: str, user: str, password: str) -> Path:
    path = config_path()
    config = _read_json(path)
    auths = config.setdefault("auths", {})
    key = server_key(server)
    auths[key] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    _write_config(path, config)
    return path


def erase_credentials(server: str) -> bool:
    """Forget a registry's credentials in dockyard's file; whether there were any."""
    path = config_path()
    config = _read_json(path)
    auths = config.get("auths") or {}
    key = server_key(server)
    found = [name for name in auths if server_key(name) == key]
    for name in found:
        del auths[name]
    if found:
        _write_config(path, config)
    return bool(found)


# -- client: challenges ---------------------------------------------------------------------------

_PARAM = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…",scope="…"`` → ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m or m.end() == pos:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return scheme.lower(), params


# -- server: users and tokens ---------------------------------------------------------------------


class Users:
    """An htpasswd file of bcrypt hashes (``user:$2y$…``), re-read when it changes.

    A successful check is remembered (keyed by a SHA-256 of user and password) so that a
    client sending Basic auth on every request pays bcrypt once, not per blob."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._mtime = -1.0
        self._users: dict[str, bytes] = {}
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        st = self.path.stat()
        if st.st_mtime == self._mtime:
            return
        users = {}
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith(("$2y$", "$2a$", "$2b$")):
                raise InvalidArgument(f"{self.path}:{n}: only bcrypt htpasswd entries are supported")
            users[user] = hashed.encode()
        self._users, self._mtime, self._ok = users, st.st_mtime, set()

    def check(self, user: str, password: str) -> bool:
        import bcrypt

        with self._lock:
            self._load()
            hashed = self._users.get(user)
            key = hashlib.sha256(f"{user}\0{password}".encode() + (hashed or b"")).digest()
            if hashed is None:
                return False
            if key in self._ok:
                return True
        # bcrypt's checkpw wants the $2b$ prefix; $2y$ (Apache) hashes are the same algorithm.
        ok = bcrypt.checkpw(password.encode(), b"$2b$" + hashed[4:])
        if ok:
            with self._lock:
                self._ok.add(key)
        return ok


def hash_password(password: str, rounds: int = 10) -> str:
    """A bcrypt htpasswd hash (``$2y$``, as ``htpasswd -B`` writes)."""
    import bcrypt

    return "$2y$" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds))[4:].decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokens:
    """Bearer tokens signed by this server (HMAC-SHA256)."""

    def __init__(self, key: bytes | None = None, lifetime: int = 300) -> None:
        self.key = key or os.urandom(32)
        self.lifetime = lifetime

    def issue(self, subject: str, access: list[dict]) -> tuple[str, int]:
        claims = {"sub": subject, "access": access, "exp": int(time.time()) + self.lifetime}
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{sig}", self.lifetime

    def verify(self, token: str) -> dict | None:
        body, _, sig = token.partition(".")
        try:
            want = hmac.new(self.key, body.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(want, _unb64(sig)):
                return None
            claims = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        if not isinstance(claims, dict) or claims.get("exp", 0) < time.time():
            return None
        return claims
