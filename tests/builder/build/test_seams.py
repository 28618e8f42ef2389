"""Builder's extension seams: a StepCache, a BaseResolver and an ImageWriter passed in are the
ones the build uses (builder.remotecache builds the CI cache on them)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from build_util import Strata

from builder.bases import BaseImage, StoreResolver
from builder.build import Builder, BuildOptions, FinalImage, StoreImageWriter
from builder.cache import BuildCache, CacheRecord, LocalStepCache, StepInfo
from builder.images import Image, ImageStore
from builder.progress import open_progress

DOCKERFILE = """\
FROM busybox AS base
COPY a.txt /a.txt

FROM base
COPY --from=base /a.txt /b.txt
WORKDIR /w
"""


class RecordingStepCache:
    """A StepCache over the local one that logs every call."""

    def __init__(self, local: LocalStepCache) -> None:
        self.local = local
        self.calls: list[tuple[str, StepInfo]] = []

    def lookup(self, step: StepInfo) -> CacheRecord | None:
        self.calls.append(("lookup", step))
        return self.local.lookup(step)

    def prepare(self, step: StepInfo) -> None:
        self.calls.append(("prepare", step))

    def record(self, step: StepInfo, record: CacheRecord) -> None:
        self.calls.append(("record", step))
        self.local.record(step, record)


class CountingResolver:
    def __init__(self, inner: StoreResolver) -> None:
        self.inner = inner
        self.refs: list[str] = []

    def resolve(self, ref: str) -> BaseImage:
        self.refs.append(ref)
        return self.inner.resolve(ref)


class KeepingWriter:
    def __init__(self) -> None:
        self.finals: list[FinalImage] = []

    def write_image(self, store: ImageStore, final: FinalImage) -> Image:
        self.finals.append(final)
        return StoreImageWriter().write_image(store, final)


Seams = tuple[RecordingStepCache, CountingResolver, KeepingWriter, int]


def _build(root: Path, context: Path, snapshotter: str) -> Seams:
    store = ImageStore(root)
    cache = BuildCache(root / "strata.db")
    try:
        steps = RecordingStepCache(LocalStepCache(cache, store.content))
        resolver = CountingResolver(StoreResolver(store))
        writer = KeepingWriter()
        builder = Builder(root, BuildOptions(context_dir=context, tags=("seams:1",),
                                             snapshotter=snapshotter),
                          open_progress("plain", io.StringIO()), step_cache=steps,
                          resolver=resolver, image_writer=writer)
        result = builder.build()
        return steps, resolver, writer, result.cached
    finally:
        cache.close()
        store.close()


def test_builder_asks_the_seams_it_is_given(strata: Strata, context: Callable[..., Path]) -> None:
    root = strata.root
    ctx = context(DOCKERFILE, {"a.txt": "a\n"})

    steps, resolver, writer, cached = _build(root, ctx, strata.snapshotter)
    assert resolver.refs == ["busybox"]
    # each step: lookup, prepare, run; its record comes once its layer blob is written
    # (the writer thread runs behind the steps, so records may trail later lookups)
    keys = list(dict.fromkeys(info.key for _, info in steps.calls))
    assert len(keys) == 3
    for key in keys:
        assert [c for c, info in steps.calls if info.key == key] == [
            "lookup", "prepare", "record"]
    prepared = [info for c, info in steps.calls if c == "prepare"]
    copy_from = prepared[1]
    assert (copy_from.stage, copy_from.stage_label) == (1, "stage-1")
    # the blobs a COPY --from would read: its own chain, then the chain of the stage it
    # reads; the a.txt layer is not among them: this build is writing it, it is local
    busybox = prepared[0].blobs
    assert len(busybox) == 1
    assert copy_from.blobs == busybox * 2
    assert copy_from.parent_key == prepared[0].key
    assert cached == 0
    final = writer.finals[0]
    assert final.tags == ("seams:1",) and final.stages == (1, 0)

    steps, _, _, cached = _build(root, ctx, strata.snapshotter)
    assert [c for c, _ in steps.calls] == ["lookup"] * 3
    assert cached == 3
