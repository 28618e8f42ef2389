"""ManifestStore: manifests by digest, tags, referrers and the catalog.

Manifest bytes are stored exactly as pushed, as blobs in the global store; everything else
(which repository holds which manifest, tags, subjects) lives in the metadata index. A PUT
is refused unless every blob (image manifest) or child manifest (index) is already in the
repository (ManifestBlobUnknown), and the check and the write are one transaction.

Reads by tag or digest are served from GenerationCache + ContentCache when nothing changed
since (any process), so a hot manifest HEAD/GET costs no system call and no thread hop.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Sequence

from registry.oci import Descriptor, Digest, ImageIndex, ImageManifest, Manifest, is_digest
from registry.oci import mediatypes as mt
from registry.oci.errors import (
    DigestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    NameUnknown,
    PaginationInvalid,
    Unsupported,
)
from registry.oci.manifest import OFF_LOOP_BYTES, parse_manifest_off_loop
from registry.oci.reference import TAG_RE, validate_name, validate_tag
from registry.storage import paths
from registry.storage.cache import ContentCache, GenerationCache
from registry.storage.driver import PathNotFound, StorageDriver
from registry.storage.metadata import ManifestRecord, MetadataIndex
from registry.storage.values import (
    ManifestInfo,
    ManifestListener,
    ReferrersPage,
    StoreConfig,
    StoredManifest,
    WriteCondition,
)

log = logging.getLogger(__name__)


def references(manifest: Manifest) -> tuple[list[str], list[str]]:
    """What a manifest needs in its repository: (blobs, child manifests), as digest strings.

    An image manifest needs its config and layers. Entries of an index typed as manifests
    must be manifests of the repository; other entries must be its content all the same:
    BuildKit's registry cache (image-manifest=false, its default before v0.21) lists its
    layers and cache config in an index. A subject is not needed (referrers may come first).
    """
    blobs: list[str] = []
    children: list[str] = []
    if isinstance(manifest, ImageManifest):
        blobs = [str(d.digest) for d in manifest.blobs()]
    elif isinstance(manifest, ImageIndex):
        for desc in manifest.manifests:
            (children if desc.media_type in mt.MANIFESTS else blobs).append(str(desc.digest))
    return blobs, children


def _info(record: ManifestRecord) -> ManifestInfo:
    return ManifestInfo(Digest.parse(record.digest), record.media_type, record.size,
                        Digest.parse(record.subject) if record.subject else None)


def _check_page(n: int | None) -> None:
    if n is not None and n < 0:
        raise PaginationInvalid(detail={"n": n})


class ManifestStore:
    def __init__(self, driver: StorageDriver, index: MetadataIndex, config: StoreConfig,
                 listeners: list[ManifestListener]) -> None:
        self._driver = driver
        self._index = index
        self._config = config
        self._listeners = listeners
        self._infos: GenerationCache[tuple[str, str], ManifestInfo] = \
            GenerationCache(index.generation)
        self._content = ContentCache()

    # ------------------------------------------------------------------ writes

    async def put(self, repo: str, reference: str, media_type: str | None, data: bytes,
                  tags: Sequence[str] = (),
                  condition: WriteCondition | None = None,
                  references_present: bool = True) -> ManifestInfo:
        """Validate and store a manifest under a tag or digest `reference` (+ extra `tags`).

        ManifestInvalid (bad JSON or shape, schema 1; ManifestTooLarge over the limit),
        DigestInvalid (a digest reference not matching the bytes), ManifestBlobUnknown (a
        referenced blob or child manifest not in `repo`, unless `references_present` is
        False: a pull-through cache stores a manifest before the blobs it will fetch on
        demand), NameInvalid, TagInvalid, PreconditionFailed (`condition` does not hold
        when the write would happen).
        """
        validate_name(repo)
        expected: Digest | None = None
        all_tags = [validate_tag(t) for t in tags]
        if is_digest(reference):
            expected = Digest.parse(reference)
        else:
            all_tags.insert(0, validate_tag(reference))
        if len(data) > self._config.max_manifest_bytes:
            raise ManifestTooLarge(f"manifest is {len(data)} bytes; the limit is "
                                   f"{self._config.max_manifest_bytes}",
                                   detail={"size": len(data)})
        algorithm = expected.algorithm if expected is not None else "sha256"
        manifest = await parse_manifest_off_loop(data, media_type)
        if len(data) >= OFF_LOOP_BYTES:
            digest = await asyncio.get_running_loop().run_in_executor(
                None, Digest.from_bytes, data, algorithm)
        else:
            digest = Digest.from_bytes(data, algorithm)
        if expected is not None and digest != expected:
            raise DigestInvalid("manifest digest does not match the reference",
                                detail={"digest": str(expected), "actual": str(digest)})
        blobs, children = references(manifest) if references_present else ([], [])
        record = ManifestRecord(
            str(digest), manifest.media_type, len(data),
            str(manifest.subject.digest) if manifest.subject is not None else None,
            manifest.effective_artifact_type(),
            json.dumps(manifest.annotations, sort_keys=True) if manifest.annotations else None)
        if await self._index.blob_size(str(digest)) is None:
            # Refused before its bytes are written, a manifest leaves nothing on disk (only
            # a reference deleted in between, caught by put_manifest, can orphan them).
            await self._index.check_manifest(repo, blobs, children, condition)
            await self._driver.put_content(paths.blob_data(digest), data)
        await self._index.put_manifest(repo, record, all_tags, blobs, children, condition)
        self._content.put(str(digest), data)
        info = _info(record)
        await self._notify(repo, None, info, False)
        for tag in all_tags:
            await self._notify(repo, tag, info, False)
        return info

    async def delete(self, repo: str, reference: str,
                     condition: WriteCondition | None = None) -> None:
        """By digest: the manifest and every tag on it. By tag: only the tag.
        Unsupported when deletes are disabled; ManifestUnknown when absent;
        PreconditionFailed when `condition` does not hold."""
        if not self._config.delete_enabled:
            raise Unsupported("deletes are disabled on this registry")
        if is_digest(reference):
            digest = Digest.parse(reference)
            record = await self._index.manifest(repo, str(digest))
            if record is None or await self._index.delete_manifest(
                    repo, str(digest), condition) is None:
                raise ManifestUnknown(detail={"reference": reference})
            await self._notify(repo, None, _info(record), True)
            return
        if not TAG_RE.fullmatch(reference):
            raise ManifestUnknown(detail={"reference": reference[:200]})
        target = await self._index.delete_tag(repo, reference, condition)
        if target is None:
            raise ManifestUnknown(detail={"reference": reference})
        record = await self._index.manifest(repo, target)
        if record is not None:
            await self._notify(repo, reference, _info(record), True)

    async def _notify(self, repo: str, tag: str | None, info: ManifestInfo,
                      deleted: bool) -> None:
        for listener in list(self._listeners):
            try:
                result = listener(repo, tag, info, deleted)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("manifest listener %r failed", listener)

    # ------------------------------------------------------------------ reads

    async def stat(self, repo: str, reference: str) -> ManifestInfo:
        """ManifestUnknown unless `reference` (tag or digest) names a manifest of `repo`."""
        key = (repo, reference)
        cached = self._infos.get(key)
        if cached is not None:
            return cached
        snapshot = self._infos.snapshot()
        if is_digest(reference):
            record = await self._index.manifest(repo, str(Digest.parse(reference)))
        elif TAG_RE.fullmatch(reference):
            record = await self._index.manifest_by_tag(repo, reference)
        else:
            record = None
        if record is None:
            raise ManifestUnknown(detail={"reference": reference[:200]})
        info = _info(record)
        self._infos.put(key, info, snapshot)
        return info

    async def get(self, repo: str, reference: str) -> StoredManifest:
        info = await self.stat(repo, reference)
        data = self._content.get(str(info.digest))
        if data is None:
            try:
                data = await self._driver.get_content(paths.blob_data(info.digest))
            except PathNotFound:
                raise ManifestUnknown(detail={"reference": reference[:200]}) from None
            self._content.put(str(info.digest), data)
        return StoredManifest(info, data)

    async def tags(self, repo: str, n: int | None = None,
                   last: str | None = None) -> list[str]:
        """Tag names in lexical order after `last`, at most `n`; NameUnknown for no repo."""
        _check_page(n)
        found = await self._index.tags(repo, n, last)
        if found is None:
            raise NameUnknown(detail={"name": repo[:300]})
        return found

    async def tag_targets(self, repo: str) -> list[tuple[str, Digest]]:
        """Every tag of `repo` and the manifest it names, by tag name, in one read (empty for
        an unknown repository)."""
        return [(tag, Digest.parse(digest))
                for tag, digest in await self._index.tag_targets(repo)]

    async def tags_of(self, repo: str, digest: Digest) -> list[str]:
        """The tags currently pointing at `digest` in `repo`."""
        return await self._index.tags_of(repo, str(digest))

    async def catalog(self, n: int | None = None, last: str | None = None) -> list[str]:
        """Repository names in lexical order after `last`, at most `n`."""
        _check_page(n)
        return await self._index.catalog(n, last)

    async def referrers(self, repo: str, subject: Digest, artifact_type: str | None = None,
                        last: Digest | None = None, count: int | None = None,
                        max_bytes: int | None = None) -> ReferrersPage:
        """Descriptors of the manifests in `repo` whose subject is `subject` (optionally only
        one artifactType), ordered by digest, after `last`; empty for unknown repositories.
        `count` and `max_bytes` (of descriptor JSON, one descriptor at least) cut a page."""
        records, more = await self._index.referrers(
            repo, str(subject), artifact_type, None if last is None else str(last), count,
            max_bytes)
        return ReferrersPage([Descriptor(r.media_type, Digest.parse(r.digest), r.size,
                                         annotations=r.annotations_dict(),
                                         artifact_type=r.artifact_type) for r in records], more)
