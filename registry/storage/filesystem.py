"""FilesystemDriver: the StorageDriver over a local directory.

Every blocking call runs in a worker thread (`loop.run_in_executor`), never on the event loop.
Atomic writes are temp file + fsync + rename + fsync of the directory.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextlib
import errno
import fcntl
import mmap
import os
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from registry.storage.driver import (
    CHUNK_SIZE,
    FileInfo,
    PathNotFound,
    Source,
    Tap,
    check_path,
    read_in_thread,
)

T = TypeVar("T")

_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
_WILLNEED: int | None = getattr(os, "POSIX_FADV_WILLNEED", None)
_IOV_MAX = 1024

DIRECT_ALIGN = 4096  # file offsets and lengths of O_DIRECT writes (>= any logical block size)
DIRECT_BUFFER = 4 * 1024 * 1024  # staging buffer of a streaming writer (a multiple of the above)
_LOCK_RETRY_FIRST = 0.005  # seconds before trying a file another writer holds again
_LOCK_RETRY_MAX = 0.2
_POOL_KEEP = 2  # idle staging buffers kept for reuse (touched pages cost no new page faults)


class _BufferPool:
    """Page-aligned anonymous buffers (mmap) for O_DIRECT writes, reused across writers."""

    def __init__(self, size: int, keep: int) -> None:
        self.size = size
        self._keep = keep
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        # Private: mmap's default for anonymous memory is MAP_SHARED, i.e. shmem, which gets no
        # transparent huge pages (shmem_enabled is usually "never").
        buf = mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        with contextlib.suppress(AttributeError, OSError):
            # Huge pages: fewer TLB misses in the copies and cheaper O_DIRECT page pinning.
            buf.madvise(mmap.MADV_HUGEPAGE)
        return buf

    def give(self, buf: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buf)
                return
        with contextlib.suppress(BufferError):  # a view still alive: the GC closes it
            buf.close()


_buffers = _BufferPool(DIRECT_BUFFER, _POOL_KEEP)
# `receive` runs in its own pools: a receiving thread blocks for as long as its client sends,
# and must never hold up (or wait behind) the default executor's short jobs.
RECEIVING_THREADS = 64
"""Uploads `receive`d at once (per process); more wait for a thread. The server takes no more
bodies over than this (registry/server/params.py)."""
_receivers = concurrent.futures.ThreadPoolExecutor(RECEIVING_THREADS,
                                                   thread_name_prefix="strata-receive")
_block_jobs = concurrent.futures.ThreadPoolExecutor(2 * RECEIVING_THREADS,
                                                    thread_name_prefix="strata-block")
_InFlight = tuple[mmap.mmap, list[concurrent.futures.Future[None]]]  # a block: tap and write


async def _run(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _still_at(path: Path, st: os.stat_result) -> bool:
    """Whether `path` still names the open file whose fstat is `st`."""
    try:
        now = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


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


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data = data[n:]
        offset += n


class _Job:
    """One staged block on its way to disk: buf[start:end] belongs at file offset `offset`."""

    __slots__ = ("buf", "start", "end", "offset", "tap")

    def __init__(self, buf: mmap.mmap, start: int, end: int, offset: int,
                 tap: Tap | None) -> None:
        self.buf, self.start, self.end, self.offset, self.tap = buf, start, end, offset, tap

    def view(self) -> memoryview:
        return memoryview(self.buf)[self.start:self.end]


def _tap_block(job: _Job) -> None:
    if job.tap is not None:
        with job.view() as view:
            job.tap(view)


class FilesystemFileWriter:
    """A streaming FileWriter: staged blocks, written with O_DIRECT by worker threads.

    `write` copies the bytes into a page-aligned staging block on the caller's (event loop)
    thread, so each received buffer is freed at once. A full block (DIRECT_BUFFER) goes to two
    worker threads, one feeding `tap` and one writing it (hashing while the disk works), while
    the next block fills; no GIL is held for the hashing or the write. Aligned runs are written
    with O_DIRECT (no page-cache copy, no writeback work, and fsync has little left to flush); an
    unaligned head (appending to a file whose size is not a multiple of DIRECT_ALIGN) and the last
    partial block go through the ordinary descriptor. Where O_DIRECT is refused (EINVAL: a file
    system without it) everything is written buffered, with the same result. `receive` fills
    the blocks from a Source in a receiving thread instead, with no copy on the event loop.

    `size` counts staged bytes. `tap` sees every byte in order, but later than `write` returns:
    when its block is written (at the latest in close/commit). A failed block write surfaces
    from the next write, close or commit.
    """

    __slots__ = ("_fd", "_dfd", "_path", "_size", "_offset", "_spare", "_buf", "_start",
                 "_fill", "_tap", "_pending", "_direct", "_failed")

    def __init__(self, fd: int, path: Path, size: int) -> None:
        self._fd = fd
        self._dfd = -1
        self._path = path
        self._size = size  # bytes written or staged
        self._offset = size  # file offset of _buf[_start]
        self._spare: mmap.mmap | None = None
        self._buf: mmap.mmap | None = None
        self._start = size % DIRECT_ALIGN  # block position of the first staged byte
        self._fill = self._start  # block position after the last staged byte
        self._tap: Tap | None = None
        # the block in flight: its buffer and the futures of its tap and its write
        self._pending: tuple[mmap.mmap, list[asyncio.Future[None]]] | None = None
        self._direct = _O_DIRECT != 0
        self._failed = False  # a block write failed: write nothing more

    @property
    def size(self) -> int:
        return self._size

    # ------------------------------------------------------------------ event loop side

    async def write(self, data: bytes | Sequence[bytes], tap: Tap | None = None) -> int:
        pieces = cast("Sequence[bytes]",
                      (data,) if isinstance(data, bytes | bytearray | memoryview) else data)
        total = 0
        for piece in pieces:
            view = memoryview(piece).cast("B")
            total += len(view)
            if view:
                await self._use_tap(tap)
            while view:
                if self._buf is None:
                    self._buf = self._fresh_block()
                take = min(len(view), len(self._buf) - self._fill)
                self._buf[self._fill:self._fill + take] = view[:take]
                self._fill += take
                self._size += take
                view = view[take:]
                if self._fill == len(self._buf):
                    await self._submit()
        return total

    async def receive(self, source: Source, tap: Tap | None = None) -> int:
        """Receive `source` in a worker thread, straight into the staging blocks. Each full
        block is tapped and written by two more threads while the next one arrives, so that
        an upload's last block is all that is left to hash when its last byte comes (a PATCH
        answers sooner); no byte and no wake-up crosses the event loop."""
        await self._use_tap(tap)
        await self._wait()  # a block that `write` staged must not overtake this one
        return await read_in_thread(source, self._receive_sync, _receivers)

    def _receive_sync(self, source: Source) -> int:
        """The receiving thread's loop. A full block is tapped and written by two block
        threads while the next one fills (as `_submit` does); one block in flight at a time."""
        total = 0
        in_flight: _InFlight | None = None
        try:
            while True:
                if self._buf is None:
                    self._buf = self._fresh_block()
                with memoryview(self._buf) as block, block[self._fill:] as free:
                    n = source.readinto(free)
                if not n:
                    return total
                self._fill += n
                self._size += n
                total += n
                if self._fill == len(self._buf):
                    job = self._take_block()
                    assert job is not None
                    landing, in_flight = in_flight, None
                    if landing is not None:
                        try:
                            self._landed(landing)
                        except BaseException:
                            _buffers.give(job.buf)  # failed before it: never written
                            raise
                    futures = [_block_jobs.submit(self._write_block, job)]
                    if job.tap is not None:
                        futures.append(_block_jobs.submit(_tap_block, job))
                    in_flight = (job.buf, futures)
        finally:
            if in_flight is not None:
                self._landed(in_flight)

    def _landed(self, in_flight: _InFlight) -> None:
        """Wait for a block's tap and write; its buffer becomes the spare. A failure fails the
        writer (nothing more is written, as after a failed `_submit` block)."""
        buf, futures = in_flight
        concurrent.futures.wait(futures)
        self._settle(buf, futures)

    def _settle(self, buf: mmap.mmap,
                futures: Sequence[asyncio.Future[None] | concurrent.futures.Future[None]]) -> None:
        """A block's tap and write have ended: its buffer becomes the spare; what they raised
        fails the writer (nothing more is written) and is raised."""
        if self._spare is None:
            self._spare = buf
        else:
            _buffers.give(buf)
        for future in futures:
            if not future.cancelled() and future.exception() is not None:
                self._failed = True
        for future in futures:
            future.result()

    async def _use_tap(self, tap: Tap | None) -> None:
        """Staged bytes keep the tap they were staged with: a new tap starts a new block."""
        if tap != self._tap:
            if self._fill > self._start:
                await self._submit()
            self._tap = tap

    def _fresh_block(self) -> mmap.mmap:
        block = self._spare if self._spare is not None else _buffers.take()
        self._spare = None
        return block

    def _take_block(self) -> _Job | None:
        """Detach the staged block (None when nothing is staged)."""
        if self._fill == self._start:
            return None
        assert self._buf is not None
        job = _Job(self._buf, self._start, self._fill, self._offset, self._tap)
        self._offset += self._fill - self._start
        self._buf = None
        self._start = self._fill = self._offset % DIRECT_ALIGN
        return job

    async def _submit(self) -> None:
        """Hand the staged block to a worker thread (after the previous one is written)."""
        await self._wait()
        job = self._take_block()
        if job is not None:
            # Tap (hash) and write in two threads at once: a direct write waits for the disk.
            loop = asyncio.get_running_loop()
            futures = [loop.run_in_executor(None, self._write_block, job)]
            if job.tap is not None:
                futures.append(loop.run_in_executor(None, _tap_block, job))
            self._pending = (job.buf, futures)

    async def _wait(self) -> None:
        """Wait for the block in flight; its buffer becomes the spare for the next block.
        Raises what its tap or write raised (the buffer is reused only once both ended)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        buf, futures = pending
        await asyncio.wait(futures)
        self._settle(buf, futures)

    async def _finish(self, sync: bool) -> None:
        """Write the last block and close (fsync first when `sync`), in one thread hop.
        After a failed block write nothing more is written (no hole before later bytes):
        close() just releases, commit() raises."""
        try:
            await self._wait()
        except BaseException:
            await _run(self._release)
            raise
        if self._failed:
            await _run(self._release)
            if sync:
                raise OSError(errno.EIO, f"an earlier write to {self._path} failed")
            return
        await _run(self._finish_sync, self._take_block(), sync)

    def _finish_sync(self, last: _Job | None, sync: bool) -> None:
        try:
            if last is not None:
                _buffers.give(self._emit(last))
        except BaseException:
            self._release()
            raise
        self._close(sync)

    async def commit(self) -> None:
        await self._finish(True)

    async def close(self) -> None:
        await self._finish(False)

    async def cancel(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            await asyncio.wait(pending[1])
            for future in pending[1]:
                if not future.cancelled():
                    future.exception()
        await _run(self._cancel)

    # ------------------------------------------------------------------ worker thread side

    def _emit(self, job: _Job) -> mmap.mmap:
        """Feed the tap, then write the block. Returns the buffer, free again."""
        _tap_block(job)
        self._write_block(job)
        return job.buf

    def _write_block(self, job: _Job) -> None:
        """Write buf[start:end] at `offset`: an unaligned head and a short tail buffered, the
        aligned middle direct."""
        with memoryview(job.buf) as block:
            pos, offset = job.start, job.offset
            if pos % DIRECT_ALIGN:
                head_end = min(job.end, pos - pos % DIRECT_ALIGN + DIRECT_ALIGN)
                _pwrite_all(self._fd, block[pos:head_end], offset)
                offset += head_end - pos
                pos = head_end
            aligned_end = pos + (job.end - pos) // DIRECT_ALIGN * DIRECT_ALIGN
            if aligned_end > pos and self._direct:
                done = self._write_direct(block[pos:aligned_end], offset)
                offset += done
                pos += done
            if pos < job.end:
                _pwrite_all(self._fd, block[pos:job.end], offset)

    def _write_direct(self, data: memoryview, offset: int) -> int:
        """O_DIRECT write of aligned `data`; bytes written (fewer only after a fallback)."""
        done = 0
        try:
            if self._dfd < 0:  # the same open file, whatever its path has become since
                self._dfd = os.open(f"/proc/self/fd/{self._fd}",
                                    os.O_WRONLY | os.O_CLOEXEC | _O_DIRECT)
            while done < len(data):
                n = os.pwrite(self._dfd, data[done:], offset + done)
                done += n
                if n % DIRECT_ALIGN:  # short and unaligned: continue buffered
                    break
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._direct = False
        return done

    def _close(self, sync: bool) -> None:
        if self._fd < 0:
            return
        try:
            if sync:
                os.fsync(self._fd)
                if self._direct and _WILLNEED is not None:
                    # Direct writes left nothing in the page cache: start reading the
                    # file's head back in the background, so that the first GET after a
                    # push starts from memory. The kernel reads one readahead window at most
                    # (8 MiB on the benchmark VM's disk); sendfile's own readahead brings in
                    # the rest. All of it would cost the push about 0.24 s of CPU per GB.
                    os.posix_fadvise(self._fd, 0, 0, _WILLNEED)
        finally:
            self._release()

    def _release(self) -> None:
        if self._dfd >= 0:
            os.close(self._dfd)
            self._dfd = -1
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for buf in (self._buf, self._spare):
            if buf is not None:
                _buffers.give(buf)
        self._buf = self._spare = None

    def _cancel(self) -> None:
        self._release()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


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

    def _open_writer(self, path: str, append: bool,
                     create: bool) -> FilesystemFileWriter | None:
        """The file opened for writing and held exclusively; None while another writer (in
        any process) holds it."""
        target = self.local_path(path)
        flags = os.O_WRONLY | os.O_CLOEXEC | (0 if append else os.O_TRUNC)
        if create:
            target.parent.mkdir(parents=True, exist_ok=True)
            flags |= os.O_CREAT
        try:
            fd = os.open(target, flags, 0o644)
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path) from None
        try:
            # Writers of one path exclude each other across processes until closed (an
            # upload session appended through two worker processes at once).
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            st = os.fstat(fd)
            if not _still_at(target, st):  # moved or removed while we waited for the lock
                raise PathNotFound(path)
            size = st.st_size if append else 0
        except BaseException:
            os.close(fd)
            raise
        return FilesystemFileWriter(fd, target, size)

    async def writer(self, path: str, append: bool = False,
                     create: bool = True) -> FilesystemFileWriter:
        """Wait (on the event loop, holding no thread) while another writer holds the file:
        a PATCH stalled mid-body elsewhere must not tie up the threads every request uses."""
        delay = _LOCK_RETRY_FIRST
        while True:
            writer = await _run(self._open_writer, check_path(path), append, create)
            if writer is not None:
                return writer
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LOCK_RETRY_MAX)

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
