"""Image manifests, indexes and image configs: parse, validate, render canonical bytes.

A manifest's digest is always the digest of the exact bytes received (never of a re-encoding);
`canonical_bytes` is only for manifests we create ourselves.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

from registry.oci import mediatypes as mt
from registry.oci.descriptor import Descriptor, Platform, annotations_of
from registry.oci.errors import ManifestInvalid, ManifestTooLarge

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def canonical_bytes(obj: Any) -> bytes:
    """Deterministic JSON: sorted keys, no insignificant whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _document_json(doc: ImageManifest | ImageIndex, body: dict[str, Any]) -> dict[str, Any]:
    """The JSON shape both manifests and indexes share, `body` (their own fields) in the
    middle: schemaVersion, mediaType, artifactType?, body..., subject?, annotations?"""
    out: dict[str, Any] = {"schemaVersion": 2, "mediaType": doc.media_type}
    if doc.artifact_type:
        out["artifactType"] = doc.artifact_type
    out.update(body)
    if doc.subject is not None:
        out["subject"] = doc.subject.to_json()
    if doc.annotations:
        out["annotations"] = dict(doc.annotations)
    return out


@dataclass(frozen=True, slots=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = field(default=None, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        return _document_json(self, {
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        })

    def blobs(self) -> tuple[Descriptor, ...]:
        """Blobs that must exist in the repository (foreign layers with URLs excepted)."""
        return (self.config,) + tuple(
            d for d in self.layers if not (d.urls and _is_foreign(d.media_type)))

    def effective_artifact_type(self) -> str | None:
        """artifactType, else the config media type (the referrers API rule)."""
        return self.artifact_type or self.config.media_type


@dataclass(frozen=True, slots=True)
class ImageIndex:
    media_type: str
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = field(default=None, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        return _document_json(self, {"manifests": [m.to_json() for m in self.manifests]})

    def select(self, wanted: Platform) -> Descriptor | None:
        """The first child manifest whose platform satisfies `wanted`."""
        for desc in self.manifests:
            if desc.platform is not None and wanted.matches(desc.platform):
                return desc
        return None

    def effective_artifact_type(self) -> str | None:
        return self.artifact_type


Manifest = ImageManifest | ImageIndex


def _is_foreign(media_type: str) -> bool:
    return "nondistributable" in media_type or "foreign" in media_type


def detect_media_type(obj: dict[str, Any], content_type: str | None = None) -> str:
    """The manifest's media type: the body's mediaType, checked against Content-Type."""
    body_type = obj.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise ManifestInvalid("mediaType must be a string")
    declared = (content_type or "").split(";")[0].strip() or None
    if body_type and declared and declared not in (body_type, "application/json"):
        raise ManifestInvalid(
            f"mediaType {body_type!r} in the body does not match Content-Type {declared!r}")
    media_type = body_type or declared
    if media_type in (None, "application/json"):
        # OCI allows the field to be absent: infer from the shape.
        media_type = mt.OCI_INDEX if "manifests" in obj else mt.OCI_MANIFEST
    return media_type


def parse_manifest(data: bytes, content_type: str | None = None) -> Manifest:
    """Parse and validate manifest bytes; ManifestInvalid (ManifestTooLarge over the limit)."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestTooLarge(f"manifest is {len(data)} bytes; the limit is {MAX_MANIFEST_BYTES}")
    try:
        obj = json.loads(data)
    except ValueError as exc:  # bad UTF-8 or JSON, an integer of over 4,300 digits
        raise ManifestInvalid(f"manifest is not valid JSON: {str(exc)[:200]}") from None
    except RecursionError:  # json nests one Python call per level
        raise ManifestInvalid("manifest JSON is nested too deeply") from None
    if not isinstance(obj, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    media_type = detect_media_type(obj, content_type)
    if media_type in (mt.DOCKER_MANIFEST_V1, mt.DOCKER_MANIFEST_V1_SIGNED):
        raise ManifestInvalid("Docker schema 1 manifests are not supported (schema 2 and OCI are)",
                              detail={"mediaType": media_type})
    if media_type not in mt.MANIFESTS:
        raise ManifestInvalid(f"unknown manifest media type {media_type!r}")
    version = obj.get("schemaVersion")
    if type(version) is not int or version != 2:  # (not 2.0, which Go clients refuse)
        raise ManifestInvalid("schemaVersion must be the integer 2")
    if _LONE_SURROGATE_ESCAPE.search(data) and not _is_text(obj):
        raise ManifestInvalid("manifest holds a lone UTF-16 surrogate escape, which is no text")
    subject = _optional_descriptor(obj, "subject")
    artifact_type = obj.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid("artifactType must be a string")
    annotations = annotations_of(obj)
    if media_type in mt.INDEXES:
        if "config" in obj or "layers" in obj:
            raise ManifestInvalid("an index has no config or layers")
        children = obj.get("manifests")
        if not isinstance(children, list):
            raise ManifestInvalid("index needs a manifests array")
        return ImageIndex(media_type, tuple(Descriptor.from_json(c) for c in children),
                          subject, artifact_type, annotations)
    if "manifests" in obj:
        raise ManifestInvalid("an image manifest has no manifests array")
    if "config" not in obj:
        raise ManifestInvalid("image manifest needs a config descriptor")
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise ManifestInvalid("image manifest needs a layers array")
    return ImageManifest(media_type, Descriptor.from_json(obj["config"]),
                         tuple(Descriptor.from_json(x) for x in layers), subject,
                         artifact_type, annotations)


OFF_LOOP_BYTES = 256 * 1024
"""Manifests from this size on are parsed in a worker thread (parse_manifest_off_loop): the
JSON of a 4 MiB manifest costs 0.1-0.2 s of CPU, which no event loop should spend."""


async def parse_manifest_off_loop(data: bytes, content_type: str | None = None) -> Manifest:
    """parse_manifest, in the default executor for OFF_LOOP_BYTES and more."""
    if len(data) < OFF_LOOP_BYTES:
        return parse_manifest(data, content_type)
    return await asyncio.get_running_loop().run_in_executor(
        None, parse_manifest, data, content_type)


_LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # (or the start of a pair)


def _is_text(obj: Any) -> bool:
    """Whether every string in `obj` is Unicode text: JSON lets `"\\ud800"` through, which
    no UTF-8 encoder (SQLite's included) takes."""
    try:
        json.dumps(obj, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _optional_descriptor(obj: dict[str, Any], key: str) -> Descriptor | None:
    value = obj.get(key)
    return None if value is None else Descriptor.from_json(value)


# --------------------------------------------------------------------------- image config


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in (("created", self.created), ("created_by", self.created_by),
                           ("author", self.author), ("comment", self.comment)):
            if value is not None:
                out[key] = value
        if self.empty_layer:
            out["empty_layer"] = True
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> HistoryEntry:
        return cls(obj.get("created"), obj.get("created_by"), obj.get("author"),
                   obj.get("comment"), bool(obj.get("empty_layer", False)))


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The OCI image config (plus Docker's Shell/Healthcheck/OnBuild extensions).

    `config` holds the execution parameters under their JSON names (Env, Cmd, ...); `extra`
    keeps unknown top-level fields so a config read and written back loses nothing.
    """

    architecture: str
    os: str
    diff_ids: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    history: tuple[HistoryEntry, ...] = ()
    created: str | None = None
    author: str | None = None
    variant: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        if self.created is not None:
            out["created"] = self.created
        if self.author is not None:
            out["author"] = self.author
        out["architecture"] = self.architecture
        if self.variant:
            out["variant"] = self.variant
        out["os"] = self.os
        out["config"] = {k: v for k, v in self.config.items() if v is not None}
        out["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        if self.history:
            out["history"] = [h.to_json() for h in self.history]
        return out

    def to_bytes(self) -> bytes:
        return canonical_bytes(self.to_json())

    @classmethod
    def from_json(cls, obj: Any) -> ImageConfig:
        if not isinstance(obj, dict):
            raise ManifestInvalid("image config must be a JSON object")
        rootfs = obj.get("rootfs") or {}
        if not isinstance(rootfs, dict) or rootfs.get("type", "layers") != "layers":
            raise ManifestInvalid("image config rootfs.type must be 'layers'")
        known = {"created", "author", "architecture", "variant", "os", "config", "rootfs",
                 "history"}
        return cls(
            architecture=str(obj.get("architecture", "")),
            os=str(obj.get("os", "")),
            diff_ids=tuple(rootfs.get("diff_ids") or ()),
            config=dict(obj.get("config") or {}),
            history=tuple(HistoryEntry.from_json(h) for h in obj.get("history") or ()),
            created=obj.get("created"),
            author=obj.get("author"),
            variant=obj.get("variant"),
            extra={k: v for k, v in obj.items() if k not in known},
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageConfig:
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise ManifestInvalid(f"image config is not valid JSON: {str(exc)[:200]}") from None
        except RecursionError:
            raise ManifestInvalid("image config JSON is nested too deeply") from None
        return cls.from_json(obj)

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)
