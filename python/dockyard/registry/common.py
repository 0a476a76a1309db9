"""What the registry client and server share: media types, digests, grammar, errors."""

from __future__ import annotations

import hashlib
import re

from ..engine.archive import DOCKER_LIST, DOCKER_MANIFEST, LAYER_TYPES, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST
from ..errors import DockyardError, InvalidArgument

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ALL_MANIFEST_TYPES = MANIFEST_TYPES + INDEX_TYPES
ACCEPT = ", ".join(ALL_MANIFEST_TYPES)

__all__ = [
    "ACCEPT", "ALL_MANIFEST_TYPES", "DOCKER_CONFIG", "DOCKER_LAYER_GZIP", "DOCKER_LIST",
    "DOCKER_MANIFEST", "INDEX_TYPES", "LAYER_TYPES", "MANIFEST_TYPES", "OCI_CONFIG", "OCI_INDEX",
    "OCI_MANIFEST", "RegistryError", "Unauthorized", "Denied", "DigestMismatch", "sha256",
    "valid_name", "valid_tag", "valid_digest",
]

# distribution's grammar for a repository name (the path part, without a domain) and a tag.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}", re.ASCII)


def valid_name(name: str) -> bool:
    """A repository path as distribution accepts it: lowercase components, no ``..``, no
    empty component, no escape of any kind, at most 255 characters."""
    return len(name) <= 255 and NAME_RE.fullmatch(name) is not None


def valid_tag(tag: str) -> bool:
    return TAG_RE.fullmatch(tag) is not None


def valid_digest(digest: str) -> bool:
    return DIGEST_RE.fullmatch(digest) is not None


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryError(DockyardError):
    """A registry refused a request or sent something dockyard does not trust.

    ``code`` is the distribution spec's error code when the registry sent one."""

    status = 500

    def __init__(self, message: str, code: str = "", http_status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.detail = ""  # the registry's own "code: message", when it sent one


class Unauthorized(RegistryError):
    status = 401


class BadCredentials(Unauthorized):
    """The token server refused the user name and password themselves (not only the access)."""


class Denied(RegistryError):
    status = 403


class DigestMismatch(RegistryError):
    """Content whose digest (or size) is not the one it was asked for."""

    status = 502


class BadName(InvalidArgument):
    """A repository name or reference that the grammar refuses."""
