"""The one ErrorCode -> HTTP status table and the middleware that renders error envelopes.

Handlers raise `registry.oci.errors.RegistryError` subclasses; `error_middleware` turns them
into `{"errors": [{"code", "message", "detail"}]}` with the status below (distribution's
`registry/api/errcode/register.go` descriptors). Any other exception becomes UNKNOWN/500: it is
logged with its traceback, and the body says nothing about internals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from registry.oci.api import API_VERSION, API_VERSION_HEADER
from registry.oci.errors import ErrorCode, RegistryError

log = logging.getLogger("registry.server")

STATUS: Mapping[ErrorCode, int] = {
    ErrorCode.BLOB_UNKNOWN: 404,
    ErrorCode.BLOB_UPLOAD_INVALID: 400,
    ErrorCode.BLOB_UPLOAD_UNKNOWN: 404,
    ErrorCode.DIGEST_INVALID: 400,
    ErrorCode.MANIFEST_BLOB_UNKNOWN: 404,
    ErrorCode.MANIFEST_INVALID: 400,
    ErrorCode.MANIFEST_UNKNOWN: 404,
    ErrorCode.NAME_INVALID: 400,
    ErrorCode.NAME_UNKNOWN: 404,
    ErrorCode.SIZE_INVALID: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.DENIED: 403,
    ErrorCode.UNSUPPORTED: 405,
    ErrorCode.TOOMANYREQUESTS: 429,
    ErrorCode.RANGE_INVALID: 416,
    ErrorCode.TAG_INVALID: 400,
    ErrorCode.PAGINATION_NUMBER_INVALID: 400,
    ErrorCode.UNKNOWN: 500,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_of(error: RegistryError) -> int:
    return STATUS.get(error.code, 500)


def envelope(code: ErrorCode | str, message: str, detail: Any = None) -> bytes:
    item: dict[str, Any] = {"code": str(code), "message": message}
    item["detail"] = detail if detail is not None else {}
    return json.dumps({"errors": [item]}).encode()


def error_response(error: RegistryError,
                   headers: Mapping[str, str] | None = None) -> web.Response:
    """The JSON envelope for `error` with its status; extra `headers` (e.g. Range on a 416)."""
    all_headers = {API_VERSION_HEADER: API_VERSION}
    if headers:
        all_headers.update(headers)
    try:
        detail_body = envelope(error.code, error.message, error.detail)
    except (TypeError, ValueError):  # a detail that is not JSON-serializable
        detail_body = envelope(error.code, error.message)
    return web.Response(status=status_of(error), body=detail_body,
                        content_type="application/json", headers=all_headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render RegistryError envelopes; hide unexpected failures behind UNKNOWN/500.

    Also stamps `Docker-Distribution-API-Version` on every response, errors included.
    """
    try:
        response = await handler(request)
    except RegistryError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        exc.headers[API_VERSION_HEADER] = API_VERSION
        raise
    except (ConnectionError, TimeoutError) as exc:
        # The client went away mid-request: nothing to render, nothing to alarm anyone about.
        log.info("client connection lost during %s %s: %s", request.method, request.path, exc)
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.Response(status=500, content_type="application/json",
                            body=envelope(ErrorCode.UNKNOWN, "internal server error"),
                            headers={API_VERSION_HEADER: API_VERSION})
    if not response.prepared:
        response.headers[API_VERSION_HEADER] = API_VERSION
    return response
