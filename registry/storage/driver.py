"""StorageDriver: the narrow, path-based, digest-agnostic byte store under the registry.

Paths are relative, `/`-separated, made of `[A-Za-z0-9._-]` components with no `.` or `..`
(`check_path` enforces it, so an untrusted value can never escape the driver's root). The empty
path "" names the root and is valid only for `list` and `walk`.

Lifecycle of a write (distribution's storagedriver.FileWriter):
    w = await driver.writer("uploads/x/data", append=True)
    await w.write([chunk1, chunk2], tap=hasher.update)   # tap sees every byte, in order,
                                                         # in the same pass as the write
    await w.receive(body, tap=hasher.update)             # or a Source, read into w's buffers
    await w.commit()      # flush + fsync + close: durable; or close(): flushed, not durable;
                          # or cancel(): close and remove the file
    await driver.move("uploads/x/data", "blobs/.../data")  # atomic rename, replaces dst

`put_content` is atomic (temp file + fsync + rename): readers see the old or the new object,
never a part. `get_content` is for small objects only (manifests, session state).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

T = TypeVar("T")

Tap = Callable[[bytes | memoryview], object]
"""Called with every written byte, in order, in chunks of the writer's choosing (e.g.
`hashlib` `update`)."""

CHUNK_SIZE = 1024 * 1024

_COMPONENT = re.compile(r"[A-Za-z0-9._-]+")


class StorageError(Exception):
    """Base of driver errors (these are not RegistryErrors: stores translate them)."""


class PathNotFound(StorageError):
    def __init__(self, path: str) -> None:
        super().__init__(f"path not found: {path!r}")
        self.path = path


class InvalidPath(StorageError):
    def __init__(self, path: str) -> None:
        super().__init__(f"invalid storage path: {path!r}")
        self.path = path


def check_path(path: str, *, allow_root: bool = False) -> str:
    """Return `path` if it is a valid driver path, else raise InvalidPath."""
    if path == "":
        if allow_root:
            return path
        raise InvalidPath(path)
    for part in path.split("/"):
        if part in (".", "..") or not _COMPONENT.fullmatch(part):
            raise InvalidPath(path)
    return path


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size: int
    mtime: float
    is_dir: bool


class Source(Protocol):
    """A byte stream that a worker thread reads straight into the writer's buffer, with no
    copy in between (a request body received from its socket). `FileWriter.receive` drains it."""

    def readinto(self, buf: memoryview) -> int:
        """Fill up to len(buf) bytes of `buf`, blocking (a worker thread calls it); 0 at the
        end of the stream."""
        ...

    def close(self) -> None:
        """Stop reading: a readinto blocked now or called later raises. Any thread may call."""
        ...


async def read_in_thread(source: Source, read: Callable[[Source], T],
                         executor: concurrent.futures.Executor | None = None) -> T:
    """`read(source)` in a worker thread. Cancelled, it closes `source` and returns (raising
    CancelledError) only once that thread has stopped, so the caller owns its buffers again."""
    reading = asyncio.get_running_loop().run_in_executor(executor, read, source)
    try:
        return await asyncio.shield(reading)
    except asyncio.CancelledError:
        source.close()  # the thread gives up at its next wait
        with contextlib.suppress(BaseException):
            await reading
        raise


class FileWriter(Protocol):
    """An open file being written. Exactly one of commit/close/cancel ends it."""

    @property
    def size(self) -> int:
        """Bytes in the file so far (including what existed before an append)."""
        ...

    async def write(self, data: bytes | Sequence[bytes], tap: Tap | None = None) -> int:
        """Append `data` (one buffer or a batch); return bytes written. `tap` gets each chunk."""
        ...

    async def receive(self, source: Source, tap: Tap | None = None) -> int:
        """Append all of `source`, read in a worker thread straight into the writer's buffers;
        return bytes appended. `tap` sees them as `write` would. Cancelled, it closes `source`
        and returns only once nothing reads into the writer any more."""
        ...

    async def commit(self) -> None:
        """Flush, fsync and close: the content is durable."""
        ...

    async def close(self) -> None:
        """Flush and close (not fsynced)."""
        ...

    async def cancel(self) -> None:
        """Close and delete the file."""
        ...


class StorageDriver(Protocol):
    """Moves bytes by path; knows nothing of digests or registries."""

    async def get_content(self, path: str) -> bytes:
        """Whole content of a small object; PathNotFound."""
        ...

    async def put_content(self, path: str, data: bytes) -> None:
        """Atomically replace `path` with `data` (parents created)."""
        ...

    def reader(self, path: str, offset: int = 0, length: int | None = None,
               chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Stream `length` bytes (or to EOF) from `offset`; PathNotFound on first iteration."""
        ...

    async def writer(self, path: str, append: bool = False, create: bool = True) -> FileWriter:
        """Open `path` for writing (truncating unless `append`); parents are created.
        With `create=False` a missing `path` raises PathNotFound instead.
        A writer holds its path exclusively (also against other processes) until it ends."""
        ...

    async def stat(self, path: str) -> FileInfo:
        """PathNotFound when absent."""
        ...

    async def list(self, path: str) -> list[str]:
        """Full paths of the direct children of directory `path`, sorted; PathNotFound."""
        ...

    async def move(self, src: str, dst: str) -> None:
        """Atomically rename `src` to `dst`, replacing dst; PathNotFound if src is absent."""
        ...

    async def delete(self, path: str) -> None:
        """Remove a file or a whole directory tree; PathNotFound when absent."""
        ...

    def walk(self, path: str = "") -> AsyncIterator[FileInfo]:
        """Every file (not directory) below `path`, depth first, sorted by path."""
        ...


@runtime_checkable
class LocalFiles(Protocol):
    """A driver whose objects are local files (lets the server use sendfile)."""

    def local_path(self, path: str) -> Path: ...
