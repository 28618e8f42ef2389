"""Basic authentication from an htpasswd file (`auth_htpasswd`), as distribution's htpasswd
access controller: bcrypt entries only, and every request must carry a known user's password
(clients learn that from the 401 on `GET /v2/`, then send it on every request).

bcrypt is slow on purpose (tens of milliseconds), so a password is checked once, on a thread
of its own, and remembered (as a SHA-256 of user and password) while its entry is unchanged.
The file is read again when it changes, so users can be added without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import bcrypt
from aiohttp import web

from registry.oci.errors import Unauthorized
from registry.server.config import ConfigError
from registry.server.errors import Handler, error_response

log = logging.getLogger("registry.server")

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
MAX_REMEMBERED = 4096  # checked passwords kept; past it the memory starts over
RELOAD_SECONDS = 5.0  # how often the file's modification time is looked at


@dataclass(frozen=True, slots=True)
class Htpasswd:
    """The users of an htpasswd file and their bcrypt hashes."""

    path: Path
    users: dict[str, bytes]
    mtime_ns: int


def load_htpasswd(path: Path) -> Htpasswd:
    """Parse `path` (`user:hash` lines; blank lines and `#` comments are skipped).
    ConfigError naming path:line for an entry that is no bcrypt hash, as distribution takes
    no other (htpasswd -B makes them)."""
    try:
        with open(path, "rb") as fh:
            mtime_ns = os.fstat(fh.fileno()).st_mtime_ns
            data = fh.read()
    except OSError as exc:
        raise ConfigError(f"auth_htpasswd {path}: cannot read it: {exc.strerror}") from None
    users: dict[str, bytes] = {}
    for number, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        user, sep, hashed = line.partition(b":")
        where = f"auth_htpasswd {path}:{number}"
        if not sep or not user:
            raise ConfigError(f"{where}: expected USER:BCRYPT-HASH")
        if not hashed.decode("ascii", "replace").startswith(BCRYPT_PREFIXES):
            raise ConfigError(f"{where}: the password of {user.decode(errors='replace')!r} "
                              "is not a bcrypt hash (make it with htpasswd -B)")
        users[user.decode("utf-8", "surrogateescape")] = hashed
    if not users:
        raise ConfigError(f"auth_htpasswd {path}: no users")
    return Htpasswd(Path(path), users, mtime_ns)


class BasicAuth:
    """Checks `Authorization: Basic` headers against an Htpasswd (see the module doc)."""

    def __init__(self, htpasswd: Htpasswd, realm: str) -> None:
        self.htpasswd = htpasswd
        self.challenge = f'Basic realm="{realm}", charset="UTF-8"'
        self._remembered: dict[bytes, bytes] = {}  # sha256(user NUL password) -> its hash
        self._bcrypt = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bcrypt")

    def close(self) -> None:
        self._bcrypt.shutdown(wait=False, cancel_futures=True)

    async def user(self, authorization: str | None) -> str | None:
        """The user an Authorization header names with the right password; None otherwise."""
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return None
        user, password = credentials
        hashed = self.htpasswd.users.get(user)
        if hashed is None:
            return None
        key = hashlib.sha256(user.encode("utf-8", "surrogateescape") + b"\0"
                             + password).digest()
        if self._remembered.get(key) == hashed:
            return user
        ok = await asyncio.get_running_loop().run_in_executor(
            self._bcrypt, _password_matches, password, hashed)
        if not ok:
            return None
        if len(self._remembered) >= MAX_REMEMBERED:
            self._remembered.clear()
        self._remembered[key] = hashed
        return user

    async def watch(self) -> None:
        """Reload the file whenever it changes (a task, until cancelled)."""
        while True:
            await asyncio.sleep(RELOAD_SECONDS)
            await self.reload_if_changed()

    async def reload_if_changed(self) -> None:
        """Read the file again if its modification time changed; a file that no longer
        parses keeps the users it had (logged)."""
        path = self.htpasswd.path
        loop = asyncio.get_running_loop()
        try:
            mtime_ns = (await loop.run_in_executor(None, os.stat, path)).st_mtime_ns
        except OSError as exc:
            log.error("auth_htpasswd %s: cannot read it (%s); its users stay", path,
                      exc.strerror)
            return
        if mtime_ns == self.htpasswd.mtime_ns:
            return
        try:
            self.htpasswd = await loop.run_in_executor(None, load_htpasswd, path)
        except ConfigError as exc:
            log.error("%s; the users read before stay", exc)
            return
        log.info("auth_htpasswd %s: read again, %d users", path, len(self.htpasswd.users))


def _password_matches(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # over bcrypt's 72 bytes, or a hash it cannot read: no match
        return False


def _basic_credentials(authorization: str | None) -> tuple[str, bytes] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return user.decode("utf-8", "surrogateescape"), password


AUTH = web.AppKey("auth", BasicAuth)

USER = web.RequestKey("user", str)
"""The authenticated user of a request (access log)."""


async def refusal(request: web.Request) -> web.Response | None:
    """None when the request names a user with the right password (kept in request[USER]);
    otherwise the 401 UNAUTHORIZED with the Basic challenge to answer it with."""
    if USER in request:
        return None
    auth = request.app[AUTH]
    user = await auth.user(request.headers.get("Authorization"))
    if user is None:
        return error_response(Unauthorized(), headers={"WWW-Authenticate": auth.challenge})
    request[USER] = user
    return None


@web.middleware
async def basic_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only requests with a user's password reach `handler` (see `refusal`)."""
    return await refusal(request) or await handler(request)
