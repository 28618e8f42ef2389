"""Shared behaviour suite for every StorageDriver (DESIGN habit 9).

Subclass `DriverSuite` and provide a `driver` fixture; tests/registry/storage/test_drivers.py
runs it over the filesystem and memory drivers.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import select
import socket
import threading
import time

import pytest

from registry.storage.driver import InvalidPath, PathNotFound, StorageDriver


class SocketSource:
    """A Source over one end of a socket pair, read as the server reads a request body: a
    non-blocking socket waited on with poll(2), which `close` interrupts. The other end is
    `peer`; the stream ends when the peer closes."""

    def __init__(self) -> None:
        self._sock, self.peer = socket.socketpair()
        self._sock.setblocking(False)
        self.closed = False

    def readinto(self, buf: memoryview) -> int:
        while not self.closed:
            try:
                return self._sock.recv_into(buf)
            except BlockingIOError:
                select.select([self._sock], [], [], 0.05)
        raise ConnectionAbortedError("source closed")

    def close(self) -> None:
        self.closed = True

    def send_in_thread(self, data: bytes, then_close: bool = True) -> threading.Thread:
        def send() -> None:
            try:
                self.peer.sendall(data)
            except OSError:  # the reader stopped early and the test disposed of the pair
                return
            if then_close:
                self.peer.close()
        thread = threading.Thread(target=send)
        thread.start()
        return thread

    def dispose(self) -> None:
        self._sock.close()
        self.peer.close()


async def _read_all(driver: StorageDriver, path: str, offset: int = 0,
                    length: int | None = None, chunk_size: int = 7) -> bytes:
    return b"".join([c async for c in driver.reader(path, offset, length, chunk_size)])


class DriverSuite:
    async def test_put_then_get_returns_the_same_bytes(self, driver: StorageDriver) -> None:
        await driver.put_content("a/b/c", b"hello")
        assert await driver.get_content("a/b/c") == b"hello"

    async def test_put_content_replaces_existing_content(self, driver: StorageDriver) -> None:
        await driver.put_content("x", b"long old content")
        await driver.put_content("x", b"new")
        assert await driver.get_content("x") == b"new"

    async def test_get_of_missing_path_raises_path_not_found(self, driver: StorageDriver) -> None:
        with pytest.raises(PathNotFound):
            await driver.get_content("nope/nothing")

    @pytest.mark.parametrize("bad", ["../escape", "a/../../b", "/abs", "a//b", "a/./b", "a\\b",
                                     "a/b/", "", "a\x00b"])
    async def test_paths_that_could_escape_the_root_are_refused(
            self, driver: StorageDriver, bad: str) -> None:
        with pytest.raises(InvalidPath):
            await driver.put_content(bad, b"x")
        with pytest.raises(InvalidPath):
            await driver.get_content(bad)

    async def test_reader_streams_a_range_in_chunks(self, driver: StorageDriver) -> None:
        data = bytes(range(256)) * 10
        await driver.put_content("r", data)
        assert await _read_all(driver, "r") == data
        assert await _read_all(driver, "r", 100) == data[100:]
        assert await _read_all(driver, "r", 100, 50) == data[100:150]
        assert await _read_all(driver, "r", len(data) + 5) == b""
        chunks = [c async for c in driver.reader("r", 0, None, 1000)]
        assert [len(c) for c in chunks] == [1000, 1000, 560]

    async def test_reader_of_missing_path_raises_path_not_found(
            self, driver: StorageDriver) -> None:
        with pytest.raises(PathNotFound):
            await _read_all(driver, "missing")

    async def test_writer_batches_are_tapped_in_order_in_the_same_pass(
            self, driver: StorageDriver) -> None:
        h = hashlib.sha256()
        w = await driver.writer("up/data")
        assert await w.write([b"ab", b"", b"cd"], tap=h.update) == 4
        assert await w.write(b"ef", tap=h.update) == 2
        assert w.size == 6
        await w.commit()
        assert await driver.get_content("up/data") == b"abcdef"
        assert h.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()

    async def test_writer_in_append_mode_continues_existing_content(
            self, driver: StorageDriver) -> None:
        w = await driver.writer("f")
        await w.write(b"12345")
        await w.close()
        w = await driver.writer("f", append=True)
        assert w.size == 5
        await w.write(b"678")
        assert w.size == 8
        await w.close()
        assert await driver.get_content("f") == b"12345678"
        w = await driver.writer("f")
        await w.write(b"z")
        await w.close()
        assert await driver.get_content("f") == b"z"

    async def test_writer_without_create_refuses_a_missing_path(
            self, driver: StorageDriver) -> None:
        with pytest.raises(PathNotFound):
            await driver.writer("absent/data", append=True, create=False)
        with pytest.raises(PathNotFound):
            await driver.stat("absent/data")
        w = await driver.writer("f")
        await w.write(b"ab")
        await w.close()
        w = await driver.writer("f", append=True, create=False)
        assert w.size == 2
        await w.write(b"c")
        await w.close()
        assert await driver.get_content("f") == b"abc"

    async def test_cancelled_writer_leaves_no_file(self, driver: StorageDriver) -> None:
        w = await driver.writer("c/data")
        await w.write(b"partial")
        await w.cancel()
        with pytest.raises(PathNotFound):
            await driver.stat("c/data")

    async def test_large_batches_are_written_completely(self, driver: StorageDriver) -> None:
        chunk = bytes(range(256)) * 4096  # 1 MiB
        w = await driver.writer("big")
        assert await w.write([chunk] * 3) == 3 * len(chunk)
        await w.commit()
        assert (await driver.stat("big")).size == 3 * len(chunk)

    async def test_stat_reports_size_and_kind(self, driver: StorageDriver) -> None:
        await driver.put_content("d/f", b"12345")
        info = await driver.stat("d/f")
        assert (info.path, info.size, info.is_dir) == ("d/f", 5, False)
        assert (await driver.stat("d")).is_dir
        with pytest.raises(PathNotFound):
            await driver.stat("d/g")

    async def test_list_returns_direct_children_sorted(self, driver: StorageDriver) -> None:
        for p in ("top/b/x", "top/a", "top/c/d/e", "other"):
            await driver.put_content(p, b"1")
        assert await driver.list("top") == ["top/a", "top/b", "top/c"]
        assert await driver.list("") == ["other", "top"]
        with pytest.raises(PathNotFound):
            await driver.list("absent")

    async def test_move_renames_and_replaces_destination(self, driver: StorageDriver) -> None:
        await driver.put_content("src/data", b"new")
        await driver.put_content("dst/deep/data", b"old")
        await driver.move("src/data", "dst/deep/data")
        assert await driver.get_content("dst/deep/data") == b"new"
        with pytest.raises(PathNotFound):
            await driver.get_content("src/data")
        with pytest.raises(PathNotFound):
            await driver.move("src/data", "elsewhere")

    async def test_move_creates_missing_parents(self, driver: StorageDriver) -> None:
        await driver.put_content("m", b"1")
        await driver.move("m", "p/q/r")
        assert await driver.get_content("p/q/r") == b"1"

    async def test_delete_removes_files_and_whole_trees(self, driver: StorageDriver) -> None:
        for p in ("t/a", "t/b/c", "keep"):
            await driver.put_content(p, b"1")
        await driver.delete("t/a")
        with pytest.raises(PathNotFound):
            await driver.stat("t/a")
        await driver.delete("t")
        with pytest.raises(PathNotFound):
            await driver.stat("t/b/c")
        assert await driver.get_content("keep") == b"1"
        with pytest.raises(PathNotFound):
            await driver.delete("t")

    async def test_walk_yields_every_file_sorted(self, driver: StorageDriver) -> None:
        for p in ("w/b/2", "w/a", "w/b/1", "z"):
            await driver.put_content(p, b"12")
        assert [f.path async for f in driver.walk("w")] == ["w/a", "w/b/1", "w/b/2"]
        assert [f.path async for f in driver.walk()] == ["w/a", "w/b/1", "w/b/2", "z"]
        assert {f.size async for f in driver.walk("w")} == {2}
        with pytest.raises(PathNotFound):
            _ = [f async for f in driver.walk("nothing")]

    async def test_receive_appends_a_source_in_order_between_written_bytes(
            self, driver: StorageDriver) -> None:
        body = random.Random(5).randbytes(9 * 1024 * 1024 + 4099)  # blocks and an odd tail
        source = SocketSource()
        try:
            h = hashlib.sha256()
            w = await driver.writer("up/data")
            await w.write(b"abc", tap=h.update)  # the source continues at an unaligned offset
            sender = source.send_in_thread(body)
            assert await w.receive(source, tap=h.update) == len(body)
            await w.write(b"xyz", tap=h.update)
            assert w.size == len(body) + 6
            await w.commit()
            sender.join()
        finally:
            source.dispose()
        expected = b"abc" + body + b"xyz"
        assert await driver.get_content("up/data") == expected
        assert h.digest() == hashlib.sha256(expected).digest()

    async def test_a_cancelled_receive_closes_its_source_and_gives_the_writer_back(
            self, driver: StorageDriver) -> None:
        source = SocketSource()
        try:
            w = await driver.writer("f")
            await w.write(b"kept")
            sender = source.send_in_thread(b"partial", then_close=False)  # then nothing more
            receiving = asyncio.ensure_future(w.receive(source))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            receiving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await receiving
            assert source.closed
            assert time.monotonic() - started < 2  # the reading thread let go of the writer
            await w.write(b"!")
            await w.close()
            sender.join()
        finally:
            source.dispose()
        assert (await driver.get_content("f")).startswith(b"kept")

