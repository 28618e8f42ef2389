"""Blob handlers: GET/HEAD (Range and conditional requests, sendfile when local) and DELETE."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from io import BufferedReader
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from registry.oci import Digest
from registry.oci.api import API_VERSION, API_VERSION_HEADER, CONTENT_DIGEST_HEADER
from registry.oci.errors import BlobUnknown
from registry.server import keys
from registry.server.params import parse_digest, repo_name
from registry.server.ranges import Reply, decide
from registry.storage import BlobInfo, RegistryStore

if TYPE_CHECKING:
    from registry.server.proxy import PullThrough

log = logging.getLogger("registry.proxy")


def _headers(digest: Digest) -> dict[str, str]:
    """Headers of every blob answer (200, 206, 304, 412, 416): the digest is the one ETag."""
    return {
        API_VERSION_HEADER: API_VERSION,  # set here too: a blob response is sent early
        CONTENT_DIGEST_HEADER: str(digest),
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
        "Cache-Control": "max-age=31536000",
    }


async def get_blob(request: web.Request) -> web.StreamResponse:
    """The blob (200, or 206 for one byte range), 304/412 for If-None-Match/If-Match, 416 for
    a range past the end (see ranges.decide); 404 BLOB_UNKNOWN unless linked in the repo
    (a pull-through cache asks its upstream first: _from_upstream)."""
    name = repo_name(request)
    digest = parse_digest(request.match_info["digest"])
    store = request.app[keys.STORE]
    try:
        info = await store.blobs.stat(name, digest)
    except BlobUnknown:
        proxy = request.app.get(keys.PROXY)
        if proxy is None:
            raise
        return await _from_upstream(request, proxy, name, digest)
    return await _send(request, store, name, info)


async def _send(request: web.Request, store: RegistryStore, name: str,
                info: BlobInfo) -> web.StreamResponse:
    reply = decide(request.headers, info.size, str(info.digest))
    headers = _headers(info.digest)
    if not reply.sends_blob:
        return _no_bytes(reply, headers, info.size)
    headers["Content-Type"] = "application/octet-stream"
    if reply.status == 206:
        headers["Content-Range"] = f"bytes {reply.start}-{reply.stop - 1}/{info.size}"
    response = web.StreamResponse(status=reply.status, headers=headers)
    response.content_length = reply.length
    if request.method == "HEAD" or not reply.length:
        await response.prepare(request)
    elif info.path is not None:
        await _send_file(request, response, info, info.path, reply)
    else:
        await _stream_blob(request, response, store, name, info, reply)
    await response.write_eof()
    return response


def _no_bytes(reply: Reply, headers: dict[str, str], size: int) -> web.Response:
    """304, 412 or 416."""
    if reply.status == 416:
        headers["Content-Range"] = f"bytes */{size}"
    return web.Response(status=reply.status, headers=headers)


async def _from_upstream(request: web.Request, proxy: PullThrough, name: str,
                         digest: Digest) -> web.StreamResponse:
    """A pull-through cache's answer for a blob `name` lacks (registry/server/proxy.py):
    the upstream must have it; a copy cached for another repository is linked; otherwise
    a GET streams the upstream's bytes to the client while they are stored and verified.
    The last chunk is held back until the blob is stored: a client never gets a whole body
    that did not match its digest (its connection is cut instead)."""
    store = proxy.store
    size = await proxy.blob_size(name, digest)
    mounted = await store.blobs.mount(name, digest, None)
    if mounted is not None:
        return await _send(request, store, name, mounted)
    reply = decide(request.headers, size, str(digest))
    headers = _headers(digest)
    if not reply.sends_blob:
        return _no_bytes(reply, headers, size)
    if request.method == "HEAD":
        headers["Content-Type"] = "application/octet-stream"
        return web.Response(headers={**headers, "Content-Length": str(size)})
    if reply.status == 206:  # cache it all, then send the range from the cache
        await proxy.cache_blob(name, digest, size)
        return await _send(request, store, name, await store.blobs.stat(name, digest))
    async with proxy.open_blob(name, digest, size) as upstream:
        headers["Content-Type"] = "application/octet-stream"
        response = web.StreamResponse(headers=headers)
        response.content_length = size
        await response.prepare(request)
        held: bytes | None = None

        async def to_client_and_storage() -> AsyncIterator[bytes]:
            nonlocal held
            async for chunk in upstream:
                if held is not None:
                    await response.write(held)
                held = chunk
                yield chunk

        try:
            await store.uploads.put(name, digest, to_client_and_storage())
            if held is not None:
                await response.write(held)
            await response.write_eof()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # (after prepare no error answer can be sent: cut it)
            log.warning("%s@%s from %s: not cached: %s", name, digest, proxy.remote, exc)
            if request.transport is not None:
                request.transport.abort()
    return response


async def _send_file(request: web.Request, response: web.StreamResponse, info: BlobInfo,
                     path: Path, reply: Reply) -> None:
    """Prepare `response` and send the reply's bytes of the local file with sendfile."""
    try:
        file: BufferedReader = await asyncio.to_thread(path.open, "rb")
    except FileNotFoundError:  # linked, but the bytes are gone: say so before any header
        raise BlobUnknown(detail={"digest": str(info.digest)}) from None
    try:
        await response.prepare(request)
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        await asyncio.get_running_loop().sendfile(transport, file, reply.start, reply.length)
    finally:
        await asyncio.to_thread(file.close)


async def _stream_blob(request: web.Request, response: web.StreamResponse,
                       store: RegistryStore, name: str, info: BlobInfo, reply: Reply) -> None:
    """Prepare `response` and stream the reply's bytes of a blob that has no local file."""
    await response.prepare(request)
    async for chunk in store.blobs.read(name, info.digest, reply.start, reply.stop):
        await response.write(chunk)


async def delete_blob(request: web.Request) -> web.Response:
    """202 once the blob is unlinked from the repository; 405 UNSUPPORTED if deletes are off."""
    name = repo_name(request)
    digest = parse_digest(request.match_info["digest"])
    await request.app[keys.STORE].blobs.delete(name, digest)
    return web.Response(status=202, headers={CONTENT_DIGEST_HEADER: str(digest)})
