"""Pull-through cache (`proxy_remote_url`), as distribution's proxy mode: a registry that
serves the images of one upstream registry, fetching what it lacks on first pull and keeping
it (a CI mirror of Docker Hub, say).

- Manifests by tag are asked of the upstream on every pull (a tag moves there), and served
  from the cache when the upstream cannot answer; by digest they never change, so a cached
  one is served without asking.
- A missing blob is fetched once and streamed to the client while it is written to storage,
  verified like any upload: a copy that does not match its digest is not kept. A ranged GET
  of a missing blob caches the whole blob first.
- Manifests are stored before the blobs they name (those come when pulled), so their
  reference check is off (`references_present=False`).
- Tag lists come from the upstream (the cache's own when it cannot answer); the catalog,
  referrers and search are the cache's own. Pushes and deletes are refused (405 UNSUPPORTED).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import AsyncIterator

from aiohttp import web

from registry.client import RegistryClient, TransportError
from registry.oci import Digest
from registry.oci.api import CONTENT_DIGEST_HEADER
from registry.oci.digest import is_digest
from registry.oci.errors import (
    BlobUnknown,
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    Unsupported,
    UpstreamUnavailable,
)
from registry.server.config import RegistryConfig
from registry.server.errors import Handler, error_response
from registry.storage import ManifestInfo, RegistryStore

log = logging.getLogger("registry.proxy")

_GONE = (ManifestUnknown, NameUnknown, BlobUnknown)  # the upstream's "no such thing"


def upstream_client(config: RegistryConfig) -> RegistryClient:
    """The client of `proxy_remote_url`, with proxy_username/proxy_password if set."""
    assert config.proxy_remote_url is not None
    split = urllib.parse.urlsplit(config.proxy_remote_url)
    credentials = None
    if config.proxy_username is not None and config.proxy_password is not None:
        pair = (config.proxy_username, config.proxy_password)
        credentials = lambda _registry: pair  # noqa: E731
    return RegistryClient(split.netloc, credentials=credentials, scheme=split.scheme)


class PullThrough:
    """The cache's side of each pull (see the module doc); one per worker process."""

    def __init__(self, upstream: RegistryClient, store: RegistryStore, remote: str) -> None:
        self.upstream = upstream
        self.store = store
        self.remote = remote

    async def close(self) -> None:
        await self.upstream.close()

    # ------------------------------------------------------------------ manifests

    async def refresh_manifest(self, repo: str, reference: str) -> None:
        """Make the cache hold what `reference` names upstream now: by digest, fetch it if
        missing; by tag, ask the upstream what it names and store that under the tag.
        ManifestUnknown when the upstream has no such manifest; UpstreamUnavailable when it
        cannot answer and the cache has no copy (with a copy, that copy is served)."""
        manifests = self.store.manifests
        if is_digest(reference):
            try:
                await manifests.stat(repo, reference)
                return
            except ManifestUnknown:
                pass
        try:
            desc, data = await self.upstream.resolve(repo, reference)
        except _GONE:
            raise ManifestUnknown(f"{self.remote} has no manifest {repo}:{reference}",
                                  detail={"reference": reference}) from None
        except (TransportError, RegistryError) as exc:
            if not is_digest(reference) and await self._cached(repo, reference) is not None:
                log.warning("%s: %s:%s served from the cache: %s", self.remote, repo,
                            reference, exc)
                return
            raise UpstreamUnavailable(f"{self.remote}: {exc}",
                                      detail={"upstream": self.remote}) from None
        cached = await self._cached(repo, reference)
        if cached is not None and cached.digest == desc.digest:
            return
        await manifests.put(repo, reference, desc.media_type, data, references_present=False)

    async def _cached(self, repo: str, reference: str) -> ManifestInfo | None:
        try:
            return await self.store.manifests.stat(repo, reference)
        except ManifestUnknown:
            return None

    # ------------------------------------------------------------------ blobs

    async def serve_blob(self, request: web.Request, repo: str,
                         digest: Digest) -> web.StreamResponse | None:
        """Answer a blob request the cache cannot: HEAD from the upstream's answer, GET by
        streaming the upstream's bytes to the client while they are stored. None for a
        ranged GET, once the whole blob is cached (the caller serves the range).
        BlobUnknown when the upstream has no such blob."""
        size = await self._upstream_size(repo, digest)
        headers = {CONTENT_DIGEST_HEADER: str(digest), "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes", "ETag": f'"{digest}"'}
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(size)})
        if "Range" in request.headers:
            await self.store.uploads.put(repo, digest, self._chunks(repo, digest))
            return None
        response = web.StreamResponse(headers=headers)
        response.content_length = size
        await response.prepare(request)

        async def to_client_and_storage() -> AsyncIterator[bytes]:
            async for chunk in self._chunks(repo, digest):
                await response.write(chunk)
                yield chunk

        try:
            await self.store.uploads.put(repo, digest, to_client_and_storage())
        except (ConnectionError, TransportError, RegistryError) as exc:
            # The client has part of the body; cut the connection so it cannot take it whole.
            log.warning("%s: blob %s of %s not cached: %s", self.remote, digest, repo, exc)
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response

    async def _upstream_size(self, repo: str, digest: Digest) -> int:
        try:
            size = await self.upstream.blob_exists(repo, digest)
        except (TransportError, RegistryError) as exc:
            raise UpstreamUnavailable(f"{self.remote}: {exc}",
                                      detail={"upstream": self.remote}) from None
        if size is None or size < 0:
            raise BlobUnknown(f"{self.remote} has no blob {digest} in {repo}",
                              detail={"digest": str(digest)})
        return size

    async def _chunks(self, repo: str, digest: Digest) -> AsyncIterator[bytes]:
        async with self.upstream.open_blob(repo, digest) as stream:
            async for chunk in stream.chunks:
                yield chunk

    # ------------------------------------------------------------------ tags

    async def tags(self, repo: str) -> list[str] | None:
        """The upstream's tags of `repo`, in the spec's lexical order; None when it cannot
        answer (the cache's own are served). NameUnknown when it has no such repository."""
        try:
            found = await self.upstream.tags(repo)
        except _GONE:
            raise NameUnknown(f"{self.remote} has no repository {repo}",
                              detail={"name": repo}) from None
        except (TransportError, RegistryError) as exc:
            log.warning("%s: tags of %s served from the cache: %s", self.remote, repo, exc)
            return None
        return sorted(set(found), key=lambda tag: (tag.lower(), tag))


PROXY = web.AppKey("proxy", PullThrough)


@web.middleware
async def read_only_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A pull-through cache takes no pushes or deletes: 405 UNSUPPORTED naming the upstream."""
    if request.method in ("GET", "HEAD"):
        return await handler(request)
    remote = request.app[PROXY].remote
    return error_response(Unsupported(f"this registry is a pull-through cache of {remote}: "
                                      "push there instead", detail={"upstream": remote}),
                          headers={"Allow": "GET, HEAD"})
