"""The one error class -> HTTP status table and the middleware that renders error envelopes.

Handlers raise `registry.oci.errors.RegistryError` subclasses; `error_middleware` turns them
into `{"errors": [{"code", "message", "detail"}]}` with the status below (distribution's
`registry/api/errcode/register.go` descriptors, and the spec's 416 and 413). Any other
exception becomes UNKNOWN/500: it is logged with its traceback, and the body says nothing
about internals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from registry.oci import errors
from registry.oci.api import API_VERSION, API_VERSION_HEADER
from registry.oci.errors import ErrorCode, RegistryError

log = logging.getLogger("registry.server")


class IncompleteBody(ConnectionResetError):
    """The client ended its request body (FIN) before its Content-Length. A client that only
    half-closed its connection still reads the answer: 400 BLOB_UPLOAD_INVALID."""


STATUS: Mapping[type[RegistryError], int] = {
    errors.BlobUnknown: 404,
    errors.BlobUploadInvalid: 400,
    errors.RangeInvalid: 416,  # the spec's answer to an out-of-order chunk
    errors.BlobUploadUnknown: 404,
    errors.DigestInvalid: 400,
    errors.ManifestBlobUnknown: 404,
    errors.ManifestInvalid: 400,
    errors.ManifestTooLarge: 413,  # the spec: SHOULD 413 Payload Too Large
    errors.ManifestUnknown: 404,
    errors.NameInvalid: 400,
    errors.NameUnknown: 404,
    errors.SizeInvalid: 400,
    errors.Unauthorized: 401,
    errors.Denied: 403,
    errors.PreconditionFailed: 412,  # RFC 9110 §13.1.1-2, as the spec's conditional requests
    errors.Unsupported: 405,
    errors.PaginationInvalid: 400,
    errors.SearchQueryInvalid: 400,
    errors.TransferCodingUnsupported: 501,  # RFC 9112 §6.1
    errors.ContentCodingUnsupported: 415,  # RFC 9110 §8.4.1, §15.5.16
    errors.TooManyRequests: 429,
    errors.UpstreamUnavailable: 502,  # (a gateway's answer: the upstream failed, not us)
    errors.UnknownError: 500,
}
"""The HTTP status of each error class; a subclass not listed has its nearest parent's."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_of(error: RegistryError) -> int:
    for cls in type(error).__mro__:
        status = STATUS.get(cast("type[RegistryError]", cls))
        if status is not None:
            return status
    return 500


def _allowed_methods(request: web.Request) -> str:
    """The matched resource's methods other than the one refused (GET and HEAD go together)."""
    resource = request.match_info.route.resource
    methods = {route.method for route in resource} if resource is not None else set()
    if "GET" in methods:
        methods.add("HEAD")
    methods -= {"GET", "HEAD"} if request.method in ("GET", "HEAD") else {request.method}
    return ", ".join(sorted(methods))


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


class ClientErrorLogFilter(logging.Filter):
    """aiohttp logs each request its parser refuses (400: a bad header, a body that is not
    what its headers say), and each such client that hangs up before the 400 is sent, with
    ERROR and a traceback: any client could fill the log with them. They become one INFO
    line naming the client and what was wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and not isinstance(exc, HttpProcessingError | ConnectionError):
            exc = exc.__cause__  # (a body that failed to decode: RequestPayloadError)
        client = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            self._one_line(record, "bad request from %s: %d %s",
                           (client, exc.code, " ".join(exc.message.split())[:200]))
        elif isinstance(exc, ConnectionError):  # it hung up before its 400 could be sent
            self._one_line(record, "client %s went away: %s", (client, exc))
        return True

    @staticmethod
    def _one_line(record: logging.LogRecord, msg: str, args: tuple[object, ...]) -> None:
        record.msg, record.args = msg, args
        record.exc_info = record.exc_text = None
        if record.levelno > logging.INFO:  # (aiohttp logs some at DEBUG already)
            record.levelno, record.levelname = logging.INFO, "INFO"


def quiet_client_errors() -> None:
    """Install ClientErrorLogFilter on aiohttp's server logger (once)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientErrorLogFilter) for f in logger.filters):
        logger.addFilter(ClientErrorLogFilter())


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render RegistryError envelopes; hide unexpected failures behind UNKNOWN/500.

    Also stamps `Docker-Distribution-API-Version` on every response, errors included.
    """
    try:
        response = await handler(request)
    except RegistryError as exc:
        status = status_of(exc)
        if status == 405:  # RFC 9110: a 405 names what the resource still allows
            return error_response(exc, headers={"Allow": _allowed_methods(request)})
        if isinstance(exc, errors.ContentCodingUnsupported | errors.TransferCodingUnsupported):
            # ... and a 415 for a content coding, the codings it takes. The refused body is
            # not read (aiohttp would decode it, and log a traceback where it cannot).
            response = error_response(exc, headers={"Accept-Encoding": "identity"}
                                      if status == 415 else None)
            response.force_close()
            return response
        return error_response(exc)
    except web.HTTPException as exc:
        exc.headers[API_VERSION_HEADER] = API_VERSION
        raise
    except IncompleteBody as exc:  # (as nginx, which logs a body cut short as 400)
        response = error_response(errors.BlobUploadInvalid(str(exc)))
        response.force_close()
        return response
    except (ConnectionError, TimeoutError) as exc:
        # The client went away, or stopped sending its body: no error to render, nothing to
        # alarm anyone about. The access log shows 499 (nginx's "client closed request") or
        # 408, and the connection closes.
        log.info("client connection lost during %s %s: %s", request.method, request.path, exc)
        response = web.Response(status=408 if isinstance(exc, TimeoutError) else 499,
                                headers={API_VERSION_HEADER: API_VERSION})
        response.force_close()
        return response
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.Response(status=500, content_type="application/json",
                            body=envelope(ErrorCode.UNKNOWN, "internal server error"),
                            headers={API_VERSION_HEADER: API_VERSION})
    if not response.prepared:
        response.headers[API_VERSION_HEADER] = API_VERSION
    return response
