"""The cache manifest is a plain OCI image manifest: CNCF distribution (Debian's
docker-registry) stores it, and a fresh runner builds from it with every step hitting."""

from __future__ import annotations

from pathlib import Path

from ci_util import STEPS, make_context, run_build, seed_base
from transfer_registries import RunningRegistry

from builder.remotecache import ARTIFACT_TYPE
from registry.oci import mediatypes


def test_registry_cache_through_cncf_distribution(tmp_path: Path,
                                                  docker_registry: RunningRegistry,
                                                  busybox_rootfs_tar: Path) -> None:
    host = docker_registry.host
    base = seed_base(tmp_path, docker_registry, busybox_rootfs_tar)
    ref = f"{host}/ci/cache:main"
    a = run_build(tmp_path / "a", make_context(tmp_path / "ctx-a", base), tags=("app:a",),
                  cache_to=(f"type=registry,ref={ref},mode=max",))
    manifest = docker_registry.get_json("/v2/ci/cache/manifests/main",
                                        accept=mediatypes.OCI_MANIFEST)
    assert manifest["artifactType"] == ARTIFACT_TYPE
    b = run_build(tmp_path / "b", make_context(tmp_path / "ctx-b", base),
                  tags=(f"{host}/ci/app:1",), cache_from=(f"type=registry,ref={ref}",),
                  push=True)
    assert (b.result.cached, b.result.run) == (STEPS, 0), b.log
    assert b.result.image_id == a.result.image_id
    assert b.cache.bytes_downloaded == 0


def test_push_to_another_registry_downloads_the_cached_layers_once(
        tmp_path: Path, strata_registry: RunningRegistry, docker_registry: RunningRegistry,
        busybox_rootfs_tar: Path) -> None:
    base = seed_base(tmp_path, strata_registry, busybox_rootfs_tar)
    ref = f"{strata_registry.host}/ci/cache:main"
    a = run_build(tmp_path / "a", make_context(tmp_path / "ctx-a", base), tags=("app:a",),
                  cache_to=(f"type=registry,ref={ref},mode=max",))
    target = f"{docker_registry.host}/elsewhere/app:1"
    b = run_build(tmp_path / "b", make_context(tmp_path / "ctx-b", base), tags=(target,),
                  cache_from=(f"type=registry,ref={ref}",), push=True)
    assert b.result.run == 0 and b.result.image_id == a.result.image_id
    layers = docker_registry.get_json("/v2/elsewhere/app/manifests/1",
                                      accept=mediatypes.OCI_MANIFEST)["layers"]
    # no mount across registries: each output layer came down once and went up once
    assert b.cache.bytes_downloaded == sum(layer["size"] for layer in layers)
