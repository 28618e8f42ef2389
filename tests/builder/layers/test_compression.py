"""Compression: deterministic gzip headers, both gzip backends, detection by magic bytes."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys

import pytest
import zstandard

from builder.errors import InvalidArgument
from builder.layers import compression
from builder.layers.compression import (
    detect_compression,
    media_type_for,
    open_compressor,
    open_decompressed,
)
from registry.oci import mediatypes

DATA = b"layer bytes " * 50_000 + os.urandom(100_000)


def _compress(kind: str, level: int | None = None, backend: str | None = None) -> bytes:
    out = io.BytesIO()
    c = open_compressor(out, kind, level, backend=backend)
    for i in range(0, len(DATA), 65536):
        c.write(DATA[i:i + 65536])
    c.close()
    return out.getvalue()


@pytest.mark.parametrize("backend", ["zlib", "isal"])
def test_gzip_backends_write_standard_gzip_with_mtime_zero(backend: str) -> None:
    blob = _compress("gzip", 6, backend)
    assert gzip.decompress(blob) == DATA
    assert blob[4:8] == b"\0\0\0\0" and not blob[3] & 0x08  # mtime 0, no FNAME
    assert _compress("gzip", 6, backend) == blob


def test_isal_is_the_default_gzip_backend_when_installed() -> None:
    assert compression.GZIP_BACKEND == "isal"
    forced = subprocess.run(
        [sys.executable, "-c", "from builder.layers import compression as c; "
                               "print(c.GZIP_BACKEND)"],
        env={**os.environ, "STRATA_GZIP_BACKEND": "zlib"},
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert forced == "zlib"


def test_zstd_and_plain_round_trip() -> None:
    blob = _compress("zstd", 3)
    assert blob.startswith(compression.ZSTD_MAGIC)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == DATA
    assert _compress("none") == DATA


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_open_decompressed_detects_by_magic_and_leaves_stream_open(kind: str) -> None:
    blob = _compress(kind)
    assert detect_compression(blob[:4]) == kind
    stream = io.BytesIO(blob)
    reader = open_decompressed(stream)
    got = bytearray()
    while chunk := reader.read(4096):
        got += chunk
    assert bytes(got) == DATA
    assert not stream.closed


def test_multi_member_gzip_and_multi_frame_zstd_are_read_whole() -> None:
    two = gzip.compress(b"first-") + gzip.compress(b"second")
    assert open_decompressed(io.BytesIO(two)).read(100) == b"first-second"
    zc = zstandard.ZstdCompressor()
    frames = zc.compress(b"one-") + zc.compress(b"two")
    reader = open_decompressed(io.BytesIO(frames))
    assert reader.read(3) + reader.read(100) == b"one-two"


def test_unknown_compression_and_bad_levels_are_rejected() -> None:
    with pytest.raises(InvalidArgument):
        media_type_for("brotli")
    with pytest.raises(InvalidArgument):
        open_compressor(io.BytesIO(), "gzip", 12)
    with pytest.raises(InvalidArgument):
        open_compressor(io.BytesIO(), "zstd", 99)
    assert media_type_for("zstd") == mediatypes.OCI_LAYER_ZSTD
