"""resolve_in_root: symlinks read inside the root, `..` clamped, loops bounded."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


_COMPONENTS = ["a", "b", "..", ".", "", "link", "abs", "up", "x"]
_TARGETS = ["a", "/", "..", "../..", "/a/b", "../../..", "a/../../..", "/x/../..", "link", "b/up"]


@given(
    links=st.lists(st.tuples(st.sampled_from(["link", "abs", "up", "a/link", "a/b/up"]),
                             st.sampled_from(_TARGETS)), max_size=5),
    query=st.lists(st.sampled_from(_COMPONENTS), max_size=8),
    follow=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_resolution_never_leaves_the_root(
    tmp_path_factory: pytest.TempPathFactory,
    links: list[tuple[str, str]],
    query: list[str],
    follow: bool,
) -> None:
    root = tmp_path_factory.mktemp("prop") / "root"
    (root / "a" / "b").mkdir(parents=True)
    for name, target in links:
        with contextlib.suppress(FileExistsError):
            os.symlink(target, root / name)
    try:
        resolved = resolve_in_root(root, "/".join(query), follow_final=follow)
    except InvalidArgument:
        return  # a link loop: refused
    assert resolved == root or root in resolved.parents
    # whatever exists at the resolved path's parent is inside the root too
    parent = resolved.parent if resolved != root else root
    if parent.exists():
        real = Path(os.path.realpath(parent))
        assert real == root.resolve() or root.resolve() in real.parents
