"""``dockyard.Client``: the Python SDK, docker-py's shape with types, over the daemon's socket.

>>> import dockyard
>>> client = dockyard.Client()                        # doctest: +SKIP
>>> client.containers.run("busybox", ["echo", "hi"])  # doctest: +SKIP
b'hi\\n'

Lean on purpose (the CLI imports it on every command): a small HTTP/1.1 client of its own
(keep-alive, chunked, upgrade) instead of ``http.client`` (whose email/ssl imports cost more
than everything else here), over :mod:`dockyard._wire` (JSON and sockets straight from the C
modules, without the ``re``/``enum`` imports of ``json`` and ``socket``).  Errors are dockyard's own tree (:mod:`dockyard.errors`): the daemon sends
``{"message": ...}`` with the status of the error it raised, and the client raises the same
class again (404 -> ``ContainerNotFound``/``ImageNotFound``/``NotFound`` by route, 409 ->
``Conflict``, 400 -> ``InvalidArgument``); no HTTP type leaks out.
"""

from __future__ import annotations

from .. import _wire
from ..errors import ContainerNotFound
from .models import (
    Container, ContainerCollection, ContainerSpec, ExecResult, Image, ImageCollection, Model, Network,
    NetworkCollection, Volume, VolumeCollection,
)
from .transport import (
    API_VERSION, APIError, Connection, ContainerError, Response, Transport, frames, quote, urlencode,
)

TYPE_CHECKING = False  # typing: milliseconds the CLI never pays
if TYPE_CHECKING:
    from typing import Any, Iterator

__all__ = ["Client", "Container", "Image", "ContainerError", "ExecResult", "ContainerNotFound",
           "APIError", "API_VERSION", "Connection", "ContainerCollection", "ContainerSpec", "ImageCollection",
           "Model", "Network", "NetworkCollection", "Response", "Transport", "Volume", "VolumeCollection",
           "frames", "quote", "urlencode"]


class Client:
    """The daemon at ``base_url`` (``unix://PATH``; default ``$DOCKYARD_HOST`` or
    ``unix://$DOCKYARD_RUN/dockyard.sock``)."""

    def __init__(self, base_url: str | None = None, timeout: float | None = 60) -> None:
        self.api = Transport(base_url, timeout)
        self.containers = ContainerCollection(self)
        self.images = ImageCollection(self)
        self.volumes = VolumeCollection(self)
        self.networks = NetworkCollection(self)

    @classmethod
    def from_env(cls) -> Client:
        return cls()

    def ping(self) -> bool:
        return self.api.json("GET", "/_ping") in (b"OK", "OK")

    def version(self) -> dict:
        return self.api.json("GET", "/version")

    def info(self) -> dict:
        return self.api.json("GET", "/info")

    def df(self) -> dict:
        return self.api.json("GET", "/system/df")

    def events(self, since: int | None = None, until: int | None = None, filters: dict | None = None,
               decode: bool = True) -> Iterator[Any]:
        """Each event as a dict (``decode``) or as its JSON line."""
        resp = self.api.request("GET", "/events", {"since": since, "until": until, "filters": filters or None},
                                stream=True, timeout=None)
        try:
            while line := resp.readline():
                if line.strip():
                    yield _wire.loads(line) if decode else line
        finally:
            self.api.finish(resp)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
