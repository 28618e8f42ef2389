"""`RUN --mount=type=cache` directories as cache blobs: export as tar+gzip, restore on import.

A cache mount lives in `<root>/cache-mounts/<name>/data` (builder.steps.run names it after the
mount id). Export writes one deterministic tar (sorted entries, gzip mtime 0) per directory, so
an unchanged directory gives the same digest and is not uploaded again. Restore unpacks the blob
through the layer applier (path-escape checks included) into a fresh directory and renames it
into place, only when the runner has no such directory yet.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import tarfile
import uuid
from pathlib import Path

from builder.content import LocalContentStore
from builder.layers.applier import apply_layer
from registry.oci import Descriptor, mediatypes

_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")  # the same naming as builder.steps.run


def mount_dir_name(mount_id: str) -> str:
    """The directory name builder.steps.run gives the cache mount `mount_id`."""
    name = _SAFE_ID.sub("_", mount_id).strip("_") or "root"
    if name != mount_id:
        name = f"{name}-{hashlib.sha256(mount_id.encode()).hexdigest()[:12]}"
    return name


class _Sink:
    """A write-only file object over a content writer (tarfile/gzip need .write)."""

    def __init__(self, writer: object) -> None:
        self._w = writer

    def write(self, data: bytes) -> int:
        return int(self._w.write(data))  # type: ignore[attr-defined]

    def flush(self) -> None:
        return None


def export_mount(content: LocalContentStore, directory: Path) -> Descriptor:
    """Tar+gzip `directory` (deterministic) into the content store."""
    with content.writer(f"cachemount-{uuid.uuid4().hex[:12]}") as w:
        with gzip.GzipFile(fileobj=_Sink(w), mode="wb", mtime=0, compresslevel=1) as gz, \
                tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for dirpath, dirnames, filenames in os.walk(directory):
                dirnames.sort()
                rel_dir = os.path.relpath(dirpath, directory)
                for name in sorted(dirnames + filenames):
                    path = os.path.join(dirpath, name)
                    arc = name if rel_dir == "." else f"{rel_dir}/{name}"
                    info = tar.gettarinfo(path, arcname=arc)
                    info.uname = info.gname = ""
                    if info.isfile():
                        with open(path, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
        size = w.size
        digest = w.commit()
    return Descriptor(mediatypes.OCI_LAYER_GZIP, digest, size)


def restore_mount(content: LocalContentStore, desc: Descriptor, base: Path, name: str) -> bool:
    """Unpack the blob into `<base>/<name>/data` unless that directory exists; True if done."""
    target = base / name / "data"
    if target.exists():
        return False
    (base / name).mkdir(parents=True, exist_ok=True)
    tmp = base / name / f".restore-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        with content.open(desc.digest) as stream:
            apply_layer(stream, tmp, whiteouts="merge")
        try:
            os.rename(tmp, target)
        except OSError:  # someone else restored or created it meanwhile
            return False
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
