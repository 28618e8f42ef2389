"""LocalContentStore: ingest, verify, atomic rename; failures leave nothing visible."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from builder.content import LocalContentStore, atomic_write, read_small, write_blob, write_bytes
from builder.errors import DigestMismatch, NotFound
from registry.oci import Digest


def _digest(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def test_new_store_is_a_valid_empty_oci_layout(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    assert json.loads((tmp_path / "oci" / "oci-layout").read_text()) == {
        "imageLayoutVersion": "1.0.0"}
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["manifests"] == []
    assert (tmp_path / "oci" / "blobs" / "sha256").is_dir()
    assert list(store.walk()) == []


def test_committed_blob_is_readable_under_its_digest(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    data = b"hello layer" * 1000
    info = write_blob(store, "t", [data[:5000], data[5000:]])
    assert info.digest == _digest(data) and info.size == len(data)
    assert (tmp_path / "oci/blobs/sha256" / info.digest.encoded).read_bytes() == data
    assert read_small(store, info.digest) == data
    assert store.info(info.digest).size == len(data)
    store.verify(info.digest)
    assert list(os.scandir(store.ingest_dir)) == []


def test_blob_is_invisible_until_commit(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    data = b"x" * 4096
    with store.writer("partial") as w:
        w.write(data)
        assert not store.exists(_digest(data))
        assert len(list(store.ingest_dir.iterdir())) == 1
        w.commit()
    assert store.exists(_digest(data))


def test_digest_mismatch_leaves_no_blob_and_no_ingest_file(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    wrong = _digest(b"something else")
    with pytest.raises(DigestMismatch):
        write_blob(store, "bad", [b"actual bytes"], expected=wrong)
    assert list(store.walk()) == []
    assert list(store.ingest_dir.iterdir()) == []
    assert not store.exists(_digest(b"actual bytes"))


def test_size_mismatch_is_rejected_while_streaming(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    with pytest.raises(DigestMismatch):
        write_blob(store, "big", [b"a" * 10, b"b" * 10], expected_size=15)
    with pytest.raises(DigestMismatch):
        write_blob(store, "short", [b"a" * 10], expected_size=15)
    assert list(store.walk()) == [] and list(store.ingest_dir.iterdir()) == []


def test_abandoned_writer_discards_its_data(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    with store.writer("abandoned") as w:
        w.write(b"never committed")
    assert list(store.walk()) == [] and list(store.ingest_dir.iterdir()) == []


def test_missing_blob_is_not_found(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    with pytest.raises(NotFound):
        store.open(_digest(b"nope"))
    with pytest.raises(NotFound):
        store.delete(_digest(b"nope"))


def test_concurrent_threads_writing_one_blob_all_succeed(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    data = os.urandom(3 << 20)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            info = write_blob(store, "same", [data[i:i + 65536]
                                             for i in range(0, len(data), 65536)],
                              expected=_digest(data))
            assert info.size == len(data)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store.verify(_digest(data))
    assert [b.digest for b in store.walk()] == [_digest(data)]
    assert list(store.ingest_dir.iterdir()) == []


def _process_writer(root: str, seed: int) -> None:
    store = LocalContentStore(root)
    data = bytes(range(256)) * 8192
    write_blob(store, f"proc{seed}", [data], expected=_digest(data))


def test_concurrent_processes_writing_one_blob_leave_one_verified_blob(tmp_path: Path) -> None:
    LocalContentStore(tmp_path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_process_writer, args=(str(tmp_path), i)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0] * 6
    store = LocalContentStore(tmp_path)
    data = bytes(range(256)) * 8192
    store.verify(_digest(data))
    assert len(list(store.walk())) == 1


def test_stale_ingest_of_a_dead_writer_is_cleaned_but_a_live_one_is_kept(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    dead = store.ingest_dir / "dead-123"
    dead.mkdir()
    (dead / "data").write_bytes(b"half a blob")
    (dead / "lock").touch()
    with store.writer("alive") as live:
        live.write(b"in progress")
        assert store.cleanup_stale_ingests() == 1
        assert not dead.exists() and live.dir.exists()
        live.commit()


def test_verify_detects_a_corrupted_blob(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    info = write_bytes(store, b'{"a": 1}')
    path = store.blob_path(info.digest)
    os.chmod(path, 0o644)
    path.write_bytes(b'{"a": 2}')
    with pytest.raises(DigestMismatch):
        store.verify(info.digest)


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "index.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]
