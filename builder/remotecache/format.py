"""The build cache manifest: a plain OCI image manifest any OCI 1.1 registry accepts (pure).

    {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "artifactType": "application/vnd.strata.buildcache.v1+json",
     "config": {"mediaType": "application/vnd.strata.buildcache.config.v1+json", ...},
     "layers": [every cached layer blob, then one tar per exported cache mount],
     "annotations": {"dev.strata.buildcache.records": "<n>", ...}}

The config blob (canonical JSON) maps step cache keys to what the step produced::

    {"version": 1, "keyVersion": <builder.cachekey.KEY_VERSION>, "mode": "min"|"max",
     "records": {"sha256:<step key>": {
         "parent": "<parent step key>" | null, "stage": "<stage name or index>",
         "createdBy": "<instruction text>", "cmdSet": bool,
         "layer": {"mediaType", "digest", "size", "diff_id"} | null,
         "config": {<the full image config after the step>}}},
     "cacheMounts": [{"id": "<cache mount id>", "digest": "sha256:...", "size": N,
                      "mediaType": "...tar+gzip"}]}

Inline cache: the same ``records`` object sits under the top-level key
``dev.strata.buildcache.v1`` of the pushed image's own config, and its layers are the image's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from builder.cache import CachedLayer, CacheRecord
from builder.cachekey import KEY_VERSION
from registry.oci import Descriptor, Digest, ImageManifest, canonical_bytes, mediatypes
from registry.oci.errors import RegistryError

ARTIFACT_TYPE = "application/vnd.strata.buildcache.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.strata.buildcache.config.v1+json"
INLINE_CONFIG_KEY = "dev.strata.buildcache.v1"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 64 << 20


class CacheFormatError(ValueError):
    """A cache manifest or config this version cannot read."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One exported step: its key, parent key, stage and result."""

    key: str
    parent: str | None
    stage: str
    created_by: str
    record: CacheRecord

    def to_json(self) -> dict[str, Any]:
        rec = self.record
        return {"parent": self.parent, "stage": self.stage, "createdBy": self.created_by,
                "cmdSet": rec.cmd_set, "layer": rec.layer.to_json() if rec.layer else None,
                "config": rec.config}

    @classmethod
    def from_json(cls, key: str, obj: Any) -> StepRecord:
        if not isinstance(obj, dict):
            raise CacheFormatError(f"record {key}: not an object")
        try:
            layer = CachedLayer.from_json(obj["layer"]) if obj.get("layer") else None
            config = obj.get("config") or {}
            if not isinstance(config, dict):
                raise CacheFormatError(f"record {key}: config is not an object")
            return cls(key, obj.get("parent"), str(obj.get("stage", "")),
                       str(obj.get("createdBy", "")),
                       CacheRecord(layer, config, bool(obj.get("cmdSet", False))))
        except (KeyError, TypeError, ValueError) as exc:
            raise CacheFormatError(f"record {key}: {exc}") from None


@dataclass(frozen=True, slots=True)
class CacheMountBlob:
    """A `RUN --mount=type=cache` directory exported as a tar layer."""

    id: str
    descriptor: Descriptor

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.descriptor.to_json()}


@dataclass(frozen=True, slots=True)
class CacheDocument:
    """What a cache manifest carries: step records (and exported cache mounts)."""

    records: Mapping[str, StepRecord]
    mode: str = "max"
    cache_mounts: tuple[CacheMountBlob, ...] = ()

    def layer_descriptors(self) -> list[Descriptor]:
        """Every distinct cached layer blob, in record order, then cache-mount blobs."""
        seen: set[str] = set()
        out: list[Descriptor] = []
        for rec in self.records.values():
            layer = rec.record.layer
            if layer is not None and str(layer.descriptor.digest) not in seen:
                seen.add(str(layer.descriptor.digest))
                out.append(layer.descriptor)
        for mount in self.cache_mounts:
            if str(mount.descriptor.digest) not in seen:
                seen.add(str(mount.descriptor.digest))
                out.append(mount.descriptor)
        return out

    def records_json(self) -> dict[str, Any]:
        return {k: self.records[k].to_json() for k in sorted(self.records)}

    def config_bytes(self) -> bytes:
        doc = {"version": FORMAT_VERSION, "keyVersion": KEY_VERSION, "mode": self.mode,
               "records": self.records_json(),
               "cacheMounts": [m.to_json() for m in self.cache_mounts]}
        return canonical_bytes(doc)

    def manifest(self, config: bytes) -> ImageManifest:
        desc = Descriptor(CONFIG_MEDIA_TYPE, Digest.from_bytes(config), len(config))
        return ImageManifest(
            mediatypes.OCI_MANIFEST, desc, tuple(self.layer_descriptors()),
            artifact_type=ARTIFACT_TYPE,
            annotations={"dev.strata.buildcache.records": str(len(self.records)),
                         "dev.strata.buildcache.mode": self.mode})


def records_from_json(obj: Any) -> dict[str, StepRecord]:
    if not isinstance(obj, dict):
        raise CacheFormatError("records is not an object")
    return {str(k): StepRecord.from_json(str(k), v) for k, v in obj.items()}


def parse_config(data: bytes) -> CacheDocument:
    """Decode a cache config blob. Records written under another key version are dropped
    (their keys could never match), which leaves an empty but valid document."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CacheFormatError(f"cache config is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise CacheFormatError("unsupported build cache config version "
                               f"{doc.get('version') if isinstance(doc, dict) else '?'}")
    if doc.get("keyVersion") != KEY_VERSION:
        return CacheDocument({}, str(doc.get("mode", "max")))
    mounts: list[CacheMountBlob] = []
    for m in doc.get("cacheMounts") or []:
        try:
            mounts.append(CacheMountBlob(str(m["id"]), Descriptor(
                str(m["mediaType"]), Digest.parse(str(m["digest"])), int(m["size"]))))
        except (KeyError, TypeError, ValueError, RegistryError) as exc:
            raise CacheFormatError(f"cache mount entry: {exc}") from None
    return CacheDocument(records_from_json(doc.get("records") or {}),
                         str(doc.get("mode", "max")), tuple(mounts))


def inline_records(image_config: Mapping[str, Any]) -> dict[str, StepRecord]:
    """Records an image carries inline (empty when it carries none or another key version)."""
    value = image_config.get(INLINE_CONFIG_KEY)
    if not isinstance(value, dict) or value.get("keyVersion") != KEY_VERSION:
        return {}
    return records_from_json(value.get("records") or {})


def with_inline_records(image_config: bytes, records: Iterable[StepRecord]) -> bytes:
    """The image config bytes with `records` added under INLINE_CONFIG_KEY (canonical)."""
    doc = json.loads(image_config)
    doc[INLINE_CONFIG_KEY] = {"keyVersion": KEY_VERSION,
                              "records": {r.key: r.to_json() for r in records}}
    return canonical_bytes(doc)


def is_cache_manifest(manifest: Mapping[str, Any]) -> bool:
    return manifest.get("artifactType") == ARTIFACT_TYPE or (
        isinstance(manifest.get("config"), dict)
        and manifest["config"].get("mediaType") == CONFIG_MEDIA_TYPE)
