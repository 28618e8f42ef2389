"""The build engine with the CI cache: `--cache-from`, `--cache-to` and `--push`.

CacheAwareBuilder extends builder.build.Builder at four narrow points:

* a step asks the local BuildCache first, then the imported records (RemoteCache.lookup); a
  remote hit advances the state with the record's layer *descriptor* only: no bytes move;
* before a step that misses runs, the layer blobs it may unpack (its own chain and every
  finished stage it could read with --from) are fetched (RemoteCache.ensure_local);
* the image is written with its layers possibly still remote: registered in the store when
  all blobs are local (fetching them first unless the result is only pushed), and with the
  inline cache records in its config for `--cache-to type=inline`;
* after the build, the cache is exported and every `-t` tag pushed (push_lazy mounts remote
  layers cross-repository, so a fully cached build pushed next to its cache moves no layer).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from builder.build import (
    Builder,
    BuildOptions,
    BuildPlan,
    BuildResult,
    _finalize_config,
    names_registry,
)
from builder.cache import CachedLayer, CacheRecord
from builder.content import write_bytes
from builder.errors import InvalidArgument, NotFound
from builder.imageconfig import ConfigState
from builder.images import Image, chain_ids, normalize_name
from builder.planner import SCRATCH
from builder.progress import Progress, Summary
from builder.remotecache.format import CacheDocument, CacheMountBlob, with_inline_records
from builder.remotecache.mounts import export_mount, mount_dir_name
from builder.remotecache.push import push_lazy
from builder.remotecache.session import ExportReport, RemoteCache
from builder.remotecache.spec import CacheExport, CacheImport
from builder.steps import Layer, State
from builder.transfer import RemoteOptions
from dockerfile_grammar.instructions import Copy, Instruction, Run
from registry.oci import Descriptor, Digest, ImageConfig, ImageManifest, canonical_bytes, mediatypes
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


class CacheAwareBuilder(Builder):
    """Builder + remote cache import/export + push (see the module docstring)."""

    def __init__(self, store_root: Path, options: BuildOptions, progress: Progress,
                 cache: CacheOptions) -> None:
        super().__init__(store_root, options, progress)
        self.cache_options = cache
        self.remote = RemoteCache(self.root, RemoteOptions(
            insecure=tuple(options.insecure_registries)), log=progress.note)
        self.cache_result = CacheResult()
        self._current = threading.local()
        self.manifest_bytes: bytes | None = None
        self._mount_names: set[str] = set()
        self._mount_lock = threading.Lock()

    # ------------------------------------------------------------------ hooks

    def build(self) -> BuildResult:
        try:
            if self.cache_options.cache_from:
                self.cache_result.records_imported = self.remote.load(
                    self.cache_options.cache_from)
            result = super().build()
            self._export_and_push()
            self.cache_result.remote_hits = self.remote.hits
            self.cache_result.bytes_downloaded = self.remote.bytes_downloaded
            if self.cache_options.cache_from or self.cache_options.push:
                self.progress.note(
                    f"build cache: {self.remote.hits} steps from imported cache, "
                    f"{self.remote.bytes_downloaded} bytes of layers downloaded lazily")
            return result
        finally:
            self.remote.close()

    def _resolve_images(self) -> dict[str, tuple[Image, ImageConfig, list[Layer]]]:
        """Local images as usual; with a cache to import or a push, a registry base the store
        lacks is resolved without downloading its layers (fetched only if a step misses or the
        image is stored locally; mounted for a push)."""
        if not (self.cache_options.cache_from or self.cache_options.push):
            return super()._resolve_images()
        lazy: dict[str, tuple[Image, ImageConfig, list[Layer]]] = {}
        for index in self.plan.order:
            sp = self.plan.stages[index]
            refs = list(sp.images)
            if sp.base.image is not None and not sp.base.is_scratch:
                refs.append(sp.base.image)
            for ref in refs:
                if ref in lazy or not names_registry(ref):
                    continue
                try:
                    self.store.resolve(ref)
                    continue
                except NotFound:
                    pass
                lazy[ref] = self._lazy_image(ref)
        if not lazy:
            return super()._resolve_images()
        keep = self.plan
        try:  # resolve the rest (local images) through the engine's own path
            self.plan = _without_images(keep, set(lazy))
            out = super()._resolve_images()
        finally:
            self.plan = keep
        out.update(lazy)
        return out

    def _lazy_image(self, ref: str) -> tuple[Image, ImageConfig, list[Layer]]:
        desc, manifest, config_bytes = self.remote.resolve_image(
            ref, OciPlatform.parse(str(self.platform)))
        config = ImageConfig.from_json(json.loads(config_bytes))
        if len(config.diff_ids) != len(manifest.layers):
            raise InvalidArgument(f"{ref}: {len(manifest.layers)} layers but "
                                  f"{len(config.diff_ids)} diff_ids in its config")
        chains = chain_ids(config.diff_ids)
        layers = [Layer(d, str(diff), chain) for d, diff, chain in
                  zip(manifest.layers, config.diff_ids, chains, strict=True)]
        size = manifest.config.size + sum(d.size for d in manifest.layers)
        image = Image(desc, manifest.config.digest, config.created, size, time.time())
        self.progress.note(f"resolved {ref} ({desc.digest}); layers fetched only if needed")
        return image, config, layers

    def _stage(self, index: int) -> State:
        self._current.stage = index
        return super()._stage(index)

    def _dispatch(self, label: str, step: int, instr: Instruction, scoped: Any, state: State,
                  from_states: dict[str, State], no_cache: bool) -> tuple[State, bool]:
        names: list[str] = []
        if isinstance(instr, Copy) and instr.from_:
            names.append(instr.from_.lower())
        mounts: list[str] = []
        if isinstance(instr, Run):
            names.extend(str(m.from_).lower() for m in instr.mounts if getattr(m, "from_", None))
            mounts = [mount_dir_name(m.id or m.target or "") for m in instr.mounts
                      if m.type == "cache"]
            with self._mount_lock:
                self._mount_names.update(mounts)
        self._current.mounts = mounts
        self._current.sources = [from_states[n] for n in names if n in from_states]
        return super()._dispatch(label, step, instr, scoped, state, from_states, no_cache)

    def _cached_or(self, key: str, state: State, no_cache: bool,
                   run: Callable[[], State]) -> tuple[State, bool]:
        stage = getattr(self._current, "stage", self.plan.target)
        label = self.plan.stages[stage].label
        if not no_cache:
            rec = self.cache.get(key, self.store.content)
            if rec is None:
                rec = self.remote.lookup(key)
                if rec is not None and (rec.layer is None or self.store.content.exists(
                        rec.layer.descriptor.digest)):
                    self.cache.put(key, rec)  # nothing to fetch: keep it as a local record
            if rec is not None:
                cfg = ConfigState(ImageConfig.from_json(rec.config), cmd_set=rec.cmd_set)
                layers = state.layers
                if rec.layer is not None:
                    layers = state.with_layer(rec.layer.descriptor, rec.layer.diff_id)
                self.remote.note(key, state.key, stage, label, _created_by(rec.config), rec)
                return state.advance(key, cfg, layers), True
        self._ensure_inputs(state)
        restored = self.remote.restore_mounts(getattr(self._current, "mounts", []),
                                              self.root / "cache-mounts")
        if restored:
            self.progress.note("restored cache mounts from the imported cache: "
                               + ", ".join(restored))
        new, hit = super()._cached_or(key, state, True, run)
        layer = None
        if len(new.layers) > len(state.layers):
            top = new.layers[-1]
            layer = CachedLayer(top.descriptor, top.diff_id)
        rec = CacheRecord(layer, new.config.config.to_json(), new.config.cmd_set)
        self.remote.note(key, state.key, stage, label, _created_by(rec.config), rec)
        return new, hit

    def _ensure_inputs(self, state: State) -> None:
        """Fetch lazily imported blobs a running step may unpack: its own chain and the
        stages it reads (COPY --from, RUN --mount from=)."""
        wanted: list[Descriptor] = [layer.descriptor for layer in state.layers]
        for source in getattr(self._current, "sources", []):
            wanted.extend(layer.descriptor for layer in source.layers)
        self.remote.ensure_local(wanted)

    def _final_stages(self) -> list[int]:
        out = [self.plan.target]
        sp = self.plan.stages[self.plan.target]
        while sp.base.stage is not None:
            out.append(sp.base.stage)
            sp = self.plan.stages[sp.base.stage]
        return out

    def _write_image(self, final: State) -> Image:
        inline = any(c.type == "inline" for c in self.cache_options.cache_to)
        if not inline and all(self.store.content.exists(layer.descriptor.digest)
                              for layer in final.layers):
            image = super()._write_image(final)
            self.manifest_bytes = self.store.manifest_bytes(image)
            return image
        cfg = final.config
        if self.options.labels:
            cfg = cfg.set_labels(list(self.options.labels.items()))
        config_bytes = _finalize_config(cfg.config, self.options.source_date_epoch).to_bytes()
        if inline:
            config_bytes = with_inline_records(
                config_bytes, self.remote.inline_records(self._final_stages()))
        config_digest = Digest("sha256", hashlib.sha256(config_bytes).hexdigest())
        if not self.store.content.exists(config_digest):
            write_bytes(self.store.content, config_bytes)
        manifest = ImageManifest(
            mediatypes.OCI_MANIFEST,
            Descriptor(mediatypes.OCI_CONFIG, config_digest, len(config_bytes)),
            tuple(layer.descriptor for layer in final.layers))
        data = canonical_bytes(manifest.to_json())
        self.manifest_bytes = data
        missing = [d for d in manifest.layers if not self.store.content.exists(d.digest)]
        if missing and self.cache_options.push:
            # only pushed: the layers stay in the registry (mounted there, never downloaded)
            self.cache_result.loaded_locally = False
            self.progress.note(f"{len(missing)} cached layers stay in the registry: the image "
                               "is pushed but not stored locally")
            return Image(Descriptor(mediatypes.OCI_MANIFEST, Digest.from_bytes(data),
                                    len(data)), config_digest, None,
                         len(config_bytes) + sum(d.size for d in manifest.layers),
                         time.time(), tuple(normalize_name(t) for t in self.options.tags))
        if missing:
            self.remote.ensure_local(missing)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.store.db.image(digest) is not None and all(
                self.store.db.ref(normalize_name(t)) == digest for t in self.options.tags):
            return self.store.resolve(digest)
        return self.store.add_manifest(manifest, list(self.options.tags))

    def _export_and_push(self) -> None:
        finals = self._final_stages()
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
        for name in sorted(self._mount_names):
            data = base / name / "data"
            if data.is_dir():
                out.append(CacheMountBlob(name, export_mount(store.content, data)))
        return out


def _without_images(plan: BuildPlan, refs: set[str]) -> BuildPlan:
    """`plan` with the stages' references to `refs` hidden (already resolved lazily)."""
    stages = []
    for sp in plan.stages:
        base = sp.base
        if base.image in refs:
            base = replace(base, image=SCRATCH)
        stages.append(replace(sp, base=base, images=tuple(r for r in sp.images
                                                          if r not in refs)))
    return replace(plan, stages=tuple(stages))


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


