"""Build errors: a Dockerfile that does not parse or a step that fails."""

from __future__ import annotations

from ..errors import DockyardError, InvalidArgument


class DockerfileError(InvalidArgument):
    """A Dockerfile problem at ``file:line:column`` (both 1-based; 0 when unknown)."""

    client_side = True

    def __init__(self, message: str, line: int = 0, column: int = 0, file: str = "Dockerfile") -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.file = file

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column or 1}: {self.message}"
        return f"{self.file}: {self.message}"


class BuildError(DockyardError):
    """A step that failed while running (a RUN's non-zero exit, a COPY source missing...)."""

    client_side = True
    status = 400

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.cli_exit = exit_code
