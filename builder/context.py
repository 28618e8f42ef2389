"""The build context: what COPY/ADD may read, and content checksums of it for cache keys.

Selection follows docker (BuildKit: dockerfile2llb copies with FollowSymlinks, AllowWildcard,
AllowEmptyWildcard, CopyDirContentsOnly; fsutil's copy and ``fs.RootPath``), checked against
docker 20.10's BuildKit on this machine:

* A source is a path relative to the context root; a leading ``/`` is the root itself. It is
  cleaned lexically first; a ``..`` that would climb above the root is refused with
  ContextError ``forbidden path outside the build context`` (BuildKit silently clamps it to
  the root; we refuse, as the legacy builder did, so a typo never reads a different file).
* Only what survives ``.dockerignore`` exists (BuildKit filters the context before the copy):
  an excluded path is ``not found``; an excluded directory that an exception (``!``) re-enters
  still exists, holding only the re-included entries.
* Symlinks on the way, *including the source itself*, are followed, but only inside the context:
  an absolute target restarts at the context root and ``..`` stops there
  (builder.layers.resolve). So ``COPY link /x`` copies the file the link names, and a link to
  ``/etc/passwd`` or ``../secret`` means ``<context>/etc/passwd`` / ``<context>/secret``, which
  is usually ``not found``; nothing outside the context is ever read. Every link followed and
  the final target must survive ``.dockerignore``. Inside a copied directory, symlinks are
  entries of their own (copied as links, hashed by their target text), never followed.
* A source whose components contain ``*``, ``?`` or ``[`` (unescaped) is a Go
  ``filepath.Match`` pattern: components up to the first wildcard are resolved as above, the
  rest are matched one component at a time (``*`` never crosses ``/``; matched directories are
  not followed through symlinks). No match is *not* an error (docker copies nothing) unless
  ``allow_empty_wildcard=False``. A path without wildcards that does not exist is NotFound
  ``"/path": not found``.
* ``COPY --exclude`` patterns (.dockerignore syntax) are matched like fsutil's copier: against
  paths relative to each matched source; they prune inside a copied directory only.

Checksums (what a COPY reads): one sha256 over, per source and per match, the match name, then
for the matched entry and its whole (post-ignore) subtree in walk order (depth first, names
sorted): relative path, type, mode bits (unless chmod_override), uid/gid (unless
chown_override), link target, and the sha256 of file contents. Never mtimes, inodes or host
paths, so two checkouts of the same tree on two machines give the same checksum.

File content hashes are remembered between builds in a metadata index: one SQLite file under
``state_dir`` keyed by (context root, relative path) and validated by (size, mtime_ns,
ctime_ns, inode, device, mode), so an unchanged context is re-stat'ed but never re-read. As in
git's racy-clean rule, a hash is only trusted when the file's mtime and ctime were at least
``racy_window_ns`` (2 s) older than the moment it was hashed: a write in the same timestamp
tick as the hash could otherwise go unnoticed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from builder.errors import InvalidArgument, NotFound
from builder.layers.resolve import resolve_with_links
from dockerfile_grammar.dockerignore import (
    DockerIgnore,
    DockerIgnoreError,
    compile_glob,
    find_ignore_file,
    walk_entries,
)
from registry.oci.digest import Digest, Digester

__all__ = [
    "INDEX_FILENAME",
    "RACY_WINDOW_NS",
    "BuildContext",
    "ContentHasher",
    "ContextEntry",
    "ContextError",
    "EntryKind",
    "SourceMatch",
    "sha256_stream",
]

INDEX_FILENAME = "context-index.sqlite"
RACY_WINDOW_NS = 2_000_000_000
_CHUNK = 1 << 20


class ContextError(InvalidArgument):
    """A source cannot be used: it leaves the context, or its pattern is malformed."""


class EntryKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    FIFO = "fifo"
    SOCKET = "socket"
    CHAR = "char"
    BLOCK = "block"


def _kind(mode: int) -> EntryKind:
    if stat.S_ISREG(mode):
        return EntryKind.FILE
    if stat.S_ISDIR(mode):
        return EntryKind.DIR
    if stat.S_ISLNK(mode):
        return EntryKind.SYMLINK
    if stat.S_ISFIFO(mode):
        return EntryKind.FIFO
    if stat.S_ISCHR(mode):
        return EntryKind.CHAR
    if stat.S_ISBLK(mode):
        return EntryKind.BLOCK
    return EntryKind.SOCKET


@dataclass(frozen=True, slots=True)
class ContextEntry:
    """One file system entry of the context. `relpath` is "/"-separated and relative to the
    context root ("" is the root); `hostpath` / `path` is where it lives on the host, for
    reading only (never hashed)."""

    relpath: str
    hostpath: str
    kind: EntryKind
    mode: int  # permission and setuid/setgid/sticky bits (st_mode & 0o7777)
    uid: int
    gid: int
    size: int
    link_target: str | None
    st: os.stat_result

    @property
    def path(self) -> Path:
        return Path(self.hostpath)


@dataclass(frozen=True, slots=True)
class SourceMatch:
    """What one COPY source selected.

    `name` is the matched path before following a final symlink (the destination takes its
    basename); `entry` is what it resolves to; `entries` is `entry` followed, for a directory,
    by its whole included subtree in walk order (a directory's *contents* are what COPY copies).
    """

    source: str
    name: str
    entry: ContextEntry
    entries: tuple[ContextEntry, ...]


ContentHasher = Callable[[io.BufferedReader], str]


def sha256_stream(stream: io.BufferedReader) -> str:
    """Hex sha256 of a stream, read in chunks (the default ContentHasher)."""
    return hashlib.file_digest(stream, "sha256").hexdigest()


# ------------------------------------------------------------------------------ metadata index


_Sig = tuple[int, int, int, int, int, int]


def _signature(st: os.stat_result) -> _Sig:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_mode)


class _MetadataIndex:
    """relpath -> (stat signature, sha256, hashed_at_ns) for one context root, in SQLite."""

    def __init__(self, db_path: Path | None, root_key: str, racy_window_ns: int) -> None:
        self._root_key = root_key
        self._racy = racy_window_ns
        self._rows: dict[str, tuple[_Sig, str, int]] = {}
        self._dirty: dict[str, tuple[_Sig, str, int]] = {}
        self._gone: set[str] = set()
        self._db: sqlite3.Connection | None = None
        if db_path is not None:
            self._db = self._connect(db_path)
            if self._db is not None:
                self._load()

    @staticmethod
    def _connect(db_path: Path) -> sqlite3.Connection | None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(2):
            try:
                db = sqlite3.connect(db_path, timeout=30, check_same_thread=False)
                db.execute(
                    "CREATE TABLE IF NOT EXISTS files (root TEXT NOT NULL, relpath BLOB NOT NULL,"
                    " size INT, mtime_ns INT, ctime_ns INT, ino INT, dev INT, mode INT,"
                    " sha256 TEXT NOT NULL, hashed_ns INT NOT NULL, PRIMARY KEY (root, relpath))"
                )
                db.commit()
                return db
            except sqlite3.DatabaseError:
                # a corrupt index is only a cache: start over once, else run without it
                if attempt == 0:
                    db_path.unlink(missing_ok=True)
        return None

    def _load(self) -> None:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT relpath, size, mtime_ns, ctime_ns, ino, dev, mode, sha256, hashed_ns"
            " FROM files WHERE root = ?", (self._root_key,)
        )
        for rel, size, mtime, ctime, ino, dev, mode, digest, hashed in rows:
            self._rows[os.fsdecode(rel)] = ((size, mtime, ctime, ino, dev, mode), digest, hashed)

    def lookup(self, relpath: str, st: os.stat_result) -> str | None:
        row = self._rows.get(relpath)
        if row is None:
            return None
        sig, digest, hashed_ns = row
        if sig != _signature(st):
            return None
        if max(st.st_mtime_ns, st.st_ctime_ns) + self._racy > hashed_ns:
            return None  # racily clean: the hash may predate a same-tick write
        return digest

    def record(self, relpath: str, st: os.stat_result, digest: str, hashed_ns: int) -> None:
        row = (_signature(st), digest, hashed_ns)
        self._rows[relpath] = row
        self._dirty[relpath] = row

    def retain(self, relpaths: set[str]) -> None:
        """Forget every file not in `relpaths` (called after a walk of the whole context)."""
        for rel in [r for r in self._rows if r not in relpaths]:
            del self._rows[rel]
            self._dirty.pop(rel, None)
            self._gone.add(rel)

    def flush(self) -> None:
        """Write recorded hashes and removals in one transaction (atomic: all or none)."""
        if self._db is None or not (self._dirty or self._gone):
            self._dirty.clear()
            self._gone.clear()
            return
        batch = [(self._root_key, os.fsencode(rel), *sig, digest, hashed)
                 for rel, (sig, digest, hashed) in self._dirty.items()]
        with self._db:
            self._db.executemany(
                "DELETE FROM files WHERE root = ? AND relpath = ?",
                [(self._root_key, os.fsencode(rel)) for rel in self._gone],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO files (root, relpath, size, mtime_ns, ctime_ns, ino, dev,"
                " mode, sha256, hashed_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch
            )
        self._dirty.clear()
        self._gone.clear()

    def close(self) -> None:
        if self._db is not None:
            self.flush()
            self._db.close()
            self._db = None


# ------------------------------------------------------------------------------ patterns


def _has_wildcard(component: str) -> bool:
    escaped = False
    for ch in component:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "*?[":
            return True
    return False


def _compile_component(pattern: str, source: str) -> re.Pattern[str]:
    """Go filepath.Match for one path component, as a fullmatch regex."""
    try:
        return compile_glob(pattern)
    except DockerIgnoreError:
        raise ContextError(f"invalid wildcard pattern in COPY source {source!r}") from None


def _clean_source(source: str) -> list[str]:
    """Components of `source` relative to the context root; refuses climbing above it."""
    parts: list[str] = []
    for comp in source.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise ContextError(
                    f"forbidden path outside the build context: {source}"
                )
            parts.pop()
            continue
        parts.append(comp)
    return parts


# ------------------------------------------------------------------------------ the context


class BuildContext:
    """A context directory seen through its .dockerignore. Safe to share between threads."""

    def __init__(
        self,
        root: Path,
        ignore: DockerIgnore | None = None,
        *,
        state_dir: Path | None = None,
        hasher: ContentHasher = sha256_stream,
        racy_window_ns: int = RACY_WINDOW_NS,
    ) -> None:
        self.root = Path(os.path.realpath(root))
        self._root_s = str(self.root)
        if not self.root.is_dir():
            raise NotFound(f"build context {str(root)!r} is not a directory")
        self.ignore = ignore if ignore is not None else DockerIgnore()
        self._hasher = hasher
        self._lock = threading.Lock()
        db = None if state_dir is None else Path(state_dir) / INDEX_FILENAME
        self._index = _MetadataIndex(db, str(self.root), racy_window_ns)

    @classmethod
    def open(
        cls,
        root: Path,
        dockerfile: Path | None = None,
        *,
        state_dir: Path | None = None,
        hasher: ContentHasher = sha256_stream,
        racy_window_ns: int = RACY_WINDOW_NS,
    ) -> BuildContext:
        """Open `root` with the ignore file docker would use for `dockerfile`
        (``<Dockerfile>.dockerignore`` beside it, else ``<root>/.dockerignore``)."""
        ignore_file = find_ignore_file(Path(root), dockerfile)
        ignore = DockerIgnore()
        if ignore_file is not None:
            try:
                ignore = DockerIgnore.parse(ignore_file.read_text(encoding="utf-8"))
            except DockerIgnoreError as exc:
                raise ContextError(f"{ignore_file.name}: {exc}") from None
        return cls(root, ignore, state_dir=state_dir, hasher=hasher,
                   racy_window_ns=racy_window_ns)

    def close(self) -> None:
        """Persist remembered hashes and release the index."""
        with self._lock:
            self._index.close()

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- entries and visibility

    def _host(self, relpath: str) -> str:
        return f"{self._root_s}/{relpath}" if relpath else self._root_s

    def _entry(self, relpath: str, st: os.stat_result | None = None) -> ContextEntry:
        """The entry at `relpath`; `st` is its lstat when the caller already has it."""
        path = self._host(relpath)
        if st is None:
            st = os.lstat(path)
        kind = _kind(st.st_mode)
        target = os.readlink(path) if kind is EntryKind.SYMLINK else None
        return ContextEntry(relpath, path, kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                            st.st_size, target, st)

    def _excluded(self, relpath: str) -> bool:
        return bool(relpath) and bool(self.ignore.patterns) and self.ignore.matches(relpath)

    def _visible(self, entry: ContextEntry) -> bool:
        """Does `entry` exist in the context after .dockerignore?"""
        if not self._excluded(entry.relpath):
            return True
        if entry.kind is not EntryKind.DIR or self.ignore.can_skip_dir(entry.relpath):
            return False
        return next(self._walk_below(entry.relpath), None) is not None

    def _walk_below(self, relpath: str) -> Iterator[ContextEntry]:
        """Included entries strictly below directory `relpath`, depth first, names sorted.
        An excluded directory is yielded just before its first included descendant
        (dockerfile_grammar's walk_entries)."""
        for child, dirent in walk_entries(self._root_s, self.ignore, relpath):
            yield self._entry(child, dirent.stat(follow_symlinks=False))

    def iter_files(self) -> Iterator[ContextEntry]:
        """Every included entry of the context (not the root), for a whole-context transfer."""
        return self._walk_below("")

    # -------------------------------------------------------------- selection

    def _resolve(self, relpath: str, shown: str) -> ContextEntry:
        """Follow symlinks inside the context; NotFound when the result or a link on the way
        does not exist after .dockerignore."""

        def check_link(link_rel: str) -> None:
            if self._excluded(link_rel):
                raise NotFound(f'"/{shown}": not found (symlink /{link_rel} is excluded)')

        resolved = resolve_with_links(self.root, relpath, follow_final=True, on_link=check_link)
        rel = resolved.relative_to(self.root).as_posix()
        rel = "" if rel == "." else rel
        try:
            entry = self._entry(rel)
        except (FileNotFoundError, NotADirectoryError):
            where = "" if rel == relpath else f' (resolves to "/{rel}")'
            raise NotFound(f'"/{shown}": not found{where}') from None
        if not self._visible(entry):
            raise NotFound(f'"/{shown}": not found (excluded by .dockerignore)')
        return entry

    def _match(self, source: str, entry: ContextEntry, name: str) -> SourceMatch:
        if entry.kind is EntryKind.DIR:
            return SourceMatch(source, name, entry, (entry, *self._walk_below(entry.relpath)))
        return SourceMatch(source, name, entry, (entry,))

    def select(
        self,
        sources: Sequence[str],
        *,
        exclude: Sequence[str] = (),
        allow_empty_wildcard: bool = True,
    ) -> list[SourceMatch]:
        """The matches of each source, in source order (see the module docstring).

        `exclude` holds ``COPY --exclude`` patterns (.dockerignore syntax, ``!`` allowed),
        matched as fsutil's copier does: against paths *relative to each matched source*, so
        they prune inside a copied directory but never drop a matched source itself.
        """
        out: list[SourceMatch] = []
        for source in sources:
            parts = _clean_source(source)
            first = next((i for i, c in enumerate(parts) if _has_wildcard(c)), None)
            if first is None:
                named = "/".join(parts)
                out.append(self._match(source, self._resolve(named, named), named))
                continue
            found = self._select_wildcard(source, parts[:first], parts[first:])
            if not found and not allow_empty_wildcard:
                raise NotFound(f'"/{"/".join(parts)}": not found (no source files were '
                               "specified by the wildcard)")
            out.extend(found)
        if exclude:
            try:
                excl = DockerIgnore.from_patterns(exclude)
            except DockerIgnoreError as exc:
                raise ContextError(f"invalid --exclude pattern: {exc}") from None
            out = [_apply_exclude(m, excl) for m in out]
        return out

    def _select_wildcard(
        self, source: str, prefix: list[str], rest: list[str]
    ) -> list[SourceMatch]:
        base_named = "/".join(prefix)
        try:
            base = self._resolve(base_named, base_named)
        except NotFound:
            return []
        if base.kind is not EntryKind.DIR:
            return []
        patterns = [_compile_component(c, source) for c in rest]
        matches: list[SourceMatch] = []
        self._match_level(source, base.relpath, patterns, matches)
        return matches

    def _match_level(
        self, source: str, dir_rel: str, patterns: list[re.Pattern[str]], out: list[SourceMatch]
    ) -> None:
        try:
            with os.scandir(self._host(dir_rel)) as scan:
                names = sorted(e.name for e in scan)
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            if not patterns[0].fullmatch(name):
                continue
            child = f"{dir_rel}/{name}" if dir_rel else name
            entry = self._entry(child)
            if len(patterns) > 1:
                if entry.kind is EntryKind.DIR and (
                    not self._excluded(child) or not self.ignore.can_skip_dir(child)
                ):
                    self._match_level(source, child, patterns[1:], out)
                continue
            if not self._visible(entry):
                continue
            if entry.kind is EntryKind.SYMLINK:
                entry = self._resolve(child, child)
            out.append(self._match(source, entry, child))

    # -------------------------------------------------------------- checksums

    def unhashed(self, entries: Iterable[ContextEntry]) -> list[ContextEntry]:
        """The regular files among `entries` whose content hash the index cannot answer."""
        with self._lock:
            return [e for e in entries if e.kind is EntryKind.FILE
                    and self._index.lookup(e.relpath, e.st) is None]

    def file_sha256(self, entry: ContextEntry) -> str:
        """Hex sha256 of a regular file's content, from the index when it is still valid."""
        with self._lock:
            known = self._index.lookup(entry.relpath, entry.st)
        if known is not None:
            return known
        hashed_ns = time.time_ns()
        fd = os.open(entry.hostpath, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as stream:
            before = os.fstat(stream.fileno())
            if not stat.S_ISREG(before.st_mode) or before.st_ino != entry.st.st_ino:
                raise ContextError(f"/{entry.relpath} changed while the build read it")
            digest = self._hasher(stream)
            after = os.fstat(stream.fileno())
        if _signature(before) == _signature(after) == _signature(entry.st):
            with self._lock:
                self._index.record(entry.relpath, after, digest, hashed_ns)
        return digest

    def checksum_matches(
        self,
        matches: Sequence[SourceMatch],
        *,
        chmod_override: bool = False,
        chown_override: bool = False,
    ) -> Digest:
        """The content checksum of selected sources (see the module docstring)."""
        digester = Digester("sha256")
        for match in matches:
            digester.update(_record(["source", match.source, match.name]))
            for e in match.entries:
                content = self.file_sha256(e) if e.kind is EntryKind.FILE else None
                digester.update(_record([
                    e.relpath, str(e.kind),
                    None if chmod_override else e.mode,
                    None if chown_override else e.uid,
                    None if chown_override else e.gid,
                    e.link_target, content,
                ]))
        whole = next((m for m in matches if m.entry.relpath == ""), None)
        with self._lock:
            if whole is not None:
                # the whole context was walked: rows for files no longer there can go
                self._index.retain({e.relpath for e in whole.entries if e.kind is EntryKind.FILE})
            self._index.flush()
        return digester.digest()

    def checksum(
        self,
        sources: Sequence[str],
        *,
        exclude: Sequence[str] = (),
        chmod_override: bool = False,
        chown_override: bool = False,
        allow_empty_wildcard: bool = True,
    ) -> Digest:
        """select(sources, ...) then checksum_matches(...)."""
        matches = self.select(sources, exclude=exclude,
                              allow_empty_wildcard=allow_empty_wildcard)
        return self.checksum_matches(matches, chmod_override=chmod_override,
                                     chown_override=chown_override)


def _apply_exclude(match: SourceMatch, excl: DockerIgnore) -> SourceMatch:
    """Drop entries below a matched directory that `excl` excludes; an excluded directory
    stays only as the parent of something an exception re-includes."""
    if len(match.entries) == 1:
        return match
    cut = len(match.entry.relpath) + 1 if match.entry.relpath else 0
    kept: list[ContextEntry] = []
    needed: set[str] = set()  # directories that hold a kept entry
    for e in reversed(match.entries[1:]):
        rel = e.relpath[cut:]
        if not excl.matches(rel) or (e.kind is EntryKind.DIR and e.relpath in needed):
            kept.append(e)
            parent = e.relpath.rpartition("/")[0]
            while parent and parent not in needed and len(parent) > len(match.entry.relpath):
                needed.add(parent)
                parent = parent.rpartition("/")[0]
    kept.reverse()
    return SourceMatch(match.source, match.name, match.entry, (match.entry, *kept))


def _record(fields: list[object]) -> bytes:
    # ensure_ascii keeps undecodable file names (surrogate escapes) encodable and stable
    return json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"
