"""The synchronous API other builder modules call (build's FROM pull, the CI cache)."""

from __future__ import annotations

import os
from pathlib import Path

from transfer_registries import RunningRegistry, store_artifact, strata

from builder.images import ImageStore
from builder.transfer import fetch_blobs, pull, pull_image, push_manifest
from registry.oci import mediatypes


def test_pull_reports_the_bytes_it_downloaded(tmp_path: Path, busybox_rootfs_tar: Path,
                                              strata_registry: RunningRegistry) -> None:
    ref = f"{strata_registry.host}/api/bb:1"
    strata(tmp_path / "src", "import", str(busybox_rootfs_tar), ref)
    strata(tmp_path / "src", "push", ref)
    with ImageStore(tmp_path / "dst") as store:
        first = pull(store, ref, unpack=False)
        blobs = sum(row.size for row in store.layers(first.image))
        config = store.content.info(first.image.config_digest).size
        assert first.bytes_downloaded == first.manifest.size + config + blobs
        again = pull(store, ref)
        assert again.bytes_downloaded == again.manifest.size
        assert pull_image(store, ref).manifest == first.image.manifest


def test_artifact_push_then_lazy_fetch_of_its_blobs(tmp_path: Path,
                                                    strata_registry: RunningRegistry) -> None:
    ref = f"{strata_registry.host}/api/cache:main"
    payload = os.urandom(400_000)
    with ImageStore(tmp_path / "a") as store:
        data, config, layer = store_artifact(store, payload)
        digest, stats = push_manifest(store, ref, data, mediatypes.OCI_MANIFEST)
        assert sorted(map(str, stats.uploaded)) == sorted([str(config.digest), str(layer.digest)])
        _, again = push_manifest(store, ref, data, mediatypes.OCI_MANIFEST)
        assert again.uploaded == [] and len(again.existing) == 2
    with ImageStore(tmp_path / "b") as fresh:
        assert fetch_blobs(fresh, ref, [layer]) == len(payload)
        assert fetch_blobs(fresh, ref, [layer]) == 0
        with fresh.content.open(layer.digest) as f:
            assert f.read() == payload
    assert str(digest).startswith("sha256:")
