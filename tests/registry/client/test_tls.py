"""https with an extra CA (`ca_cert`): docker-registry and strata-registry serving TLS on
loopback with a certificate from a throwaway CA made here (tooling.write_test_pki)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tooling import write_test_pki
from transfer_registries import (
    RunningRegistry,
    _push_image,
    start_docker_registry,
    start_strata_registry,
)

from registry.client import RegistryClient, RegistryUnreachable


@pytest.fixture(params=["docker-registry", "strata-registry"])
def tls_registry(request: pytest.FixtureRequest,
                 tmp_path: Path) -> Iterator[tuple[RunningRegistry, Path]]:
    pki = write_test_pki(tmp_path)
    if request.param == "docker-registry":
        reg = start_docker_registry(tmp_path, tls=(pki.ca, pki.cert, pki.key))
    else:
        reg = start_strata_registry(tmp_path, tls=pki)
    yield reg, pki.ca
    reg.stop()


async def test_https_with_an_extra_ca_certificate(
        tls_registry: tuple[RunningRegistry, Path]) -> None:
    reg, ca = tls_registry
    async with RegistryClient(reg.host, scheme="https", ca_cert=str(ca)) as client:
        await _push_image(client, "tls/app", "v1", os.urandom(3 << 20))
        desc, _ = await client.resolve("tls/app", "v1")
        assert desc.size > 0
    async with RegistryClient(reg.host, scheme="https") as untrusting:
        with pytest.raises(RegistryUnreachable, match="TLS|certificate|SSL"):
            await untrusting.ping()
