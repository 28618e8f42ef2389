"""SearchIndex on its own: query building, name tokens, documents derived from a real store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from registry.oci import mediatypes as mt
from registry.oci.digest import Digest
from registry.search import SearchIndex, _name_text, fts_query
from registry.storage import RegistryStore, StoreConfig


def test_fts_query_quotes_every_word_as_a_prefix() -> None:
    assert fts_query("Postgres 16") == '"postgres"* "16"*'
    assert fts_query('a"b OR (c*)') == '"a"* "b"* "or"* "c"*'
    assert fts_query("  --  ") is None


def test_name_text_indexes_each_component() -> None:
    assert _name_text("acme/web-app_v2.1") == "acme/web-app_v2.1 acme web app v2 1"


async def _chunks(data: bytes):  # noqa: ANN202
    yield data


async def _push(store: RegistryStore, repo: str, tag: str, labels: dict[str, str],
                annotations: dict[str, str] | None = None) -> str:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Labels": labels},
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    digest = Digest.from_bytes(config)
    await store.uploads.put(repo, digest, _chunks(config))
    manifest: dict[str, object] = {
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": str(digest), "size": len(config)},
        "layers": []}
    if annotations:
        manifest["annotations"] = annotations
    data = json.dumps(manifest).encode()
    await store.manifests.put(repo, tag, mt.OCI_MANIFEST, data)
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_rebuild_derives_documents_from_storage(tmp_path: Path) -> None:
    store = await RegistryStore.open(StoreConfig(root=tmp_path, delete_enabled=True))
    index = await SearchIndex.open(store.db_path, store)
    try:
        await _push(store, "acme/db", "16", {"org.opencontainers.image.description": "label"},
                    {"org.opencontainers.image.description": "annotation wins"})
        await _push(store, "acme/web", "1", {"team": "frontend"})
        assert await index.rebuild() == 2
        page = await index.search("acme")
        assert page.total == 2
        by_name = {hit.name: hit for hit in page.hits}
        assert by_name["acme/db"].description == "annotation wins"
        assert by_name["acme/db"].tags == ("16",)
        assert by_name["acme/web"].labels == {"team": "frontend"}
        assert [h.name for h in (await index.search("frontend")).hits] == ["acme/web"]
        await store.manifests.delete("acme/web", "1")
        await index.refresh("acme/web")
        assert [h.name for h in (await index.search("acme")).hits] == ["acme/db"]
    finally:
        await index.close()
        await store.close()


async def test_listener_keeps_the_index_in_step(tmp_path: Path) -> None:
    store = await RegistryStore.open(StoreConfig(root=tmp_path))
    index = await SearchIndex.open(store.db_path, store)
    store.add_listener(lambda repo, tag, info, deleted: index.schedule(repo))
    try:
        await _push(store, "team/api", "v1", {"description": "json over http"})
        await index.drain()
        assert [h.name for h in (await index.search("http")).hits] == ["team/api"]
    finally:
        await index.close()
        await store.close()
