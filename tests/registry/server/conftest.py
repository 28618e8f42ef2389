"""Fixtures for the registry spec tests: a real app on an aiohttp test server (127.0.0.1),
storage in tmp_path, and a blockbuster guard that fails any blocking call on the loop."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from blockbuster import BlockBuster, blockbuster_ctx

from registry.oci import mediatypes as mt
from registry.server.app import create_app, hand_back_to
from registry.server.config import RegistryConfig
from registry.storage import MemoryDriver


@pytest.fixture
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any blocking call made by registry code on the event loop thread."""
    with blockbuster_ctx(["registry"]) as bb:
        yield bb


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Image:
    manifest: bytes
    digest: str
    config: bytes
    layers: list[bytes]
    media_type: str


class Registry:
    """A test client with helpers for the common push steps (each asserts success)."""

    def __init__(self, client: TestClient, root: Path) -> None:
        self.client = client
        self.root = root

    def __getattr__(self, item: str) -> Any:
        return getattr(self.client, item)

    sha = staticmethod(sha)

    @staticmethod
    async def error_code(resp: ClientResponse) -> str:
        return await error_code(resp)

    async def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha(data)
        resp = await self.client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest},
                                      data=data)
        assert resp.status == 201, await resp.text()
        return digest

    def image_manifest(self, config: bytes, layers: list[bytes], *,
                       media_type: str = mt.OCI_MANIFEST,
                       subject: dict[str, Any] | None = None,
                       artifact_type: str | None = None,
                       annotations: dict[str, str] | None = None,
                       config_media_type: str | None = None) -> bytes:
        docker = media_type == mt.DOCKER_MANIFEST
        body: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_media_type or (mt.DOCKER_CONFIG if docker else
                                                          mt.OCI_CONFIG),
                       "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP,
                        "digest": sha(layer), "size": len(layer)} for layer in layers],
        }
        if artifact_type:
            body["artifactType"] = artifact_type
        if subject:
            body["subject"] = subject
        if annotations:
            body["annotations"] = annotations
        return json.dumps(body, indent=2).encode()

    async def push_image(self, repo: str, tag: str | None = "latest", *,
                         labels: dict[str, str] | None = None,
                         layers: list[bytes] | None = None,
                         media_type: str = mt.OCI_MANIFEST,
                         annotations: dict[str, str] | None = None,
                         subject: dict[str, Any] | None = None,
                         artifact_type: str | None = None,
                         arch: str = "amd64") -> Image:
        config = json.dumps({"architecture": arch, "os": "linux",
                             "config": {"Labels": labels or {}},
                             "rootfs": {"type": "layers", "diff_ids": []},
                             "nonce": os.urandom(4).hex()}).encode()
        layers = layers if layers is not None else [os.urandom(64)]
        await self.push_blob(repo, config)
        for layer in layers:
            await self.push_blob(repo, layer)
        manifest = self.image_manifest(config, layers, media_type=media_type,
                                       annotations=annotations, subject=subject,
                                       artifact_type=artifact_type)
        digest = sha(manifest)
        resp = await self.put_manifest(repo, tag or digest, manifest, media_type)
        assert resp.status == 201, await resp.text()
        return Image(manifest, digest, config, layers, media_type)

    async def put_manifest(self, repo: str, reference: str, body: bytes,
                           media_type: str | None = mt.OCI_MANIFEST,
                           params: Any = None,
                           conditions: dict[str, str] | None = None) -> ClientResponse:
        headers = {"Content-Type": media_type} if media_type else {}
        headers.update(conditions or {})
        return await self.client.put(f"/v2/{repo}/manifests/{reference}", data=body,
                                     headers=headers, params=params)


async def error_code(resp: ClientResponse) -> str:
    """The first error code of an error envelope (and checks the envelope's shape)."""
    body = await resp.json(content_type=None)
    assert set(body) == {"errors"}, body
    first = body["errors"][0]
    assert {"code", "message", "detail"} <= set(first), first
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    return str(first["code"])


def make_config(root: Path, **changes: Any) -> RegistryConfig:
    return RegistryConfig(root=root, purge_interval_seconds=0, **changes)


@pytest.fixture
def registry_config(tmp_path: Path) -> RegistryConfig:
    return make_config(tmp_path / "root", delete_enabled=True)


@pytest.fixture(params=["filesystem", "memory"])
def driver_kind(request: pytest.FixtureRequest) -> str:
    """Every API test runs over the filesystem driver (sendfile) and the memory driver
    (no local files: blobs stream through the handler, Range included)."""
    return str(request.param)


async def _serve(app: web.Application) -> TestClient[web.Request, web.Application]:
    """Serve `app` on loopback as `strata-registry serve` does (taken connections come back)."""
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    assert client.server.runner is not None
    hand_back_to(app, client.server.runner)
    return client


@pytest.fixture
async def reg(registry_config: RegistryConfig, driver_kind: str,
              blockbuster: BlockBuster) -> AsyncIterator[Registry]:
    registry_config.root.mkdir(parents=True, exist_ok=True)
    driver = MemoryDriver() if driver_kind == "memory" else None
    client = await _serve(create_app(registry_config, driver))
    try:
        yield Registry(client, registry_config.root)
    finally:
        await client.close()


@pytest.fixture
async def make_reg(tmp_path: Path, blockbuster: BlockBuster) -> AsyncIterator[Any]:
    """Start extra registries with other settings: `await make_reg(delete_enabled=False)`."""
    clients: list[TestClient] = []

    async def start(name: str = "other", **changes: Any) -> Registry:
        config = make_config(tmp_path / name, **changes)
        config.root.mkdir(parents=True, exist_ok=True)
        client = await _serve(create_app(config))
        clients.append(client)
        return Registry(client, config.root)

    yield start
    for client in clients:
        await client.close()
