"""Multi-stage builds: --target, unused stages, COPY --from, FROM <stage>, ONBUILD."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from build_util import Strata

Ctx = Callable[..., Path]

MULTI = """FROM busybox AS builder
RUN echo built > /artifact && chown 1000:1000 /artifact
FROM busybox AS unused
RUN echo this stage must not run && exit 9
FROM builder AS derived
ENV FROM_DERIVED=1
RUN echo derived > /derived
FROM scratch AS final
COPY --from=builder /artifact /artifact
COPY --from=2 /derived /derived
COPY --from=busybox /bin/busybox /bin/busybox
"""


def test_unused_stages_are_not_built_and_copy_from_works(strata: Strata, context: Ctx,
                                                         tmp_path: Path) -> None:
    res = strata.build(context(MULTI), "-t", "multi:1")
    assert res.rc == 0, res.err
    assert "must not run" not in res.err
    tree = strata.files("multi:1", tmp_path / "t")
    assert (tree / "artifact").read_text() == "built\n"
    assert (tree / "artifact").stat().st_uid == 1000  # --from keeps owners
    assert (tree / "derived").read_text() == "derived\n"
    assert (tree / "bin/busybox").stat().st_size > 100_000
    assert sorted(p.name for p in tree.iterdir()) == ["artifact", "bin", "derived"]


def test_target_builds_only_what_it_needs(strata: Strata, context: Ctx, tmp_path: Path) -> None:
    res = strata.build(context(MULTI), "--target", "derived", "-t", "d:1")
    assert res.rc == 0, res.err
    assert "[final" not in res.err and "[unused" not in res.err
    cfg = strata.config("d:1")
    assert "FROM_DERIVED=1" in cfg["Env"]
    tree = strata.files("d:1", tmp_path / "t")
    assert (tree / "artifact").exists() and (tree / "derived").exists()


def test_target_of_an_unused_stage_runs_it(strata: Strata, context: Ctx) -> None:
    res = strata.build(context(MULTI), "--target", "unused")
    assert res.rc == 1 and "exit code 9" in res.err


def test_independent_stages_build_concurrently_and_cache(strata: Strata, context: Ctx) -> None:
    text = ("FROM busybox AS a\nRUN sleep 1; echo a > /a\nFROM busybox AS b\n"
            "RUN sleep 1; echo b > /b\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n")
    ctx = context(text)
    assert strata.build(ctx).rc == 0
    again = strata.build(ctx)
    assert "4 steps cached, 0 run" in again.err


def test_onbuild_triggers_run_in_the_child_and_are_not_inherited(strata: Strata, context: Ctx,
                                                                 tmp_path: Path) -> None:
    parent = context("FROM busybox\nONBUILD COPY marker.txt /marker\n"
                     "ONBUILD RUN echo triggered > /triggered\n")
    assert strata.build(parent, "-t", "onbuild-base:1").rc == 0
    child = context("FROM onbuild-base:1\nRUN cat /triggered > /seen\n",
                    {"marker.txt": "from child context\n"})
    res = strata.build(child, "-t", "onbuild-child:1")
    assert res.rc == 0, res.err
    tree = strata.files("onbuild-child:1", tmp_path / "t")
    assert (tree / "seen").read_text() == "triggered\n"
    assert (tree / "marker").read_text() == "from child context\n"
    assert not strata.config("onbuild-child:1").get("OnBuild")


def test_automatic_platform_args_are_defined(strata: Strata, context: Ctx,
                                             tmp_path: Path) -> None:
    ctx = context("FROM busybox\nARG TARGETPLATFORM\nARG TARGETARCH\nARG BUILDOS\n"
                  "RUN echo $TARGETPLATFORM $TARGETARCH $BUILDOS > /p\n")
    assert strata.build(ctx, "-t", "p:1").rc == 0
    from dockerfile_grammar.scope import host_platform

    host = host_platform()
    text = (strata.files("p:1", tmp_path / "t") / "p").read_text().split()
    assert text == [str(host), host.architecture, "linux"]


def test_global_args_pick_the_base_and_no_cache_filter_reruns_one_stage(
        strata: Strata, context: Ctx) -> None:
    text = ("ARG BASE=busybox\nFROM $BASE AS one\nRUN echo one > /one\n"
            "FROM ${BASE} AS two\nCOPY --from=0 /one /one\nRUN echo two > /two\n")
    ctx = context(text)
    assert strata.build(ctx).rc == 0
    res = strata.build(ctx, "--no-cache-filter", "two")
    assert "1 steps cached, 2 run" in res.err


def test_from_platform_other_than_the_host_is_refused(strata: Strata, context: Ctx) -> None:
    res = strata.build(context("FROM --platform=linux/s390x busybox\nRUN true\n"))
    assert res.rc == 2 and "FROM --platform" in res.err and "not supported" in res.err
