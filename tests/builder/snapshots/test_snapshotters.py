"""The shared Snapshotter suite over overlay and native, plus mechanism-specific behaviour."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.errors import CacheCorrupt, FailedPrecondition, InvalidArgument
from builder.mounts import PAGE_SIZE, Mount, mount_all, temp_mount
from builder.snapshots import open_snapshotter
from builder.snapshots.copy import CopySnapshotter
from builder.snapshots.overlay import OverlaySnapshotter, supported
from builder.snapshots.select import probe_overlay


def _load_suite(name: str) -> object:
    """Import tests/builder/suites/<name>.py by path (tests are not a package)."""
    path = Path(__file__).resolve().parents[1] / "suites" / f"{name}.py"
    module_name = f"builder_suites_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


_suite = _load_suite("snapshotter")
SnapshotterSuite = _suite.SnapshotterSuite  # type: ignore[attr-defined]
make_committed = _suite.make_committed  # type: ignore[attr-defined]
read_tree = _suite.read_tree  # type: ignore[attr-defined]
write = _suite.write  # type: ignore[attr-defined]


class TestOverlaySnapshotter(SnapshotterSuite):  # type: ignore[misc,valid-type]
    @pytest.fixture
    def snapshotter(self, tmp_path: Path) -> OverlaySnapshotter:
        return OverlaySnapshotter(tmp_path / "overlay")


class TestCopySnapshotter(SnapshotterSuite):  # type: ignore[misc,valid-type]
    @pytest.fixture
    def snapshotter(self, tmp_path: Path) -> CopySnapshotter:
        return CopySnapshotter(tmp_path / "native")


def test_overlay_with_120_layers_mounts_thanks_to_short_links(tmp_path: Path) -> None:
    root = tmp_path / ("deep-store-path-" * 6) / "overlay"
    sn = OverlaySnapshotter(root)
    parent = None
    for i in range(120):
        name = f"sha256:{i:064x}"
        make_committed(sn, name, parent, lambda r, i=i: write(r, f"layer{i:03d}", str(i)))
        parent = name
    mounts = sn.prepare("top", parent)
    lowers = next(o for o in mounts[0].options if o.startswith("lowerdir=")).split(":")
    assert len(lowers) == 120
    assert sum(len(p) + 1 for p in lowers) > PAGE_SIZE  # naive absolute paths would not fit
    with temp_mount(mounts) as merged:
        assert sorted(p.name for p in merged.iterdir()) == [f"layer{i:03d}" for i in range(120)]
        assert (merged / "layer000").read_text() == "0"
        (merged / "layer119").write_text("changed")
    assert [c.path for c in sn.changes("top")] == ["layer119"]


def test_overlay_import_by_reference_leaves_the_directory_to_its_owner(tmp_path: Path) -> None:
    sn = OverlaySnapshotter(tmp_path / "sn")
    layer = tmp_path / "layers" / "sha256-abc"
    write(layer, "f", "1")
    sn.import_committed("chain", None, layer)
    assert read_tree(sn, "chain") == {"f": "1"}
    sn.remove("chain")
    assert (layer / "f").read_text() == "1"


def test_overlay_import_by_move_takes_ownership(tmp_path: Path) -> None:
    sn = OverlaySnapshotter(tmp_path / "sn")
    layer = tmp_path / "sn-incoming"
    write(layer, "f", "1")
    sn.import_committed("chain", None, layer, move=True)
    assert not layer.exists()
    assert read_tree(sn, "chain") == {"f": "1"}
    sn.remove("chain")
    assert list((tmp_path / "sn" / "snapshots").iterdir()) == []


def test_overlay_changes_skip_directories_only_copied_up(tmp_path: Path) -> None:
    sn = OverlaySnapshotter(tmp_path / "sn")
    make_committed(sn, "base", None, lambda r: write(r, "etc/passwd", "root"))
    with temp_mount(sn.prepare("step", "base")) as root:
        st = os.stat(root / "etc")
        (root / "etc" / "stub").touch()
        (root / "etc" / "stub").unlink()
        os.utime(root / "etc", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (sn.tree_path("step") / "etc").is_dir()  # copied up ...
    assert list(sn.changes("step")) == []  # ... but not a change


def test_a_corrupt_metadata_file_is_reported_not_ignored(tmp_path: Path) -> None:
    sn = CopySnapshotter(tmp_path / "sn")
    sn.prepare("a")
    (tmp_path / "sn" / "metadata.json").write_text("{not json")
    with pytest.raises(CacheCorrupt):
        list(sn.walk())


def test_metadata_is_replaced_atomically_leaving_no_temp_files(tmp_path: Path) -> None:
    sn = CopySnapshotter(tmp_path / "sn")
    for i in range(5):
        sn.prepare(f"k{i}")
    assert sorted(p.name for p in (tmp_path / "sn").iterdir()) == [
        "l", "metadata.json", "metadata.lock", "snapshots"]


@pytest.fixture
def overlay_backed_dir(tmp_path: Path) -> Iterator[Path]:
    for d in ("lower", "upper", "work", "merged"):
        (tmp_path / d).mkdir()
    m = Mount("overlay", "overlay", options=(
        f"lowerdir={tmp_path / 'lower'}", f"upperdir={tmp_path / 'upper'}",
        f"workdir={tmp_path / 'work'}"))
    with mount_all([m], tmp_path / "merged") as merged:
        yield merged / "store"


def test_probe_on_an_overlayfs_backed_root_fails(overlay_backed_dir: Path) -> None:
    ok, reason = supported(overlay_backed_dir)
    assert not ok
    assert "overlay" in reason
    assert [p.name for p in overlay_backed_dir.iterdir()] == []  # probe cleaned up


def test_auto_falls_back_to_native_on_overlayfs_and_logs_why(
        overlay_backed_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        sn = open_snapshotter(overlay_backed_dir, "auto")
    assert isinstance(sn, CopySnapshotter)
    assert "falling back to the native" in caplog.text
    make_committed(sn, "base", None, lambda r: write(r, "f", "1"))
    assert read_tree(sn, "base") == {"f": "1"}


def test_forcing_overlay_where_it_cannot_work_is_an_error(overlay_backed_dir: Path) -> None:
    with pytest.raises(FailedPrecondition):
        open_snapshotter(overlay_backed_dir, "overlay")


def test_auto_picks_overlay_on_a_plain_filesystem(tmp_path: Path) -> None:
    assert probe_overlay(tmp_path)[0]
    assert isinstance(open_snapshotter(tmp_path, "auto"), OverlaySnapshotter)
    assert isinstance(open_snapshotter(tmp_path, "native"), CopySnapshotter)
    with pytest.raises(InvalidArgument):
        open_snapshotter(tmp_path, "zfs")
