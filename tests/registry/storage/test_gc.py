"""Garbage collection (registry/storage/gc.py) over both drivers: what goes, what stays."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from registry.oci import Digest
from registry.oci import mediatypes as mt
from registry.oci.errors import BlobUnknown, ManifestUnknown
from registry.storage import (
    CollectionConflict,
    ManifestUnreadable,
    PathNotFound,
    RegistryStore,
    RootBusy,
    RootLock,
    paths,
)
from registry.storage.metadata import StoredManifestEntry


def _config(name: str) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "name": name}).encode()


async def _stored(store: RegistryStore, data: bytes) -> bool:
    try:
        await store.driver.stat(paths.blob_data(Digest.from_bytes(data)))
    except PathNotFound:
        return False
    return True


async def _readable(store: RegistryStore, repo: str, data: bytes) -> bool:
    digest = Digest.from_bytes(data)
    try:
        got = b"".join([c async for c in store.blobs.read(repo, digest)])
    except BlobUnknown:
        return False
    return got == data


async def test_collection_frees_what_deletes_left_and_keeps_what_manifests_need(
        store: RegistryStore, push) -> None:
    only_v1, shared, only_v2, abandoned = b"layer-v1" * 100, b"shared" * 100, b"v2" * 50, b"x"
    body_v1, v1 = await push.image("acme/app", "v1", only_v1, shared, config=_config("v1"))
    body_v2, _ = await push.image("acme/app", "v2", only_v2, shared, config=_config("v2"))
    await push.blob("acme/app", abandoned)  # a push that never sent its manifest
    await store.manifests.delete("acme/app", str(v1))

    report = await store.collect_garbage()

    gone = [only_v1, _config("v1"), abandoned, body_v1]  # the manifest's link went with it
    assert (report.manifests, report.repositories) == (1, 1)
    assert (report.links_removed, report.blobs_removed, report.orphans_removed) == (3, 4, 0)
    assert report.bytes_freed == sum(len(b) for b in gone)
    assert not report.dry_run
    for data in gone:
        assert not await _readable(store, "acme/app", data)
        assert not await _stored(store, data)
    for data in (shared, only_v2, _config("v2"), body_v2):
        assert await _readable(store, "acme/app", data)
    got = await store.manifests.get("acme/app", "v2")
    assert got.data == body_v2
    assert (await store.collect_garbage()).blobs_removed == 0  # nothing left to collect


async def test_a_blob_another_repository_needs_loses_only_the_unneeded_link(
        store: RegistryStore, push) -> None:
    layer = b"base layer" * 1000
    await push.image("acme/base", "1", layer, config=_config("base"))
    app_body, app = await push.image("acme/app", "1", layer, config=_config("app"))
    await store.manifests.delete("acme/app", str(app))

    report = await store.collect_garbage()

    # the layer's and the config's links; the config and the manifest (nobody links them)
    assert (report.links_removed, report.blobs_removed) == (2, 2)
    assert not await _readable(store, "acme/app", layer)
    assert await _readable(store, "acme/base", layer)
    assert await _stored(store, layer)
    assert not await _stored(store, _config("app"))
    assert not await _stored(store, app_body)


async def test_an_index_keeps_its_untagged_children_and_their_layers(
        store: RegistryStore, push) -> None:
    layers = [b"amd64 layer" * 10, b"arm64 layer" * 10]
    children = []
    for i, layer in enumerate(layers):
        children.append(await push.image("acme/multi", f"tmp{i}", layer,
                                         config=_config(f"arch{i}")))
    index = push.index_bytes(children)
    await store.manifests.put("acme/multi", "latest", mt.OCI_INDEX, index)
    for i in range(len(layers)):  # only the index is tagged now
        await store.manifests.delete("acme/multi", f"tmp{i}")

    report = await store.collect_garbage()

    assert (report.manifests, report.links_removed, report.blobs_removed) == (3, 0, 0)
    for layer in layers:
        assert await _readable(store, "acme/multi", layer)
    for body, digest in children:
        assert (await store.manifests.get("acme/multi", str(digest))).data == body


async def test_a_manifest_whose_blob_was_deleted_keeps_its_bytes(store: RegistryStore,
                                                                 push) -> None:
    """DELETE /v2/<name>/blobs/<manifest digest> unlinks the manifest's bytes but leaves the
    manifest served: its bytes must stay (a tag that HEADs 200 and GETs 404 otherwise)."""
    body, digest = await push.image("acme/app", "v1", b"layer", config=_config("v1"))
    await store.blobs.delete("acme/app", digest)

    report = await store.collect_garbage()

    assert report.blobs_removed == 0
    assert await _stored(store, body)
    assert (await store.collect_garbage()).manifests == 1  # and the next one reads it


async def test_a_pushed_foreign_layer_stays(store: RegistryStore, push) -> None:
    """A foreign layer with URLs need not be pushed (the PUT does not check it), but one that
    was (an air-gapped mirror) is the manifest's content like any layer."""
    foreign = b"windows base layer" * 100
    config = await push.blob("acme/win", _config("win"), mt.DOCKER_CONFIG)
    layer = await push.blob("acme/win", foreign, mt.DOCKER_LAYER_FOREIGN_GZIP)
    body = json.dumps({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
                       "config": config.to_json(), "layers": [
                           {**layer.to_json(), "urls": ["https://example.invalid/l"]}]})
    await store.manifests.put("acme/win", "1", mt.DOCKER_MANIFEST, body.encode())

    report = await store.collect_garbage()

    assert (report.links_removed, report.blobs_removed) == (0, 0)
    assert await _readable(store, "acme/win", foreign)


async def test_a_dry_run_reports_the_same_and_removes_nothing(
        store: RegistryStore, push) -> None:
    _, digest = await push.image("acme/app", "v1", b"layer" * 10, config=_config("v1"))
    await store.manifests.delete("acme/app", str(digest))

    dry = await store.collect_garbage(dry_run=True)

    assert dry.dry_run and (dry.links_removed, dry.blobs_removed) == (2, 3)
    assert await _readable(store, "acme/app", b"layer" * 10)
    real = await store.collect_garbage()
    assert (real.links_removed, real.blobs_removed, real.bytes_freed) == \
        (dry.links_removed, dry.blobs_removed, dry.bytes_freed)
    assert not await _stored(store, b"layer" * 10)


async def test_a_blob_file_without_a_record_is_removed_and_other_files_stay(
        store: RegistryStore, push) -> None:
    await push.image("acme/app", "v1", b"kept", config=_config("v1"))
    orphan = b"renamed into place, then the process died"
    await store.driver.put_content(paths.blob_data(Digest.from_bytes(orphan)), orphan)
    await store.driver.put_content(f"{paths.BLOBS}/notes.txt", b"not a blob")

    report = await store.collect_garbage()

    assert (report.orphans_removed, report.bytes_freed) == (1, len(orphan))
    assert not await _stored(store, orphan)
    assert await store.driver.get_content(f"{paths.BLOBS}/notes.txt") == b"not a blob"
    assert await _readable(store, "acme/app", b"kept")


async def test_a_manifest_pushed_during_the_collection_stops_it(
        store: RegistryStore, push, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mark has listed the manifests; a push then needs a blob nothing needed before."""
    layer = b"uploaded before its manifest"
    await push.blob("acme/app", layer)
    config = await push.blob("acme/app", _config("late"), mt.OCI_CONFIG)
    index = store._index
    listed = index.all_manifests

    async def list_then_push() -> list[StoredManifestEntry]:
        found = await listed()
        await store.manifests.put("acme/app", "late", mt.OCI_MANIFEST, push.manifest_bytes(
            config, [await push.blob("acme/app", layer)]))
        return found

    monkeypatch.setattr(index, "all_manifests", list_then_push)
    with pytest.raises(CollectionConflict):
        await store.collect_garbage()
    monkeypatch.undo()
    assert await _readable(store, "acme/app", layer)
    assert (await store.collect_garbage()).blobs_removed == 0


async def test_an_unreadable_manifest_stops_the_collection(
        store: RegistryStore, push) -> None:
    _, gone = await push.image("acme/app", "v1", b"old", config=_config("v1"))
    _, broken = await push.image("acme/app", "v2", b"new", config=_config("v2"))
    await store.manifests.delete("acme/app", str(gone))
    await store.driver.delete(paths.blob_data(broken))

    with pytest.raises(ManifestUnreadable, match=f"acme/app@{broken}"):
        await store.collect_garbage()
    assert await _readable(store, "acme/app", b"old")  # nothing was removed


# --------------------------------------------------------------------------- --delete-untagged


async def _untagged(store: RegistryStore, push, repo: str, *layers: bytes, config: bytes,
                    **extra: object) -> tuple[bytes, Digest]:
    """An image pushed by digest only (an attestation, a signature, a build cache record)."""
    cfg = await push.blob(repo, config, mt.OCI_CONFIG)
    body = push.manifest_bytes(cfg, [await push.blob(repo, layer) for layer in layers], **extra)
    digest = Digest.from_bytes(body)
    await store.manifests.put(repo, str(digest), mt.OCI_MANIFEST, body)
    return body, digest


async def _manifest_gone(store: RegistryStore, repo: str, digest: Digest) -> bool:
    try:
        await store.manifests.get(repo, str(digest))
    except ManifestUnknown:
        return True
    return False


async def test_delete_untagged_removes_the_image_a_moved_tag_left(
        store: RegistryStore, push) -> None:
    only_v1, shared, only_v2 = b"layer-v1" * 100, b"shared" * 100, b"v2" * 50
    body_v1, v1 = await push.image("acme/app", "latest", only_v1, shared, config=_config("v1"))
    body_v2, _ = await push.image("acme/app", "latest", only_v2, shared, config=_config("v2"))

    plain = await store.collect_garbage()  # without the switch, v1 stays for pulls by digest
    dry = await store.collect_garbage(dry_run=True, delete_untagged=True)

    assert (plain.manifests, plain.manifests_removed, plain.blobs_removed) == (2, 0, 0)
    assert (dry.manifests, dry.manifests_removed, dry.blobs_removed) == (1, 1, 3)
    assert dry.untagged == (f"acme/app@{v1}",)
    assert (await store.manifests.get("acme/app", str(v1))).data == body_v1
    real = await store.collect_garbage(delete_untagged=True)
    assert (real.manifests, real.manifests_removed, real.links_removed, real.blobs_removed,
            real.bytes_freed) == (1, 1, 3, 3, dry.bytes_freed)
    assert real.bytes_freed == len(only_v1) + len(_config("v1")) + len(body_v1)
    assert await _manifest_gone(store, "acme/app", v1)
    for data in (only_v1, _config("v1"), body_v1):
        assert not await _stored(store, data)
    for data in (shared, only_v2, _config("v2"), body_v2):
        assert await _readable(store, "acme/app", data)
    assert await store.manifests.tags("acme/app") == ["latest"]
    assert (await store.manifests.get("acme/app", "latest")).data == body_v2


async def test_delete_untagged_keeps_what_a_tag_reaches_through_indexes_and_referrers(
        store: RegistryStore, push) -> None:
    repo = "acme/multi"
    children = [await _untagged(store, push, repo, f"arch{i} layer".encode() * 10,
                                config=_config(f"arch{i}")) for i in range(2)]
    index = push.index_bytes(children)
    await store.manifests.put(repo, "latest", mt.OCI_INDEX, index)
    index_digest = Digest.from_bytes(index)

    def subject(body: bytes) -> dict[str, object]:
        return {"mediaType": mt.OCI_MANIFEST if b'"layers"' in body else mt.OCI_INDEX,
                "digest": str(Digest.from_bytes(body)), "size": len(body)}

    # a signature of the index, and a signature of that signature: kept through the index
    sig, sig_digest = await _untagged(store, push, repo, b"sig", config=_config("sig"),
                                      subject=subject(index))
    _, sigsig = await _untagged(store, push, repo, b"sigsig", config=_config("sigsig"),
                                subject=subject(sig))
    # a signature of one platform's image, which only the index keeps
    _, child_sig = await _untagged(store, push, repo, b"child sig", config=_config("csig"),
                                   subject=subject(children[0][0]))
    # an untagged image and its SBOM: both go
    old, old_digest = await _untagged(store, push, repo, b"old", config=_config("old"))
    _, sbom = await _untagged(store, push, repo, b"sbom", config=_config("sbom"),
                              subject=subject(old))
    # a tagged referrer keeps itself, not its (untagged) subject
    gone, gone_digest = await _untagged(store, push, repo, b"gone", config=_config("gone"))
    note_body, _ = await push.image(repo, "note", b"note", config=_config("note"),
                                    subject=subject(gone))

    report = await store.collect_garbage(delete_untagged=True)

    assert (report.manifests, report.manifests_removed) == (7, 3)
    for digest in (old_digest, sbom, gone_digest):
        assert await _manifest_gone(store, repo, digest)
    for data in (b"old", b"sbom", b"gone", old):
        assert not await _stored(store, data)
    for body, digest in children:
        assert (await store.manifests.get(repo, str(digest))).data == body
    for digest in (index_digest, sig_digest, sigsig, child_sig):
        assert not await _manifest_gone(store, repo, digest)
    for data in (b"arch0 layer" * 10, b"arch1 layer" * 10, b"sig", b"sigsig", b"child sig",
                 b"note"):
        assert await _readable(store, repo, data)
    page = await store.manifests.referrers(repo, index_digest)
    assert [d.digest for d in page.descriptors] == [sig_digest]
    assert (await store.manifests.referrers(repo, old_digest)).descriptors == []
    assert (await store.manifests.get(repo, "note")).data == note_body


async def test_delete_untagged_works_per_repository(store: RegistryStore, push) -> None:
    """A manifest tagged in one repository and untagged in another leaves only the second;
    its bytes and layers stay for the first."""
    body, digest = await push.image("acme/a", "1", b"layer", config=_config("ab"))
    await push.blob("acme/b", b"layer")
    await push.blob("acme/b", _config("ab"), mt.OCI_CONFIG)
    await store.manifests.put("acme/b", str(digest), mt.OCI_MANIFEST, body)

    report = await store.collect_garbage(delete_untagged=True)

    assert (report.manifests, report.manifests_removed, report.links_removed,
            report.blobs_removed) == (1, 1, 3, 0)
    assert await _manifest_gone(store, "acme/b", digest)
    assert not await _readable(store, "acme/b", b"layer")
    assert (await store.manifests.get("acme/a", "1")).data == body
    assert await _readable(store, "acme/a", b"layer")


async def test_a_tag_moved_during_an_untagged_collection_stops_it(
        store: RegistryStore, push, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mark saw v1 untagged; a client then tags it again (a rollback of :latest)."""
    body_v1, v1 = await push.image("acme/app", "latest", b"v1", config=_config("v1"))
    await push.image("acme/app", "latest", b"v2", config=_config("v2"))
    index = store._index
    listed = index.all_manifests

    async def list_then_tag() -> list[StoredManifestEntry]:
        found = await listed()
        await store.manifests.put("acme/app", "stable", mt.OCI_MANIFEST, body_v1)
        return found

    monkeypatch.setattr(index, "all_manifests", list_then_tag)
    with pytest.raises(CollectionConflict, match="tag"):
        await store.collect_garbage(delete_untagged=True)
    monkeypatch.undo()
    assert (await store.manifests.get("acme/app", "stable")).data == body_v1
    assert await _readable(store, "acme/app", b"v1")
    assert (await store.collect_garbage(delete_untagged=True)).manifests_removed == 0


def test_the_root_lock_is_shared_by_servers_and_exclusive_for_collection(
        tmp_path: Path) -> None:
    with (RootLock(tmp_path, exclusive=False), RootLock(tmp_path, exclusive=False),
          pytest.raises(RootBusy, match="being served")):
        RootLock(tmp_path, exclusive=True)
    with RootLock(tmp_path, exclusive=True):
        with pytest.raises(RootBusy, match="garbage is being collected"):
            RootLock(tmp_path, exclusive=False)
        with pytest.raises(RootBusy):
            RootLock(tmp_path, exclusive=True)
    RootLock(tmp_path, exclusive=True).release()  # released with its holders


def test_a_lock_file_another_user_made_still_locks() -> None:
    """`sudo strata-registry gc` leaves registry.lock owned by root, mode 0644: a server
    running as another user must still lock it (read-only is enough for flock)."""
    root = Path(tempfile.mkdtemp())  # (pytest's tmp_path is private to root)
    try:
        os.chmod(root, 0o755)
        RootLock(root, exclusive=True).release()  # made by root
        os.chmod(root / paths.ROOT_LOCK, 0o644)
        with RootLock(root, exclusive=True):  # a collection the other user's server must see
            pid = os.fork()
            if pid == 0:  # the other user
                code = 1
                try:
                    os.setgid(65534)
                    os.setuid(65534)
                    RootLock(root, exclusive=False)
                except RootBusy:
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
    finally:
        shutil.rmtree(root)
    assert os.waitstatus_to_exitcode(status) == 0
