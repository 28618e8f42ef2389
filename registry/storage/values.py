"""Value types the storage layer hands to its callers (exported by registry.storage)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from registry.oci import Digest
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
class StoredManifest:
    info: ManifestInfo
    data: bytes  # the exact bytes pushed


@dataclass(frozen=True, slots=True)
class StoreConfig:
    root: Path
    delete_enabled: bool = False
    upload_ttl_seconds: float = 7 * 24 * 3600
    max_manifest_bytes: int = MAX_MANIFEST_BYTES


ManifestListener = Callable[[str, str | None, ManifestInfo, bool], Awaitable[None] | None]
"""`listener(repo, tag_or_None, info, deleted)`, called after each committed manifest change."""
