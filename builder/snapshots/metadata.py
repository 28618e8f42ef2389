"""On-disk snapshot metadata: one JSON file replaced atomically, guarded by a lock file.

Layout under the snapshotter root::

    metadata.json   {"version": 1, "next_id": N, "snapshots": {key: record}}
    metadata.lock   flock(2) target serialising writers across processes

A record is {"id", "kind", "parent", "labels", "created", "path"?, "owned"}; `id` names
the snapshot's directory (`snapshots/<id>/`) and its short overlay link (`l/<id>`),
`path` is set for imported layer directories that live elsewhere. A crash leaves either
the old or the new file, never a torn one (write temp, fsync, rename, fsync dir).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.errors import AlreadyExists, CacheCorrupt, FailedPrecondition, NotFound
from builder.fsutil import atomic_write
from builder.snapshots import Info, Kind

VERSION = 1


@dataclass(slots=True)
class Record:
    id: str
    kind: Kind
    parent: str | None
    labels: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    path: str | None = None  # external directory of an imported layer
    owned: bool = True  # False: `path` belongs to someone else and is never deleted

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind.value,
            "parent": self.parent,
            "labels": self.labels,
            "created": self.created,
            "owned": self.owned,
        }
        if self.path is not None:
            out["path"] = self.path
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        return cls(
            id=str(data["id"]),
            kind=Kind(data["kind"]),
            parent=data.get("parent"),
            labels=dict(data.get("labels") or {}),
            created=float(data.get("created", 0.0)),
            path=data.get("path"),
            owned=bool(data.get("owned", True)),
        )

    def info(self, key: str) -> Info:
        return Info(key, self.kind, self.parent, dict(self.labels), self.created)


class State:
    """The decoded metadata file; mutate it only inside `MetaStore.write()`."""

    def __init__(self, next_id: int, snapshots: dict[str, Record]) -> None:
        self.next_id = next_id
        self.snapshots = snapshots

    def get(self, key: str) -> Record:
        try:
            return self.snapshots[key]
        except KeyError:
            raise NotFound(f"snapshot {key!r} not found") from None

    def committed(self, name: str) -> Record:
        rec = self.get(name)
        if rec.kind is not Kind.COMMITTED:
            raise FailedPrecondition(f"parent {name!r} is {rec.kind.value}, not committed")
        return rec

    def new(self, key: str, kind: Kind, parent: str | None,
            labels: Mapping[str, str] | None) -> Record:
        if key in self.snapshots:
            raise AlreadyExists(f"snapshot {key!r} already exists")
        if parent is not None:
            self.committed(parent)
        rec = Record(str(self.next_id), kind, parent, dict(labels or {}), time.time())
        self.next_id += 1
        self.snapshots[key] = rec
        return rec

    def children(self, key: str) -> list[str]:
        return sorted(k for k, r in self.snapshots.items() if r.parent == key)

    def chain(self, name: str | None) -> list[Record]:
        """Committed records from `name` down to the base (top first)."""
        out: list[Record] = []
        while name is not None:
            rec = self.get(name)
            out.append(rec)
            name = rec.parent
            if len(out) > 10_000:
                raise CacheCorrupt("snapshot parent chain loops")
        return out


class MetaStore:
    """Load/modify/save of metadata.json with a process lock and a thread lock."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._file = self.root / "metadata.json"
        self._lockfile = self.root / "metadata.lock"
        self._thread_lock = threading.RLock()

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        with self._thread_lock, open(self._lockfile, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _load(self) -> State:
        try:
            raw = json.loads(self._file.read_text())
        except FileNotFoundError:
            return State(1, {})
        except ValueError as exc:
            raise CacheCorrupt(f"{self._file}: {exc}") from exc
        if raw.get("version") != VERSION:
            raise CacheCorrupt(f"{self._file}: unknown version {raw.get('version')!r}")
        snaps = {k: Record.from_json(v) for k, v in raw.get("snapshots", {}).items()}
        return State(int(raw.get("next_id", 1)), snaps)

    def _save(self, state: State) -> None:
        data = {
            "version": VERSION,
            "next_id": state.next_id,
            "snapshots": {k: state.snapshots[k].to_json() for k in sorted(state.snapshots)},
        }
        atomic_write(self._file, json.dumps(data, separators=(",", ":"), sort_keys=True).encode())

    def read(self) -> State:
        """A consistent snapshot of the metadata (not to be modified)."""
        with self._locked(exclusive=False):
            return self._load()

    @contextlib.contextmanager
    def write(self) -> Iterator[State]:
        """Exclusive read-modify-write; the file is replaced only if the body succeeds."""
        with self._locked(exclusive=True):
            state = self._load()
            yield state
            self._save(state)
