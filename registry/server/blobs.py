"""Blob handlers: GET/HEAD (Range and conditional requests, sendfile when local) and DELETE."""

from __future__ import annotations

import asyncio
from io import BufferedReader
from pathlib import Path

from aiohttp import web

from registry.oci.api import API_VERSION, API_VERSION_HEADER, CONTENT_DIGEST_HEADER
from registry.oci.errors import BlobUnknown
from registry.server import keys
from registry.server.params import parse_digest, repo_name
from registry.server.proxy import PROXY
from registry.server.ranges import Reply, decide
from registry.storage import BlobInfo, RegistryStore


def _headers(info: BlobInfo) -> dict[str, str]:
    """Headers of every blob answer (200, 206, 304, 412, 416): the digest is the one ETag."""
    return {
        API_VERSION_HEADER: API_VERSION,  # set here too: a blob response is sent early
        CONTENT_DIGEST_HEADER: str(info.digest),
        "Accept-Ranges": "bytes",
        "ETag": f'"{info.digest}"',
        "Cache-Control": "max-age=31536000",
    }


async def get_blob(request: web.Request) -> web.StreamResponse:
    """The blob (200, or 206 for one byte range), 304/412 for If-None-Match/If-Match, 416 for
    a range past the end (see ranges.decide); 404 BLOB_UNKNOWN unless linked in the repo."""
    name = repo_name(request)
    digest = parse_digest(request.match_info["digest"])
    store = request.app[keys.STORE]
    try:
        info = await store.blobs.stat(name, digest)
    except BlobUnknown:
        proxy = request.app.get(PROXY)
        if proxy is None:
            raise
        # a pull-through cache: another repository's copy, else the upstream's
        mounted = await store.blobs.mount(name, digest, None)
        if mounted is None:
            answer = await proxy.serve_blob(request, name, digest)
            if answer is not None:
                return answer
        info = await store.blobs.stat(name, digest)
    reply = decide(request.headers, info.size, str(info.digest))
    headers = _headers(info)
    if not reply.sends_blob:
        if reply.status == 416:
            headers["Content-Range"] = f"bytes */{info.size}"
        return web.Response(status=reply.status, headers=headers)
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
