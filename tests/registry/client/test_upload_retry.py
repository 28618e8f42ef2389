"""A large upload whose PATCH breaks mid-body is resumed from the registry's upload status.

The breaker is a real HTTP peer (aiohttp on loopback) in front of a real strata-registry: it
forwards everything, except that the first PATCH is cut after 1 MB of its body."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from tooling import free_port
from transfer_registries import RunningRegistry, _desc, _reader, forward, serving

from registry import client as client_mod
from registry.client import RegistryClient
from registry.oci import Digest


class Breaker:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.cut = 0
        self.seen: list[str] = []

    async def forward(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request.method)
        if request.method == "PATCH" and self.cut == 0:
            self.cut += 1
            await request.content.readexactly(1_000_000)
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        return await forward(request, self.upstream)


@pytest.fixture
async def breaker(strata_registry: RunningRegistry) -> AsyncIterator[Breaker]:
    b = Breaker(strata_registry.url)
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/v2/{tail:.*}", b.forward)
    async with serving(app, b.port):
        yield b


async def test_broken_patch_is_retried_from_the_upload_status(
        breaker: Breaker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "MONOLITHIC_LIMIT", 1 << 20)
    layer = os.urandom(5_000_000)
    async with RegistryClient(f"127.0.0.1:{breaker.port}") as client:
        await client.push_blob("retry/me", _desc(layer), _reader(layer))
        assert await client.blob_exists("retry/me", Digest.from_bytes(layer)) == len(layer)
    assert breaker.cut == 1
    assert breaker.seen.count("PATCH") == 2, breaker.seen
    assert "GET" in breaker.seen[breaker.seen.index("PATCH"):]


async def test_a_416_chunk_answer_reads_as_range_invalid(strata_registry: RunningRegistry) -> None:
    """strata names an out-of-place chunk BLOB_UPLOAD_INVALID (the spec's code) with a 416;
    the client still knows it for a range error, which it resumes from."""
    async with aiohttp.ClientSession(strata_registry.url) as session:
        async with session.post("/v2/range/me/blobs/uploads/") as resp:
            location = resp.headers["Location"]
        async with session.patch(location, data=b"x" * 100,
                                 headers={"Content-Range": "200-299"}) as resp:
            assert resp.status == 416
            error = await client_mod._error_from_response(resp, "PATCH")
    assert isinstance(error, client_mod.oci_errors.RangeInvalid)
    assert error.code == "BLOB_UPLOAD_INVALID"
