"""builder.mounts: the one module that mounts, tested with real mounts (root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import InvalidArgument
from builder.mounts import (
    Mount,
    MountError,
    _compact_overlay,
    is_mounted,
    mount_all,
    temp_mount,
)


def test_lowerdirs_become_relative_to_their_common_parent() -> None:
    opts, cwd = _compact_overlay(
        ["index=off", "lowerdir=/s/l/12:/s/l/3", "upperdir=/s/snapshots/9/fs"])
    assert cwd == "/s/l"
    assert opts == ["index=off", "lowerdir=12:3", "upperdir=/s/snapshots/9/fs"]


def test_a_single_lowerdir_is_left_alone() -> None:
    assert _compact_overlay(["lowerdir=/a/b"]) == (["lowerdir=/a/b"], None)


def test_bind_mount_is_visible_then_gone(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("hi")
    with temp_mount([Mount("bind", str(tmp_path / "src"), "/", ("rbind", "ro"))]) as root:
        assert (root / "f").read_text() == "hi"
        assert is_mounted(root)
    assert not root.exists()


def test_nested_targets_mount_in_order_and_unmount_in_reverse(tmp_path: Path) -> None:
    (tmp_path / "rootsrc" / "data").mkdir(parents=True)
    (tmp_path / "mnt").mkdir()
    mounts = [Mount("bind", str(tmp_path / "rootsrc"), "/", ("rbind",)),
              Mount("tmpfs", "tmpfs", "/data", ("size=1m",))]
    with mount_all(mounts, tmp_path / "mnt") as root:
        (root / "data" / "in-tmpfs").write_text("x")
    assert not is_mounted(tmp_path / "mnt")
    assert list((tmp_path / "rootsrc" / "data").iterdir()) == []


def test_a_failing_mount_unmounts_the_earlier_ones(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "mnt").mkdir()
    mounts = [Mount("bind", str(tmp_path / "src"), "/", ("rbind",)),
              Mount("bind", str(tmp_path / "missing"), "/x", ("rbind",))]
    with pytest.raises(MountError), mount_all(mounts, tmp_path / "mnt"):
        pass
    assert not is_mounted(tmp_path / "mnt")


def test_targets_with_dotdot_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument), mount_all(
            [Mount("tmpfs", "tmpfs", "/../etc", ())], tmp_path):
        pass
