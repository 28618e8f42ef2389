"""Crash-safe small-file helpers shared by the builder's stores.

The pattern is always the same: write a temp file next to the target, fsync it, rename it over
the target (readers see the old or the new file, never a torn one), then fsync the directory so
the rename itself survives a crash. The registry has its own copy in registry/storage (the
registry never imports builder).
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

WRITEBACK_BATCH = 8 << 20


@functools.cache
def _sync_file_range() -> Callable[[int, int, int], None] | None:
    """Linux sync_file_range(fd, offset, n, SYNC_FILE_RANGE_WRITE) through ctypes (the os
    module has no binding): start writing a range back to disk without waiting for it."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int

    def start(fd: int, offset: int, nbytes: int) -> None:
        fn(fd, offset, nbytes, 2)  # SYNC_FILE_RANGE_WRITE; advisory, errors ignored

    return start


def start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Ask the kernel to start writing `nbytes` at `offset` of `fd` to disk now, so that a
    large file's final fsync finds most of it written: the disk works while the writer is
    still producing bytes instead of after it. A no-op where unsupported."""
    start = _sync_file_range()
    if start is not None:
        start(fd, offset, nbytes)


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


__all__ = ["WRITEBACK_BATCH", "atomic_write", "atomic_writer", "fsync_dir", "start_writeback"]
