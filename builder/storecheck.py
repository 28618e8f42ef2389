"""`strata system df` and `strata system check`: space accounting and a full consistency check.

Space terms (`df`):
  logical   bytes of regular files counted once per path in every unpacked layer, i.e. what the
            layers would take without sharing;
  unique    bytes of regular files counted once per inode across layers and the file index;
  on disk   allocated blocks of those unique inodes (what `du` would say);
  saved     logical - unique: the bytes the file index saves by hard-linking identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.errors import StrataError
from builder.images import ImageStore, chain_ids
from builder.layers.applier import apply_layer
from registry.oci import Digest, ImageConfig, ImageManifest, RegistryError, parse_manifest


@dataclass(slots=True)
class TreeUsage:
    files: int = 0
    logical: int = 0
    unique: int = 0
    on_disk: int = 0


@dataclass(slots=True)
class DiskUsage:
    images: int = 0
    references: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    referenced_blob_bytes: int = 0
    layers: int = 0
    pool_entries: int = 0
    trees: TreeUsage = field(default_factory=TreeUsage)

    def to_json(self) -> dict[str, Any]:
        return {
            "Images": self.images, "References": self.references,
            "Blobs": {"Count": self.blobs, "Bytes": self.blob_bytes,
                      "Reclaimable": self.blob_bytes - self.referenced_blob_bytes},
            "Layers": {"Count": self.layers, "Files": self.trees.files,
                       "LogicalBytes": self.trees.logical, "UniqueBytes": self.trees.unique,
                       "BytesOnDisk": self.trees.on_disk,
                       "BytesSaved": self.trees.logical - self.trees.unique},
            "FileIndexEntries": self.pool_entries,
            "TotalOnDisk": self.blob_bytes + self.trees.on_disk,
        }


def disk_usage(store: ImageStore) -> DiskUsage:
    usage = DiskUsage()
    usage.images = len(store.db.images())
    usage.references = len(store.db.refs())
    referenced = store.db.referenced_blobs()
    for info in store.content.walk():
        usage.blobs += 1
        usage.blob_bytes += info.size
        if str(info.digest) in referenced:
            usage.referenced_blob_bytes += info.size
    seen: set[tuple[int, int]] = set()
    trees = usage.trees
    for entry in sorted(store.layers_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        usage.layers += 1
        _walk_usage(entry, trees, seen, count_logical=True)
    pool = TreeUsage()
    _walk_usage(store.pool_dir, pool, seen, count_logical=False)
    usage.pool_entries = pool.files
    trees.unique += pool.unique
    trees.on_disk += pool.on_disk
    return usage


def _walk_usage(root: Path, acc: TreeUsage, seen: set[tuple[int, int]],
                count_logical: bool) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            acc.files += 1
            if count_logical:
                acc.logical += st.st_size
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                acc.unique += st.st_size
                acc.on_disk += st.st_blocks * 512


@dataclass(slots=True)
class CheckReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    blobs_verified: int = 0
    images_checked: int = 0
    layers_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_store(store: ImageStore, verify_blobs: bool = True,
                deep: bool = False) -> CheckReport:
    """Verify blobs, index.json, metadata and unpacked layers; collect problems.

    `deep` also re-applies every unpacked layer's blob into a temp dir and compares the trees
    (type, mode, owner, link target, device numbers, xattrs and content; not mtimes).
    """
    report = CheckReport()
    removed = store.cleanup_temp()
    if removed:
        report.notes.append(f"removed {removed} temp entries left by interrupted writers")
    layout = store.content.layout_dir
    try:
        layout_obj = json.loads((layout / "oci-layout").read_text())
        if layout_obj.get("imageLayoutVersion") != "1.0.0":
            report.problems.append("oci-layout: unexpected imageLayoutVersion")
    except (OSError, ValueError) as exc:
        report.problems.append(f"oci-layout unreadable: {exc}")
    try:
        index = json.loads((layout / "index.json").read_text())
        for desc in index.get("manifests") or []:
            digest = Digest.parse(desc["digest"])
            if not store.content.exists(digest):
                report.problems.append(f"index.json names {digest}, which is not in the store")
    except (OSError, ValueError, KeyError, RegistryError) as exc:
        report.problems.append(f"index.json unreadable: {exc}")
    if not store.index_in_sync():
        report.problems.append("index.json does not match the metadata database")

    if verify_blobs:
        for info in store.content.walk():
            try:
                store.content.verify(info.digest)
                report.blobs_verified += 1
            except StrataError as exc:
                report.problems.append(f"blob {info.digest}: {exc}")

    row_integrity = store.db.conn.execute("PRAGMA integrity_check").fetchone()
    if row_integrity[0] != "ok":
        report.problems.append(f"strata.db integrity: {row_integrity[0]}")

    for row in store.db.images():
        report.images_checked += 1
        _check_image(store, row.manifest_digest, row.media_type, report)

    referenced_chains = store.db.referenced_chains()
    for urow in store.db.all_unpacked():
        report.layers_checked += 1
        path = store.layer_path(urow.chain_id)
        if not path.is_dir():
            report.problems.append(f"unpacked layer {urow.chain_id} is recorded but missing")
        elif deep:
            _deep_check_layer(store, urow.chain_id, path, report)
    for entry in sorted(store.layers_dir.iterdir()):
        if entry.name.startswith("."):
            report.notes.append(f"leftover entry layers/{entry.name}")
            continue
        chain = "sha256:" + entry.name
        if store.db.unpacked(chain) is None:
            report.notes.append(f"unpacked layer {chain} is not recorded (prune collects it "
                                "unless an image needs it)")
        if chain not in referenced_chains:
            report.notes.append(f"unpacked layer {chain} is unreferenced (prune removes it)")
    return report


def _check_image(store: ImageStore, digest_text: str, media_type: str,
                 report: CheckReport) -> None:
    digest = Digest.parse(digest_text)
    where = f"image {digest_text}"
    try:
        with store.content.open(digest) as f:
            manifest = parse_manifest(f.read(), media_type)
    except (StrataError, RegistryError) as exc:
        report.problems.append(f"{where}: manifest: {exc}")
        return
    if not isinstance(manifest, ImageManifest):
        report.problems.append(f"{where}: not an image manifest")
        return
    for blob in manifest.blobs():
        if not store.content.exists(blob.digest):
            report.problems.append(f"{where}: blob {blob.digest} is missing")
    try:
        with store.content.open(manifest.config.digest) as f:
            config = ImageConfig.from_bytes(f.read())
    except (StrataError, RegistryError) as exc:
        report.problems.append(f"{where}: config: {exc}")
        return
    rows = store.db.layers(digest_text)
    expected = chain_ids(config.diff_ids)
    if [r.chain_id for r in rows] != expected or [r.blob_digest for r in rows] != [
            str(d.digest) for d in manifest.layers]:
        report.problems.append(f"{where}: layer records do not match its manifest and config")
    missing = set(str(b.digest) for b in manifest.blobs()) - set(store.db.image_blobs(digest_text))
    if missing:
        report.problems.append(f"{where}: {len(missing)} blobs not recorded as referenced")


def _deep_check_layer(store: ImageStore, chain_id: str, path: Path, report: CheckReport) -> None:
    row = store.db.conn.execute(
        "SELECT blob_digest, diff_id FROM image_layers WHERE chain_id=? LIMIT 1",
        (chain_id,)).fetchone()
    if row is None:
        return  # unreferenced: prune's business
    try:
        with store.temp_layer_dir("check") as scratch, \
                store.content.open(Digest.parse(row[0])) as stream:
            apply_layer(stream, scratch, whiteouts="overlay",
                        expected_diff_id=Digest.parse(row[1]),
                        parents=store.lower_dirs(chain_id))
            want, have = tree_fingerprint(scratch), tree_fingerprint(path)
        if want != have:
            changed = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
            report.problems.append(f"unpacked layer {chain_id} differs from its blob: "
                                   f"{', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}")
    except (StrataError, OSError) as exc:
        report.problems.append(f"unpacked layer {chain_id}: cannot re-apply its blob: {exc}")


def tree_fingerprint(root: Path) -> dict[str, tuple[object, ...]]:
    """path -> (mode, uid, gid, rdev, link target, xattrs, content sha256); mtimes ignored."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
            digest = ""
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
            xattrs = tuple(sorted((k, os.getxattr(full, k, follow_symlinks=False))
                                  for k in os.listxattr(full, follow_symlinks=False)))
            rdev = st.st_rdev if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else 0
            out[os.path.relpath(full, root)] = (st.st_mode, st.st_uid, st.st_gid, rdev, link,
                                                xattrs, digest)
    return out
