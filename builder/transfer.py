"""Pull and push: the one builder module that runs asyncio (it drives registry.client).

Pull: resolve the reference (OCI and Docker manifest/index types), pick the platform from an
index, then download config and layers in parallel (a semaphore, default 4). A Docker Hub
image is asked of the mirrors in $STRATA_REGISTRY_MIRRORS first, in order, as docker's
`registry-mirrors` (a strata-registry pull-through cache, say); any failure of a mirror
falls through to the next source, Docker Hub last. Blobs already in
the store are skipped. Each download lands in `<root>/ingest/pull-<alg>-<hex>/data` (a
resumable writer of builder.content, flock-held while it runs), is hashed while it is written
and renamed into `blobs/` only after size and digest match, so nothing half-written is ever
visible. Disk work (writes, hashing, reads for upload) runs in worker threads, never on the
event loop. An interrupted download keeps its partial file;
the next attempt (a retry in the same pull, or the next `strata pull`) re-hashes it and asks
for the rest with Range. Then the image is registered and tagged, and its layers unpacked.

Push: HEAD each blob (skip what the repository has), else mount it from another repository of
the same registry that it was pulled from or pushed to (remembered in the `transfer_blob_sources`
table of strata.db), else upload it (chunked with retry when large); the manifest goes last.

Public entry points are synchronous: `pull_image`, `pull`, `push_image`, `push_manifest`,
`fetch_blobs`, `search`, `check_login`; `upload` and `run_client` are the building blocks
builder.remotecache uses for its own pushes and manifest look-ups.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from builder import credentials
from builder.content import CHUNK, LocalContentStore, LocalWriter, write_bytes
from builder.errors import (
    DigestMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StrataError,
    Unavailable,
)
from builder.images import Image, ImageStore, convert_manifest, normalize_name
from builder.transfer_progress import QuietProgress, TransferProgress
from registry.client import (
    CredentialLookup,
    RegistryClient,
    StreamInterrupted,
    TransportError,
)
from registry.oci import (
    Descriptor,
    Digest,
    ImageIndex,
    ImageManifest,
    Platform,
    Reference,
    RegistryError,
    canonical_bytes,
    parse_manifest,
    parse_reference,
)
from registry.oci import errors as oci_errors
from registry.oci.reference import DOCKER_HUB, split_registry_url

DEFAULT_CONCURRENCY = 4
DOWNLOAD_ATTEMPTS = 4
T = TypeVar("T")


MIRRORS_ENV = "STRATA_REGISTRY_MIRRORS"


def mirrors_from_env() -> tuple[str, ...]:
    """Docker Hub mirrors from $STRATA_REGISTRY_MIRRORS: http[s]://HOST[:PORT] URLs separated
    by commas or spaces, tried in order. InvalidArgument naming the variable for a bad one."""
    mirrors = tuple(m.rstrip("/") for m in re.split(r"[,\s]+", os.environ.get(MIRRORS_ENV, ""))
                    if m)
    for mirror in mirrors:
        try:
            split_registry_url(mirror)
        except ValueError as exc:
            raise InvalidArgument(f"{MIRRORS_ENV}: {exc}") from None
    return mirrors


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    """How to reach registries: plain-http hosts, an extra CA, credentials, parallelism, and
    the Docker Hub mirrors to try first."""

    insecure: tuple[str, ...] = ()
    ca_cert: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    credentials: CredentialLookup | None = field(default=credentials.lookup)
    mirrors: tuple[str, ...] = field(default_factory=mirrors_from_env)

    def client(self, registry: str) -> RegistryClient:
        return RegistryClient(registry, credentials=self.credentials,
                              insecure=self.insecure, ca_cert=self.ca_cert)

    def mirror_client(self, mirror: str) -> RegistryClient:
        """A client of one of `mirrors` (a URL: its scheme is kept)."""
        scheme, host = split_registry_url(mirror)
        return RegistryClient(host, credentials=self.credentials, ca_cert=self.ca_cert,
                              scheme=scheme)


# ----------------------------------------------------------------------------- errors


class AccessDenied(FailedPrecondition):
    """The registry refused our credentials or this operation."""


class RemoteDigestMismatch(DigestMismatch):
    def __init__(self, message: str) -> None:
        FailedPrecondition.__init__(self, message)
        self.expected = self.actual = ""


def translate(exc: RegistryError) -> StrataError:
    """Map a client error to the builder's categories (what builder/cli.py shows)."""
    msg = str(exc)
    if isinstance(exc, TransportError):
        return Unavailable(msg)
    if isinstance(exc, oci_errors.ManifestUnknown | oci_errors.BlobUnknown
                  | oci_errors.NameUnknown):
        return NotFound(msg)
    if isinstance(exc, oci_errors.Unauthorized | oci_errors.Denied):
        return AccessDenied(msg)
    if isinstance(exc, oci_errors.DigestInvalid):
        return RemoteDigestMismatch(msg)
    if isinstance(exc, oci_errors.ManifestInvalid | oci_errors.Unsupported
                  | oci_errors.NameInvalid | oci_errors.TagInvalid):
        return InvalidArgument(msg)
    if isinstance(exc, oci_errors.TooManyRequests | oci_errors.UnknownError):
        return Unavailable(msg)
    return FailedPrecondition(msg)


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def run_client(coro: Awaitable[T]) -> T:
    """Run `coro` (registry client work) on a fresh event loop and return its result: the
    builder's one asyncio bridge. Client errors (also the first one out of a TaskGroup) are
    translated to builder categories (`translate`). Never call it from a running loop."""
    async def main() -> T:
        return await coro
    try:
        return asyncio.run(main())
    except BaseExceptionGroup as group:
        leaf = _first_leaf(group)
        if isinstance(leaf, RegistryError):
            raise translate(leaf) from None
        raise leaf from None
    except RegistryError as exc:
        raise translate(exc) from None


async def _gather_limited(jobs: Iterable[Callable[[], Awaitable[None]]], limit: int) -> None:
    sem = asyncio.Semaphore(max(1, limit))

    async def guarded(job: Callable[[], Awaitable[None]]) -> None:
        async with sem:
            await job()

    async with asyncio.TaskGroup() as group:
        for job in jobs:
            group.create_task(guarded(job))


def parse_remote(ref: str) -> Reference:
    try:
        return parse_reference(ref)
    except RegistryError as exc:
        raise InvalidArgument(f"invalid reference {ref!r}: {exc}") from None


def short(digest: Digest) -> str:
    return digest.encoded[:12]


# ----------------------------------------------------------------------------- blob sources

_SOURCES_SCHEMA = """CREATE TABLE IF NOT EXISTS transfer_blob_sources (
    digest TEXT NOT NULL, registry TEXT NOT NULL, repository TEXT NOT NULL, seen REAL NOT NULL,
    PRIMARY KEY (digest, registry, repository))"""


def record_sources(store: ImageStore, registry: str, repository: str,
                   digests: Iterable[Digest]) -> None:
    """Remember that `registry/repository` holds these blobs (for later cross-repo mounts)."""
    conn = store.db.conn
    conn.execute(_SOURCES_SCHEMA)
    with store.db.transaction() as c:
        c.executemany("INSERT OR REPLACE INTO transfer_blob_sources VALUES (?, ?, ?, ?)",
                      [(str(d), registry, repository, time.time()) for d in digests])


def known_sources(store: ImageStore, registry: str) -> dict[str, list[str]]:
    """digest -> repositories of `registry` known to hold it, most recent first."""
    conn = store.db.conn
    conn.execute(_SOURCES_SCHEMA)
    out: dict[str, list[str]] = {}
    for digest, repo in conn.execute(
            "SELECT digest, repository FROM transfer_blob_sources WHERE registry = ? "
            "ORDER BY seen DESC", (registry,)):
        out.setdefault(digest, []).append(repo)
    return out


# ----------------------------------------------------------------------------- download


def ingest_ref(desc: Descriptor) -> str:
    """The resumable ingest ref of a pulled blob (`<root>/ingest/pull-<alg>-<hex>/`)."""
    return f"pull-{desc.digest.algorithm}-{desc.digest.encoded}"


async def _close(writer: LocalWriter) -> None:
    """Close off the loop; finishes even if the task is cancelled meanwhile."""
    await asyncio.shield(asyncio.to_thread(writer.close))


async def _receive(client: RegistryClient, repository: str, desc: Descriptor,
                   writer: LocalWriter, on_bytes: Callable[[int], None]) -> None:
    """Stream the rest of `desc` (from `writer.size`, with Range) into `writer`.

    Writing and hashing run in a worker thread, in batches of about CHUNK bytes with one
    batch in flight while the next arrives, so the loop never waits on the disk and at most
    two batches are held. What arrived is written even when the stream breaks (a later
    attempt resumes from it). Raises DigestInvalid for too many bytes or a wrong digest,
    StreamInterrupted when the body ends early."""
    offset = writer.size
    batch: list[bytes] = []
    batched = 0
    pending: asyncio.Future[None] | None = None

    def write_all(chunks: list[bytes]) -> None:
        for chunk in chunks:
            writer.write(chunk)

    async def flush() -> None:
        """Wait for the batch in flight, then start writing the current one."""
        nonlocal pending, batch, batched
        if pending is not None:
            await pending
            pending = None
        if batch:
            pending = asyncio.ensure_future(asyncio.to_thread(write_all, batch))
            batch, batched = [], 0

    try:
        async with client.blob_body(repository, desc, offset) as chunks:
            async for chunk in chunks:
                batch.append(chunk)
                batched += len(chunk)
                on_bytes(len(chunk))
                if batched >= CHUNK:
                    await flush()
    finally:
        await flush()  # start the last batch...
        await flush()  # ...and wait for it
    actual = writer.digest()
    if actual != desc.digest:
        raise oci_errors.DigestInvalid(f"blob {desc.digest} from {client.registry}/"
                                       f"{repository}: content hashes to {actual}")


async def _download(client: RegistryClient, content: LocalContentStore, repository: str,
                    desc: Descriptor, progress: TransferProgress, label: str) -> int:
    """Fetch one blob into the store (resuming a partial); returns the bytes moved. Every
    disk access runs in a worker thread."""
    if await asyncio.to_thread(content.exists, desc.digest):
        progress.update(label, "Already exists")
        return 0
    while True:  # another process pulling the same blob holds its ingest: wait, off the loop
        try:
            writer = await asyncio.to_thread(content.resumable_writer, ingest_ref(desc),
                                             desc.digest, desc.size)
            break
        except BlockingIOError:
            progress.update(label, "Waiting for another pull")
            await asyncio.sleep(0.2)
    moved = 0
    try:
        if await asyncio.to_thread(content.exists, desc.digest):
            writer.discard()  # a concurrent pull finished it while we waited
            progress.update(label, "Already exists")
            return 0
        for attempt in range(DOWNLOAD_ATTEMPTS):
            progress.update(label, "Downloading", writer.size, desc.size)
            before = writer.size

            def on_bytes(n: int) -> None:
                progress.advance(label, "Downloading", n)

            try:
                await _receive(client, repository, desc, writer, on_bytes)
                moved += writer.size - before
                break
            except StreamInterrupted:
                moved += writer.size - before
                if attempt == DOWNLOAD_ATTEMPTS - 1:
                    raise
                progress.update(label, f"Retrying ({writer.size} bytes kept)")
                await asyncio.sleep(0.2 * (attempt + 1))
            except oci_errors.DigestInvalid:
                writer.discard()
                raise
        progress.update(label, "Verifying Checksum")
        try:
            await asyncio.to_thread(writer.commit, desc.size, desc.digest)
        except DigestMismatch:
            raise RemoteDigestMismatch(f"blob {desc.digest}: content hashes to "
                                       f"{writer.digest()}") from None
        progress.update(label, "Download complete")
        return moved
    finally:
        await _close(writer)


# ----------------------------------------------------------------------------- pull


@dataclass(frozen=True, slots=True)
class PullResult:
    reference: Reference
    manifest: Descriptor
    bytes_downloaded: int


async def _pull_from_sources(store: ImageStore, ref: Reference, wanted: Platform | None,
                             options: RemoteOptions, progress: TransferProgress) -> PullResult:
    """`_pull_blobs` from the first Docker Hub mirror that can give the image, else from the
    reference's own registry."""
    if ref.registry == DOCKER_HUB:
        for mirror in options.mirrors:
            try:
                return await _pull_blobs(store, ref, wanted, options, progress,
                                         options.mirror_client(mirror))
            except RegistryError as exc:
                progress.note(f"mirror {mirror}: {exc}; trying the next source")
    return await _pull_blobs(store, ref, wanted, options, progress)


async def _pull_blobs(store: ImageStore, ref: Reference, wanted: Platform | None,
                      options: RemoteOptions, progress: TransferProgress,
                      source: RegistryClient | None = None) -> PullResult:
    """Pull from `source` (a mirror), else from the reference's registry."""
    assert ref.registry is not None
    async with source or options.client(ref.registry) as client:
        desc, data = await client.resolve(ref.repository, ref.reference)
        manifest = parse_manifest(data, desc.media_type)
        if isinstance(manifest, ImageIndex):
            platform = wanted or Platform.host()
            child = manifest.select(platform)
            if child is None:
                available = ", ".join(str(d.platform) for d in manifest.manifests
                                      if d.platform) or "none"
                raise NotFound(f"{ref}: no image for platform {platform} "
                               f"(the index has: {available})")
            desc, data = await client.resolve(ref.repository, str(child.digest))
            manifest = parse_manifest(data, child.media_type)
            if not isinstance(manifest, ImageManifest):
                raise InvalidArgument(f"{ref}: index entry {child.digest} is not an image")
        await asyncio.to_thread(write_bytes, store.content, data, desc.digest)
        labels = {b.digest: short(b.digest) for b in (manifest.config, *manifest.layers)}
        for blob in manifest.layers:
            progress.update(labels[blob.digest], "Waiting", 0, blob.size)
        moved = [0]
        hidden = QuietProgress(progress.stream)  # docker shows layers only, not the config

        def job(blob: Descriptor) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                view = progress if blob is not manifest.config else hidden
                n = await _download(client, store.content, ref.repository, blob, view,
                                    labels[blob.digest])
                moved[0] += n  # not `moved[0] += await ...`: that reads before awaiting
            return run

        blobs = [manifest.config, *manifest.layers]
        await _gather_limited((job(b) for b in blobs), options.concurrency)
        return PullResult(ref, Descriptor(manifest.media_type, desc.digest, len(data)),
                          moved[0] + len(data))


def pull_image(store: ImageStore, ref: str, platform: Platform | str | None = None, *,
               options: RemoteOptions | None = None, progress: TransferProgress | None = None,
               unpack: bool = True) -> Image:
    """Pull `ref` into `store`: blobs, then the image row and tag, then unpacked layers.

    Synchronous (runs its own event loop). Raises builder.errors categories: NotFound (no such
    image or platform), Unavailable (registry unreachable), AccessDenied, DigestMismatch,
    InvalidArgument (bad reference or manifest).
    """
    return pull(store, ref, platform, options=options, progress=progress, unpack=unpack).image


@dataclass(frozen=True, slots=True)
class Pulled:
    image: Image
    manifest: Descriptor
    bytes_downloaded: int  # manifest bytes plus blob bytes that crossed the wire


def pull(store: ImageStore, ref: str, platform: Platform | str | None = None, *,
         options: RemoteOptions | None = None, progress: TransferProgress | None = None,
         unpack: bool = True) -> Pulled:
    """`pull_image`, also reporting the manifest descriptor and the bytes downloaded."""
    options = options or RemoteOptions()
    view = progress or QuietProgress(sys.stderr)
    parsed = parse_remote(ref)
    wanted = Platform.parse(platform) if isinstance(platform, str) else platform
    assert parsed.registry is not None
    with store.gc_guard():
        result = run_client(_pull_from_sources(store, parsed, wanted, options, view))
        names = [f"{parsed.name}:{parsed.tag}"] if parsed.tag and parsed.digest is None else []
        image = store.add_image(result.manifest.digest, [normalize_name(n) for n in names],
                                result.manifest.media_type)
        record_sources(store, parsed.registry, parsed.repository,
                       [result.manifest.digest, image.config_digest,
                        *(Digest.parse(row.blob_digest) for row in store.layers(image))])
        if unpack:
            for row in store.layers(image):
                view.update(short(Digest.parse(row.blob_digest)), "Extracting")
            store.unpack(image)
            for row in store.layers(image):
                view.update(short(Digest.parse(row.blob_digest)), "Pull complete")
    view.close()
    view.note(f"Digest: {result.manifest.digest}")
    view.note(f"Downloaded {result.bytes_downloaded} bytes for {parsed}")
    return Pulled(image, result.manifest, result.bytes_downloaded)


# ----------------------------------------------------------------------------- push


def _read_at(path: Path, start: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(length)


async def _read_range(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    """`length` bytes of `path` from `start`, read CHUNK by CHUNK in a worker thread."""
    left = length
    while left > 0:
        chunk = await asyncio.to_thread(_read_at, path, start + length - left, min(CHUNK, left))
        if not chunk:
            raise FailedPrecondition(f"{path} is shorter than expected")
        left -= len(chunk)
        yield chunk


@dataclass(slots=True)
class PushStats:
    uploaded: list[Digest] = field(default_factory=list)
    mounted: list[Digest] = field(default_factory=list)
    existing: list[Digest] = field(default_factory=list)
    bytes_uploaded: int = 0


async def _push_blob(client: RegistryClient, store: ImageStore, repository: str,
                     desc: Descriptor, sources: list[str], progress: TransferProgress,
                     stats: PushStats) -> None:
    label = short(desc.digest)
    progress.update(label, "Preparing")
    if await client.blob_exists(repository, desc.digest) is not None:
        stats.existing.append(desc.digest)
        progress.update(label, "Layer already exists")
        return
    location: str | None = None
    for source in sources:
        if source == repository:
            continue
        try:
            location = await client.mount_blob(repository, desc.digest, source)
        except (oci_errors.Unauthorized, oci_errors.Denied, oci_errors.BlobUnknown,
                oci_errors.NameUnknown, oci_errors.Unsupported):
            continue
        if location is None:
            stats.mounted.append(desc.digest)
            progress.update(label, f"Mounted from {source}")
            return
        break
    path = store.content.blob_path(desc.digest)
    progress.update(label, "Pushing", 0, desc.size)

    def read_range(start: int, length: int) -> AsyncIterator[bytes]:
        return _read_range(path, start, length)

    await client.push_blob(repository, desc, read_range, location=location,
                           on_bytes=lambda n: progress.advance(label, "Pushing", n))
    stats.uploaded.append(desc.digest)
    stats.bytes_uploaded += desc.size
    progress.update(label, "Pushed")


async def _push(store: ImageStore, ref: Reference, manifest_desc: Descriptor, data: bytes,
                manifest: ImageManifest, sources: dict[str, list[str]],
                options: RemoteOptions, progress: TransferProgress) -> PushStats:
    assert ref.registry is not None
    stats = PushStats()
    async with options.client(ref.registry) as client:
        def job(blob: Descriptor) -> Callable[[], Awaitable[None]]:
            return lambda: _push_blob(client, store, ref.repository, blob,
                                      sources.get(str(blob.digest), []), progress, stats)

        blobs = [*manifest.layers, manifest.config]
        await _gather_limited((job(b) for b in blobs), options.concurrency)
        await client.put_manifest(ref.repository, ref.tag or str(manifest_desc.digest),
                                  manifest_desc.media_type, data)
    return stats


def upload(store: ImageStore, ref: Reference, manifest_desc: Descriptor, data: bytes,
           manifest: ImageManifest, sources: dict[str, list[str]], options: RemoteOptions,
           progress: TransferProgress) -> PushStats:
    """Push `manifest` (its bytes `data`, described by `manifest_desc`) to `ref` with the blobs
    it names, all read from `store`: a blob the repository has is skipped, one held by a
    repository in `sources` (digest -> repositories of the same registry, see
    `known_sources`) is mounted, the rest uploaded in parallel; the manifest goes last.
    Synchronous. The caller has validated the manifest and holds `store.gc_guard()`."""
    return run_client(_push(store, ref, manifest_desc, data, manifest, sources, options,
                            progress))


def push_target(ref: str, data: bytes, media_type: str) -> tuple[Reference, ImageManifest]:
    """Where a push of manifest `data` goes, and the image manifest it is. InvalidArgument for
    a digest reference, a manifest that does not parse, or one that is not an image manifest."""
    parsed = parse_remote(ref)
    if parsed.digest is not None:
        raise InvalidArgument(f"cannot push to a digest reference: {ref}")
    assert parsed.registry is not None
    try:
        manifest = parse_manifest(data, media_type)
    except RegistryError as exc:
        raise InvalidArgument(f"{ref}: {exc}") from None
    if not isinstance(manifest, ImageManifest):
        raise InvalidArgument(f"{ref}: only image manifests can be pushed")
    return parsed, manifest


def push_manifest(store: ImageStore, ref: str, data: bytes, media_type: str, *,
                  options: RemoteOptions | None = None,
                  progress: TransferProgress | None = None) -> tuple[Digest, PushStats]:
    """Push an image manifest given as bytes (an image, or an OCI artifact such as a build
    cache manifest) with the blobs it names, all read from `store`; the manifest goes last.

    Blobs the repository has are skipped, blobs known elsewhere on the registry mounted."""
    options = options or RemoteOptions()
    view = progress or QuietProgress(sys.stderr)
    parsed, manifest = push_target(ref, data, media_type)
    assert parsed.registry is not None
    manifest_desc = Descriptor(manifest.media_type, Digest.from_bytes(data), len(data))
    with store.gc_guard():
        for blob in (manifest.config, *manifest.layers):
            if not store.content.exists(blob.digest):
                raise NotFound(f"{ref}: blob {blob.digest} is not in the store "
                               "(the image is incomplete)")
        sources = known_sources(store, parsed.registry)
        stats = upload(store, parsed, manifest_desc, data, manifest, sources, options, view)
        record_sources(store, parsed.registry, parsed.repository,
                       [manifest_desc.digest, manifest.config.digest,
                        *(b.digest for b in manifest.layers)])
    view.close()
    view.note(f"{parsed.tag}: digest: {manifest_desc.digest} size: {len(data)}")
    return manifest_desc.digest, stats


def push_image(store: ImageStore, ref: str, source: str | None = None, *,
               options: RemoteOptions | None = None,
               progress: TransferProgress | None = None,
               media_types: str | None = None) -> tuple[Digest, PushStats]:
    """Push the local image `source` (default: `ref` itself) to `ref`; the manifest last.

    The manifest goes as stored (images strata builds and imports are OCI), so its digest is
    the local one; `media_types="oci"|"docker"` rewrites it first (same blobs, new digest).
    Returns the pushed manifest digest and what happened to each blob."""
    image = store.resolve(source or ref)
    data = store.manifest_bytes(image)
    media_type = image.manifest.media_type
    if media_types is not None:
        manifest = convert_manifest(store.manifest(image), media_types)
        data = canonical_bytes(manifest.to_json())
        media_type = manifest.media_type
    return push_manifest(store, ref, data, media_type, options=options, progress=progress)


def fetch_blobs(store: ImageStore, ref: str, blobs: Iterable[Descriptor], *,
                options: RemoteOptions | None = None,
                progress: TransferProgress | None = None) -> int:
    """Download the blobs the store lacks from `ref`'s repository (verified, resumable,
    parallel); returns the bytes moved. For lazy imports: hold `store.gc_guard()` (and lease
    the blobs) if they must survive a concurrent prune before something references them."""
    options = options or RemoteOptions()
    view = progress or QuietProgress(sys.stderr)
    parsed = parse_remote(ref)
    assert parsed.registry is not None
    wanted = list(blobs)

    async def go() -> int:
        moved = [0]
        async with options.client(parsed.registry or "") as client:
            def job(blob: Descriptor) -> Callable[[], Awaitable[None]]:
                async def run() -> None:
                    n = await _download(client, store.content, parsed.repository, blob, view,
                                        short(blob.digest))
                    moved[0] += n
                return run
            await _gather_limited((job(b) for b in wanted), options.concurrency)
        return moved[0]

    with store.gc_guard():
        moved = run_client(go())
    record_sources(store, parsed.registry, parsed.repository, [b.digest for b in wanted])
    view.close()
    return moved


# ----------------------------------------------------------------------------- search, login


def search(registry: str, term: str, limit: int = 25,
           options: RemoteOptions | None = None) -> dict[str, Any]:
    options = options or RemoteOptions()

    async def go() -> dict[str, Any]:
        async with options.client(registry) as client:
            return await client.search(term, limit)

    return run_client(go())


def check_login(registry: str, user: str, password: str,
                options: RemoteOptions | None = None) -> None:
    """GET /v2/ with these credentials; AccessDenied when the registry refuses them."""
    base = options or RemoteOptions()
    opts = RemoteOptions(base.insecure, base.ca_cert, base.concurrency,
                         lambda _reg: (user, password))

    async def go() -> None:
        async with opts.client(registry) as client:
            await client.ping()

    run_client(go())
