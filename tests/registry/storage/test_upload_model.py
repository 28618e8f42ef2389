"""Property test: random operation sequences on one upload session agree with a tiny model."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.oci import Digest
from registry.oci.errors import BlobUnknown, BlobUploadUnknown, DigestInvalid, RangeInvalid
from registry.storage import MemoryDriver, RegistryStore, StoreConfig

REPO = "model/repo"

_data = st.binary(max_size=3000)
_start = st.sampled_from(["exact", "none", "wrong"])
_op = st.one_of(
    st.tuples(st.just("append"), _data, _start),
    st.tuples(st.just("commit"), _data, _start, st.booleans()),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("status")),
)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 700):
        yield data[i:i + 700]


async def _run(ops: list[tuple[object, ...]], memory: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await RegistryStore.open(StoreConfig(Path(tmp)),
                                         MemoryDriver() if memory else None)
        try:
            uuid = (await store.uploads.start(REPO)).uuid
            received = b""
            open_ = True
            for op in ops:
                kind = op[0]
                if not open_:
                    with pytest.raises(BlobUploadUnknown):
                        await store.uploads.status(REPO, uuid)
                    continue
                if kind == "status":
                    assert (await store.uploads.status(REPO, uuid)).offset == len(received)
                elif kind == "cancel":
                    await store.uploads.cancel(REPO, uuid)
                    open_ = False
                else:
                    data, mode = op[1], op[2]
                    assert isinstance(data, bytes)
                    start = {"exact": len(received), "none": None,
                             "wrong": len(received) + 1}[str(mode)]
                    if kind == "append":
                        if mode == "wrong":
                            with pytest.raises(RangeInvalid) as err:
                                await store.uploads.append(REPO, uuid, _chunks(data), start)
                            assert err.value.detail == {"offset": len(received)}
                        else:
                            status = await store.uploads.append(REPO, uuid, _chunks(data), start)
                            received += data
                            assert status.offset == len(received)
                        continue
                    right = op[3]
                    whole = received + data
                    digest = Digest.from_bytes(whole if right else whole + b"!")
                    if mode == "wrong":
                        with pytest.raises(RangeInvalid):
                            await store.uploads.commit(REPO, uuid, digest, _chunks(data), start)
                    elif right:
                        info = await store.uploads.commit(REPO, uuid, digest, _chunks(data),
                                                          start)
                        assert info.size == len(whole)
                        got = b"".join([c async for c in store.blobs.read(REPO, digest)])
                        assert got == whole
                        open_ = False
                    else:
                        with pytest.raises(DigestInvalid):
                            await store.uploads.commit(REPO, uuid, digest, _chunks(data), start)
                        with pytest.raises(BlobUnknown):
                            await store.blobs.stat(REPO, digest)
                        open_ = False
        finally:
            await store.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, max_size=8), memory=st.booleans())
def test_random_session_histories_match_the_model(ops: list[tuple[object, ...]],
                                                  memory: bool) -> None:
    asyncio.run(_run(ops, memory))
