"""The build memo: a rebuild whose every input is unchanged is answered without parsing.

A fully cached rebuild still parses the Dockerfile, scopes and plans it, hashes the context
through its metadata index and looks up every step key, only to arrive at the image the last
build produced. The memo remembers that answer per invocation (context, Dockerfile and every
option that can change the result) in `<root>/buildmemo/<key>.json`:

    {"inputs": sha256 of the Dockerfile, its .dockerignore and the stat signature
                (path, size, mtime, ctime, inode, device, mode) of every context entry,
     "bases":  [[name, manifest digest], ...]  every image the build read,
     "tags":   [normalized -t names], "image": manifest digest, "steps": [step lines]}

A later build with the same invocation returns that image, and replays its steps as CACHED,
only when all of this still holds:
  - the inputs digest is the same (a file added, removed, touched or changed misses; the
    signature is the one the context's metadata index trusts, and the memo is only written
    when no timestamp is within the racy window of the scan, as git does);
  - every image name the build read still points at the same manifest in the local store;
  - the produced image and all its blobs are still in the store, and every -t name still
    points at it.
Anything else falls through to the normal build, which records a new memo. Builds that
fetched URLs (ADD https://...), remote cache imports/exports and --push are never memoized;
--no-cache and --no-cache-filter skip the lookup (their result is recorded: it is what the
step cache now answers). `strata builder prune` forgets every memo, as it forgets the steps.

Only the standard library is imported on the lookup path, so a no-op rebuild costs little
more than the interpreter's start-up and one stat per context entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MEMO_DIR = "buildmemo"
STEP_KEY_VERSION = 1
"""builder.cachekey.KEY_VERSION: a new step-key scheme gives new images, so it voids memos
(tests/builder/build/test_memo.py pins the two together)."""
_FORMAT = 1
_SCAN_LIMIT = 200_000  # context entries; a larger context is not memoized


class InputScan:
    """The stat-level fingerprint of everything a build reads from the local disk."""

    __slots__ = ("digest", "newest_ns", "scanned_ns")

    def __init__(self, digest: str, newest_ns: int, scanned_ns: int) -> None:
        self.digest = digest
        self.newest_ns = newest_ns  # the newest mtime/ctime seen
        self.scanned_ns = scanned_ns  # wall clock when the scan started

    def stable(self, racy_window_ns: int) -> bool:
        """True when no entry changed so recently that a same-tick write could hide."""
        return self.newest_ns + racy_window_ns < self.scanned_ns


class Invocation:
    """One `strata build` command line, reduced to what can change its result."""

    __slots__ = ("context_dir", "dockerfile", "key", "tags")

    def __init__(self, context_dir: Path, dockerfile: Path | None, tags: Iterable[str],
                 options: Mapping[str, Any]) -> None:
        self.context_dir = Path(os.path.realpath(context_dir))
        self.dockerfile = Path(os.path.realpath(dockerfile if dockerfile is not None
                                                else context_dir / "Dockerfile"))
        self.tags = tuple(tags)
        identity = {"format": _FORMAT, "steps": STEP_KEY_VERSION,
                    "context": str(self.context_dir), "dockerfile": str(self.dockerfile),
                    "tags": list(self.tags), **options}
        blob = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
        self.key = hashlib.sha256(blob).hexdigest()

    def scan(self) -> InputScan | None:
        """Fingerprint the Dockerfile, its ignore files and the context tree (None when the
        context cannot be read or is too large to be worth it)."""
        started = time.time_ns()
        h = hashlib.sha256()
        newest = 0
        try:
            for path in (self.dockerfile, Path(f"{self.dockerfile}.dockerignore"),
                         self.context_dir / ".dockerignore"):
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    data = b"\0missing"
                h.update(b"%d:%s\0" % (len(data), os.fsencode(path)) + data)
            skip = _ignore_pruner(self.context_dir, self.dockerfile)
            for count, (rel, st) in enumerate(_walk(self.context_dir, skip), 1):
                if count > _SCAN_LIMIT:
                    return None
                h.update(b"%s\0%d %d %d %d %d %o\n" % (
                    rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev,
                    st.st_mode))
                newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
        except (OSError, ValueError):
            return None
        return InputScan(h.hexdigest(), newest, started)

    @property
    def path(self) -> str:
        return f"{MEMO_DIR}/{self.key}.json"


class MemoHit:
    """What a memoized build answers: the image and the step lines to show as CACHED."""

    __slots__ = ("config_digest", "manifest_digest", "names", "size", "steps")

    def __init__(self, manifest_digest: str, config_digest: str, size: int,
                 names: tuple[str, ...], steps: tuple[str, ...]) -> None:
        self.manifest_digest = manifest_digest
        self.config_digest = config_digest
        self.size = size
        self.names = names
        self.steps = steps

    @property
    def image_id(self) -> str:
        return self.config_digest


def lookup(root: Path, invocation: Invocation, scan: InputScan) -> MemoHit | None:
    """The memoized result of `invocation` if every input is still what it was, else None."""
    try:
        memo = json.loads((root / invocation.path).read_bytes())
        if memo.get("format") != _FORMAT or memo.get("inputs") != scan.digest:
            return None
        image = str(memo["image"])
        names = [str(n) for n, _ in memo["bases"]] + [str(t) for t in memo["tags"]]
        wanted = [str(d) for _, d in memo["bases"]] + [image] * len(memo["tags"])
        steps = tuple(str(s) for s in memo["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    db_path = root / "strata.db"
    if not db_path.is_file():
        return None
    try:
        # the tables of builder.metadata (refs: name -> manifest; images: manifest -> row)
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True,
                                                timeout=30)) as db:
            for name, digest in zip(names, wanted, strict=True):
                row = db.execute("SELECT manifest_digest FROM refs WHERE name=?",
                                 (name,)).fetchone()
                if row is None or row[0] != digest:
                    return None
            row = db.execute("SELECT config_digest, size FROM images WHERE manifest_digest=?",
                             (image,)).fetchone()
            if row is None:
                return None
            refs = tuple(r[0] for r in db.execute(
                "SELECT name FROM refs WHERE manifest_digest=? ORDER BY name", (image,)))
            blobs = [r[0] for r in db.execute(
                "SELECT blob_digest FROM image_blobs WHERE manifest_digest=?", (image,))]
    except sqlite3.Error:
        return None
    # every blob still in the content store (builder.content's OCI layout under <root>/oci)
    for blob in blobs:
        algorithm, _, encoded = str(blob).partition(":")
        if not os.path.isfile(root / "oci" / "blobs" / algorithm / encoded):
            return None
    return MemoHit(image, str(row[0]), int(row[1]), refs, steps)


def record(root: Path, invocation: Invocation, scan: InputScan, *, image: str,
           bases: Iterable[tuple[str, str]], tags: Iterable[str], steps: Iterable[str],
           racy_window_ns: int) -> bool:
    """Remember that `invocation` over inputs `scan` built manifest `image`. `bases` and
    `tags` are normalized store names. Returns False (and forgets any older memo) when the
    inputs were too fresh to trust."""
    target = root / invocation.path
    if not scan.stable(racy_window_ns):
        with contextlib.suppress(OSError):
            target.unlink()
        return False
    memo = {"format": _FORMAT, "inputs": scan.digest, "image": image,
            "bases": [list(b) for b in bases], "tags": list(tags), "steps": list(steps)}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, target)  # a cache: a torn or lost file is only a miss
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True


def forget_all(root: Path) -> int:
    """Remove every memo (strata builder prune); returns how many."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(root / MEMO_DIR):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed


def _walk(top: Path, skip: Any) -> Iterable[tuple[bytes, os.stat_result]]:
    """(relative path, lstat) of the root and every entry below it, in sorted order, never
    following symlinks. `skip(relpath)` prunes directories .dockerignore excludes whole (the
    directory and everything below it)."""
    yield b".", os.lstat(top)
    stack = [(os.fsencode(top), b"")]
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        subdirs = []
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            child = rel + b"/" + entry.name if rel else entry.name
            if stat.S_ISDIR(st.st_mode):
                if skip and skip(os.fsdecode(child)):
                    continue  # excluded whole, itself included: not part of the build
                subdirs.append((entry.path, child))
            yield child, st
        stack.extend(reversed(subdirs))


def _ignore_pruner(context_dir: Path, dockerfile: Path) -> Any:
    """`can_skip_dir` of the build's .dockerignore (None without one): directories it
    excludes whole need not be scanned (their contents never reach the build)."""
    for candidate in (Path(f"{dockerfile}.dockerignore"), context_dir / ".dockerignore"):
        try:
            text = candidate.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        from dockerfile_grammar.dockerignore import DockerIgnore

        return DockerIgnore.parse(text).can_skip_dir
    return None
