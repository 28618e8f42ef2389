"""Upload handlers (distribution-spec "push"): POST, PATCH, PUT, GET status, DELETE.

Handlers only parse and set headers; the session state machine lives in storage
(DESIGN.md 5.3). Locations are path-absolute, which every client resolves against the request.
"""

from __future__ import annotations

from aiohttp import web

from registry.oci.api import CONTENT_DIGEST_HEADER, UPLOAD_UUID_HEADER, blob_path, upload_path
from registry.oci.errors import BlobUploadUnknown, DigestInvalid, NameInvalid, RangeInvalid
from registry.oci.reference import validate_name
from registry.server import keys
from registry.server.errors import error_response
from registry.server.params import (
    content_range_start,
    parse_digest,
    range_header,
    repo_name,
    request_body,
)
from registry.storage import BlobInfo, UploadStatus


def _blob_created(name: str, info: BlobInfo) -> web.Response:
    return web.Response(status=201, headers={
        "Location": blob_path(name, str(info.digest)),
        CONTENT_DIGEST_HEADER: str(info.digest),
        "Content-Length": "0",
    })


def _session_headers(name: str, status: UploadStatus) -> dict[str, str]:
    return {
        "Location": upload_path(name, status.uuid),
        "Range": range_header(status.offset),
        UPLOAD_UUID_HEADER: status.uuid,
        "Content-Length": "0",
    }


def _has_body(request: web.Request) -> bool:
    length = request.content_length
    if length is not None:
        return length > 0
    return request.body_exists


async def start_upload(request: web.Request) -> web.Response:
    """POST /v2/<name>/blobs/uploads/: mount (201), monolithic ?digest= (201) or a session (202)."""
    name = repo_name(request)
    store = request.app[keys.STORE]
    query = request.query
    mount = query.get("mount")
    if mount is not None:
        try:
            digest = parse_digest(mount, "mount digest")
        except DigestInvalid:
            digest = None  # spec: a mount that cannot happen falls back to an upload session
        if digest is not None:
            from_repo = query.get("from") or None
            if from_repo is not None:
                from_repo = _valid_or_none(from_repo)
            if from_repo is not None or "from" not in query:
                info = await store.blobs.mount(name, digest, from_repo)
                if info is not None:
                    return _blob_created(name, info)
    elif "digest" in query:
        digest = parse_digest(query.get("digest"))
        info = await store.uploads.put(name, digest, request_body(request))
        return _blob_created(name, info)
    status = await store.uploads.start(name)
    headers = _session_headers(name, status)
    return web.Response(status=202, headers=headers)


def _valid_or_none(name: str) -> str | None:
    try:
        return validate_name(name)
    except NameInvalid:
        return None


def _uuid(request: web.Request) -> str:
    uuid = request.match_info["uuid"]
    if not uuid or "/" in uuid or uuid in (".", ".."):
        raise BlobUploadUnknown(detail={"uuid": uuid})
    return uuid


async def _range_error(request: web.Request, name: str, uuid: str,
                       exc: RangeInvalid) -> web.Response:
    """416 with the session's current Range and Location, so the client can resume."""
    store = request.app[keys.STORE]
    status = await store.uploads.status(name, uuid)
    headers = _session_headers(name, status)
    del headers["Content-Length"]
    return error_response(exc, headers=headers)


async def patch_upload(request: web.Request) -> web.Response:
    """PATCH: append a chunk (Content-Range optional; out-of-order -> 416 + Range)."""
    name = repo_name(request)
    uuid = _uuid(request)
    store = request.app[keys.STORE]
    try:
        start = content_range_start(request)
        body = request_body(request, ends_upload=False)
        status = await store.uploads.append(name, uuid, body, start)
    except RangeInvalid as exc:
        return await _range_error(request, name, uuid, exc)
    return web.Response(status=202, headers=_session_headers(name, status))


async def finish_upload(request: web.Request) -> web.Response:
    """PUT ?digest=: close the session (with an optional last chunk); 201 + Location."""
    name = repo_name(request)
    uuid = _uuid(request)
    digest = parse_digest(request.query.get("digest"))
    store = request.app[keys.STORE]
    try:
        start = content_range_start(request)
        chunks = request_body(request) if _has_body(request) else None
        info = await store.uploads.commit(name, uuid, digest, chunks, start)
    except RangeInvalid as exc:
        return await _range_error(request, name, uuid, exc)
    return _blob_created(name, info)


async def upload_status(request: web.Request) -> web.Response:
    """GET: 204 with Range, Location and Docker-Upload-UUID."""
    name = repo_name(request)
    uuid = _uuid(request)
    status = await request.app[keys.STORE].uploads.status(name, uuid)
    headers = _session_headers(name, status)
    return web.Response(status=204, headers=headers)


async def cancel_upload(request: web.Request) -> web.Response:
    """DELETE: cancel the session; 204 (404 BLOB_UPLOAD_UNKNOWN when there is none)."""
    name = repo_name(request)
    uuid = _uuid(request)
    await request.app[keys.STORE].uploads.cancel(name, uuid)
    return web.Response(status=204, headers={"Content-Length": "0"})
