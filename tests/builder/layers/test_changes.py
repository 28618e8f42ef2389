"""Change sources: a real kernel overlay upperdir, and the copy snapshotter's two-tree walk."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from layer_treeutil import describe

from builder.layers import (
    Change,
    ChangeKind,
    apply_layer,
    overlay_changes,
    tree_changes,
    write_layer,
)


@contextmanager
def overlay(
    lowers: list[Path], upper: Path | None, work: Path | None, merged: Path
) -> Iterator[Path]:
    merged.mkdir(parents=True, exist_ok=True)
    opts = "lowerdir=" + ":".join(str(p) for p in lowers)
    if upper is not None and work is not None:
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        opts += f",upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def _make_lower(lower: Path) -> None:
    (lower / "dir1").mkdir(parents=True)
    (lower / "dir1" / "x").write_text("x")
    (lower / "dir1" / "y").write_text("y")
    (lower / "dir2").mkdir()
    (lower / "dir2" / "p").write_text("p")
    (lower / "dir2" / "q").write_text("q")
    (lower / "a").write_text("a")
    (lower / "b").write_text("b")


def _mutate(merged: Path) -> None:
    (merged / "a").unlink()
    (merged / "b").write_text("b changed")
    (merged / "c").write_text("new")
    subprocess.run(["rm", "-rf", str(merged / "dir1")], check=True)
    (merged / "dir1").mkdir()
    (merged / "dir1" / "new").write_text("fresh")
    (merged / "dir2" / "p").unlink()


@pytest.fixture()
def snapshot(tmp_path: Path) -> dict[str, Path]:
    """lower, upper (from a real overlay mount) and `expected` (a copy of the merged view)."""
    lower, upper, work = tmp_path / "lower", tmp_path / "upper", tmp_path / "work"
    _make_lower(lower)
    expected = tmp_path / "expected"
    with overlay([lower], upper, work, tmp_path / "merged") as merged:
        _mutate(merged)
        subprocess.run(["cp", "-a", f"{merged}/.", str(expected)], check=True)
    return {"lower": lower, "upper": upper, "expected": expected}


def test_overlay_upper_yields_whiteouts_and_opaque_dirs(snapshot: dict[str, Path]) -> None:
    changes = list(overlay_changes(snapshot["upper"]))
    summary = [(c.kind, c.path, c.opaque) for c in changes]
    assert summary == [
        (ChangeKind.DELETE, "a", False),
        (ChangeKind.ADD, "b", False),
        (ChangeKind.ADD, "c", False),
        (ChangeKind.ADD, "dir1", True),
        (ChangeKind.ADD, "dir1/new", False),
        (ChangeKind.ADD, "dir2", False),
        (ChangeKind.DELETE, "dir2/p", False),
    ]


def test_overlay_changes_become_oci_whiteout_entries(snapshot: dict[str, Path]) -> None:
    blob = io.BytesIO()
    write_layer(overlay_changes(snapshot["upper"]), blob, compression="none")
    blob.seek(0)
    with tarfile.open(fileobj=blob) as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == [
        ".wh.a", "b", "c", "dir1", "dir1/.wh..wh..opq", "dir1/new", "dir2", "dir2/.wh.p",
    ]
    for m in members:
        if m.name.rsplit("/", 1)[-1].startswith(".wh."):
            assert m.isreg() and m.size == 0 and m.mtime == 0
        assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for k in m.pax_headers)


def test_opaque_whiteout_hides_lower_directory_when_applied_as_overlay_lower(
    snapshot: dict[str, Path], tmp_path: Path
) -> None:
    blob = io.BytesIO()
    write_layer(overlay_changes(snapshot["upper"]), blob)
    blob.seek(0)
    layer = tmp_path / "layer"
    layer.mkdir()
    apply_layer(blob, layer, whiteouts="overlay")
    st = os.lstat(layer / "a")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(layer / "dir1", "trusted.overlay.opaque") == b"y"
    with overlay([layer, snapshot["lower"]], None, None, tmp_path / "view") as view:
        assert describe(view, mtimes=False) == describe(snapshot["expected"], mtimes=False)


def test_overlay_layer_applied_in_merge_mode_gives_merged_tree(
    snapshot: dict[str, Path], tmp_path: Path
) -> None:
    blob = io.BytesIO()
    write_layer(overlay_changes(snapshot["upper"]), blob, compression="zstd")
    flat = tmp_path / "flat"
    shutil.copytree(snapshot["lower"], flat, symlinks=True)
    blob.seek(0)
    apply_layer(blob, flat, whiteouts="merge")
    assert describe(flat, mtimes=False) == describe(snapshot["expected"], mtimes=False)


def test_tree_changes_on_the_copy_path_give_the_same_result(
    snapshot: dict[str, Path], tmp_path: Path
) -> None:
    changes = list(tree_changes(snapshot["lower"], snapshot["expected"]))
    deleted = sorted(c.path for c in changes if c.kind is ChangeKind.DELETE)
    assert deleted == ["a", "dir1/x", "dir1/y", "dir2/p"]
    assert "dir2/q" not in {c.path for c in changes}  # untouched (copied with its mtime)
    blob = io.BytesIO()
    write_layer(changes, blob)
    flat = tmp_path / "flat"
    shutil.copytree(snapshot["lower"], flat, symlinks=True)
    blob.seek(0)
    apply_layer(blob, flat, whiteouts="merge")
    assert describe(flat) == describe(snapshot["expected"])


def test_tree_changes_detect_metadata_only_changes(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    for name in ("mode", "owner", "xattr", "link", "same", "content"):
        (lower / name).write_text("data")
    os.utime(lower / "content", (1_600_000_000, 1_600_000_000))  # whole seconds: ambiguous
    os.symlink("t1", lower / "sym")
    upper = tmp_path / "upper"
    subprocess.run(["cp", "-a", f"{lower}/.", str(upper)], check=True)
    os.chmod(upper / "mode", 0o600)
    os.chown(upper / "owner", 5, 5)
    os.setxattr(upper / "xattr", "user.k", b"v")
    (upper / "sym").unlink()
    os.symlink("t2", upper / "sym")
    (upper / "content").write_text("DATA")  # same size, then same mtime again
    os.utime(upper / "content", (1_600_000_000, 1_600_000_000))
    os.utime(upper, ns=(os.stat(lower).st_mtime_ns,) * 2)
    changed = {c.path: c.kind for c in tree_changes(lower, upper)}
    assert changed == {
        "content": ChangeKind.MODIFY,
        "mode": ChangeKind.MODIFY,
        "owner": ChangeKind.MODIFY,
        "sym": ChangeKind.MODIFY,
        "xattr": ChangeKind.MODIFY,
    }


def test_type_change_dir_to_file_applies(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "thing").mkdir(parents=True)
    (lower / "thing" / "inner").write_text("i")
    (lower / "file").write_text("f")
    upper.mkdir()
    (upper / "thing").write_text("now a file")
    (upper / "file").mkdir()
    (upper / "file" / "child").write_text("c")
    blob = io.BytesIO()
    write_layer(tree_changes(lower, upper), blob)
    blob.seek(0)
    apply_layer(blob, lower, whiteouts="merge")
    assert describe(lower) == describe(upper)


def test_whole_tree_as_changes_is_sorted_by_components(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "z").write_text("")
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "a-b").write_text("")
    paths = [c.path for c in tree_changes(None, tmp_path)]
    assert paths == ["a", "a/z", "a-b", "a.txt"]
    changes = list(tree_changes(None, tmp_path))
    assert all(isinstance(c, Change) and c.kind is ChangeKind.ADD for c in changes)


def test_directory_implied_by_a_layer_keeps_the_lower_metadata_in_overlay_view(
    tmp_path: Path,
) -> None:
    from layer_treeutil import entry, tar_bytes

    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "hostname").write_text("h")
    (lower / "etc" / "keep").write_text("k")
    os.chmod(lower / "etc", 0o2750)
    os.chown(lower / "etc", 7, 8)
    os.setxattr(lower / "etc", "user.mark", b"lower")
    # a layer (as umoci writes it) with a whiteout but no entry for its directory
    data = tar_bytes([(entry("etc/.wh.hostname"), b""), (entry("etc/new"), b"n")])
    layer = tmp_path / "layer"
    layer.mkdir()
    apply_layer(io.BytesIO(data), layer, parents=[lower])
    st = os.lstat(layer / "etc")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o2750, 7, 8)
    assert os.getxattr(layer / "etc", "user.mark") == b"lower"
    with overlay([layer, lower], None, None, tmp_path / "view") as view:
        assert sorted(p.name for p in (view / "etc").iterdir()) == ["keep", "new"]
        assert stat.S_IMODE(os.stat(view / "etc").st_mode) == 0o2750


def test_whiteouts_come_before_their_sibling_entries(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "d").mkdir(parents=True)
    (lower / "d" / "z-old").write_text("z")
    subprocess.run(["cp", "-a", f"{lower}/.", str(upper)], check=True)
    (upper / "d" / "z-old").unlink()
    (upper / "d" / "a-new").write_text("a")
    order = [(c.kind, c.path) for c in tree_changes(lower, upper)]
    assert order == [
        (ChangeKind.MODIFY, "d"), (ChangeKind.DELETE, "d/z-old"), (ChangeKind.ADD, "d/a-new"),
    ]
