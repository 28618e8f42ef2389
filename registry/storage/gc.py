"""Garbage collection: remove the blobs no manifest needs (`strata-registry gc`).

Deletes through the API only unlink: a deleted manifest's layers, a deleted blob and an
abandoned push's uploads stay on disk. Collection frees them, as distribution's
`registry garbage-collect` does:

- mark: every manifest of every repository is read and parsed once; it keeps itself and
  what it needs (`references`, the rule a manifest PUT checks, and pushed foreign layers)
  linked in its repository. With `delete_untagged` (distribution's `--delete-untagged`) only
  the manifests a tag reaches are kept: tagged ones, the children of a kept index, and the
  referrers of a kept manifest (signatures and SBOMs stay with their image; distribution
  drops them);
- sweep, in one metadata transaction: the manifests not kept go, then every other repository
  link, then the record of every blob that no repository links any more and none has as a
  manifest;
- then those blobs' files go, and blob files the index has no record of (a crash between a
  blob's rename into place and its record leaves one).

The registry must be stopped meanwhile (`RootLock`): a push between the mark and the sweep
could lose blobs that nothing needs yet, such as layers uploaded before their manifest. A
manifest (or, when untagged ones go, a tag) written in between all the same fails the sweep
(CollectionConflict), which then removes nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from registry.oci import Digest, ImageManifest
from registry.oci.errors import RegistryError
from registry.oci.manifest import parse_manifest_off_loop
from registry.storage import paths
from registry.storage.driver import PathNotFound, StorageDriver
from registry.storage.manifests import references
from registry.storage.metadata import MetadataIndex, StoredManifestEntry


class ManifestUnreadable(RuntimeError):
    """A stored manifest could not be read or parsed: the mark cannot know what it needs,
    so nothing is collected."""


@dataclass(frozen=True, slots=True)
class CollectionReport:
    repositories: int  # repositories with manifests kept
    manifests: int  # manifests kept, with everything they need
    manifests_removed: int  # untagged manifests no kept one needs (with delete_untagged)
    untagged: tuple[str, ...]  # those manifests, as REPOSITORY@DIGEST
    links_removed: int  # repository links to blobs no manifest there needs
    blobs_removed: int  # blobs no repository links any more
    orphans_removed: int  # blob files the index had no record of
    bytes_freed: int
    dry_run: bool  # nothing was removed: the counts say what would be

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _References:
    blobs: list[str]  # what the manifest keeps linked in its repository
    children: list[str]  # the manifests an index lists


async def _references(driver: StorageDriver, entry: StoredManifestEntry) -> _References:
    """What a stored manifest keeps in its repository: what a PUT checks (its children are
    manifests of the repository, which keep themselves), and every layer besides: a foreign
    layer with URLs need not be pushed, but one that was stays."""
    try:
        data = await driver.get_content(paths.blob_data(Digest.parse(entry.digest)))
        manifest = await parse_manifest_off_loop(data, entry.media_type)
    except (PathNotFound, RegistryError) as exc:
        raise ManifestUnreadable(f"{entry.repo}@{entry.digest}: {exc}") from exc
    blobs, children = references(manifest)
    if isinstance(manifest, ImageManifest):
        blobs += [str(layer.digest) for layer in manifest.layers]
    return _References(blobs, children)


async def _reached_from_tags(entries: list[StoredManifestEntry],
                             refs: Callable[[StoredManifestEntry], Awaitable[_References]]
                             ) -> list[StoredManifestEntry]:
    """The manifests a tag of their repository reaches: tagged ones, then the children of a
    reached index and the referrers of a reached manifest, transitively."""
    reached: list[StoredManifestEntry] = []
    by_repo: dict[str, list[StoredManifestEntry]] = defaultdict(list)
    for entry in entries:
        by_repo[entry.repo].append(entry)
    for repo_entries in by_repo.values():
        by_digest = {e.digest: e for e in repo_entries}
        referrers: dict[str, list[str]] = defaultdict(list)
        for e in repo_entries:
            if e.subject is not None:
                referrers[e.subject].append(e.digest)
        todo = [e for e in repo_entries if e.tagged]
        seen = {e.digest for e in todo}
        while todo:
            entry = todo.pop()
            reached.append(entry)
            for digest in (await refs(entry)).children + referrers[entry.digest]:
                if digest in by_digest and digest not in seen:
                    seen.add(digest)
                    todo.append(by_digest[digest])
    return reached


async def _unrecorded(driver: StorageDriver, index: MetadataIndex) -> list[tuple[Digest, int]]:
    """Blob files whose digest the index has no record of, with their sizes."""
    found: dict[str, tuple[Digest, int]] = {}
    try:
        async for info in driver.walk(paths.BLOBS):
            digest = paths.blob_digest(info.path)
            if digest is not None:
                found[str(digest)] = (digest, info.size)
    except PathNotFound:  # no blob was ever stored
        return []
    return [found[d] for d in await index.unknown_blobs(list(found))]


async def collect_garbage(driver: StorageDriver, index: MetadataIndex,
                          dry_run: bool = False,
                          delete_untagged: bool = False) -> CollectionReport:
    """Mark, sweep, then remove the swept and unrecorded blob files (see the module doc).
    With `dry_run` nothing changes and the report says what would go. ManifestUnreadable
    or CollectionConflict: nothing was removed."""
    marked_at = time.time()
    manifests = await index.all_manifests()
    parsed: dict[str, _References] = {}  # per manifest digest: once, whatever the repos

    async def refs(entry: StoredManifestEntry) -> _References:
        found = parsed.get(entry.digest)
        if found is None:
            found = parsed[entry.digest] = await _references(driver, entry)
        return found

    kept = await _reached_from_tags(manifests, refs) if delete_untagged else manifests
    keep: set[tuple[str, str]] = set()
    for entry in kept:
        keep.update((entry.repo, blob) for blob in (await refs(entry)).blobs)
    kept_ids = {(e.repo, e.digest) for e in kept}
    drop = [(e.repo, e.digest) for e in manifests if (e.repo, e.digest) not in kept_ids]
    sweep = await index.sweep(keep, drop, marked_at, dry_run)
    swept = {digest for digest, _size in sweep.blobs}
    orphans = [(d, size) for d, size in await _unrecorded(driver, index)
               if str(d) not in swept]
    if not dry_run:
        for digest, _size in sweep.blobs:
            await _remove(driver, Digest.parse(digest))
        for orphan, _size in orphans:
            await _remove(driver, orphan)
    return CollectionReport(
        repositories=len({e.repo for e in kept}),
        manifests=len(kept),
        manifests_removed=len(sweep.manifests),
        untagged=tuple(f"{repo}@{digest}" for repo, digest in sweep.manifests),
        links_removed=sweep.links,
        blobs_removed=len(sweep.blobs),
        orphans_removed=len(orphans),
        bytes_freed=sum(size for _, size in sweep.blobs) + sum(size for _, size in orphans),
        dry_run=dry_run)


async def _remove(driver: StorageDriver, digest: Digest) -> None:
    with contextlib.suppress(PathNotFound):
        await driver.delete(paths.blob_dir(digest))
