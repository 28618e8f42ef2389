"""SearchIndex: a derived, rebuildable full-text index of repositories (SQLite FTS5).

One document per repository, made of its name, its tags, and for every tagged manifest the
image config labels and the manifest's annotations (`org.opencontainers.image.description`
and friends). The tables live in the registry's metadata database file (their own connection,
their own `search_*` tables); storage stays the source of truth: `refresh(repo)` recomputes a
repository's document from the store, and `rebuild()` (`strata-registry reindex`) recomputes
them all. The server calls `schedule(repo)` from the store's manifest-change listener.

Ranking is FTS5 bm25 with column weights (name 10, description 5, tags 3, labels and
annotations 2); query words match as prefixes, and a repository whose name merely contains
the query text is returned after the full-text hits.

What one request can cost is bounded: a query is at most MAX_QUERY_CHARS characters and
MAX_QUERY_WORDS words, a page is counted and cut in SQL, and a document holds at most
MAX_TAGS tags and MAX_ENTRIES labels and annotations, each value cut to MAX_VALUE_CHARS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from registry.oci import mediatypes as mt
from registry.oci.digest import Digest
from registry.oci.errors import RegistryError, SearchQueryInvalid
from registry.oci.manifest import ImageIndex, ImageManifest, parse_manifest_off_loop
from registry.storage.cache import WeightedLRU

log = logging.getLogger("registry.search")
T = TypeVar("T")

DESCRIPTION_KEYS = ("org.opencontainers.image.description", "description",
                    "org.label-schema.description")
MAX_CONFIG_BYTES = 1024 * 1024
REFRESH_TRIES = 5  # writes of one document before a refresh gives up on a repository in flux
MAX_QUERY_CHARS = 256
MAX_QUERY_WORDS = 16
MAX_TAGS = 256  # a document's tags: the first in lexical order
MAX_ENTRIES = 128  # a document's labels, and its annotations
MAX_KEY_CHARS = 256  # a longer label or annotation key is left out
MAX_VALUE_CHARS = 1024  # a longer value is cut
FACTS_CACHE_CHARS = 8 * 1024 * 1024  # what the per-manifest facts cache holds at most
_WORD = re.compile(r"\w+", re.UNICODE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS search_repos (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '{}',
    annotations TEXT NOT NULL DEFAULT '{}',
    updated_at REAL NOT NULL DEFAULT 0
);
CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(
    name, description, tags, labels, annotations,
    tokenize = "unicode61 remove_diacritics 2"
);
"""


class _Manifests(Protocol):
    async def get(self, repo: str, reference: str) -> Any: ...
    async def tag_targets(self, repo: str) -> list[tuple[str, Digest]]: ...
    async def catalog(self, n: int | None = None, last: str | None = None) -> list[str]: ...


class _Blobs(Protocol):
    async def stat(self, repo: str, digest: Digest) -> Any: ...
    def read(self, repo: str, digest: Digest, start: int = 0,
             end: int | None = None) -> Any: ...


class Store(Protocol):
    """The part of RegistryStore the index reads."""

    @property
    def manifests(self) -> _Manifests: ...
    @property
    def blobs(self) -> _Blobs: ...


@dataclass(frozen=True, slots=True)
class SearchHit:
    name: str
    description: str
    tags: tuple[str, ...]
    labels: dict[str, str] = field(compare=False)
    annotations: dict[str, str] = field(compare=False)
    score: float
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "tags": list(self.tags),
                "labels": self.labels, "annotations": self.annotations,
                "score": round(self.score, 4), "updated_at": self.updated_at}


@dataclass(frozen=True, slots=True)
class SearchPage:
    query: str
    total: int
    page: int
    page_size: int
    hits: tuple[SearchHit, ...]

    @property
    def num_pages(self) -> int:
        return (self.total + self.page_size - 1) // self.page_size if self.page_size else 0


@dataclass(slots=True)
class RepoFacts:
    """What the index knows of one repository, gathered from storage."""

    name: str
    tags: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def description(self) -> str:
        for source in (self.annotations, self.labels):
            for key in DESCRIPTION_KEYS:
                if source.get(key):
                    return source[key]
        return ""


@dataclass(frozen=True, slots=True)
class ManifestFacts:
    """What one manifest brings to its repository's document (within the bounds)."""

    annotations: dict[str, str]
    labels: dict[str, str]

    @property
    def chars(self) -> int:
        return sum(len(k) + len(v) for d in (self.annotations, self.labels)
                   for k, v in d.items()) + 64


def _merge_into(target: dict[str, str], pairs: Iterable[tuple[object, object]]) -> None:
    """Add text pairs to `target` within the document bounds: values cut to MAX_VALUE_CHARS,
    over-long keys, non-text and entries past MAX_ENTRIES left out."""
    for key, value in pairs:
        if not (isinstance(key, str) and isinstance(value, str)) or len(key) > MAX_KEY_CHARS \
                or not (_is_text(key) and _is_text(value)):
            continue
        if key in target or len(target) < MAX_ENTRIES:
            target[key] = value[:MAX_VALUE_CHARS]


def check_query(text: str) -> None:
    """SearchQueryInvalid for text no search should take: too long, too many words, or a
    control character (SQLite's LIKE ends a pattern at NUL, which would match everything)."""
    if len(text) > MAX_QUERY_CHARS:
        raise SearchQueryInvalid(f"the query is {len(text)} characters; the limit is "
                                 f"{MAX_QUERY_CHARS}", detail={"length": len(text)})
    if _CONTROL.search(text):
        raise SearchQueryInvalid("the query holds a control character")
    words = len(_WORD.findall(text))
    if words > MAX_QUERY_WORDS:
        raise SearchQueryInvalid(f"the query has {words} words; the limit is "
                                 f"{MAX_QUERY_WORDS}", detail={"words": words})


def fts_query(text: str) -> str | None:
    """User text -> an FTS5 query: every word must match as a prefix (None: nothing to match)."""
    words = _WORD.findall(text.lower())
    if not words:
        return None
    return " ".join(f'"{w}"*' for w in words)


def _is_text(value: object) -> bool:
    """Whether str(value) is Unicode text SQLite can store (no lone surrogate)."""
    try:
        str(value).encode()
    except UnicodeEncodeError:
        return False
    return True


class SearchIndex:
    """The index over one SQLite file. Its SQLite work runs in one thread of its own, so a
    slow search queues only other searches and index writes, never the server's file I/O."""

    def __init__(self, db_path: Path, store: Store) -> None:
        self._db_path = db_path
        self._store = store
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="search")
        self._lock = threading.Lock()  # for callers that use the connection from elsewhere
        self._conn = sqlite3.connect(db_path, check_same_thread=False, timeout=30,
                                     isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._pending: set[str] = set()
        self._facts: WeightedLRU[ManifestFacts] = WeightedLRU(
            lambda facts: facts.chars, FACTS_CACHE_CHARS, FACTS_CACHE_CHARS)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, db_path: Path, store: Store) -> SearchIndex:
        return await asyncio.to_thread(cls, db_path, store)

    async def close(self) -> None:
        await self.drain()
        await self._run(self._conn.close)
        self._executor.shutdown(wait=False)  # idle: the close above already ran in it

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ------------------------------------------------------------------ updates

    def schedule(self, repo: str) -> None:
        """Refresh `repo` soon (coalesced); safe to call from the store's listener on the loop."""
        if repo in self._pending:
            return
        self._pending.add(repo)
        task = asyncio.get_running_loop().create_task(self._refresh_pending(repo))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every scheduled refresh (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _refresh_pending(self, repo: str) -> None:
        await asyncio.sleep(0)
        self._pending.discard(repo)
        try:
            await self.refresh(repo)
        except Exception:
            log.exception("search index refresh of %s failed", repo)

    async def refresh(self, repo: str) -> None:
        """Recompute one repository's document from storage (removed when it has no tags).

        Worker processes refresh concurrently, and a refresh that read the tags before
        another's change could write after it. So each write is checked against the tags as
        they are afterwards, and redone from them until the two agree: the last write of a
        repository's document is always one made from its current tags.
        """
        for _ in range(REFRESH_TRIES):
            state = await self._tag_state(repo)
            facts = await self._gather(repo, state)
            await self._run(self._write, repo, facts)
            if await self._tag_state(repo) == state:
                return
        log.warning("search index: %s kept changing while being indexed; its document may "
                    "lag until its next change", repo)

    async def rebuild(self) -> int:
        """Recompute every document from the store's catalog and drop the documents of
        repositories gone from it; returns the repository count. Searches meanwhile see the
        old documents, never an empty index."""
        repos: list[str] = []
        last: str | None = None
        while True:
            page = await self._store.manifests.catalog(1000, last)
            repos.extend(page)
            if len(page) < 1000:
                break
            last = page[-1]
        for repo in repos:
            await self.refresh(repo)
        await self._run(self._drop_all_but, set(repos))
        return len(repos)

    async def _tag_state(self, repo: str) -> tuple[tuple[str, str], ...]:
        """The repository's tags and the digests they name, sorted (empty when unknown), in
        one read however many tags there are."""
        return tuple(sorted((tag, str(digest))
                            for tag, digest in await self._store.manifests.tag_targets(repo)))

    async def _gather(self, repo: str, state: tuple[tuple[str, str], ...]) -> RepoFacts | None:
        """The document for `state`, its manifests read by digest."""
        if not state:
            return None
        state = state[:MAX_TAGS]
        facts = RepoFacts(repo, [tag for tag, _ in state])
        for digest in dict.fromkeys(digest for _, digest in state):
            found = await self._manifest_facts(repo, digest)
            if found is not None:
                _merge_into(facts.annotations, found.annotations.items())
                _merge_into(facts.labels, found.labels.items())
        return facts

    async def _manifest_facts(self, repo: str, digest: str) -> ManifestFacts | None:
        """What one manifest adds to a document (None: not in `repo`). Remembered by digest,
        as manifests and configs never change: a tag push re-reads only the new manifest,
        not every tagged one (a 4 MiB manifest costs 0.1-0.2 s to parse)."""
        known = self._facts.get(digest)
        if known is not None:
            return known
        try:
            stored = await self._store.manifests.get(repo, digest)
            manifest = await parse_manifest_off_loop(stored.data)
        except RegistryError:
            return None
        facts = ManifestFacts({}, {})
        complete = True  # (a pull-through cache may not hold a child or a config yet)
        if manifest.annotations:
            _merge_into(facts.annotations, manifest.annotations.items())
        if isinstance(manifest, ImageIndex) and manifest.manifests:
            try:  # labels of the first platform speak for all
                stored = await self._store.manifests.get(repo, str(manifest.manifests[0].digest))
                manifest = await parse_manifest_off_loop(stored.data)
            except RegistryError:
                complete = False
        if isinstance(manifest, ImageManifest) and manifest.config.media_type in mt.CONFIGS:
            labels = await self._config_labels(repo, manifest.config.digest)
            complete = complete and labels is not None
            _merge_into(facts.labels, labels or [])
        if complete:
            self._facts.put(digest, facts)
        return facts

    async def _config_labels(self, repo: str, digest: Digest) -> list[tuple[str, str]] | None:
        """The config's labels; None when the repository does not hold the config (yet)."""
        try:
            info = await self._store.blobs.stat(repo, digest)
        except RegistryError:
            return None
        try:
            if info.size > MAX_CONFIG_BYTES:
                return []
            chunks = []
            async for chunk in self._store.blobs.read(repo, digest):
                chunks.append(chunk)
            config = json.loads(b"".join(chunks))
        except (RegistryError, ValueError, OSError, RecursionError):
            return []
        inner = config.get("config") if isinstance(config, dict) else None
        labels = inner.get("Labels") if isinstance(inner, dict) else None
        if not isinstance(labels, dict):
            return []
        return [(str(k), str(v)) for k, v in labels.items()]

    def _write(self, repo: str, facts: RepoFacts | None) -> None:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT id FROM search_repos WHERE name = ?", (repo,)).fetchone()
                if row is not None:
                    conn.execute("DELETE FROM search_fts WHERE rowid = ?", (row[0],))
                if facts is None:
                    conn.execute("DELETE FROM search_repos WHERE name = ?", (repo,))
                else:
                    values = (facts.description, json.dumps(facts.tags),
                              json.dumps(facts.labels, sort_keys=True),
                              json.dumps(facts.annotations, sort_keys=True), time.time())
                    if row is None:
                        cur = conn.execute(
                            "INSERT INTO search_repos (name, description, tags, labels, "
                            "annotations, updated_at) VALUES (?, ?, ?, ?, ?, ?)", (repo, *values))
                        rowid = cur.lastrowid
                    else:
                        rowid = row[0]
                        conn.execute(
                            "UPDATE search_repos SET description = ?, tags = ?, labels = ?, "
                            "annotations = ?, updated_at = ? WHERE id = ?", (*values, rowid))
                    conn.execute(
                        "INSERT INTO search_fts (rowid, name, description, tags, labels, "
                        "annotations) VALUES (?, ?, ?, ?, ?, ?)",
                        (rowid, _name_text(repo), facts.description, " ".join(facts.tags),
                         _pairs_text(facts.labels.items()),
                         _pairs_text(facts.annotations.items())))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _drop_all_but(self, repos: set[str]) -> None:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                for rowid, name in conn.execute("SELECT id, name FROM search_repos").fetchall():
                    if name not in repos:
                        conn.execute("DELETE FROM search_fts WHERE rowid = ?", (rowid,))
                        conn.execute("DELETE FROM search_repos WHERE id = ?", (rowid,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ queries

    async def search(self, text: str, page: int = 1, page_size: int = 25) -> SearchPage:
        """Ranked repositories matching `text` (all repositories, by name, for empty text).
        SearchQueryInvalid for text over the query bounds (check_query)."""
        text = text.strip()
        check_query(text)
        return await self._run(self._search, text, max(page, 1), max(page_size, 1))

    def _search(self, text: str, page: int, page_size: int) -> SearchPage:
        if not text:
            hits_sql, args = "SELECT id, 0.0 AS rank, 0 AS grp FROM search_repos", []
        else:
            # Full-text hits by rank, then repositories whose name merely contains the text
            # (text without a word, "-" or an emoji, matches names only).
            like = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%") \
                .replace("_", "\\_") + "%"
            hits_sql = ("SELECT id, 0.0 AS rank, 1 AS grp FROM search_repos"
                        " WHERE name LIKE ? ESCAPE '\\'")
            args = [like]
            query = fts_query(text)
            if query is not None:
                hits_sql = ("SELECT rowid AS id, bm25(search_fts, 10.0, 5.0, 3.0, 2.0, 2.0)"
                            " AS rank, 0 AS grp FROM search_fts WHERE search_fts MATCH ?"
                            f" UNION ALL {hits_sql} AND id NOT IN"
                            " (SELECT rowid FROM search_fts WHERE search_fts MATCH ?)")
                args = [query, like, query]
        start = (page - 1) * page_size
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")  # one snapshot for the count and the page
            try:
                total = conn.execute(f"SELECT count(*) FROM ({hits_sql})", args).fetchone()[0]
                rows = [] if start >= total else conn.execute(
                    "SELECT r.name, r.description, r.tags, r.labels, r.annotations,"
                    f" r.updated_at, h.rank FROM ({hits_sql}) h JOIN search_repos r"
                    " ON r.id = h.id ORDER BY h.grp, h.rank, r.name LIMIT ? OFFSET ?",
                    [*args, page_size, start]).fetchall()
            finally:
                conn.execute("COMMIT")
        hits = tuple(
            SearchHit(name=r[0], description=r[1], tags=tuple(json.loads(r[2])),
                      labels=json.loads(r[3]), annotations=json.loads(r[4]),
                      score=-float(r[6]), updated_at=float(r[5]))
            for r in rows)
        return SearchPage(text, total, page, page_size, hits)


def _name_text(repo: str) -> str:
    """Index `a/b-c` as `a/b-c a b c` so each component matches on its own."""
    parts = [p for p in re.split(r"[/._-]+", repo) if p]
    return " ".join([repo, *parts])


def _pairs_text(pairs: Iterable[tuple[str, str]]) -> str:
    return " ".join(f"{k} {v}" for k, v in pairs)
