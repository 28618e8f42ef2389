"""FileIndex: identical files of immutable trees share one pool inode; df numbers add up."""

from __future__ import annotations

import os
from pathlib import Path

from builder.layers.fileindex import TEMP_PREFIX, FileIndex, disk_usage


def _tree(root: Path, shared: dict[str, bytes], own: dict[str, bytes]) -> Path:
    for name, data in {**shared, **own}.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, 0o644)
    return root


def test_two_trees_sharing_files_are_linked_and_bytes_saved_match(tmp_path: Path) -> None:
    shared = {f"lib/shared{i}.so": os.urandom(50_000 + i) for i in range(20)}
    shared_bytes = sum(len(v) for v in shared.values())
    a = _tree(tmp_path / "a", shared, {"only-a": os.urandom(1000)})
    b = _tree(tmp_path / "b", {f"other/{k}": v for k, v in shared.items()}, {"only-b": b"x"})
    before = disk_usage([a, b])
    index = FileIndex(tmp_path / "pool")
    first = index.dedupe_tree(a)
    assert first.files == 21 and first.linked == 0 and first.bytes_saved == 0
    second = index.dedupe_tree(b)
    assert second.linked == 20 and second.bytes_saved == shared_bytes
    for name in shared:
        assert os.stat(a / name).st_ino == os.stat(b / "other" / name).st_ino
    after = disk_usage([a, b])
    assert after.logical_bytes == before.logical_bytes
    saved = before.disk_bytes - after.disk_bytes
    assert 0.95 * shared_bytes <= saved <= 1.1 * shared_bytes
    usage = index.usage()
    assert usage.entries == 22
    assert usage.bytes_saved == shared_bytes
    # a second run changes nothing
    assert index.dedupe_tree(b).linked == 0


def test_files_differing_in_mode_owner_or_xattrs_are_not_shared(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    names = ["plain", "mode", "owner", "xattr", "setuid"]
    a = _tree(tmp_path / "a", {n: data for n in names}, {})
    os.chmod(a / "mode", 0o600)
    os.chown(a / "owner", 1000, 1000)
    os.setxattr(a / "xattr", "user.tag", b"1")
    os.chmod(a / "setuid", 0o4755)
    index = FileIndex(tmp_path / "pool")
    stats = index.dedupe_tree(a)
    assert stats.linked == 0
    assert len({os.stat(a / n).st_ino for n in names}) == 5
    b = _tree(tmp_path / "b", {n: data for n in names}, {})
    os.chmod(b / "setuid", 0o4755)
    index.dedupe_tree(b)  # in b only "setuid" differs from plain 0644 root files
    plain, setuid = os.stat(a / "plain").st_ino, os.stat(a / "setuid").st_ino
    assert {n: os.stat(b / n).st_ino for n in names} == {
        "plain": plain, "mode": plain, "owner": plain, "xattr": plain, "setuid": setuid,
    }
    assert os.stat(b / "setuid").st_mode & 0o7777 == 0o4755


def test_leftover_temp_links_from_a_crash_are_cleaned(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", {"f": b"content"}, {})
    os.link(a / "f", a / f"{TEMP_PREFIX}123-f")
    FileIndex(tmp_path / "pool").dedupe_tree(a)
    assert sorted(p.name for p in a.iterdir()) == ["f"]


def test_prune_drops_pool_files_no_tree_uses(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", {"f": b"one", "g": b"two"}, {})
    index = FileIndex(tmp_path / "pool")
    index.dedupe_tree(a)
    (a / "f").unlink()
    assert index.prune() == 1
    assert index.usage().entries == 1


def test_applying_a_layer_onto_a_deduped_tree_never_writes_through_shared_inodes(
    tmp_path: Path,
) -> None:
    import io
    import tarfile

    from builder.layers import apply_layer

    a = _tree(tmp_path / "a", {"etc/conf": b"shared v1"}, {})
    b = _tree(tmp_path / "b", {"etc/conf": b"shared v1"}, {})
    index = FileIndex(tmp_path / "pool")
    index.dedupe_tree(a)
    index.dedupe_tree(b)
    assert os.stat(a / "etc" / "conf").st_nlink == 3
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("etc/conf")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"v2"))
    raw.seek(0)
    apply_layer(raw, b, whiteouts="merge")  # replaces the entry: unlink + create, never O_TRUNC
    assert (b / "etc" / "conf").read_bytes() == b"v2"
    assert (a / "etc" / "conf").read_bytes() == b"shared v1"
    assert os.stat(a / "etc" / "conf").st_nlink == 2
