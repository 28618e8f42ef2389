"""GET /v2/, the API version header on every response, and the one error table."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from registry.oci.errors import ErrorCode
from registry.server.app import create_app
from registry.server.errors import STATUS


async def test_base_endpoint_answers_200_with_api_version(reg) -> None:
    resp = await reg.get("/v2/")
    assert resp.status == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert await resp.json() == {}


async def test_unknown_route_is_404_with_api_version_header(reg) -> None:
    resp = await reg.get("/v2/foo/unknown-endpoint/x")
    assert resp.status == 404
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_error_responses_carry_api_version_header(reg) -> None:
    resp = await reg.get("/v2/foo/manifests/latest")
    assert resp.status == 404
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert resp.headers["Content-Type"].startswith("application/json")


def test_every_error_code_has_exactly_one_status() -> None:
    assert set(STATUS) == set(ErrorCode)
    assert STATUS[ErrorCode.UNSUPPORTED] == 405
    assert STATUS[ErrorCode.RANGE_INVALID] == 416
    assert STATUS[ErrorCode.UNKNOWN] == 500
    client_codes = [c for c in ErrorCode if c is not ErrorCode.UNKNOWN]
    assert all(400 <= STATUS[c] < 500 for c in client_codes)


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
