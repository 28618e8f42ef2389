"""ImageStore: references, index.json, rmi/prune keep shared content, unpack once per chain."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from store_util import make_rootfs_tar

from builder.archives import import_rootfs
from builder.errors import FailedPrecondition, InvalidArgument, NotFound
from builder.images import REF_NAME, ImageStore, chain_ids, normalize_name
from builder.storecheck import check_store
from registry.oci import Digest


def _import(store: ImageStore, tmp: Path, name: str | None, files: dict[str, bytes],
            epoch: int = 0) -> object:
    tar = make_rootfs_tar(tmp / f"{abs(hash((name, tuple(files))))}.tar", files)
    with tar.open("rb") as f:
        return import_rootfs(store, f, name, source_label="test", epoch=epoch)


def _index_names(store: ImageStore) -> dict[str, str]:
    index = json.loads((store.content.layout_dir / "index.json").read_text())
    return {m["annotations"][REF_NAME]: m["digest"] for m in index["manifests"]
            if m.get("annotations")}


def test_names_are_normalized_like_docker() -> None:
    assert normalize_name("busybox") == "busybox:latest"
    assert normalize_name("docker.io/library/busybox:1") == "busybox:1"
    assert normalize_name("localhost:5000/a/b") == "localhost:5000/a/b:latest"
    with pytest.raises(InvalidArgument):
        normalize_name("Bad Name")


def test_chain_ids_follow_the_oci_formula() -> None:
    a = "sha256:" + "a" * 64
    b = "sha256:" + "b" * 64
    import hashlib
    assert chain_ids([a, b]) == [a, "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()]


def test_import_tags_image_and_index_json_names_it(store: ImageStore, tmp_path: Path) -> None:
    image = _import(store, tmp_path, "app:1", {"etc/x": b"x"})
    resolved = store.resolve("app:1")
    assert resolved == image
    assert _index_names(store) == {"app:1": str(resolved.manifest.digest)}
    assert store.resolve(resolved.id) == resolved
    assert store.resolve(resolved.id[7:19]) == resolved
    assert store.resolve(str(resolved.manifest.digest)) == resolved
    with pytest.raises(NotFound):
        store.resolve("app:2")


def test_tag_and_untag_keep_index_json_in_sync(store: ImageStore, tmp_path: Path) -> None:
    _import(store, tmp_path, "app:1", {"etc/x": b"x"})
    store.tag("app:1", "registry.local:5000/team/app:v2")
    assert set(_index_names(store)) == {"app:1", "registry.local:5000/team/app:v2"}
    store.untag("app:1")
    assert set(_index_names(store)) == {"registry.local:5000/team/app:v2"}
    assert store.index_in_sync()


def test_retagging_a_name_leaves_a_dangling_image_that_prune_removes(
        store: ImageStore, tmp_path: Path) -> None:
    old = _import(store, tmp_path, "app:1", {"a": b"old"})
    new = _import(store, tmp_path, "app:1", {"a": b"new"})
    assert old != new
    images = {i.id: i.names for i in store.images()}
    assert images[old.id] == () and images[new.id] == ("app:1",)  # type: ignore[attr-defined]
    report = store.prune()
    assert report.images == [old.id]  # type: ignore[attr-defined]
    assert [i.id for i in store.images()] == [new.id]  # type: ignore[attr-defined]
    assert check_store(store).ok


def test_rmi_by_name_keeps_image_while_another_name_points_at_it(
        store: ImageStore, tmp_path: Path) -> None:
    _import(store, tmp_path, "app:1", {"a": b"1"})
    store.tag("app:1", "app:copy")
    report = store.remove("app:1")
    assert report.untagged == ("app:1",) and report.deleted == ()
    assert store.resolve("app:copy")
    report = store.remove("app:copy")
    assert report.deleted and store.images() == []
    assert list(store.content.walk()) == []


def test_rmi_by_id_with_several_names_needs_force(store: ImageStore, tmp_path: Path) -> None:
    image = _import(store, tmp_path, "app:1", {"a": b"1"})
    store.tag("app:1", "app:2")
    with pytest.raises(FailedPrecondition):
        store.remove(image.id)  # type: ignore[attr-defined]
    report = store.remove(image.id, force=True)  # type: ignore[attr-defined]
    assert set(report.untagged) == {"app:1", "app:2"} and store.images() == []


def test_rmi_keeps_layers_shared_with_another_image(store: ImageStore, tmp_path: Path) -> None:
    files = {"bin/tool": b"shared layer bytes" * 100}
    _import(store, tmp_path, "one:1", files, epoch=1)
    two = _import(store, tmp_path, "two:1", files, epoch=2)  # same layer, other config
    one_layers = store.unpack(store.resolve("one:1"))
    assert store.unpack(two) == one_layers  # type: ignore[arg-type]
    store.remove("one:1")
    layer_blob = store.layers(two)[0].blob_digest  # type: ignore[arg-type]
    assert any(str(b.digest) == layer_blob for b in store.content.walk())
    assert one_layers[0].is_dir()
    assert check_store(store).ok
    store.remove("two:1")
    assert not one_layers[0].exists() and list(store.content.walk()) == []


def test_unpack_applies_each_chain_once_and_dedupes_files(store: ImageStore,
                                                          tmp_path: Path) -> None:
    payload = os.urandom(200_000)
    a = _import(store, tmp_path, "a:1", {"data/blob.bin": payload, "a": b"a"})
    b = _import(store, tmp_path, "b:1", {"other/copy.bin": payload, "b": b"b"})
    [la] = store.unpack(a)  # type: ignore[arg-type]
    [lb] = store.unpack(b)  # type: ignore[arg-type]
    assert (la / "data/blob.bin").read_bytes() == payload
    inode_a = os.stat(la / "data/blob.bin").st_ino
    assert os.stat(lb / "other/copy.bin").st_ino == inode_a  # one inode via the file index
    mtime = la.stat().st_mtime_ns
    assert store.unpack(a) == [la] and la.stat().st_mtime_ns == mtime  # not re-applied
    assert store.db.unpacked(store.layers(a)[0].chain_id) is not None  # type: ignore[arg-type]


def test_prune_collects_unreferenced_blobs_layers_and_file_index_entries(
        store: ImageStore, tmp_path: Path) -> None:
    image = _import(store, tmp_path, "gone:1", {"f": os.urandom(5000)})
    store.unpack(image)  # type: ignore[arg-type]
    assert any(store.pool_dir.rglob("*"))
    store.untag("gone:1")
    report = store.prune()
    assert report.images and report.blobs == 3 and report.layers == 1
    assert list(store.content.walk()) == []
    assert [p for p in store.layers_dir.iterdir()] == []
    assert [p for p in store.pool_dir.rglob("*") if p.is_file()] == []


def test_prune_keeps_everything_a_tagged_image_needs(store: ImageStore, tmp_path: Path) -> None:
    image = _import(store, tmp_path, "kept:1", {"f": b"keep me"})
    [layer] = store.unpack(image)  # type: ignore[arg-type]
    store.prune()
    assert store.resolve("kept:1") and layer.is_dir()
    assert check_store(store).ok


def test_identical_imports_with_source_date_epoch_have_identical_digests(
        tmp_path: Path) -> None:
    tar = make_rootfs_tar(tmp_path / "r.tar", {"etc/hostname": b"x\n", "bin/a": b"a" * 999})
    digests = []
    for i in range(2):
        with ImageStore(tmp_path / f"s{i}") as store, tar.open("rb") as f:
            digests.append(import_rootfs(store, f, "d:1", source_label="r.tar",
                                         epoch=1700000000).manifest.digest)
    assert digests[0] == digests[1]


def test_import_accepts_a_gzip_compressed_tar_and_records_the_uncompressed_diff_id(
        store: ImageStore, tmp_path: Path) -> None:
    import gzip
    import hashlib
    tar = make_rootfs_tar(tmp_path / "r.tar", {"x": b"y"})
    raw = tar.read_bytes()
    image = import_rootfs(store, io.BytesIO(gzip.compress(raw)), "gz:1")
    assert store.layers(image)[0].diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert store.layers(image)[0].media_type == "application/vnd.oci.image.layer.v1.tar+gzip"


def test_check_reports_corrupted_blob_and_stale_index(store: ImageStore, tmp_path: Path) -> None:
    image = _import(store, tmp_path, "c:1", {"f": b"1"})
    assert check_store(store).ok
    blob = store.content.blob_path(image.config_digest)  # type: ignore[attr-defined]
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes().replace(b"amd64", b"arm64"))
    (store.content.layout_dir / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    report = check_store(store)
    assert not report.ok
    assert any("blob" in p for p in report.problems)
    assert any("index.json" in p for p in report.problems)


def test_docker25_style_index_annotations_name_the_image() -> None:
    from builder.archives import _names_from_annotations
    assert _names_from_annotations({
        "io.containerd.image.name": "docker.io/library/busybox:1.36",
        "org.opencontainers.image.ref.name": "1.36"}) == ["busybox:1.36"]
    assert _names_from_annotations({"org.opencontainers.image.ref.name": "app:v1"}) == ["app:v1"]
    assert _names_from_annotations({"org.opencontainers.image.ref.name": "latest"}) == []
    assert _names_from_annotations(None) == []


def test_loading_an_index_registers_the_host_platform_manifest(
        store: ImageStore, tmp_path: Path) -> None:
    from builder.content import write_bytes
    from registry.oci import Descriptor, ImageIndex, Platform, canonical_bytes, mediatypes
    image = _import(store, tmp_path, None, {"f": b"1"})
    host = Platform.host()
    other = Descriptor(mediatypes.OCI_MANIFEST, Digest.from_bytes(b"other"), 5,
                       platform=Platform("linux", "s390x" if host.architecture != "s390x"
                                         else "arm64"))
    mine = Descriptor(mediatypes.OCI_MANIFEST, image.manifest.digest,  # type: ignore
                      image.manifest.size, platform=host)  # type: ignore[attr-defined]
    index = ImageIndex(mediatypes.OCI_INDEX, (other, mine))
    info = write_bytes(store.content, canonical_bytes(index.to_json()))
    added = store.add_image(info.digest, ["multi:1"], mediatypes.OCI_INDEX)
    assert added.manifest.digest == image.manifest.digest  # type: ignore[attr-defined]
    assert store.resolve("multi:1").id == image.id  # type: ignore[attr-defined]


def test_convert_manifest_switches_between_oci_and_docker_media_types(
        store: ImageStore, tmp_path: Path) -> None:
    from builder.images import convert_manifest
    from registry.oci import mediatypes
    image = _import(store, tmp_path, "c:1", {"f": b"1"})
    oci = store.manifest(image)  # type: ignore[arg-type]
    docker = convert_manifest(oci, "docker")
    assert docker.media_type == mediatypes.DOCKER_MANIFEST
    assert docker.config.media_type == mediatypes.DOCKER_CONFIG
    assert [la.media_type for la in docker.layers] == [mediatypes.DOCKER_LAYER_GZIP]
    assert [la.digest for la in docker.layers] == [la.digest for la in oci.layers]
    assert convert_manifest(docker, "oci").to_json() == oci.to_json()


def test_leased_content_survives_prune(store: ImageStore, tmp_path: Path) -> None:
    image = _import(store, tmp_path, "l:1", {"f": b"lease me"})
    [layer] = store.unpack(image)  # type: ignore[arg-type]
    row = store.layers(image)[0]  # type: ignore[arg-type]
    store.db.add_lease("build-1", [row.blob_digest, row.chain_id])
    store.untag("l:1")
    store.prune()
    assert store.content.exists(Digest.parse(row.blob_digest)) and layer.is_dir()
    store.db.delete_lease("build-1")
    store.prune()
    assert not store.content.exists(Digest.parse(row.blob_digest)) and not layer.exists()


def test_deep_check_finds_a_modified_file_in_an_unpacked_layer(
        store: ImageStore, tmp_path: Path) -> None:
    image = _import(store, tmp_path, "deep:1", {"etc/conf": b"original\n", "bin/x": b"x"})
    [layer] = store.unpack(image)  # type: ignore[arg-type]
    assert check_store(store, deep=True).ok
    os.chmod(layer / "bin/x", 0o4755)
    report = check_store(store, deep=True)
    assert not report.ok and "bin/x" in report.problems[0]
    assert check_store(store).ok  # the quick check does not re-derive layers
    assert [p.name for p in store.layers_dir.iterdir()] == [layer.name]


def test_layer_without_parent_dir_entry_inherits_the_lower_directory(store: ImageStore,
                                                                     tmp_path: Path) -> None:
    """umoci-style layers write `etc/.wh.x` without an `etc/` entry: unpacking over the lower
    layers must keep the lower `etc` (mode, owner), not hide it under a default 0755 dir."""
    import tarfile

    from store_util import make_docker_archive

    from builder.archives import load_archive

    lower, upper = tmp_path / "lower.tar", tmp_path / "upper.tar"
    with tarfile.open(lower, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("etc")
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o700, 1000, 1000
        tar.addfile(info)
        info = tarfile.TarInfo("etc/x")
        tar.addfile(info, io.BytesIO(b""))
    with tarfile.open(upper, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("etc/.wh.x"), io.BytesIO(b""))
    archive = make_docker_archive(tmp_path / "img.tar", [lower, upper], "wh:1")
    with archive.open("rb") as f:
        load_archive(store, f)
    top = store.unpack(store.resolve("wh:1"))[-1]
    st = os.lstat(top / "etc")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o700, 1000, 1000)
    assert os.path.exists(top / "etc" / "x")  # the overlay whiteout (0/0 char device)
    assert check_store(store).ok
