"""Manifests, tags, catalog, referrers, deletes and mounts through the RegistryStore."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from registry.oci import Digest
from registry.oci import mediatypes as mt
from registry.oci.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    NameUnknown,
    PaginationInvalid,
    PreconditionFailed,
    TagInvalid,
    Unsupported,
)
from registry.storage import ManifestInfo, RegistryStore, StoreConfig, WriteCondition
from registry.storage.metadata import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew

REPO = "team/app"


async def test_a_pushed_manifest_reads_back_byte_for_byte(store, push) -> None:
    body, digest = await push.image(REPO, "v1", b"layer-1", b"layer-2")
    for ref in ("v1", str(digest)):
        got = await store.manifests.get(REPO, ref)
        assert got.data == body
        assert got.info == ManifestInfo(digest, mt.OCI_MANIFEST, len(body))
        assert await store.manifests.stat(REPO, ref) == got.info
    assert (await store.blobs.stat(REPO, digest)).size == len(body)


async def test_manifest_with_a_missing_blob_is_refused(store, push) -> None:
    cfg = await push.blob(REPO, b"{}", mt.OCI_CONFIG)
    missing = await push.blob("elsewhere/repo", b"only in another repo")
    body = push.manifest_bytes(cfg, [missing])
    with pytest.raises(ManifestBlobUnknown) as err:
        await store.manifests.put(REPO, "v1", mt.OCI_MANIFEST, body)
    assert err.value.detail == {"digest": str(missing.digest)}
    assert await store.manifests.tags(REPO) == []
    with pytest.raises(ManifestUnknown):
        await store.manifests.get(REPO, str(Digest.from_bytes(body)))


async def test_a_refused_manifest_leaves_no_bytes_behind(store, push) -> None:
    # Each refusal below would otherwise leave a file no row names: a client could fill
    # the disk with manifests that never go in.
    cfg = await push.blob(REPO, b"{}", mt.OCI_CONFIG)
    await push.image(REPO, "v1", b"layer")
    missing_blob = push.manifest_bytes(cfg, [await push.blob("elsewhere/repo", b"away")])
    missing_child = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.from_bytes(b"absent")),
         "size": 6}]}).encode()
    condition_fails = push.manifest_bytes(cfg, [], annotations={"a": "b"})
    before = sorted([f.path async for f in store.driver.walk()])
    with pytest.raises(ManifestBlobUnknown):
        await store.manifests.put(REPO, "v2", mt.OCI_MANIFEST, missing_blob)
    with pytest.raises(ManifestBlobUnknown):
        await store.manifests.put(REPO, "v2", mt.OCI_INDEX, missing_child)
    with pytest.raises(PreconditionFailed):
        await store.manifests.put(REPO, "v1", mt.OCI_MANIFEST, condition_fails,
                                  condition=WriteCondition("v1", if_none_match=frozenset("*")))
    assert sorted([f.path async for f in store.driver.walk()]) == before


async def test_digest_reference_must_match_the_bytes(store, push) -> None:
    body, digest = await push.image(REPO, "v1", b"l")
    with pytest.raises(DigestInvalid):
        await store.manifests.put(REPO, str(Digest.from_bytes(b"x")), mt.OCI_MANIFEST, body)
    info = await store.manifests.put(REPO, str(digest), mt.OCI_MANIFEST, body)
    assert info.digest == digest


async def test_extra_tags_all_point_at_the_manifest(store, push) -> None:
    body, digest = await push.image(REPO, "v1", b"l")
    await store.manifests.put(REPO, str(digest), None, body, tags=["a", "b"])
    assert await store.manifests.tags(REPO) == ["a", "b", "v1"]
    assert (await store.manifests.stat(REPO, "b")).digest == digest
    assert await store.manifests.tags_of(REPO, digest) == ["a", "b", "v1"]


@pytest.mark.parametrize(("body", "error"), [
    (b"not json", ManifestInvalid),
    (b"[]", ManifestInvalid),
    (json.dumps({"schemaVersion": 2, "mediaType": "application/x-unknown"}).encode(),
     ManifestInvalid),
    (json.dumps({"schemaVersion": 1, "mediaType": mt.DOCKER_MANIFEST_V1}).encode(),
     ManifestInvalid),
])
async def test_malformed_manifests_are_refused(store, body: bytes, error: type) -> None:
    with pytest.raises(error):
        await store.manifests.put(REPO, "v1", None, body)


async def test_oversized_manifest_is_refused(tmp_path: Path) -> None:
    store = await RegistryStore.open(StoreConfig(tmp_path, max_manifest_bytes=100))
    try:
        with pytest.raises(ManifestTooLarge):  # a ManifestInvalid the server answers with 413
            await store.manifests.put(REPO, "v1", None, b" " * 101)
    finally:
        await store.close()


async def test_invalid_tag_is_refused(store, push) -> None:
    body, _ = await push.image(REPO, "v1", b"l")
    with pytest.raises(TagInvalid):
        await store.manifests.put(REPO, "-bad", None, body)
    with pytest.raises(TagInvalid):
        await store.manifests.put(REPO, "ok", None, body, tags=["x" * 129])


async def test_index_needs_its_child_manifests_in_the_repo(store, push) -> None:
    child_a = await push.image(REPO, "a", b"la")
    child_b = await push.image("other/repo", "b", b"lb")
    with pytest.raises(ManifestBlobUnknown) as err:
        await store.manifests.put(REPO, "multi", mt.OCI_INDEX,
                                  push.index_bytes([child_a, child_b]))
    assert err.value.detail == {"digest": str(child_b[1])}
    body = push.index_bytes([child_a])
    info = await store.manifests.put(REPO, "multi", mt.OCI_INDEX, body)
    assert info.media_type == mt.OCI_INDEX
    assert (await store.manifests.get(REPO, "multi")).data == body


async def test_retagging_moves_the_tag(store, push) -> None:
    _, first = await push.image(REPO, "latest", b"one")
    assert (await store.manifests.stat(REPO, "latest")).digest == first
    _, second = await push.image(REPO, "latest", b"two")
    assert (await store.manifests.stat(REPO, "latest")).digest == second
    assert (await store.manifests.stat(REPO, str(first))).digest == first


async def test_tags_are_sorted_and_paginated(store, push) -> None:
    body, digest = await push.image(REPO, "c", b"l")
    for tag in ("b", "A", "a", "z", "1.0"):
        await store.manifests.put(REPO, tag, None, body)
    assert await store.manifests.tags(REPO) == ["1.0", "A", "a", "b", "c", "z"]
    assert await store.manifests.tags(REPO, n=2) == ["1.0", "A"]
    assert await store.manifests.tags(REPO, n=2, last="A") == ["a", "b"]
    assert await store.manifests.tags(REPO, last="c") == ["z"]
    assert await store.manifests.tags(REPO, n=0) == []
    with pytest.raises(PaginationInvalid):
        await store.manifests.tags(REPO, n=-1)
    with pytest.raises(NameUnknown):
        await store.manifests.tags("no/such/repo")


async def test_catalog_is_sorted_and_paginated(store, push) -> None:
    for repo in ("b/x", "a", "c/d/e", "a/b"):
        await push.image(repo, "t", b"l")
    assert await store.manifests.catalog() == ["a", "a/b", "b/x", "c/d/e"]
    assert await store.manifests.catalog(n=2) == ["a", "a/b"]
    assert await store.manifests.catalog(n=2, last="a/b") == ["b/x", "c/d/e"]
    assert await store.manifests.catalog(last="c/d/e") == []


async def _artifact(push: Any, subject: tuple[bytes, Digest], artifact_type: str,
                    annotations: dict[str, str] | None = None) -> tuple[bytes, Digest]:
    cfg = await push.blob(REPO, b"{}", mt.OCI_EMPTY)
    layer = await push.blob(REPO, artifact_type.encode(), "application/octet-stream")
    extra: dict[str, Any] = {"artifactType": artifact_type, "subject": {
        "mediaType": mt.OCI_MANIFEST, "digest": str(subject[1]), "size": len(subject[0])}}
    if annotations:
        extra["annotations"] = annotations
    body = push.manifest_bytes(cfg, [layer], **extra)
    await push.store.manifests.put(REPO, str(Digest.from_bytes(body)), None, body)
    return body, Digest.from_bytes(body)


async def test_referrers_list_manifests_with_that_subject(store, push) -> None:
    subject = await push.image(REPO, "v1", b"l")
    sig = await _artifact(push, subject, "application/vnd.example.sig", {"k": "v"})
    sbom = await _artifact(push, subject, "application/vnd.example.sbom")
    found = (await store.manifests.referrers(REPO, subject[1])).descriptors
    assert sorted(d.digest for d in found) == sorted([sig[1], sbom[1]])
    by_digest = {d.digest: d for d in found}
    assert by_digest[sig[1]].artifact_type == "application/vnd.example.sig"
    assert by_digest[sig[1]].annotations == {"k": "v"}
    assert by_digest[sig[1]].size == len(sig[0])
    assert by_digest[sig[1]].media_type == mt.OCI_MANIFEST
    only = await store.manifests.referrers(REPO, subject[1], "application/vnd.example.sbom")
    assert [d.digest for d in only.descriptors] == [sbom[1]]
    assert (await store.manifests.stat(REPO, str(sig[1]))).subject == subject[1]
    assert (await store.manifests.referrers("other/repo", subject[1])).descriptors == []
    await store.manifests.delete(REPO, str(sig[1]))
    found = (await store.manifests.referrers(REPO, subject[1])).descriptors
    assert [d.digest for d in found] == [sbom[1]]


async def test_referrers_come_in_pages_cut_by_count_and_by_weight(store, push) -> None:
    subject = await push.image(REPO, "v1", b"l")
    small = [(await _artifact(push, subject, "application/vnd.example.sig", {"i": str(i)}))[1]
             for i in range(5)]
    heavy = (await _artifact(push, subject, "application/vnd.example.sig",
                             {"pad": "x" * 100_000}))[1]
    everything = sorted([*small, heavy], key=str)
    pages, last = [], None
    while True:
        page = await store.manifests.referrers(REPO, subject[1], last=last, count=2,
                                               max_bytes=50_000)
        pages.append([d.digest for d in page.descriptors])
        if not page.more:
            break
        last = page.descriptors[-1].digest
    assert [d for p in pages for d in p] == everything
    assert all(1 <= len(p) <= 2 for p in pages)
    assert [heavy] in pages  # over the weight on its own: a page of one
    first = await store.manifests.referrers(REPO, subject[1], count=100, max_bytes=50_000)
    got = [d.digest for d in first.descriptors]
    assert first.more and (got == [heavy] if everything[0] == heavy else heavy not in got)


async def test_referrer_without_artifact_type_uses_the_config_media_type(store, push) -> None:
    subject = await push.image(REPO, "v1", b"l")
    cfg = await push.blob(REPO, b'{"x":1}', "application/vnd.example.config+json")
    body = push.manifest_bytes(cfg, [], subject={
        "mediaType": mt.OCI_MANIFEST, "digest": str(subject[1]), "size": len(subject[0])})
    await store.manifests.put(REPO, "ref", None, body)
    [desc] = (await store.manifests.referrers(REPO, subject[1])).descriptors
    assert desc.artifact_type == "application/vnd.example.config+json"


async def test_deleting_a_tag_keeps_the_manifest(store, push) -> None:
    _, digest = await push.image(REPO, "v1", b"l")
    await store.manifests.put(REPO, "v2", None, (await store.manifests.get(REPO, "v1")).data)
    await store.manifests.delete(REPO, "v1")
    with pytest.raises(ManifestUnknown):
        await store.manifests.get(REPO, "v1")
    assert (await store.manifests.get(REPO, "v2")).info.digest == digest
    assert (await store.manifests.get(REPO, str(digest))).info.digest == digest
    with pytest.raises(ManifestUnknown):
        await store.manifests.delete(REPO, "v1")


async def test_deleting_by_digest_removes_the_manifest_and_its_tags(store, push) -> None:
    _, digest = await push.image(REPO, "v1", b"l")
    await store.manifests.get(REPO, "v1")  # warm the cache
    await store.manifests.delete(REPO, str(digest))
    for ref in ("v1", str(digest)):
        with pytest.raises(ManifestUnknown):
            await store.manifests.stat(REPO, ref)
    assert await store.manifests.tags(REPO) == []
    with pytest.raises(ManifestUnknown):
        await store.manifests.delete(REPO, str(digest))


async def test_deletes_are_unsupported_when_disabled(tmp_path: Path, push) -> None:
    store = await RegistryStore.open(StoreConfig(tmp_path))
    try:
        push.store = store
        _, digest = await push.image(REPO, "v1", b"layer")
        for ref in ("v1", str(digest)):
            with pytest.raises(Unsupported):
                await store.manifests.delete(REPO, ref)
        with pytest.raises(Unsupported):
            await store.blobs.delete(REPO, Digest.from_bytes(b"layer"))
        assert (await store.manifests.stat(REPO, "v1")).digest == digest
    finally:
        await store.close()


async def test_deleting_a_blob_unlinks_it_from_one_repository(store, push) -> None:
    desc = await push.blob(REPO, b"shared")
    await push.blob("other/repo", b"shared")
    await store.blobs.delete(REPO, desc.digest)
    with pytest.raises(BlobUnknown):
        await store.blobs.stat(REPO, desc.digest)
    with pytest.raises(BlobUnknown):
        await store.blobs.delete(REPO, desc.digest)
    assert (await store.blobs.stat("other/repo", desc.digest)).size == len(b"shared")


async def test_a_blob_is_only_served_through_repositories_that_reference_it(store, push) -> None:
    desc = await push.blob(REPO, b"private")
    with pytest.raises(BlobUnknown):
        await store.blobs.stat("other/repo", desc.digest)
    with pytest.raises(BlobUnknown):
        _ = [c async for c in store.blobs.read("other/repo", desc.digest)]


async def test_cross_repository_mount(store, push) -> None:
    desc = await push.blob(REPO, b"mount me")
    assert await store.blobs.mount("dst/one", desc.digest, "no/such") is None
    info = await store.blobs.mount("dst/one", desc.digest, REPO)
    assert info is not None and info.size == desc.size
    assert (await store.blobs.stat("dst/one", desc.digest)).digest == desc.digest
    auto = await store.blobs.mount("dst/two", desc.digest, None)
    assert auto is not None and auto.digest == desc.digest
    assert await store.blobs.mount("dst/two", Digest.from_bytes(b"never pushed"), None) is None


async def test_listeners_hear_every_manifest_change(store, push) -> None:
    heard: list[tuple[str, str | None, bool]] = []

    def sync_listener(repo: str, tag: str | None, info: ManifestInfo, deleted: bool) -> None:
        heard.append((repo, tag, deleted))

    async def async_listener(repo: str, tag: str | None, info: ManifestInfo,
                             deleted: bool) -> None:
        raise RuntimeError("a broken listener must not break the store")

    store.add_listener(sync_listener)
    store.add_listener(async_listener)
    _, digest = await push.image(REPO, "v1", b"l")
    await store.manifests.put(REPO, "v2", None, (await store.manifests.get(REPO, "v1")).data)
    await store.manifests.delete(REPO, "v2")
    await store.manifests.delete(REPO, str(digest))
    assert heard == [(REPO, None, False), (REPO, "v1", False), (REPO, None, False),
                     (REPO, "v2", False), (REPO, "v2", True), (REPO, None, True)]


async def test_changes_by_another_store_are_seen_at_once(tmp_path: Path, push) -> None:
    config = StoreConfig(tmp_path, delete_enabled=True)
    a, b = await RegistryStore.open(config), await RegistryStore.open(config)
    try:
        push.store = a
        body1, d1 = await push.image(REPO, "latest", b"one")
        assert (await b.manifests.get(REPO, "latest")).data == body1  # cached in b
        push.store = b
        _, d2 = await push.image(REPO, "latest", b"two")
        assert (await a.manifests.stat(REPO, "latest")).digest == d2
        assert (await b.manifests.stat(REPO, "latest")).digest == d2
        await a.manifests.delete(REPO, str(d2))
        with pytest.raises(ManifestUnknown):
            await b.manifests.get(REPO, "latest")
        await a.blobs.delete(REPO, Digest.from_bytes(b"one"))
        with pytest.raises(BlobUnknown):
            await b.blobs.stat(REPO, Digest.from_bytes(b"one"))
        assert (await b.manifests.stat(REPO, str(d1))).digest == d1
    finally:
        await a.close()
        await b.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    store = await RegistryStore.open(StoreConfig(tmp_path))
    await store.close()

    def bump() -> None:
        with sqlite3.connect(tmp_path / "metadata.db") as conn:
            conn.execute("PRAGMA user_version = 99")

    await asyncio.to_thread(bump)
    with pytest.raises(SchemaTooNew):
        await RegistryStore.open(StoreConfig(tmp_path))


async def test_a_version_1_index_is_upgraded_in_place(tmp_path: Path) -> None:
    """A root written before the lexical-order tag index (schema 1) keeps its tags and gets
    the index on open."""
    def version_1() -> None:
        with sqlite3.connect(tmp_path / "metadata.db") as conn:
            for statement in MIGRATIONS[1]:
                conn.execute(statement)
            conn.execute("PRAGMA user_version = 1")

    await asyncio.to_thread(version_1)
    store = await RegistryStore.open(StoreConfig(tmp_path))
    await store.close()

    def read() -> tuple[int, list[str]]:
        with sqlite3.connect(tmp_path / "metadata.db") as conn:
            return (conn.execute("PRAGMA user_version").fetchone()[0],
                    [r[0] for r in conn.execute("SELECT name FROM sqlite_master"
                                                " WHERE type = 'index'")])

    version, indexes = await asyncio.to_thread(read)
    assert version == SCHEMA_VERSION == 2
    assert "tags_in_lexical_order" in indexes


async def test_tag_targets_name_every_tag_and_its_manifest(store, push) -> None:
    _, first = await push.image(REPO, "v2", b"a")
    _, second = await push.image(REPO, "v1", b"b")
    await push.image("other/repo", "v9", b"c")
    assert await store.manifests.tag_targets(REPO) == [("v1", second), ("v2", first)]
    assert await store.manifests.tag_targets("unknown/repo") == []
