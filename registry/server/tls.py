"""The https side of `strata-registry serve`: the server's SSL context from the config."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from registry.server.config import ConfigError, RegistryConfig


def server_context(config: RegistryConfig) -> ssl.SSLContext | None:
    """The context that serves https with `tls_certificate` and `tls_key` (TLS 1.2 at
    least), asking for a client certificate `tls_client_ca` signed when that is set; None
    for plain http. ConfigError naming the option and file that cannot be used."""
    certificate, key, client_ca = config.tls_certificate, config.tls_key, config.tls_client_ca
    if certificate is None or key is None:
        return None
    _readable("tls_certificate", certificate)
    _readable("tls_key", key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(lambda: context.load_cert_chain(certificate, key, password=_no_passphrase),
          f"tls_certificate {certificate} with tls_key {key}",
          "a PEM certificate chain and its private key")
    if client_ca is not None:
        _readable("tls_client_ca", client_ca)
        _load(lambda: context.load_verify_locations(cafile=client_ca),
              f"tls_client_ca {client_ca}", "PEM CA certificates")
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _readable(option: str, path: Path) -> None:
    """ConfigError naming `option` and `path` unless the file opens (OpenSSL's own errors
    do not say which file failed)."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot read it: {exc.strerror}") from None


class _EncryptedKey(Exception):
    pass


def _no_passphrase() -> bytes:
    """OpenSSL asks for a passphrase on the terminal (in every worker) otherwise."""
    raise _EncryptedKey


def _load(load: Callable[[], None], what: str, expected: str) -> None:
    try:
        load()
    except _EncryptedKey:
        raise ConfigError(f"{what}: the key is encrypted; give tls_key without a passphrase "
                          "(openssl pkey -in KEY -out PLAIN-KEY)") from None
    except ssl.SSLError as exc:
        raise ConfigError(f"{what}: expected {expected} ({exc.reason or exc})") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what}: expected {expected} ({exc})") from None
