"""strata.db: several processes opening a brand-new store at once all succeed."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

from builder.metadata import Metadata


def _open(path: Path, barrier: Barrier) -> None:
    barrier.wait()
    Metadata(path).close()


def test_concurrent_first_opens_of_a_new_database_all_succeed(tmp_path: Path) -> None:
    """Switching a new database to WAL can fail with 'database is locked' without SQLite's
    busy handler being asked (seen as a failed concurrent `strata pull` in CI)."""
    ctx = multiprocessing.get_context("fork")
    for i in range(20):
        path = tmp_path / f"db{i}" / "strata.db"
        path.parent.mkdir()
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_open, args=(path, barrier)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
