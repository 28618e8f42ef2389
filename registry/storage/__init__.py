"""Registry storage: a path-based driver and the blob, upload and manifest stores over it.

    store = await RegistryStore.open(StoreConfig(root=Path("/var/lib/registry")))
    status = await store.uploads.start("library/app")
    await store.uploads.append("library/app", status.uuid, chunks, start=0)
    info = await store.uploads.commit("library/app", status.uuid, digest)
    await store.manifests.put("library/app", "latest", media_type, manifest_bytes)
    await store.close()

One RegistryStore per process; any number of processes may share one root (SQLite WAL for
the index, atomic renames for blobs, upload state in files).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from registry.storage import paths
from registry.storage.blobs import BlobStore
from registry.storage.driver import (
    FileInfo,
    FileWriter,
    InvalidPath,
    LocalFiles,
    PathNotFound,
    StorageDriver,
    StorageError,
)
from registry.storage.filesystem import FilesystemDriver
from registry.storage.gc import CollectionReport, ManifestUnreadable, collect_garbage
from registry.storage.manifests import ManifestStore
from registry.storage.memory import MemoryDriver
from registry.storage.metadata import CollectionConflict, Generation, MetadataIndex
from registry.storage.rootlock import RootBusy, RootLock
from registry.storage.uploads import UploadState, UploadStore
from registry.storage.values import (
    BlobInfo,
    ManifestInfo,
    ManifestListener,
    ReferrersPage,
    StoreConfig,
    StoredManifest,
    UploadStatus,
    WriteCondition,
)

__all__ = [
    "BlobInfo", "BlobStore", "CollectionConflict", "CollectionReport", "FileInfo",
    "FileWriter", "FilesystemDriver", "Generation", "InvalidPath", "LocalFiles",
    "ManifestInfo", "ManifestListener", "ManifestStore", "ManifestUnreadable", "MemoryDriver",
    "PathNotFound", "ReferrersPage", "RegistryStore", "RootBusy", "RootLock", "StorageDriver",
    "StorageError", "StoreConfig", "StoredManifest", "UploadState", "UploadStatus",
    "UploadStore", "WriteCondition",
]


class RegistryStore:
    """Facade composed of BlobStore, UploadStore and ManifestStore over one driver and one
    metadata index. The SQLite file and generation file always live under `config.root`."""

    def __init__(self, config: StoreConfig, driver: StorageDriver, index: MetadataIndex) -> None:
        self.config = config
        self.driver = driver
        self._index = index
        self._listeners: list[ManifestListener] = []
        self.blobs = BlobStore(driver, index, config)
        self.uploads = UploadStore(driver, self.blobs, config)
        self.manifests = ManifestStore(driver, index, config, self._listeners)

    @classmethod
    async def open(cls, config: StoreConfig,
                   driver: StorageDriver | None = None) -> RegistryStore:
        """Open (creating if needed) the store at `config.root`; the filesystem driver on
        that root unless another `driver` is given (e.g. MemoryDriver in tests)."""
        root = Path(config.root)
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: root.mkdir(parents=True, exist_ok=True))
        index = await MetadataIndex.open(root / paths.METADATA_DB, root / paths.GENERATION_FILE)
        return cls(config, driver if driver is not None else FilesystemDriver(root), index)

    async def collect_garbage(self, dry_run: bool = False,
                              delete_untagged: bool = False) -> CollectionReport:
        """Remove the blobs no manifest needs, and with `delete_untagged` the manifests no
        tag reaches first (registry/storage/gc.py); the registry must be stopped (RootLock)."""
        return await collect_garbage(self.driver, self._index, dry_run, delete_untagged)

    async def close(self) -> None:
        await self._index.close()

    @property
    def db_path(self) -> Path:
        """The SQLite database (others may add their own tables through their own
        connection, e.g. the search index)."""
        return self._index.path

    @property
    def generation(self) -> Generation:
        """Changes (in every process) after each committed metadata write."""
        return self._index.generation

    def add_listener(self, listener: ManifestListener) -> None:
        """`listener(repo, tag_or_None, info, deleted)` after every manifest/tag change."""
        self._listeners.append(listener)
