"""File index: identical regular files across unpacked (immutable) trees share one inode.

A pool directory holds one hard link per distinct file, named by the sha256 of its identity key:
content sha256 + mode (incl. setuid/setgid/sticky) + uid + gid + xattrs. `dedupe_tree(tree)`
replaces each regular file of a *committed* tree by a hard link to the pool inode (the first
copy seen becomes the pool's). The replacement is crash safe: link to a temp name in the same
directory, then rename over the file; leftover temp names are removed on the next run.

Rules callers must keep:
- only immutable trees (committed snapshots, unpacked layers) are deduplicated. A tree a RUN step
  writes is an overlay upper or a copy, never one of these, because writing through one name of
  a file with more than one link changes every name. Nothing may open these files for writing.
- the pool and the trees must be on one filesystem; across devices (EXDEV) a file is skipped.
- the mtime of a shared file is the first copy's (mtime is not part of the identity key).
- pool files keep the mode the image needs (it is part of the key); they are protected by
  contract (strata never writes them), not by permission bits, which root ignores anyway.
- `prune()` and `dedupe_tree()` must not run at the same time on one pool (the store's lock).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from builder.layers.changes import read_xattrs

_CHUNK = 1 << 20
TEMP_PREFIX = ".strata-dedupe-"


@dataclass(frozen=True, slots=True)
class DedupeStats:
    files: int  # regular files examined
    linked: int  # files now sharing a pool inode that did not before this call
    bytes_saved: int  # bytes no longer stored twice thanks to this call


@dataclass(frozen=True, slots=True)
class PoolUsage:
    entries: int  # distinct files in the pool
    disk_bytes: int  # bytes the pool files take (each stored once)
    logical_bytes: int  # bytes as seen through every tree link (size x tree links)

    @property
    def bytes_saved(self) -> int:
        return max(self.logical_bytes - self.disk_bytes, 0)


@dataclass(frozen=True, slots=True)
class DiskUsage:
    logical_bytes: int  # sum of regular file sizes, every path counted
    disk_bytes: int  # allocated bytes, each inode counted once

    @property
    def bytes_saved(self) -> int:
        return max(self.logical_bytes - self.disk_bytes, 0)


def disk_usage(paths: list[Path]) -> DiskUsage:
    """Logical vs on-disk bytes under `paths` (hard links counted once on disk): `system df`."""
    seen: set[tuple[int, int]] = set()
    logical = disk = 0
    for top in paths:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in filenames + dirnames:
                st = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISREG(st.st_mode):
                    logical += st.st_size
                key = (st.st_dev, st.st_ino)
                if key not in seen:
                    seen.add(key)
                    disk += st.st_blocks * 512
    return DiskUsage(logical, disk)


def file_key(path: Path, st: os.stat_result) -> str:
    """The identity key of a regular file (hex sha256 over content, mode, owner, xattrs)."""
    content = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(_CHUNK):
            content.update(chunk)
    key = hashlib.sha256()
    key.update(b"strata-file-v1\0" + content.hexdigest().encode())
    key.update(f"\0{stat.S_IMODE(st.st_mode):o}\0{st.st_uid}\0{st.st_gid}".encode())
    for name, value in read_xattrs(path).items():
        key.update(b"\0" + name.encode() + b"=" + value.hex().encode())
    return key.hexdigest()


class FileIndex:
    """A dedupe pool of immutable regular files under `pool_dir` (see module docstring)."""

    def __init__(self, pool_dir: Path, *, min_size: int = 1) -> None:
        self.pool_dir = Path(pool_dir)
        self.min_size = min_size
        self.pool_dir.mkdir(parents=True, exist_ok=True)

    def _pool_path(self, key: str) -> Path:
        return self.pool_dir / key[:2] / key

    def dedupe_tree(self, tree: Path) -> DedupeStats:
        """Hard-link the regular files of the immutable `tree` to the pool; returns the stats."""
        files = linked = saved = 0
        for dirpath, _dirnames, filenames in os.walk(tree):
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if name.startswith(TEMP_PREFIX):
                    os.unlink(path)  # left by a crash between link and rename
                    continue
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode):
                    continue
                files += 1
                if st.st_size < self.min_size:
                    continue
                if self._share(path, st):
                    linked += 1
                    saved += st.st_size
        return DedupeStats(files, linked, saved)

    def _share(self, path: Path, st: os.stat_result) -> bool:
        """Link `path` with its pool twin; True when it now shares an inode it did not before."""
        pool_path = self._pool_path(file_key(path, st))
        try:
            pst = os.lstat(pool_path)
        except FileNotFoundError:
            pool_path.parent.mkdir(mode=0o700, exist_ok=True)
            try:
                os.link(path, pool_path)  # this copy becomes the pool's (atomic create)
                return False
            except FileExistsError:
                pst = os.lstat(pool_path)  # a concurrent writer won; share theirs
            except OSError as e:
                if e.errno in (errno.EXDEV, errno.EMLINK):
                    return False
                raise
        if (pst.st_dev, pst.st_ino) == (st.st_dev, st.st_ino):
            return False  # already shared
        if pst.st_dev != st.st_dev:
            return False
        temp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{path.name}"[:255])
        try:
            os.link(pool_path, temp)
        except OSError as e:
            if e.errno in (errno.EXDEV, errno.EMLINK):
                return False
            raise
        try:
            os.rename(temp, path)
        except BaseException:
            os.unlink(temp)
            raise
        return True

    def usage(self) -> PoolUsage:
        """Pool-level numbers for `strata system df`."""
        entries = disk = logical = 0
        for dirpath, _dirs, filenames in os.walk(self.pool_dir):
            for name in filenames:
                st = os.lstat(os.path.join(dirpath, name))
                entries += 1
                disk += st.st_size
                logical += st.st_size * max(st.st_nlink - 1, 0)
        return PoolUsage(entries, disk, logical)

    def prune(self) -> int:
        """Remove pool files no tree links to any more (link count 1); returns how many."""
        removed = 0
        for dirpath, _dirs, filenames in os.walk(self.pool_dir):
            for name in filenames:
                path = os.path.join(dirpath, name)
                if os.lstat(path).st_nlink == 1:
                    os.unlink(path)
                    removed += 1
        return removed
