"""The shared driver suite run over FilesystemDriver and MemoryDriver."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

from registry.storage.filesystem import FilesystemDriver
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


class TestMemoryDriver(DriverSuite):  # type: ignore[misc,valid-type]
    @pytest.fixture
    def driver(self) -> MemoryDriver:
        return MemoryDriver()
