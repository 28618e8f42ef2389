"""Who a registry request is from: the Authenticator Protocol, and BasicAuth over an htpasswd
file (`auth_htpasswd`), as distribution's htpasswd access controller: bcrypt entries only, and
every request must carry a known user's password (clients learn that from the 401 on
`GET /v2/`, then send it on every request). The server's middleware asks `user()`.

bcrypt is slow on purpose (tens of milliseconds), so a password is checked once, on the
bcrypt threads, and remembered (an HMAC of user and password under a key made at start)
while its entry is unchanged. An unknown user costs a bcrypt check too, so the time of a 401
does not tell which user names exist. Checks waiting for a thread are bounded: past
MAX_PENDING_CHECKS a request gets 429 rather than a place in an ever longer queue. The file
is read again when it changes, so users can be added or removed without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import bcrypt

from registry.oci.errors import TooManyRequests

log = logging.getLogger("registry.auth")


class Authenticator(Protocol):
    """What the server asks of an authentication scheme."""

    challenge: str  # the WWW-Authenticate value of a 401

    async def user(self, authorization: str | None) -> str | None:
        """The user an Authorization header proves to be; None when it proves nothing.
        TooManyRequests when it cannot tell now."""
        ...


class HtpasswdInvalid(ValueError):
    """An htpasswd file that cannot be used; the message names path (and line)."""


BCRYPT_HASH = re.compile(rb"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
"""A bcrypt hash as htpasswd -B writes it: `$2y$`, two cost digits, `$`, salt and hash."""
MAX_COST = 17  # what htpasswd -B -C takes; each step doubles a check (17: seconds)
BCRYPT_MAX_PASSWORD = 72  # bytes bcrypt reads; Go's bcrypt and Apache's htpasswd stop there
MAX_REMEMBERED = 4096  # checked passwords kept; past it the memory starts over
MAX_PENDING_CHECKS = 64  # bcrypt checks waiting for a thread, per worker process
RELOAD_SECONDS = 5.0  # how often the file is looked at for a change


@dataclass(frozen=True, slots=True)
class Htpasswd:
    """The users of an htpasswd file and their bcrypt hashes; `version` tells a changed file
    (modification and change times, size, inode)."""

    path: Path
    users: dict[str, bytes]
    version: tuple[int, int, int, int]
    max_cost: int  # the highest bcrypt cost of its hashes


def _version(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino


def file_version(path: Path) -> tuple[int, int, int, int]:
    """What `Htpasswd.version` would be for `path` now (OSError if it cannot be read)."""
    return _version(os.stat(path))


def load_htpasswd(path: Path) -> Htpasswd:
    """Parse `path` (`user:hash` lines; blank lines and `#` comments are skipped).
    HtpasswdInvalid naming path:line for an entry that is no bcrypt hash, as distribution
    takes no other (htpasswd -B makes them), and for a file with no users."""
    try:
        with open(path, "rb") as fh:
            version = _version(os.fstat(fh.fileno()))
            data = fh.read()
    except OSError as exc:
        raise HtpasswdInvalid(f"auth_htpasswd {path}: cannot read it: "
                              f"{exc.strerror}") from None
    users: dict[str, bytes] = {}
    max_cost = 4
    for number, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        user, sep, hashed = line.partition(b":")
        where = f"auth_htpasswd {path}:{number}"
        if not sep or not user:
            raise HtpasswdInvalid(f"{where}: expected USER:BCRYPT-HASH")
        match = BCRYPT_HASH.fullmatch(hashed)
        if match is None or not 4 <= int(match[1]) <= MAX_COST:
            raise HtpasswdInvalid(f"{where}: the password of "
                                  f"{user.decode(errors='replace')!r} is not a bcrypt hash "
                                  "(make it with htpasswd -B)")
        users[user.decode("utf-8", "surrogateescape")] = hashed
        max_cost = max(max_cost, int(match[1]))
    if not users:
        raise HtpasswdInvalid(f"auth_htpasswd {path}: no users")
    return Htpasswd(Path(path), users, version, max_cost)


class BasicAuth:
    """Checks `Authorization: Basic` headers against an Htpasswd (see the module doc)."""

    def __init__(self, htpasswd: Htpasswd, realm: str) -> None:
        """(Makes a bcrypt hash: call it off the event loop.)"""
        self.challenge = f'Basic realm="{realm}", charset="UTF-8"'
        self._key = secrets.token_bytes(32)
        self._remembered: dict[bytes, bytes] = {}  # HMAC(user NUL password) -> its hash
        self._checking: dict[bytes, asyncio.Future[bool]] = {}  # the same check, once
        self._bcrypt = ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                          thread_name_prefix="bcrypt")
        self.htpasswd, self._decoy = htpasswd, _decoy(htpasswd)
        self._reported: object = None  # the unusable file version (or problem) last logged

    def close(self) -> None:
        """Stop the bcrypt threads (checks still queued are dropped)."""
        self._bcrypt.shutdown(wait=False, cancel_futures=True)

    async def user(self, authorization: str | None) -> str | None:
        """The user an Authorization header names with the right password; None otherwise.
        TooManyRequests when MAX_PENDING_CHECKS bcrypt checks wait already."""
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return None
        user, password = credentials
        known = self.htpasswd.users.get(user)
        hashed = known if known is not None else self._decoy
        key = hmac.digest(self._key, user.encode("utf-8", "surrogateescape") + b"\0"
                          + password, hashlib.sha256)
        if known is not None and self._remembered.get(key) == hashed:
            return user
        ok = await self._check(key, password, hashed)
        if not ok or known is None or self.htpasswd.users.get(user) != hashed:
            return None
        if len(self._remembered) >= MAX_REMEMBERED:
            self._remembered.clear()
        self._remembered[key] = hashed
        return user

    async def _check(self, key: bytes, password: bytes, hashed: bytes) -> bool:
        """bcrypt on a bcrypt thread; requests with the same credentials share one check."""
        running = self._checking.get(key + hashed)
        if running is not None:
            return await asyncio.shield(running)
        if len(self._checking) >= MAX_PENDING_CHECKS:
            raise TooManyRequests("too many password checks under way; try again")
        future = asyncio.get_running_loop().run_in_executor(
            self._bcrypt, _password_matches, password, hashed)
        self._checking[key + hashed] = future
        try:
            return await asyncio.shield(future)
        finally:
            if future.done():
                self._checking.pop(key + hashed, None)
            else:  # (this request went away: the others still wait for it)
                future.add_done_callback(lambda _f: self._checking.pop(key + hashed, None))

    async def watch(self) -> None:
        """Reload the file whenever it changes (a task, until cancelled)."""
        while True:
            await asyncio.sleep(RELOAD_SECONDS)
            try:
                await self.reload_if_changed()
            except Exception:  # (keep watching: the next change may be readable)
                log.exception("auth_htpasswd %s: reload failed", self.htpasswd.path)

    async def reload_if_changed(self) -> None:
        """Read the file again if it changed. A file that no longer parses (or is gone)
        keeps the users it had, removals included, and says so once per change."""
        path = self.htpasswd.path
        loop = asyncio.get_running_loop()
        try:
            version = await loop.run_in_executor(None, file_version, path)
        except OSError as exc:
            self._report(f"auth_htpasswd {path}: cannot read it: {exc.strerror}")
            return
        if version in (self.htpasswd.version, self._reported):
            return
        try:
            htpasswd = await loop.run_in_executor(None, load_htpasswd, path)
        except HtpasswdInvalid as exc:
            self._report(str(exc), version)
            return
        decoy = await loop.run_in_executor(None, _decoy, htpasswd)
        self.htpasswd, self._decoy, self._reported = htpasswd, decoy, None
        log.info("auth_htpasswd %s: read again, %d users", path, len(htpasswd.users))

    def _report(self, problem: str, version: tuple[int, int, int, int] | None = None) -> None:
        if (version or problem) == self._reported:
            return
        self._reported = version or problem
        log.error("%s; the %d users read before stay, with their passwords, until it is "
                  "fixed (removals in it are NOT applied)", problem, len(self.htpasswd.users))


def _decoy(htpasswd: Htpasswd) -> bytes:
    """What an unknown user's password is checked against: a hash of a random password at
    the file's highest cost."""
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(htpasswd.max_cost))


def _password_matches(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
    except ValueError:  # a hash this bcrypt cannot read: no match
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


def claimed_user(authorization: str) -> str:
    """The user name a refused Authorization header gave, for the log (never the password)."""
    credentials = _basic_credentials(authorization)
    return "(not Basic user:password)" if credentials is None else credentials[0][:64]
