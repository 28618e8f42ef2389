"""write_layer -> apply_layer keeps every kind of entry; output is deterministic."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from layer_treeutil import build_sample_tree, describe

from builder.errors import DigestMismatch
from builder.layers import apply_layer, tree_changes, write_layer, write_tree_layer
from registry.oci import mediatypes
from registry.oci.digest import Digest


@pytest.fixture()
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    build_sample_tree(root)
    return root


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_round_trip_keeps_links_xattrs_modes_and_special_files(
    sample: Path, tmp_path: Path, compression: str
) -> None:
    blob = io.BytesIO()
    info = write_tree_layer(sample, blob, compression=compression)
    assert info.size == len(blob.getvalue())
    assert info.digest == Digest.from_bytes(blob.getvalue())
    assert info.media_type == mediatypes.__dict__[
        {"gzip": "OCI_LAYER_GZIP", "zstd": "OCI_LAYER_ZSTD", "none": "OCI_LAYER"}[compression]
    ]
    if compression == "none":
        assert info.diff_id == info.digest
    dest = tmp_path / "dest"
    dest.mkdir()
    blob.seek(0)
    assert apply_layer(blob, dest, expected_diff_id=info.diff_id) == info.diff_id
    assert describe(dest) == describe(sample)
    st = os.lstat(dest / "bin" / "tool")
    assert st.st_nlink == 2 and st.st_ino == os.lstat(dest / "bin" / "tool-hardlink").st_ino
    assert oct(st.st_mode & 0o7777) == "0o4755"
    assert os.getxattr(dest / "bin" / "ping", "security.capability")[4:8] == (1 << 13).to_bytes(
        4, "little"
    )
    assert os.readlink(dest / "abs-symlink") == "/etc/hostname"


def test_tar_headers_are_normalized(sample: Path) -> None:
    blob = io.BytesIO()
    write_tree_layer(sample, blob, compression="none", source_date_epoch=1_000_000)
    blob.seek(0)
    with tarfile.open(fileobj=blob, mode="r:") as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/"))
    for m in members:
        assert m.uname == "" and m.gname == ""
        assert m.mtime <= 1_000_000
        assert "atime" not in m.pax_headers and "ctime" not in m.pax_headers
    hard = next(m for m in members if m.name == "bin/tool-hardlink")
    assert hard.islnk() and hard.linkname == "bin/tool"
    ping = next(m for m in members if m.name == "bin/ping")
    assert "SCHILY.xattr.security.capability" in ping.pax_headers


def test_source_date_epoch_clamps_mtimes_and_gives_equal_digests(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root, stamp in ((a, 2_000_000_000), (b, 2_100_000_000)):
        root.mkdir()
        (root / "f").write_text("same\n")
        os.utime(root / "f", (stamp, stamp))
        os.utime(root, (stamp, stamp))
    la = write_tree_layer(a, io.BytesIO(), source_date_epoch=1_700_000_000)
    lb = write_tree_layer(b, io.BytesIO(), source_date_epoch=1_700_000_000)
    assert la == lb
    assert write_tree_layer(a, io.BytesIO()).diff_id != write_tree_layer(b, io.BytesIO()).diff_id
    # older mtimes are kept, not raised to the epoch
    old = tmp_path / "old"
    old.mkdir()
    (old / "f").write_text("x")
    os.utime(old / "f", (1000, 1000))
    blob = io.BytesIO()
    write_tree_layer(old, blob, compression="none", source_date_epoch=1_700_000_000)
    blob.seek(0)
    with tarfile.open(fileobj=blob) as tf:
        assert tf.getmember("f").mtime == 1000


_DIGEST_SCRIPT = """
import io, sys
from pathlib import Path
from builder.layers import write_tree_layer
for c in ("gzip", "zstd", "none"):
    i = write_tree_layer(Path(sys.argv[1]), io.BytesIO(), compression=c)
    print(c, i.diff_id, i.digest, i.size)
"""


def test_same_tree_gives_same_digest_in_two_processes(sample: Path) -> None:
    outs = [
        subprocess.run(
            [sys.executable, "-c", _DIGEST_SCRIPT, str(sample)],
            check=True, capture_output=True, text=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in (1, 2)
    ]
    assert outs[0] == outs[1]
    assert len(outs[0].splitlines()) == 3


def test_gzip_header_has_mtime_zero_and_no_name(sample: Path) -> None:
    blob = io.BytesIO()
    write_tree_layer(sample, blob, compression="gzip")
    head = blob.getvalue()[:10]
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] & 0x08 == 0  # FNAME not set
    assert head[4:8] == b"\0\0\0\0"


def test_expected_diff_id_mismatch_raises(sample: Path, tmp_path: Path) -> None:
    blob = io.BytesIO()
    write_tree_layer(sample, blob)
    blob.seek(0)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DigestMismatch):
        apply_layer(blob, dest, expected_diff_id=Digest.from_bytes(b"other"))


def test_deletions_and_modifications_apply_in_merge_mode(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    (lower / "keep").write_text("k")
    (lower / "gone").write_text("g")
    (lower / "dir").mkdir()
    (lower / "dir" / "inner").write_text("i")
    (lower / "edit").write_text("old")
    subprocess.run(["cp", "-a", f"{lower}/.", str(upper)], check=True)
    (upper / "gone").unlink()
    subprocess.run(["rm", "-rf", str(upper / "dir")], check=True)
    (upper / "edit").write_text("new content")
    (upper / "added").write_text("a")
    blob = io.BytesIO()
    write_layer(tree_changes(lower, upper), blob)
    blob.seek(0)
    apply_layer(blob, lower, whiteouts="merge")
    assert describe(lower) == describe(upper)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("big", [False, True], ids=["fails-at-flush", "fails-mid-stream"])
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_a_failing_sink_fails_write_layer_without_hanging(
    sample: Path, compression: str, big: bool
) -> None:
    if big:
        (sample / "big.bin").write_bytes(os.urandom(24 << 20))

    class FullDisk:
        def __init__(self) -> None:
            self.calls = 0

        def write(self, data: bytes) -> None:
            self.calls += 1
            raise OSError(28, "No space left on device")

    sink = FullDisk()
    with pytest.raises(OSError, match="No space left"):
        write_tree_layer(sample, sink, compression=compression)
    assert sink.calls == 1


def test_short_writes_of_a_raw_sink_are_completed(sample: Path) -> None:
    class Trickle:
        """Accepts at most 1000 bytes per write, like a raw file or pipe may."""

        def __init__(self) -> None:
            self.buf = bytearray()

        def write(self, data: bytes) -> int:
            self.buf += data[:1000]
            return min(len(data), 1000)

    sink = Trickle()
    info = write_tree_layer(sample, sink, compression="gzip")
    assert len(sink.buf) == info.size
    assert Digest.from_bytes(bytes(sink.buf)) == info.digest


def test_whiteouts_none_extracts_wh_entries_as_plain_files(tmp_path: Path) -> None:
    """What ADD of a local archive needs: an archive is not a layer, so `.wh.x` is a file."""
    from builder.layers.archive import apply_tar

    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "x").write_text("keep")
    (root / "d" / "old").write_text("keep")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in (".wh.x", "d/.wh..wh..opq"):
            tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    buf.seek(0)
    apply_tar(buf, root, whiteouts="none")
    assert (root / "x").read_text() == "keep" and (root / "d" / "old").read_text() == "keep"
    assert (root / ".wh.x").is_file() and (root / "d" / ".wh..wh..opq").is_file()


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_a_content_store_writer_gets_the_right_digests_without_a_second_hash(
        sample: Path, tmp_path: Path, compression: str) -> None:
    """write_layer takes the blob digest from a sink that digests (the store's writer)."""
    import gzip
    import hashlib

    from builder.content import LocalContentStore

    store = LocalContentStore(tmp_path / "store")
    with store.writer("layer") as w:
        info = write_tree_layer(sample, w, compression=compression)
        assert w.commit(info.size, info.digest) == info.digest
    blob = store.blob_path(info.digest).read_bytes()
    assert info.digest == Digest("sha256", hashlib.sha256(blob).hexdigest())
    tar = gzip.decompress(blob) if compression == "gzip" else blob
    assert info.diff_id == Digest("sha256", hashlib.sha256(tar).hexdigest())
