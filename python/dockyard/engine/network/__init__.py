"""Networks: the default bridge, user networks, IPAM, published ports, links, embedded DNS.

The implementation is in :mod:`.manager`; this package's own import is free so that a
container with ``--network none`` (or the hooks' fast paths) pays nothing for it.  Names are
loaded from the manager on first use (PEP 562).
"""

from __future__ import annotations


def __getattr__(name: str):
    if name.startswith("__") or name in ("manager", "hooks", "dns", "firewall", "netlink", "nftables"):
        raise AttributeError(name)  # submodules load through the import system, not here
    import importlib

    return getattr(importlib.import_module(__name__ + ".manager"), name)
