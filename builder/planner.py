"""Dockerfile -> BuildPlan: the stage graph, the target, and the order stages can run in. Pure.

Edges come from `FROM <stage>` (earlier stages only, as BuildKit resolves base names while it
reads the file), `COPY --from=<name|index>` and `RUN --mount=...,from=<name>` (any stage, so
cycles are possible and are refused). A `--from` value that names no stage is an image
reference. Stages the target does not need are left out; stages in one `levels` entry do not
depend on each other and may run concurrently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from builder.errors import InvalidArgument, NotFound
from dockerfile_grammar.expand import ExpansionError, expand
from dockerfile_grammar.instructions import Copy, Dockerfile, Run, Stage
from dockerfile_grammar.scope import BuildScope

SCRATCH = "scratch"


@dataclass(frozen=True, slots=True)
class Base:
    """What a stage starts from: an earlier stage, an image reference, or scratch."""

    stage: int | None = None
    image: str | None = None

    @property
    def is_scratch(self) -> bool:
        return self.stage is None and self.image == SCRATCH


@dataclass(frozen=True, slots=True)
class StagePlan:
    index: int
    name: str | None
    stage: Stage
    base: Base
    platform: str | None
    deps: tuple[int, ...]            # stages whose results this stage reads
    images: tuple[str, ...]          # image references read by COPY --from / RUN --mount from=

    @property
    def label(self) -> str:
        return self.name if self.name is not None else f"stage-{self.index}"


@dataclass(frozen=True, slots=True)
class BuildPlan:
    stages: tuple[StagePlan, ...]    # every stage of the file, by index
    target: int
    order: tuple[int, ...]           # needed stages, dependencies first
    levels: tuple[tuple[int, ...], ...]

    def needed(self, index: int) -> bool:
        return index in self.order


def _expand(word: str, env: Mapping[str, str], escape: str, what: str, stage: Stage) -> str:
    try:
        return expand(word, env, escape=escape)
    except ExpansionError as exc:
        loc = stage.base.location
        raise InvalidArgument(f"{loc.filename}:{loc.line}: {what}: {exc}") from None


def _stage_index(df: Dockerfile, ref: str, *, before: int | None) -> int | None:
    """The stage a name or index refers to (None: not a stage, so an image)."""
    if ref.isdigit():
        index = int(ref)
        if before is not None and index >= before:
            raise InvalidArgument(
                f"invalid from flag value {ref}: refers to current or later build stage")
        if index >= len(df.stages):
            raise NotFound(f"invalid from flag value {ref}: no stage with that index")
        return index
    lowered = ref.lower()
    limit = len(df.stages) if before is None else before
    for st in df.stages[:limit]:
        if st.name == lowered:
            return st.index
    return None


def plan(df: Dockerfile, *, target: str | None = None,
         global_env: Mapping[str, str] | None = None) -> BuildPlan:
    """Plan the build of `target` (default: the last stage).

    `global_env` holds the values of the global ARGs (defaults overridden by build args, plus
    the automatic platform ARGs; default: `BuildScope(df).global_env`): FROM lines and
    `--from` values are expanded with it.
    """
    if not df.stages:
        raise InvalidArgument("the Dockerfile has no FROM instruction (no build stage)")
    env = dict(BuildScope(df).global_env if global_env is None else global_env)
    escape = df.directives.escape
    stages: list[StagePlan] = []
    for st in df.stages:
        image = _expand(st.base.image, env, escape, "FROM", st)
        if not image:
            raise InvalidArgument(
                f"{st.base.location.filename}:{st.base.location.line}: "
                "base name should not be blank")
        base_stage = _stage_index(df, image, before=st.index) if not image.isdigit() else None
        if base_stage is not None:
            base = Base(stage=base_stage)
        else:
            base = Base(image=SCRATCH if image.lower() == SCRATCH else image)
        platform = (_expand(st.base.platform, env, escape, "FROM --platform", st)
                    if st.base.platform else None)
        deps: list[int] = [] if base_stage is None else [base_stage]
        images: list[str] = []
        for instr in st.instructions:
            refs: list[str] = []
            if isinstance(instr, Copy) and instr.from_:
                refs.append(instr.from_)
            elif isinstance(instr, Run):
                refs.extend(m.from_ for m in instr.mounts if m.from_)
            for raw in refs:
                ref = _expand(raw, env, escape, "--from", st)
                idx = _stage_index(df, ref, before=st.index if ref.isdigit() else None)
                if idx is None:
                    images.append(ref)
                elif idx == st.index:
                    raise InvalidArgument(
                        f"{instr.location.filename}:{instr.location.line}: "
                        f"stage {st.name or st.index} cannot copy from itself")
                elif idx not in deps:
                    deps.append(idx)
        stages.append(StagePlan(st.index, st.name, st, base, platform, tuple(deps),
                                tuple(images)))

    target_index = _target_index(df, target)
    order = _topological(stages, target_index)
    return BuildPlan(tuple(stages), target_index, tuple(order), _levels(stages, order))


def _target_index(df: Dockerfile, target: str | None) -> int:
    if target is None:
        return df.stages[-1].index
    lowered = target.lower()
    for st in df.stages:
        if st.name == lowered:
            return st.index
    raise NotFound(f'target stage "{target}" could not be found')


def _topological(stages: list[StagePlan], target: int) -> list[int]:
    order: list[int] = []
    state: dict[int, str] = {}

    def visit(index: int, path: list[int]) -> None:
        if state.get(index) == "done":
            return
        if state.get(index) == "active":
            names = " -> ".join(stages[i].label for i in [*path, index])
            raise InvalidArgument(f"circular dependency detected on stage: "
                                  f"{stages[index].label} ({names})")
        state[index] = "active"
        for dep in stages[index].deps:
            visit(dep, [*path, index])
        state[index] = "done"
        order.append(index)

    visit(target, [])
    return order


def _levels(stages: list[StagePlan], order: list[int]) -> tuple[tuple[int, ...], ...]:
    depth: dict[int, int] = {}
    for index in order:  # dependencies come first in `order`
        depth[index] = 1 + max((depth[d] for d in stages[index].deps), default=-1)
    levels: dict[int, list[int]] = {}
    for index, level in depth.items():
        levels.setdefault(level, []).append(index)
    return tuple(tuple(sorted(levels[k])) for k in sorted(levels))
