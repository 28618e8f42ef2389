"""Pull-through cache (`proxy_remote_url`), as distribution's proxy mode: a registry that
serves the images of one upstream registry, fetching what it lacks on first pull and keeping
it (a CI mirror of Docker Hub, say).

- A manifest by tag is checked with a HEAD on every pull (a tag moves upstream; Docker Hub
  counts GETs, not HEADs, against its pull limits) and fetched by digest only when the cache
  lacks that digest. When the upstream cannot answer within `proxy_timeout_seconds`, or
  refuses, the cached copy is served. By digest a manifest never changes: a cached one is
  served without asking.
- A missing blob is looked up with a HEAD (the repository must have it upstream: a digest
  cached for another repository is then linked, not fetched again), then streamed to the
  client while it is written to storage and verified like any upload (blobs.py).
- Manifests are stored before the blobs they name (those come when pulled), so their
  reference check is off (`references_present=False`).
- A manifest's config (an index's first image and its config) is fetched before the
  manifest is stored, so the search index sees its labels.
- Tag lists and referrers come from the upstream (the cache's own when it cannot answer;
  an upstream without the referrers API is a 404, which sends clients to the tag scheme);
  the catalog and search are the cache's own. Pushes and deletes are refused (405
  UNSUPPORTED).

Upstream failures map to what a client can act on: the upstream's "no such thing", and a
401 or 403 (Docker Hub's answer for a repository that does not exist), are 404s; its 429 is
a 429; anything else, with nothing cached, is 502 UNKNOWN (UpstreamUnavailable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from aiohttp import web

from registry.client import RegistryClient, TransportError
from registry.oci import Descriptor, Digest, ImageIndex, ImageManifest
from registry.oci import mediatypes as mt
from registry.oci.digest import is_digest
from registry.oci.errors import (
    BlobUnknown,
    Denied,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    PreconditionFailed,
    RegistryError,
    TooManyRequests,
    Unauthorized,
    Unsupported,
    UpstreamUnavailable,
)
from registry.oci.manifest import parse_manifest_off_loop
from registry.oci.reference import split_registry_url
from registry.search import MAX_CONFIG_BYTES
from registry.server import keys
from registry.server.config import RegistryConfig
from registry.server.errors import Handler, error_response
from registry.storage import ManifestInfo, RegistryStore, WriteCondition

log = logging.getLogger("registry.proxy")

T = TypeVar("T")

_ABSENT = (ManifestUnknown, NameUnknown, BlobUnknown)  # the upstream's "no such thing"
_REFUSED = (Unauthorized, Denied)  # Docker Hub's answer for a repository it does not have
_FAILED = (TransportError, RegistryError, TimeoutError)  # (RegistryError: the rest)


def upstream_client(config: RegistryConfig) -> RegistryClient:
    """The client of `proxy_remote_url`, with proxy_username/proxy_password if set."""
    assert config.proxy_remote_url is not None
    scheme, host = split_registry_url(config.proxy_remote_url)
    credentials = None
    if config.proxy_username is not None and config.proxy_password is not None:
        pair = (config.proxy_username, config.proxy_password)
        credentials = lambda _registry: pair  # noqa: E731
    return RegistryClient(host, credentials=credentials, scheme=scheme)


class PullThrough:
    """The cache's side of each pull (see the module doc); one per worker process."""

    def __init__(self, upstream: RegistryClient, store: RegistryStore, remote: str,
                 timeout: float) -> None:
        self.upstream = upstream
        self.store = store
        self.remote = remote
        self.timeout = timeout  # for each answer about a manifest, a tag list or a blob

    async def close(self) -> None:
        """Close the upstream client's connections."""
        await self.upstream.close()

    async def _ask(self, call: Awaitable[T]) -> T:
        async with asyncio.timeout(self.timeout):
            return await call

    def _unavailable(self, exc: BaseException) -> RegistryError:
        """What the client gets for an upstream failure `exc` when nothing is cached."""
        if isinstance(exc, TooManyRequests):
            return TooManyRequests(f"{self.remote}: {exc}")
        reason = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
        return UpstreamUnavailable(f"{self.remote}: {reason}", detail={"upstream": self.remote})

    # ------------------------------------------------------------------ manifests

    async def refresh_manifest(self, repo: str, reference: str) -> None:
        """Make the cache hold what `reference` names upstream now (see the module doc).
        ManifestUnknown when the upstream has no such manifest; UpstreamUnavailable or
        TooManyRequests when it cannot answer and the cache has no copy."""
        cached = await self._cached(repo, reference)
        if is_digest(reference):
            if cached is None:
                await self._fetch(repo, reference, reference, None)
            return
        try:
            head = await self._ask(self.upstream.manifest_exists(repo, reference))
        except _FAILED as exc:
            if cached is not None:
                log.warning("%s: %s:%s served from the cache: %s", self.remote, repo,
                            reference, str(exc) or "no answer in time")
                return
            if isinstance(exc, _REFUSED):
                raise self._absent_manifest(repo, reference) from None
            raise self._unavailable(exc) from None
        if head is not None and cached is not None and head.digest == cached.digest:
            return
        # (no HEAD answer: a 404, or an upstream that gives no digest; the GET tells which)
        digest = None if head is None else str(head.digest)
        await self._fetch(repo, reference, digest, cached)

    async def _fetch(self, repo: str, reference: str, digest: str | None,
                     cached: ManifestInfo | None) -> None:
        """Store what `digest` (or, without one, `reference`) names upstream under
        `reference`, from the cache's own copy of that digest if it has one."""
        manifests = self.store.manifests
        local = None if digest is None else await self._cached(repo, digest)
        if digest is not None and local is not None:
            media_type, data = local.media_type, (await manifests.get(repo, digest)).data
        else:
            try:
                desc, data = await self._ask(self.upstream.resolve(repo, digest or reference))
            except _ABSENT + _REFUSED:
                raise self._absent_manifest(repo, reference) from None
            except _FAILED as exc:
                raise self._unavailable(exc) from None
            media_type = desc.media_type
            await self._prefetch(repo, data, media_type)
        condition = WriteCondition(  # (a slower refresh must not move the tag back)
            reference, if_match=None if cached is None else frozenset({str(cached.digest)}),
            if_none_match=frozenset({"*"}) if cached is None else None)
        try:
            await manifests.put(repo, reference, media_type, data,
                                condition=None if is_digest(reference) else condition,
                                references_present=False)
        except PreconditionFailed:
            pass  # another refresh stored it first
        except ManifestInvalid as exc:  # (schema 1, say): nothing this registry can serve
            raise UpstreamUnavailable(f"{self.remote}: {repo}:{reference} cannot be cached: "
                                      f"{exc}", detail={"upstream": self.remote}) from None

    async def _prefetch(self, repo: str, data: bytes, media_type: str) -> None:
        """Fetch what the search index reads of a manifest before storing it (its config; an
        index's first image and its config), so that the document made when it is stored
        carries labels. A failure only costs the labels (logged)."""
        try:
            manifest = await parse_manifest_off_loop(data, media_type)
            if isinstance(manifest, ImageIndex) and manifest.manifests:
                await self.refresh_manifest(repo, str(manifest.manifests[0].digest))
            elif (isinstance(manifest, ImageManifest)
                    and manifest.config.media_type in mt.CONFIGS
                    and manifest.config.size <= MAX_CONFIG_BYTES
                    and await self.store.blobs.mount(repo, manifest.config.digest, None) is None):
                await self.cache_blob(repo, manifest.config.digest, manifest.config.size)
        except RegistryError as exc:
            log.warning("%s: %s: config not cached ahead (search labels wait): %s",
                        self.remote, repo, exc)

    def _absent_manifest(self, repo: str, reference: str) -> ManifestUnknown:
        return ManifestUnknown(f"{repo}:{reference} is missing or not accessible at "
                               f"{self.remote}", detail={"reference": reference})

    async def _cached(self, repo: str, reference: str) -> ManifestInfo | None:
        try:
            return await self.store.manifests.stat(repo, reference)
        except ManifestUnknown:
            return None

    # ------------------------------------------------------------------ blobs

    async def blob_size(self, repo: str, digest: Digest) -> int:
        """The size of `repo`'s blob upstream (a HEAD). BlobUnknown when it has none there;
        UpstreamUnavailable or TooManyRequests when the upstream cannot say."""
        try:
            size = await self._ask(self.upstream.blob_exists(repo, digest))
        except _REFUSED:
            size = None
        except _FAILED as exc:
            raise self._unavailable(exc) from None
        if size is None:
            raise BlobUnknown(f"{repo}@{digest} is missing or not accessible at "
                              f"{self.remote}", detail={"digest": str(digest)})
        if size < 0:
            raise UpstreamUnavailable(f"{self.remote}: no Content-Length for blob {digest}",
                                      detail={"upstream": self.remote})
        return size

    @contextlib.asynccontextmanager
    async def open_blob(self, repo: str, digest: Digest,
                        size: int) -> AsyncIterator[AsyncIterator[bytes]]:
        """The upstream's bytes of the blob, opened (its answer checked) before the caller
        sends anything. The stream raises DigestInvalid past `size` bytes and
        StreamInterrupted when it ends short; the bytes are the caller's to verify."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                chunks = await self._ask(stack.enter_async_context(self.upstream.blob_body(
                    repo, Descriptor("application/octet-stream", digest, size))))
            except _ABSENT + _REFUSED:
                raise BlobUnknown(detail={"digest": str(digest)}) from None
            except _FAILED as exc:
                raise self._unavailable(exc) from None
            yield chunks

    async def cache_blob(self, repo: str, digest: Digest, size: int) -> None:
        """Fetch the whole blob into the cache (for a ranged GET)."""
        async with self.open_blob(repo, digest, size) as chunks:
            try:
                await self.store.uploads.put(repo, digest, chunks)
            except RegistryError as exc:  # (cut short, too long, or not its digest)
                raise self._unavailable(exc) from None

    # ------------------------------------------------------------------ referrers

    async def referrers(self, repo: str, subject: Digest,
                        artifact_type: str | None) -> list[Descriptor] | None:
        """The upstream's referrers of `subject` (all pages); None when it cannot answer (the
        cache's own are served). NameUnknown when it has no referrers API or no such
        repository: a 404 sends clients to the tag scheme, which the cache serves."""
        return await self._listing(self.upstream.referrers(repo, subject, artifact_type), repo,
                                   "referrers", f"{self.remote} lists no referrers of {repo}")

    # ------------------------------------------------------------------ tags

    async def tags(self, repo: str) -> list[str] | None:
        """The upstream's tags of `repo`, in the spec's lexical order; None when it cannot
        answer (the cache's own are served). NameUnknown when it has no such repository."""
        found = await self._listing(self.upstream.tags(repo), repo, "tags",
                                    f"{repo} is missing or not accessible at {self.remote}")
        return None if found is None else sorted(set(found), key=lambda t: (t.lower(), t))

    async def _listing(self, call: Awaitable[T], repo: str, what: str, absent: str) -> T | None:
        """The upstream's answer to `call`; None (logged) when it cannot answer, so that the
        cache's own list is served; NameUnknown(`absent`) for its 404, 401 or 403."""
        try:
            return await self._ask(call)
        except _ABSENT + _REFUSED:
            raise NameUnknown(absent, detail={"name": repo}) from None
        except _FAILED as exc:
            log.warning("%s: %s of %s served from the cache: %s", self.remote, what, repo,
                        str(exc) or "no answer in time")
            return None


def read_only_refusal(request: web.Request) -> web.Response | None:
    """A pull-through cache takes no pushes or deletes: 405 UNSUPPORTED naming the upstream
    for anything but GET and HEAD; None for those."""
    if request.method in ("GET", "HEAD"):
        return None
    remote = request.app[keys.PROXY].remote
    return error_response(Unsupported(f"this registry is a pull-through cache of {remote}: "
                                      "push there instead", detail={"upstream": remote}),
                          headers={"Allow": "GET, HEAD"})


@web.middleware
async def read_only_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """See read_only_refusal."""
    return read_only_refusal(request) or await handler(request)
