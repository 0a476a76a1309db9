"""dockyard: a container engine in the Docker mould.

Import is deliberately light (the CLI pays for it on every command): the engine, the client and
the native layer engine load on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~9 ms at start-up; the CLI never needs it

__version__ = "0.1.0"
__all__ = ["Engine", "Client", "layers", "errors", "__version__"]

if TYPE_CHECKING:
    from . import errors, layers
    from .engine import Engine


def __getattr__(name: str):
    if name == "Engine":
        from .engine import Engine

        return Engine
    if name == "Client":
        from .client import Client

        return Client
    if name in ("layers", "errors", "reference", "template"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'dockyard' has no attribute {name!r}")
