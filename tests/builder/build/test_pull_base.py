"""A base image named with its registry is pulled when the store lacks it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from build_util import Strata
from transfer_registries import RunningRegistry, start_strata_registry

Ctx = Callable[..., Path]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    base = tmp_path / "registry"
    base.mkdir()
    reg = start_strata_registry(base)
    yield reg
    reg.stop()


def test_missing_base_is_pulled_from_its_registry(strata: Strata, context: Ctx, tmp_path: Path,
                                                  registry: RunningRegistry) -> None:
    remote = f"{registry.host}/library/busybox:1"
    push = strata("push", "-q", remote, "busybox:latest")
    assert push.rc == 0, push.err
    fresh = Strata(tmp_path / "fresh-root", strata.snapshotter, strata.capsys)
    res = fresh.build(context(f"FROM {remote}\nRUN echo pulled > /p\n"), "-t", "p:1")
    assert res.rc == 0, res.err
    assert fresh.run("p:1", "cat", "/p").stdout == "pulled\n"
    assert fresh("system", "check").rc == 0


def test_a_bare_missing_name_is_not_pulled(strata: Strata, context: Ctx) -> None:
    res = strata.build(context("FROM nosuch/thing:1\nRUN true\n"))
    assert res.rc == 3 and "not found in the local store" in res.err
