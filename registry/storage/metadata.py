"""The SQLite metadata index: repositories, blob links, manifests, tags, referrers.

One database file (`<root>/metadata.db`, WAL) shared by every worker process. Each
MetadataIndex owns one connection used only from its own single worker thread, so SQLite
calls never run on the event loop and never share a connection across threads. Writes run
in `BEGIN IMMEDIATE` transactions (serialized across processes by SQLite's write lock, with a
busy timeout); reads see the last committed state. The schema is versioned with
`PRAGMA user_version` and upgraded in place by the MIGRATIONS table.

After every committed write the index rewrites the shared Generation (a mmap'd file), which
is how caches in any process learn that something changed without a system call.
"""

from __future__ import annotations

import asyncio
import json
import mmap
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from registry.oci.digest import is_digest
from registry.oci.errors import ManifestBlobUnknown, PreconditionFailed
from registry.storage.values import WriteCondition

T = TypeVar("T")

SCHEMA_VERSION = 2

MIGRATIONS: dict[int, tuple[str, ...]] = {
    # version reached -> statements that take the schema from version-1 to it
    1: (
        "CREATE TABLE repositories (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
        " created_at REAL NOT NULL)",
        "CREATE TABLE blobs (digest TEXT PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE TABLE blob_links (repo_id INTEGER NOT NULL, digest TEXT NOT NULL,"
        " PRIMARY KEY (repo_id, digest)) WITHOUT ROWID",
        "CREATE INDEX blob_links_by_digest ON blob_links (digest)",
        "CREATE TABLE manifests (repo_id INTEGER NOT NULL, digest TEXT NOT NULL,"
        " media_type TEXT NOT NULL, size INTEGER NOT NULL, subject TEXT, artifact_type TEXT,"
        " annotations TEXT, created_at REAL NOT NULL,"
        " PRIMARY KEY (repo_id, digest)) WITHOUT ROWID",
        "CREATE INDEX manifests_by_subject ON manifests (repo_id, subject)"
        " WHERE subject IS NOT NULL",
        "CREATE TABLE tags (repo_id INTEGER NOT NULL, name TEXT NOT NULL,"
        " digest TEXT NOT NULL, updated_at REAL NOT NULL,"
        " PRIMARY KEY (repo_id, name)) WITHOUT ROWID",
        "CREATE INDEX tags_by_digest ON tags (repo_id, digest)",
    ),
    # tags list in the spec's lexical order: case-insensitive, ties by the exact name
    2: ("CREATE INDEX tags_in_lexical_order ON tags (repo_id, name COLLATE NOCASE, name)",),
}


class SchemaTooNew(RuntimeError):
    """The database was written by a newer strata; refuse rather than corrupt it."""


class Generation:
    """An 8-byte value in a shared mmap'd file; every committed change writes a fresh one.

    `value()` is a plain memory read (safe on the event loop). A reader that captured a value
    before reading the database and still sees it afterwards knows no commit happened since
    any change it missed (writers rewrite the value after their commit; values never repeat).
    """

    SIZE = 8

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < mmap.PAGESIZE:
                os.ftruncate(fd, mmap.PAGESIZE)
            self._map = mmap.mmap(fd, mmap.PAGESIZE)
        finally:
            os.close(fd)
        self._rng = random.Random()

    def value(self) -> bytes:
        return self._map[: self.SIZE]

    def bump(self) -> None:
        self._map[: self.SIZE] = self._rng.getrandbits(64).to_bytes(self.SIZE, "little")

    def close(self) -> None:
        self._map.close()


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    subject: str | None = None
    artifact_type: str | None = None
    annotations: str | None = None  # JSON object text

    def annotations_dict(self) -> dict[str, str] | None:
        return json.loads(self.annotations) if self.annotations else None


@dataclass(frozen=True, slots=True)
class StoredManifestEntry:
    """One manifest of one repository, as the garbage-collection mark reads it."""

    repo: str
    digest: str
    media_type: str
    subject: str | None  # the manifest it refers to (a referrer), if any
    tagged: bool  # a tag of `repo` points at it


@dataclass(frozen=True, slots=True)
class Sweep:
    """What a garbage-collection sweep removed (or, rolled back, would remove)."""

    manifests: tuple[tuple[str, str], ...]  # (repository, digest) of the manifests dropped
    links: int  # repository links to blobs no manifest of that repository needs
    blobs: tuple[tuple[str, int], ...]  # (digest, size) of blobs no repository links now


class CollectionConflict(RuntimeError):
    """A manifest (or, when untagged ones go, a tag) was written while garbage was being
    collected: nothing was removed."""


_MANIFEST_COLUMNS = "m.digest, m.media_type, m.size, m.subject, m.artifact_type, m.annotations"
_REPO_ID = "(SELECT id FROM repositories WHERE name = ?)"
_DESCRIPTOR_CHARS = 320  # a descriptor's JSON but its annotations and artifactType, at most


class MetadataIndex:
    """Async facade over one SQLite connection living in one dedicated thread."""

    def __init__(self, path: Path, generation: Generation) -> None:
        self.path = path
        self.generation = generation
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strata-meta")
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path, generation_path: Path) -> MetadataIndex:
        loop = asyncio.get_running_loop()
        generation = await loop.run_in_executor(None, Generation, generation_path)
        index = cls(path, generation)
        try:
            await index._call(index._connect)
        except BaseException:
            await index.close()
            raise
        return index

    async def close(self) -> None:
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=False)  # idle: the close above already ran in it
        self.generation.close()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ------------------------------------------------------------------ connection, schema

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30.0, cached_statements=256)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        self._conn = conn
        with self._write() as cur:  # one process at a time creates or upgrades the schema
            version = cur.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(f"{self.path} has schema {version}; this strata knows "
                                   f"{SCHEMA_VERSION}")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target]:
                    cur.execute(statement)
                cur.execute(f"PRAGMA user_version = {target}")

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "metadata index is closed"
        return self._conn

    def _write(self, rollback: bool = False) -> _WriteTxn:
        return _WriteTxn(self, rollback)

    def _rows(self, sql: str, args: Sequence[Any]) -> list[Any]:
        return self.conn.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ reads

    async def blob_link_size(self, repo: str, digest: str) -> int | None:
        """Size of `digest` when linked into `repo`, else None."""
        rows = await self._call(self._rows,
                                "SELECT b.size FROM blob_links l JOIN blobs b USING (digest)"
                                f" WHERE l.repo_id = {_REPO_ID} AND l.digest = ?",
                                (repo, digest))
        return rows[0][0] if rows else None

    async def blob_size(self, digest: str) -> int | None:
        """Size of a blob known to the registry (in any repository), else None."""
        rows = await self._call(self._rows, "SELECT size FROM blobs WHERE digest = ?",
                                (digest,))
        return rows[0][0] if rows else None

    async def linked_blob_size(self, digest: str) -> int | None:
        """Size of `digest` when some repository links it, else None (a blob every
        repository has let go of stays on disk but is nobody's content)."""
        rows = await self._call(self._rows,
                                "SELECT b.size FROM blobs b WHERE b.digest = ? AND EXISTS"
                                " (SELECT 1 FROM blob_links l WHERE l.digest = b.digest)",
                                (digest,))
        return rows[0][0] if rows else None

    async def manifest(self, repo: str, digest: str) -> ManifestRecord | None:
        rows = await self._call(self._rows,
                                f"SELECT {_MANIFEST_COLUMNS} FROM manifests m"
                                f" WHERE m.repo_id = {_REPO_ID} AND m.digest = ?",
                                (repo, digest))
        return ManifestRecord(*rows[0]) if rows else None

    async def manifest_by_tag(self, repo: str, tag: str) -> ManifestRecord | None:
        rows = await self._call(self._rows,
                                f"SELECT {_MANIFEST_COLUMNS} FROM tags t JOIN manifests m"
                                " ON m.repo_id = t.repo_id AND m.digest = t.digest"
                                f" WHERE t.repo_id = {_REPO_ID} AND t.name = ?",
                                (repo, tag))
        return ManifestRecord(*rows[0]) if rows else None

    def _tags(self, repo: str, n: int | None, last: str | None) -> list[str] | None:
        row = self.conn.execute("SELECT id FROM repositories WHERE name = ?",
                                (repo,)).fetchone()
        if row is None:
            return None
        # NOCASE folds ASCII only, which is all a tag can hold. The first bound lets SQLite
        # seek in the index; the row value alone would scan from the repository's first tag.
        after = last or ""
        return [r[0] for r in self.conn.execute(
            "SELECT name FROM tags WHERE repo_id = ? AND name COLLATE NOCASE >= ?"
            " AND (name COLLATE NOCASE, name) > (?, ?)"
            " ORDER BY name COLLATE NOCASE, name LIMIT ?",
            (row[0], after, after, after, -1 if n is None else n))]

    async def tags(self, repo: str, n: int | None = None,
                   last: str | None = None) -> list[str] | None:
        """Tag names after `last` in the spec's lexical order (case-insensitive, then exact),
        at most `n`; None when the repository is unknown."""
        return await self._call(self._tags, repo, n, last)

    async def tag_targets(self, repo: str) -> list[tuple[str, str]]:
        """Every tag of `repo` with the digest it names, by tag name (empty when unknown)."""
        rows = await self._call(self._rows,
                                f"SELECT name, digest FROM tags WHERE repo_id = {_REPO_ID}"
                                " ORDER BY name", (repo,))
        return [(r[0], r[1]) for r in rows]

    async def tags_of(self, repo: str, digest: str) -> list[str]:
        rows = await self._call(self._rows,
                                f"SELECT name FROM tags WHERE repo_id = {_REPO_ID}"
                                " AND digest = ? ORDER BY name", (repo, digest))
        return [r[0] for r in rows]

    async def catalog(self, n: int | None = None, last: str | None = None) -> list[str]:
        rows = await self._call(self._rows,
                                "SELECT name FROM repositories WHERE name > ?"
                                " ORDER BY name LIMIT ?", (last or "", -1 if n is None else n))
        return [r[0] for r in rows]

    def _referrers(self, repo: str, subject: str, artifact_type: str | None,
                   after: str | None, count: int | None,
                   max_bytes: int | None) -> tuple[list[ManifestRecord], bool]:
        where = f"m.repo_id = {_REPO_ID} AND m.subject = ?"
        args: list[Any] = [repo, subject]
        if artifact_type is not None:
            where += " AND m.artifact_type = ?"
            args.append(artifact_type)
        if after is not None:
            where += " AND m.digest > ?"
            args.append(after)
        conn = self.conn
        conn.execute("BEGIN")  # one snapshot for the sizes and the page
        try:
            more = False
            if count is not None or max_bytes is not None:
                # What each descriptor will weigh, without loading any annotations yet.
                sizes = conn.execute(
                    f"SELECT m.digest, {_DESCRIPTOR_CHARS} + coalesce(length(m.annotations), 0)"
                    " + coalesce(length(m.artifact_type), 0) FROM manifests m"
                    f" WHERE {where} ORDER BY m.digest LIMIT ?",
                    [*args, -1 if count is None else count + 1]).fetchall()
                take = total = 0
                for _, weight in sizes:
                    if take == count or (take and max_bytes is not None
                                         and total + weight > max_bytes):
                        break
                    take += 1
                    total += weight
                more = take < len(sizes)
                if not take:
                    return [], more
                where += " AND m.digest <= ?"
                args.append(sizes[take - 1][0])
            rows = conn.execute(f"SELECT {_MANIFEST_COLUMNS} FROM manifests m WHERE {where}"
                                " ORDER BY m.digest", args).fetchall()
        finally:
            conn.execute("COMMIT")
        return [ManifestRecord(*r) for r in rows], more

    async def referrers(self, repo: str, subject: str, artifact_type: str | None = None,
                        after: str | None = None, count: int | None = None,
                        max_bytes: int | None = None) -> tuple[list[ManifestRecord], bool]:
        """The manifests of `repo` whose subject is `subject` (of one `artifact_type`), in
        digest order after `after`: at most `count`, and no more than fit `max_bytes` as
        descriptors (one at least). The flag says whether more follow."""
        return await self._call(self._referrers, repo, subject, artifact_type, after, count,
                                max_bytes)

    # ------------------------------------------------------------------ garbage collection

    async def all_manifests(self) -> list[StoredManifestEntry]:
        """Every manifest of every repository, for the mark phase."""
        rows = await self._call(self._rows,
                                "SELECT r.name, m.digest, m.media_type, m.subject,"
                                " EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id"
                                " AND t.digest = m.digest) FROM manifests m"
                                " JOIN repositories r ON r.id = m.repo_id"
                                " ORDER BY r.name, m.digest", ())
        return [StoredManifestEntry(str(r[0]), str(r[1]), str(r[2]), r[3], bool(r[4]))
                for r in rows]

    def _unknown_blobs(self, digests: Sequence[str]) -> list[str]:
        known: set[str] = set()
        for i in range(0, len(digests), 500):
            batch = digests[i:i + 500]
            known.update(str(r[0]) for r in self._rows(
                f"SELECT digest FROM blobs WHERE digest IN ({','.join('?' * len(batch))})",
                batch))
        return [d for d in digests if d not in known]

    async def unknown_blobs(self, digests: Sequence[str]) -> list[str]:
        """Those of `digests` the index has no blob record of."""
        return await self._call(self._unknown_blobs, tuple(digests))

    def _sweep(self, keep: Iterable[tuple[str, str]], drop: Iterable[tuple[str, str]],
               marked_at: float, dry_run: bool) -> Sweep:
        with self._write(rollback=dry_run) as cur:
            if cur.execute("SELECT 1 FROM manifests WHERE created_at >= ? LIMIT 1",
                           (marked_at,)).fetchone() is not None:
                raise CollectionConflict("a manifest was pushed while garbage was collected")
            for table in ("gc_keep", "gc_drop"):
                cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} (repo TEXT NOT NULL,"
                            " digest TEXT NOT NULL, PRIMARY KEY (repo, digest)) WITHOUT ROWID")
                cur.execute(f"DELETE FROM {table}")
            cur.executemany("INSERT OR IGNORE INTO gc_keep (repo, digest) VALUES (?, ?)", keep)
            cur.executemany("INSERT OR IGNORE INTO gc_drop (repo, digest) VALUES (?, ?)", drop)
            # Untagged manifests go first, and with them their own links (below) and their
            # entries as referrers. A tag moved since the mark may point at one of them.
            if drop and cur.execute(
                    "SELECT 1 FROM tags WHERE updated_at >= ? UNION ALL SELECT 1 FROM tags t"
                    " JOIN repositories r ON r.id = t.repo_id"
                    " JOIN gc_drop d ON d.repo = r.name AND d.digest = t.digest LIMIT 1",
                    (marked_at,)).fetchone() is not None:
                raise CollectionConflict("a tag was pushed while garbage was collected")
            manifests = tuple(sorted((str(r[0]), str(r[1])) for r in cur.execute(
                "DELETE FROM manifests AS m WHERE EXISTS (SELECT 1 FROM gc_drop d"
                " JOIN repositories r ON r.name = d.repo"
                " WHERE r.id = m.repo_id AND d.digest = m.digest)"
                " RETURNING (SELECT name FROM repositories WHERE id = repo_id), digest")))
            # A link stays when a manifest of its repository needs it, or is it.
            cur.execute(
                "DELETE FROM blob_links AS l WHERE NOT EXISTS (SELECT 1 FROM gc_keep k"
                " JOIN repositories r ON r.name = k.repo"
                " WHERE r.id = l.repo_id AND k.digest = l.digest)"
                " AND NOT EXISTS (SELECT 1 FROM manifests m"
                " WHERE m.repo_id = l.repo_id AND m.digest = l.digest)")
            links = cur.rowcount
            # A manifest's bytes stay while it is a manifest anywhere, even unlinked (a blob
            # DELETE of its digest unlinks them but leaves the manifest served).
            blobs = tuple((str(r[0]), int(r[1])) for r in cur.execute(
                "DELETE FROM blobs WHERE NOT EXISTS (SELECT 1 FROM blob_links l"
                " WHERE l.digest = blobs.digest) AND NOT EXISTS (SELECT 1 FROM manifests m"
                " WHERE m.digest = blobs.digest) RETURNING digest, size"))
            cur.execute("DELETE FROM gc_keep")
            cur.execute("DELETE FROM gc_drop")
            return Sweep(manifests, links, tuple(sorted(blobs)))

    async def sweep(self, keep: Iterable[tuple[str, str]], drop: Iterable[tuple[str, str]],
                    marked_at: float, dry_run: bool = False) -> Sweep:
        """In one transaction: remove the manifests in `drop` ((repository, digest) pairs the
        mark found untagged and unneeded), then every blob link no manifest of its
        repository needs (`keep`: (repository, digest) pairs the mark found needed), then
        the record of every blob no repository links any more and no repository has as a
        manifest. CollectionConflict, and nothing changes, when a manifest or a tag was
        written at or after `marked_at`. A `dry_run` rolls it all back and reports the
        same."""
        return await self._call(self._sweep, tuple(keep), tuple(drop), marked_at, dry_run)

    # ------------------------------------------------------------------ writes

    @staticmethod
    def _repo_id(cur: sqlite3.Cursor, repo: str) -> int:
        row = cur.execute("SELECT id FROM repositories WHERE name = ?", (repo,)).fetchone()
        if row is not None:
            return int(row[0])
        cur.execute("INSERT INTO repositories (name, created_at) VALUES (?, ?)",
                    (repo, time.time()))
        return int(cur.lastrowid or 0)

    def _link_blob(self, repo: str, digest: str, size: int) -> None:
        with self._write() as cur:
            cur.execute("INSERT OR IGNORE INTO blobs (digest, size) VALUES (?, ?)",
                        (digest, size))
            cur.execute("INSERT OR IGNORE INTO blob_links (repo_id, digest) VALUES (?, ?)",
                        (self._repo_id(cur, repo), digest))

    async def link_blob(self, repo: str, digest: str, size: int) -> None:
        """Record the blob globally and make it readable through `repo`."""
        await self._call(self._link_blob, repo, digest, size)

    def _unlink_blob(self, repo: str, digest: str) -> bool:
        with self._write() as cur:
            cur.execute(f"DELETE FROM blob_links WHERE repo_id = {_REPO_ID} AND digest = ?",
                        (repo, digest))
            return cur.rowcount > 0

    async def unlink_blob(self, repo: str, digest: str) -> bool:
        return await self._call(self._unlink_blob, repo, digest)

    @staticmethod
    def _check(cur: sqlite3.Cursor, repo: str, condition: WriteCondition | None,
               deleting: bool = False) -> None:
        """PreconditionFailed unless `condition` holds for what its reference names now (in
        the write transaction, so that no other write comes between). A delete of nothing
        ignores it: that answer is 404 whatever the condition (RFC 9110 §13.2.1)."""
        if condition is None:
            return
        if is_digest(condition.reference):
            row = cur.execute(f"SELECT digest FROM manifests WHERE repo_id = {_REPO_ID}"
                              " AND digest = ?", (repo, condition.reference)).fetchone()
        else:
            row = cur.execute(f"SELECT digest FROM tags WHERE repo_id = {_REPO_ID}"
                              " AND name = ?", (repo, condition.reference)).fetchone()
        current = None if row is None else str(row[0])
        if not (deleting and current is None) and not condition.holds(current):
            raise PreconditionFailed(detail={"reference": condition.reference,
                                             "current": current})

    @classmethod
    def _check_manifest(cls, cur: sqlite3.Cursor, repo: str, blobs: Iterable[str],
                        children: Iterable[str], condition: WriteCondition | None) -> None:
        cls._check(cur, repo, condition)
        for digest in dict.fromkeys(blobs):
            if cur.execute(f"SELECT 1 FROM blob_links WHERE repo_id = {_REPO_ID}"
                           " AND digest = ?", (repo, digest)).fetchone() is None:
                raise ManifestBlobUnknown(detail={"digest": digest})
        for digest in dict.fromkeys(children):
            if cur.execute(f"SELECT 1 FROM manifests WHERE repo_id = {_REPO_ID}"
                           " AND digest = ?", (repo, digest)).fetchone() is None:
                raise ManifestBlobUnknown(detail={"digest": digest})

    def _precheck_manifest(self, repo: str, blobs: Sequence[str], children: Sequence[str],
                           condition: WriteCondition | None) -> None:
        cur = self.conn.cursor()
        try:
            self._check_manifest(cur, repo, blobs, children, condition)
        finally:
            cur.close()

    async def check_manifest(self, repo: str, blobs: Iterable[str], children: Iterable[str],
                             condition: WriteCondition | None = None) -> None:
        """Raise what put_manifest would for these references and `condition` now, writing
        nothing: the store asks before it writes a manifest's bytes, so that a refused
        manifest leaves none behind. put_manifest checks again in its transaction."""
        await self._call(self._precheck_manifest, repo, tuple(blobs), tuple(children),
                         condition)

    def _put_manifest(self, repo: str, record: ManifestRecord, tags: Sequence[str],
                      blobs: Iterable[str], children: Iterable[str],
                      condition: WriteCondition | None) -> None:
        with self._write() as cur:
            self._check_manifest(cur, repo, blobs, children, condition)
            repo_id = self._repo_id(cur, repo)
            now = time.time()
            cur.execute("INSERT OR IGNORE INTO blobs (digest, size) VALUES (?, ?)",
                        (record.digest, record.size))
            cur.execute("INSERT OR IGNORE INTO blob_links (repo_id, digest) VALUES (?, ?)",
                        (repo_id, record.digest))
            cur.execute(
                "INSERT INTO manifests (repo_id, digest, media_type, size, subject,"
                " artifact_type, annotations, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (repo_id, digest) DO UPDATE SET media_type = excluded.media_type,"
                " subject = excluded.subject, artifact_type = excluded.artifact_type,"
                " annotations = excluded.annotations",
                (repo_id, record.digest, record.media_type, record.size, record.subject,
                 record.artifact_type, record.annotations, now))
            for tag in tags:
                cur.execute("INSERT INTO tags (repo_id, name, digest, updated_at)"
                            " VALUES (?, ?, ?, ?) ON CONFLICT (repo_id, name) DO UPDATE"
                            " SET digest = excluded.digest, updated_at = excluded.updated_at",
                            (repo_id, tag, record.digest, now))

    async def put_manifest(self, repo: str, record: ManifestRecord, tags: Sequence[str],
                           blobs: Iterable[str], children: Iterable[str],
                           condition: WriteCondition | None = None) -> None:
        """Atomically check references (and `condition`) and record the manifest and its tags.

        Every digest in `blobs` must be linked into `repo` and every one in `children` must
        be a manifest of `repo`, else ManifestBlobUnknown and nothing changes; a `condition`
        that does not hold is PreconditionFailed.
        """
        await self._call(self._put_manifest, repo, record, tuple(tags), tuple(blobs),
                         tuple(children), condition)

    def _delete_manifest(self, repo: str, digest: str,
                         condition: WriteCondition | None) -> list[str] | None:
        with self._write() as cur:
            self._check(cur, repo, condition, deleting=True)
            cur.execute(f"DELETE FROM manifests WHERE repo_id = {_REPO_ID} AND digest = ?",
                        (repo, digest))
            if cur.rowcount == 0:
                return None
            tags = [r[0] for r in cur.execute(
                f"DELETE FROM tags WHERE repo_id = {_REPO_ID} AND digest = ? RETURNING name",
                (repo, digest))]
            cur.execute(f"DELETE FROM blob_links WHERE repo_id = {_REPO_ID} AND digest = ?",
                        (repo, digest))
            return sorted(tags)

    async def delete_manifest(self, repo: str, digest: str,
                              condition: WriteCondition | None = None) -> list[str] | None:
        """Remove the manifest and every tag on it; the removed tags, or None if absent.
        PreconditionFailed (nothing removed) when `condition` does not hold."""
        return await self._call(self._delete_manifest, repo, digest, condition)

    def _delete_tag(self, repo: str, tag: str, condition: WriteCondition | None) -> str | None:
        with self._write() as cur:
            self._check(cur, repo, condition, deleting=True)
            row = cur.execute(f"DELETE FROM tags WHERE repo_id = {_REPO_ID} AND name = ?"
                              " RETURNING digest", (repo, tag)).fetchone()
            return None if row is None else str(row[0])

    async def delete_tag(self, repo: str, tag: str,
                         condition: WriteCondition | None = None) -> str | None:
        """Remove one tag; the digest it pointed at, or None if absent. PreconditionFailed
        (nothing removed) when `condition` does not hold."""
        return await self._call(self._delete_tag, repo, tag, condition)


class _WriteTxn:
    """`with index._write() as cur:` -> BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error),
    then a fresh Generation value so every process's caches drop what they hold."""

    __slots__ = ("_index", "_cur", "_rollback")

    def __init__(self, index: MetadataIndex, rollback: bool = False) -> None:
        self._index = index
        self._rollback = rollback  # a dry run: ROLLBACK even without an error

    def __enter__(self) -> sqlite3.Cursor:
        self._cur = self._index.conn.cursor()
        self._cur.execute("BEGIN IMMEDIATE")
        return self._cur

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and not self._rollback:
            self._cur.execute("COMMIT")
            self._index.generation.bump()
        else:
            self._cur.execute("ROLLBACK")
        self._cur.close()
