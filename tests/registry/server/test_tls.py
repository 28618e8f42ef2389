"""`strata-registry serve` over https (tls_certificate, tls_key, tls_client_ca): bodies of
every size both ways, Range, two workers, client certificates, and certificates that cannot
be used."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from tooling import LoopbackPki, write_test_pki
from transfer_registries import RunningRegistry, start_strata_registry

from registry.server.config import ConfigError, load_config
from registry.server.params import DIRECT_BODY_MIN


@pytest.fixture
def https_registry(tmp_path: Path, pki: LoopbackPki) -> Iterator[RunningRegistry]:
    reg = start_strata_registry(tmp_path, workers=2, tls=pki)
    yield reg
    reg.stop()


def _https(reg: RunningRegistry, pki: LoopbackPki, *,
           client_cert: bool = False) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if client_cert:
        context.load_cert_chain(pki.client_cert, pki.client_key)
    host, port = reg.host.rsplit(":", 1)
    return http.client.HTTPSConnection(host, int(port), context=context, timeout=30)


def _call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def test_https_carries_pushes_and_pulls_of_every_size(https_registry: RunningRegistry,
                                                      pki: LoopbackPki) -> None:
    """A body over DIRECT_BODY_MIN is received by aiohttp over TLS (the socket cannot be
    taken over) and a blob is sent without sendfile: the bytes must be the same."""
    conn = _https(https_registry, pki)
    try:
        assert _call(conn, "GET", "/v2/")[0] == 200
        big = os.urandom(DIRECT_BODY_MIN + 12345)
        big_digest = "sha256:" + hashlib.sha256(big).hexdigest()
        status, headers, _ = _call(conn, "POST", f"/v2/tls/app/blobs/uploads/?digest={big_digest}",
                                   big, {"Content-Type": "application/octet-stream"})
        assert status == 201 and headers["docker-content-digest"] == big_digest

        chunks = [os.urandom(3 << 20), os.urandom(1 << 20)]
        whole = b"".join(chunks)
        digest = "sha256:" + hashlib.sha256(whole).hexdigest()
        status, headers, _ = _call(conn, "POST", "/v2/tls/app/blobs/uploads/")
        assert status == 202
        location = headers["location"]
        status, headers, _ = _call(conn, "PATCH", location, chunks[0], {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"0-{len(chunks[0]) - 1}"})
        assert status == 202 and headers["range"] == f"0-{len(chunks[0]) - 1}"
        sep = "&" if "?" in headers["location"] else "?"
        status, _, _ = _call(conn, "PUT", f"{headers['location']}{sep}digest={digest}",
                             chunks[1], {"Content-Type": "application/octet-stream"})
        assert status == 201

        for data, blob in ((big, big_digest), (whole, digest)):
            status, headers, got = _call(conn, "GET", f"/v2/tls/app/blobs/{blob}")
            assert status == 200 and got == data
        status, headers, got = _call(conn, "GET", f"/v2/tls/app/blobs/{big_digest}",
                                     headers={"Range": "bytes=100-199"})
        assert (status, got) == (206, big[100:200])
        assert headers["content-range"] == f"bytes 100-199/{len(big)}"
    finally:
        conn.close()
    assert "listening on https://" in https_registry.log.read_text()


def test_a_renewed_certificate_is_served_without_a_restart(
        https_registry: RunningRegistry, pki: LoopbackPki, tmp_path: Path) -> None:
    """The files are replaced (a renewal, by a new CA here so that the test can tell which
    one answers); both workers serve the new one within a few RELOAD_SECONDS."""
    renewed_dir = tmp_path / "renewed"
    renewed_dir.mkdir()
    renewed = write_test_pki(renewed_dir)
    os.replace(renewed.cert, pki.cert)
    os.replace(renewed.key, pki.key)
    deadline = time.monotonic() + 30
    while True:
        answered = []
        for _ in range(6):  # (new connections: both workers answer some)
            conn = _https(https_registry, renewed)
            try:
                answered.append(_call(conn, "GET", "/v2/")[0])
            except ssl.SSLError:
                answered.append(None)
            finally:
                conn.close()
        if answered == [200] * 6:
            break
        assert time.monotonic() < deadline, answered
        time.sleep(0.5)
    old_trust = _https(https_registry, pki)
    with pytest.raises(ssl.SSLCertVerificationError):
        _call(old_trust, "GET", "/v2/")
    old_trust.close()
    assert "certificate loaded again" in https_registry.log.read_text()


def test_a_renewal_that_does_not_load_leaves_the_certificate_in_use(
        https_registry: RunningRegistry, pki: LoopbackPki) -> None:
    os.replace(pki.client_key, pki.key)  # a key that is not the certificate's
    deadline = time.monotonic() + 30
    while "the certificate in use stays" not in https_registry.log.read_text():
        assert time.monotonic() < deadline, "the failed reload was not logged"
        time.sleep(0.5)
    for _ in range(4):  # (both workers)
        conn = _https(https_registry, pki)
        try:
            assert _call(conn, "GET", "/v2/")[0] == 200
        finally:
            conn.close()


def test_plain_http_to_an_https_port_gets_no_answer(https_registry: RunningRegistry) -> None:
    host, port = https_registry.host.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError,
                            http.client.BadStatusLine)):
            _call(conn, "GET", "/v2/")
    finally:
        conn.close()


def test_tls_client_ca_requires_a_client_certificate_it_signed(tmp_path: Path,
                                                               pki: LoopbackPki) -> None:
    reg = start_strata_registry(tmp_path, tls=pki, client_ca=True)
    try:
        conn = _https(reg, pki, client_cert=True)
        try:
            assert _call(conn, "GET", "/v2/")[0] == 200
        finally:
            conn.close()
        anonymous = _https(reg, pki)
        try:
            with pytest.raises((ssl.SSLError, ConnectionResetError,
                                http.client.RemoteDisconnected)):
                _call(anonymous, "GET", "/v2/")
        finally:
            anonymous.close()
    finally:
        reg.stop()


def test_tls_options_go_together() -> None:
    with pytest.raises(ConfigError, match="tls_certificate and tls_key go together"):
        load_config(env={"STRATA_REGISTRY_TLS_CERTIFICATE": "/etc/cert.pem"})
    with pytest.raises(ConfigError, match="tls_client_ca needs tls_certificate"):
        load_config(env={"STRATA_REGISTRY_TLS_CLIENT_CA": "/etc/ca.pem"})
    config = load_config(env={"STRATA_REGISTRY_TLS_CERTIFICATE": "",
                              "STRATA_REGISTRY_TLS_KEY": ""})
    assert config.tls_certificate is None and config.scheme == "http"


@pytest.mark.parametrize("broken,message", [
    ("missing", r"tls_certificate .*missing\.pem: cannot read it: No such file"),
    ("other key", r"tls_certificate .*server\.pem with tls_key .*client\.key: expected a PEM "
                  r"certificate chain and its private key"),
    ("not a CA", r"tls_client_ca .*server\.key: expected PEM CA certificates"),
    ("encrypted key", r"tls_certificate .*server\.pem with tls_key .*encrypted\.key: the key "
                      r"is encrypted; give tls_key without a passphrase"),
])
def test_a_certificate_that_cannot_be_used_stops_serve_with_its_name(
        tmp_path: Path, pki: LoopbackPki, broken: str, message: str) -> None:
    cert, key, client_ca = pki.cert, pki.key, None
    if broken == "missing":
        cert = tmp_path / "missing.pem"
    elif broken == "other key":
        key = pki.client_key
    elif broken == "encrypted key":
        key = tmp_path / "encrypted.key"
        plain = serialization.load_pem_private_key(pki.key.read_bytes(), None)
        key.write_bytes(plain.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase")))
    else:
        client_ca = pki.key
    env = {**os.environ, "STRATA_REGISTRY_TLS_CERTIFICATE": str(cert),
           "STRATA_REGISTRY_TLS_KEY": str(key)}
    if client_ca is not None:
        env["STRATA_REGISTRY_TLS_CLIENT_CA"] = str(client_ca)
    out = subprocess.run([sys.executable, "-m", "registry.server", "serve", "--addr",
                          "127.0.0.1:0", "--root", str(tmp_path / "root")],
                         capture_output=True, text=True, timeout=60, env=env,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    assert out.stderr.startswith("strata-registry: ")
    assert re.search(message, out.stderr), out.stderr
    assert not (tmp_path / "root").exists()  # refused before anything was made
