"""FilesystemDriver: the StorageDriver over a local directory.

Every blocking call runs in a worker thread (`loop.run_in_executor`), never on the event loop.
Atomic writes are temp file + fsync + rename + fsync of the directory.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from registry.storage.driver import (
    CHUNK_SIZE,
    FileInfo,
    PathNotFound,
    Tap,
    check_path,
)

T = TypeVar("T")

_IOV_MAX = 1024
_SYNC_FILE_RANGE_WRITE = 2
_WRITEBACK_MIN = 256 * 1024  # only for streaming batches, not small writes


def _load_sync_file_range() -> Callable[[int, int, int], None] | None:
    """Linux sync_file_range(SYNC_FILE_RANGE_WRITE): start writeback of a range, don't wait.

    Streaming writers call it after each batch so the disk works while the next batch is
    received, instead of the whole file being flushed by the final fsync.
    """
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int

    def start_writeback(fd: int, offset: int, nbytes: int) -> None:
        fn(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)  # advisory: errors are ignored

    return start_writeback


_start_writeback = _load_sync_file_range()


async def _run(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: Sequence[bytes], tap: Tap | None) -> int:
    """writev the batch (handling short writes), then feed `tap` chunk by chunk."""
    total = 0
    views = [memoryview(c) for c in data if len(c)]
    i = 0
    while i < len(views):
        n = os.writev(fd, views[i:i + _IOV_MAX])
        total += n
        while i < len(views) and n >= len(views[i]):
            n -= len(views[i])
            i += 1
        if n:
            views[i] = views[i][n:]
    if tap is not None:
        for c in data:
            if len(c):
                tap(c)
    return total


class FilesystemFileWriter:
    """A FileWriter on a raw file descriptor (no Python-level buffering, no extra copy)."""

    __slots__ = ("_fd", "_path", "_size")

    def __init__(self, fd: int, path: Path, size: int) -> None:
        self._fd = fd
        self._path = path
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def _write(self, data: Sequence[bytes], tap: Tap | None) -> int:
        n = _write_all(self._fd, data, tap)
        if _start_writeback is not None and n >= _WRITEBACK_MIN:
            _start_writeback(self._fd, self._size, n)
        self._size += n
        return n

    async def write(self, data: bytes | Sequence[bytes], tap: Tap | None = None) -> int:
        batch = cast("Sequence[bytes]",
                     (data,) if isinstance(data, bytes | bytearray | memoryview) else data)
        return await _run(self._write, batch, tap)

    def _close(self, sync: bool) -> None:
        if self._fd < 0:
            return
        try:
            if sync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1

    async def commit(self) -> None:
        await _run(self._close, True)

    async def close(self) -> None:
        await _run(self._close, False)

    def _cancel(self) -> None:
        self._close(False)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    async def cancel(self) -> None:
        await _run(self._cancel)


class FilesystemDriver:
    """StorageDriver rooted at a local directory; also LocalFiles for sendfile."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def local_path(self, path: str) -> Path:
        return self.root / check_path(path, allow_root=True) if path else self.root

    # ------------------------------------------------------------------ small objects

    def _get(self, path: str) -> bytes:
        try:
            return self.local_path(path).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path) from None

    async def get_content(self, path: str) -> bytes:
        return await _run(self._get, check_path(path))

    def _put(self, path: str, data: bytes) -> None:
        target = self.local_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, (data,), None)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, target)
        _fsync_dir(target.parent)

    async def put_content(self, path: str, data: bytes) -> None:
        await _run(self._put, check_path(path), data)

    # ------------------------------------------------------------------ streams

    async def reader(self, path: str, offset: int = 0, length: int | None = None,
                     chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        local = self.local_path(check_path(path))

        def _open() -> int:
            try:
                return os.open(local, os.O_RDONLY)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise PathNotFound(path) from None

        fd = await _run(_open)
        try:
            remaining = length
            pos = offset
            while remaining is None or remaining > 0:
                want = chunk_size if remaining is None else min(chunk_size, remaining)
                chunk = await _run(os.pread, fd, want, pos)
                if not chunk:
                    break
                pos += len(chunk)
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            await _run(os.close, fd)

    def _open_writer(self, path: str, append: bool) -> FilesystemFileWriter:
        target = self.local_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        fd = os.open(target, flags, 0o644)
        try:
            # Writers of one path exclude each other across processes until closed (an
            # upload session appended through two worker processes at once).
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size if append else 0
        except BaseException:
            os.close(fd)
            raise
        return FilesystemFileWriter(fd, target, size)

    async def writer(self, path: str, append: bool = False) -> FilesystemFileWriter:
        return await _run(self._open_writer, check_path(path), append)

    # ------------------------------------------------------------------ tree operations

    def _stat(self, path: str) -> FileInfo:
        try:
            st = self.local_path(path).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path) from None
        is_dir = (st.st_mode & 0o170000) == 0o040000
        return FileInfo(path, 0 if is_dir else st.st_size, st.st_mtime, is_dir)

    async def stat(self, path: str) -> FileInfo:
        return await _run(self._stat, check_path(path))

    def _list(self, path: str) -> list[str]:
        try:
            names = os.listdir(self.local_path(path))
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path) from None
        prefix = f"{path}/" if path else ""
        return sorted(prefix + n for n in names if not n.startswith(".tmp-"))

    async def list(self, path: str) -> list[str]:
        return await _run(self._list, check_path(path, allow_root=True))

    def _move(self, src: str, dst: str) -> None:
        source, target = self.local_path(src), self.local_path(dst)
        if not source.exists():
            raise PathNotFound(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        _fsync_dir(target.parent)

    async def move(self, src: str, dst: str) -> None:
        await _run(self._move, check_path(src), check_path(dst))

    def _delete(self, path: str) -> None:
        local = self.local_path(path)
        try:
            if local.is_dir() and not local.is_symlink():
                shutil.rmtree(local)
            else:
                local.unlink()
        except FileNotFoundError:
            raise PathNotFound(path) from None

    async def delete(self, path: str) -> None:
        await _run(self._delete, check_path(path))

    def _walk(self, path: str) -> builtins.list[FileInfo]:
        base = self.local_path(path)
        if not base.is_dir():
            raise PathNotFound(path)
        found: builtins.list[FileInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/")
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                st = os.stat(os.path.join(dirpath, name))
                found.append(FileInfo(f"{rel}/{name}" if rel else name, st.st_size,
                                      st.st_mtime, False))
        found.sort(key=lambda f: f.path)
        return found

    async def walk(self, path: str = "") -> AsyncIterator[FileInfo]:
        for info in await _run(self._walk, check_path(path, allow_root=True)):
            yield info
