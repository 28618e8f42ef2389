"""A pull-through cache (strata-registry process) in front of an upstream that misbehaves: a
scripted aiohttp server in the test's event loop sends wrong, too many or too few bytes,
hangs, refuses (401, as Docker Hub does for a repository it does not have) or limits (429).
The client must never get a whole body that does not match its digest, nor wait for ever,
and tags are checked with HEADs (Docker Hub counts GETs against its pull limits)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from tooling import free_port
from transfer_registries import RunningRegistry, serving, start_strata_registry

from registry.oci import mediatypes as mt


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


GOOD = os.urandom(3 << 20)
WRONG = os.urandom(len(GOOD))  # served for GOOD's digest by the "wrong" repository
CONFIG = b'{"architecture":"amd64","os":"linux"}'
IMAGE = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {
    "mediaType": mt.OCI_CONFIG, "digest": _sha(CONFIG), "size": len(CONFIG)}, "layers": [
    {"mediaType": mt.OCI_LAYER_GZIP, "digest": _sha(GOOD), "size": len(GOOD)}]}).encode()
SCHEMA1 = json.dumps({"schemaVersion": 1, "name": "schema1/app", "tag": "1",
                      "fsLayers": [], "history": []}).encode()
INDEX = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
    {"mediaType": mt.OCI_MANIFEST, "digest": _sha(IMAGE), "size": len(IMAGE),
     "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()


class Upstream:
    """The scripted upstream: repository names choose the behaviour."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()  # (method, path)
        self.hang = asyncio.Event()  # "slow" answers nothing from then on ...
        self.release = asyncio.Event()  # ... until the test ends

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/", self.base)
        app.router.add_route("*", "/v2/{name:.+}/manifests/{ref}", self.manifest)
        app.router.add_route("*", "/v2/{name:.+}/blobs/{digest}", self.blob)
        app.router.add_get("/v2/{name:.+}/tags/list", self.tags)
        return app

    async def base(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({})

    async def tags(self, request: web.Request) -> web.StreamResponse:
        if self.hang.is_set():
            await self.release.wait()
        return web.json_response({"name": request.match_info["name"], "tags": ["1", "2"]})

    async def manifest(self, request: web.Request) -> web.StreamResponse:
        name, ref = request.match_info["name"].split("/")[0], request.match_info["ref"]
        self.seen[(request.method, request.path)] += 1
        if name == "refused":
            return web.json_response({"errors": [{"code": "UNAUTHORIZED", "message": "x"}]},
                                     status=401)
        if name == "limited":
            return web.json_response({"errors": [{"code": "TOOMANYREQUESTS", "message": "x"}]},
                                     status=429)
        if name == "slow" and self.hang.is_set():
            await self.release.wait()
        body, media_type = (INDEX, mt.OCI_INDEX) if name == "multi" else (IMAGE, mt.OCI_MANIFEST)
        if name == "schema1":
            body, media_type = SCHEMA1, "application/vnd.docker.distribution.manifest.v1+json"
        if ref not in ("1", _sha(body)) and not (name == "multi" and ref == _sha(IMAGE)):
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "x"}]},
                                     status=404)
        if ref == _sha(IMAGE):
            body, media_type = IMAGE, mt.OCI_MANIFEST
        headers = {"Docker-Content-Digest": _sha(body), "Content-Type": media_type}
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(body))})
        return web.Response(body=body, headers=headers)

    async def blob(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"].split("/")[0]
        self.seen[(request.method, request.path)] += 1
        if name == "refused":
            return web.json_response({"errors": [{"code": "UNAUTHORIZED", "message": "x"}]},
                                     status=401)
        headers = {"Content-Length": str(len(GOOD))}
        if request.method == "HEAD":
            return web.Response(headers=headers)
        response = web.StreamResponse()
        if name == "long":  # more than the HEAD said, with no end in sight
            await response.prepare(request)
            for _ in range(64):
                await response.write(b"x" * (1 << 20))
            return response
        response.content_length = len(GOOD)
        await response.prepare(request)
        data = {"wrong": WRONG, "short": GOOD[:-10]}.get(name, GOOD)
        await response.write(data)
        if name == "short":  # (then the connection ends before Content-Length)
            assert request.transport is not None
            request.transport.close()
        return response


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Upstream, RunningRegistry]]:
    upstream, port = Upstream(), free_port()
    async with serving(upstream.app(), port):
        cache = await asyncio.to_thread(start_strata_registry, tmp_path, env={
            "STRATA_REGISTRY_PROXY_REMOTE_URL": f"http://127.0.0.1:{port}",
            "STRATA_REGISTRY_PROXY_TIMEOUT_SECONDS": "1"})
        try:
            yield upstream, cache
        finally:
            upstream.release.set()
            await asyncio.to_thread(cache.stop)


async def _get(cache: RunningRegistry, path: str, headers: dict[str, str] | None = None,
               method: str = "GET") -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.request(
            method, cache.url + path, headers=headers or {}) as resp:
        return resp.status, await resp.read()


@pytest.mark.parametrize("repo", ["wrong", "long", "short"])
async def test_bad_upstream_bytes_never_reach_the_client_whole_nor_the_cache(
        setup: tuple[Upstream, RunningRegistry], repo: str) -> None:
    upstream, cache = setup
    path = f"/v2/{repo}/app/blobs/{_sha(GOOD)}"
    for attempt in (1, 2):
        started = time.monotonic()
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(_get(cache, path), 20)
        assert time.monotonic() - started < 10  # cut, not left to time out
        assert upstream.seen[("GET", path)] == attempt  # nothing was cached


async def test_a_ranged_get_of_bad_upstream_bytes_is_502(
        setup: tuple[Upstream, RunningRegistry]) -> None:
    _, cache = setup
    status, body = await _get(cache, f"/v2/wrong/app/blobs/{_sha(GOOD)}",
                              {"Range": "bytes=0-99"})
    assert status == 502 and json.loads(body)["errors"][0]["code"] == "UNKNOWN"


async def test_a_good_blob_is_cached_once(setup: tuple[Upstream, RunningRegistry]) -> None:
    upstream, cache = setup
    path = f"/v2/good/app/blobs/{_sha(GOOD)}"
    assert await _get(cache, path) == (200, GOOD)
    assert await _get(cache, path) == (200, GOOD)
    assert upstream.seen[("GET", path)] == 1
    # conditional and ranged requests of a blob not cached yet need no download
    other = f"/v2/other/app/blobs/{_sha(GOOD)}"
    assert (await _get(cache, f"/v2/fresh/app/blobs/{_sha(GOOD)}",
                       {"If-None-Match": f'"{_sha(GOOD)}"'}))[0] == 304
    assert (await _get(cache, other, {"Range": f"bytes={len(GOOD)}-"}))[0] == 416
    assert upstream.seen[("GET", other)] == 0


async def test_tags_are_checked_with_heads_and_a_hanging_upstream_is_not_waited_for(
        setup: tuple[Upstream, RunningRegistry]) -> None:
    upstream, cache = setup
    accept = {"Accept": mt.OCI_MANIFEST}
    status, body = await _get(cache, "/v2/slow/app/tags/list")
    assert json.loads(body)["tags"] == ["1", "2"]  # the upstream's list
    for _ in range(3):
        assert await _get(cache, "/v2/slow/app/manifests/1", accept) == (200, IMAGE)
    assert upstream.seen[("GET", "/v2/slow/app/manifests/1")] == 0
    assert upstream.seen[("HEAD", "/v2/slow/app/manifests/1")] == 3
    assert upstream.seen[("GET", f"/v2/slow/app/manifests/{_sha(IMAGE)}")] == 1
    upstream.hang.set()
    started = time.monotonic()
    assert await _get(cache, "/v2/slow/app/manifests/1", accept) == (200, IMAGE)
    assert time.monotonic() - started < 5  # proxy_timeout_seconds is 1
    started = time.monotonic()
    status, body = await _get(cache, "/v2/slow/app/tags/list")
    assert json.loads(body)["tags"] == ["1"]  # the cache's own list
    assert time.monotonic() - started < 5


async def test_refusals_limits_and_uncacheable_manifests_upstream_are_404_429_and_502(
        setup: tuple[Upstream, RunningRegistry]) -> None:
    _, cache = setup
    status, body = await _get(cache, "/v2/refused/app/manifests/1")
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    status, body = await _get(cache, f"/v2/refused/app/blobs/{_sha(GOOD)}")
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "BLOB_UNKNOWN"
    status, body = await _get(cache, "/v2/limited/app/manifests/1")
    assert status == 429 and json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"
    status, body = await _get(cache, "/v2/schema1/app/manifests/1")  # not the client's fault
    assert status == 502 and b"cannot be cached" in body


async def test_an_index_by_tag_gives_its_image_to_a_client_that_takes_no_index(
        setup: tuple[Upstream, RunningRegistry]) -> None:
    upstream, cache = setup
    status, body = await _get(cache, "/v2/multi/app/manifests/1", {"Accept": mt.OCI_MANIFEST})
    assert (status, body) == (200, IMAGE)
    assert upstream.seen[("GET", f"/v2/multi/app/manifests/{_sha(IMAGE)}")] == 1
