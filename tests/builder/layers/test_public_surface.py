"""The names other packages may import from builder.layers (DESIGN.md section 7)."""

from __future__ import annotations

import builder.layers


def test_public_surface_is_pinned() -> None:
    assert sorted(builder.layers.__all__) == [
        "ApplyLimits", "Change", "ChangeKind", "DedupeStats", "DiskUsage", "FileIndex",
        "LayerInfo", "PoolUsage", "apply_layer", "apply_tar", "disk_usage", "media_type_for",
        "open_compressor", "open_decompressed", "overlay_changes", "resolve_in_root",
        "tree_changes", "write_changes", "write_layer", "write_tree_layer",
    ]
    for name in builder.layers.__all__:
        assert getattr(builder.layers, name) is not None
