"""Applier: a (compressed) layer blob -> a directory, returning the diff_id computed on the way.

Ownership: the caller picks `root`. Apply into a fresh temporary directory on the same
filesystem as the final place, then rename it into place on success and remove it on any error:
`apply_layer` leaves a half-applied tree behind when it raises (LayerRejected, DigestMismatch,
OSError), and it does not fsync. The root must not be written by anyone else during the call.

Decompression runs in a worker thread that reads ahead a few MiB (gzip, isal and zstd release
the GIL), so it overlaps with creating files; the worker is stopped before `apply_layer`
returns or raises, and never reads `stream` after that.
"""

from __future__ import annotations

import contextlib
import gzip
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from builder.errors import DigestMismatch, LayerRejected
from builder.layers.archive import ApplyLimits, apply_tar
from builder.layers.compression import open_decompressed
from registry.oci.digest import Digest

_CHUNK = 1 << 20


class _ReadAhead:
    """A read(n) view of `source` filled by a worker thread, `depth` chunks ahead."""

    def __init__(self, source: BinaryIO, depth: int = 4) -> None:
        self._source = source
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._buf = b""
        self._off = 0
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="layer-read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._source.read(_CHUNK)
                self._queue.put(data)
                if not data:
                    return
        except BaseException as e:  # handed to the reading thread
            self._queue.put(e)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise ValueError("unbounded read on a layer stream")
        if self._off >= len(self._buf):
            if self._eof:
                return b""
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._eof = True
                if isinstance(item, gzip.BadGzipFile) or (
                    isinstance(item, Exception) and not isinstance(item, OSError)
                ):  # zlib.error, EOFError on truncation, zstd errors: a broken blob
                    raise LayerRejected(f"corrupt compressed layer: {item}") from item
                raise item
            if not item:
                self._eof = True
                return b""
            self._buf, self._off = item, 0
        if self._off == 0 and n >= len(self._buf):
            out = self._buf
        else:
            out = self._buf[self._off:self._off + n]
        self._off += len(out)
        return out

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()


def apply_layer(
    stream: BinaryIO,
    root: Path,
    *,
    whiteouts: str = "overlay",
    limits: ApplyLimits | None = None,
    expected_diff_id: Digest | None = None,
    parents: Sequence[Path] = (),
) -> Digest:
    """Unpack a gzip / zstd / plain layer tar from `stream` into `root`; returns its diff_id.

    whiteouts: "overlay" (root becomes an overlay lower directory) or "merge" (apply onto a
    flattened tree); see builder.layers.archive.apply_tar. DigestMismatch when
    `expected_diff_id` is given and the uncompressed tar hashes differently (checked after the
    whole stream was read; the tree is then to be discarded by the caller).
    parents: unpacked lower layer directories, topmost first (overlay mode; see apply_tar).
    """
    reader = _ReadAhead(open_decompressed(stream))
    try:
        diff_id = apply_tar(
            reader,  # type: ignore[arg-type]
            Path(root),
            whiteouts=whiteouts,
            limits=limits,
            parents=parents,
        )
    finally:
        reader.close()
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise DigestMismatch(str(expected_diff_id), str(diff_id), "layer diff_id")
    return diff_id
