"""The build engine with the CI cache: `--cache-from`, `--cache-to` and `--push`.

CacheAwareBuilder runs a builder.build.Builder with its three seams filled in:

* StepCache = RemoteStepCache: a step asks the local BuildCache first, then the imported
  records (RemoteCache.lookup); a remote hit advances the state with the record's layer
  *descriptor* only: no bytes move. Before a step that misses runs, the layer blobs it may
  unpack (its own chain and every stage or image it reads with --from) are fetched
  (RemoteCache.ensure_local) and its cache mounts restored;
* BaseResolver = LazyRegistryResolver (with --cache-from or --push): a registry base image
  the store lacks is resolved without downloading its layers;
* ImageWriter = CacheImageWriter: the image is written with its layers possibly still
  remote: registered in the store when all blobs are local (fetching them first unless the
  result is only pushed), and with the inline cache records in its config for
  `--cache-to type=inline`.

After the build, the cache is exported and every `-t` tag pushed (push_lazy mounts remote
layers cross-repository, so a fully cached build pushed next to its cache moves no layer).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.bases import BaseImage, StoreResolver, names_registry, stored_image
from builder.build import (
    Builder,
    BuildOptions,
    BuildPlan,
    BuildResult,
    FinalImage,
    check_platform,
    image_manifest,
    register_image,
)
from builder.cache import BuildCache, CacheRecord, LocalStepCache, StepInfo
from builder.errors import InvalidArgument, NotFound
from builder.images import Image, ImageStore, chain_ids, normalize_name
from builder.progress import Progress, Summary
from builder.remotecache.format import CacheDocument, CacheMountBlob, with_inline_records
from builder.remotecache.mounts import export_mount, mount_dir_name
from builder.remotecache.push import push_lazy
from builder.remotecache.session import ExportReport, RemoteCache
from builder.remotecache.spec import CacheExport, CacheImport
from builder.steps import Layer
from builder.transfer import RemoteOptions
from registry.oci import Descriptor, Digest, ImageConfig, canonical_bytes, mediatypes
from registry.oci import Platform as OciPlatform


@dataclass(frozen=True, slots=True)
class CacheOptions:
    cache_from: tuple[CacheImport, ...] = ()
    cache_to: tuple[CacheExport, ...] = ()
    push: bool = False


@dataclass(slots=True)
class CacheResult:
    """What the CI cache did in one build (also printed as progress notes)."""

    records_imported: int = 0
    remote_hits: int = 0
    bytes_downloaded: int = 0
    exports: list[ExportReport] = field(default_factory=list)
    pushed: list[tuple[str, Digest, int]] = field(default_factory=list)  # ref, digest, bytes up
    loaded_locally: bool = True


class RemoteStepCache:
    """A StepCache over the local one: a step that misses locally may hit an imported record
    (its layer blob fetched only when something needs the bytes); a miss first fetches the
    blobs the step will read and restores its cache mounts. Every step seen is noted for
    export."""

    def __init__(self, local: LocalStepCache, remote: RemoteCache, mounts_dir: Path,
                 note: Callable[[str], None]) -> None:
        self.local = local
        self.remote = remote
        self.mounts_dir = mounts_dir
        self.note = note
        self.mount_names: set[str] = set()  # cache mounts the build's RUN steps use
        self._lock = threading.Lock()

    def _seen(self, step: StepInfo) -> None:
        if step.cache_mounts:
            with self._lock:
                self.mount_names.update(mount_dir_name(m) for m in step.cache_mounts)

    def _noted(self, step: StepInfo, record: CacheRecord) -> None:
        self.remote.note(step.key, step.parent_key, step.stage, step.stage_label,
                         _created_by(record.config), record)

    def lookup(self, step: StepInfo) -> CacheRecord | None:
        self._seen(step)
        rec = self.local.lookup(step)
        if rec is None:
            rec = self.remote.lookup(step.key)
            if rec is not None and (rec.layer is None or self.local.blobs.exists(
                    rec.layer.descriptor.digest)):
                self.local.record(step, rec)  # nothing to fetch: keep it as a local record
        if rec is not None:
            self._noted(step, rec)
        return rec

    def prepare(self, step: StepInfo) -> None:
        self._seen(step)
        self.remote.ensure_local(step.blobs)
        names = [mount_dir_name(m) for m in step.cache_mounts]
        restored = self.remote.restore_mounts(names, self.mounts_dir)
        if restored:
            self.note("restored cache mounts from the imported cache: " + ", ".join(restored))

    def record(self, step: StepInfo, record: CacheRecord) -> None:
        self.local.record(step, record)
        self._noted(step, record)


class LazyRegistryResolver:
    """A BaseResolver for builds that import a cache or push: a registry image the store
    lacks is resolved without downloading its layers (fetched only if a step misses or the
    image is stored locally; mounted for a push). Other references resolve as usual."""

    def __init__(self, remote: RemoteCache, store: ImageStore, platform: str,
                 note: Callable[[str], None]) -> None:
        self.remote = remote
        self.store = store
        self.platform = platform
        self.note = note
        self.local = StoreResolver(store)

    def resolve(self, ref: str) -> BaseImage:
        if not names_registry(ref):
            return self.local.resolve(ref)
        try:
            return stored_image(self.store, self.store.resolve(ref))
        except NotFound:
            pass
        desc, manifest, config_bytes = self.remote.resolve_image(
            ref, OciPlatform.parse(self.platform))
        config = ImageConfig.from_json(json.loads(config_bytes))
        if len(config.diff_ids) != len(manifest.layers):
            raise InvalidArgument(f"{ref}: {len(manifest.layers)} layers but "
                                  f"{len(config.diff_ids)} diff_ids in its config")
        chains = chain_ids(config.diff_ids)
        layers = tuple(Layer(d, str(diff), chain) for d, diff, chain in
                       zip(manifest.layers, config.diff_ids, chains, strict=True))
        size = manifest.config.size + sum(d.size for d in manifest.layers)
        image = Image(desc, manifest.config.digest, config.created, size, time.time())
        self.note(f"resolved {ref} ({desc.digest}); layers fetched only if needed")
        return BaseImage(image, config, layers)


class CacheImageWriter:
    """An ImageWriter for images whose layers may still be remote: with `--cache-to
    type=inline` the records go into the config; when only pushed, an image with remote
    layers is not stored locally (they stay in the registry); otherwise the missing blobs
    are fetched and the image stored as usual. Keeps the manifest bytes for the push."""

    def __init__(self, remote: RemoteCache, inline: bool, push: bool, result: CacheResult,
                 note: Callable[[str], None]) -> None:
        self.remote = remote
        self.inline = inline
        self.push = push
        self.result = result
        self.note = note
        self.manifest_bytes: bytes | None = None

    def write_image(self, store: ImageStore, final: FinalImage) -> Image:
        config_bytes = final.config.to_bytes()
        if self.inline:
            config_bytes = with_inline_records(
                config_bytes, self.remote.inline_records(final.stages))
        manifest = image_manifest(store, config_bytes, final.layers)
        data = canonical_bytes(manifest.to_json())
        self.manifest_bytes = data
        missing = [d for d in manifest.layers if not store.content.exists(d.digest)]
        if missing and self.push:
            # only pushed: the layers stay in the registry (mounted there, never downloaded)
            self.result.loaded_locally = False
            self.note(f"{len(missing)} cached layers stay in the registry: the image "
                      "is pushed but not stored locally")
            return Image(Descriptor(mediatypes.OCI_MANIFEST, Digest.from_bytes(data),
                                    len(data)), manifest.config.digest, None,
                         len(config_bytes) + sum(d.size for d in manifest.layers),
                         time.time(), tuple(normalize_name(t) for t in final.tags))
        if missing:
            self.remote.ensure_local(missing)
        return register_image(store, manifest, final.tags)


class CacheAwareBuilder:
    """Builder + remote cache import/export + push (see the module docstring): it composes a
    builder.build.Builder with the three classes above."""

    def __init__(self, store_root: Path, options: BuildOptions, progress: Progress,
                 cache: CacheOptions) -> None:
        platform = str(check_platform(options.platform))  # before anything is opened
        self.root = Path(store_root)
        self.options = options
        self.progress = progress
        self.cache_options = cache
        self.remote = RemoteCache(self.root, RemoteOptions(
            insecure=tuple(options.insecure_registries)), log=progress.note)
        self.cache_result = CacheResult()
        blobs = self.remote.store().content  # opens (creates) the store before its cache table
        self._local_cache = BuildCache(self.root / "strata.db")
        self.steps = RemoteStepCache(LocalStepCache(self._local_cache, blobs), self.remote,
                                     self.root / "cache-mounts", progress.note)
        self.writer = CacheImageWriter(
            self.remote, any(c.type == "inline" for c in cache.cache_to), cache.push,
            self.cache_result, progress.note)
        resolver = None
        if cache.cache_from or cache.push:
            resolver = LazyRegistryResolver(self.remote, self.remote.store(), platform,
                                            progress.note)
        self.builder = Builder(self.root, options, progress, step_cache=self.steps,
                               resolver=resolver, image_writer=self.writer)

    @property
    def manifest_bytes(self) -> bytes | None:
        """The built image's manifest (set once the image is written)."""
        return self.writer.manifest_bytes

    def build(self) -> BuildResult:
        try:
            if self.cache_options.cache_from:
                self.cache_result.records_imported = self.remote.load(
                    self.cache_options.cache_from)
            result = self.builder.build()
            self._export_and_push(self.builder.plan)
            self.cache_result.remote_hits = self.remote.hits
            self.cache_result.bytes_downloaded = self.remote.bytes_downloaded
            if self.cache_options.cache_from or self.cache_options.push:
                self.progress.note(
                    f"build cache: {self.remote.hits} steps from imported cache, "
                    f"{self.remote.bytes_downloaded} bytes of layers downloaded lazily")
            return result
        finally:
            self._local_cache.close()
            self.remote.close()

    def _export_and_push(self, plan: BuildPlan) -> None:
        finals = _final_stages(plan)
        data = self.manifest_bytes
        if self.cache_options.push and data is not None:
            for tag in self.options.tags:
                digest, stats = push_lazy(self.remote.store(), tag, data, mediatypes.OCI_MANIFEST,
                                          self.remote.ensure_local, self.remote.options)
                self.cache_result.pushed.append((tag, digest, stats.bytes_uploaded))
                self.progress.note(f"pushed {tag}@{digest} ({stats.bytes_uploaded} bytes "
                                   f"uploaded, {len(stats.mounted)} blobs mounted, "
                                   f"{len(stats.existing)} already there)")
        for spec in self.cache_options.cache_to:
            if spec.type == "inline":
                continue
            extra = None
            if spec.cache_mounts:
                extra = CacheDocument({}, spec.mode, tuple(self._export_mounts()))
            report = self.remote.export(spec, finals, extra)
            self.cache_result.exports.append(report)
            self.progress.note(f"exported {report.records} build cache records to "
                               f"{report.target} ({report.bytes_uploaded + report.bytes_written}"
                               " bytes written)")

    def _export_mounts(self) -> list[CacheMountBlob]:
        base = self.root / "cache-mounts"
        out = []
        store = self.remote.store()
        for name in sorted(self.steps.mount_names):
            data = base / name / "data"
            if data.is_dir():
                out.append(CacheMountBlob(name, export_mount(store.content, data)))
        return out


def _final_stages(plan: BuildPlan) -> list[int]:
    """The target stage, then the stages it is built FROM (mode=min exports these)."""
    out = [plan.target]
    sp = plan.stages[plan.target]
    while sp.base.stage is not None:
        out.append(sp.base.stage)
        sp = plan.stages[sp.base.stage]
    return out


def _created_by(config: dict[str, Any]) -> str:
    history = config.get("history") or []
    return str(history[-1].get("created_by", "")) if history else ""


def build_with_cache(store_root: Path, options: BuildOptions, progress: Progress,
                     cache: CacheOptions) -> tuple[BuildResult, CacheResult]:
    """Like builder.build.build, with --cache-from / --cache-to / --push."""
    builder = CacheAwareBuilder(store_root, options, progress, cache)
    result = builder.build()
    progress.close(Summary(result.image.id, result.image.names, result.image.size,
                           result.cached, result.run, result.seconds))
    return result, builder.cache_result


__all__ = ["CacheAwareBuilder", "CacheOptions", "CacheResult", "build_with_cache"]


