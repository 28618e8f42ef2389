"""In-process caches that stay correct across worker processes.

`GenerationCache` holds derived metadata (manifest records by (repo, reference), blob links)
and is emptied whenever the shared Generation changes, i.e. after any committed metadata write
in any process. A lookup is a memory read plus a dict lookup: no system call, no thread hop.
Entries are only stored when the generation seen before the database read is still current
afterwards, so a racing write can never be cached over.

`ContentCache` holds manifest bytes by digest. Content-addressed bytes never go stale, so it
needs no invalidation, only a size bound (LRU).
"""

from __future__ import annotations

from collections import OrderedDict
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


class ContentCache:
    """digest -> bytes, least recently used first out, bounded by total bytes."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, max_item: int = 1024 * 1024) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self.max_bytes = max_bytes
        self.max_item = max_item

    def get(self, digest: str) -> bytes | None:
        data = self._items.get(digest)
        if data is not None:
            self._items.move_to_end(digest)
        return data

    def put(self, digest: str, data: bytes) -> None:
        if len(data) > self.max_item or digest in self._items:
            return
        self._items[digest] = data
        self._bytes += len(data)
        while self._bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= len(old)
