"""SOURCE_DATE_EPOCH: two clean builds of the same input give the same image digest."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from build_util import Strata

Ctx = Callable[..., Path]

DOCKERFILE = ("FROM busybox\nRUN echo built > /built && mkdir -p /var/x && touch /var/x/f\n"
              "COPY files /files\nENV A=1\nCMD [\"sh\"]\n")


def test_two_clean_builds_give_the_same_digest(strata: Strata, context: Ctx, tmp_path: Path,
                                               busybox_rootfs_tar: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    digests = []
    for i in range(2):
        s = Strata(tmp_path / f"root{i}", strata.snapshotter, strata.capsys)
        assert s("import", str(busybox_rootfs_tar), "busybox:latest").rc == 0
        ctx = context(DOCKERFILE, {"files/a": "a", "files/b/c": "c"})
        # sources newer than the epoch are clamped (older mtimes are kept, as BuildKit does)
        os.utime(ctx / "files/a", (1_800_000_000 + i, 1_800_000_000 + i))
        assert s.build(ctx, "-t", "repro:1").rc == 0
        info = s.inspect("repro:1")
        digests.append((info["Id"], info.get("RepoDigests"), info["Created"]))
    assert digests[0] == digests[1]
    assert digests[0][2]== "2023-11-14T22:13:20Z"


def test_without_epoch_created_is_the_build_time(strata: Strata, context: Ctx,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert strata.build(context("FROM busybox\nRUN true > /x\n"), "-t", "now:1").rc == 0
    assert strata.inspect("now:1")["Created"] > "2024"


def test_an_epoch_build_never_reuses_unclamped_cache(strata: Strata, context: Ctx,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context("FROM busybox\nRUN echo x > /x\n")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert strata.build(ctx).rc == 0
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert "0 steps cached, 1 run" in strata.build(ctx).err
    assert "1 steps cached, 0 run" in strata.build(ctx).err
