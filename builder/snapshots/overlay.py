"""OverlaySnapshotter: kernel overlayfs, one upper/work pair per active snapshot.

A committed snapshot's `fs/` is used as an overlay lower directory by its children,
through the short link `l/<id>` (see builder.mounts for why). Imported layer directories
(`import_committed`) are referenced in place or moved into `snapshots/<id>/fs`.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from builder.mounts import Mount, MountError, temp_mount
from builder.snapshots import Info, Kind
from builder.snapshots.base import BaseSnapshotter, include_parents
from builder.snapshots.metadata import Record, State

if TYPE_CHECKING:
    from builder.layers.changes import Change

MAX_LOWER_LAYERS = 500  # the kernel's OVL_MAX_STACK


def supported(root: Path) -> tuple[bool, str]:
    """Trial-mount a two-lower overlay with upper and work dirs under `root`
    (containerd overlayutils.Supported). Returns (ok, reason-when-not)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".overlay-check-", dir=root))
    try:
        for d in ("l1", "l2", "upper", "work", "merged"):
            (tmp / d).mkdir()
        m = Mount(
            "overlay",
            "overlay",
            options=(
                "index=off",
                f"lowerdir={tmp / 'l2'}:{tmp / 'l1'}",
                f"upperdir={tmp / 'upper'}",
                f"workdir={tmp / 'work'}",
            ),
        )
        try:
            with temp_mount([m], parent=tmp):
                pass
        except MountError as exc:
            return False, f"trial overlay mount under {root} failed: {exc}"
        return True, ""
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class OverlaySnapshotter(BaseSnapshotter):
    """Snapshots as overlayfs layers; see the module docstring."""

    name = "overlay"

    def _populate(self, rec: Record, state: State) -> None:
        d = self._dir(rec)
        (d / "fs").mkdir(parents=True)
        if rec.kind is Kind.ACTIVE and rec.parent is not None:
            (d / "work").mkdir()

    def _lowers(self, state: State, parent: str | None) -> list[str]:
        chain = state.chain(parent)
        if len(chain) > MAX_LOWER_LAYERS:
            raise InvalidArgument(f"{len(chain)} layers exceed overlayfs' {MAX_LOWER_LAYERS}")
        return [str(self._link(r)) for r in chain]

    def _active_mounts(self, rec: Record, state: State) -> list[Mount]:
        d = self._dir(rec)
        if rec.parent is None:
            return [Mount("bind", str(d / "fs"), "/", ("rbind", "rw"))]
        return [
            Mount(
                "overlay",
                "overlay",
                "/",
                (
                    "index=off",
                    "lowerdir=" + ":".join(self._lowers(state, rec.parent)),
                    f"upperdir={d / 'fs'}",
                    f"workdir={d / 'work'}",
                ),
            )
        ]

    def _view_mounts(self, rec: Record, state: State) -> list[Mount]:
        if rec.parent is None:
            return [Mount("bind", str(self._dir(rec) / "fs"), "/", ("rbind", "ro"))]
        lowers = self._lowers(state, rec.parent)
        if len(lowers) == 1:
            return [Mount("bind", str(self._tree(state.get(rec.parent))), "/", ("rbind", "ro"))]
        return [Mount("overlay", "overlay", "/", ("index=off", "lowerdir=" + ":".join(lowers)))]

    def _on_commit(self, rec: Record) -> None:
        shutil.rmtree(self._dir(rec) / "work", ignore_errors=True)
        self._make_link(rec)

    def changes(self, key: str) -> Iterator[Change]:
        """overlay_changes() of the upper dir, minus directories that were only copied up
        (same mode, owner, mtime and xattrs as in the lower stack, e.g. /etc after a mount
        stub under it was removed again) unless something below them changed."""
        from builder.layers.changes import overlay_changes

        state = self._meta.read()
        rec = state.get(key)
        if rec.kind is Kind.VIEW:
            raise FailedPrecondition(f"snapshot {key!r} is a view and has no changes")
        lowers = [self._tree(r) for r in state.chain(rec.parent)]
        upper = self._tree(rec)

        def real_changes() -> Iterator[Change]:
            for change in overlay_changes(upper):
                if (
                    not change.opaque
                    and change.source is not None
                    and _unchanged_dir(change.source, change.path, lowers)
                ):
                    continue
                yield change

        yield from include_parents(real_changes(), upper)

    def import_committed(
        self,
        name: str,
        parent: str | None,
        path: Path,
        *,
        labels: Mapping[str, str] | None = None,
        move: bool = False,
    ) -> Info:
        """Adopt `path` (an unpacked layer in overlay whiteout form) as COMMITTED `name`.
        move=False references it in place (the caller keeps owning and never changes it);
        move=True renames it into the snapshotter root (same filesystem required)."""
        path = Path(path).absolute()
        if not path.is_dir():
            raise InvalidArgument(f"import: {path} is not a directory")
        with self._meta.write() as state:
            if name in state.snapshots:
                raise AlreadyExists(f"snapshot {name!r} already exists")
            rec = state.new(name, Kind.COMMITTED, parent, labels)
            if move:
                self._dir(rec).mkdir(parents=True)
                try:
                    os.rename(path, self._dir(rec) / "fs")
                except OSError as exc:
                    shutil.rmtree(self._dir(rec), ignore_errors=True)
                    if exc.errno == errno.EXDEV:
                        raise InvalidArgument(f"import: {path} is on another filesystem") from exc
                    raise
            else:
                rec.path = str(path)
                rec.owned = False
            self._make_link(rec)
            return rec.info(name)


def _unchanged_dir(upper: Path, rel: str, lowers: list[Path]) -> bool:
    from builder.layers.changes import read_xattrs  # loaded by changes() already

    try:
        st = os.lstat(upper)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    for lower in lowers:
        try:
            lst = os.lstat(lower / rel)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not stat.S_ISDIR(lst.st_mode):
            return False
        return (
            lst.st_mode == st.st_mode
            and lst.st_uid == st.st_uid
            and lst.st_gid == st.st_gid
            and lst.st_mtime_ns == st.st_mtime_ns
            and read_xattrs(lower / rel) == read_xattrs(upper)
        )
    return False
