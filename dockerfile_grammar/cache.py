"""The grammar's caches: a private per-user directory, and parsed Dockerfiles by content.

Importing Lark and loading the parser costs about 30 ms, ten times what parsing a typical
Dockerfile takes, and a rebuild usually parses a Dockerfile it has parsed before.
`parse_file_cached` keeps each parse result as a pickle named by the sha256 of the file's
bytes, its name, the Python version and a fingerprint (size and mtime) of this package's own
sources, so any change to the file or to the grammar misses. The files are pickles, so they
live in a 0700 directory owned by the user, never in a shared /tmp; without one nothing is
cached. A Dockerfile that fails to parse is never cached (the parser raises every time).
This module imports neither Lark nor the parser until a miss needs them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .instructions import Dockerfile

MAX_ENTRIES = 512  # parsed Dockerfiles kept; the least recently written half goes beyond it


def private_cache_dir() -> str | None:
    """`$XDG_CACHE_HOME/strata` (default ~/.cache/strata), created 0700; None when it cannot
    be made or is not private (owned by someone else, or group/world writable), or when
    STRATA_NO_GRAMMAR_CACHE is set."""
    if os.environ.get("STRATA_NO_GRAMMAR_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "strata")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.stat(directory)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
    except OSError:
        return None
    return directory


def _grammar_fingerprint() -> bytes:
    here = Path(__file__).parent
    h = hashlib.sha256(sys.version.encode())
    for name in sorted(os.listdir(here)):
        if name.endswith((".py", ".lark")):
            st = os.stat(here / name)
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.digest()


def parse_file_cached(path: str | os.PathLike[str]) -> Dockerfile:
    """`parse_file(path)`, answered from the cache when these exact bytes were parsed before."""
    directory = private_cache_dir()
    data = Path(path).read_bytes()
    entry = None
    if directory is not None:
        key = hashlib.sha256(_grammar_fingerprint() + os.fsencode(str(path)) + b"\0" + data)
        entry = Path(directory) / "dockerfiles" / f"{key.hexdigest()}.pickle"
        with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError,
                                 ImportError, IndexError, TypeError, ValueError):
            cached = pickle.loads(entry.read_bytes())
            from .instructions import Dockerfile

            if isinstance(cached, Dockerfile):
                return cached
    from .parser import parse_file

    parsed = parse_file(path)
    if entry is not None:
        _store(entry, parsed)
    return parsed


def _store(entry: Path, parsed: Dockerfile) -> None:
    """Write atomically; a full cache drops its least recently written half first."""
    try:
        entry.parent.mkdir(mode=0o700, exist_ok=True)
        names = os.listdir(entry.parent)
        if len(names) >= MAX_ENTRIES:
            by_age = sorted(names, key=lambda n: _mtime(entry.parent / n))
            for name in by_age[:len(by_age) // 2]:
                with contextlib.suppress(OSError):
                    os.unlink(entry.parent / name)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, entry)
    except (OSError, pickle.PicklingError, RecursionError):
        return


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0
