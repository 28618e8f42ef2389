"""A directory cache as an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`).

Export writes blobs missing from the directory (tmp file, fsync, rename), then points the
index entry named `latest` at the cache manifest; import reads that entry back.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from builder.content import CHUNK, LocalContentStore
from builder.errors import InvalidArgument, NotFound
from builder.fsutil import atomic_writer
from builder.remotecache.format import ARTIFACT_TYPE, MAX_CONFIG_BYTES
from registry.oci import Descriptor, Digest, mediatypes

REF_NAME = "org.opencontainers.image.ref.name"
CACHE_TAG = "latest"


def blob_path(root: Path, digest: Digest) -> Path:
    if digest.algorithm != "sha256" or not all(c in "0123456789abcdef" for c in digest.encoded):
        raise InvalidArgument(f"unsupported digest {digest}")
    return root / "blobs" / digest.algorithm / digest.encoded


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, sync_dir=False) as f:
        write(f)


def write_layout(dest: Path, content: LocalContentStore, blobs: Iterable[Descriptor],
                 manifest: bytes, manifest_desc: Descriptor) -> int:
    """Copy `blobs` (all present in `content`) the directory lacks, then the manifest and the
    index. Returns the bytes written for blobs."""
    dest.mkdir(parents=True, exist_ok=True)
    written = 0
    for desc in blobs:
        target = blob_path(dest, desc.digest)
        if target.exists() and target.stat().st_size == desc.size:
            continue
        src = content.blob_path(desc.digest)

        def copy(out: BinaryIO, src: Path = src) -> None:
            with open(src, "rb") as f:
                shutil.copyfileobj(f, out, CHUNK)

        _atomic(target, copy)
        written += desc.size
    _atomic(blob_path(dest, manifest_desc.digest), lambda f: f.write(manifest))
    layout = dest / "oci-layout"
    if not layout.exists():
        _atomic(layout, lambda f: f.write(json.dumps(
            {"imageLayoutVersion": mediatypes.OCI_LAYOUT_VERSION}).encode()))
    index_path = dest / "index.json"
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
                             "manifests": []}
    if index_path.exists():
        with contextlib.suppress(ValueError):
            index = json.loads(index_path.read_bytes())
    entries = [m for m in index.get("manifests", [])
               if (m.get("annotations") or {}).get(REF_NAME) != CACHE_TAG]
    entry = manifest_desc.to_json()
    entry["artifactType"] = ARTIFACT_TYPE
    entry["annotations"] = {REF_NAME: CACHE_TAG}
    index["manifests"] = [*entries, entry]
    _atomic(index_path, lambda f: f.write(json.dumps(index, indent=2).encode()))
    return written


def read_layout(src: Path) -> tuple[bytes, bytes]:
    """(manifest bytes, config bytes) of the cache the directory holds (NotFound if none)."""
    index_path = src / "index.json"
    if not index_path.is_file():
        raise NotFound(f"{src} holds no build cache (no index.json)")
    try:
        index = json.loads(index_path.read_bytes())
    except ValueError as exc:
        raise InvalidArgument(f"{index_path}: not JSON: {exc}") from None
    entries = [m for m in index.get("manifests", []) if isinstance(m, dict)]
    chosen = next((m for m in reversed(entries)
                   if (m.get("annotations") or {}).get(REF_NAME) == CACHE_TAG), None) or next(
        (m for m in reversed(entries) if m.get("artifactType") == ARTIFACT_TYPE), None)
    if chosen is None:
        raise NotFound(f"{src} holds no build cache manifest")
    manifest = _read_small(src, Digest.parse(str(chosen["digest"])))
    config_digest = Digest.parse(str(json.loads(manifest)["config"]["digest"]))
    return manifest, _read_small(src, config_digest)


def _read_small(root: Path, digest: Digest) -> bytes:
    path = blob_path(root, digest)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise InvalidArgument(f"{path} is too large for a manifest or config")
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"blob {digest} missing from {root}") from None
    if Digest.from_bytes(data) != digest:
        raise InvalidArgument(f"{path}: content does not match its digest")
    return data
