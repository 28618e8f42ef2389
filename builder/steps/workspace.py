"""Workspace: snapshots of the image being built, created lazily, and layers written from them.

Committed snapshots are named by OCI chain ID (DESIGN 5.2), so a base layer the image store
unpacked and a layer a build wrote share one snapshot. A cache hit never comes here: only a
step that misses calls `ensure` (materialize the parent chain) and `active` (a writable
snapshot on top of it), then `commit` (changes -> committed snapshot -> layer blob).

`commit` returns as soon as the snapshot is committed (under a provisional name): the blob
(tar, digest, compression, fsync) is written by one writer thread, in commit order, while the
next steps run on the snapshot. When the blob is done the snapshot is renamed to its chain ID.
`after` queues work behind the blobs (cache records need their digests); `drain` waits for
all of it and raises what failed.

`ensure` finds the highest layer whose snapshot exists and imports the rest: base image layers
through ImageStore.unpack (unpacked once per chain ID, shared by every build), built layers by
applying their blob into a directory under the snapshotter root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from builder.cache import BuildCache
from builder.errors import AlreadyExists, FailedPrecondition, NotFound
from builder.images import ImageStore, ThreadStores
from builder.layers.applier import apply_layer
from builder.layers.changes import Change
from builder.layers.differ import write_layer
from builder.mounts import Mount
from builder.snapshots import Kind, Snapshotter
from builder.steps import Layer, LayerRef, PendingLayer, next_chain_id
from registry.oci import Descriptor, Digest


@dataclass(frozen=True, slots=True)
class Active:
    """A writable snapshot for one step: its key and the mounts of its root filesystem."""

    key: str
    mounts: list[Mount]


class Workspace:
    """Snapshots + content for one build. Layers are gzip level 1 by default: building is
    dominated by compression, and level 1 halves it for a few percent of size.
    Thread-safe; each thread gets its own store handle (SQLite connections are per thread)."""

    def __init__(self, store_root: Path, snapshotter: Snapshotter | Callable[[], Snapshotter],
                 cache: BuildCache, *,
                 source_date_epoch: int | None = None, compression: str = "gzip",
                 level: int | None = 1, adaptive: bool = True) -> None:
        self.store_root = Path(store_root)
        self._snapshotter = snapshotter  # or a factory: opened on the first miss only
        self.cache = cache
        self.epoch = source_date_epoch
        self.compression = compression
        self.level = level
        self.adaptive = adaptive  # store incompressible layers as plain tar
        self._lock = threading.RLock()
        self._stores = ThreadStores(self.store_root)
        self._writer: ThreadPoolExecutor | None = None
        self._jobs: list[Future[object]] = []
        self._pending: list[PendingLayer] = []
        self._provisional: list[str] = []  # snapshots not (yet) renamed to a chain ID
        self._merged: dict[str, str] = {}  # provisional -> the same layer's older snapshot

    @property
    def snapshotter(self) -> Snapshotter:
        """The snapshotter (opening it probes overlay with a trial mount: a no-op rebuild
        never gets here)."""
        with self._lock:
            if callable(self._snapshotter) and not isinstance(self._snapshotter, Snapshotter):
                self._snapshotter = self._snapshotter()
            return self._snapshotter

    def store(self) -> ImageStore:
        """This thread's ImageStore on the build's store root."""
        return self._stores.get()

    def close(self) -> None:
        """Wait for the writer (without raising), remove the snapshots of blobs that failed,
        fold duplicates into the snapshot of the same layer, and close the store handles."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        for name in reversed(self._provisional):  # children were committed after parents
            with contextlib.suppress(NotFound, FailedPrecondition):
                self.snapshotter.remove(name)
        for name, chain in self._merged.items():  # every child is committed by now
            with contextlib.suppress(NotFound, FailedPrecondition):
                self.snapshotter.rename(name, chain)
                self.snapshotter.remove(name)
        self._provisional.clear()
        self._merged.clear()
        self._stores.close()

    # ------------------------------------------------------------------ the writer

    def after(self, work: Callable[[], object]) -> None:
        """Run `work` in the writer thread once every blob committed so far is written."""
        with self._lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1,
                                                  thread_name_prefix="layer-writer")
            self._jobs.append(self._writer.submit(work))

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for every blob and queued work; raise the first failure (queued work first:
        it knows which step a failed blob belongs to). With a timeout, False when the writer
        is still busy after it."""
        with self._lock:
            jobs, pending = list(self._jobs), list(self._pending)
        if timeout is not None and wait(jobs, timeout).not_done:
            return False
        for job in jobs:
            job.result()
        for layer in pending:
            layer.result()
        return True

    # ------------------------------------------------------------------ snapshots

    def _exists(self, name: str, timeout: float = 1800.0) -> bool:
        """Is `name` a committed snapshot? One that another process is still importing
        (the native snapshotter keeps it ACTIVE while it copies) is waited for."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = self.snapshotter.stat(name)
            except NotFound:
                return False
            if info.kind is Kind.COMMITTED or time.monotonic() > deadline:
                return info.kind is Kind.COMMITTED
            time.sleep(0.05)

    def ensure(self, layers: Sequence[LayerRef], base_image: str | None = None) -> str | None:
        """Make sure a committed snapshot exists for the top of `layers`; return its name.
        (A pending layer's snapshot always exists: only resolved layers are imported.)"""
        if not layers:
            return None
        with self._lock:
            top = len(layers)
            while top > 0 and not self._exists(layers[top - 1].snapshot):
                top -= 1
            if top == len(layers):
                return layers[-1].snapshot
            unpacked = self._unpack_base(base_image)
            for i in range(top, len(layers)):
                layer = layers[i]
                assert isinstance(layer, Layer), "a pending layer's snapshot went missing"
                parent = layers[i - 1].snapshot if i else None
                path = unpacked.get(layer.chain_id)
                if path is not None:
                    self.cache.lease("snapshot:" + layer.chain_id, [layer.chain_id])
                    self._import(layer.chain_id, parent, path, move=False)
                else:
                    self._import_blob(layer, parent, [layers[j].snapshot for j in
                                                      range(i - 1, -1, -1)])
            return layers[-1].snapshot

    def _unpack_base(self, manifest_digest: str | None) -> dict[str, Path]:
        if manifest_digest is None:
            return {}
        store = self.store()
        try:
            image = store.resolve(manifest_digest)
        except NotFound:
            return {}
        paths = store.unpack(image)
        return {row.chain_id: path for row, path in zip(store.layers(image), paths, strict=True)}

    def _import(self, name: str, parent: str | None, path: Path, *, move: bool) -> None:
        try:
            self.snapshotter.import_committed(name, parent, path, move=move)
        except AlreadyExists:
            if not self._exists(name):  # another process's import failed: try once more
                self.snapshotter.import_committed(name, parent, path, move=move)

    def _import_blob(self, layer: Layer, parent: str | None, lowers: list[str]) -> None:
        tmp = self.snapshotter.root / f"import-{uuid.uuid4().hex[:12]}"
        tmp.mkdir(parents=True)
        try:
            parents = [self.snapshotter.tree_path(n) for n in lowers]  # type: ignore[attr-defined]
            with self.store().content.open(layer.descriptor.digest) as stream:
                apply_layer(stream, tmp, whiteouts="overlay",
                            expected_diff_id=Digest.parse(layer.diff_id), parents=parents)
            self._import(layer.chain_id, parent, tmp, move=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @contextlib.contextmanager
    def active(self, layers: Sequence[LayerRef], base_image: str | None = None,
               label: str = "step") -> Iterator[Active]:
        """A writable snapshot on top of `layers`; removed on error unless committed."""
        key = f"{label}-{uuid.uuid4().hex[:16]}"
        with self._lock:  # the parent's name holds until prepare (the writer renames)
            mounts = self.snapshotter.prepare(key, self.ensure(layers, base_image))
        try:
            yield Active(key, mounts)
        finally:
            with contextlib.suppress(NotFound):
                self.snapshotter.remove(key)

    @contextlib.contextmanager
    def view(self, layers: Sequence[LayerRef], base_image: str | None = None) -> Iterator[
            list[Mount] | None]:
        """Read-only mounts of the top of `layers` (None for an empty filesystem)."""
        key = f"view-{uuid.uuid4().hex[:16]}"
        with self._lock:
            parent = self.ensure(layers, base_image)
            mounts = None if parent is None else self.snapshotter.view(key, parent)
        if mounts is None:
            yield None
            return
        try:
            yield mounts
        finally:
            with contextlib.suppress(NotFound):
                self.snapshotter.remove(key)

    def commit(self, active: Active, parent: LayerRef | None, *,
               keep_empty: bool = False) -> PendingLayer | None:
        """Commit the changes of `active` on top of layer `parent` (None: a layer of its own,
        as COPY --link makes). The snapshot is committed at once; the layer blob is written
        in the writer thread (see the module docstring). Returns None when nothing changed
        (unless `keep_empty`: docker commits an empty layer for a COPY that copied nothing)."""
        changes = list(self.snapshotter.changes(active.key))
        if not changes and not keep_empty:
            return None
        pending = PendingLayer(f"pending-{uuid.uuid4().hex[:16]}")
        with self._lock:
            self.snapshotter.commit(pending.snapshot, active.key)
            self._provisional.append(pending.snapshot)
            self._pending.append(pending)
        self.after(lambda: self._write(pending, changes, parent))
        return pending

    def _write(self, pending: PendingLayer, changes: list[Change],
               parent: LayerRef | None) -> None:
        """The writer's half of `commit`: the blob, then the snapshot's chain-ID name."""
        try:
            content = self.store().content
            compression = self.compression
            if compression == "gzip" and self.adaptive and incompressible(changes):
                compression = "none"
            with content.writer("layer") as w:
                info = write_layer(changes, w, compression=compression, level=self.level,
                                   source_date_epoch=self.epoch)
                w.commit(info.size, info.digest)
            chain = next_chain_id(None if parent is None else parent.chain_id,
                                  str(info.diff_id))
            with self._lock:
                try:
                    if not self.snapshotter.rename(pending.snapshot, chain):
                        self._merged[pending.snapshot] = chain  # the same layer, built before
                    self._provisional.remove(pending.snapshot)
                    pending.snapshot = chain  # what later steps build on
                except FailedPrecondition:
                    pass  # `chain` is another process's import in progress: keep ours
        except BaseException as exc:  # for whoever needs the layer: drain() or the next step
            pending.future.set_exception(exc)
            return
        pending.future.set_result(Layer(Descriptor(info.media_type, info.digest, info.size),
                                        str(info.diff_id), chain))


SAMPLE_FILES = 16
SAMPLE_BYTES = 16 << 10
SAMPLE_TOTAL = 256 << 10  # zlib-1 of this much takes ~2 ms: a quarter of the old sample
MIN_SAMPLE = 128 << 10
MIN_LAYER = 4 << 20  # smaller layers are gzipped without asking (cheap, the common format)


def incompressible(changes: Sequence[Change]) -> bool:
    """Would gzip gain (almost) nothing on this layer? Samples the start of its largest
    files (about 256 KiB in all) with zlib level 1. Such layers are written as plain tar (a valid
    OCI media type every client reads): compressing random or already-compressed data only
    costs CPU (~0.5 s per 200 MiB here) and adds bytes."""
    import zlib

    sized: list[tuple[int, Path]] = []
    for change in changes:
        if change.source is None:
            continue
        try:
            st = os.lstat(change.source)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size:
            sized.append((st.st_size, change.source))
    if sum(size for size, _ in sized) < MIN_LAYER:
        return False  # small layers: gzip is cheap, keep the common format
    sized.sort(key=lambda t: -t[0])
    raw = 0
    packed = 0
    comp = zlib.compressobj(1)
    picked = sized[:SAMPLE_FILES]
    per_file = max(SAMPLE_BYTES, SAMPLE_TOTAL // len(picked))
    for _, path in picked:
        try:
            with open(path, "rb") as f:
                data = f.read(per_file)
        except OSError:
            continue
        raw += len(data)
        packed += len(comp.compress(data))
    packed += len(comp.flush())
    return raw >= MIN_SAMPLE and packed > 0.95 * raw
