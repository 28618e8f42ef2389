"""MemoryDriver: a StorageDriver in a dict, for tests. Same contract as the filesystem driver."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import AsyncIterator, Sequence
from typing import cast

from registry.storage.driver import (
    CHUNK_SIZE,
    FileInfo,
    PathNotFound,
    Source,
    Tap,
    check_path,
    read_in_thread,
)
from registry.storage.filesystem import RECEIVING_THREADS

_receivers = concurrent.futures.ThreadPoolExecutor(RECEIVING_THREADS,
                                                   thread_name_prefix="strata-receive")
"""As the filesystem driver's: a receive waits on its client, never in the default executor."""


def _drain(source: Source) -> bytes:
    data = bytearray()
    with memoryview(bytearray(CHUNK_SIZE)) as buf:
        while n := source.readinto(buf):
            data += buf[:n]
    return bytes(data)


class MemoryFileWriter:
    __slots__ = ("_driver", "_path", "_buf", "_closed")

    def __init__(self, driver: MemoryDriver, path: str, buf: bytearray) -> None:
        self._driver = driver
        self._path = path
        self._buf = buf
        self._closed = False

    @property
    def size(self) -> int:
        return len(self._buf)

    async def write(self, data: bytes | Sequence[bytes], tap: Tap | None = None) -> int:
        if self._closed:
            raise ValueError("writer is closed")
        batch = cast("Sequence[bytes]",
                     (data,) if isinstance(data, bytes | bytearray | memoryview) else data)
        total = 0
        for chunk in batch:
            self._buf += chunk
            total += len(chunk)
            if tap is not None and len(chunk):
                tap(chunk)
        self._driver._touch(self._path)
        return total

    async def receive(self, source: Source, tap: Tap | None = None) -> int:
        return await self.write(await read_in_thread(source, _drain, _receivers), tap)

    async def commit(self) -> None:
        self._closed = True

    async def close(self) -> None:
        self._closed = True

    async def cancel(self) -> None:
        self._closed = True
        self._driver._files.pop(self._path, None)


class MemoryDriver:
    """Files are bytearrays keyed by path; directories are implied by their files."""

    def __init__(self) -> None:
        self._files: dict[str, bytearray] = {}
        self._mtimes: dict[str, float] = {}

    def _touch(self, path: str) -> None:
        self._mtimes[path] = time.time()

    def _is_dir(self, path: str) -> bool:
        prefix = f"{path}/" if path else ""
        return any(p.startswith(prefix) for p in self._files)

    def _file(self, path: str) -> bytearray:
        try:
            return self._files[path]
        except KeyError:
            raise PathNotFound(path) from None

    async def get_content(self, path: str) -> bytes:
        return bytes(self._file(check_path(path)))

    async def put_content(self, path: str, data: bytes) -> None:
        self._ensure_parent_free(check_path(path))
        self._files[path] = bytearray(data)
        self._touch(path)

    def _ensure_parent_free(self, path: str) -> None:
        """Creating `a/b` when `a` is a file is an error, as on a filesystem."""
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in self._files:
                raise NotADirectoryError(path)

    async def reader(self, path: str, offset: int = 0, length: int | None = None,
                     chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        buf = self._file(check_path(path))
        end = len(buf) if length is None else min(len(buf), offset + length)
        pos = offset
        while pos < end:
            step = min(chunk_size, end - pos)
            yield bytes(buf[pos:pos + step])
            pos += step

    async def writer(self, path: str, append: bool = False,
                     create: bool = True) -> MemoryFileWriter:
        if not create and check_path(path) not in self._files:
            raise PathNotFound(path)
        self._ensure_parent_free(check_path(path))
        if not append or path not in self._files:
            self._files[path] = bytearray()
        self._touch(path)
        return MemoryFileWriter(self, path, self._files[path])

    async def stat(self, path: str) -> FileInfo:
        check_path(path)
        if path in self._files:
            return FileInfo(path, len(self._files[path]), self._mtimes.get(path, 0.0), False)
        if self._is_dir(path):
            return FileInfo(path, 0, 0.0, True)
        raise PathNotFound(path)

    async def list(self, path: str) -> list[str]:
        check_path(path, allow_root=True)
        if path in self._files or not self._is_dir(path):
            raise PathNotFound(path)
        prefix = f"{path}/" if path else ""
        children = {prefix + p[len(prefix):].split("/", 1)[0]
                    for p in self._files if p.startswith(prefix)}
        return sorted(children)

    async def move(self, src: str, dst: str) -> None:
        check_path(src), check_path(dst)
        buf = self._file(src)
        self._ensure_parent_free(dst)
        del self._files[src]
        self._files[dst] = buf
        self._mtimes[dst] = self._mtimes.pop(src, time.time())

    async def delete(self, path: str) -> None:
        check_path(path)
        if path in self._files:
            del self._files[path]
            self._mtimes.pop(path, None)
            return
        prefix = f"{path}/"
        doomed = [p for p in self._files if p.startswith(prefix)]
        if not doomed:
            raise PathNotFound(path)
        for p in doomed:
            del self._files[p]
            self._mtimes.pop(p, None)

    async def walk(self, path: str = "") -> AsyncIterator[FileInfo]:
        check_path(path, allow_root=True)
        if path and not self._is_dir(path):
            raise PathNotFound(path)
        prefix = f"{path}/" if path else ""
        for p in sorted(p for p in self._files if p.startswith(prefix)):
            yield FileInfo(p, len(self._files[p]), self._mtimes.get(p, 0.0), False)
