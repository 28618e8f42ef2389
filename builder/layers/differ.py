"""Differ: changes -> compressed OCI layer in ONE streaming pass.

    tar bytes --> sha256 (diff_id) --> compressor --> sha256 + byte count (digest, size) --> sink

An uncompressed layer is hashed once (its diff_id is its digest), and a sink that digests
what it receives (the content store's writer) is not hashed a second time here.

Nothing is held in memory beyond a few 1 MiB buffers. The sink is any object with
`write(bytes)` (a content-store writer, a file); `write_layer` never closes it.

Compression runs in one worker thread fed through a small bounded queue (zlib, isal and zstd
release the GIL), so walking the tree, reading files and hashing the tar overlap with compressing
it: creation runs at the speed of the compressor. The sink is therefore written from that worker
thread, strictly in order, and only while `write_layer` runs; errors on either side are raised
from `write_layer` in the caller's thread.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from builder.layers.archive import Sink, write_changes
from builder.layers.changes import Change, tree_changes
from builder.layers.compression import Compressor, media_type_for, open_compressor
from registry.oci.digest import Digest


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """What a descriptor and an image config need about a written layer."""

    diff_id: Digest  # sha256 of the uncompressed tar (goes into rootfs.diff_ids)
    digest: Digest  # sha256 of the bytes written to the sink (the blob digest)
    size: int  # number of bytes written to the sink
    media_type: str


class _CountingHasher:
    """Counts (and hashes) what reaches the sink. A sink that digests what it is given (the
    content store's writer: `size` and `digest()`), still empty, is not hashed twice."""

    __slots__ = ("_sink", "hash", "size", "_sink_digests")

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._sink_digests = (callable(getattr(sink, "digest", None))
                              and getattr(sink, "size", None) == 0)
        self.hash = None if self._sink_digests else hashlib.sha256()
        self.size = 0

    def digest(self) -> Digest:
        if self.hash is None:
            got = self._sink.digest()  # type: ignore[attr-defined]
            assert isinstance(got, Digest) and got.algorithm == "sha256"
            return got
        return Digest("sha256", self.hash.hexdigest())

    def write(self, data: bytes) -> None:
        if self.hash is not None:
            self.hash.update(data)
        self.size += len(data)
        written = self._sink.write(data)
        if isinstance(written, int) and 0 <= written < len(data):  # a raw file's short write
            view = memoryview(data)[written:]
            while view:
                n = self._sink.write(bytes(view))
                view = view[n if isinstance(n, int) else len(view):]


class _CompressorThread:
    """Feeds a compressor from a worker thread; `write` blocks when `depth` chunks are queued."""

    def __init__(self, compressor: Compressor, depth: int = 8) -> None:
        self._compressor = compressor
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="layer-compress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ended = False
        try:
            while (chunk := self._queue.get()) is not None:
                self._compressor.write(chunk)
            ended = True
            self._compressor.close()
        except BaseException as e:  # handed to the caller's thread
            self._error = e
            while not ended and self._queue.get() is not None:  # unblock the producer
                pass

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            self.close()
        self._queue.put(bytes(data))

    def close(self) -> None:
        """Flush and stop the worker; re-raises a worker error. Safe to call twice."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


class _TarTee:
    """Receives the tar stream: hashes it (diff_id), then feeds the compressor."""

    __slots__ = ("hash", "_compressor")

    def __init__(self, compressor: object) -> None:
        self.hash = hashlib.sha256()
        self._compressor = compressor

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        self._compressor.write(data)  # type: ignore[attr-defined]


def write_layer(
    changes: Iterable[Change],
    sink: Sink,
    *,
    compression: str = "gzip",
    level: int | None = None,
    source_date_epoch: int | None = None,
) -> LayerInfo:
    """Write the layer for `changes` into `sink`; returns its diff_id, digest, size, media type."""
    media_type = media_type_for(compression)
    counted = _CountingHasher(sink)
    compressor = open_compressor(counted, compression, level)
    if compression == "none":  # the tar is the blob: one digest serves as both
        write_changes(changes, compressor, source_date_epoch=source_date_epoch)
        compressor.close()
        digest = counted.digest()
        return LayerInfo(diff_id=digest, digest=digest, size=counted.size,
                         media_type=media_type)
    else:
        worker = _CompressorThread(compressor)
        tee = _TarTee(worker)
        try:
            write_changes(changes, tee, source_date_epoch=source_date_epoch)
        finally:
            worker.close()
    return LayerInfo(
        diff_id=Digest("sha256", tee.hash.hexdigest()),
        digest=counted.digest(),
        size=counted.size,
        media_type=media_type,
    )


def write_tree_layer(
    root: Path,
    sink: Sink,
    *,
    compression: str = "gzip",
    level: int | None = None,
    source_date_epoch: int | None = None,
) -> LayerInfo:
    """The whole tree under `root` as one layer (every entry added), e.g. for `strata import`."""
    return write_layer(
        tree_changes(None, Path(root)),
        sink,
        compression=compression,
        level=level,
        source_date_epoch=source_date_epoch,
    )
