"""RemoteCache: imported build cache records, lazy blob fetches, and cache export.

The build engine talks to it through a narrow interface:

* `load(imports)` once before the build: reads cache manifests (registry or local directory)
  and the records they carry; only small JSON is downloaded here.
* `lookup(key)`: an imported record for a step key (its layer blob may not be local yet).
* `ensure_local(descriptors)`: download (or copy from a local cache directory) the blobs the
  store lacks, just before something needs their bytes (a step that misses, a local export).
  `bytes_downloaded` counts what moved.
* `note(...)`: every step the build resolved (hit or run), for export.
* `export(spec, final_stages)` after the build; `push(ref)` pushes an image whose layers may
  still be remote (mounted cross-repository instead of downloaded and uploaded again).

Thread-safe: stages run concurrently; each thread gets its own ImageStore handle.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from builder.cache import CacheRecord
from builder.content import read_small, write_blob, write_bytes
from builder.errors import NotFound, StrataError
from builder.images import ImageStore, ThreadStores
from builder.remotecache import layout
from builder.remotecache.format import (
    CacheDocument,
    CacheFormatError,
    CacheMountBlob,
    StepRecord,
    inline_records,
    is_cache_manifest,
    parse_config,
)
from builder.remotecache.spec import CacheExport, CacheImport
from builder.transfer import (
    RemoteOptions,
    fetch_blobs,
    parse_remote,
    record_sources,
    run_client,
)
from registry.oci import (
    Descriptor,
    Digest,
    ImageIndex,
    ImageManifest,
    Platform,
    mediatypes,
    parse_manifest,
)
from registry.oci.errors import RegistryError


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where an imported blob can be fetched from: a registry ref or a layout directory."""

    ref: str | None = None
    directory: Path | None = None


@dataclass(slots=True)
class ExportReport:
    target: str
    records: int
    manifest: Digest | None = None
    bytes_uploaded: int = 0
    bytes_written: int = 0
    blobs: int = 0


@dataclass(slots=True)
class _Noted:
    record: StepRecord
    stage_index: int


@dataclass(slots=True)
class _State:
    records: dict[str, StepRecord] = field(default_factory=dict)
    origins: dict[str, _Origin] = field(default_factory=dict)
    noted: dict[str, _Noted] = field(default_factory=dict)
    mounts: dict[str, Descriptor] = field(default_factory=dict)  # cache mount name -> blob


class RemoteCache:
    """Imported records + lazy blobs + export, for one build on one store root."""

    def __init__(self, store_root: Path, options: RemoteOptions | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.root = Path(store_root)
        self.options = options or RemoteOptions()
        self.log = log or (lambda _m: None)
        self.bytes_downloaded = 0
        self.hits = 0
        self._s = _State()
        self._lock = threading.RLock()
        self._stores = ThreadStores(self.root)

    # ------------------------------------------------------------------ plumbing

    def store(self) -> ImageStore:
        """This thread's ImageStore on the build's store root."""
        return self._stores.get()

    def close(self) -> None:
        self._stores.close()

    @property
    def records(self) -> dict[str, StepRecord]:
        return self._s.records

    # ------------------------------------------------------------------ import

    def load(self, imports: Sequence[CacheImport]) -> int:
        """Read every source's records; a source that is missing or unreadable is reported
        and skipped (a cold cache must never fail the build). Returns records loaded."""
        total = 0
        for spec in imports:
            where = spec.ref or str(spec.src)
            try:
                n = self._load_registry(spec.ref, spec.cache_mounts) \
                    if spec.type == "registry" and spec.ref \
                    else self._load_local(spec.src, spec.cache_mounts) if spec.src else 0
            except (StrataError, RegistryError, CacheFormatError, OSError, ValueError,
                    KeyError, TypeError) as exc:
                # RegistryError: a malformed digest or descriptor in the remote JSON
                self.log(f"cache import from {where} skipped: {exc}")
                continue
            self.log(f"imported {n} build cache records from {where}")
            total += n
        return total

    def _add(self, records: dict[str, StepRecord], origin: _Origin,
             mounts: Sequence[CacheMountBlob] = ()) -> int:
        with self._lock:
            for mount in mounts:
                self._s.mounts.setdefault(mount.id, mount.descriptor)
                self._s.origins.setdefault(str(mount.descriptor.digest), origin)
            for key, rec in records.items():
                self._s.records.setdefault(key, rec)
                if rec.record.layer is not None:
                    self._s.origins.setdefault(str(rec.record.layer.descriptor.digest), origin)
        return len(records)

    def _load_registry(self, ref: str, with_mounts: bool) -> int:
        parsed = parse_remote(ref)
        assert parsed.registry is not None

        async def resolve() -> bytes:
            async with self.options.client(parsed.registry or "") as client:
                _desc, data = await client.resolve(parsed.repository, parsed.reference)
                return data

        data = run_client(resolve())
        manifest = json.loads(data)
        if manifest.get("mediaType") in mediatypes.INDEXES or "manifests" in manifest:
            raise CacheFormatError(f"{ref} is an index, not a cache manifest or an image")
        config_desc = Descriptor.from_json(manifest["config"])
        store = self.store()
        if not store.content.exists(config_desc.digest):
            fetch_blobs(store, ref, [config_desc], options=self.options)
        config = read_small(store.content, config_desc.digest)
        mounts: Sequence[CacheMountBlob] = ()
        if is_cache_manifest(manifest):
            doc = parse_config(config)
            records = dict(doc.records)
            mounts = doc.cache_mounts if with_mounts else ()
        else:  # an image pushed with --cache-to type=inline
            records = inline_records(json.loads(config))
            if not records:
                raise CacheFormatError(f"{ref} is an image without inline build cache")
        digests = [Digest.parse(str(d["digest"])) for d in manifest.get("layers", [])]
        record_sources(store, parsed.registry, parsed.repository, digests)
        return self._add(records, _Origin(ref=ref), mounts)

    def _load_local(self, src: Path, with_mounts: bool) -> int:
        _manifest, config = layout.read_layout(src)
        doc = parse_config(config)
        return self._add(dict(doc.records), _Origin(directory=src),
                         doc.cache_mounts if with_mounts else ())

    def resolve_image(self, ref: str, platform: Platform) -> tuple[Descriptor, ImageManifest,
                                                                   bytes]:
        """Resolve a registry image for `platform` without downloading its layers: returns
        (manifest descriptor, manifest, config bytes). The layers become lazily fetchable (and
        mountable for a push to the same registry)."""
        parsed = parse_remote(ref)
        assert parsed.registry is not None

        async def resolve() -> tuple[Descriptor, bytes]:
            async with self.options.client(parsed.registry or "") as client:
                desc, data = await client.resolve(parsed.repository, parsed.reference)
                parsed_manifest = parse_manifest(data, desc.media_type)
                if isinstance(parsed_manifest, ImageIndex):
                    child = parsed_manifest.select(platform)
                    if child is None:
                        raise NotFound(f"{ref}: no image for platform {platform}")
                    desc, data = await client.resolve(parsed.repository, str(child.digest))
                return desc, data

        desc, data = run_client(resolve())
        manifest = parse_manifest(data, desc.media_type)
        if not isinstance(manifest, ImageManifest):
            raise CacheFormatError(f"{ref}: not an image manifest")
        store = self.store()
        if not store.content.exists(manifest.config.digest):
            fetch_blobs(store, ref, [manifest.config], options=self.options)
        config = read_small(store.content, manifest.config.digest)
        record_sources(store, parsed.registry, parsed.repository,
                       [d.digest for d in manifest.layers])
        with self._lock:
            for layer in manifest.layers:
                self._s.origins.setdefault(str(layer.digest), _Origin(ref=ref))
        return Descriptor(manifest.media_type, Digest.from_bytes(data), len(data)), manifest, \
            config

    def lookup(self, key: str) -> CacheRecord | None:
        """The imported record for `key`, if any (its blob may still be remote)."""
        rec = self._s.records.get(key)
        if rec is None:
            return None
        with self._lock:
            self.hits += 1
        return rec.record

    def restore_mounts(self, names: Iterable[str], base: Path) -> list[str]:
        """Restore imported cache mounts among `names` that this runner lacks (downloading
        their blobs now); returns the names restored."""
        from builder.remotecache.mounts import restore_mount

        done = []
        for name in names:
            desc = self._s.mounts.get(name)
            if desc is None or (base / name / "data").exists():
                continue
            self.ensure_local([desc])
            if restore_mount(self.store().content, desc, base, name):
                done.append(name)
        return done

    # ------------------------------------------------------------------ lazy blobs

    def ensure_local(self, descriptors: Iterable[Descriptor]) -> int:
        """Fetch the blobs the store lacks from where they were imported; returns bytes
        moved. Blobs of unknown origin that are missing raise NotFound."""
        store = self.store()
        with self._lock:
            missing = [d for d in dict.fromkeys(descriptors)
                       if not store.content.exists(d.digest)]
            if not missing:
                return 0
            by_ref: dict[str, list[Descriptor]] = {}
            moved = 0
            for desc in missing:
                origin = self._s.origins.get(str(desc.digest))
                if origin is None:
                    raise NotFound(f"blob {desc.digest} is neither in the store nor in an "
                                   "imported build cache")
                if origin.ref is not None:
                    by_ref.setdefault(origin.ref, []).append(desc)
                elif origin.directory is not None:
                    path = layout.blob_path(origin.directory, desc.digest)
                    with open(path, "rb") as f:
                        write_blob(store.content, f"cache-{desc.digest.encoded[:16]}", f,
                                   expected=desc.digest, expected_size=desc.size)
                    moved += desc.size
            for ref, descs in by_ref.items():
                moved += fetch_blobs(store, ref, descs, options=self.options)
            self.bytes_downloaded += moved
            return moved

    # ------------------------------------------------------------------ export

    def note(self, key: str, parent: str | None, stage_index: int, stage: str,
             created_by: str, record: CacheRecord) -> None:
        """Remember a step this build resolved (hit or run) for export."""
        with self._lock:
            self._s.noted.setdefault(key, _Noted(
                StepRecord(key, parent, stage, created_by, record), stage_index))

    def document(self, mode: str, final_stages: Iterable[int]) -> CacheDocument:
        """The records to export: `min` keeps the final image's stages, `max` every stage."""
        finals = set(final_stages)
        with self._lock:
            chosen = {k: n.record for k, n in self._s.noted.items()
                      if mode == "max" or n.stage_index in finals}
        return CacheDocument(chosen, mode)

    def inline_records(self, final_stages: Iterable[int]) -> list[StepRecord]:
        return list(self.document("min", final_stages).records.values())

    def export(self, spec: CacheExport, final_stages: Iterable[int],
               extra: CacheDocument | None = None) -> ExportReport:
        """Export to a registry (incremental) or a local directory; inline is handled when the
        image config is written (see format.with_inline_records)."""
        doc = self.document(spec.mode, final_stages)
        if extra is not None:
            doc = CacheDocument(doc.records, doc.mode, extra.cache_mounts)
        if spec.compression is not None:
            from builder.remotecache.recompress import recompress

            doc = recompress(doc, spec.compression, self.store().content, self.ensure_local)
        config = doc.config_bytes()
        manifest = doc.manifest(config)
        from registry.oci import canonical_bytes

        data = canonical_bytes(manifest.to_json())
        store = self.store()
        if not store.content.exists(Digest.from_bytes(config)):
            write_bytes(store.content, config)
        if spec.type == "registry":
            assert spec.ref is not None
            from builder.remotecache.push import push_lazy

            digest, stats = push_lazy(store, spec.ref, data, manifest.media_type,
                                      self.ensure_local, self.options)
            return ExportReport(spec.ref, len(doc.records), digest, stats.bytes_uploaded,
                                blobs=len(manifest.layers))
        if spec.type == "local":
            assert spec.dest is not None
            self.ensure_local(manifest.layers)
            desc = Descriptor(manifest.media_type, Digest.from_bytes(data), len(data))
            written = layout.write_layout(spec.dest, store.content,
                                          [manifest.config, *manifest.layers], data, desc)
            return ExportReport(str(spec.dest), len(doc.records), desc.digest,
                                bytes_written=written, blobs=len(manifest.layers))
        return ExportReport("inline", len(doc.records))
