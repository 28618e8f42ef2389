"""The step cache against every kind of change (issue 4 acceptance)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from build_util import Strata

Ctx = Callable[..., Path]

DOCKERFILE = ("FROM busybox\nRUN echo one > /one\nCOPY data.txt /data.txt\n"
              "RUN cat /data.txt > /copy\nCMD [\"cat\", \"/copy\"]\n")


def statuses(err: str) -> list[str]:
    """'CACHED' or 'DONE' per step, in order, from plain progress output."""
    return [line.split()[1] for line in err.splitlines()
            if line.startswith("#") and line.split()[1] in ("CACHED", "DONE", "ERROR")]


def test_noop_rebuild_hits_every_step_and_gives_the_same_image(strata: Strata,
                                                               context: Ctx) -> None:
    ctx = context(DOCKERFILE, {"data.txt": "v1\n"})
    first = strata.build(ctx, "-q")
    second = strata.build(ctx)
    assert second.rc == 0
    assert statuses(second.err) == ["CACHED"] * 3
    assert "3 steps cached, 0 run" in second.err
    third = strata.build(ctx, "-q")
    assert first.out == third.out


def test_touching_a_file_mtime_only_is_a_hit(strata: Strata, context: Ctx) -> None:
    ctx = context(DOCKERFILE, {"data.txt": "v1\n"})
    assert strata.build(ctx).rc == 0
    later = time.time() + 100
    os.utime(ctx / "data.txt", (later, later))
    assert statuses(strata.build(ctx).err) == ["CACHED"] * 3


def test_changing_content_misses_from_that_step_on(strata: Strata, context: Ctx,
                                                   tmp_path: Path) -> None:
    ctx = context(DOCKERFILE, {"data.txt": "v1\n"})
    assert strata.build(ctx).rc == 0
    (ctx / "data.txt").write_text("v2\n")
    res = strata.build(ctx, "-t", "c:2")
    assert statuses(res.err) == ["CACHED", "DONE", "DONE"]
    assert (strata.files("c:2", tmp_path / "t") / "copy").read_text() == "v2\n"


def test_a_build_arg_misses_only_the_steps_that_use_it(strata: Strata, context: Ctx) -> None:
    ctx = context("FROM busybox\nRUN echo base > /base\nARG USED=a\nRUN echo $USED > /used\n"
                  "ARG UNUSED_LATER=x\n")
    assert strata.build(ctx).rc == 0
    res = strata.build(ctx, "--build-arg", "USED=b")
    assert statuses(res.err) == ["CACHED", "DONE"]
    # an arg declared after every RUN (or not declared at all) changes nothing
    res = strata.build(ctx, "--build-arg", "USED=b", "--build-arg", "UNUSED_LATER=y",
                       "--build-arg", "NOT_DECLARED=1")
    assert statuses(res.err) == ["CACHED", "CACHED"]


def test_a_changed_base_image_misses_everything(strata: Strata, context: Ctx,
                                                busybox_rootfs_tar: Path) -> None:
    ctx = context(DOCKERFILE, {"data.txt": "v1\n"})
    assert strata.build(ctx).rc == 0
    # same tag, new image (different content): keyed on the manifest digest, not the tag
    res = strata("import", "-c", "ENV CHANGED=1", str(busybox_rootfs_tar), "busybox:latest")
    assert res.rc == 0, res.err
    assert statuses(strata.build(ctx).err) == ["DONE"] * 3


def test_no_cache_runs_every_step(strata: Strata, context: Ctx) -> None:
    ctx = context(DOCKERFILE, {"data.txt": "v1\n"})
    assert strata.build(ctx).rc == 0
    res = strata.build(ctx, "--no-cache")
    assert statuses(res.err) == ["DONE"] * 3


def test_a_cache_record_whose_blob_is_gone_is_dropped_and_rebuilt(strata: Strata,
                                                                  context: Ctx) -> None:
    ctx = context("FROM busybox\nRUN echo x > /x\n")
    assert strata.build(ctx, "-t", "gone:1").rc == 0
    from builder.images import ImageStore

    with ImageStore(strata.root) as store:
        layer = store.layers(store.resolve("gone:1"))[-1]
    blob = strata.root / "oci/blobs/sha256" / layer.blob_digest.split(":")[1]
    assert strata("rmi", "gone:1").rc == 0
    blob.unlink()
    res = strata.build(ctx, "-t", "gone:1")
    assert res.rc == 0 and statuses(res.err) == ["DONE"]
    assert strata("system", "check").rc == 0


def test_chmod_copy_key_ignores_the_source_mode(strata: Strata, context: Ctx) -> None:
    ctx = context("FROM busybox\nCOPY --chmod=0755 tool /tool\n", {"tool": "#!/bin/sh\n"})
    assert strata.build(ctx).rc == 0
    os.chmod(ctx / "tool", 0o600)
    assert statuses(strata.build(ctx).err) == ["CACHED"]


def test_builder_prune_forgets_the_cache_and_prune_collects_its_blobs(
        strata: Strata, context: Ctx) -> None:
    ctx = context(DOCKERFILE, {"data.txt": "v1\n"})
    assert strata.build(ctx).rc == 0  # untagged: only the cache keeps its layers
    blobs = strata.root / "oci/blobs/sha256"
    before = len(list(blobs.iterdir()))
    res = strata("builder", "prune", "--all")
    assert res.rc == 0 and "removed 3 build cache records" in res.out
    assert not list((strata.root / "snapshots").glob("*/snapshots/*"))
    assert strata("prune").rc == 0
    assert len(list(blobs.iterdir())) < before
    assert strata("system", "check").rc == 0
    assert statuses(strata.build(ctx, "-t", "again:1").err) == ["DONE"] * 3
    assert strata.run("again:1").stdout == "v1\n"
