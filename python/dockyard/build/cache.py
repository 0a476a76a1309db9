"""The build cache and what builds remember: the ``build_cache`` table (a step's key -> the image
it made), ``docker builder prune``, and the images builds have read or made."""

from __future__ import annotations

CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS build_cache (
    key       TEXT PRIMARY KEY,   -- sha256 of parent image + expanded instruction + content sums
    image_id  TEXT NOT NULL,      -- the image that step made
    created   REAL NOT NULL
);
"""


class Known:
    """Image ID -> (config bytes, [(diff ID, chain ID)]) of the images builds have read or made,
    so a warm cache's hits do not read and verify each config from the store again.  Safe to
    keep: an image's config and layers never change under its ID (the ID is the config's
    digest, the chain IDs follow from its diff IDs), and a hit is looked up only after the
    store has said it holds the image.  Bounded (oldest out first); shared by a daemon's builds."""

    LIMIT = 4096

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._items: dict[str, tuple[bytes, list[tuple[str, str]]]] = {}

    def get(self, image_id: str) -> tuple[bytes, list[tuple[str, str]]] | None:
        return self._items.get(image_id)

    def put(self, image_id: str, raw: bytes, layers: list[tuple[str, str]]) -> tuple[bytes, list[tuple[str, str]]]:
        item = (raw, layers)
        with self._lock:
            self._items[image_id] = item
            while len(self._items) > self.LIMIT:
                del self._items[next(iter(self._items))]
        return item


KNOWN = Known()


def prune_cache(engine) -> dict:
    """``docker builder prune``: forget every cache entry (the images stay, as Docker's classic
    builder keeps its intermediate images; ``image prune`` removes those nobody uses).
    Returns Docker's ``/build/prune`` shape."""
    db = engine.store.db
    db.executescript(CACHE_SCHEMA)
    with engine.store.transaction() as tx:
        keys = [r[0] for r in tx.execute("SELECT key FROM build_cache")]
        tx.execute("DELETE FROM build_cache")
    return {"CachesDeleted": keys or None, "SpaceReclaimed": 0}
