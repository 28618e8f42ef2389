"""The push data path's tuning, measured in server CPU per pushed GB: large bodies received
straight from the socket (SocketBody), large socket reads while other bodies stream, and
malloc that keeps freed heap for the next socket buffer."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from registry.server.params import (
    BODY_READ_SIZE,
    DIRECT_BODY_MIN,
    SocketBody,
    body_pieces,
    close_taken_connection,
)

BIG = DIRECT_BODY_MIN + 1024 * 1024 + 4099  # taken over; over one staging block, odd tail


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


async def test_a_large_body_comes_from_the_socket_and_then_the_connection_closes(reg) -> None:
    data = os.urandom(BIG)
    digest = reg.sha(data)
    resp = await reg.post("/v2/big/blobs/uploads/", params={"digest": digest}, data=data)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Connection"] == "close"  # aiohttp's parser never saw the body
    got = await reg.get(f"/v2/big/blobs/{digest}")  # a new connection serves the next request
    assert await got.read() == data
    small = os.urandom(1000)
    resp = await reg.post("/v2/big/blobs/uploads/", params={"digest": reg.sha(small)},
                          data=small)
    assert resp.status == 201
    assert "Connection" not in resp.headers  # a small body keeps its connection alive


async def test_large_chunks_keep_their_connection_and_a_large_last_one_closes_it(reg) -> None:
    data = os.urandom(3 * BIG)
    resp = await reg.post("/v2/big/blobs/uploads/")
    location = resp.headers["Location"]
    resp = await reg.patch(location, data=data[:BIG], headers={
        "Content-Range": f"0-{BIG - 1}", "Content-Type": "application/octet-stream"})
    assert resp.status == 202, await resp.text()
    assert resp.headers["Range"] == f"0-{BIG - 1}"
    assert "Connection" not in resp.headers  # the next chunk comes to the same worker
    location = resp.headers["Location"]
    resp = await reg.patch(location, data=data[BIG:2 * BIG], headers={  # skips ahead: 416
        "Content-Range": f"{BIG + 5}-{2 * BIG + 4}",
        "Content-Type": "application/octet-stream"})
    assert resp.status == 416
    assert resp.headers["Range"] == f"0-{BIG - 1}"  # the session is as it was
    resp = await reg.patch(location, data=data[BIG:2 * BIG], headers={
        "Content-Range": f"{BIG}-{2 * BIG - 1}", "Content-Type": "application/octet-stream"})
    assert resp.status == 202, await resp.text()
    resp = await reg.put(resp.headers["Location"], params={"digest": reg.sha(data)},
                         data=data[2 * BIG:], headers={
                             "Content-Range": f"{2 * BIG}-{3 * BIG - 1}",
                             "Content-Type": "application/octet-stream"})
    assert resp.status == 201, await resp.text()
    assert resp.headers["Connection"] == "close"  # the closing chunk came from the socket
    got = await reg.get(f"/v2/big/blobs/{reg.sha(data)}")
    assert await got.read() == data


async def test_a_digest_mismatch_on_a_large_body_leaves_nothing(reg) -> None:
    data = os.urandom(BIG)
    wrong = reg.sha(b"something else")
    resp = await reg.post("/v2/big/blobs/uploads/", params={"digest": wrong}, data=data)
    assert resp.status == 400
    assert await reg.error_code(resp) == "DIGEST_INVALID"
    for digest in (wrong, reg.sha(data)):
        assert (await reg.head(f"/v2/big/blobs/{digest}")).status == 404
    if reg.root.joinpath("uploads").exists():
        assert list(reg.root.joinpath("uploads").iterdir()) == []


def _send_head_of_a_put(port: int, path: str, length: int, sent: bytes) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + sent)
    return conn


async def test_a_client_that_drops_mid_body_leaves_no_blob(reg) -> None:
    data = os.urandom(BIG)
    digest = reg.sha(data)
    resp = await reg.post("/v2/drop/blobs/uploads/")
    location = resp.headers["Location"]
    path = f"{location}?digest={digest}"
    port = reg.server.port
    conn = await asyncio.to_thread(_send_head_of_a_put, port, path, len(data), data[:BIG // 2])
    await asyncio.sleep(0.3)
    conn.close()  # half the body, then gone
    for _ in range(50):
        status = await reg.get(location)
        if status.status == 404:  # the failed commit cancelled the session
            break
        await asyncio.sleep(0.1)
    assert status.status == 404
    assert (await reg.head(f"/v2/drop/blobs/{digest}")).status == 404
    resp = await reg.post("/v2/drop/blobs/uploads/", params={"digest": digest}, data=data)
    assert resp.status == 201  # and the server goes on


async def test_a_stalled_body_times_out_and_a_closed_one_lets_go_at_once() -> None:
    bodies: dict[str, SocketBody] = {}
    outcome: dict[str, str] = {}

    async def consume(request: web.Request) -> web.Response:
        idle = request.query["idle"]
        body = bodies[idle] = SocketBody(request, idle_timeout=float(idle))
        buf = memoryview(bytearray(1024 * 1024))

        def drain() -> int:
            total = 0
            while n := body.readinto(buf):
                total += n
            return total
        try:
            total = await asyncio.to_thread(drain)
        except ConnectionError as exc:
            outcome[idle] = type(exc).__name__
            return web.Response(status=499, text=str(exc))
        except TimeoutError as exc:
            outcome[idle] = type(exc).__name__
            return web.Response(status=408, text=str(exc))
        return web.Response(text=str(total))

    app = web.Application()
    app.on_response_prepare.append(close_taken_connection)
    app.router.add_put("/", consume)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        port = client.server.port
        for idle, status, how in (("0.5", b"408", "TimeoutError"),
                                  ("60", b"499", "ConnectionAbortedError")):
            started = time.monotonic()
            conn = await asyncio.to_thread(_send_head_of_a_put, port, f"/?idle={idle}", BIG,
                                           os.urandom(BIG // 3))  # a third, then silence
            if idle == "60":
                await asyncio.sleep(0.5)
                bodies[idle].close()  # as a cancelled upload does
            reply = await asyncio.to_thread(conn.recv, 4096)
            conn.close()
            assert reply.startswith(b"HTTP/1.1 " + status), reply
            assert b"Connection: close" in reply
            assert outcome[idle] == how
            assert time.monotonic() - started < 5
