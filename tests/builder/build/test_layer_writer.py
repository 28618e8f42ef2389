"""The workspace's layer writer: a step's snapshot is usable at once, its blob is written in
the background (in commit order), and the snapshot is then renamed to its chain ID."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from build_util import Strata

from builder.build import Builder, BuildOptions
from builder.cache import BuildCache, CacheRecord, LocalStepCache, StepInfo
from builder.errors import StepFailed
from builder.images import ImageStore
from builder.mounts import temp_mount
from builder.progress import open_progress
from builder.snapshots import open_snapshotter
from builder.steps import Layer, PendingLayer, next_chain_id
from builder.steps.workspace import Workspace

Ctx = Callable[..., Path]


@pytest.fixture
def ws(tmp_path: Path, snapshotter: str) -> Iterator[Workspace]:
    root = tmp_path / "store"
    ImageStore(root).close()
    cache = BuildCache(root / "strata.db")
    workspace = Workspace(root, open_snapshotter(root / "snapshots", snapshotter), cache)
    yield workspace
    workspace.close()
    cache.close()


def commit_file(ws: Workspace, parent: PendingLayer | Layer | None, name: str,
                text: str) -> PendingLayer:
    with ws.active([] if parent is None else [parent], label=name) as active:
        with temp_mount(active.mounts) as root:
            (root / name).write_text(text)
        layer = ws.commit(active, parent)
    assert layer is not None
    return layer


def names(ws: Workspace) -> set[str]:
    return {info.name for info in ws.snapshotter.walk()}


def test_the_next_step_runs_on_a_layer_whose_blob_is_not_written_yet(ws: Workspace) -> None:
    gate = threading.Event()
    ws.after(gate.wait)  # hold the writer thread
    first = commit_file(ws, None, "one", "1")
    assert not first.future.done() and first.snapshot.startswith("pending-")
    second = commit_file(ws, first, "two", "2")
    with ws.view([first, second]) as mounts, temp_mount(mounts or []) as root:
        assert (root / "one").read_text() == "1" and (root / "two").read_text() == "2"
    assert not second.future.done()
    assert ws.drain(timeout=0.05) is False  # the writer is held
    gate.set()
    assert ws.drain() is True
    one, two = first.result(), second.result()
    assert two.chain_id == next_chain_id(one.chain_id, two.diff_id)
    assert (first.snapshot, second.snapshot) == (one.chain_id, two.chain_id)
    assert names(ws) == {one.chain_id, two.chain_id}
    assert ws.snapshotter.stat(two.chain_id).parent == one.chain_id
    assert ws.store().content.exists(two.descriptor.digest)


def test_a_layer_built_again_takes_the_existing_snapshot(tmp_path: Path,
                                                         snapshotter: str) -> None:
    root = tmp_path / "store"
    ImageStore(root).close()
    cache = BuildCache(root / "strata.db")
    # with an epoch, the same file gives the same tar, hence the same chain ID
    ws = Workspace(root, open_snapshotter(root / "snapshots", snapshotter), cache,
                   source_date_epoch=1_700_000_000)
    try:
        first = commit_file(ws, None, "same", "x")
        ws.drain()
        gate = threading.Event()
        ws.after(gate.wait)
        twin = commit_file(ws, None, "same", "x")
        child = commit_file(ws, twin, "kid", "k")
        gate.set()
        ws.drain()
        assert twin.chain_id == first.chain_id == twin.snapshot
        assert ws.snapshotter.stat(child.snapshot).parent == first.chain_id
        # the twin's own tree stays (a mount may still use it) until the workspace closes
        assert len([n for n in names(ws) if n.startswith("pending-")]) == 1
    finally:
        ws.close()
        cache.close()
    assert names(ws) == {first.chain_id, child.chain_id}


def test_a_blob_that_cannot_be_written_fails_drain_and_leaves_no_snapshot(
        ws: Workspace) -> None:
    ingest = ws.store().content.ingest_dir
    gate = threading.Event()
    ws.after(gate.wait)
    first = commit_file(ws, None, "vanishes", "v")
    second = commit_file(ws, first, "after", "a")
    tree = ws.snapshotter.tree_path(first.snapshot)  # type: ignore[attr-defined]
    (tree / "vanishes").unlink()  # a broken tree
    gate.set()
    with pytest.raises(FileNotFoundError):
        ws.drain()
    with pytest.raises(FileNotFoundError):
        second.result()  # a child cannot name its chain without its parent's
    ws.close()
    assert names(ws) == set()
    assert not any((d / "data").exists() for d in ingest.glob("*"))  # no partial blob


def test_rebuilding_the_same_layers_leaves_one_snapshot_each(
        strata: Strata, context: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    ctx = context("FROM busybox\nRUN echo x > /x\nCOPY a /a\nRUN echo y > /y\n", {"a": "a"})
    assert strata.build(ctx, "-t", "same:1").rc == 0
    meta = strata.root / "snapshots" / strata.snapshotter / "metadata.json"
    before = set(json.loads(meta.read_text())["snapshots"])
    res = strata.build(ctx, "--no-cache", "-t", "same:2")
    assert res.rc == 0, res.err
    assert strata.inspect("same:1")["Id"] == strata.inspect("same:2")["Id"]
    assert set(json.loads(meta.read_text())["snapshots"]) == before
    assert all(name.startswith("sha256:") for name in before)
    assert strata.run("same:2", "cat", "/x", "/a", "/y").stdout == "x\nay\n"


class BreakingStepCache:
    """A StepCache that holds the writer (in the first step's record) until the third step
    is about to run, and meanwhile deletes /b from the second step's committed tree."""

    def __init__(self, local: LocalStepCache, snapshots: Path) -> None:
        self.local = local
        self.snapshots = snapshots
        self.gate = threading.Event()
        self.prepared = 0

    def lookup(self, step: StepInfo) -> CacheRecord | None:
        return self.local.lookup(step)

    def prepare(self, step: StepInfo) -> None:
        self.prepared += 1
        if self.prepared == 3:
            broken = list(self.snapshots.glob("*/snapshots/*/fs/b"))
            assert broken, "the second step's tree is not where the test expects it"
            for path in broken:
                path.unlink()
            self.gate.set()

    def record(self, step: StepInfo, record: CacheRecord) -> None:
        assert self.gate.wait(60)
        self.local.record(step, record)


def test_a_layer_that_cannot_be_written_fails_the_build_with_its_step(
        strata: Strata, context: Ctx) -> None:
    root = strata.root
    ctx = context("FROM busybox\nRUN echo a > /a\nRUN echo b > /b\nRUN echo c > /c\n")
    store = ImageStore(root)
    cache = BuildCache(root / "strata.db")
    try:
        steps = BreakingStepCache(LocalStepCache(cache, store.content), root / "snapshots")
        builder = Builder(root, BuildOptions(context_dir=ctx, tags=("broken:1",),
                                             snapshotter=strata.snapshotter),
                          open_progress("plain", io.StringIO()), step_cache=steps)
        with pytest.raises(StepFailed, match=r"\[stage-0 2/3\] RUN echo b > /b: writing its "
                                             r"layer: FileNotFoundError"):
            builder.build()
    finally:
        cache.close()
        store.close()
    meta = root / "snapshots" / strata.snapshotter / "metadata.json"
    assert not [n for n in json.loads(meta.read_text())["snapshots"] if n.startswith("pending")]
    assert strata("inspect", "broken:1").rc != 0  # no image
    assert strata("system", "check").rc == 0
    res = strata.build(ctx, "-t", "fixed:1")
    assert res.rc == 0, res.err
    assert "1 steps cached, 2 run" in res.err  # the first step's record was kept
    assert strata.run("fixed:1", "cat", "/a", "/b", "/c").stdout == "a\nb\nc\n"


class SlowRecordingStepCache:
    """A StepCache whose records take a while (as a large layer's blob would)."""

    def __init__(self, local: LocalStepCache, seconds: float) -> None:
        self.local = local
        self.seconds = seconds

    def lookup(self, step: StepInfo) -> CacheRecord | None:
        return self.local.lookup(step)

    def prepare(self, step: StepInfo) -> None:
        """Nothing to fetch."""

    def record(self, step: StepInfo, record: CacheRecord) -> None:
        threading.Event().wait(self.seconds)
        self.local.record(step, record)


def test_a_build_waiting_for_its_layer_writer_says_so(strata: Strata, context: Ctx) -> None:
    root = strata.root
    ctx = context("FROM busybox\nRUN echo a > /a\n")
    store = ImageStore(root)
    cache = BuildCache(root / "strata.db")
    out = io.StringIO()
    try:
        steps = SlowRecordingStepCache(LocalStepCache(cache, store.content), 1.5)
        builder = Builder(root, BuildOptions(context_dir=ctx, tags=("slow:1",),
                                             snapshotter=strata.snapshotter),
                          open_progress("plain", out), step_cache=steps)
        builder.build()
    finally:
        cache.close()
        store.close()
    assert "writing layer blobs ..." in out.getvalue()
    assert strata.run("slow:1", "cat", "/a").stdout == "a\n"
