"""dockyard's one exception tree.

Every error a user can see is a :class:`DockyardError`.  The CLI turns each into one line on
stderr and Docker's exit code; the daemon sends ``{"message": ...}`` with
:attr:`DockyardError.status` (and the class's kind), and the client raises the same class again.
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base of every dockyard error.  ``status`` is the HTTP status the Engine API uses."""

    status = 500
    exit_code = 125
    #: True when Docker's CLI would report the error itself (no "Error response from daemon:")
    client_side = False

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(DockyardError):
    """A value the user gave is malformed (a flag, a filter, a template)."""

    status = 400


class InvalidReference(InvalidArgument):
    """An image reference that does not parse."""


class NotFound(DockyardError):
    status = 404


class ContainerNotFound(NotFound):
    pass


class ImageNotFound(NotFound):
    pass


class Conflict(DockyardError):
    status = 409


class NotImplementedHere(DockyardError):
    """What this container's set-up cannot do (dockerd's 501: logs of a ``none`` log driver)."""

    status = 501


class LayerError(DockyardError):
    """A layer that cannot be read or applied; ``member`` names the tar member at fault."""

    status = 400

    def __init__(self, message: str, member: str | None = None) -> None:
        super().__init__(message)
        self.member = member


class ArchiveError(InvalidArgument):
    """An image archive (docker save, OCI archive) that is malformed."""


class TemplateError(InvalidArgument):
    """A ``--format`` template that does not parse or does not apply."""

    client_side = True


class ConnectionFailed(DockyardError):
    """The client could not reach the daemon, or lost it mid-response (said as the CLI's own
    line, as docker's "Cannot connect to the Docker daemon ...")."""

    client_side = True


class DaemonSetupError(DockyardError):
    """The daemon could not set itself up (rootless mode's ids and namespaces): said as the
    daemon's own line, not as an answer of a daemon ("Error response from daemon: ...")."""

    client_side = True


def start_error_code(message: str) -> int:
    """dockerd's exit code for a start that failed, from the runtime's message (the docker CLI
    reads it the same way for ``run``): 127 for a command that is not there, 126 for one that
    cannot be run, else 128."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 128
