"""Property: any tree built from random entries survives write_layer -> apply_layer unchanged."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from layer_treeutil import describe

from builder.layers import apply_layer, tree_changes, write_layer, write_tree_layer

NAMES = st.sampled_from(["a", "b", "c d", "é", ".hidden", "x" * 120, "-dash", "wh.not"])
ENTRY = st.tuples(
    st.lists(NAMES, min_size=1, max_size=3),  # path components
    st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo"]),
    st.integers(0, 0o7777),  # mode
    st.integers(0, 70000),  # uid (beyond the 2097151 ustar limit needs PAX; 70000 is enough)
    st.binary(max_size=3000),
    st.integers(0, 2**33),  # mtime
)


def _build(root: Path, entries: list[tuple[list[str], str, int, int, bytes, int]]) -> None:
    root.mkdir()
    files: list[Path] = []
    for comps, kind, mode, uid, data, mtime in entries:
        path = root.joinpath(*comps)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            continue
        if os.path.lexists(path):
            continue
        if kind == "file":
            path.write_bytes(data)
            files.append(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "symlink":
            os.symlink("../" + "/".join(comps), path)
        elif kind == "hardlink" and files:
            os.link(files[len(data) % len(files)], path)
            continue
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            continue
        if kind != "symlink":
            os.chown(path, uid, uid + 1)
            os.chmod(path, mode | (0o700 if kind == "dir" else 0))
            os.utime(path, (mtime, mtime))


@given(entries=st.lists(ENTRY, max_size=12), compression=st.sampled_from(["gzip", "zstd"]))
@settings(max_examples=40, deadline=None)
def test_random_trees_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    entries: list[tuple[list[str], str, int, int, bytes, int]],
    compression: str,
) -> None:
    base = tmp_path_factory.mktemp("rt")
    src = base / "src"
    _build(src, entries)
    blob = io.BytesIO()
    info = write_tree_layer(src, blob, compression=compression)
    dest = base / "dest"
    dest.mkdir()
    blob.seek(0)
    assert apply_layer(blob, dest, expected_diff_id=info.diff_id) == info.diff_id
    assert describe(dest) == describe(src)


@example(  # a hard-link partner that did not change must follow its moved partner
    before=[(["a"], "file", 0, 0, b"", 1), (["b"], "hardlink", 0, 0, b"", 0)],
    after=[(["a", "a"], "file", 0, 0, b"", 1), (["b"], "hardlink", 0, 0, b"", 0)])
@given(before=st.lists(ENTRY, max_size=10), after=st.lists(ENTRY, max_size=10))
@settings(max_examples=30, deadline=None)
def test_random_tree_diffs_apply_to_the_new_tree(
    tmp_path_factory: pytest.TempPathFactory,
    before: list[tuple[list[str], str, int, int, bytes, int]],
    after: list[tuple[list[str], str, int, int, bytes, int]],
) -> None:
    base = tmp_path_factory.mktemp("diff")
    lower, upper = base / "lower", base / "upper"
    _build(lower, before)
    _build(upper, after)
    blob = io.BytesIO()
    write_layer(tree_changes(lower, upper), blob, compression="none")
    flat = base / "flat"
    subprocess.run(["cp", "-a", str(lower), str(flat)], check=True)  # keeps owners and fifos
    blob.seek(0)
    apply_layer(blob, flat, whiteouts="merge")
    assert describe(flat, mtimes=False) == describe(upper, mtimes=False)
