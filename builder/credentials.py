"""Registry credentials: `strata login` / `strata logout` and the lookup the client uses.

strata's own file is `<config dir>/auth.json` (`$STRATA_CONFIG`, else
`$XDG_CONFIG_HOME/strata`, else `~/.config/strata`), written with mode 0600 in docker's shape:
`{"auths": {"HOST": {"auth": base64("user:password")}}}`. Lookups fall back to the `auths` of
`~/.docker/config.json` (`$DOCKER_CONFIG/config.json`), so a `docker login` works for strata too.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

from builder.errors import InvalidArgument
from builder.fsutil import atomic_write

DOCKER_HUB_KEYS = ("docker.io", "https://index.docker.io/v1/", "index.docker.io",
                   "registry-1.docker.io")


def config_dir() -> Path:
    if env := os.environ.get("STRATA_CONFIG"):
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "strata"


def auth_file() -> Path:
    return config_dir() / "auth.json"


def docker_config_file() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(base) / "config.json"


def _keys_for(registry: str) -> tuple[str, ...]:
    if registry in DOCKER_HUB_KEYS:
        return DOCKER_HUB_KEYS
    return (registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v2/")


def _read(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read credentials file {path}: {exc}") from None
    return obj if isinstance(obj, dict) else {}


def _decode(entry: Any) -> tuple[str, str] | None:
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep else None
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return entry["username"], entry["password"]
    return None


def lookup(registry: str) -> tuple[str, str] | None:
    """(user, password) for a registry host, from strata's file then docker's; else None."""
    for path in (auth_file(), docker_config_file()):
        auths = _read(path).get("auths")
        if not isinstance(auths, dict):
            continue
        for key in _keys_for(registry):
            found = _decode(auths.get(key))
            if found is not None:
                return found
    return None


def store(registry: str, user: str, password: str) -> Path:
    """Save credentials for `registry` in strata's file (mode 0600); returns the file."""
    path = auth_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = _read(path)
    auths = data.setdefault("auths", {})
    if not isinstance(auths, dict):
        auths = data["auths"] = {}
    auths[registry] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    old = os.umask(0o077)
    try:
        atomic_write(path, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return path


def remove(registry: str) -> bool:
    """Forget strata's credentials for `registry`; False when there were none."""
    path = auth_file()
    data = _read(path)
    auths = data.get("auths")
    if not isinstance(auths, dict) or registry not in auths:
        return False
    del auths[registry]
    old = os.umask(0o077)
    try:
        atomic_write(path, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")
    finally:
        os.umask(old)
    return True
