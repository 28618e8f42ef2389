from __future__ import annotations

import pytest

from builder.errors import InvalidArgument, NotFound
from builder.planner import SCRATCH, plan
from dockerfile_grammar import parse

MULTI = """\
ARG BASE=busybox
FROM ${BASE} AS deps
RUN echo deps
FROM deps AS build
COPY --from=assets /a /a
RUN echo build
FROM busybox AS assets
RUN echo assets
FROM busybox AS unused
RUN echo never
FROM scratch
COPY --from=build /out /out
COPY --from=alpine:3 /etc/os-release /
"""


def test_target_defaults_to_last_stage_and_skips_unneeded_stages() -> None:
    p = plan(parse(MULTI), global_env={"BASE": "busybox"})
    names = [p.stages[i].label for i in p.order]
    assert names == ["deps", "assets", "build", "stage-4"]
    assert not p.needed(3)
    assert p.stages[4].base.is_scratch
    assert p.stages[4].images == ("alpine:3",)


def test_independent_stages_share_a_level() -> None:
    p = plan(parse(MULTI), global_env={"BASE": "busybox"})
    assert p.levels[0] == (0, 2)  # deps and assets can run concurrently


def test_from_is_expanded_with_global_args_and_names_earlier_stages_only() -> None:
    p = plan(parse(MULTI), global_env={"BASE": "debian:bookworm"})
    assert p.stages[0].base.image == "debian:bookworm"
    assert p.stages[1].base.stage == 0


def test_target_selects_a_named_stage_case_insensitively() -> None:
    p = plan(parse(MULTI), target="BUILD")
    assert [p.stages[i].label for i in p.order] == ["deps", "assets", "build"]


def test_unknown_target_is_not_found() -> None:
    with pytest.raises(NotFound, match='target stage "nope" could not be found'):
        plan(parse(MULTI), target="nope")


def test_cyclic_copy_from_is_refused() -> None:
    df = parse("FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n")
    with pytest.raises(InvalidArgument, match="circular dependency"):
        plan(df)


def test_numeric_from_must_name_an_earlier_stage() -> None:
    ok = plan(parse("FROM busybox\nRUN true\nFROM busybox\nCOPY --from=0 /a /a\n"))
    assert ok.stages[1].deps == (0,)
    with pytest.raises(InvalidArgument):
        plan(parse("FROM busybox\nCOPY --from=0 /a /a\n"))


def test_run_mount_from_stage_is_a_dependency() -> None:
    df = parse("FROM busybox AS src\nRUN true\n"
               "FROM busybox\nRUN --mount=type=bind,from=src,target=/s cat /s/x\n")
    assert plan(df).stages[1].deps == (0,)


def test_scratch_constant() -> None:
    assert plan(parse("FROM scratch\n")).stages[0].base.image == SCRATCH
