"""BlobStore: one global content-addressed blob store plus per-repository links.

A blob is readable through a repository only when the metadata index links it there (as in
distribution), even though the bytes are stored once under `blobs/<alg>/<2>/<hex>/data`.
Uploads (uploads.py) put bytes in place; this class links, reads, mounts and unlinks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from registry.oci import Digest, validate_name
from registry.oci.errors import BlobUnknown, Unsupported
from registry.storage import paths
from registry.storage.cache import GenerationCache
from registry.storage.driver import LocalFiles, PathNotFound, StorageDriver
from registry.storage.metadata import MetadataIndex
from registry.storage.values import BlobInfo, StoreConfig


class BlobStore:
    def __init__(self, driver: StorageDriver, index: MetadataIndex, config: StoreConfig) -> None:
        self._driver = driver
        self._index = index
        self._config = config
        self._links: GenerationCache[tuple[str, Digest], BlobInfo] = \
            GenerationCache(index.generation)
        self._local = driver if isinstance(driver, LocalFiles) else None

    def info(self, digest: Digest, size: int) -> BlobInfo:
        path = self._local.local_path(paths.blob_data(digest)) if self._local else None
        return BlobInfo(digest, size, path)

    async def stat(self, repo: str, digest: Digest) -> BlobInfo:
        """The blob as seen through `repo`; BlobUnknown unless linked there."""
        key = (repo, digest)
        cached = self._links.get(key)
        if cached is not None:
            return cached
        snapshot = self._links.snapshot()
        size = await self._index.blob_link_size(repo, str(digest))
        if size is None:
            raise BlobUnknown(detail={"digest": str(digest)})
        info = self.info(digest, size)
        self._links.put(key, info, snapshot)
        return info

    async def read(self, repo: str, digest: Digest, start: int = 0,
                   end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) (end exclusive, None = to the end). BlobUnknown first."""
        info = await self.stat(repo, digest)
        stop = info.size if end is None else min(end, info.size)
        if stop <= start:
            return
        try:
            async for chunk in self._driver.reader(paths.blob_data(digest), start,
                                                   stop - start):
                yield chunk
        except PathNotFound:
            raise BlobUnknown(detail={"digest": str(digest)}) from None

    async def delete(self, repo: str, digest: Digest) -> None:
        """Unlink the blob from `repo` (bytes stay for other repositories)."""
        if not self._config.delete_enabled:
            raise Unsupported("deletes are disabled on this registry")
        if not await self._index.unlink_blob(repo, str(digest)):
            raise BlobUnknown(detail={"digest": str(digest)})

    async def mount(self, repo: str, digest: Digest, from_repo: str | None) -> BlobInfo | None:
        """Link an existing blob into `repo` without an upload.

        With `from_repo`, the blob must be linked there; without it, the blob must be linked
        in some repository (every repository is readable here; a blob deleted from all of
        them is not). None means "not mountable": the caller starts an upload instead.
        """
        validate_name(repo)
        if from_repo is not None:
            size = await self._index.blob_link_size(from_repo, str(digest))
        else:
            size = await self._index.linked_blob_size(str(digest))
        if size is None:
            return None
        await self._index.link_blob(repo, str(digest), size)
        return self.info(digest, size)

    async def link(self, repo: str, digest: Digest, size: int) -> BlobInfo:
        """Make committed bytes readable through `repo` (used by UploadStore)."""
        await self._index.link_blob(repo, str(digest), size)
        return self.info(digest, size)
