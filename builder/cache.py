"""BuildCache: step key -> what the step produced, in the store's SQLite database.

A record holds the step's own layer (descriptor + diff_id, or none for a config-only step or
a step that changed nothing) and the image config *after* the step (JSON, history included, so
a fully cached rebuild reproduces the same config bytes and image ID). The chain ID is derived
from the parent's chain and the diff_id; the snapshot named by it is created lazily by the
builder only when a later step misses.

A hit counts only if the layer blob is still in the content store; otherwise the record is
dropped (DESIGN 5.2). Each record leases its blob (`leases` table of builder.metadata) so
`strata prune` never deletes content the cache points at.

The builder reaches this table through the `StepCache` Protocol: `LocalStepCache` by default;
builder.remotecache wraps it with records imported from a registry or directory.

Table (created idempotently next to builder.metadata's tables)::

    build_cache(key PK, layer TEXT NULL, config TEXT, cmd_set INT, created REAL, used REAL)
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from registry.oci import Descriptor, Digest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,
    layer TEXT,
    config TEXT NOT NULL,
    cmd_set INTEGER NOT NULL,
    created REAL NOT NULL,
    used REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    lease TEXT NOT NULL,
    target TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (lease, target)
);
"""

LEASE_PREFIX = "buildcache:"


class BlobChecker(Protocol):
    """The one content-store capability the cache needs."""

    def exists(self, digest: Digest) -> bool: ...


@dataclass(frozen=True, slots=True)
class CachedLayer:
    """A layer a step wrote: its blob descriptor and uncompressed diff_id."""

    descriptor: Descriptor
    diff_id: str

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.descriptor.media_type, "digest": str(self.descriptor.digest),
                "size": self.descriptor.size, "diff_id": self.diff_id}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> CachedLayer:
        desc = Descriptor(str(obj["mediaType"]), Digest.parse(str(obj["digest"])),
                          int(obj["size"]))
        return cls(desc, str(obj["diff_id"]))


@dataclass(frozen=True, slots=True)
class CacheRecord:
    layer: CachedLayer | None
    config: dict[str, Any]  # the full image config JSON after the step
    cmd_set: bool = False


@dataclass(frozen=True, slots=True)
class StepInfo:
    """One cacheable step as the builder hands it to a StepCache."""

    key: str  # the step's cache key
    parent_key: str  # the key of the state the step starts from
    stage: int  # index of its stage in the plan
    stage_label: str  # the stage's name (or index) as progress shows it
    blobs: tuple[Descriptor, ...] = ()
    """Layer blobs a run of this step may unpack: its own chain, then those of the stages and
    images it reads (COPY --from, RUN --mount from=). Layers this build is still writing are
    left out: their snapshots are here already."""
    cache_mounts: tuple[str, ...] = ()  # ids of its RUN --mount=type=cache mounts


class StepCache(Protocol):
    """Where the builder looks up and records what steps produced (the builder's cache seam).

    Per step: `lookup` (skipped under --no-cache); a hit is used as is. On a miss, `prepare`
    runs just before the step (make local whatever it will read), then the step runs and
    `record` stores its result once its layer blob is written: from the workspace's writer
    thread, possibly while later steps run. Called from several threads at once.
    """

    def lookup(self, step: StepInfo) -> CacheRecord | None: ...

    def prepare(self, step: StepInfo) -> None: ...

    def record(self, step: StepInfo, record: CacheRecord) -> None: ...


class LocalStepCache:
    """The default StepCache: the store's BuildCache; a record whose blob is gone misses."""

    def __init__(self, cache: BuildCache, blobs: BlobChecker) -> None:
        self.cache = cache
        self.blobs = blobs

    def lookup(self, step: StepInfo) -> CacheRecord | None:
        return self.cache.get(step.key, self.blobs)

    def prepare(self, step: StepInfo) -> None:
        """Nothing to fetch: every blob a local record names is in the store."""

    def record(self, step: StepInfo, record: CacheRecord) -> None:
        self.cache.put(step.key, record)


class BuildCache:
    """key -> CacheRecord. Thread-safe (one connection guarded by a lock)."""

    def __init__(self, db_path: Path | str) -> None:
        self._conn = sqlite3.connect(str(db_path), timeout=60, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.Lock()
        with self._lock:
            self._conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def get(self, key: str, blobs: BlobChecker) -> CacheRecord | None:
        """The record for `key` if its layer blob still exists (else drop it and miss)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT layer, config, cmd_set FROM build_cache WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        try:
            layer = CachedLayer.from_json(json.loads(row[0])) if row[0] else None
            config = json.loads(row[1])
        except (ValueError, KeyError, TypeError):
            self.drop(key)
            return None
        if layer is not None and not blobs.exists(layer.descriptor.digest):
            self.drop(key)
            return None
        return CacheRecord(layer, config, bool(row[2]))

    def touch(self, key: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE build_cache SET used=? WHERE key=?", (time.time(), key))

    def put(self, key: str, record: CacheRecord) -> None:
        """Store (or replace) a record and lease its blob, in one transaction."""
        layer = json.dumps(record.layer.to_json()) if record.layer else None
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT OR REPLACE INTO build_cache VALUES (?,?,?,?,?,?)",
                    (key, layer, json.dumps(record.config, sort_keys=True),
                     int(record.cmd_set), now, now))
                if record.layer is not None:
                    self._conn.execute(
                        "INSERT OR IGNORE INTO leases VALUES (?,?,?)",
                        (LEASE_PREFIX + key, str(record.layer.descriptor.digest), now))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def drop(self, key: str) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("DELETE FROM build_cache WHERE key=?", (key,))
            self._conn.execute("DELETE FROM leases WHERE lease=?", (LEASE_PREFIX + key,))
            self._conn.execute("COMMIT")

    def lease(self, name: str, targets: list[str]) -> None:
        """Protect extra targets (e.g. chain IDs of imported layer dirs) from prune."""
        now = time.time()
        with self._lock:
            self._conn.executemany("INSERT OR IGNORE INTO leases VALUES (?,?,?)",
                                   [(name, t, now) for t in targets])

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM build_cache").fetchone()[0])


def prune_build_cache(root: Path, *, cache_mounts: bool = False) -> tuple[int, int]:
    """Forget every cache record and remove every snapshot of both snapshotters (children
    before parents); with `cache_mounts`, also the RUN --mount=type=cache directories.
    Returns (records, snapshots) removed. Blobs stay until `strata prune` collects them (the
    leases that kept them are gone). Must not run during a build on the same store."""
    import shutil

    from builder.errors import FailedPrecondition, NotFound
    from builder.snapshots.copy import CopySnapshotter
    from builder.snapshots.overlay import OverlaySnapshotter

    cache = BuildCache(root / "strata.db")
    with cache._lock:
        cache._conn.execute("BEGIN IMMEDIATE")
        records = int(cache._conn.execute("SELECT COUNT(*) FROM build_cache").fetchone()[0])
        cache._conn.execute("DELETE FROM build_cache")
        cache._conn.execute("DELETE FROM leases WHERE lease LIKE 'buildcache:%' "
                            "OR lease LIKE 'snapshot:%'")
        cache._conn.execute("COMMIT")
    cache.close()
    removed = 0
    for kind, cls in (("overlay", OverlaySnapshotter), ("native", CopySnapshotter)):
        base = root / "snapshots" / kind
        if not base.is_dir():
            continue
        sn = cls(base)
        pending = [info.name for info in sn.walk()]
        while pending:
            progress = False
            for name in list(pending):
                try:
                    sn.remove(name)
                except FailedPrecondition:
                    continue  # still a parent: next pass
                except NotFound:
                    pass
                pending.remove(name)
                removed += 1
                progress = True
            if not progress:
                break
        for stray in base.glob("import-*"):
            shutil.rmtree(stray, ignore_errors=True)
    if cache_mounts:
        shutil.rmtree(root / "cache-mounts", ignore_errors=True)
    return records, removed
