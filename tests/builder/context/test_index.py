"""The metadata index: unchanged files are stat'ed, never re-read; any stat change re-hashes."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from context_treeutil import CountingHasher, make_tree

from builder.context import INDEX_FILENAME, BuildContext

FILES = 2000
FILE_SIZE = 100 * 1024  # 2,000 x 100 KiB = ~200 MiB


@pytest.fixture(scope="module")
def big_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "ctx"
    block = os.urandom(FILE_SIZE)
    for i in range(FILES):
        sub = root / f"d{i % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        # distinct contents: a per-file prefix on a shared random block
        (sub / f"f{i:04d}.bin").write_bytes(i.to_bytes(4, "big") + block[4:])
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /data/\n")
    return root


def open_ctx(root: Path, state: Path, hasher: CountingHasher, **kw: int) -> BuildContext:
    return BuildContext.open(root, root / "Dockerfile", state_dir=state, hasher=hasher, **kw)


def test_noop_rebuild_of_a_200mib_context_reads_no_file(big_context: Path, tmp_path: Path) -> None:
    first = CountingHasher()
    started = time.monotonic()
    with open_ctx(big_context, tmp_path, first, racy_window_ns=0) as ctx:
        digest = ctx.checksum(["."])
    cold = time.monotonic() - started
    assert first.calls == FILES + 1  # every file plus the Dockerfile
    assert (tmp_path / INDEX_FILENAME).is_file()

    second = CountingHasher()
    started = time.monotonic()
    with open_ctx(big_context, tmp_path, second, racy_window_ns=0) as ctx:
        assert ctx.checksum(["."]) == digest
    warm = time.monotonic() - started
    assert second.calls == 0
    assert warm < cold


def test_one_changed_file_is_the_only_one_rehashed(big_context: Path, tmp_path: Path) -> None:
    root = big_context
    with open_ctx(root, tmp_path, CountingHasher(), racy_window_ns=0) as ctx:
        before = ctx.checksum(["d03"])
    target = root / "d03" / "f0003.bin"
    original = target.read_bytes()
    try:
        target.write_bytes(b"changed" + original[7:])
        hasher = CountingHasher()
        with open_ctx(root, tmp_path, hasher, racy_window_ns=0) as ctx:
            assert ctx.checksum(["d03"]) != before
        assert hasher.calls == 1
    finally:
        target.write_bytes(original)


def test_mtime_only_change_rehashes_but_keeps_the_checksum(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", {"Dockerfile": "x", "a": "A", "b": "B"})
    state = tmp_path / "state"
    with open_ctx(root, state, CountingHasher(), racy_window_ns=0) as ctx:
        before = ctx.checksum(["."])
    os.utime(root / "a", ns=(1, 1))
    hasher = CountingHasher()
    with open_ctx(root, state, hasher, racy_window_ns=0) as ctx:
        assert ctx.checksum(["."]) == before
    assert hasher.calls == 1


def test_replaced_file_with_same_size_and_mtime_is_rehashed(tmp_path: Path) -> None:
    """A new inode (editor save-by-rename) invalidates the entry even if size and mtime match."""
    root = make_tree(tmp_path / "ctx", {"Dockerfile": "x", "a": "AAAA"})
    state = tmp_path / "state"
    with open_ctx(root, state, CountingHasher(), racy_window_ns=0) as ctx:
        before = ctx.checksum(["a"])
    st = os.stat(root / "a")
    (root / "a.new").write_text("BBBB")
    os.utime(root / "a.new", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(root / "a.new", root / "a")
    hasher = CountingHasher()
    with open_ctx(root, state, hasher, racy_window_ns=0) as ctx:
        assert ctx.checksum(["a"]) != before
    assert hasher.calls == 1


def test_racily_clean_entries_are_verified_again(tmp_path: Path) -> None:
    """Hashed within the racy window of their last write, entries are re-read next time (git's
    rule): a same-tick edit keeping size and timestamps could not be told apart otherwise."""
    root = make_tree(tmp_path / "ctx", {"Dockerfile": "x", "a": "A"})
    state = tmp_path / "state"
    with open_ctx(root, state, CountingHasher()) as ctx:  # default 2 s window
        ctx.checksum(["a"])
    hasher = CountingHasher()
    with open_ctx(root, state, hasher) as ctx:
        ctx.checksum(["a"])
    assert hasher.calls == 1  # just written: not trusted yet

    old = time.time_ns() - 10_000_000_000
    os.utime(root / "a", ns=(old, old))  # ctime is still "now": still racy
    hasher = CountingHasher()
    with open_ctx(root, state, hasher) as ctx:
        ctx.checksum(["a"])
    assert hasher.calls == 1

    hasher = CountingHasher()
    with open_ctx(root, state, hasher, racy_window_ns=50_000_000) as ctx:
        time.sleep(0.1)
        ctx.checksum(["a"])  # hashed 100 ms after the last change: safe to remember
    assert hasher.calls == 1
    hasher = CountingHasher()
    with open_ctx(root, state, hasher, racy_window_ns=50_000_000) as ctx:
        ctx.checksum(["a"])
    assert hasher.calls == 0


def test_index_is_keyed_by_context_root(tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one", {"Dockerfile": "x", "a": "A"})
    two = make_tree(tmp_path / "two", {"Dockerfile": "x", "a": "A"})
    state = tmp_path / "state"
    with open_ctx(one, state, CountingHasher(), racy_window_ns=0) as ctx:
        ctx.checksum(["a"])
    hasher = CountingHasher()
    with open_ctx(two, state, hasher, racy_window_ns=0) as ctx:
        ctx.checksum(["a"])
    assert hasher.calls == 1


def test_corrupt_index_is_rebuilt(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", {"Dockerfile": "x", "a": "A"})
    state = tmp_path / "state"
    state.mkdir()
    (state / INDEX_FILENAME).write_bytes(b"this is not a database" * 100)
    with open_ctx(root, state, CountingHasher(), racy_window_ns=0) as ctx:
        digest = ctx.checksum(["a"])
    hasher = CountingHasher()
    with open_ctx(root, state, hasher, racy_window_ns=0) as ctx:
        assert ctx.checksum(["a"]) == digest
    assert hasher.calls == 0


def test_index_stores_no_content_and_one_row_per_file(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", {"Dockerfile": "x", "a": "A", "d/b": "B"})
    state = tmp_path / "state"
    with open_ctx(root, state, CountingHasher(), racy_window_ns=0) as ctx:
        ctx.checksum(["."])
        ctx.checksum(["."])
    db = sqlite3.connect(state / INDEX_FILENAME)
    rows = db.execute("SELECT relpath, length(sha256) FROM files ORDER BY relpath").fetchall()
    db.close()
    assert rows == [(b"Dockerfile", 64), (b"a", 64), (b"d/b", 64)]
    assert sorted(p.name for p in state.iterdir()) == [INDEX_FILENAME]


def test_without_state_dir_hashes_are_remembered_for_the_context_lifetime(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", {"Dockerfile": "x", "a": "A"})
    hasher = CountingHasher()
    ctx = BuildContext.open(root, root / "Dockerfile", hasher=hasher, racy_window_ns=0)
    ctx.checksum(["a"])
    ctx.checksum(["a"])
    assert hasher.calls == 1


def test_rows_of_deleted_files_are_dropped_after_a_whole_context_walk(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", {"Dockerfile": "x", "a": "A", "gone": "G"})
    state = tmp_path / "state"
    with open_ctx(root, state, CountingHasher(), racy_window_ns=0) as ctx:
        ctx.checksum(["."])
    (root / "gone").unlink()
    with open_ctx(root, state, CountingHasher(), racy_window_ns=0) as ctx:
        ctx.checksum(["a"])  # a partial selection keeps rows it did not see
    db = sqlite3.connect(state / INDEX_FILENAME)
    assert db.execute("SELECT count(*) FROM files").fetchone() == (3,)
    db.close()
    with open_ctx(root, state, CountingHasher(), racy_window_ns=0) as ctx:
        ctx.checksum(["."])
    db = sqlite3.connect(state / INDEX_FILENAME)
    assert db.execute("SELECT relpath FROM files ORDER BY relpath").fetchall() == [
        (b"Dockerfile",), (b"a",)]
    db.close()


def test_undecodable_file_names_are_indexed_and_hashed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", {"Dockerfile": "x"})
    name = os.fsdecode(b"caf\xe9.txt")  # latin-1 bytes, not UTF-8
    (root / name).write_text("data")
    state = tmp_path / "state"
    with open_ctx(root, state, CountingHasher(), racy_window_ns=0) as ctx:
        digest = ctx.checksum(["."])
    hasher = CountingHasher()
    with open_ctx(root, state, hasher, racy_window_ns=0) as ctx:
        assert ctx.checksum(["."]) == digest
        assert [m.name for m in ctx.select(["caf*"])] == [name]
    assert hasher.calls == 0


def test_unhashed_lists_only_files_the_index_cannot_answer(big_context: Path,
                                                          tmp_path: Path) -> None:
    """What COPY pre-hashes on threads: everything on a cold build, nothing on a no-op."""
    hasher = CountingHasher()
    with open_ctx(big_context, tmp_path, hasher, racy_window_ns=0) as ctx:
        entries = [e for m in ctx.select(["."]) for e in m.entries]
        files = [e for e in entries if e.kind.value == "file"]
        assert len(ctx.unhashed(entries)) == len(files)
        ctx.checksum(["."])
        assert ctx.unhashed(entries) == []
