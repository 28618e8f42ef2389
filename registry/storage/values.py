"""Value types the storage layer hands to its callers (exported by registry.storage)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from registry.oci import Descriptor, Digest
from registry.oci.manifest import MAX_MANIFEST_BYTES


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: Digest
    size: int
    path: Path | None  # local file for sendfile; None when the driver has no local files
    media_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class UploadStatus:
    uuid: str
    repo: str
    offset: int  # bytes received so far (Range: 0-(offset-1))
    started_at: float


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    digest: Digest
    media_type: str
    size: int
    subject: Digest | None = None


@dataclass(frozen=True, slots=True)
class ReferrersPage:
    """Referrers in digest order; `more` when others follow the last one."""

    descriptors: list[Descriptor]
    more: bool = False


@dataclass(frozen=True, slots=True)
class StoredManifest:
    info: ManifestInfo
    data: bytes  # the exact bytes pushed


@dataclass(frozen=True, slots=True)
class WriteCondition:
    """The precondition of a conditional manifest PUT or DELETE (RFC 9110 §13.1.1, §13.1.2)
    on the manifest `reference` (a tag or a digest) names when the write happens.

    `if_match` / `if_none_match` hold the digests an If-Match / If-None-Match header listed
    ("*" for any manifest), or are None without that header. The entity tag of a manifest is
    its digest, as the registry sends in ETag.
    """

    reference: str
    if_match: frozenset[str] | None = None
    if_none_match: frozenset[str] | None = None

    def holds(self, current: str | None) -> bool:
        """Whether the write may go on when `reference` names `current` (None: nothing)."""
        if self.if_match is not None and (
                current is None or ("*" not in self.if_match and current not in self.if_match)):
            return False
        return not (self.if_none_match is not None and current is not None
                    and ("*" in self.if_none_match or current in self.if_none_match))


@dataclass(frozen=True, slots=True)
class StoreConfig:
    root: Path
    delete_enabled: bool = False
    upload_ttl_seconds: float = 7 * 24 * 3600
    max_manifest_bytes: int = MAX_MANIFEST_BYTES


ManifestListener = Callable[[str, str | None, ManifestInfo, bool], Awaitable[None] | None]
"""`listener(repo, tag_or_None, info, deleted)`, called after each committed manifest change."""
