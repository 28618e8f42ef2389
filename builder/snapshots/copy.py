"""CopySnapshotter ("native"): every active snapshot is a full copy of its parent's tree.

For machines or filesystems where overlayfs cannot mount (e.g. a store on overlayfs).
`prepare` copies the parent with `cp -a --reflink=auto` (reflinks on btrfs/xfs, real
copies elsewhere; keeps owners, modes, xattrs, hard links, devices, fifos and symlinks)
and hands back a bind Mount. Changes are a two-tree walk against the parent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from builder.mounts import Mount
from builder.snapshots import Info, Kind
from builder.snapshots.base import BaseSnapshotter, include_parents
from builder.snapshots.metadata import Record, State

if TYPE_CHECKING:
    from builder.layers.changes import Change

def copy_tree(src: Path, dst: Path) -> None:
    """Copy the contents of `src` into existing directory `dst`, preserving everything."""
    proc = subprocess.run(
        ["cp", "-a", "--reflink=auto", "--no-target-directory", f"{src}/.", str(dst)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise FailedPrecondition(f"copying {src} to {dst} failed: {proc.stderr.strip()}")


class CopySnapshotter(BaseSnapshotter):
    """Snapshots as plain directory copies; see the module docstring."""

    name = "native"

    def _populate(self, rec: Record, state: State) -> None:
        fs = self._dir(rec) / "fs"
        fs.mkdir(parents=True)
        if rec.kind is Kind.ACTIVE and rec.parent is not None:
            copy_tree(self._tree(state.get(rec.parent)), fs)

    def _active_mounts(self, rec: Record, state: State) -> list[Mount]:
        return [Mount("bind", str(self._dir(rec) / "fs"), "/", ("rbind", "rw"))]

    def _view_mounts(self, rec: Record, state: State) -> list[Mount]:
        src = self._tree(state.get(rec.parent)) if rec.parent else self._dir(rec) / "fs"
        return [Mount("bind", str(src), "/", ("rbind", "ro"))]

    def changes(self, key: str) -> Iterator[Change]:
        from builder.layers.changes import tree_changes

        state = self._meta.read()
        rec = state.get(key)
        if rec.kind is Kind.VIEW:
            raise FailedPrecondition(f"snapshot {key!r} is a view and has no changes")
        lower = self._tree(state.get(rec.parent)) if rec.parent else None
        yield from include_parents(tree_changes(lower, self._tree(rec)), self._tree(rec))

    def import_committed(
        self,
        name: str,
        parent: str | None,
        path: Path,
        *,
        labels: Mapping[str, str] | None = None,
        move: bool = False,
    ) -> Info:
        """Build COMMITTED `name` as parent's tree with the layer dir `path` (overlay
        whiteout form) merged on top: whiteouts delete, opaque dirs hide the parent's
        entries. `path` itself is left untouched (`move` is accepted and ignored:
        a copy tree cannot share the layer directory)."""
        del move
        path = Path(path).absolute()
        if not path.is_dir():
            raise InvalidArgument(f"import: {path} is not a directory")
        with self._meta.write() as state:
            if name in state.snapshots:
                raise AlreadyExists(f"snapshot {name!r} already exists")
            rec = state.new(name, Kind.ACTIVE, parent, labels)
        try:
            fs = self._dir(rec) / "fs"
            fs.mkdir(parents=True)
            if parent is not None:
                copy_tree(self._tree(self._meta.read().get(parent)), fs)
            merge_layer_dir(path, fs)
        except BaseException:
            with self._meta.write() as state:
                state.snapshots.pop(name, None)
            shutil.rmtree(self._dir(rec), ignore_errors=True)
            raise
        with self._meta.write() as state:
            state.snapshots[name].kind = Kind.COMMITTED
            rec = state.snapshots[name]
            self._make_link(rec)
            return rec.info(name)


def _remove(p: Path) -> None:
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(p)
    else:
        os.unlink(p)


def _copy_times(src: Path, dst: Path) -> None:
    st = os.lstat(src)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def merge_layer_dir(layer: Path, tree: Path) -> None:
    """Apply an overlay-form layer directory onto a full tree (like a flattening apply).

    Pass 1 removes whatever the layer replaces (whited-out paths, contents of opaque
    dirs, and every non-directory entry or type change, so no file is ever written in
    place). Pass 2 copies the layer with `cp -a`. Pass 3 drops the copied whiteout
    devices and opaque markers, which are overlay bookkeeping, not content."""
    from builder.layers.changes import OPAQUE_XATTRS, is_opaque, is_whiteout

    whiteouts: list[Path] = []
    opaques: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(layer):
        rel = Path(dirpath).relative_to(layer)
        if rel != Path(".") and is_opaque(Path(dirpath)):
            opaques.append(rel)
            target = tree / rel
            if target.is_dir() and not target.is_symlink():
                for child in os.listdir(target):
                    _remove(target / child)
        for name in dirnames + filenames:
            src = Path(dirpath) / name
            dst = tree / rel / name
            st = os.lstat(src)
            if is_whiteout(st):
                whiteouts.append(rel / name)
                _remove(dst)
                continue
            try:
                dst_st = os.lstat(dst)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not (stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(dst_st.st_mode)):
                _remove(dst)
    copy_tree(layer, tree)
    for rel in whiteouts:
        p = tree / rel
        if p.exists() or p.is_symlink():
            st = os.lstat(p)
            if is_whiteout(st):
                os.unlink(p)
                _copy_times(layer / rel.parent, tree / rel.parent)
    for rel in opaques:
        for name in OPAQUE_XATTRS:
            with contextlib.suppress(OSError):
                os.removexattr(tree / rel, name, follow_symlinks=False)
