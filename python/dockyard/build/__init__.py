"""Dockerfile builds: the parser, the context and ``.dockerignore``, and the builder.

>>> from dockyard.build import Builder, BuildOptions       # doctest: +SKIP
>>> Builder(engine, BuildOptions(Path("ctx"), Path("ctx/Dockerfile").read_bytes())).build()

Choices (and why):

* **The image Docker's classic builder makes.**  Config, history (``#(nop)`` entries, the
  ``|N ARG=v`` prefix of RUN, ``COPY file:/dir:/multi:<sum> in <dest>``), empty-layer rules
  (WORKDIR and RUN add a layer only when they change something), the default PATH and the
  ownership rules of COPY (root, or kept for ``--from``) are checked against a real dockerd's
  classic builder in ``tests/test_build.py``.  From BuildKit we take what the classic builder
  lacks: heredocs, ``--chmod``, and skipping the stages the target does not need.
* **One image per step**, parent-linked, as the classic builder does: every step is a cache
  entry and a possible start for the next build.  The cache is the ``build_cache`` table of the
  store's SQLite database: key = sha256(parent image, the instruction with its arguments
  expanded, the config, the checksums of the files COPY/ADD read), value = the image.  The
  first image made for a key stays its answer while it exists, so a ``--no-cache`` build does
  not orphan the cached chains hanging off it.
* **Only RUN needs a container.**  COPY, ADD and WORKDIR write through an overlay mount of the
  image's layers with a private upper dir (paths resolved inside the root, never through a
  symlink to the host), and that upper dir is packed by the Rust differ like a container's.
* **Interruption is safe**: containers are removed and mounts undone in ``finally`` blocks
  (the CLI turns SIGTERM into the same path as Ctrl-C), and an image is registered in one
  transaction, so a killed build leaves only complete images behind.
* **No pulling.**  ``FROM`` and ``COPY --from`` use images already in the store; ADD of a URL
  is refused (builds run without a network by default).
"""

from __future__ import annotations

# Loaded on first use: the CLI's build command imports this package only for its submodule
# ``command``, and the builder's imports (the engine) cost it ~45 ms.
_EXPORTS = {"BuildOptions": "builder", "Builder": "builder", "prune_cache": "cache", "BuildError": "errors",
            "DockerfileError": "errors", "Dockerfile": "parser", "Instruction": "parser", "parse": "parser"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
