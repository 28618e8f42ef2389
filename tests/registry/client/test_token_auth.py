"""Bearer token flow against a real token service written here (aiohttp) that guards a real
strata-registry: challenge, token fetch with Basic credentials, retry, token reuse."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from tooling import free_port
from transfer_registries import RunningRegistry, _push_image

from registry.client import RegistryClient
from registry.oci.errors import Unauthorized

USER, PASSWORD = "bob", "hunter2"


class TokenGate:
    """Token endpoint `/token` plus a gate in front of the upstream registry's /v2/."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.tokens: dict[str, set[str]] = {}  # token -> granted scopes
        self.token_requests: list[list[str]] = []
        self.port = free_port()

    async def token(self, request: web.Request) -> web.Response:
        scopes = request.query.getall("scope", [])
        self.token_requests.append(scopes)
        auth = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if auth != expected:
            return web.json_response({"details": "bad credentials"}, status=401)
        token = secrets.token_hex(8)
        self.tokens[token] = set(scopes)
        return web.json_response({"token": token, "expires_in": 300})

    def _needed_scope(self, request: web.Request) -> str:
        path = request.path.removeprefix("/v2/")
        for marker in ("/blobs/", "/manifests/", "/tags/"):
            if marker in path:
                name = path.split(marker)[0]
                action = "pull" if request.method in ("GET", "HEAD") else "pull,push"
                return f"repository:{name}:{action}"
        return ""

    async def gate(self, request: web.Request) -> web.StreamResponse:
        scope = self._needed_scope(request)
        auth = request.headers.get("Authorization", "")
        granted = self.tokens.get(auth.removeprefix("Bearer "), None)
        if not auth.startswith("Bearer ") or granted is None or (scope and scope not in granted):
            challenge = (f'Bearer realm="http://127.0.0.1:{self.port}/token",'
                         f'service="gate"' + (f',scope="{scope}"' if scope else ""))
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "token required"}]},
                status=401, headers={"WWW-Authenticate": challenge})
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "authorization", "content-length")}
        async with aiohttp.ClientSession(auto_decompress=False) as session, \
                session.request(request.method, self.upstream + request.path_qs,
                                data=body or None, headers=headers,
                                allow_redirects=False) as resp:
            payload = await resp.read()
            out = web.Response(status=resp.status, body=payload if request.method != "HEAD"
                               else None)
            for k, v in resp.headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "date",
                                     "server", "content-encoding"):
                    out.headers[k] = v
            if request.method == "HEAD" and "Content-Length" in resp.headers:
                out.headers["Content-Length"] = resp.headers["Content-Length"]
            return out


@pytest.fixture
async def gate(strata_registry: RunningRegistry) -> AsyncIterator[TokenGate]:
    g = TokenGate(strata_registry.url)
    app = web.Application()
    app.router.add_get("/token", g.token)
    app.router.add_route("*", "/v2/{tail:.*}", g.gate)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", g.port).start()
    yield g
    await runner.cleanup()


async def test_token_flow_pushes_and_pulls_with_reused_tokens(gate: TokenGate) -> None:
    host = f"127.0.0.1:{gate.port}"
    async with RegistryClient(host, credentials=lambda _r: (USER, PASSWORD)) as client:
        mdesc, manifest = await _push_image(client, "team/secret", "v1", os.urandom(5000))
        desc, data = await client.resolve("team/secret", "v1")
        assert data == manifest
        await client.resolve("team/secret", "v1")
    # One token for push (reused by POST/PUT of both blobs and the manifest), one for pull.
    assert len(gate.token_requests) <= 3, gate.token_requests
    assert ["repository:team/secret:pull,push"] in gate.token_requests


async def test_token_service_refusing_credentials_is_unauthorized(gate: TokenGate) -> None:
    host = f"127.0.0.1:{gate.port}"
    async with RegistryClient(host, credentials=lambda _r: (USER, "wrong")) as client:
        with pytest.raises(Unauthorized, match="strata login"):
            await client.resolve("team/secret", "v1")
