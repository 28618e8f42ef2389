"""Fixtures for the storage tests: a RegistryStore over each driver, push helpers, and a
blockbuster guard that fails any blocking call made by registry code on the event loop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from registry.oci import Descriptor, Digest
from registry.oci import mediatypes as mt
from registry.storage import MemoryDriver, RegistryStore, StoreConfig


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    with blockbuster_ctx(scanned_modules=["registry"]) as bb:
        yield bb


@pytest.fixture(params=["filesystem", "memory"])
def driver_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(tmp_path: Path, driver_kind: str) -> AsyncIterator[RegistryStore]:
    driver = MemoryDriver() if driver_kind == "memory" else None
    s = await RegistryStore.open(StoreConfig(tmp_path / "root", delete_enabled=True), driver)
    yield s
    await s.close()


async def chunked(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


class Pusher:
    """Pushes blobs and manifests through the public store API."""

    chunks = staticmethod(chunked)

    def __init__(self, store: RegistryStore) -> None:
        self.store = store

    @staticmethod
    def manifest_bytes(config: Descriptor, layers: list[Descriptor], **extra: Any) -> bytes:
        return manifest_bytes(config, layers, **extra)

    @staticmethod
    def index_bytes(children: list[tuple[bytes, Digest]], **extra: Any) -> bytes:
        return index_bytes(children, **extra)

    async def blob(self, repo: str, data: bytes,
                   media_type: str = mt.OCI_LAYER_GZIP) -> Descriptor:
        digest = Digest.from_bytes(data)
        await self.store.uploads.put(repo, digest, chunked(data))
        return Descriptor(media_type, digest, len(data))

    async def image(self, repo: str, reference: str, *layers: bytes,
                    config: bytes | None = None, **extra: Any) -> tuple[bytes, Digest]:
        cfg = await self.blob(repo, config if config is not None else
                              json.dumps({"architecture": "amd64", "os": "linux",
                                          "layers": len(layers)}).encode(), mt.OCI_CONFIG)
        descs = [await self.blob(repo, layer) for layer in layers]
        body = manifest_bytes(cfg, descs, **extra)
        await self.store.manifests.put(repo, reference, mt.OCI_MANIFEST, body)
        return body, Digest.from_bytes(body)


def manifest_bytes(config: Descriptor, layers: list[Descriptor], **extra: Any) -> bytes:
    obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                           "config": config.to_json(), "layers": [d.to_json() for d in layers]}
    obj.update(extra)
    return json.dumps(obj).encode()


def index_bytes(children: list[tuple[bytes, Digest]], **extra: Any) -> bytes:
    obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": str(d), "size": len(b),
         "platform": {"os": "linux", "architecture": f"arch{i}"}}
        for i, (b, d) in enumerate(children)]}
    obj.update(extra)
    return json.dumps(obj).encode()


@pytest.fixture
def push(store: RegistryStore) -> Pusher:
    return Pusher(store)
