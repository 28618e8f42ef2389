"""The shared driver suite run over FilesystemDriver and MemoryDriver."""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import importlib.util
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from registry.storage import filesystem
from registry.storage.filesystem import DIRECT_ALIGN, DIRECT_BUFFER, FilesystemDriver
from registry.storage.memory import MemoryDriver


def _load_suite(name: str) -> object:
    """Import tests/registry/suites/<name>.py by path (tests are not a package)."""
    path = Path(__file__).resolve().parents[1] / "suites" / f"{name}.py"
    module_name = f"registry_suites_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


DriverSuite = _load_suite("driver").DriverSuite  # type: ignore[attr-defined]
SocketSource = _load_suite("driver").SocketSource  # type: ignore[attr-defined]


class TestFilesystemDriver(DriverSuite):  # type: ignore[misc,valid-type]
    @pytest.fixture
    def driver(self, tmp_path: Path) -> FilesystemDriver:
        return FilesystemDriver(tmp_path / "root")

    async def test_local_path_points_at_the_file(self, tmp_path: Path) -> None:
        driver = FilesystemDriver(tmp_path)
        await driver.put_content("a/b", b"x")
        assert driver.local_path("a/b").read_bytes() == b"x"

    async def test_atomic_writes_leave_no_temp_files(self, tmp_path: Path) -> None:
        driver = FilesystemDriver(tmp_path)
        await driver.put_content("a/b", b"x")
        await driver.put_content("a/b", b"y")
        assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]


    async def test_a_second_writer_of_a_path_waits_for_the_first(self, tmp_path: Path) -> None:
        driver = FilesystemDriver(tmp_path)
        first = await driver.writer("f", append=True)
        second = asyncio.ensure_future(driver.writer("f", append=True))
        await asyncio.sleep(0.2)
        assert not second.done()
        await first.write(b"abc")
        await first.close()
        writer = await asyncio.wait_for(second, 5)
        assert writer.size == 3
        await writer.close()


ODD_SIZES = [1, DIRECT_ALIGN - 1, DIRECT_ALIGN + 1, DIRECT_BUFFER + 3, 123_457,
             DIRECT_BUFFER - 1, 2, 2 * DIRECT_BUFFER + 17]


async def _write_odd_pieces(driver: FilesystemDriver, path: str) -> tuple[bytes, bytes]:
    """Stream ODD_SIZES pieces (some as two-piece batches) with a sha256 tap; returns the
    bytes written and the tap's digest."""
    rng = random.Random(7)
    pieces = [rng.randbytes(n) for n in ODD_SIZES]
    tap = hashlib.sha256()
    w = await driver.writer(path)
    for i, piece in enumerate(pieces):
        half = len(piece) // 2
        await w.write(piece if i % 2 else [piece[:half], piece[half:]], tap=tap.update)
    assert w.size == sum(ODD_SIZES)
    await w.commit()
    return b"".join(pieces), tap.digest()


def _mapping_of(address: int) -> dict[str, Any]:
    """The /proc/self/smaps entry holding `address`: its permissions and kB counters."""
    entry: dict[str, Any] | None = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            low, high = (int(x, 16) for x in head[0].split("-"))
            if entry is not None:
                break
            if low <= address < high:
                entry = {"perms": head[1]}
        elif entry is not None and len(head) == 3 and head[2] == "kB":
            entry[head[0][:-1]] = int(head[1])
    assert entry is not None, hex(address)
    return entry


class TestFilesystemStreamingWriter:
    """FilesystemFileWriter: staged blocks written with O_DIRECT, head and tail buffered."""

    async def test_odd_sized_pieces_arrive_intact_and_tapped_in_order(
            self, tmp_path: Path) -> None:
        data, tapped = await _write_odd_pieces(FilesystemDriver(tmp_path), "up/data")
        assert (tmp_path / "up" / "data").read_bytes() == data
        assert tapped == hashlib.sha256(data).digest()

    @pytest.mark.parametrize("first", [0, 1, DIRECT_ALIGN - 1, DIRECT_ALIGN, 5000])
    async def test_appends_at_unaligned_offsets_continue_exactly(
            self, tmp_path: Path, first: int) -> None:
        driver = FilesystemDriver(tmp_path)
        rng = random.Random(first)
        expected = rng.randbytes(first)
        w = await driver.writer("f")
        await w.write(expected)
        await w.close()
        for n in (7, DIRECT_BUFFER + DIRECT_ALIGN - 3, DIRECT_ALIGN, 1, 3 * DIRECT_ALIGN):
            w = await driver.writer("f", append=True)
            assert w.size == len(expected)
            tap = hashlib.sha256()
            chunk = rng.randbytes(n)
            await w.write(chunk, tap=tap.update)
            expected += chunk
            await w.close()
            assert tap.digest() == hashlib.sha256(chunk).digest()
            assert (tmp_path / "f").stat().st_size == len(expected)
        assert (tmp_path / "f").read_bytes() == expected

    async def test_without_o_direct_the_same_bytes_are_written_buffered(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(filesystem, "_O_DIRECT", 0)  # as on a platform without it
        data, tapped = await _write_odd_pieces(FilesystemDriver(tmp_path), "b")
        assert (tmp_path / "b").read_bytes() == data
        assert tapped == hashlib.sha256(data).digest()

    async def test_after_a_failed_block_nothing_more_is_written(self, tmp_path: Path) -> None:
        calls = []

        def tap(view: bytes | memoryview) -> None:
            calls.append(len(view))
            if len(calls) == 2:
                raise ValueError("tap failed")

        driver = FilesystemDriver(tmp_path)
        w = await driver.writer("f")
        with pytest.raises(ValueError, match="tap failed"):
            await w.write(random.Random(2).randbytes(3 * DIRECT_BUFFER + 10), tap=tap)
        await w.close()  # releases without writing the staged rest: no bytes after a gap
        size = (tmp_path / "f").stat().st_size
        assert size % DIRECT_BUFFER == 0 and size <= 2 * DIRECT_BUFFER
        calls.clear()
        w = await driver.writer("f", append=True)
        with pytest.raises(ValueError):
            await w.write(random.Random(2).randbytes(3 * DIRECT_BUFFER), tap=tap)
        with pytest.raises(OSError):
            await w.commit()  # never reports a failed stream as durable

    async def test_a_failed_block_while_receiving_fails_the_writer_too(
            self, tmp_path: Path) -> None:
        calls = []

        def tap(view: bytes | memoryview) -> None:
            calls.append(len(view))
            if len(calls) == 2:
                raise ValueError("tap failed")

        source = SocketSource()
        try:
            w = await FilesystemDriver(tmp_path).writer("f")
            source.send_in_thread(random.Random(3).randbytes(3 * DIRECT_BUFFER + 10))
            with pytest.raises(ValueError, match="tap failed"):
                await w.receive(source, tap=tap)
            with pytest.raises(OSError):
                await w.commit()  # never reports a stream with a gap as durable
        finally:
            source.dispose()
        size = (tmp_path / "f").stat().st_size  # the second block was written as it was
        assert size % DIRECT_BUFFER == 0 and size <= 2 * DIRECT_BUFFER  # tapped; not the third

    def test_staging_blocks_are_private_memory_with_huge_pages(self) -> None:
        block = filesystem._buffers.take()
        try:
            block[:] = b"\x01" * len(block)  # touched, as a filled block is
            start = ctypes.addressof(ctypes.c_char.from_buffer(block))
            mapping = _mapping_of(start)
            assert mapping["perms"].endswith("p")  # not MAP_SHARED, which is shmem
            thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
            if "[never]" not in thp:  # this machine and CI: [madvise]
                assert mapping["AnonHugePages"] >= 2048
        finally:
            filesystem._buffers.give(block)

    async def test_cancel_with_a_block_in_flight_leaves_no_file(self, tmp_path: Path) -> None:
        driver = FilesystemDriver(tmp_path)
        w = await driver.writer("c")
        await w.write(random.Random(1).randbytes(2 * DIRECT_BUFFER + 5))
        await w.cancel()
        assert not (tmp_path / "c").exists()

    async def test_a_writer_of_a_file_removed_meanwhile_is_not_found(
            self, tmp_path: Path) -> None:
        driver = FilesystemDriver(tmp_path)
        first = await driver.writer("s/data")
        second = asyncio.ensure_future(driver.writer("s/data", append=True, create=False))
        await asyncio.sleep(0.1)
        await driver.delete("s/data")  # another process ends the session while we wait
        await first.close()
        with pytest.raises(filesystem.PathNotFound):
            await asyncio.wait_for(second, 5)


class TestMemoryDriver(DriverSuite):  # type: ignore[misc,valid-type]
    @pytest.fixture
    def driver(self) -> MemoryDriver:
        return MemoryDriver()
