"""Snapshotters: copy-on-write filesystem trees for build steps.

Vocabulary (containerd `core/snapshots/snapshotter.go`): a *key* names an active or view
snapshot, a *name* names a committed one, and *parent* is always a committed name.

Lifecycle of one build step or one unpacked layer::

    mounts = sn.prepare("step-3", parent=chain_id_of_base)   # ACTIVE, writable
    with temp_mount(mounts) as rootfs: ...                    # builder.mounts does the mounting
    for change in sn.changes("step-3"): ...                   # feeds builder.layers' differ
    sn.commit(new_chain_id, "step-3")                         # ACTIVE -> COMMITTED, key is gone

`view()` gives a read-only tree of a committed snapshot (COPY --from, inspection).
Committed snapshots are immutable and may be parents of any number of others; a snapshot
that is still some snapshot's parent cannot be removed. Snapshotters only return `Mount`
values and never mount anything themselves.

`import_committed(name, parent, path)` adopts a layer directory that the image store has
already unpacked (overlay whiteout form) as a committed snapshot named by its chain ID.

Pick an implementation with `open_snapshotter(root, "auto" | "overlay" | "native")`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from builder.mounts import Mount

if TYPE_CHECKING:
    from builder.layers.changes import Change

__all__ = [
    "Info",
    "Kind",
    "Snapshotter",
    "open_snapshotter",
    "snapshotter_names",
]


class Kind(enum.Enum):
    VIEW = "view"
    ACTIVE = "active"
    COMMITTED = "committed"


@dataclass(frozen=True, slots=True)
class Info:
    """What `stat()` and `walk()` report about one snapshot."""

    name: str
    kind: Kind
    parent: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    created: float = 0.0


@runtime_checkable
class Snapshotter(Protocol):
    """Copy-on-write trees keyed by name. Errors: builder.errors.NotFound (unknown key or
    parent), AlreadyExists (key/name taken), FailedPrecondition (wrong kind, parent still in
    use, parent not committed)."""

    root: Path

    def prepare(
        self, key: str, parent: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """Create a writable ACTIVE snapshot on top of committed `parent`; return its mounts."""
        ...

    def view(
        self, key: str, parent: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """Create a read-only VIEW of committed `parent`; return its (read-only) mounts."""
        ...

    def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        """Turn ACTIVE `key` into COMMITTED `name`; `key` no longer exists afterwards."""
        ...

    def rename(self, old: str, new: str) -> bool:
        """Give COMMITTED `old` the name `new`; its children follow. When `new` exists
        already (the same layer, committed before) only the committed children move to `new`
        and False is returned: an active child stays on `old` until it is committed (a tree
        with the same layer may differ in times, and its changes are taken against the tree
        it was made from); the caller removes `old` once it is childless and unmounted."""
        ...

    def remove(self, key: str) -> None:
        """Delete a snapshot of any kind; refused while it is another snapshot's parent."""
        ...

    def stat(self, key: str) -> Info: ...

    def mounts(self, key: str) -> list[Mount]:
        """Mounts of an existing ACTIVE or VIEW snapshot (the same as prepare/view gave)."""
        ...

    def walk(self) -> Iterator[Info]:
        """All snapshots, sorted by name."""
        ...

    def changes(self, key: str) -> Iterator[Change]:
        """The filesystem changes of snapshot `key` (ACTIVE or COMMITTED) against its parent,
        as builder.layers.changes.Change values sorted by path (input of the differ)."""
        ...

    def import_committed(
        self,
        name: str,
        parent: str | None,
        path: Path,
        *,
        labels: Mapping[str, str] | None = None,
        move: bool = False,
    ) -> Info:
        """Adopt an unpacked layer directory (overlay whiteout form: 0/0 char devices and
        the trusted.overlay.opaque xattr) as COMMITTED `name` on top of `parent`."""
        ...


def snapshotter_names() -> tuple[str, ...]:
    return ("auto", "overlay", "native")


def open_snapshotter(root: Path, name: str = "auto") -> Snapshotter:
    """Open the snapshotter `name` under `root` (created if missing).

    "auto" picks overlay when a trial overlay mount under `root` works and falls back to
    the copy-based "native" snapshotter otherwise, logging the reason. Asking for
    "overlay" where it cannot work raises builder.errors.FailedPrecondition."""
    from builder.snapshots.select import open_snapshotter as _open

    return _open(root, name)
