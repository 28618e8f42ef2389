"""Descriptor and Platform values (OCI image spec descriptor.md, image-index.md)."""

from __future__ import annotations

import platform as _host
from dataclasses import dataclass, field
from typing import Any

from registry.oci.digest import Digest
from registry.oci.errors import ManifestInvalid, Unsupported

MAX_SIZE = 2 ** 63 - 1  # descriptor sizes are int64 (image-spec descriptor.md)

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm", "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()

    @classmethod
    def host(cls) -> Platform:
        machine = _host.machine()
        arch = _ARCH.get(machine, machine)
        variant = "v7" if machine == "armv7l" else ("v6" if machine == "armv6l" else None)
        return cls("linux", arch, variant)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`os/arch[/variant]` as in `--platform linux/arm64/v8`."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def matches(self, other: Platform) -> bool:
        """True when `other` (a manifest's platform) satisfies this wanted platform."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        return self.variant is None or other.variant in (None, self.variant)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Platform:
        if not isinstance(obj, dict) or not isinstance(obj.get("os"), str) \
                or not isinstance(obj.get("architecture"), str):
            raise ManifestInvalid("platform needs string fields os and architecture")
        return cls(obj["os"], obj["architecture"], _optional_str(obj, "variant"),
                   _optional_str(obj, "os.version"), _strings(obj, "os.features"))


@dataclass(frozen=True, slots=True)
class Descriptor:
    """Points at content: media type, digest and size, plus optional extras."""

    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str] | None = field(default=None, compare=False, hash=False)
    platform: Platform | None = None
    artifact_type: str | None = None
    urls: tuple[str, ...] = ()
    data: str | None = field(default=None, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest),
                               "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.data is not None:
            out["data"] = self.data
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Descriptor:
        if not isinstance(obj, dict):
            raise ManifestInvalid("descriptor must be a JSON object")
        media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise ManifestInvalid("descriptor mediaType must be a non-empty string")
        if not isinstance(digest, str):
            raise ManifestInvalid("descriptor digest must be a string")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
            raise ManifestInvalid("descriptor size must be an integer from 0 to 2^63-1")
        try:
            parsed = Digest.parse(digest)
        except Unsupported as exc:  # an unknown algorithm: a bad manifest, not a 405
            raise ManifestInvalid(f"descriptor {exc.message}") from None
        platform = obj.get("platform")
        return cls(
            media_type=media_type,
            digest=parsed,
            size=size,
            annotations=annotations_of(obj),
            platform=Platform.from_json(platform) if platform is not None else None,
            artifact_type=_optional_str(obj, "artifactType"),
            urls=_strings(obj, "urls"),
            data=_optional_str(obj, "data"),
        )


def annotations_of(obj: dict[str, Any]) -> dict[str, str] | None:
    """The object's `annotations`: a map of strings to strings, or None when absent."""
    annotations = obj.get("annotations")
    if annotations is not None and (not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())):
        raise ManifestInvalid("annotations must map strings to strings")
    return annotations


def _optional_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ManifestInvalid(f"{key} must be a string")
    return value


def _strings(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestInvalid(f"{key} must be an array of strings")
    return tuple(value)
