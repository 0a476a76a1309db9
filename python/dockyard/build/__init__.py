"""Dockerfile builds: the parser, the context and ``.dockerignore``, and the builder.

>>> from dockyard.build import Builder, BuildOptions       # doctest: +SKIP
>>> Builder(engine, BuildOptions(Path("ctx"), Path("ctx/Dockerfile").read_bytes())).build()
"""

from __future__ import annotations

from .builder import BuildOptions, Builder
from .errors import BuildError, DockerfileError
from .parser import Dockerfile, Instruction, parse

__all__ = ["BuildError", "BuildOptions", "Builder", "Dockerfile", "DockerfileError", "Instruction", "parse"]
