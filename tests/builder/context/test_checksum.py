"""Content checksums of COPY sources: what changes them, what never does."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from context_treeutil import Dir, Link, make_tree

from builder.cachekey import copy_key
from builder.context import BuildContext

SPEC: dict[str, str | bytes | Link | Dir] = {
    "Dockerfile": "FROM scratch\n",
    "app/main.py": "print('hi')\n",
    "app/lib/util.py": "X = 1\n",
    "app/data.bin": bytes(range(256)) * 64,
    "app/link": Link("main.py"),
    "README.md": "readme",
}


def tree(tmp_path: Path, name: str = "ctx") -> Path:
    return make_tree(tmp_path / name, SPEC)


def checksum(root: Path, sources: list[str], **kw: bool) -> str:
    return str(BuildContext.open(root, root / "Dockerfile").checksum(sources, **kw))


def test_touching_mtime_only_keeps_the_checksum(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = checksum(root, ["app"])
    future = time.time_ns() + 3_600_000_000_000
    for path in root.rglob("*"):
        os.utime(path, ns=(future, future), follow_symlinks=False)
    assert checksum(root, ["app"]) == before


def test_content_change_changes_the_checksum(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = checksum(root, ["app"])
    (root / "app/lib/util.py").write_text("X = 2\n")
    assert checksum(root, ["app"]) != before


def test_change_outside_the_selection_keeps_the_checksum(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = checksum(root, ["app"])
    (root / "README.md").write_text("changed")
    assert checksum(root, ["app"]) == before


def test_excluded_files_do_not_count(tmp_path: Path) -> None:
    root = tree(tmp_path)
    (root / ".dockerignore").write_text("app/data.bin\n")
    before = checksum(root, ["app"])
    (root / "app/data.bin").write_bytes(b"anything")
    assert checksum(root, ["app"]) == before


@pytest.mark.parametrize("change", ["add", "remove", "rename"])
def test_tree_shape_changes_change_the_checksum(tmp_path: Path, change: str) -> None:
    root = tree(tmp_path)
    before = checksum(root, ["app"])
    if change == "add":
        (root / "app/new.txt").write_text("")
    elif change == "remove":
        (root / "app/lib/util.py").unlink()
    else:
        (root / "app/main.py").rename(root / "app/main2.py")
    assert checksum(root, ["app"]) != before


def test_symlink_target_text_is_part_of_the_checksum(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = checksum(root, ["app"])
    (root / "app/link").unlink()
    os.symlink("lib/util.py", root / "app/link")
    assert checksum(root, ["app"]) != before


def test_mode_counts_unless_chmod_overrides_it(tmp_path: Path) -> None:
    root = tree(tmp_path)
    plain = checksum(root, ["app"])
    overridden = checksum(root, ["app"], chmod_override=True)
    (root / "app/main.py").chmod(0o755)
    assert checksum(root, ["app"]) != plain
    assert checksum(root, ["app"], chmod_override=True) == overridden
    (root / "app/lib").chmod(0o700)
    assert checksum(root, ["app"], chmod_override=True) == overridden


def test_special_mode_bits_count(tmp_path: Path) -> None:
    root = tree(tmp_path)
    plain = checksum(root, ["app/main.py"])
    (root / "app/main.py").chmod(0o4644)
    assert checksum(root, ["app/main.py"]) != plain


def test_owner_counts_unless_chown_overrides_it(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "changing file owners needs root (CI runs as root)"
    root = tree(tmp_path)
    plain = checksum(root, ["app"])
    overridden = checksum(root, ["app"], chown_override=True)
    os.chown(root / "app/main.py", 1000, 1000)
    assert checksum(root, ["app"]) != plain
    assert checksum(root, ["app"], chown_override=True) == overridden


def test_same_tree_in_two_directories_gives_the_same_checksum_and_key(tmp_path: Path) -> None:
    """No absolute paths, inodes or timestamps: a second checkout elsewhere hits the cache."""
    first = tree(tmp_path, "one")
    time.sleep(0.01)
    second = tree(tmp_path / "deeper", "two")
    assert os.stat(first / "app/main.py").st_ino != os.stat(second / "app/main.py").st_ino
    a = checksum(first, ["app", "*.md"])
    b = checksum(second, ["app", "*.md"])
    assert a == b
    parent = "sha256:" + "0" * 64
    assert copy_key(parent, sources=["app", "*.md"], dest="/srv/", sources_checksum=a) == \
        copy_key(parent, sources=["app", "*.md"], dest="/srv/", sources_checksum=b)


def test_source_order_and_names_count(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert checksum(root, ["app", "README.md"]) != checksum(root, ["README.md", "app"])
    assert checksum(root, ["app/link"]) != checksum(root, ["app/main.py"])


def test_followed_symlink_source_hashes_the_target_content(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = checksum(root, ["app/link"])
    (root / "app/main.py").write_text("print('bye')\n")
    assert checksum(root, ["app/link"]) != before


def test_empty_wildcard_has_a_stable_checksum(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert checksum(root, ["*.none"]) == checksum(root, ["*.none"])
    assert checksum(root, ["*.none"]) != checksum(root, ["*.md"])
