"""The https side of `strata-registry serve`: the server's SSL context from the config, and
its certificate loaded again when the files change (a renewal needs no restart)."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from pathlib import Path

from registry.server.config import ConfigError, RegistryConfig

log = logging.getLogger("registry.server")

RELOAD_SECONDS = 5.0  # how often tls_certificate and tls_key are looked at for a change


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


def _files_version(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int, int], ...]:
    return tuple((st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
                 for st in (os.stat(path) for path in paths))


async def watch_certificate(config: RegistryConfig, context: ssl.SSLContext) -> None:
    """Load tls_certificate and tls_key into `context` again whenever either file changes
    (a task, until cancelled); new connections get the new certificate. A pair that does not
    load (checked on a scratch context first, so the live one never holds half of it) leaves
    the old one in use, logged once per change."""
    certificate, key = config.tls_certificate, config.tls_key
    assert certificate is not None and key is not None
    loop = asyncio.get_running_loop()
    paths = (certificate, key)
    try:
        seen = await loop.run_in_executor(None, _files_version, paths)
    except OSError:
        seen = ()
    while True:
        await asyncio.sleep(RELOAD_SECONDS)
        try:
            version = await loop.run_in_executor(None, _files_version, paths)
        except OSError:
            continue  # (mid-replacement, say: the next look will tell)
        if version == seen:
            continue
        seen = version
        try:
            await loop.run_in_executor(None, server_context, config)  # the scratch check
            # (on the loop thread, where the handshakes run: never half-loaded under one)
            context.load_cert_chain(certificate, key, password=_no_passphrase)
        except (ConfigError, ssl.SSLError, OSError, ValueError, _EncryptedKey) as exc:
            log.error("tls: %s; the certificate in use stays", exc)
            continue
        log.info("tls: certificate loaded again from %s", certificate)
