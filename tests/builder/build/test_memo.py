"""The build memo: an unchanged rebuild is answered without running the build engine, and
every input that can change the image sends the build back through it."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from build_util import Strata
from test_copy import http_server  # noqa: F401  (the fixture: one local HTTP server)

from builder import build as build_module
from builder import buildmemo, cachekey

Ctx = Callable[..., Path]

DOCKERFILE = """\
FROM busybox:latest AS app
ARG FLAVOUR=plain
COPY . /app/
RUN cat /app/a.txt > /made.txt && echo "$FLAVOUR" >> /made.txt
"""


@pytest.fixture
def engine_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the builds that went through the build engine (not answered by the memo)."""
    calls: list[int] = []
    real = build_module.Builder.build

    def counting(self: build_module.Builder) -> build_module.BuildResult:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(build_module.Builder, "build", counting)
    return calls


@pytest.fixture
def ctx(context: Ctx) -> Iterator[Path]:
    path = context(DOCKERFILE, {"a.txt": "alpha\n", "sub/b.txt": "beta\n"})
    settle()
    yield path


def settle() -> None:
    """Let the racy window pass: files written just now are not trusted by stat alone."""
    time.sleep(0.12)


def image_id(strata: Strata, ref: str) -> str:
    return str(strata.inspect(ref)["Id"])


def built(strata: Strata, ctx: Path, *args: str) -> str:
    res = strata.build(ctx, "-t", "memo:1", *args)
    assert res.rc == 0, res.err
    return image_id(strata, "memo:1")


def test_step_key_version_is_pinned() -> None:
    assert buildmemo.STEP_KEY_VERSION == cachekey.KEY_VERSION


def test_an_unchanged_rebuild_is_answered_by_the_memo(strata: Strata, ctx: Path,
                                                      engine_runs: list[int]) -> None:
    first = built(strata, ctx)
    assert len(engine_runs) == 1
    res = strata.build(ctx, "-t", "memo:1")
    assert res.rc == 0, res.err
    assert len(engine_runs) == 1  # no parse, no plan, no step lookups
    assert image_id(strata, "memo:1") == first
    # the replay shows the steps as the fully cached build would
    assert "[app 2/3] COPY . /app/" in res.err
    assert res.err.count("CACHED") == 2
    assert f"image ID {first}" in res.err
    assert "2 steps cached, 0 run" in res.err


def test_quiet_and_iidfile_work_on_a_memo_hit(strata: Strata, ctx: Path, tmp_path: Path,
                                              engine_runs: list[int]) -> None:
    first = built(strata, ctx)
    iid = tmp_path / "iid"
    res = strata("build", "-q", "--iidfile", str(iid), "-t", "memo:1", str(ctx))
    assert res.rc == 0, res.err
    assert len(engine_runs) == 1
    assert res.out.strip() == first
    assert iid.read_text() == first


def _rewrite(ctx: Path) -> None:
    (ctx / "a.txt").write_text("ALPHA\n")  # same size, new content


def _touch(ctx: Path) -> None:
    os.utime(ctx / "a.txt")


def _add(ctx: Path) -> None:
    (ctx / "sub" / "c.txt").write_text("gamma\n")


def _remove(ctx: Path) -> None:
    (ctx / "sub" / "b.txt").unlink()


def _chmod(ctx: Path) -> None:
    (ctx / "sub" / "b.txt").chmod(0o600)


def _edit_dockerfile(ctx: Path) -> None:
    with (ctx / "Dockerfile").open("a") as f:
        f.write("ENV EXTRA=1\n")


def _ignore(ctx: Path) -> None:
    (ctx / ".dockerignore").write_text("sub\n")


@pytest.mark.parametrize("change", [_rewrite, _touch, _add, _remove, _chmod, _edit_dockerfile,
                                    _ignore])
def test_a_changed_input_goes_through_the_engine(strata: Strata, ctx: Path,
                                                 engine_runs: list[int],
                                                 change: Callable[[Path], None]) -> None:
    first = built(strata, ctx)
    change(ctx)
    settle()
    second = built(strata, ctx)
    assert len(engine_runs) == 2
    if change in (_touch,):
        assert second == first  # the step cache still hits: same image
    else:
        assert second != first
    built(strata, ctx)
    assert len(engine_runs) == 2  # and the new state is memoized in turn


def test_build_args_tags_and_targets_are_part_of_the_invocation(
        strata: Strata, ctx: Path, engine_runs: list[int]) -> None:
    first = built(strata, ctx)
    assert strata.build(ctx, "-t", "memo:spicy", "--build-arg", "FLAVOUR=spicy").rc == 0
    assert image_id(strata, "memo:spicy") != first and len(engine_runs) == 2
    assert built(strata, ctx) == first and len(engine_runs) == 2
    res = strata.build(ctx, "-t", "memo:2")
    assert res.rc == 0 and len(engine_runs) == 3
    assert image_id(strata, "memo:2") == first
    assert strata.build(ctx, "-t", "memo:2", "--target", "app").rc == 0
    assert len(engine_runs) == 4


def test_a_retagged_base_image_goes_through_the_engine(strata: Strata, ctx: Path,
                                                       context: Ctx,
                                                       engine_runs: list[int]) -> None:
    first = built(strata, ctx)
    base = context("FROM busybox:latest\nRUN echo other > /base.txt\n")
    assert strata.build(base, "-t", "busybox:latest").rc == 0
    runs = len(engine_runs)
    second = built(strata, ctx)
    assert len(engine_runs) == runs + 1
    assert second != first


def test_a_moved_tag_or_a_removed_image_goes_through_the_engine(
        strata: Strata, ctx: Path, engine_runs: list[int]) -> None:
    first = built(strata, ctx)
    assert strata("tag", "busybox:latest", "memo:1").rc == 0  # -t name points elsewhere now
    assert built(strata, ctx) == first
    assert len(engine_runs) == 2
    assert strata("rmi", "memo:1").rc == 0
    assert built(strata, ctx) == first  # rebuilt from the step cache
    assert len(engine_runs) == 3


def test_a_missing_blob_goes_through_the_engine(strata: Strata, ctx: Path,
                                                engine_runs: list[int]) -> None:
    built(strata, ctx)
    with sqlite3.connect(strata.root / "strata.db") as db:
        rows = db.execute("SELECT blob_digest FROM image_layers i JOIN refs r ON "
                          "r.manifest_digest = i.manifest_digest WHERE r.name = 'memo:1' "
                          "ORDER BY idx DESC LIMIT 1").fetchall()
    algorithm, _, encoded = rows[0][0].partition(":")
    (strata.root / "oci" / "blobs" / algorithm / encoded).unlink()
    res = strata.build(ctx, "-t", "memo:1")
    assert res.rc == 0, res.err
    assert len(engine_runs) == 2


def test_no_cache_skips_the_memo_and_builder_prune_forgets_it(
        strata: Strata, ctx: Path, engine_runs: list[int]) -> None:
    built(strata, ctx)
    res = strata.build(ctx, "-t", "memo:1", "--no-cache")
    assert res.rc == 0 and len(engine_runs) == 2
    assert "CACHED" not in res.err
    built(strata, ctx)
    assert len(engine_runs) == 2  # the --no-cache result is what the cache answers now
    assert strata("builder", "prune").rc == 0
    assert not list((strata.root / buildmemo.MEMO_DIR).iterdir())
    built(strata, ctx)
    assert len(engine_runs) == 3


def test_fresh_files_are_not_memoized(strata: Strata, context: Ctx,
                                      engine_runs: list[int]) -> None:
    path = context(DOCKERFILE, {"a.txt": "alpha\n"})  # built at once: racily clean
    built(strata, path)
    built(strata, path)
    assert len(engine_runs) == 2


def test_a_build_that_fetched_a_url_is_never_memoized(strata: Strata, context: Ctx,
                                                      http_server: str,  # noqa: F811
                                                      engine_runs: list[int]) -> None:
    path = context(f"FROM busybox:latest\nADD {http_server}/file.txt /file.txt\n")
    settle()
    built(strata, path)
    built(strata, path)
    assert len(engine_runs) == 2


def test_a_change_in_an_ignored_directory_keeps_the_memo(strata: Strata, ctx: Path,
                                                         engine_runs: list[int]) -> None:
    (ctx / ".dockerignore").write_text("scratch\n")
    (ctx / "scratch").mkdir()
    (ctx / "scratch" / "log.txt").write_text("one\n")
    settle()
    first = built(strata, ctx)
    (ctx / "scratch" / "log.txt").write_text("two, longer\n")  # never reaches the build
    (ctx / "scratch" / "new.txt").write_text("new\n")
    assert built(strata, ctx) == first
    assert len(engine_runs) == 1
