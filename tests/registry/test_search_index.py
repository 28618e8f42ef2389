"""SearchIndex on its own: query building, name tokens, documents derived from a real store."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from registry.oci import mediatypes as mt
from registry.oci.digest import Digest
from registry.search import RepoFacts, SearchIndex, _name_text, fts_query
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


class _SlowGets:
    """The store, with manifest reads held at a gate: a refresh that read the tags before a
    change writes after it (another worker's refresh, in production)."""

    def __init__(self, store: RegistryStore) -> None:
        self._store = store
        self.gate: asyncio.Event | None = None
        self.blobs = store.blobs
        self.manifests = self

    async def get(self, repo: str, reference: str) -> object:
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await gate.wait()
        return await self._store.manifests.get(repo, reference)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store.manifests, name)


async def test_a_refresh_that_read_before_a_change_redoes_its_write(tmp_path: Path) -> None:
    """Two workers refreshing one repository: the slower one, whose tags predate the other's
    change, used to write last and leave the document stale for good."""
    store = await RegistryStore.open(StoreConfig(root=tmp_path, delete_enabled=True))
    slow_store = _SlowGets(store)
    slow = await SearchIndex.open(store.db_path, slow_store)  # type: ignore[arg-type]
    fast = await SearchIndex.open(store.db_path, store)
    try:
        await _push(store, "acme/app", "v1", {"team": "old"})
        slow_store.gate = gate = asyncio.Event()
        stale = asyncio.create_task(slow.refresh("acme/app"))  # reads tags, waits at a get
        await asyncio.sleep(0.1)
        await _push(store, "acme/app", "v2", {"team": "new"})
        await fast.refresh("acme/app")
        gate.set()
        await stale
        page = await fast.search("acme")
        assert page.hits[0].tags == ("v1", "v2")
    finally:
        await slow.close()
        await fast.close()
        await store.close()


async def test_rebuild_keeps_serving_and_drops_repositories_gone_from_storage(
        tmp_path: Path) -> None:
    store = await RegistryStore.open(StoreConfig(root=tmp_path, delete_enabled=True))
    index = await SearchIndex.open(store.db_path, store)
    try:
        await _push(store, "acme/kept", "v1", {"team": "a"})
        await index.refresh("acme/kept")
        await asyncio.to_thread(index._write, "ghost/repo", RepoFacts("ghost/repo", ["v1"]))
        searches = []

        async def search_meanwhile() -> None:
            while not done.is_set():
                searches.append((await index.search("acme")).total)
                await asyncio.sleep(0)

        done = asyncio.Event()
        watcher = asyncio.create_task(search_meanwhile())
        assert await index.rebuild() == 1
        done.set()
        await watcher
        assert searches and 0 not in searches  # never an empty index mid-rebuild
        assert [hit.name for hit in (await index.search("")).hits] == ["acme/kept"]
    finally:
        await index.close()
        await store.close()


async def test_a_refresh_reads_the_tags_and_their_targets_at_once(tmp_path: Path) -> None:
    # One stat per tag, twice a refresh: a repository of 10,000 tags cost 20,000 reads of
    # the metadata database for each push to it.
    store = await RegistryStore.open(StoreConfig(root=tmp_path))
    index = await SearchIndex.open(store.db_path, store)
    try:
        await _push(store, "many/tags", "v1", {"team": "a"})
        await _push(store, "many/tags", "v2", {"team": "b"})

        looked_up: list[str] = []
        stat = store.manifests.stat

        async def recording_stat(repo: str, reference: str) -> object:
            looked_up.append(reference)
            return await stat(repo, reference)

        store.manifests.stat = recording_stat  # type: ignore[method-assign]
        await index.refresh("many/tags")
        assert (await index.search("many")).hits[0].tags == ("v1", "v2")
        assert not {"v1", "v2"} & set(looked_up)  # manifests by digest only
    finally:
        await index.close()
        await store.close()
