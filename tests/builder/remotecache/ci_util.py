"""Helpers for the CI-cache scenario tests: runners with their own --root, a base image in the
registry, and builds through builder.remotecache.engine with a captured progress log."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from transfer_registries import RunningRegistry, strata

from builder.build import BuildOptions, BuildResult
from builder.progress import open_progress
from builder.remotecache.engine import CacheAwareBuilder, CacheOptions, CacheResult
from builder.remotecache.format import StepRecord
from builder.remotecache.spec import parse_cache_from, parse_cache_to

DOCKERFILE = """\
FROM {base} AS deps
RUN head -c 24 /dev/urandom | od -An -tx1 > /deps.rand
COPY lib.txt /lib.txt
RUN cat /lib.txt /deps.rand > /combined

FROM {base} AS app
WORKDIR /app
COPY --from=deps /combined /app/combined
COPY app.txt /app/app.txt
RUN head -c 24 /dev/urandom | od -An -tx1 > /app/built && cat app.txt >> /app/built
RUN echo done > /app/done
ENV MODE=prod
CMD ["cat", "/app/built"]
"""
#: steps that run a process or write a layer (RUN/COPY/WORKDIR), per stage
STEPS = 8


def seed_base(tmp: Path, registry: RunningRegistry, busybox_tar: Path) -> str:
    """Push busybox to the registry; runners pull it as a FROM base."""
    ref = f"{registry.host}/library/busybox:1"
    strata(tmp / "seed", "import", str(busybox_tar), "busybox:latest")
    strata(tmp / "seed", "push", "-q", ref, "busybox:latest")
    return ref


def make_context(dest: Path, base: str, app: str = "app v1\n") -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    (dest / "lib.txt").write_text("lib v1\n")
    (dest / "app.txt").write_text(app)
    return dest


@dataclass
class Run:
    result: BuildResult
    cache: CacheResult
    log: str
    cache_records: list[StepRecord]


def run_build(root: Path, context: Path, *, tags: tuple[str, ...] = (),
              cache_from: tuple[str, ...] = (), cache_to: tuple[str, ...] = (),
              push: bool = False) -> Run:
    stream = io.StringIO()
    progress = open_progress("plain", stream)
    options = BuildOptions(context_dir=context, tags=tags)
    cache = CacheOptions(tuple(parse_cache_from(c) for c in cache_from),
                         tuple(parse_cache_to(c) for c in cache_to), push)
    builder = CacheAwareBuilder(root, options, progress, cache)
    result = builder.build()
    progress.close(None)
    records = list(builder.remote.document("max", []).records.values())
    return Run(result, builder.cache_result, stream.getvalue(), records)
