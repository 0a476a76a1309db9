"""Image references, parsed and normalised exactly like Docker (``distribution/reference``).

``parse("busybox")`` is ``docker.io/library/busybox``; ``parse("localhost:5000/app:1")`` keeps
its registry; ``familiar()`` gives back what ``docker`` prints (``busybox:latest``).  Errors are
:class:`~dockyard.errors.InvalidReference` with Docker's wording, e.g. ``invalid reference
format`` or ``invalid reference format: repository name (library/Busybox) must be lowercase``.
"""

from __future__ import annotations

from .errors import InvalidReference


class _LazyRe:
    """``re``, imported on first use: with the enum it loads, ~4 ms of a CLI command's start-up
    that the regex-free fast path (:func:`_parse_simple`) does not need."""

    def __getattr__(self, name: str):
        import re

        return getattr(re, name)


re = _LazyRe()

__all__ = ["Reference", "is_id_prefix", "parse", "parse_repository_tag"]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The grammar of distribution/reference (regexp.go).  Go's regexp and Python's re pick the
# same leftmost-first submatches for these patterns.  re.ASCII keeps \w to [0-9A-Za-z_].
_ALPHANUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALPHANUM + r"(?:" + _SEPARATOR + _ALPHANUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_DOMAIN_AND_PORT = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME

# Patterns are compiled on first use (re caches them): importing this module stays cheap.
_REFERENCE = r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?"
_ANCHORED_NAME = r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")"
_IDENTIFIER = r"[a-f0-9]{64}"
_ID_PREFIX = r"(?:sha256:)?[a-f0-9]{1,64}"

# go-digest: algorithms compiled into docker, and the length of their hex encoding.
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_ANCHORED = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"

ERR_REFERENCE_INVALID_FORMAT = "invalid reference format"
ERR_TAG_INVALID_FORMAT = "invalid tag format"
ERR_NAME_CONTAINS_UPPERCASE = "repository name must be lowercase"
ERR_NAME_EMPTY = "repository name must have at least one component"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
ERR_DIGEST_INVALID_FORMAT = "invalid checksum digest format"
ERR_DIGEST_INVALID_LENGTH = "invalid checksum digest length"
ERR_DIGEST_UNSUPPORTED = "unsupported digest algorithm"
ERR_TAG_WITH_DIGEST = "refusing to create a tag with a digest reference"


class Reference:
    """A normalised image reference: ``domain/path[:tag][@digest]``.

    ``domain`` is never empty (``docker.io`` by default) and official images carry their
    ``library/`` prefix in ``path``, as Docker stores them.

    An immutable value, like a frozen dataclass (equality, hashing, ``repr``), written out by
    hand because importing ``dataclasses`` costs ~10 ms (it loads ``inspect``) and this module
    is imported by every image command.
    """

    __slots__ = ("domain", "path", "tag", "digest")
    __match_args__ = ("domain", "path", "tag", "digest")

    domain: str
    path: str
    tag: str | None
    digest: str | None

    def __init__(
        self, domain: str, path: str, tag: str | None = None, digest: str | None = None
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "domain", domain)
        setattr_(self, "path", path)
        setattr_(self, "tag", tag)
        setattr_(self, "digest", digest)

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: Reference is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: Reference is immutable")

    def _key(self) -> tuple:
        return (self.domain, self.path, self.tag, self.digest)

    def __eq__(self, other) -> bool:
        if type(other) is not Reference:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Reference(domain={self.domain!r}, path={self.path!r}, tag={self.tag!r}, "
                f"digest={self.digest!r})")

    def __reduce__(self):
        return (Reference, self._key())

    @property
    def name(self) -> str:
        """The fully-qualified repository name, ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The name Docker shows: ``busybox``, ``user/app``, ``localhost:5000/app``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_REPO_PREFIX):
            # Only a single-component official name loses its prefix
            # ("library/a/b" stays as it is), as in current distribution/reference.
            rest = path[len(OFFICIAL_REPO_PREFIX) :]
            if "/" not in rest:
                return rest
        return path

    @property
    def repository(self) -> str:
        """The REPOSITORY column of ``docker images`` (the familiar name)."""
        return self.familiar_name

    def with_default_tag(self) -> Reference:
        """``TagNameOnly``: add ``latest`` when the reference has neither tag nor digest."""
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, DEFAULT_TAG, None)
        return self

    def with_tag(self, tag: str) -> Reference:
        """The same repository with ``tag`` (and no digest); the tag is validated."""
        if not re.fullmatch(_TAG, tag, re.ASCII):
            raise InvalidReference(ERR_TAG_INVALID_FORMAT)
        return Reference(self.domain, self.path, tag, None)

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def __str__(self) -> str:
        return self.name + self._suffix()

    def familiar(self) -> str:
        """``FamiliarString``: ``busybox:latest``, ``user/app@sha256:…``."""
        return self.familiar_name + self._suffix()


def _validate_digest(digest: str) -> None:
    """go-digest ``Parse``/``Validate`` (the reference grammar has already matched it)."""
    i = digest.find(":")
    if i <= 0 or i + 1 == len(digest):
        raise InvalidReference(ERR_DIGEST_INVALID_FORMAT)
    algorithm, encoded = digest[:i], digest[i + 1 :]
    length = _DIGEST_HEX_LENGTH.get(algorithm)
    if length is None:
        if not re.fullmatch(_DIGEST_ANCHORED, digest):
            raise InvalidReference(ERR_DIGEST_INVALID_FORMAT)
        raise InvalidReference(ERR_DIGEST_UNSUPPORTED)
    if len(encoded) != length:
        raise InvalidReference(ERR_DIGEST_INVALID_LENGTH)
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise InvalidReference(ERR_DIGEST_INVALID_FORMAT)


def _parse_reference(s: str) -> Reference:
    """distribution/reference ``Parse`` of an already-normalised string."""
    m = re.fullmatch(_REFERENCE, s, re.ASCII)
    if m is None:
        if s == "":
            raise InvalidReference(ERR_NAME_EMPTY)
        if re.fullmatch(_REFERENCE, s.lower(), re.ASCII):
            raise InvalidReference(ERR_NAME_CONTAINS_UPPERCASE)
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT)
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG)
    nm = re.fullmatch(_ANCHORED_NAME, name, re.ASCII)
    domain, path = (nm.group(1) or "", nm.group(2)) if nm else ("", name)
    if digest is not None:
        _validate_digest(digest)
    return Reference(domain, path, tag, digest)


def _split_docker_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i]
    if i == -1 or (
        "." not in first and ":" not in first and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_TAG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _simple_component(c: str) -> bool:
    """``[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`` without the regex engine."""
    i, n = 0, len(c)
    while True:
        start = i
        while i < n and c[i] in _LOWER_ALNUM:
            i += 1
        if i == start:
            return False
        if i == n:
            return True
        j = i
        while j < n and c[j] not in _LOWER_ALNUM:
            j += 1
        sep = c[i:j]
        if not (sep in (".", "_", "__") or set(sep) == {"-"}) or j == n:
            return False
        i = j


def _parse_simple(s: str) -> Reference | None:
    """The common case, ``name`` or ``name:tag`` on Docker Hub, checked without compiling the
    grammar's regexes (a few milliseconds of every ``dockyard run``); None: use the full parser."""
    name, colon, tag = s.partition(":")
    if "/" in s or "@" in s or len(name) == 64 or len(s) > 200 or not _simple_component(name):
        return None
    if colon:
        if not tag or len(tag) > 128 or tag[0] in ".-" or not set(tag) <= _TAG_CHARS:
            return None
    return Reference("docker.io", "library/" + name, tag if colon else None, None)


def parse(s: str) -> Reference:
    """``ParseNormalizedNamed``: parse what a user typed (``busybox``, ``user/app:1``,
    ``localhost:5000/app@sha256:…``) into a normalised :class:`Reference`."""
    simple = _parse_simple(s)
    if simple is not None:
        return simple
    if re.fullmatch(_IDENTIFIER, s):
        raise InvalidReference(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(s)
    remote_name = remainder.split(":", 1)[0]
    if remote_name.lower() != remote_name:
        raise InvalidReference(
            f"invalid reference format: repository name ({remote_name}) must be lowercase"
        )
    ref = _parse_reference(domain + "/" + remainder)
    if not ref.path:
        raise InvalidReference(f"reference {ref} has no name")
    return ref


def parse_repository_tag(s: str) -> Reference:
    """A target for ``tag``/``import``/``commit``: a name with an optional tag (``latest`` if
    absent).  A digest is refused, as ``docker tag`` does."""
    ref = parse(s)
    if ref.digest is not None:
        raise InvalidReference(ERR_TAG_WITH_DIGEST)
    return ref.with_default_tag()


def is_id_prefix(s: str) -> bool:
    """Whether ``s`` may name an image by (short) ID: 1–64 lowercase hex digits, optionally
    after ``sha256:``."""
    return re.fullmatch(_ID_PREFIX, s) is not None
