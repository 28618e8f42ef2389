"""Crash-safe small-file helpers shared by the builder's stores.

The pattern is always the same: write a temp file next to the target, fsync it, rename it over
the target (readers see the old or the new file, never a torn one), then fsync the directory so
the rename itself survives a crash. The registry has its own copy in registry/storage (the
registry never imports builder).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    """fsync the directory `path`, making renames and creations inside it durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, *, sync_dir: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` atomically when the block ends without error.

    The data goes to `.<name>.<random>.tmp` in the same directory and is fsynced before the
    rename; with `sync_dir` the directory is fsynced after it. On an exception the temp file is
    removed and `path` is untouched.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    if sync_dir:
        fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace the small file `path` with `data`: temp file, fsync, rename, directory fsync."""
    with atomic_writer(path) as f:
        f.write(data)


__all__ = ["atomic_write", "atomic_writer", "fsync_dir"]
