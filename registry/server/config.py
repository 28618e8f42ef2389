"""Registry configuration: defaults < TOML file < STRATA_REGISTRY_* environment < CLI flags.

Every option (TOML key = field name; env var = STRATA_REGISTRY_ + upper-case name):

    addr                 "127.0.0.1:5000"  host:port to listen on
    root                 "registry-data"   storage root (blobs, uploads, metadata.db)
    workers              1                 processes sharing the port via SO_REUSEPORT
    delete_enabled       false             allow blob and manifest DELETE (else 405 UNSUPPORTED)
    log_format           "text"            access/app log format: "text" or "json"
    log_level            "info"            debug, info, warning, error
    access_log           true              one line per request
    upload_ttl_seconds   604800            unfinished uploads older than this are purged
    purge_interval_seconds 3600            how often the purge runs (0 disables it)
    max_manifest_bytes   4194304           manifests larger than this are refused
    search_enabled       true              maintain the search index and serve the search APIs
    idle_timeout_seconds 75                a connection with no request under way closes
                                           after this long (a new one must send its first
                                           request's head within it)
    send_timeout_seconds 300               a connection whose client has acknowledged none
                                           of the bytes sent to it for this long is reset
                                           (a client that stopped reading)
    tls_certificate      (none)            PEM certificate chain: serve https (with tls_key)
    tls_key              (none)            PEM private key of that certificate
    tls_client_ca        (none)            PEM CA certificates: require a client certificate
                                           one of them signed (mutual TLS)
    auth_htpasswd        (none)            htpasswd file (bcrypt): every request must carry
                                           the password of a user in it (Basic auth)
    auth_realm           "strata-registry" the realm of the Basic challenge
    proxy_remote_url     (none)            be a pull-through cache of this registry
                                           (http[s]://HOST[:PORT]): pulls fetch what is
                                           missing from it, pushes are refused
    proxy_username       (none)            credentials for it (with proxy_password)
    proxy_password       (none)
    proxy_timeout_seconds 15               how long an answer about a manifest, a tag list
                                           or a blob may take upstream before the cached
                                           copy is served (or 502)
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.oci.reference import split_registry_url

ENV_PREFIX = "STRATA_REGISTRY_"
LOG_FORMATS = ("text", "json")
MAX_SEND_TIMEOUT_SECONDS = 2**31 // 1000  # TCP_USER_TIMEOUT is a C int of milliseconds


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the option."""


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    addr: str = "127.0.0.1:5000"
    root: Path = Path("registry-data")
    workers: int = 1
    delete_enabled: bool = False
    log_format: str = "text"
    log_level: str = "info"
    access_log: bool = True
    upload_ttl_seconds: float = 7 * 24 * 3600
    purge_interval_seconds: float = 3600
    max_manifest_bytes: int = 4 * 1024 * 1024
    search_enabled: bool = True
    idle_timeout_seconds: float = 75
    send_timeout_seconds: float = 300
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    auth_htpasswd: Path | None = None
    auth_realm: str = "strata-registry"
    proxy_remote_url: str | None = None
    proxy_username: str | None = None
    proxy_password: str | None = dataclasses.field(default=None, repr=False)  # a secret
    proxy_timeout_seconds: float = 15

    @property
    def scheme(self) -> str:
        return "http" if self.tls_certificate is None else "https"

    @property
    def host(self) -> str:
        return split_addr(self.addr)[0]

    @property
    def port(self) -> int:
        return split_addr(self.addr)[1]

    def replace(self, **changes: Any) -> RegistryConfig:
        return _validated(dataclasses.replace(self, **changes))


def split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if (not sep or not (port.isascii() and port.isdigit()) or len(port) > 5
            or not 0 <= int(port) <= 65535):
        raise ConfigError(f"addr {addr!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


_KINDS = {"addr": str, "root": Path, "workers": int, "delete_enabled": bool, "log_format": str,
          "log_level": str, "access_log": bool, "upload_ttl_seconds": float,
          "purge_interval_seconds": float, "max_manifest_bytes": int, "search_enabled": bool,
          "idle_timeout_seconds": float, "send_timeout_seconds": float,
          "tls_certificate": Path, "tls_key": Path, "tls_client_ca": Path,
          "auth_htpasswd": Path, "auth_realm": str, "proxy_remote_url": str,
          "proxy_username": str, "proxy_password": str, "proxy_timeout_seconds": float}


_OPTIONAL = ("tls_certificate", "tls_key", "tls_client_ca", "auth_htpasswd",
             "proxy_remote_url", "proxy_username", "proxy_password")
"""Options that default to none: an empty value (say, an empty environment variable) turns
one off."""


def _coerce(name: str, value: Any) -> Any:
    kind = _KINDS[name]
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{name}: expected a boolean, got {value!r}")
    if kind is int or kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        return number
    if kind is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{name}: expected a path, got {value!r}")
        if name in _OPTIONAL and not str(value):
            return None
        return Path(value)
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    return None if name in _OPTIONAL and not value else value


def _is_registry_url(url: str) -> bool:
    try:
        split_registry_url(url)
    except ValueError:
        return False
    return True


def _validated(config: RegistryConfig) -> RegistryConfig:
    split_addr(config.addr)
    if config.workers < 1:
        raise ConfigError("workers must be at least 1")
    if config.log_format not in LOG_FORMATS:
        raise ConfigError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
    if config.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError("log_level must be debug, info, warning or error")
    if config.max_manifest_bytes < 1024:
        raise ConfigError("max_manifest_bytes must be at least 1024")
    if config.upload_ttl_seconds <= 0:
        raise ConfigError("upload_ttl_seconds must be positive")
    if config.idle_timeout_seconds <= 0:
        raise ConfigError("idle_timeout_seconds must be positive")
    if not 0.001 <= config.send_timeout_seconds <= MAX_SEND_TIMEOUT_SECONDS:
        raise ConfigError("send_timeout_seconds must be from 0.001 to "
                          f"{MAX_SEND_TIMEOUT_SECONDS}")
    if (config.tls_certificate is None) != (config.tls_key is None):
        raise ConfigError("tls_certificate and tls_key go together: set both or neither")
    if config.tls_client_ca is not None and config.tls_certificate is None:
        raise ConfigError("tls_client_ca needs tls_certificate and tls_key (https)")
    if config.proxy_remote_url is not None and not _is_registry_url(config.proxy_remote_url):
        raise ConfigError("proxy_remote_url must be http://HOST[:PORT] or https://HOST[:PORT] "
                          "(credentials go in proxy_username and proxy_password), not "
                          f"{config.proxy_remote_url!r}")
    if config.proxy_timeout_seconds <= 0:
        raise ConfigError("proxy_timeout_seconds must be positive")
    if (config.proxy_username is None) != (config.proxy_password is None):
        raise ConfigError("proxy_username and proxy_password go together")
    if config.proxy_username is not None and config.proxy_remote_url is None:
        raise ConfigError("proxy_username needs proxy_remote_url")
    if not config.auth_realm or any(c in '"\\' or not c.isprintable()
                                    for c in config.auth_realm):
        raise ConfigError("auth_realm must be non-empty, printable, without quotes or "
                          "backslashes")
    return config


def _apply(config: RegistryConfig, values: Mapping[str, Any], origin: str) -> RegistryConfig:
    changes: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in _KINDS:
            raise ConfigError(f"{origin}: unknown option {key!r}")
        changes[name] = _coerce(name, value)
    return dataclasses.replace(config, **changes)


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> RegistryConfig:
    """Build the effective config. `overrides` (CLI flags) win; None values are ignored."""
    config = RegistryConfig()
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        config = _apply(config, data, str(path))
    environ = os.environ if env is None else env
    from_env = {k[len(ENV_PREFIX):].lower(): v for k, v in environ.items()
                if k.startswith(ENV_PREFIX) and k != ENV_PREFIX + "CONFIG"}
    config = _apply(config, from_env, "environment")
    if overrides:
        config = _apply(config, {k: v for k, v in overrides.items() if v is not None}, "flags")
    return _validated(config)
