"""Broken registries: clear messages, non-zero exits, nothing half-written in the store.

The faulty peer is a real HTTP server (aiohttp on loopback) that serves one small image and
misbehaves on purpose; strata runs as a subprocess against it."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import signal
import sys
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from tooling import free_port
from transfer_registries import serving, strata

STRATA = str(Path(sys.executable).parent / "strata")


def _layer() -> tuple[bytes, bytes]:
    """(gzip layer, raw tar) holding 3 MB of incompressible data."""
    buf = io.BytesIO()
    data = os.urandom(3_000_000)
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("data.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, compresslevel=1, mtime=0), raw


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FaultyRegistry:
    mode: str
    port: int = field(default_factory=free_port)
    ranges: list[str] = field(default_factory=list)
    layer_gets: int = 0

    def __post_init__(self) -> None:
        self.layer, raw = _layer()
        self.config = json.dumps({"architecture": "amd64", "os": "linux",
                                  "rootfs": {"type": "layers", "diff_ids": [_sha(raw)]}}).encode()
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": _sha(self.config), "size": len(self.config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": _sha(self.layer), "size": len(self.layer)}]}).encode()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def manifest_handler(self, request: web.Request) -> web.Response:
        if request.match_info["name"] != "app":
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN",
                                                  "message": "manifest unknown"}]}, status=404)
        body = b"<html>this is not json</html>" if self.mode == "notjson" else self.manifest
        return web.Response(body=body, headers={
            "Content-Type": "application/vnd.oci.image.manifest.v1+json"})

    async def blob_handler(self, request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        if digest == _sha(self.config):
            return web.Response(body=self.config)
        if digest != _sha(self.layer):
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        self.layer_gets += 1
        data = self.layer
        if self.mode == "wrongbytes":
            data = data[: len(data) // 2] + bytes(len(data) - len(data) // 2)
        start = 0
        rng = request.headers.get("Range")
        if rng and self.mode == "norange":  # an old server: Range ignored, 200 and everything
            self.ranges.append(rng)
            rng = None
        if rng:
            self.ranges.append(rng)
            start = int(rng.removeprefix("bytes=").split("-")[0])
        resp = web.StreamResponse(status=206 if start else 200)
        resp.content_length = len(data) - start
        await resp.prepare(request)
        if self.mode == "stall":  # a first megabyte, then nothing until the client gives up
            await resp.write(data[start:start + 1_000_000])
            while self.mode == "stall":
                await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.close()
            return resp
        cut = self.mode == "truncate-always" or (self.mode == "truncate-once"
                                                 and self.layer_gets == 1)
        if cut:
            piece = 1_000_000 if self.mode == "truncate-once" else 200_000
            await resp.write(data[start:start + piece])
            assert request.transport is not None
            request.transport.close()
            return resp
        if self.mode == "slow":
            for i in range(start, len(data), 500_000):
                await resp.write(data[i:i + 500_000])
                await asyncio.sleep(0.05)
            return resp
        await resp.write(data[start:])
        return resp


@pytest.fixture
async def faulty() -> AsyncIterator[FaultyRegistry]:
    reg = FaultyRegistry("ok")
    app = web.Application()
    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    async def v1_search(request: web.Request) -> web.Response:
        return web.json_response({"query": request.query["q"], "num_results": 1,
                                  "results": [{"name": "library/app", "description": "old api"}]})

    app.router.add_get("/v2/", ping)
    app.router.add_get("/v1/search", v1_search)
    app.router.add_route("GET", "/v2/{name:.+}/manifests/{ref}", reg.manifest_handler)
    app.router.add_route("GET", "/v2/{name:.+}/blobs/{digest}", reg.blob_handler)
    async with serving(app, reg.port):
        yield reg


async def _strata(root: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        STRATA, "--root", str(root), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, err.decode() + out.decode()


def _blob_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "oci" / "blobs" / "sha256").iterdir())


def test_unreachable_registry(tmp_path: Path) -> None:
    proc = strata(tmp_path / "s", "pull", f"127.0.0.1:{free_port()}/app:1", check=False)
    assert proc.returncode == 6
    assert "cannot connect" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_missing_image_is_not_found(tmp_path: Path, faulty: FaultyRegistry) -> None:
    rc, out = await _strata(tmp_path / "s", "pull", f"{faulty.host}/nothing:1")
    assert rc == 3, out
    assert "manifest unknown" in out


async def test_manifest_that_is_not_json(tmp_path: Path, faulty: FaultyRegistry) -> None:
    faulty.mode = "notjson"
    rc, out = await _strata(tmp_path / "s", "pull", f"{faulty.host}/app:1")
    assert rc == 2, out
    assert "not valid JSON" in out
    assert _blob_files(tmp_path / "s") == []


async def test_digest_mismatch_mid_download_leaves_nothing(tmp_path: Path,
                                                           faulty: FaultyRegistry) -> None:
    faulty.mode = "wrongbytes"
    root = tmp_path / "s"
    rc, out = await _strata(root, "pull", f"{faulty.host}/app:1")
    assert rc == 5, out
    assert "hashes to" in out
    assert faulty.layer.__len__() and _sha(faulty.layer)[7:] not in _blob_files(root)
    assert list((root / "ingest").iterdir()) == []
    rc, out = await _strata(root, "system", "check")
    assert rc == 0, out


async def test_truncated_stream_is_resumed_with_range(tmp_path: Path,
                                                      faulty: FaultyRegistry) -> None:
    faulty.mode = "truncate-once"
    root = tmp_path / "s"
    rc, out = await _strata(root, "pull", "--progress", "plain", f"{faulty.host}/app:1")
    assert rc == 0, out
    assert faulty.ranges and faulty.ranges[0].startswith("bytes=") and \
        int(faulty.ranges[0][6:].split("-")[0]) >= 1_000_000
    rc, out = await _strata(root, "system", "check")
    assert rc == 0, out


async def test_stream_that_keeps_breaking_fails_then_resumes_next_time(
        tmp_path: Path, faulty: FaultyRegistry) -> None:
    faulty.mode = "truncate-always"
    root = tmp_path / "s"
    rc, out = await _strata(root, "pull", f"{faulty.host}/app:1")
    assert rc == 6, out
    assert "interrupted" in out or "ended" in out or "closed" in out or "disconnected" in out
    assert _sha(faulty.layer)[7:] not in _blob_files(root)
    partial = [p for p in (root / "ingest").iterdir() if p.name.startswith("pull-")]
    assert len(partial) == 1 and (partial[0] / "data").stat().st_size == 800_000
    faulty.mode, faulty.ranges = "ok", []
    rc, out = await _strata(root, "pull", f"{faulty.host}/app:1")
    assert rc == 0, out
    assert faulty.ranges == ["bytes=800000-"]
    assert list((root / "ingest").iterdir()) == []
    rc, check = await _strata(root, "system", "check")
    assert rc == 0, check


async def test_search_falls_back_to_the_v1_search_api(tmp_path: Path,
                                                      faulty: FaultyRegistry) -> None:
    rc, out = await _strata(tmp_path / "s", "search", "--registry", faulty.host,
                            "--format", "json", "app")
    assert rc == 0, out
    body = json.loads(out[out.index("{"):])
    assert body["api"] == "v1" and body["results"][0]["name"] == "library/app"


def _interruptible() -> None:
    """The child takes SIGINT as a terminal's Ctrl-C: a suite started in the background by
    a non-interactive shell (`make test &`, nohup) runs with SIGINT ignored, and an ignored
    signal stays ignored across exec, so the pull would never see it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_interrupted_pull_keeps_its_partial_and_the_next_pull_resumes(
        tmp_path: Path, faulty: FaultyRegistry) -> None:
    faulty.mode = "stall"
    root = tmp_path / "s"
    proc = await asyncio.create_subprocess_exec(
        STRATA, "--root", str(root), "pull", f"{faulty.host}/app:1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=_interruptible)
    data = root / "ingest" / f"pull-sha256-{_sha(faulty.layer)[7:]}" / "data"
    for _ in range(200):
        if data.exists() and data.stat().st_size >= 1_000_000:
            break
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err
    assert data.stat().st_size == 1_000_000
    faulty.mode = "ok"
    rc, out = await _strata(root, "pull", f"{faulty.host}/app:1")
    assert rc == 0, out
    assert faulty.ranges == ["bytes=1000000-"]
    rc, out = await _strata(root, "system", "check")
    assert rc == 0, out


async def test_resume_from_a_server_that_ignores_range(tmp_path: Path,
                                                       faulty: FaultyRegistry) -> None:
    faulty.mode = "truncate-always"
    root = tmp_path / "s"
    rc, out = await _strata(root, "pull", f"{faulty.host}/app:1")
    assert rc == 6, out
    faulty.mode, faulty.ranges = "norange", []
    rc, out = await _strata(root, "pull", f"{faulty.host}/app:1")
    assert rc == 0, out
    assert faulty.ranges == ["bytes=800000-"]  # asked, got the whole blob, skipped the start
    rc, out = await _strata(root, "system", "check", "--deep")
    assert rc == 0, out


async def test_two_concurrent_pulls_of_one_image_share_the_download(
        tmp_path: Path, faulty: FaultyRegistry) -> None:
    faulty.mode = "slow"
    root = tmp_path / "s"
    results = await asyncio.gather(_strata(root, "pull", f"{faulty.host}/app:1"),
                                   _strata(root, "pull", f"{faulty.host}/app:1"))
    assert [rc for rc, _ in results] == [0, 0], results
    assert faulty.layer_gets == 1
    rc, out = await _strata(root, "system", "check")
    assert rc == 0, out
