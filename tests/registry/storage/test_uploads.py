"""Upload sessions: the state machine, chunk ordering, verification, restart, processes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from registry.oci import Digest
from registry.oci.errors import (
    BlobUnknown,
    BlobUploadUnknown,
    DigestInvalid,
    NameInvalid,
    RangeInvalid,
)
from registry.storage import MemoryDriver, RegistryStore, StoreConfig, UploadState
from registry.storage.uploads import TRANSITIONS, UploadAction, next_state

REPO = "team/app"
DATA = os.urandom(3 * 1024 * 1024 + 12345)
DIGEST = Digest.from_bytes(DATA)


async def _read(store: RegistryStore, repo: str, digest: Digest, start: int = 0,
                end: int | None = None) -> bytes:
    return b"".join([c async for c in store.blobs.read(repo, digest, start, end)])


async def test_monolithic_put_makes_the_blob_readable_through_the_repo(store, push) -> None:
    info = await store.uploads.put(REPO, DIGEST, push.chunks(DATA, 100_000))
    assert (info.digest, info.size) == (DIGEST, len(DATA))
    assert await store.blobs.stat(REPO, DIGEST) == info
    assert await _read(store, REPO, DIGEST) == DATA
    assert await _read(store, REPO, DIGEST, 10, 1000) == DATA[10:1000]
    if info.path is not None:
        assert await asyncio.to_thread(info.path.read_bytes) == DATA


async def test_chunked_upload_reports_offsets_and_commits(store, push) -> None:
    status = await store.uploads.start(REPO)
    assert status.offset == 0 and status.repo == REPO
    cut = [0, 1, 700_000, 2_000_000, len(DATA)]
    for a, b in zip(cut, cut[1:], strict=False):
        status = await store.uploads.append(REPO, status.uuid, push.chunks(DATA[a:b], 77_777), a)
        assert status.offset == b
    assert (await store.uploads.status(REPO, status.uuid)).offset == len(DATA)
    info = await store.uploads.commit(REPO, status.uuid, DIGEST)
    assert info.size == len(DATA)
    assert await _read(store, REPO, DIGEST) == DATA


async def test_final_chunk_can_come_with_the_commit(store, push) -> None:
    status = await store.uploads.start(REPO)
    await store.uploads.append(REPO, status.uuid, push.chunks(DATA[:1000]))
    info = await store.uploads.commit(REPO, status.uuid, DIGEST, push.chunks(DATA[1000:]), 1000)
    assert await _read(store, REPO, info.digest) == DATA


async def test_out_of_order_chunk_raises_range_invalid_with_the_offset(store, push) -> None:
    status = await store.uploads.start(REPO)
    await store.uploads.append(REPO, status.uuid, push.chunks(b"abc"), 0)
    with pytest.raises(RangeInvalid) as err:
        await store.uploads.append(REPO, status.uuid, push.chunks(b"zzz"), 10)
    assert err.value.detail == {"offset": 3}
    with pytest.raises(RangeInvalid):
        await store.uploads.commit(REPO, status.uuid, Digest.from_bytes(b"abczzz"),
                                   push.chunks(b"zzz"), 0)
    assert (await store.uploads.status(REPO, status.uuid)).offset == 3
    info = await store.uploads.commit(REPO, status.uuid, Digest.from_bytes(b"abcdef"),
                                      push.chunks(b"def"), 3)
    assert await _read(store, REPO, info.digest) == b"abcdef"


async def test_second_commit_of_the_same_upload_is_unknown(store, push) -> None:
    status = await store.uploads.start(REPO)
    await store.uploads.commit(REPO, status.uuid, DIGEST, push.chunks(DATA))
    with pytest.raises(BlobUploadUnknown):
        await store.uploads.commit(REPO, status.uuid, DIGEST)
    with pytest.raises(BlobUploadUnknown):
        await store.uploads.status(REPO, status.uuid)


async def test_concurrent_commits_of_one_session_succeed_once(store, push) -> None:
    status = await store.uploads.start(REPO)
    await store.uploads.append(REPO, status.uuid, push.chunks(DATA))
    results = await asyncio.gather(
        *(store.uploads.commit(REPO, status.uuid, DIGEST) for _ in range(3)),
        return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, BlobUploadUnknown) for r in results) == 2


async def test_digest_mismatch_leaves_nothing_visible(store, push) -> None:
    status = await store.uploads.start(REPO)
    wrong = Digest.from_bytes(b"something else")
    with pytest.raises(DigestInvalid):
        await store.uploads.commit(REPO, status.uuid, wrong, push.chunks(DATA))
    for digest in (wrong, DIGEST):
        with pytest.raises(BlobUnknown):
            await store.blobs.stat(REPO, digest)
        assert await store.blobs.mount("other/repo", digest, None) is None
    with pytest.raises(BlobUploadUnknown):
        await store.uploads.status(REPO, status.uuid)
    files = [f.path async for f in store.driver.walk()]
    assert not [p for p in files if p.startswith(("blobs/", "uploads/"))]


async def test_cancelled_upload_is_unknown_afterwards(store, push) -> None:
    status = await store.uploads.start(REPO)
    await store.uploads.append(REPO, status.uuid, push.chunks(b"data"))
    await store.uploads.cancel(REPO, status.uuid)
    with pytest.raises(BlobUploadUnknown):
        await store.uploads.append(REPO, status.uuid, push.chunks(b"more"))
    with pytest.raises(BlobUploadUnknown):
        await store.uploads.cancel(REPO, status.uuid)


@pytest.mark.parametrize("uuid", ["../../etc/passwd", "", "ABCDEF", "0" * 31, "0" * 32])
async def test_unknown_or_malformed_upload_ids_are_unknown(store, uuid: str) -> None:
    with pytest.raises(BlobUploadUnknown):
        await store.uploads.status(REPO, uuid)


async def test_an_upload_is_only_reachable_through_its_repository(store, push) -> None:
    status = await store.uploads.start(REPO)
    with pytest.raises(BlobUploadUnknown):
        await store.uploads.append("other/repo", status.uuid, push.chunks(b"x"))
    with pytest.raises(BlobUploadUnknown):
        await store.uploads.status("other/repo", status.uuid)


async def test_start_refuses_invalid_repository_names(store) -> None:
    for name in ("UPPER/case", "a/../b", "x" * 256):
        with pytest.raises(NameInvalid):
            await store.uploads.start(name)


async def test_expired_sessions_are_unknown_and_purged(tmp_path: Path, push) -> None:
    store = await RegistryStore.open(StoreConfig(tmp_path / "r", upload_ttl_seconds=60))
    try:
        old = await store.uploads.start(REPO)
        fresh = await store.uploads.start(REPO)
        assert await store.uploads.purge_expired() == 0
        assert await store.uploads.purge_expired(now=old.started_at + 30) == 0
        assert await store.uploads.purge_expired(now=fresh.started_at + 61) == 2
        with pytest.raises(BlobUploadUnknown):
            await store.uploads.status(REPO, old.uuid)
    finally:
        await store.close()
    store = await RegistryStore.open(StoreConfig(tmp_path / "r", upload_ttl_seconds=-1))
    try:
        status = await store.uploads.start(REPO)
        with pytest.raises(BlobUploadUnknown):
            await store.uploads.append(REPO, status.uuid, push.chunks(b"x"))
    finally:
        await store.close()


async def test_a_new_store_on_the_same_root_continues_an_upload(tmp_path: Path, push) -> None:
    config = StoreConfig(tmp_path / "root")
    first = await RegistryStore.open(config)
    status = await first.uploads.start(REPO)
    await first.uploads.append(REPO, status.uuid, push.chunks(DATA[:1_000_000]))
    await first.close()
    second = await RegistryStore.open(config)
    try:
        assert (await second.uploads.status(REPO, status.uuid)).offset == 1_000_000
        with pytest.raises(RangeInvalid):
            await second.uploads.append(REPO, status.uuid, push.chunks(b"x"), 5)
        info = await second.uploads.commit(REPO, status.uuid, DIGEST,
                                           push.chunks(DATA[1_000_000:]), 1_000_000)
        assert await _read(second, REPO, info.digest) == DATA
    finally:
        await second.close()


async def test_odd_chunks_a_restart_and_a_short_final_chunk_commit_intact(
        tmp_path: Path, push) -> None:
    block = 4 * 1024 * 1024  # the filesystem writer's staging block
    data = os.urandom(2 * block + 10_007)
    digest = Digest.from_bytes(data)
    cuts = [0, 1, 4097, block + 5, 2 * block + 1, len(data) - 3]
    config = StoreConfig(tmp_path / "root")
    store = await RegistryStore.open(config)
    status = await store.uploads.start(REPO)
    for start, end in zip(cuts[:3], cuts[1:4], strict=True):
        status = await store.uploads.append(REPO, status.uuid,
                                            push.chunks(data[start:end], 65_521), start)
        assert status.offset == end
    await store.close()  # a restart: the live hash is gone, commit re-hashes the data
    store = await RegistryStore.open(config)
    try:
        uuid = status.uuid
        status = await store.uploads.append(REPO, uuid, push.chunks(data[cuts[3]:cuts[4]]),
                                            cuts[3])
        assert (await store.uploads.status(REPO, uuid)).offset == cuts[4]
        status = await store.uploads.append(REPO, uuid, push.chunks(data[cuts[4]:cuts[5]]))
        info = await store.uploads.commit(REPO, uuid, digest, push.chunks(data[cuts[5]:]),
                                          cuts[5])
        assert info.size == len(data)
        assert await _read(store, REPO, digest) == data
    finally:
        await store.close()


async def test_two_stores_on_one_root_interleave_appends(tmp_path: Path, push) -> None:
    config = StoreConfig(tmp_path / "root")
    a, b = await RegistryStore.open(config), await RegistryStore.open(config)
    try:
        status = await a.uploads.start(REPO)
        await a.uploads.append(REPO, status.uuid, push.chunks(DATA[:10]), 0)
        await b.uploads.append(REPO, status.uuid, push.chunks(DATA[10:500_000]), 10)
        with pytest.raises(RangeInvalid) as err:
            await a.uploads.append(REPO, status.uuid, push.chunks(DATA[10:20]), 10)
        assert err.value.detail == {"offset": 500_000}
        await a.uploads.append(REPO, status.uuid, push.chunks(DATA[500_000:]), 500_000)
        info = await a.uploads.commit(REPO, status.uuid, DIGEST)
        assert await b.blobs.stat(REPO, DIGEST) == info
        with pytest.raises(BlobUploadUnknown):
            await b.uploads.commit(REPO, status.uuid, DIGEST)
    finally:
        await a.close()
        await b.close()


async def _pieces(*pieces: bytes, gate: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    """The pieces; with a `gate`, the last one waits for it (a slow client's last bytes)."""
    for i, piece in enumerate(pieces):
        if gate is not None and i == len(pieces) - 1:
            await gate.wait()
        yield piece


async def test_an_append_waiting_behind_a_commit_finds_the_session_gone(tmp_path: Path) -> None:
    """Two processes (stores) on one root: a PATCH that waits for the data while the closing
    PUT holds it must not append into the blob that PUT publishes. It did: the commit let
    go of the data before moving it to the blob path, and the append wrote into the blob."""
    config = StoreConfig(tmp_path / "root")
    a, b = await RegistryStore.open(config), await RegistryStore.open(config)
    data = b"hello world"
    digest = Digest.from_bytes(data)
    try:
        status = await a.uploads.start(REPO)
        await a.uploads.append(REPO, status.uuid, _pieces(data[:6]), 0)
        gate = asyncio.Event()
        commit = asyncio.create_task(
            a.uploads.commit(REPO, status.uuid, digest, _pieces(b"wor", b"ld", gate=gate)))
        await asyncio.sleep(0.2)  # the commit holds the data, waiting for its last bytes
        append = asyncio.create_task(
            b.uploads.append(REPO, status.uuid, _pieces(b"GARBAGE"), None))
        await asyncio.sleep(0.2)  # the append waits for the data
        gate.set()
        info = await commit
        with pytest.raises(BlobUploadUnknown):
            await append
        assert info.path is not None
        assert await asyncio.to_thread(info.path.read_bytes) == data
    finally:
        await a.close()
        await b.close()


async def test_a_session_removed_during_a_large_append_is_no_server_error(
        tmp_path: Path) -> None:
    """Another process removes the session (its purge of expired uploads) while a large
    append is between its pieces: the append's direct writes used to reopen the data by path
    (FileNotFoundError, a 500). They reopen the descriptor they hold instead."""
    config = StoreConfig(tmp_path / "root", upload_ttl_seconds=60)
    a, b = await RegistryStore.open(config), await RegistryStore.open(config)
    try:
        status = await a.uploads.start(REPO)
        gate = asyncio.Event()
        append = asyncio.create_task(a.uploads.append(
            REPO, status.uuid, _pieces(b"x" * 8192, os.urandom(8 << 20), gate=gate), 0))
        await asyncio.sleep(0.2)
        assert await b.uploads.purge_expired(now=time.time() + 120) == 1
        gate.set()
        await append  # the bytes went into the removed file: nothing left behind, no error
        assert not (tmp_path / "root" / "uploads" / status.uuid).exists()
    finally:
        await a.close()
        await b.close()


async def test_a_cancel_waits_for_an_append_in_another_process(tmp_path: Path) -> None:
    """A cancel (DELETE) on one worker while a PATCH runs on another goes after it, as it does
    within one process: it used to remove the session under a running commit, whose next
    step then failed with FileNotFoundError (a 500)."""
    config = StoreConfig(tmp_path / "root")
    a, b = await RegistryStore.open(config), await RegistryStore.open(config)
    try:
        status = await a.uploads.start(REPO)
        gate = asyncio.Event()
        append = asyncio.create_task(a.uploads.append(
            REPO, status.uuid, _pieces(b"x" * 8192, b"y" * 100, gate=gate), 0))
        await asyncio.sleep(0.2)
        cancel = asyncio.create_task(b.uploads.cancel(REPO, status.uuid))
        await asyncio.sleep(0.3)
        assert not cancel.done()
        gate.set()
        assert (await append).offset == 8292
        await asyncio.wait_for(cancel, 10)
        with pytest.raises(BlobUploadUnknown):
            await a.uploads.status(REPO, status.uuid)
        assert not (tmp_path / "root" / "uploads" / status.uuid).exists()
    finally:
        await a.close()
        await b.close()


async def test_appends_waiting_for_held_uploads_hold_no_threads(tmp_path: Path) -> None:
    """While one process holds uploads (PATCHes stalled mid-body), retries of those PATCHes
    in another process wait without a thread each: they used to block in flock(2) on the
    default executor, and 6 of them stopped every other request of that worker."""
    config = StoreConfig(tmp_path / "root")
    a, b = await RegistryStore.open(config), await RegistryStore.open(config)
    count = 40  # more than any default executor's threads
    try:
        sessions = [await a.uploads.start(REPO) for _ in range(count)]
        gate = asyncio.Event()
        held = [asyncio.create_task(
            a.uploads.append(REPO, s.uuid, _pieces(b"a", b"b", gate=gate), 0))
            for s in sessions]
        await asyncio.sleep(0.3)
        waiting = [asyncio.create_task(b.uploads.append(REPO, s.uuid, _pieces(b"c")))
                   for s in sessions]
        await asyncio.sleep(0.3)
        other = await asyncio.wait_for(b.uploads.start(REPO), 5)  # the worker goes on
        assert other.offset == 0
        gate.set()
        await asyncio.gather(*held, *waiting)  # each retry appends once the holder lets go
        for s in sessions:
            assert (await b.uploads.status(REPO, s.uuid)).offset == 3
    finally:
        await a.close()
        await b.close()


_CHILD = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from registry.storage import RegistryStore, StoreConfig

    async def body():
        yield sys.stdin.buffer.read()

    async def main():
        store = await RegistryStore.open(StoreConfig(Path(sys.argv[1])))
        status = await store.uploads.append(sys.argv[2], sys.argv[3], body(), int(sys.argv[4]))
        print(status.offset)
        await store.close()

    asyncio.run(main())
""")


async def test_another_process_continues_an_upload(tmp_path: Path, push) -> None:
    config = StoreConfig(tmp_path / "root")
    store = await RegistryStore.open(config)
    try:
        status = await store.uploads.start(REPO)
        await store.uploads.append(REPO, status.uuid, push.chunks(DATA[:4096]))
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", _CHILD, str(config.root), REPO, status.uuid, "4096"],
            input=DATA[4096:], capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr.decode()
        assert int(proc.stdout) == len(DATA)
        info = await store.uploads.commit(REPO, status.uuid, DIGEST)
        assert await _read(store, REPO, info.digest) == DATA
    finally:
        await store.close()


async def test_two_writers_of_the_same_blob_both_succeed(store, push) -> None:
    async def one() -> None:
        status = await store.uploads.start(REPO)
        await store.uploads.append(REPO, status.uuid, push.chunks(DATA, 50_000))
        await store.uploads.commit(REPO, status.uuid, DIGEST)

    await asyncio.gather(one(), one(), store.uploads.put("other/repo", DIGEST, push.chunks(DATA)))
    assert await _read(store, REPO, DIGEST) == DATA
    assert await _read(store, "other/repo", DIGEST) == DATA
    files = [f.path async for f in store.driver.walk()]
    assert [p for p in files if p.startswith("blobs/")] == [
        f"blobs/sha256/{DIGEST.hex[:2]}/{DIGEST.hex}/data"]
    assert not [p for p in files if p.startswith("uploads/")]


async def test_sha512_digests_are_verified_by_rehashing(store, push) -> None:
    digest = Digest("sha512", hashlib.sha512(DATA).hexdigest())
    info = await store.uploads.put(REPO, digest, push.chunks(DATA))
    assert await _read(store, REPO, info.digest) == DATA


def test_ended_states_accept_no_move() -> None:
    assert set(TRANSITIONS.values()) == set(UploadState)
    for state in (UploadState.COMMITTED, UploadState.CANCELLED, UploadState.EXPIRED):
        for action in UploadAction:
            with pytest.raises(BlobUploadUnknown):
                next_state("u", state, action)
    assert next_state("u", UploadState.OPEN, UploadAction.APPEND) is UploadState.OPEN


class _CountingDriver(MemoryDriver):
    """A real MemoryDriver that counts full reads, to observe whether commit re-hashes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def reader(self, path: str, offset: int = 0, length: int | None = None,
               chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        self.reads.append(path)
        return super().reader(path, offset, length, chunk_size)


async def test_commit_uses_the_hash_computed_while_writing(tmp_path: Path, push) -> None:
    driver = _CountingDriver()
    store = await RegistryStore.open(StoreConfig(tmp_path), driver)
    try:
        status = await store.uploads.start(REPO)
        await store.uploads.append(REPO, status.uuid, push.chunks(DATA[:100_000]))
        await store.uploads.commit(REPO, status.uuid, DIGEST, push.chunks(DATA[100_000:]))
        assert driver.reads == []
        other = await RegistryStore.open(StoreConfig(tmp_path), driver)  # "another process"
        try:
            status = await store.uploads.start(REPO)
            await store.uploads.append(REPO, status.uuid, push.chunks(b"abc"))
            await other.uploads.append(REPO, status.uuid, push.chunks(b"def"))
            await store.uploads.commit(REPO, status.uuid, Digest.from_bytes(b"abcdef"))
            assert driver.reads == [f"uploads/{status.uuid}/committing"]  # moved aside
        finally:
            await other.close()
    finally:
        await store.close()


async def test_upload_memory_stays_flat_whatever_the_size(tmp_path: Path) -> None:
    block = os.urandom(64 * 1024)
    total = 64 * 1024 * 1024

    async def body() -> AsyncIterator[bytes]:
        for _ in range(total // len(block)):
            yield bytes(bytearray(block))  # a fresh object each time, like a socket read

    digest = Digest.from_bytes(block * (total // len(block)))
    store = await RegistryStore.open(StoreConfig(tmp_path))
    try:
        tracemalloc.start()
        await store.uploads.put(REPO, digest, body())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 8 * 1024 * 1024, f"peak {peak} bytes for a {total}-byte upload"
        assert (await store.blobs.stat(REPO, digest)).size == total
    finally:
        await store.close()


async def test_orphan_upload_dirs_are_purged_by_age(tmp_path: Path) -> None:
    store = await RegistryStore.open(StoreConfig(tmp_path, upload_ttl_seconds=60))
    try:
        orphan = "ab" * 16
        await store.driver.put_content(f"uploads/{orphan}/data", b"left by a crash")
        await store.driver.put_content("uploads/not-an-upload-id/data", b"ignored")
        assert await store.uploads.purge_expired() == 0
        assert await store.uploads.purge_expired(now=time.time() + 61) == 1
        assert await store.driver.list("uploads") == ["uploads/not-an-upload-id"]
    finally:
        await store.close()


async def test_the_purge_forgets_sessions_another_process_ended(tmp_path: Path) -> None:
    """A session this process touched and another one committed stays in this process's
    memory (its live hasher) until the purge sees its directory gone."""
    config = StoreConfig(tmp_path / "root")
    a, b = await RegistryStore.open(config), await RegistryStore.open(config)
    try:
        ended, going_on = await a.uploads.start(REPO), await a.uploads.start(REPO)
        await a.uploads.append(REPO, going_on.uuid, _pieces(b"half"), 0)
        await b.uploads.commit(REPO, ended.uuid, Digest.from_bytes(b"data"), _pieces(b"data"))
        assert await a.uploads.purge_expired() == 0
        assert set(a.uploads._sessions) == {going_on.uuid}
        with pytest.raises(BlobUploadUnknown):
            await a.uploads.status(REPO, ended.uuid)
        assert (await a.uploads.status(REPO, going_on.uuid)).offset == 4
    finally:
        await a.close()
        await b.close()
