"""In-process caches that stay correct across worker processes.

`GenerationCache` holds derived metadata (manifest records by (repo, reference), blob links)
and is emptied whenever the shared Generation changes, i.e. after any committed metadata write
in any process. A lookup is a memory read plus a dict lookup: no system call, no thread hop.
Entries are only stored when the generation seen before the database read is still current
afterwards, so a racing write can never be cached over.

`ContentCache` (a `WeightedLRU` of bytes) holds manifest bytes by digest. Content-addressed
bytes never go stale, so it needs no invalidation, only a size bound (LRU).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from registry.storage.metadata import Generation

K = TypeVar("K")
V = TypeVar("V")


class GenerationCache(Generic[K, V]):
    def __init__(self, generation: Generation, max_entries: int = 16384) -> None:
        self._generation = generation
        self._entries: dict[K, V] = {}
        self._seen = generation.value()
        self.max_entries = max_entries

    def snapshot(self) -> bytes:
        """Take before a database read; pass to `put` with what was read."""
        current = self._generation.value()
        if current != self._seen:
            self._entries.clear()
            self._seen = current
        return current

    def get(self, key: K) -> V | None:
        if self._generation.value() != self._seen:
            self.snapshot()
            return None
        return self._entries.get(key)

    def put(self, key: K, value: V, snapshot: bytes) -> None:
        if snapshot != self._seen or self._generation.value() != snapshot:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = value

    def clear(self) -> None:
        self._entries.clear()


class WeightedLRU(Generic[V]):
    """digest -> value, least recently used first out, bounded by the total weight of the
    values held (`weigh`); a value heavier than `max_item` is not kept."""

    def __init__(self, weigh: Callable[[V], int], max_total: int, max_item: int) -> None:
        self._items: OrderedDict[str, V] = OrderedDict()
        self._weigh = weigh
        self._total = 0
        self.max_total = max_total
        self.max_item = max_item

    def get(self, digest: str) -> V | None:
        value = self._items.get(digest)
        if value is not None:
            self._items.move_to_end(digest)
        return value

    def put(self, digest: str, value: V) -> None:
        weight = self._weigh(value)
        if weight > self.max_item or digest in self._items:
            return
        self._items[digest] = value
        self._total += weight
        while self._total > self.max_total:
            _, old = self._items.popitem(last=False)
            self._total -= self._weigh(old)


class ContentCache(WeightedLRU[bytes]):
    """Manifest bytes by digest, bounded by total bytes."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, max_item: int = 1024 * 1024) -> None:
        super().__init__(len, max_bytes, max_item)
