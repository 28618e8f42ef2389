"""Archive loading is strict: tampered blobs are refused and member names never become paths."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from store_util import make_docker_archive, make_rootfs_tar

from builder.archives import load_archive, save_archive
from builder.errors import DigestMismatch, InvalidArgument
from builder.images import ImageStore


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _oci_archive(store: ImageStore, tmp: Path) -> bytes:
    layer = make_rootfs_tar(tmp / "l.tar", {"f": b"content"})
    archive = make_docker_archive(tmp / "d.tar", [layer], "src:1")
    with archive.open("rb") as f:
        load_archive(store, f)
    out = io.BytesIO()
    save_archive(store, ["src:1"], out, "oci")
    return out.getvalue()


def test_a_blob_that_does_not_match_its_name_is_refused(store: ImageStore,
                                                          tmp_path: Path) -> None:
    data = _oci_archive(store, tmp_path)
    other = ImageStore(tmp_path / "other")
    tampered = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, \
            tarfile.open(fileobj=tampered, mode="w") as dst:
        for m in src:
            f = src.extractfile(m) if m.isfile() else None
            body = f.read() if f else b""
            if m.name.startswith("blobs/sha256/") and len(body) > 1000:
                body = body[:-1] + bytes([body[-1] ^ 1])
            dst.addfile(m, io.BytesIO(body) if f else None)
    with pytest.raises(DigestMismatch):
        load_archive(other, io.BytesIO(tampered.getvalue()))
    assert other.images() == []
    assert all(other.content.exists(b.digest) for b in other.content.walk())
    assert list(other.content.ingest_dir.iterdir()) == []


def test_member_names_with_dotdot_never_touch_the_filesystem(store: ImageStore,
                                                             tmp_path: Path) -> None:
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        _add(tar, "../../escape.json", b"{}")
        _add(tar, "/abs/escape/layer.tar", b"x" * 10)
        _add(tar, "manifest.json", json.dumps([]).encode())
    with pytest.raises(InvalidArgument):  # an empty manifest list names no image
        load_archive(store, io.BytesIO(evil.getvalue()))
    assert not (tmp_path / "escape.json").exists()
    assert not Path("/abs").exists()
    assert store.images() == []


def test_an_archive_without_manifests_is_rejected(store: ImageStore) -> None:
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w") as tar:
        _add(tar, "hello.txt", b"hi")
    with pytest.raises(InvalidArgument):
        load_archive(store, io.BytesIO(empty.getvalue()))
    with pytest.raises(InvalidArgument):
        load_archive(store, io.BytesIO(b"not a tar at all" * 100))


def test_legacy_archive_with_wrong_diff_id_is_refused(store: ImageStore, tmp_path: Path) -> None:
    layer = make_rootfs_tar(tmp_path / "l.tar", {"f": b"1"})
    archive = make_docker_archive(tmp_path / "a.tar", [layer], "bad:1")
    patched = io.BytesIO()
    with tarfile.open(archive) as src, tarfile.open(fileobj=patched, mode="w") as dst:
        for m in src:
            body = src.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
            if m.name.endswith("layer.tar"):
                body = body.replace(b"\x00" * 512, b"\x00" * 511 + b"\x01", 1)
            m.size = len(body)
            dst.addfile(m, io.BytesIO(body))
    with pytest.raises(DigestMismatch):
        load_archive(store, io.BytesIO(patched.getvalue()))
    assert store.images() == []
