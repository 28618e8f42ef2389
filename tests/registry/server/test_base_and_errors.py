"""GET /v2/, the API version header on every response, and the one error table."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from registry.oci import errors
from registry.oci.errors import SPEC_CODES, ErrorCode, RegistryError
from registry.server.app import create_app
from registry.server.errors import STATUS, status_of


async def test_base_endpoint_answers_200_with_api_version(reg) -> None:
    resp = await reg.get("/v2/")
    assert resp.status == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert await resp.json() == {}


async def test_unknown_route_is_404_with_api_version_header(reg) -> None:
    resp = await reg.get("/v2/foo/unknown-endpoint/x")
    assert resp.status == 404
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_a_method_no_route_takes_is_405_unsupported_with_allow(reg) -> None:
    resp = await reg.request("POST", "/v2/app/tags/list")
    assert resp.status == 405
    assert await reg.error_code(resp) == "UNSUPPORTED"
    assert resp.headers["Allow"] == "GET, HEAD"
    resp = await reg.request("POST", "/v2/app/manifests/v1")
    assert resp.headers["Allow"] == "DELETE, GET, HEAD, PUT"


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while piece := conn.recv(65536):
            answer += piece
    return answer


async def test_an_expectation_other_than_100_continue_is_417_not_500(reg) -> None:
    """aiohttp's own expect handler echoed the header into its 417; a header that was no
    UTF-8 made that a 500."""
    for expect in (b"\xe9", b"something-else"):
        # an endpoint, a path no endpoint has, a method the path does not take
        for line in (b"GET /v2/", b"GET /nothing/here", b"POST /v2/app/tags/list"):
            answer = await asyncio.to_thread(
                _raw, reg.server.port,
                line + b" HTTP/1.1\r\nHost: x\r\nExpect: " + expect
                + b"\r\nConnection: close\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 417 "), (line, answer[:200])
            assert b"Docker-Distribution-API-Version: registry/2.0" in answer


async def test_a_request_the_parser_refuses_is_one_log_line_not_a_traceback(
        reg, caplog: pytest.LogCaptureFixture) -> None:
    """Any client could fill the log with aiohttp's ERROR tracebacks for bad requests."""
    with caplog.at_level(logging.INFO, logger="aiohttp.server"):
        answer = await asyncio.to_thread(
            _raw, reg.server.port,
            b"GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") or answer.startswith(b"HTTP/1.0 400 ")
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert records, caplog.text
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in records)
    assert "bad request from 127.0.0.1: 400" in records[0].getMessage()
    assert "Traceback" not in caplog.text


async def test_error_responses_carry_api_version_header(reg) -> None:
    resp = await reg.get("/v2/foo/manifests/latest")
    assert resp.status == 404
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert resp.headers["Content-Type"].startswith("application/json")


def _error_classes() -> list[type[RegistryError]]:
    found, todo = [], [RegistryError]
    while todo:
        cls = todo.pop()
        found += cls.__subclasses__()
        todo += cls.__subclasses__()
    return found


def test_every_error_class_has_a_status_and_a_4xx_carries_only_spec_codes() -> None:
    """The spec: a JSON error body's code "MUST be one of" its fourteen; 500 (and 502, a
    pull-through cache's upstream failing) says UNKNOWN (501 for a transfer coding, RFC
    9112's answer, says UNSUPPORTED)."""
    assert len(SPEC_CODES) == 14
    for cls in _error_classes():
        status = status_of(cls())
        assert status in STATUS.values()
        if status in (500, 502):
            assert cls.code is ErrorCode.UNKNOWN
        else:
            assert (400 <= status < 500 or status == 501) and cls.code in SPEC_CODES, cls
    assert status_of(errors.Unsupported()) == 405
    assert status_of(errors.TransferCodingUnsupported()) == 501
    assert status_of(errors.PreconditionFailed()) == 412
    assert status_of(errors.RangeInvalid()) == 416
    assert status_of(errors.ManifestTooLarge()) == 413
    assert status_of(errors.PaginationInvalid()) == 400
    assert status_of(errors.UpstreamUnavailable()) == 502


def test_distribution_extension_codes_are_still_read() -> None:
    assert type(errors.error_for_code("RANGE_INVALID")) is errors.RangeInvalid
    assert type(errors.error_for_code("TAG_INVALID")) is errors.TagInvalid
    assert type(errors.error_for_code("PAGINATION_NUMBER_INVALID")) is errors.PaginationInvalid
    assert type(errors.error_for_code("BLOB_UPLOAD_INVALID")) is errors.BlobUploadInvalid


async def test_unexpected_exception_becomes_unknown_500_without_internals(
        registry_config, blockbuster) -> None:
    registry_config.root.mkdir(parents=True)
    app = create_app(registry_config)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internal path /etc/shadow")

    app.router.add_get("/boom", boom)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        resp = await client.get("/boom")
        assert resp.status == 500
        text = await resp.text()
        assert "secret" not in text and "shadow" not in text
        body = await resp.json()
        assert body["errors"][0]["code"] == "UNKNOWN"
    finally:
        await client.close()


def test_the_log_filter_makes_client_faults_one_info_line_and_leaves_the_rest() -> None:
    from aiohttp.http_exceptions import BadHttpMessage

    from registry.server.errors import ClientErrorLogFilter

    def record(exc: BaseException, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("aiohttp.server", level, __file__, 1,
                                 "Error handling request from %s", ("10.0.0.7",),
                                 (type(exc), exc, None))

    quiet = ClientErrorLogFilter()
    for exc, text in ((BadHttpMessage("Invalid header\n  value"), "bad request from 10.0.0.7: "
                       "400 Invalid header value"),
                      (ConnectionResetError("Cannot write to closing transport"),
                       "client 10.0.0.7 went away: Cannot write to closing transport")):
        rec = record(exc)
        assert quiet.filter(rec)
        assert (rec.levelno, rec.exc_info, rec.getMessage()) == (logging.INFO, None, text)
    debug = record(BadHttpMessage("x"), logging.DEBUG)
    quiet.filter(debug)
    assert debug.levelno == logging.DEBUG  # never raised
    other = record(RuntimeError("a bug"))
    quiet.filter(other)
    assert other.levelno == logging.ERROR and other.exc_info is not None
