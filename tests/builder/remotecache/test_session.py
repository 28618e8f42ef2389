"""RemoteCache against a real strata-registry and a local directory: export, import, lazy
blob fetches, incremental re-export, and a push that mounts instead of downloading."""

from __future__ import annotations

import json
import os
from pathlib import Path

from transfer_registries import RunningRegistry

from builder.cache import CachedLayer, CacheRecord
from builder.content import write_bytes
from builder.images import ImageStore
from builder.remotecache import ARTIFACT_TYPE, RemoteCache, push_lazy
from builder.remotecache.spec import CacheExport, CacheImport
from registry.oci import Descriptor, Digest, ImageManifest, canonical_bytes, mediatypes


def _fill(root: Path, cache: RemoteCache, n: int, *, stage_of: dict[int, int] | None = None,
          start: int = 0) -> list[Descriptor]:
    """Write n random layer blobs into the store at root and note one step per layer."""
    descs = []
    with ImageStore(root) as store:
        parent = None
        for i in range(start, start + n):
            data = os.urandom(50_000 + i)
            info = write_bytes(store.content, data)
            desc = Descriptor(mediatypes.OCI_LAYER, info.digest, info.size)
            descs.append(desc)
            key = str(Digest.from_bytes(f"step{i}".encode()))
            rec = CacheRecord(CachedLayer(desc, str(info.digest)), {"config": {"N": i}})
            cache.note(key, parent, (stage_of or {}).get(i, 0), f"s{i}", f"RUN {i}", rec)
            parent = key
    return descs


def _key(i: int) -> str:
    return str(Digest.from_bytes(f"step{i}".encode()))


def test_registry_export_then_import_on_an_empty_root_is_lazy(
        tmp_path: Path, strata_registry: RunningRegistry) -> None:
    ref = f"{strata_registry.host}/app/cache:main"
    a = RemoteCache(tmp_path / "a")
    descs = _fill(tmp_path / "a", a, 3)
    report = a.export(CacheExport("registry", ref=ref, mode="max"), [0])
    layer_bytes = sum(d.size for d in descs)
    assert report.records == 3
    assert layer_bytes < report.bytes_uploaded < layer_bytes + 4096  # plus the config blob
    manifest = strata_registry.get_json("/v2/app/cache/manifests/main",
                                        accept=mediatypes.OCI_MANIFEST)
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert [layer["digest"] for layer in manifest["layers"]] == [str(d.digest) for d in descs]

    b = RemoteCache(tmp_path / "b")
    assert b.load([CacheImport("registry", ref=ref)]) == 3
    hit = b.lookup(_key(1))
    assert hit is not None and hit.layer is not None and hit.config == {"config": {"N": 1}}
    assert b.lookup(str(Digest.from_bytes(b"other"))) is None
    with ImageStore(tmp_path / "b") as store:
        assert not any(store.content.exists(d.digest) for d in descs)  # nothing moved yet
        assert b.ensure_local([descs[1]]) == descs[1].size
        assert store.content.exists(descs[1].digest)
        assert not store.content.exists(descs[0].digest)
    assert b.ensure_local([descs[1]]) == 0
    assert b.bytes_downloaded == descs[1].size
    a.close()
    b.close()


def test_re_export_uploads_only_new_blobs(tmp_path: Path,
                                          strata_registry: RunningRegistry) -> None:
    ref = f"{strata_registry.host}/app/cache:main"
    a = RemoteCache(tmp_path / "a")
    _fill(tmp_path / "a", a, 2)
    a.export(CacheExport("registry", ref=ref, mode="max"), [0])
    a2 = RemoteCache(tmp_path / "a")
    _fill(tmp_path / "a", a2, 2)  # the same two steps again (new random bytes: new blobs)
    new = _fill(tmp_path / "a", a2, 1, start=10)
    first = a.export(CacheExport("registry", ref=ref, mode="max"), [0])
    assert first.bytes_uploaded == 0  # everything already there
    third = a2.export(CacheExport("registry", ref=ref + "2", mode="max"), [0])
    assert third.bytes_uploaded >= new[0].size


def test_mode_min_keeps_only_the_final_stages(tmp_path: Path) -> None:
    a = RemoteCache(tmp_path / "a")
    _fill(tmp_path / "a", a, 4, stage_of={0: 0, 1: 0, 2: 1, 3: 1})
    assert set(a.document("min", [1]).records) == {_key(2), _key(3)}
    assert len(a.document("max", [1]).records) == 4


def test_local_directory_cache_round_trip(tmp_path: Path) -> None:
    dest = tmp_path / "cachedir"
    a = RemoteCache(tmp_path / "a")
    descs = _fill(tmp_path / "a", a, 2)
    report = a.export(CacheExport("local", dest=dest, mode="max"), [0])
    assert report.bytes_written >= sum(d.size for d in descs)
    index = json.loads((dest / "index.json").read_text())
    assert index["manifests"][0]["artifactType"] == ARTIFACT_TYPE
    again = a.export(CacheExport("local", dest=dest, mode="max"), [0])
    assert again.bytes_written == 0
    b = RemoteCache(tmp_path / "b")
    assert b.load([CacheImport("local", src=dest)]) == 2
    assert b.ensure_local(descs) == sum(d.size for d in descs)
    with ImageStore(tmp_path / "b") as store:
        assert all(store.content.exists(d.digest) for d in descs)


def test_a_missing_cache_source_is_skipped_with_a_message(
        tmp_path: Path, strata_registry: RunningRegistry) -> None:
    notes: list[str] = []
    b = RemoteCache(tmp_path / "b", log=notes.append)
    assert b.load([CacheImport("registry", ref=f"{strata_registry.host}/none/here:x"),
                   CacheImport("local", src=tmp_path / "nothing")]) == 0
    assert len(notes) == 2 and all("skipped" in n for n in notes)


def test_pushing_an_image_of_lazy_layers_mounts_them_without_download(
        tmp_path: Path, strata_registry: RunningRegistry) -> None:
    cache_ref = f"{strata_registry.host}/app/cache:main"
    a = RemoteCache(tmp_path / "a")
    descs = _fill(tmp_path / "a", a, 2)
    a.export(CacheExport("registry", ref=cache_ref, mode="max"), [0])
    b = RemoteCache(tmp_path / "b")
    b.load([CacheImport("registry", ref=cache_ref)])
    with ImageStore(tmp_path / "b") as store:
        config = canonical_bytes({"architecture": "amd64", "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": [str(d.digest) for d in descs]}})
        info = write_bytes(store.content, config)
        manifest = ImageManifest(mediatypes.OCI_MANIFEST,
                                 Descriptor(mediatypes.OCI_CONFIG, info.digest, info.size),
                                 tuple(descs))
        data = canonical_bytes(manifest.to_json())
        digest, stats = push_lazy(store, f"{strata_registry.host}/app/image:1", data,
                                  mediatypes.OCI_MANIFEST, b.ensure_local)
        assert set(stats.mounted) == {d.digest for d in descs}
        assert stats.bytes_uploaded == info.size
        assert not any(store.content.exists(d.digest) for d in descs)
    assert b.bytes_downloaded == 0
    pushed = strata_registry.get_json("/v2/app/image/manifests/1",
                                      accept=mediatypes.OCI_MANIFEST)
    assert Digest.from_bytes(canonical_bytes(pushed)) == digest


def test_a_cache_with_a_malformed_digest_is_skipped_not_a_crash(tmp_path: Path) -> None:
    """A cache config whose record names a bad digest (DigestInvalid, a RegistryError)
    must be reported and skipped like any unreadable source: a cold cache never fails."""
    import hashlib

    dest = tmp_path / "cachedir"
    a = RemoteCache(tmp_path / "a")
    _fill(tmp_path / "a", a, 1)
    a.export(CacheExport("local", dest=dest, mode="max"), [0])
    blobs = dest / "blobs" / "sha256"
    index = json.loads((dest / "index.json").read_text())
    manifest_path = blobs / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(manifest_path.read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_bytes())
    record = next(iter(config["records"].values()))
    record["layer"]["digest"] = "sha256:not-a-digest"

    def put(data: bytes) -> str:
        hexd = hashlib.sha256(data).hexdigest()
        (blobs / hexd).write_bytes(data)
        return f"sha256:{hexd}"

    config_bytes = canonical_bytes(config)
    manifest["config"].update(digest=put(config_bytes), size=len(config_bytes))
    manifest_bytes = canonical_bytes(manifest)
    index["manifests"][0].update(digest=put(manifest_bytes), size=len(manifest_bytes))
    (dest / "index.json").write_text(json.dumps(index))

    notes: list[str] = []
    b = RemoteCache(tmp_path / "b", log=notes.append)
    assert b.load([CacheImport("local", src=dest)]) == 0
    assert len(notes) == 1 and "skipped" in notes[0]
