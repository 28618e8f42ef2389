"""Applier: a (compressed) layer blob -> a directory, returning the diff_id computed on the way.

Ownership: the caller picks `root`. Apply into a fresh temporary directory on the same
filesystem as the final place, then rename it into place on success and remove it on any error:
`apply_layer` leaves a half-applied tree behind when it raises (LayerRejected, DigestMismatch,
OSError), and it does not fsync. The root must not be written by anyone else during the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from builder.errors import DigestMismatch
from builder.layers.archive import ApplyLimits, apply_tar
from builder.layers.compression import open_decompressed
from registry.oci.digest import Digest


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
    diff_id = apply_tar(
        open_decompressed(stream), Path(root), whiteouts=whiteouts, limits=limits, parents=parents
    )
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise DigestMismatch(str(expected_diff_id), str(diff_id), "layer diff_id")
    return diff_id
