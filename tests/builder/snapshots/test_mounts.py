"""builder.mounts: the one module that mounts, tested with real mounts (root)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from builder.errors import InvalidArgument
from builder.mounts import (
    Mount,
    MountError,
    _compact_overlay,
    is_mounted,
    mount,
    mount_all,
    parse_options,
    temp_mount,
    unmount,
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


def test_options_split_into_flags_propagation_and_data() -> None:
    # linux/mount.h: MS_RDONLY 1, MS_NOSUID 2, MS_BIND 4096, MS_REC 16384,
    # MS_PRIVATE 1 << 18, MS_STRICTATIME 1 << 24
    flags, propagation, data = parse_options(
        ["rbind", "ro", "nosuid", "rprivate", "mode=755", "size=64k"])
    assert flags == 4096 | 16384 | 1 | 2
    assert propagation == (1 << 18) | 16384
    assert data == "mode=755,size=64k"
    assert parse_options(["ro", "rw", "noexec", "exec", "strictatime"])[0] == 1 << 24


def test_a_read_only_bind_is_read_only_and_private(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "f").write_text("x")
    mount(Mount("bind", str(src), options=("rbind", "ro", "rprivate")), dst)
    try:
        assert (dst / "f").read_text() == "x"
        with pytest.raises(OSError) as info:
            (dst / "g").write_text("y")
        assert info.value.errno == errno.EROFS
        with open("/proc/self/mountinfo") as fh:
            line = next(x for x in fh if x.split(" ")[4] == str(dst))
        assert "shared:" not in line and " ro," in line
    finally:
        unmount(dst)
    assert not is_mounted(dst)


def test_mount_and_unmount_failures_carry_the_kernel_reason(tmp_path: Path) -> None:
    (tmp_path / "dst").mkdir()
    with pytest.raises(MountError, match="No such file or directory"):
        mount(Mount("bind", str(tmp_path / "missing")), tmp_path / "dst")
    with pytest.raises(MountError, match=r"umount .*dst: Invalid argument"):
        unmount(tmp_path / "dst")  # not a mount point


def test_a_busy_mount_is_detached_lazily(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    mount(Mount("tmpfs", "tmpfs", options=("size=1m",)), dst)
    fd = os.open(dst, os.O_RDONLY)  # an open directory keeps the mount busy
    try:
        unmount(dst)
        assert not is_mounted(dst)
    finally:
        os.close(fd)
