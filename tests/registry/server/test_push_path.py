"""The push data path's tuning: large socket reads while a body streams, and malloc that
keeps freed heap for the next socket buffer (both measured in server CPU per pushed GB)."""

from __future__ import annotations

import os
import subprocess
import sys

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from registry.server.params import BODY_READ_SIZE, body_pieces


async def test_a_streaming_body_is_read_in_large_socket_reads() -> None:
    seen: dict[str, int] = {}

    async def consume(request: web.Request) -> web.Response:
        total = 0
        async for piece in body_pieces(request):
            total += len(piece)
            seen["largest"] = max(seen.get("largest", 0), len(piece))
        assert request.transport is not None
        seen["max_size"] = request.transport.max_size  # type: ignore[attr-defined]
        return web.Response(text=str(total))

    app = web.Application()
    app.router.add_put("/", consume)
    body = os.urandom(3 * BODY_READ_SIZE + 5)
    async with TestClient(TestServer(app)) as client:
        resp = await client.put("/", data=body)
        assert await resp.text() == str(len(body))
    assert seen["max_size"] == BODY_READ_SIZE
    assert seen["largest"] <= BODY_READ_SIZE


def test_malloc_is_tuned_to_keep_freed_heap_on_glibc() -> None:
    code = "from registry.server.__main__ import tune_malloc; assert tune_malloc()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_a_large_blob_pushed_around_the_page_cache_reads_back_intact(reg) -> None:
    data = os.urandom(9 * 1024 * 1024 + 4099)  # over two staging blocks, unaligned end
    digest = reg.sha(data)
    resp = await reg.post("/v2/big/blobs/uploads/", params={"digest": digest}, data=data)
    assert resp.status == 201
    for _ in range(2):  # from the disk (written with O_DIRECT), then from the page cache
        got = await reg.get(f"/v2/big/blobs/{digest}")
        assert got.status == 200
        assert await got.read() == data
    ranged = await reg.get(f"/v2/big/blobs/{digest}", headers={"Range": "bytes=8388600-8388700"})
    assert ranged.status == 206
    assert await ranged.read() == data[8388600:8388701]
