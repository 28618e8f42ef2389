"""Layers: change sources, deterministic tar writing, safe applying, compression, file dedupe.

Public surface (what other packages import):
"""

from __future__ import annotations

from builder.layers.applier import apply_layer
from builder.layers.archive import ApplyLimits, apply_tar, write_changes
from builder.layers.changes import Change, ChangeKind, overlay_changes, tree_changes
from builder.layers.compression import media_type_for, open_compressor, open_decompressed
from builder.layers.differ import LayerInfo, write_layer, write_tree_layer
from builder.layers.fileindex import DedupeStats, DiskUsage, FileIndex, PoolUsage, disk_usage
from builder.layers.resolve import resolve_in_root

__all__ = [
    "ApplyLimits",
    "Change",
    "ChangeKind",
    "DedupeStats",
    "DiskUsage",
    "FileIndex",
    "LayerInfo",
    "PoolUsage",
    "apply_layer",
    "apply_tar",
    "disk_usage",
    "media_type_for",
    "open_compressor",
    "open_decompressed",
    "overlay_changes",
    "resolve_in_root",
    "tree_changes",
    "write_changes",
    "write_layer",
    "write_tree_layer",
]
