"""Pull and push do their disk work (ingest writes, hashing, reads for upload) in worker
threads: a blockbuster guard fails any blocking call builder code makes on the event loop."""

from __future__ import annotations

import os
from pathlib import Path

from blockbuster import blockbuster_ctx
from transfer_registries import RunningRegistry, store_artifact, strata

from builder.images import ImageStore
from builder.transfer import fetch_blobs, pull, push_manifest
from registry.oci import mediatypes


def test_push_and_fetch_never_block_the_event_loop(tmp_path: Path,
                                                   strata_registry: RunningRegistry) -> None:
    ref = f"{strata_registry.host}/loop/cache:main"
    payload = os.urandom(3 * (1 << 20) + 12345)  # several read/write batches
    with ImageStore(tmp_path / "a") as store:
        data, config, layer = store_artifact(store, payload)
        with blockbuster_ctx(scanned_modules=["builder"]):
            push_manifest(store, ref, data, mediatypes.OCI_MANIFEST)
    with ImageStore(tmp_path / "b") as fresh:
        with blockbuster_ctx(scanned_modules=["builder"]):
            assert fetch_blobs(fresh, ref, [layer]) == len(payload)
        with fresh.content.open(layer.digest) as f:
            assert f.read() == payload


def test_pull_never_blocks_the_event_loop(tmp_path: Path, busybox_rootfs_tar: Path,
                                          strata_registry: RunningRegistry) -> None:
    ref = f"{strata_registry.host}/loop/bb:1"
    strata(tmp_path / "src", "import", str(busybox_rootfs_tar), ref)
    strata(tmp_path / "src", "push", ref)
    with ImageStore(tmp_path / "dst") as store:
        with blockbuster_ctx(scanned_modules=["builder"]):
            pulled = pull(store, ref, unpack=False)
        assert all(store.content.exists(d.digest) for d in store.manifest(pulled.image).layers)
