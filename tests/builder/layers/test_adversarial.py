"""Hostile layers built by hand: each is refused with LayerRejected and nothing leaks outside."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest
from layer_treeutil import entry, tar_bytes

from builder.errors import DigestMismatch, LayerRejected
from builder.layers import ApplyLimits, apply_layer
from registry.oci.digest import Digest


@pytest.fixture()
def jail(tmp_path: Path) -> tuple[Path, Path]:
    """(root to apply into, an 'outside' directory next to it that must stay untouched)."""
    root = tmp_path / "jail" / "root"
    root.mkdir(parents=True)
    outside = tmp_path / "jail" / "outside"
    outside.mkdir()
    (outside / "victim").write_text("original")
    return root, outside


def _apply(data: bytes, root: Path, **kw: object) -> None:
    apply_layer(io.BytesIO(data), root, **kw)  # type: ignore[arg-type]


def _untouched(outside: Path, tmp_path: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_text() == "original"
    assert sorted(p.name for p in (tmp_path / "jail").iterdir()) == ["outside", "root"]


def test_absolute_path_member_is_rejected(jail: tuple[Path, Path], tmp_path: Path) -> None:
    root, outside = jail
    data = tar_bytes([(entry(str(outside / "victim")), b"pwned")])
    with pytest.raises(LayerRejected, match="absolute"):
        _apply(data, root)
    _untouched(outside, tmp_path)


def test_dotdot_escape_is_rejected(jail: tuple[Path, Path], tmp_path: Path) -> None:
    root, outside = jail
    for name in ("../outside/victim", "a/../../outside/victim", "a/b/../../../x"):
        data = tar_bytes([(entry(name), b"pwned")])
        with pytest.raises(LayerRejected, match=r"\.\."):
            _apply(data, root)
    _untouched(outside, tmp_path)


def test_symlink_then_write_through_it_is_rejected(
    jail: tuple[Path, Path], tmp_path: Path
) -> None:
    root, outside = jail
    for target in (str(outside), "../outside", "../../outside"):
        data = tar_bytes([
            (entry("evil", tarfile.SYMTYPE, linkname=target), None),
            (entry("evil/victim"), b"pwned"),
        ])
        with pytest.raises(LayerRejected, match="symlink 'evil' created by this layer"):
            _apply(data, root)
        (root / "evil").unlink()
    _untouched(outside, tmp_path)


def test_symlink_then_replace_it_never_writes_through_it(
    jail: tuple[Path, Path], tmp_path: Path
) -> None:
    root, outside = jail
    data = tar_bytes([
        (entry("victim", tarfile.SYMTYPE, linkname=str(outside / "victim")), None),
        (entry("victim"), b"pwned"),  # must replace the link, not write through it
    ])
    _apply(data, root)
    assert (root / "victim").read_text() == "pwned"
    assert not (root / "victim").is_symlink()
    _untouched(outside, tmp_path)


def test_older_symlink_is_followed_but_clamped_to_the_root(
    jail: tuple[Path, Path], tmp_path: Path
) -> None:
    root, outside = jail
    (root / "usr" / "lib").mkdir(parents=True)
    os.symlink("/usr/lib", root / "lib")  # like a usrmerge base layer, applied earlier
    os.symlink("../../../../outside", root / "escape")
    data = tar_bytes([(entry("lib/libfoo.so"), b"lib"), (entry("escape/victim"), b"clamped")])
    _apply(data, root, whiteouts="merge")
    assert (root / "usr" / "lib" / "libfoo.so").read_bytes() == b"lib"
    assert (root / "outside" / "victim").read_text() == "clamped"
    _untouched(outside, tmp_path)


def test_hardlink_to_outside_root_is_rejected(jail: tuple[Path, Path], tmp_path: Path) -> None:
    root, outside = jail
    cases = [str(outside / "victim"), "../outside/victim"]
    for linkname in cases:
        data = tar_bytes([(entry("link", tarfile.LNKTYPE, linkname=linkname), None)])
        with pytest.raises(LayerRejected):
            _apply(data, root)
    # through a symlink this layer made
    data = tar_bytes([
        (entry("out", tarfile.SYMTYPE, linkname=str(outside)), None),
        (entry("link", tarfile.LNKTYPE, linkname="out/victim"), None),
    ])
    with pytest.raises(LayerRejected, match="symlink"):
        _apply(data, root)
    assert os.lstat(outside / "victim").st_nlink == 1
    _untouched(outside, tmp_path)


def test_hardlink_to_missing_target_is_rejected(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    data = tar_bytes([(entry("link", tarfile.LNKTYPE, linkname="nope"), None)])
    with pytest.raises(LayerRejected, match="does not exist"):
        _apply(data, root)


@pytest.mark.parametrize("whiteouts", ["overlay", "merge"])
def test_whiteout_naming_dotdot_is_rejected(
    jail: tuple[Path, Path], tmp_path: Path, whiteouts: str
) -> None:
    root, outside = jail
    (root / "dir").mkdir()
    for name in ("dir/.wh...", "dir/.wh..", "dir/.wh."):
        data = tar_bytes([(entry(name), b"")])
        with pytest.raises(LayerRejected, match="whiteout"):
            _apply(data, root, whiteouts=whiteouts)
    data = tar_bytes([(entry("../outside/.wh.victim"), b"")])
    with pytest.raises(LayerRejected):
        _apply(data, root, whiteouts=whiteouts)
    assert (root / "dir").is_dir()
    _untouched(outside, tmp_path)


def test_tar_bomb_over_size_limit_is_rejected(jail: tuple[Path, Path], tmp_path: Path) -> None:
    root, outside = jail
    # 64 MiB of zeros gzip to ~64 KiB; the limit is 8 MiB
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = entry("bomb", size=64 << 20)
        tf.addfile(info, io.BytesIO(bytes(64 << 20)))
    blob = gzip.compress(raw.getvalue(), 9)
    assert len(blob) < 1 << 20
    with pytest.raises(LayerRejected, match="limit"):
        _apply(blob, root, limits=ApplyLimits(max_bytes=8 << 20))
    assert not (root / "bomb").exists() or (root / "bomb").stat().st_size == 0
    _untouched(outside, tmp_path)


def test_many_small_files_over_byte_limit_are_rejected(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    data = tar_bytes([(entry(f"f{i}"), bytes(100_000)) for i in range(40)])
    with pytest.raises(LayerRejected, match="limit"):
        _apply(data, root, limits=ApplyLimits(max_bytes=1 << 20))


def test_entry_count_limit_is_rejected(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    data = tar_bytes([(entry(f"f{i}"), b"") for i in range(50)])
    with pytest.raises(LayerRejected, match="more than 10 entries"):
        _apply(data, root, limits=ApplyLimits(max_entries=10))
    assert len(list(root.iterdir())) <= 10


def test_huge_pax_header_is_rejected_before_it_is_read(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    info = entry("f")
    info.pax_headers = {"comment": "x" * (3 << 20)}
    data = tar_bytes([(info, b"data")])
    with pytest.raises(LayerRejected, match="header"):
        _apply(data, root, limits=ApplyLimits(max_header_bytes=1 << 20))


def test_corrupt_tar_is_rejected(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    good = tar_bytes([(entry("a"), b"a" * 2000)])
    with pytest.raises(LayerRejected):
        _apply(good[:1200], root)  # truncated inside the data
    with pytest.raises(LayerRejected):
        _apply(b"\x01" * 4096, root)  # not a tar at all


def test_file_below_a_regular_file_is_rejected(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    data = tar_bytes([(entry("a"), b"file"), (entry("a/b"), b"x")])
    with pytest.raises(LayerRejected, match="not a directory"):
        _apply(data, root)


def test_overlay_private_xattrs_in_a_layer_are_dropped(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    info = entry("d", tarfile.DIRTYPE, mode=0o755)
    info.pax_headers = {
        "SCHILY.xattr.trusted.overlay.redirect": "/etc",
        "SCHILY.xattr.user.ok": "kept",
    }
    _apply(tar_bytes([(info, None)]), root)
    names = os.listxattr(root / "d")
    assert "user.ok" in names and "trusted.overlay.redirect" not in names


def test_root_entry_must_be_a_directory(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    with pytest.raises(LayerRejected, match="root entry"):
        _apply(tar_bytes([(entry("./"), b"x")]), root)


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_truncated_or_corrupt_compressed_layer_is_rejected(
    jail: tuple[Path, Path], kind: str
) -> None:
    import zstandard

    root, _ = jail
    data = tar_bytes([(entry(f"f{i}"), os.urandom(3000)) for i in range(20)])
    blob = gzip.compress(data) if kind == "gzip" else zstandard.ZstdCompressor().compress(data)
    with pytest.raises(LayerRejected, match="corrupt|truncated"):
        _apply(blob[: len(blob) // 2], root)
    flipped = bytearray(blob)
    for i in range(len(blob) // 3, len(blob) // 3 + 64):
        flipped[i] ^= 0xFF
    # bit rot inside stored (random) data passes the decompressor unnoticed: the diff_id catches it
    with pytest.raises((LayerRejected, DigestMismatch)):
        _apply(bytes(flipped), root, expected_diff_id=Digest.from_bytes(data))


def test_tar_cut_at_a_header_boundary_is_rejected(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    data = tar_bytes([(entry("a"), b"a" * 512), (entry("b"), b"b" * 512)])
    cut = data.index(b"b" * 512) - 512  # right after the first member
    with pytest.raises(LayerRejected, match="truncated"):
        _apply(data[:cut], root)


def test_empty_stream_is_rejected_but_an_empty_tar_applies(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    with pytest.raises(LayerRejected, match="empty"):
        _apply(b"", root)
    _apply(bytes(1024), root)  # the canonical empty layer: just the end-of-archive marker
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("whiteouts", ["overlay", "merge"])
def test_whiteout_never_hides_an_entry_of_its_own_layer(
    jail: tuple[Path, Path], whiteouts: str
) -> None:
    root, _ = jail
    (root / "lower-file").write_text("from a lower layer")
    data = tar_bytes([
        (entry("mine"), b"same layer"),
        (entry(".wh.mine"), b""),
        (entry(".wh.lower-file"), b""),
    ])
    _apply(data, root, whiteouts=whiteouts)
    assert (root / "mine").read_text() == "same layer"
    assert not (root / "lower-file").is_file()
