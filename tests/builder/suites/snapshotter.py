"""Shared behaviour suite for every Snapshotter (DESIGN habit 9).

Subclass `SnapshotterSuite` and provide a `snapshotter` fixture;
tests/builder/snapshots/test_snapshotters.py runs it over overlay and native (copy).
Needs root: snapshots are mounted for real through builder.mounts.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from builder.errors import AlreadyExists, FailedPrecondition, NotFound
from builder.layers.changes import ChangeKind
from builder.mounts import temp_mount
from builder.snapshots import Kind, Snapshotter


def write(root: Path, rel: str, data: str = "x", mode: int = 0o644) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(data)
    p.chmod(mode)
    return p


def make_committed(sn: Snapshotter, name: str, parent: str | None,
                   fill: Callable[[Path], None]) -> None:
    key = f"{name}-active"
    with temp_mount(sn.prepare(key, parent)) as root:
        fill(root)
    sn.commit(name, key)


def read_tree(sn: Snapshotter, parent: str, key: str = "reader") -> dict[str, str]:
    """Regular files of a committed snapshot as {path: content}, through a view."""
    out: dict[str, str] = {}
    with temp_mount(sn.view(key, parent)) as root:
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                p = Path(dirpath) / f
                if p.is_file() and not p.is_symlink():
                    out[str(p.relative_to(root))] = p.read_text()
    sn.remove(key)
    return out


class SnapshotterSuite:
    @pytest.fixture
    def base(self, snapshotter: Snapshotter) -> Iterator[str]:
        def fill(root: Path) -> None:
            write(root, "a/x", "ax")
            write(root, "b", "b1")
            write(root, "d/y", "dy")
            write(root, "keep", "k")

        make_committed(snapshotter, "base", None, fill)
        yield "base"

    def test_prepare_commit_then_view_shows_the_committed_tree(
            self, snapshotter: Snapshotter, base: str) -> None:
        assert snapshotter.stat(base).kind is Kind.COMMITTED
        assert read_tree(snapshotter, base) == {"a/x": "ax", "b": "b1", "d/y": "dy", "keep": "k"}

    def test_child_sees_parent_and_its_own_changes_after_commit(
            self, snapshotter: Snapshotter, base: str) -> None:
        def fill(root: Path) -> None:
            assert (root / "b").read_text() == "b1"
            (root / "b").write_text("b2")
            (root / "a" / "x").unlink()
            write(root, "c", "new")

        make_committed(snapshotter, "child", base, fill)
        assert read_tree(snapshotter, "child") == {"b": "b2", "c": "new", "d/y": "dy",
                                                   "keep": "k"}
        assert read_tree(snapshotter, base)["b"] == "b1"  # the parent is untouched

    def test_commit_moves_key_to_name(self, snapshotter: Snapshotter, base: str) -> None:
        snapshotter.prepare("work", base)
        snapshotter.commit("done", "work", labels={"l": "v"})
        with pytest.raises(NotFound):
            snapshotter.stat("work")
        info = snapshotter.stat("done")
        assert (info.kind, info.parent, dict(info.labels)) == (Kind.COMMITTED, base, {"l": "v"})

    def test_view_is_read_only(self, snapshotter: Snapshotter, base: str) -> None:
        with temp_mount(snapshotter.view("v", base)) as root:
            assert (root / "keep").read_text() == "k"
            with pytest.raises(OSError) as exc:
                (root / "new").write_text("no")
            assert exc.value.errno == errno.EROFS
        assert snapshotter.stat("v").kind is Kind.VIEW

    def test_existing_key_is_refused(self, snapshotter: Snapshotter, base: str) -> None:
        snapshotter.prepare("k1", base)
        with pytest.raises(AlreadyExists):
            snapshotter.prepare("k1", base)
        with pytest.raises(AlreadyExists):
            snapshotter.view(base, None)

    def test_unknown_parent_is_not_found(self, snapshotter: Snapshotter) -> None:
        with pytest.raises(NotFound):
            snapshotter.prepare("k", "no-such-parent")

    def test_active_snapshot_cannot_be_a_parent(self, snapshotter: Snapshotter) -> None:
        snapshotter.prepare("active", None)
        with pytest.raises(FailedPrecondition):
            snapshotter.prepare("child", "active")

    def test_only_active_snapshots_commit(self, snapshotter: Snapshotter, base: str) -> None:
        snapshotter.view("v", base)
        with pytest.raises(FailedPrecondition):
            snapshotter.commit("x", "v")
        with pytest.raises(FailedPrecondition):
            snapshotter.commit("x", base)

    def test_committed_snapshot_has_no_mounts(self, snapshotter: Snapshotter, base: str) -> None:
        with pytest.raises(FailedPrecondition):
            snapshotter.mounts(base)

    def test_mounts_repeats_what_prepare_returned(
            self, snapshotter: Snapshotter, base: str) -> None:
        first = snapshotter.prepare("k2", base)
        assert snapshotter.mounts("k2") == first

    def test_parent_in_use_cannot_be_removed(self, snapshotter: Snapshotter, base: str) -> None:
        snapshotter.prepare("user", base)
        with pytest.raises(FailedPrecondition):
            snapshotter.remove(base)
        snapshotter.remove("user")
        snapshotter.remove(base)
        assert list(snapshotter.walk()) == []

    def test_remove_unknown_is_not_found(self, snapshotter: Snapshotter) -> None:
        with pytest.raises(NotFound):
            snapshotter.remove("ghost")

    def test_remove_deletes_the_tree(self, snapshotter: Snapshotter, base: str) -> None:
        before = sum(1 for _ in (snapshotter.root / "snapshots").iterdir())
        snapshotter.prepare("tmp", base)
        snapshotter.remove("tmp")
        assert sum(1 for _ in (snapshotter.root / "snapshots").iterdir()) == before

    def test_walk_lists_every_snapshot_sorted_with_kinds(
            self, snapshotter: Snapshotter, base: str) -> None:
        snapshotter.prepare("z-active", base)
        snapshotter.view("m-view", base)
        got = [(i.name, i.kind, i.parent) for i in snapshotter.walk()]
        assert got == [(base, Kind.COMMITTED, None), ("m-view", Kind.VIEW, base),
                       ("z-active", Kind.ACTIVE, base)]

    def test_metadata_survives_reopening(self, snapshotter: Snapshotter, base: str) -> None:
        snapshotter.prepare("open", base)
        again = type(snapshotter)(snapshotter.root)  # type: ignore[call-arg]
        assert [i.name for i in again.walk()] == [base, "open"]
        assert read_tree(again, base)["keep"] == "k"

    def test_concurrent_prepares_lose_no_metadata(
            self, snapshotter: Snapshotter, base: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: snapshotter.prepare(f"par{i:02d}", base), range(24)))
        names = [i.name for i in snapshotter.walk()]
        assert names == [base] + [f"par{i:02d}" for i in range(24)]
        trees = {snapshotter.tree_path(n) for n in names}  # type: ignore[attr-defined]
        assert len(trees) == len(names)

    def test_changes_report_adds_modifies_and_deletes(
            self, snapshotter: Snapshotter, base: str) -> None:
        with temp_mount(snapshotter.prepare("step", base)) as root:
            write(root, "c", "new")
            (root / "b").write_text("b2")
            (root / "a" / "x").unlink()
        got = {c.path: c.kind for c in snapshotter.changes("step")}
        assert got["c"] is ChangeKind.ADD
        assert got["b"] in (ChangeKind.MODIFY, ChangeKind.ADD)
        assert got["a/x"] is ChangeKind.DELETE
        assert "keep" not in got and "d/y" not in got

    def test_replaced_directory_hides_the_parents_contents(
            self, snapshotter: Snapshotter, base: str) -> None:
        with temp_mount(snapshotter.prepare("step", base)) as root:
            for child in (root / "d").iterdir():
                child.unlink()
            (root / "d").rmdir()
            write(root, "d/z", "dz")
        changes = {c.path: c for c in snapshotter.changes("step")}
        hidden = ("d/y" in changes and changes["d/y"].kind is ChangeKind.DELETE) or (
            "d" in changes and changes["d"].opaque)
        assert hidden
        assert changes["d/z"].kind is ChangeKind.ADD

    def test_changes_carry_the_parent_directories_of_a_change(
            self, snapshotter: Snapshotter) -> None:
        make_committed(snapshotter, "deep", None, lambda r: write(r, "u/v/w/old", "o"))
        with temp_mount(snapshotter.prepare("step", "deep")) as root:
            write(root, "u/v/w/new", "n")
        got = [(c.path, c.kind) for c in snapshotter.changes("step")]
        assert [p for p, _ in got] == ["u", "u/v", "u/v/w", "u/v/w/new"]
        assert got[-1][1] is ChangeKind.ADD

    def test_changes_of_an_untouched_snapshot_are_empty(
            self, snapshotter: Snapshotter, base: str) -> None:
        with temp_mount(snapshotter.prepare("noop", base)) as root:
            assert (root / "keep").exists()
        assert list(snapshotter.changes("noop")) == []

    def test_file_types_owners_and_hard_links_survive_a_child(
            self, snapshotter: Snapshotter) -> None:
        def fill(root: Path) -> None:
            f = write(root, "f", "data")
            os.chown(f, 1234, 5678)
            f.chmod(0o4755)  # after chown, which clears set-id bits
            os.link(f, root / "hard")
            os.symlink("f", root / "sym")
            os.mkfifo(root / "fifo")
            os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            os.setxattr(f, "user.k", b"v")

        make_committed(snapshotter, "rich", None, fill)
        with temp_mount(snapshotter.prepare("kid", "rich")) as root:
            st = os.lstat(root / "f")
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4755)
            assert os.lstat(root / "hard").st_ino == st.st_ino
            assert os.readlink(root / "sym") == "f"
            assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
            assert os.lstat(root / "null").st_rdev == os.makedev(1, 3)
            assert os.getxattr(root / "f", "user.k") == b"v"

    def test_import_committed_applies_whiteouts_and_opaque_dirs(
            self, snapshotter: Snapshotter, base: str, tmp_path: Path) -> None:
        layer = tmp_path / "layer"
        write(layer, "new", "n")
        write(layer, "b", "b-layer")
        os.mknod(layer / "keep", stat.S_IFCHR, os.makedev(0, 0))  # whiteout
        (layer / "d").mkdir()
        os.setxattr(layer / "d", "trusted.overlay.opaque", b"y")
        write(layer, "d/fresh", "f")
        info = snapshotter.import_committed("imported", base, layer)
        assert (info.name, info.kind, info.parent) == ("imported", Kind.COMMITTED, base)
        assert read_tree(snapshotter, "imported") == {
            "a/x": "ax", "b": "b-layer", "new": "n", "d/fresh": "f"}
        with pytest.raises(AlreadyExists):
            snapshotter.import_committed("imported", base, layer)

    def test_imported_snapshot_can_be_a_parent(
            self, snapshotter: Snapshotter, tmp_path: Path) -> None:
        layer = tmp_path / "layer"
        write(layer, "bin/tool", "t")
        snapshotter.import_committed("L1", None, layer)
        make_committed(snapshotter, "L2", "L1", lambda r: write(r, "etc/conf", "c"))
        assert read_tree(snapshotter, "L2") == {"bin/tool": "t", "etc/conf": "c"}

    def test_rename_moves_a_committed_snapshot_and_its_children(
            self, snapshotter: Snapshotter, base: str) -> None:
        make_committed(snapshotter, "child", base, lambda r: write(r, "c", "new"))
        key = "grandchild-active"
        with temp_mount(snapshotter.prepare(key, "child")) as root:
            assert snapshotter.rename("child", "sha256:child") is True
            write(root, "g", "g")  # the mounted child keeps working
        snapshotter.commit("grandchild", key)
        with pytest.raises(NotFound):
            snapshotter.stat("child")
        assert snapshotter.stat("grandchild").parent == "sha256:child"
        assert read_tree(snapshotter, "grandchild")["c"] == "new"
        assert [c.path for c in snapshotter.changes("grandchild")] == ["g"]

    def test_rename_onto_an_existing_name_moves_only_the_children(
            self, snapshotter: Snapshotter, base: str) -> None:
        make_committed(snapshotter, "twin-a", base, lambda r: write(r, "c", "same"))
        make_committed(snapshotter, "twin-b", base, lambda r: write(r, "c", "same"))
        make_committed(snapshotter, "kid", "twin-b", lambda r: write(r, "k", "k"))
        assert snapshotter.rename("twin-b", "twin-a") is False
        assert snapshotter.stat("kid").parent == "twin-a"
        assert read_tree(snapshotter, "kid") == {"a/x": "ax", "b": "b1", "d/y": "dy",
                                                 "keep": "k", "c": "same", "k": "k"}
        snapshotter.remove("twin-b")  # childless now

    def test_only_committed_snapshots_are_renamed(
            self, snapshotter: Snapshotter, base: str) -> None:
        snapshotter.prepare("busy", base)
        with pytest.raises(FailedPrecondition):
            snapshotter.rename("busy", "sha256:busy")
        with pytest.raises(NotFound):
            snapshotter.rename("ghost", "sha256:ghost")
