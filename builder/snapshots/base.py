"""Shared bookkeeping for the snapshotters: metadata records, directories and removal.

Directory layout under the snapshotter root::

    snapshots/<id>/fs     the tree (overlay: the upper dir / committed lower dir)
    snapshots/<id>/work   overlay work dir (overlay only)
    l/<id>                short symlink to the tree used in overlay lowerdir options

Subclasses implement the mechanism-specific parts (`_populate`, `_active_mounts`,
`_view_mounts`, `changes`, `import_committed`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import AlreadyExists, FailedPrecondition
from builder.mounts import Mount
from builder.snapshots import Info, Kind
from builder.snapshots.metadata import MetaStore, Record, State

if TYPE_CHECKING:
    from builder.layers.changes import Change


def include_parents(changes: Iterable[Change], tree: Path) -> Iterator[Change]:
    """Yield `changes` with every ancestor directory emitted (as MODIFY from `tree`) before
    its first descendant, as containerd's ChangeWriter and docker layers do, so a layer
    carries the metadata of each directory it writes into. Input must be sorted by path
    components (parents first), as builder.layers.changes yields it."""
    from builder.layers.changes import Change, ChangeKind

    seen: set[str] = set()
    for change in changes:
        parts = change.path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            ancestor = "/".join(parts[:i])
            if ancestor not in seen:
                seen.add(ancestor)
                yield Change(ChangeKind.MODIFY, ancestor, tree / ancestor)
        seen.add(change.path)
        yield change


class BaseSnapshotter:
    """Metadata and directory handling common to overlay and copy snapshotters."""

    name = "base"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        (self.root / "snapshots").mkdir(parents=True, exist_ok=True)
        (self.root / "l").mkdir(exist_ok=True)
        self._meta = MetaStore(self.root)

    # -- paths -------------------------------------------------------------------------
    def _dir(self, rec: Record) -> Path:
        return self.root / "snapshots" / rec.id

    def _tree(self, rec: Record) -> Path:
        """The directory holding this snapshot's own tree (upper dir or full copy)."""
        return Path(rec.path) if rec.path is not None else self._dir(rec) / "fs"

    def _link(self, rec: Record) -> Path:
        return self.root / "l" / rec.id

    # -- hooks ---------------------------------------------------------------------------
    def _populate(self, rec: Record, state: State) -> None:
        """Create the directories of a new ACTIVE/VIEW snapshot (outside the lock)."""
        raise NotImplementedError

    def _active_mounts(self, rec: Record, state: State) -> list[Mount]:
        raise NotImplementedError

    def _view_mounts(self, rec: Record, state: State) -> list[Mount]:
        raise NotImplementedError

    # -- the Snapshotter protocol ----------------------------------------------------------
    def _create(self, key: str, parent: str | None, labels: Mapping[str, str] | None,
                kind: Kind) -> list[Mount]:
        with self._meta.write() as state:
            rec = state.new(key, kind, parent, labels)
        try:
            self._populate(rec, self._meta.read())
        except BaseException:
            with self._meta.write() as state:
                state.snapshots.pop(key, None)
            shutil.rmtree(self._dir(rec), ignore_errors=True)
            raise
        return self.mounts(key)

    def prepare(self, key: str, parent: str | None = None,
                labels: Mapping[str, str] | None = None) -> list[Mount]:
        return self._create(key, parent, labels, Kind.ACTIVE)

    def view(self, key: str, parent: str | None = None,
             labels: Mapping[str, str] | None = None) -> list[Mount]:
        return self._create(key, parent, labels, Kind.VIEW)

    def mounts(self, key: str) -> list[Mount]:
        state = self._meta.read()
        rec = state.get(key)
        if rec.kind is Kind.ACTIVE:
            return self._active_mounts(rec, state)
        if rec.kind is Kind.VIEW:
            return self._view_mounts(rec, state)
        raise FailedPrecondition(f"snapshot {key!r} is committed; use view() to read it")

    def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        with self._meta.write() as state:
            rec = state.get(key)
            if rec.kind is not Kind.ACTIVE:
                raise FailedPrecondition(f"snapshot {key!r} is {rec.kind.value}, not active")
            if name in state.snapshots:
                raise AlreadyExists(f"snapshot {name!r} already exists")
            if state.children(key):
                raise FailedPrecondition(f"snapshot {key!r} has children")
            self._on_commit(rec)
            del state.snapshots[key]
            rec.kind = Kind.COMMITTED
            if labels:
                rec.labels.update(labels)
            state.snapshots[name] = rec

    def rename(self, old: str, new: str) -> bool:
        with self._meta.write() as state:
            rec = state.committed(old)
            kept = new not in state.snapshots
            if not kept:
                state.committed(new)
            for child in state.children(old):
                if kept or state.snapshots[child].kind is Kind.COMMITTED:
                    state.snapshots[child].parent = new
            if kept:
                del state.snapshots[old]
                state.snapshots[new] = rec
        return kept

    def _on_commit(self, rec: Record) -> None:
        """Mechanism-specific work when a snapshot becomes immutable."""
        self._make_link(rec)

    def _make_link(self, rec: Record) -> None:
        link = self._link(rec)
        target = str(self._tree(rec)) if rec.path is not None else f"../snapshots/{rec.id}/fs"
        if link.is_symlink():
            link.unlink()
        os.symlink(target, link)

    def remove(self, key: str) -> None:
        with self._meta.write() as state:
            rec = state.get(key)
            kids = state.children(key)
            if kids:
                raise FailedPrecondition(
                    f"snapshot {key!r} is the parent of {', '.join(kids[:3])}; remove them first"
                )
            del state.snapshots[key]
        if self._link(rec).is_symlink():
            self._link(rec).unlink()
        if rec.path is not None and rec.owned:
            shutil.rmtree(rec.path, ignore_errors=True)
        shutil.rmtree(self._dir(rec), ignore_errors=True)

    def stat(self, key: str) -> Info:
        return self._meta.read().get(key).info(key)

    def walk(self) -> Iterator[Info]:
        state = self._meta.read()
        for key in sorted(state.snapshots):
            yield state.snapshots[key].info(key)

    def changes(self, key: str) -> Iterator[Change]:
        raise NotImplementedError

    def tree_path(self, key: str) -> Path:
        """Host directory of a snapshot's own tree (overlay: its upper dir; copy: the full
        tree). For inspection and tests; never write into a committed tree."""
        return self._tree(self._meta.read().get(key))

    def close(self) -> None:
        """Nothing to release; present for symmetry with containerd."""
