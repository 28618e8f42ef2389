"""Choosing a snapshotter: overlay when a trial mount works, the copy one otherwise."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from builder.errors import FailedPrecondition, InvalidArgument
from builder.probecache import remembered
from builder.snapshots import Snapshotter
from builder.snapshots.copy import CopySnapshotter
from builder.snapshots.overlay import OverlaySnapshotter, supported

log = logging.getLogger(__name__)

_probe_cache: dict[Path, tuple[bool, str]] = {}


def probe_overlay(root: Path) -> tuple[bool, str]:
    """`supported(root)`, remembered per root for the life of the process and, in
    `<root>/probes.json`, for the running kernel (keyed by the root's device: a store moved
    to another filesystem is probed again)."""
    root = Path(root).absolute()
    if root not in _probe_cache:
        root.mkdir(parents=True, exist_ok=True)
        key = f"overlay:{root}:{os.stat(root).st_dev}"
        _probe_cache[root] = remembered(root / "probes.json", key, lambda: supported(root),
                                        encode=list, decode=lambda v: (bool(v[0]), str(v[1])))
    return _probe_cache[root]


def open_snapshotter(root: Path, name: str = "auto") -> Snapshotter:
    """See builder.snapshots.open_snapshotter. Each kind keeps its own subdirectory
    (`<root>/overlay`, `<root>/native`) because their trees are not interchangeable."""
    root = Path(root).absolute()
    if name not in ("auto", "overlay", "native"):
        raise InvalidArgument(f"unknown snapshotter {name!r} (auto, overlay, native)")
    if name in ("auto", "overlay"):
        ok, reason = probe_overlay(root)
        if ok:
            return OverlaySnapshotter(root / "overlay")
        if name == "overlay":
            raise FailedPrecondition(f"overlay snapshotter unavailable: {reason}")
        log.warning("falling back to the native (copy) snapshotter: %s", reason)
    return CopySnapshotter(root / "native")
