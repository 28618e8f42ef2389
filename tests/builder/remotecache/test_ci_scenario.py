"""The CI scenario (issue 6): runner A builds with --cache-to and --push; runner B, with an
empty root, builds the same context with --cache-from: every step hits, no RUN executes (the
RUNs write random bytes, so a re-run would change the image ID), and B downloads no more than
its output needs; after one source file changes only the steps depending on it run."""

from __future__ import annotations

from pathlib import Path

import pytest
from ci_util import STEPS, make_context, run_build, seed_base
from transfer_registries import RunningRegistry, strata

from builder.images import ImageStore
from builder.remotecache import INLINE_CONFIG_KEY
from registry.oci import Digest, mediatypes


@pytest.fixture
def base(tmp_path: Path, strata_registry: RunningRegistry, busybox_rootfs_tar: Path) -> str:
    return seed_base(tmp_path, strata_registry, busybox_rootfs_tar)


def _layers_of(root: Path, tag: str) -> list[tuple[str, int]]:
    with ImageStore(root) as store:
        return [(r.blob_digest, r.size) for r in store.layers(store.resolve(tag))]


def _has(root: Path, digest: str) -> bool:
    with ImageStore(root) as store:
        return store.content.exists(Digest.parse(digest))


@pytest.mark.parametrize("kind", ["registry", "local"])
def test_fresh_runner_hits_every_step_and_moves_no_layer_when_pushing(
        tmp_path: Path, strata_registry: RunningRegistry, base: str, kind: str) -> None:
    host = strata_registry.host
    cache = (f"type=registry,ref={host}/app/cache:main" if kind == "registry"
             else f"type=local,dest={tmp_path / 'cachedir'}")
    cache_from = cache.replace("dest=", "src=")
    a = run_build(tmp_path / "runner-a", make_context(tmp_path / "ctx-a", base),
                  tags=(f"{host}/app/image:a",), cache_to=(cache + ",mode=max",), push=True)
    assert a.result.run == STEPS and a.result.cached == 0
    b = run_build(tmp_path / "runner-b", make_context(tmp_path / "ctx-b", base),
                  tags=(f"{host}/app/image:b",), cache_from=(cache_from,), push=True)
    assert b.result.run == 0 and b.result.cached == STEPS, b.log
    assert b.result.image_id == a.result.image_id  # random RUN output: nothing re-ran
    assert b.cache.bytes_downloaded == 0
    # other root, other context path, other mtimes: the same step keys
    assert {r.key for r in b.cache_records} == {r.key for r in a.cache_records}
    assert b.cache.pushed and b.cache.pushed[0][1] == a.cache.pushed[0][1]
    if kind == "registry":
        assert b.cache.pushed[0][2] < 4096  # only the config: layers were mounted
    assert "steps from imported cache" in b.log


def test_fresh_runner_without_push_downloads_only_the_output_layers(
        tmp_path: Path, strata_registry: RunningRegistry, base: str) -> None:
    host = strata_registry.host
    ref = f"{host}/app/cache:main"
    a = run_build(tmp_path / "runner-a", make_context(tmp_path / "ctx-a", base),
                  tags=("app:a",), cache_to=(f"type=registry,ref={ref},mode=max",))
    b = run_build(tmp_path / "runner-b", make_context(tmp_path / "ctx-b", base),
                  tags=("app:b",), cache_from=(f"type=registry,ref={ref}",))
    assert b.result.run == 0 and b.result.image_id == a.result.image_id
    out_layers = _layers_of(tmp_path / "runner-b", "app:b")
    # the base was resolved lazily too: exactly the output's layers came down, once each
    assert b.cache.bytes_downloaded == sum(size for _, size in out_layers)
    # the deps stage's own layers are not in the output, so they never came down
    a_out = {d for d, _ in _layers_of(tmp_path / "runner-a", "app:a")}
    deps_only = [r.record.layer.descriptor.digest for r in a.cache_records
                 if r.record.layer and str(r.record.layer.descriptor.digest) not in a_out]
    assert deps_only and not any(_has(tmp_path / "runner-b", str(d)) for d in deps_only)


def test_one_changed_file_reruns_only_its_dependent_steps(
        tmp_path: Path, strata_registry: RunningRegistry, base: str) -> None:
    host = strata_registry.host
    ref = f"{host}/app/cache:main"
    a = run_build(tmp_path / "runner-a", make_context(tmp_path / "ctx-a", base),
                  tags=("app:a",), cache_to=(f"type=registry,ref={ref},mode=max",))
    ctx_b = make_context(tmp_path / "ctx-b", base, app="app v2\n")
    b = run_build(tmp_path / "runner-b", ctx_b, tags=("app:b",),
                  cache_from=(f"type=registry,ref={ref}",))
    # deps: RUN, COPY, RUN hit; app: WORKDIR, COPY --from hit; COPY app.txt, RUN, RUN run
    assert (b.result.cached, b.result.run) == (5, 3), b.log
    assert b.result.image_id != a.result.image_id


def test_inline_cache_in_the_pushed_image(tmp_path: Path, strata_registry: RunningRegistry,
                                          base: str) -> None:
    host = strata_registry.host
    image = f"{host}/app/image:inline"
    a = run_build(tmp_path / "runner-a", make_context(tmp_path / "ctx-a", base),
                  tags=(image,), cache_to=("type=inline",), push=True)
    manifest = strata_registry.get_json("/v2/app/image/manifests/inline",
                                        accept=mediatypes.OCI_MANIFEST)
    config = strata_registry.get_json(f"/v2/app/image/blobs/{manifest['config']['digest']}")
    assert len(config[INLINE_CONFIG_KEY]["records"]) == 5  # the final stage's steps
    assert manifest["config"]["digest"] == a.result.image_id
    b = run_build(tmp_path / "runner-b", make_context(tmp_path / "ctx-b", base),
                  tags=(f"{host}/app/image:inline2",), cache_from=(f"type=registry,ref={image}",),
                  push=True)
    # mode=min: every step of the final stage hits; the deps stage is not in the image and
    # re-runs (its keys, not its output, feed COPY --from, so the copy still hits)
    assert (b.result.cached, b.result.run) == (5, 3), b.log
    assert b.cache.records_imported == 5
    # only the base layers the re-run deps stage unpacks; no cached layer came down
    base_bytes = sum(size for _, size in _layers_of(tmp_path / "seed", "busybox:latest"))
    assert b.cache.bytes_downloaded == base_bytes


def test_compression_zstd_cache_serves_a_fresh_runner(
        tmp_path: Path, strata_registry: RunningRegistry, base: str) -> None:
    dest = tmp_path / "cachedir"
    run_build(tmp_path / "runner-a", make_context(tmp_path / "ctx-a", base), tags=("app:a",),
              cache_to=(f"type=local,dest={dest},mode=max,compression=zstd",))
    b = run_build(tmp_path / "runner-b", make_context(tmp_path / "ctx-b", base),
                  tags=("app:b",), cache_from=(f"type=local,src={dest}",))
    assert b.result.run == 0, b.log
    with ImageStore(tmp_path / "runner-b") as store:
        rows = store.layers(store.resolve("app:b"))
        built = [r for r in rows if r.blob_digest not in
                 {d for d, _ in _layers_of(tmp_path / "seed", "busybox:latest")}]
        assert built and all(r.media_type == mediatypes.OCI_LAYER_ZSTD for r in built)
    out = strata(tmp_path / "runner-b", "run", "--rm", "app:b")  # the zstd layers unpack
    assert out.stdout.endswith("app v1\n")
