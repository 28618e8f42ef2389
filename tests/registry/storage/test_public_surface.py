"""registry.storage's public surface is what __all__ lists (DESIGN section 7)."""

from __future__ import annotations

import inspect

import registry.storage as storage
from registry.storage import BlobStore, ManifestStore, RegistryStore, UploadStore


def test_exported_members_are_pinned() -> None:
    assert sorted(storage.__all__) == [
        "BlobInfo", "BlobStore", "CollectionConflict", "CollectionReport", "FileInfo",
        "FileWriter", "FilesystemDriver", "Generation", "InvalidPath", "LocalFiles",
        "ManifestInfo", "ManifestListener", "ManifestStore", "ManifestUnreadable",
        "MemoryDriver", "PathNotFound", "ReferrersPage", "RegistryStore", "RootBusy",
        "RootLock", "StorageDriver", "StorageError", "StoreConfig", "StoredManifest",
        "UploadState", "UploadStatus", "UploadStore", "WriteCondition",
    ]
    for name in storage.__all__:
        assert getattr(storage, name) is not None


def _public(cls: type) -> set[str]:
    return {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")}


def test_store_methods_match_the_contract() -> None:
    assert {"stat", "read", "delete", "mount", "link", "info"} == _public(BlobStore)
    assert {"start", "status", "append", "commit", "cancel", "put",
            "purge_expired"} == _public(UploadStore)
    assert {"put", "get", "stat", "delete", "tags", "tags_of", "tag_targets", "catalog",
            "referrers"} == _public(ManifestStore)
    assert {"open", "close", "db_path", "generation", "add_listener",
            "collect_garbage"} <= _public(RegistryStore)
