"""The store's metadata: one small SQLite database `<root>/strata.db`.

SQLite in WAL mode with synchronous=FULL gives crash-safe transactions: after a kill -9 the
database holds either all or none of a change. Blobs are committed *before* the rows that name
them, and removed *after* the rows are gone, so rows never point at missing content after a
crash (the opposite, an unreferenced blob, is garbage that `prune` collects).

Tables (schema version in `meta`):
    images(manifest_digest PK, media_type, manifest_size, config_digest, created, added, size)
    image_blobs(manifest_digest, blob_digest)        every blob an image needs (manifest included)
    image_layers(manifest_digest, idx, diff_id, chain_id, blob_digest, media_type, size)
    refs(name PK, manifest_digest, tagged)            "busybox:latest" -> image
    unpacked(chain_id PK, parent, diff_id, size, unpacked_at)   layers under <root>/layers/
    leases(lease, target, created)   a blob digest or chain ID that some user (a running build,
                                     the build cache) needs; prune and rmi keep leased targets
Later issues (the build cache) add their own tables through `migrate`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    manifest_digest TEXT PRIMARY KEY,
    media_type TEXT NOT NULL,
    manifest_size INTEGER NOT NULL,
    config_digest TEXT NOT NULL,
    created TEXT,
    added REAL NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS images_config ON images(config_digest);
CREATE TABLE IF NOT EXISTS image_blobs (
    manifest_digest TEXT NOT NULL REFERENCES images(manifest_digest) ON DELETE CASCADE,
    blob_digest TEXT NOT NULL,
    PRIMARY KEY (manifest_digest, blob_digest)
);
CREATE INDEX IF NOT EXISTS image_blobs_blob ON image_blobs(blob_digest);
CREATE TABLE IF NOT EXISTS image_layers (
    manifest_digest TEXT NOT NULL REFERENCES images(manifest_digest) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    chain_id TEXT NOT NULL,
    blob_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (manifest_digest, idx)
);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS refs (
    name TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL REFERENCES images(manifest_digest) ON DELETE CASCADE,
    tagged REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    lease TEXT NOT NULL,
    target TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (lease, target)
);
CREATE TABLE IF NOT EXISTS unpacked (
    chain_id TEXT PRIMARY KEY,
    parent TEXT,
    diff_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    unpacked_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class LayerRow:
    idx: int
    diff_id: str
    chain_id: str
    blob_digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class ImageRow:
    manifest_digest: str
    media_type: str
    manifest_size: int
    config_digest: str
    created: str | None
    added: float
    size: int


@dataclass(frozen=True, slots=True)
class UnpackedRow:
    chain_id: str
    parent: str | None
    diff_id: str
    size: int
    unpacked_at: float


class Metadata:
    """Typed access to strata.db. One instance per process; not shared across threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._enable_wal()
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.migrate()

    def _enable_wal(self, deadline_s: float = 60.0) -> None:
        """Switch to WAL. Two processes opening a new store at once can get SQLITE_BUSY from
        this pragma without SQLite's busy handler being consulted, so retry it here."""
        give_up = time.monotonic() + deadline_s
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > give_up:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; rolled back on any exception."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def migrate(self) -> None:
        # CREATE ... IF NOT EXISTS is idempotent; executescript runs it as its own transaction.
        self.conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA_V1 + "COMMIT;")
        with self.transaction() as c:
            row = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                c.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path} has schema {row[0]}, newer than this strata")

    def schema_version(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ images

    def put_image(self, image: ImageRow, blobs: Iterable[str], layers: Iterable[LayerRow]) -> None:
        """Insert (or keep) an image row with its blobs and layers; idempotent."""
        with self.transaction() as c:
            exists = c.execute("SELECT 1 FROM images WHERE manifest_digest=?",
                               (image.manifest_digest,)).fetchone()
            if exists:
                return
            c.execute("INSERT INTO images VALUES (?,?,?,?,?,?,?)",
                      (image.manifest_digest, image.media_type, image.manifest_size,
                       image.config_digest, image.created, image.added, image.size))
            c.executemany("INSERT OR IGNORE INTO image_blobs VALUES (?,?)",
                          [(image.manifest_digest, b) for b in blobs])
            c.executemany("INSERT INTO image_layers VALUES (?,?,?,?,?,?,?)",
                          [(image.manifest_digest, la.idx, la.diff_id, la.chain_id,
                            la.blob_digest, la.media_type, la.size) for la in layers])

    def image(self, manifest_digest: str) -> ImageRow | None:
        row = self.conn.execute("SELECT * FROM images WHERE manifest_digest=?",
                                (manifest_digest,)).fetchone()
        return ImageRow(*row) if row else None

    def images(self) -> list[ImageRow]:
        return [ImageRow(*r) for r in self.conn.execute(
            "SELECT * FROM images ORDER BY added DESC, manifest_digest")]

    def images_by_config_prefix(self, prefix: str) -> list[ImageRow]:
        return [ImageRow(*r) for r in self.conn.execute(
            "SELECT * FROM images WHERE config_digest LIKE ? OR manifest_digest LIKE ?",
            (prefix + "%", prefix + "%"))]

    def layers(self, manifest_digest: str) -> list[LayerRow]:
        return [LayerRow(*r) for r in self.conn.execute(
            "SELECT idx, diff_id, chain_id, blob_digest, media_type, size FROM image_layers "
            "WHERE manifest_digest=? ORDER BY idx", (manifest_digest,))]

    def image_blobs(self, manifest_digest: str) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT blob_digest FROM image_blobs WHERE manifest_digest=?", (manifest_digest,))]

    def delete_image(self, manifest_digest: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM refs WHERE manifest_digest=?", (manifest_digest,))
            c.execute("DELETE FROM image_blobs WHERE manifest_digest=?", (manifest_digest,))
            c.execute("DELETE FROM image_layers WHERE manifest_digest=?", (manifest_digest,))
            c.execute("DELETE FROM images WHERE manifest_digest=?", (manifest_digest,))

    def referenced_blobs(self) -> set[str]:
        """Blobs an image needs, plus leased targets."""
        return {r[0] for r in self.conn.execute(
            "SELECT blob_digest FROM image_blobs UNION SELECT target FROM leases")}

    def referenced_chains(self) -> set[str]:
        """Chain IDs of image layers, plus leased targets."""
        return {r[0] for r in self.conn.execute(
            "SELECT chain_id FROM image_layers UNION SELECT target FROM leases")}

    # ------------------------------------------------------------------ leases

    def add_lease(self, lease: str, targets: Iterable[str]) -> None:
        """Protect blob digests or chain IDs from prune/rmi until `delete_lease(lease)`."""
        with self.transaction() as c:
            c.executemany("INSERT OR IGNORE INTO leases VALUES (?,?,?)",
                          [(lease, t, time.time()) for t in targets])

    def delete_lease(self, lease: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM leases WHERE lease=?", (lease,))

    def leases(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT lease, target FROM leases ORDER BY lease, target")]

    def chain_users(self, chain_id: str) -> int:
        row = self.conn.execute("SELECT COUNT(DISTINCT manifest_digest) FROM image_layers "
                                "WHERE chain_id=?", (chain_id,)).fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ refs

    def set_ref(self, name: str, manifest_digest: str) -> str | None:
        """Point `name` at an image; returns the manifest digest it pointed at before."""
        with self.transaction() as c:
            row = c.execute("SELECT manifest_digest FROM refs WHERE name=?", (name,)).fetchone()
            c.execute("INSERT OR REPLACE INTO refs VALUES (?,?,?)",
                      (name, manifest_digest, time.time()))
        return row[0] if row else None

    def delete_ref(self, name: str) -> bool:
        with self.transaction() as c:
            cur = c.execute("DELETE FROM refs WHERE name=?", (name,))
        return cur.rowcount > 0

    def ref(self, name: str) -> str | None:
        row = self.conn.execute("SELECT manifest_digest FROM refs WHERE name=?",
                                (name,)).fetchone()
        return row[0] if row else None

    def refs(self) -> list[tuple[str, str, float]]:
        return [(r[0], r[1], r[2]) for r in self.conn.execute(
            "SELECT name, manifest_digest, tagged FROM refs ORDER BY name")]

    def refs_of(self, manifest_digest: str) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT name FROM refs WHERE manifest_digest=? ORDER BY name", (manifest_digest,))]

    # ------------------------------------------------------------------ unpacked layers

    def put_unpacked(self, row: UnpackedRow) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO unpacked VALUES (?,?,?,?,?)",
                      (row.chain_id, row.parent, row.diff_id, row.size, row.unpacked_at))

    def unpacked(self, chain_id: str) -> UnpackedRow | None:
        row = self.conn.execute("SELECT * FROM unpacked WHERE chain_id=?",
                                (chain_id,)).fetchone()
        return UnpackedRow(*row) if row else None

    def all_unpacked(self) -> list[UnpackedRow]:
        return [UnpackedRow(*r) for r in self.conn.execute(
            "SELECT * FROM unpacked ORDER BY chain_id")]

    def delete_unpacked(self, chain_id: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM unpacked WHERE chain_id=?", (chain_id,))
