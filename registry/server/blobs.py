"""Blob handlers: GET/HEAD (with Range, through sendfile when local) and DELETE."""

from __future__ import annotations

from aiohttp import web

from registry.oci.api import API_VERSION, API_VERSION_HEADER, CONTENT_DIGEST_HEADER
from registry.server import keys
from registry.server.params import parse_digest, repo_name
from registry.storage import BlobInfo, RegistryStore


def _headers(info: BlobInfo) -> dict[str, str]:
    return {
        API_VERSION_HEADER: API_VERSION,  # set here too: a streamed response is sent early
        CONTENT_DIGEST_HEADER: str(info.digest),
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "ETag": f'"{info.digest}"',
        "Cache-Control": "max-age=31536000",
    }


async def get_blob(request: web.Request) -> web.StreamResponse:
    """200 (or 206 for a Range) with the blob; 404 BLOB_UNKNOWN unless linked in the repo."""
    name = repo_name(request)
    digest = parse_digest(request.match_info["digest"])
    store = request.app[keys.STORE]
    info = await store.blobs.stat(name, digest)
    if info.path is not None:
        # FileResponse does sendfile, HEAD, Range/If-Range (206, Content-Range, 416) itself.
        return web.FileResponse(info.path, headers=_headers(info))
    return await _stream_blob(request, store, name, info)


async def _stream_blob(request: web.Request, store: RegistryStore, name: str,
                       info: BlobInfo) -> web.StreamResponse:
    """Serve a blob that has no local file (a non-filesystem driver), honouring one Range."""
    headers = _headers(info)
    start, end = 0, info.size
    status = 200
    try:
        rng = request.http_range
    except ValueError:
        rng = slice(None, None)
    if rng.start is not None or rng.stop is not None:
        first = rng.start if rng.start is not None else 0
        stop = rng.stop if rng.stop is not None else info.size
        if first < 0:  # suffix range "bytes=-N"
            first, stop = max(info.size + first, 0), info.size
        stop = min(stop, info.size)
        if first >= info.size or first >= stop:
            return web.Response(status=416, headers={
                "Content-Range": f"bytes */{info.size}", **headers})
        start, end, status = first, stop, 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = end - start
    await response.prepare(request)
    if request.method != "HEAD":
        async for chunk in store.blobs.read(name, info.digest, start, end):
            await response.write(chunk)
    await response.write_eof()
    return response


async def delete_blob(request: web.Request) -> web.Response:
    """202 once the blob is unlinked from the repository; 405 UNSUPPORTED if deletes are off."""
    name = repo_name(request)
    digest = parse_digest(request.match_info["digest"])
    await request.app[keys.STORE].blobs.delete(name, digest)
    return web.Response(status=202, headers={CONTENT_DIGEST_HEADER: str(digest)})
