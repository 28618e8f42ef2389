"""The push data path's tuning, measured in server CPU per pushed GB: large bodies received
straight from the socket (SocketBody), large socket reads while other bodies stream, and
malloc that keeps freed heap for the next socket buffer."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import socket
import subprocess
import sys
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from registry.oci import mediatypes as mt
from registry.server import params
from registry.server.app import hand_back_to
from registry.server.params import (
    BODY_READ_SIZE,
    DIRECT_BODY_MIN,
    HAND_BACK,
    ConnectionHandBack,
    SocketBody,
    body_pieces,
    close_taken_connection,
    request_body,
    return_taken_connection,
)
from registry.storage.filesystem import RECEIVING_THREADS

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


class RawConnection:
    """One HTTP/1.1 keep-alive connection at the byte level, so that a test sees which
    requests share it: requests go out as given, responses come back whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, method: str, path: str, body: bytes = b"", **headers: str) -> None:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
        self.writer.write(head.encode() + b"\r\n" + body)

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        status_line = await self.reader.readline()
        assert status_line, "the server closed the connection"
        headers = {}
        while (line := await self.reader.readline()) != b"\r\n":
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    async def request(self, method: str, path: str, body: bytes = b"",
                      **headers: str) -> tuple[int, dict[str, str], bytes]:
        self.send(method, path, body, **headers)
        return await self.response()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def test_a_large_body_comes_from_the_socket_and_its_connection_goes_on(reg) -> None:
    data = os.urandom(BIG)
    digest = reg.sha(data)
    conn = await RawConnection.open(reg.server.port)
    status, headers, _ = await conn.request(
        "POST", f"/v2/big/blobs/uploads/?digest={digest}", data,
        Content_Type="application/octet-stream")
    assert status == 201
    assert "connection" not in headers  # the connection went back to aiohttp: keep-alive
    status, _, got = await conn.request("GET", f"/v2/big/blobs/{digest}")
    assert (status, got) == (200, data)
    small = os.urandom(1000)
    status, headers, _ = await conn.request(
        "POST", f"/v2/big/blobs/uploads/?digest={reg.sha(small)}", small)
    assert status == 201
    assert "connection" not in headers
    await conn.close()


async def test_large_chunks_come_from_the_socket_and_share_one_connection(reg) -> None:
    data = os.urandom(3 * BIG)
    conn = await RawConnection.open(reg.server.port)
    status, headers, _ = await conn.request("POST", "/v2/big/blobs/uploads/")
    assert status == 202
    status, headers, _ = await conn.request(
        "PATCH", headers["location"], data[:BIG], Content_Range=f"0-{BIG - 1}",
        Content_Type="application/octet-stream")
    assert status == 202
    assert headers["range"] == f"0-{BIG - 1}"
    assert "connection" not in headers  # the next chunk comes on it, to the same worker
    location = headers["location"]
    status, headers, _ = await conn.request(  # skips ahead: 416, the session as it was
        "PATCH", location, data[BIG:2 * BIG], Content_Range=f"{BIG + 5}-{2 * BIG + 4}")
    assert (status, headers["range"]) == (416, f"0-{BIG - 1}")
    assert "connection" not in headers  # the unread body was dropped: the connection goes on
    status, headers, _ = await conn.request(
        "PATCH", location, data[BIG:2 * BIG], Content_Range=f"{BIG}-{2 * BIG - 1}")
    assert status == 202
    status, headers, _ = await conn.request(
        "PUT", f"{headers['location']}?digest={reg.sha(data)}", data[2 * BIG:],
        Content_Range=f"{2 * BIG}-{3 * BIG - 1}")
    assert status == 201
    assert "connection" not in headers
    status, _, got = await conn.request("GET", f"/v2/big/blobs/{reg.sha(data)}")
    assert (status, got) == (200, data)
    await conn.close()


async def test_a_request_sent_right_behind_a_taken_body_is_served(reg) -> None:
    data = os.urandom(BIG)
    conn = await RawConnection.open(reg.server.port)
    status, headers, _ = await conn.request("POST", "/v2/big/blobs/uploads/")
    conn.send("PATCH", headers["location"], data)  # both in one go: the socket holds the
    conn.send("GET", headers["location"])         # GET behind the body when it is taken
    status, headers, _ = await conn.response()
    assert (status, headers["range"]) == (202, f"0-{BIG - 1}")
    status, headers, _ = await conn.response()
    assert (status, headers["range"]) == (204, f"0-{BIG - 1}")
    await conn.close()


async def test_a_client_waiting_for_100_continue_keeps_its_connection(reg) -> None:
    data = os.urandom(BIG)
    conn = await RawConnection.open(reg.server.port)
    status, headers, _ = await conn.request("POST", "/v2/big/blobs/uploads/")
    location = headers["location"]
    conn.writer.write(f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: {BIG}\r\n"
                      "Expect: 100-continue\r\n\r\n".encode())  # curl's way for large bodies
    assert await conn.reader.readline() == b"HTTP/1.1 100 Continue\r\n"
    assert await conn.reader.readline() == b"\r\n"
    conn.writer.write(data)
    status, headers, _ = await conn.response()
    assert (status, headers["range"], headers.get("connection")) == (202, f"0-{BIG - 1}", None)
    status, headers, _ = await conn.request("GET", location)
    assert (status, headers["range"]) == (204, f"0-{BIG - 1}")
    await conn.close()


async def test_a_client_that_asks_to_close_after_a_taken_body_is_closed_on(reg) -> None:
    data = os.urandom(BIG)
    conn = await RawConnection.open(reg.server.port)
    status, headers, _ = await conn.request("POST", "/v2/big/blobs/uploads/")
    status, headers, _ = await conn.request("PATCH", headers["location"], data,
                                            Connection="close")
    assert (status, headers["connection"]) == (202, "close")
    assert await asyncio.wait_for(conn.reader.read(1), 5) == b""  # the server closed it
    await conn.close()


async def test_concurrent_chunked_uploads_each_keep_their_connection(reg) -> None:
    async def upload(i: int) -> None:
        data = os.urandom(2 * BIG + i)
        conn = await RawConnection.open(reg.server.port)
        status, headers, _ = await conn.request("POST", f"/v2/many/r{i}/blobs/uploads/")
        for start in range(0, len(data), BIG):
            piece = data[start:start + BIG]
            status, headers, _ = await conn.request(
                "PATCH", headers["location"], piece,
                Content_Range=f"{start}-{start + len(piece) - 1}")
            assert (status, headers.get("connection")) == (202, None)
        status, headers, _ = await conn.request(
            "PUT", f"{headers['location']}?digest={reg.sha(data)}")
        assert status == 201
        status, _, got = await conn.request("GET", f"/v2/many/r{i}/blobs/{reg.sha(data)}")
        assert (status, got) == (200, data)
        await conn.close()

    await asyncio.gather(*(upload(i) for i in range(8)))


async def test_a_chunk_is_taken_only_where_its_connection_can_come_back() -> None:
    """Without a server to hand the connection back to, a PATCH body stays with aiohttp (the
    connection lives on) and only a body that ends its upload is taken (and closes it)."""
    taken: list[str] = []

    async def consume(request: web.Request) -> web.Response:
        body = request_body(request, ends_upload=request.method != "PATCH")
        taken.append(type(body).__name__)
        total = 0
        if isinstance(body, SocketBody):
            buf = memoryview(bytearray(1024 * 1024))
            while n := await asyncio.to_thread(body.readinto, buf):
                total += n
        else:
            async for piece in body:
                total += len(piece)
        return web.Response(text=str(total))

    data = os.urandom(BIG)
    for hand_back in (False, True):
        app = web.Application(middlewares=[return_taken_connection])
        app[HAND_BACK] = ConnectionHandBack()
        app.on_response_prepare.append(close_taken_connection)
        app.router.add_route("*", "/", consume)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            if hand_back:
                assert client.server.runner is not None
                hand_back_to(app, client.server.runner)
            conn = await RawConnection.open(client.server.port)
            for method in ("PATCH", "PUT"):
                status, headers, body = await conn.request(method, "/", data)
                assert (status, body) == (200, str(BIG).encode())
            assert "connection" not in headers if hand_back else headers["connection"] == "close"
            await conn.close()
    assert taken == ["async_generator", "SocketBody", "SocketBody", "SocketBody"]


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


def _read_to_close(conn: socket.socket, half_close: bool = True) -> bytes:
    """Read what the server answers until it closes; first shut our sending side (FIN) when
    `half_close`."""
    if half_close:
        conn.shutdown(socket.SHUT_WR)
    conn.settimeout(10)
    answer = b""
    while piece := conn.recv(65536):
        answer += piece
    conn.close()
    return answer


async def test_a_body_cut_short_by_a_half_close_is_answered_400(reg) -> None:
    """A client that ends its body early but still reads gets 400 BLOB_UPLOAD_INVALID (RFC
    9112 §8), not a status made up for the log. A cut PATCH resumes from the upload's Range,
    as the spec's resumable pushes do; a cut closing PUT leaves no blob."""
    data = os.urandom(BIG)
    digest = reg.sha(data)
    port = reg.server.port
    for method in ("PATCH", "PUT"):
        resp = await reg.post("/v2/cut/blobs/uploads/")
        location = resp.headers["Location"]
        path = f"{location}?digest={digest}" if method == "PUT" else location
        conn = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port))
        await asyncio.to_thread(conn.sendall, (
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data[:BIG // 2])
        answer = await asyncio.to_thread(_read_to_close, conn)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), answer[:300]
        assert b"Connection: close" in head
        assert b'"BLOB_UPLOAD_INVALID"' in body and b"unsent" in body
        status = await reg.get(location)
        if method == "PUT":
            assert status.status == 404
            continue
        assert status.status == 204
        offset = int(status.headers["Range"].split("-")[1]) + 1 if status.headers["Range"] \
            != "0-0" else 0
        assert offset <= BIG // 2
        resp = await reg.client.patch(
            location, data=data[offset:],
            headers={"Content-Range": f"{offset}-{BIG - 1}"})
        assert resp.status == 202
        resp = await reg.client.put(resp.headers["Location"], params={"digest": digest})
        assert resp.status == 201
        assert await (await reg.get(f"/v2/cut/blobs/{digest}")).read() == data


@pytest.mark.parametrize("coding", ["gzip, chunked", "br,chunked"])
async def test_a_body_in_a_transfer_coding_other_than_chunked_is_501(reg, coding: str) -> None:
    """RFC 9112 §6.1: aiohttp decodes only chunked; a gzip body would be stored still
    gzipped, so it is refused (501 UNSUPPORTED) before any byte is stored. (A coding after
    chunked, or none, leaves no way to find the body's end: aiohttp answers 400 itself.)"""
    data = b"x" * 1000
    digest = reg.sha(data)
    port = reg.server.port
    resp = await reg.post("/v2/te/blobs/uploads/")
    location = resp.headers["Location"]
    for method, path in (("POST", f"/v2/te/blobs/uploads/?digest={digest}"),
                         ("PATCH", location), ("PUT", f"{location}?digest={digest}"),
                         ("PUT", "/v2/te/manifests/v1")):
        conn = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port))
        await asyncio.to_thread(conn.sendall, (
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {coding}\r\n"
            "Connection: close\r\nContent-Type: application/octet-stream\r\n\r\n"
            f"{len(data):x}\r\n").encode() + data + b"\r\n0\r\n\r\n")
        answer = await asyncio.to_thread(_read_to_close, conn, False)
        assert answer.startswith(b"HTTP/1.1 501 "), (method, path, answer[:300])
        assert b'"UNSUPPORTED"' in answer
    status = await reg.get(location)
    assert status.status == 204 and status.headers["Range"] == "0-0"
    assert (await reg.head(f"/v2/te/blobs/{digest}")).status == 404


async def test_a_body_with_a_content_coding_is_415(
        reg, caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp decodes a Content-Encoding: a blob was stored as other bytes than were sent,
    and a body that was not what its header said, arriving after the headers, was a 500.
    Bodies are taken as sent. (One that fails to decode in the packet of its headers, or
    a coding aiohttp lacks, gets aiohttp's own 400 before any handler runs.)"""
    body = gzip.compress(b"x" * 1000)
    digest = reg.sha(body)
    resp = await reg.post("/v2/ce/blobs/uploads/")
    location = resp.headers["Location"]
    for method, path in (("POST", f"/v2/ce/blobs/uploads/?digest={digest}"),
                         ("PATCH", location), ("PUT", f"{location}?digest={digest}"),
                         ("PUT", "/v2/ce/manifests/v1")):
        resp = await reg.request(method, path, data=body, headers={"Content-Encoding": "gzip"})
        assert resp.status == 415, (method, path, await resp.text())
        assert await reg.error_code(resp) == "UNSUPPORTED"
        assert resp.headers["Accept-Encoding"] == "identity"
    # not gzip at all, and after the headers
    conn = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", reg.server.port))
    await asyncio.to_thread(conn.sendall, (
        f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n"
        "Content-Encoding: gzip\r\nConnection: close\r\n\r\n").encode())
    await asyncio.sleep(0.2)
    await asyncio.to_thread(conn.sendall, b"not gzip at all")
    answer = await asyncio.to_thread(_read_to_close, conn, False)
    assert answer.startswith(b"HTTP/1.1 415 "), answer[:300]
    status = await reg.get(location)
    assert status.status == 204 and status.headers["Range"] == "0-0"
    assert (await reg.head(f"/v2/ce/blobs/{digest}")).status == 404
    # the refused body is not read: nothing for aiohttp to fail decoding and log
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


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

    app = web.Application(middlewares=[return_taken_connection])
    app[HAND_BACK] = ConnectionHandBack()
    app.on_response_prepare.append(close_taken_connection)
    app.router.add_put("/", consume)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert client.server.runner is not None
        hand_back_to(app, client.server.runner)  # a failed body's connection closes all the same
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


async def test_a_small_body_that_stalls_times_out_with_408(
        reg, monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp's path (a body under DIRECT_BODY_MIN) had no idle limit: a stalled PATCH held
    its upload (and, in another worker, the threads waiting for it) as long as the client
    kept the connection open."""
    monkeypatch.setattr(params, "BODY_IDLE_TIMEOUT", 0.5)
    resp = await reg.post("/v2/stall/blobs/uploads/")
    location = resp.headers["Location"]
    started = time.monotonic()
    conn = await RawConnection.open(reg.server.port)
    conn.writer.write(f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                      .encode() + b"x" * 100)
    status, headers, _ = await conn.response()
    assert status == 408 and headers["connection"] == "close"
    assert time.monotonic() - started < 5
    await conn.close()
    status_resp = await reg.get(location)  # the session goes on at what it had
    assert status_resp.status == 204
    # A manifest body too: a stalled PUT was answered only when its client gave up.
    conn = await RawConnection.open(reg.server.port)
    conn.writer.write(b"PUT /v2/stall/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      + mt.OCI_MANIFEST.encode() + b"\r\nContent-Length: 1000\r\n\r\n{")
    status, headers, _ = await conn.response()
    assert status == 408 and headers["connection"] == "close"
    await conn.close()


async def test_clients_that_trickle_cannot_hold_every_receiving_thread(reg) -> None:
    # A taken body holds a receiving thread for as long as its client sends. As many clients
    # as there are such threads, each sending a byte now and then, used to stall every other
    # large upload for the 300 s idle timeout; past that many, a body now comes through
    # aiohttp's parser, which holds no thread while it waits.
    port = reg.server.port
    trickling = []
    for _ in range(RECEIVING_THREADS + 4):
        location = (await reg.post("/v2/slow/blobs/uploads/")).headers["Location"]
        trickling.append(await asyncio.to_thread(
            _send_head_of_a_put, port, f"{location}?digest={reg.sha(b'x' * BIG)}", BIG, b"x"))
    try:
        await asyncio.sleep(0.5)
        data = os.urandom(BIG)
        resp = await asyncio.wait_for(reg.post(
            "/v2/fast/blobs/uploads/", params={"digest": reg.sha(data)}, data=data), 30)
        assert resp.status == 201
        got = await reg.get(f"/v2/fast/blobs/{reg.sha(data)}")
        assert await got.read() == data
    finally:
        for conn in trickling:
            conn.close()
    for _ in range(100):  # the clients gone, every thread's slot comes back
        if params._RECEIVING._value == RECEIVING_THREADS:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.1)
    assert params._RECEIVING._value == RECEIVING_THREADS  # type: ignore[attr-defined]
