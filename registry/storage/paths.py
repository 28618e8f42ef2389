"""The single storage layout table: every driver path the registry uses is built here.

    blobs/<alg>/<2 hex>/<hex>/data     global content-addressed blobs (layers, configs, manifests)
    uploads/<uuid>/data                bytes received so far (its size is the session offset)
    uploads/<uuid>/committing          the data, moved aside by the closing PUT (no more appends)
    uploads/<uuid>/session.json        {"repo": ..., "started_at": ...}, written once at start
    metadata.db                        SQLite index (a local file next to the driver root)
    registry.lock                      held shared by servers, exclusively by garbage collection

Repository links, tags, manifest records and referrers live in the SQLite index, never in the
tree, so listing and deleting never walk storage.
"""

from __future__ import annotations

import re

from registry.oci import Digest
from registry.oci.errors import BlobUploadUnknown, RegistryError

BLOBS = "blobs"
UPLOADS = "uploads"
METADATA_DB = "metadata.db"
GENERATION_FILE = "metadata.gen"
ROOT_LOCK = "registry.lock"

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def blob_dir(digest: Digest) -> str:
    return f"{BLOBS}/{digest.algorithm}/{digest.encoded[:2]}/{digest.encoded}"


def blob_data(digest: Digest) -> str:
    return f"{blob_dir(digest)}/data"


def blob_digest(path: str) -> Digest | None:
    """The digest whose `blob_data` is `path`; None for any other path."""
    parts = path.split("/")
    if len(parts) != 5 or parts[0] != BLOBS or parts[4] != "data":
        return None
    try:
        digest = Digest.parse(f"{parts[1]}:{parts[3]}")
    except RegistryError:
        return None
    return digest if parts[2] == digest.encoded[:2] else None


def check_upload_id(upload_id: str) -> str:
    """Upload ids are 32 lowercase hex characters; anything else is unknown (never a path)."""
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise BlobUploadUnknown(detail={"uuid": upload_id[:100]})
    return upload_id


def upload_dir(upload_id: str) -> str:
    return f"{UPLOADS}/{check_upload_id(upload_id)}"


def upload_data(upload_id: str) -> str:
    return f"{upload_dir(upload_id)}/data"


def upload_committing(upload_id: str) -> str:
    return f"{upload_dir(upload_id)}/committing"


def upload_session(upload_id: str) -> str:
    return f"{upload_dir(upload_id)}/session.json"
