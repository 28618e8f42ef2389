"""resolve_in_root: symlinks read inside the root, `..` clamped, loops bounded."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from builder.errors import InvalidArgument
from builder.layers import resolve_in_root


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "usr" / "lib").mkdir(parents=True)
    (r / "etc").mkdir()
    os.symlink("/usr/lib", r / "lib")  # absolute: re-rooted
    os.symlink("usr/lib", r / "lib-rel")
    os.symlink("../../../../../../etc", r / "usr" / "up")  # climbs far: clamped
    os.symlink("/", r / "slash")
    os.symlink("loop-b", r / "loop-a")
    os.symlink("loop-a", r / "loop-b")
    os.symlink("dangling-target", r / "dangling")
    return r


def test_absolute_symlink_is_reinterpreted_inside_root(root: Path) -> None:
    assert resolve_in_root(root, "lib/libc.so") == root / "usr" / "lib" / "libc.so"
    assert resolve_in_root(root, "/lib-rel") == root / "usr" / "lib"


def test_dotdot_never_climbs_above_root(root: Path) -> None:
    assert resolve_in_root(root, "../../../etc/passwd") == root / "etc" / "passwd"
    assert resolve_in_root(root, "usr/up/passwd") == root / "etc" / "passwd"
    assert resolve_in_root(root, "slash/../..") == root
    assert resolve_in_root(root, PurePosixPath("/")) == root


def test_final_symlink_kept_when_not_following(root: Path) -> None:
    assert resolve_in_root(root, "lib", follow_final=False) == root / "lib"
    assert resolve_in_root(root, "lib") == root / "usr" / "lib"
    assert resolve_in_root(root, "dangling") == root / "dangling-target"


def test_symlink_loop_is_bounded(root: Path) -> None:
    with pytest.raises(InvalidArgument, match="too many levels"):
        resolve_in_root(root, "loop-a/x")


def test_missing_components_stay_lexical(root: Path) -> None:
    assert resolve_in_root(root, "new/dir/../file") == root / "new" / "file"
