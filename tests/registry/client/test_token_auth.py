"""Bearer token flow against a real token service written here (aiohttp) that guards a real
strata-registry: challenge, token fetch with Basic credentials, retry, token reuse."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from transfer_registries import (
    TOKEN_PASSWORD,
    TOKEN_USER,
    RunningRegistry,
    TokenGate,
    _push_image,
    running_gate,
)

from registry.client import RegistryClient
from registry.oci.errors import Unauthorized

USER, PASSWORD = TOKEN_USER, TOKEN_PASSWORD


@pytest.fixture
async def gate(strata_registry: RunningRegistry) -> AsyncIterator[TokenGate]:
    async with running_gate(strata_registry.url) as g:
        yield g


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
