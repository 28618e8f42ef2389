"""https with an extra CA (`ca_cert`): docker-registry serving TLS on loopback with a
certificate from a throwaway CA made here (cryptography)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from transfer_registries import RunningRegistry, _push_image, start_docker_registry

from registry.client import RegistryClient, RegistryUnreachable


def _write_ca_and_cert(base: Path) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "strata test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = base / "ca.pem", base / "cert.pem", base / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[tuple[RunningRegistry, Path]]:
    ca, cert, key = _write_ca_and_cert(tmp_path)
    reg = start_docker_registry(tmp_path, tls=(ca, cert, key))
    yield reg, ca
    reg.stop()


async def test_https_with_an_extra_ca_certificate(
        tls_registry: tuple[RunningRegistry, Path]) -> None:
    reg, ca = tls_registry
    async with RegistryClient(reg.host, scheme="https", ca_cert=str(ca)) as client:
        await _push_image(client, "tls/app", "v1", os.urandom(2000))
        desc, _ = await client.resolve("tls/app", "v1")
        assert desc.size > 0
    async with RegistryClient(reg.host, scheme="https") as untrusting:
        with pytest.raises(RegistryUnreachable, match="TLS|certificate|SSL"):
            await untrusting.ping()
