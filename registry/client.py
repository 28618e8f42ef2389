"""RegistryClient: the distribution API over one aiohttp.ClientSession.

Errors (one translation point, `_map_errors`, after httpx's map_httpcore_exceptions):

    RegistryError (registry.oci.errors)
     ├── ...every wire code, decoded from the `{"errors": [...]}` envelope by `error_for_code`
     ├── DigestInvalid           a blob or manifest whose bytes do not hash to its digest
     └── TransportError          no usable HTTP answer (this module)
          ├── RegistryUnreachable  connection refused, DNS, TLS handshake, timeout
          └── StreamInterrupted    the body ended early; `received` bytes arrived (resumable)

Auth: a 401 carrying `WWW-Authenticate: Bearer realm=..,service=..,scope=..` sends the client to
the token endpoint (with Basic credentials when it has them) and the request is retried with the
token; tokens are kept per scope until `expires_in` runs out. A `Basic` challenge is answered with
the credentials directly. Plain http for loopback hosts and `insecure` ones; https otherwise with
the system CAs plus an optional extra CA file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import ipaddress
import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import aiohttp

from registry.oci import (
    Descriptor,
    Digest,
    Digester,
    RegistryError,
    api,
    error_for_code,
    mediatypes,
)
from registry.oci import errors as oci_errors
from registry.oci.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestUnknown,
    NameUnknown,
    Unauthorized,
    UnknownError,
    Unsupported,
)
from registry.oci.manifest import MAX_MANIFEST_BYTES

CHUNK = 1 << 20
MONOLITHIC_LIMIT = 8 << 20  # blobs up to this size go in one PUT
UPLOAD_CHUNK = 1 << 30  # larger blobs stream in PATCHes of up to this size, each resumed
MANIFEST_ACCEPT = ", ".join((mediatypes.OCI_INDEX, mediatypes.OCI_MANIFEST,
                             mediatypes.DOCKER_MANIFEST_LIST, mediatypes.DOCKER_MANIFEST))
DOCKER_HUB_API = "registry-1.docker.io"

Credentials = tuple[str, str]
CredentialLookup = Callable[[str], Credentials | None]


class TransportError(RegistryError):
    """No usable HTTP answer from the registry."""


class RegistryUnreachable(TransportError):
    default_message = "registry unreachable"


class StreamInterrupted(TransportError):
    default_message = "the transfer was interrupted"

    def __init__(self, message: str | None = None, *, received: int = 0) -> None:
        super().__init__(message)
        self.received = received


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (with or without a port)."""
    name = host
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def api_host(registry: str) -> str:
    """The host that serves the API for a registry name (docker.io -> registry-1.docker.io)."""
    return DOCKER_HUB_API if registry in ("docker.io", "index.docker.io") else registry


_CHALLENGE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="x",service="y"` -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _CHALLENGE.finditer(rest)}
    return scheme.lower(), params


@dataclass(slots=True)
class _Token:
    value: str
    expires: float


@dataclass(frozen=True, slots=True)
class BlobStream:
    """What `open_blob` yields: the chunks from `offset` (after any Range) to the end."""

    offset: int
    chunks: AsyncIterator[bytes]


@contextlib.contextmanager
def _map_errors(what: str) -> Iterator[None]:
    """Translate aiohttp/OS failures into the TransportError family (the only place)."""
    try:
        yield
    except RegistryError:
        raise
    except aiohttp.ClientPayloadError as exc:
        raise StreamInterrupted(f"{what}: the connection closed mid-transfer ({exc})") from None
    except aiohttp.ServerDisconnectedError as exc:
        raise StreamInterrupted(f"{what}: the server disconnected ({exc})") from None
    except aiohttp.ClientSSLError as exc:
        raise RegistryUnreachable(f"{what}: TLS failed: {exc}") from None
    except aiohttp.ClientConnectionError as exc:
        raise RegistryUnreachable(f"{what}: cannot connect: {exc}") from None
    except TimeoutError:
        raise RegistryUnreachable(f"{what}: timed out") from None
    except aiohttp.ClientError as exc:
        raise TransportError(f"{what}: {exc}") from None


async def _error_from_response(resp: aiohttp.ClientResponse, what: str) -> RegistryError:
    """Decode the error envelope (or make one up from the status when there is none)."""
    body = b""
    with contextlib.suppress(Exception):
        body = await resp.content.read(64 * 1024)
    with contextlib.suppress(ValueError, AttributeError, TypeError, IndexError, KeyError,
                             RecursionError):
        errors = json.loads(body)["errors"]
        first = errors[0]
        message = f"{what}: {first.get('message') or first.get('code')}"
        if resp.status == 416:
            # A chunk out of place, whatever code names it: the spec has no code of its own
            # for this (strata says BLOB_UPLOAD_INVALID, distribution RANGE_INVALID).
            return oci_errors.RangeInvalid(message, detail=first.get("detail"))
        return error_for_code(str(first.get("code", "UNKNOWN")), message, first.get("detail"))
    if resp.status == 401:
        return Unauthorized(f"{what}: authentication required")
    if resp.status == 403:
        return error_for_code("DENIED", f"{what}: access denied")
    if resp.status == 404:
        return NameUnknown(f"{what}: not found (HTTP 404)")
    if resp.status == 429:
        return error_for_code("TOOMANYREQUESTS", f"{what}: too many requests")
    if resp.status == 416:
        return oci_errors.RangeInvalid(f"{what}: range not satisfiable (HTTP 416)")
    text = body[:200].decode("utf-8", "replace").strip()
    return UnknownError(f"{what}: HTTP {resp.status}" + (f": {text}" if text else ""))


class RegistryClient:
    """One registry (host[:port]). Use `async with RegistryClient(...)` or call `close()`.

    `credentials` is looked up by registry name when a challenge asks for them.
    Methods raise RegistryError subclasses only (see the module docstring).
    """

    def __init__(self, registry: str, *, credentials: CredentialLookup | None = None,
                 insecure: bool | Iterable[str] = False, ca_cert: str | None = None,
                 timeout: float = 300.0, scheme: str | None = None) -> None:
        """`scheme` ("http"/"https") overrides the choice (e.g. https to a loopback host)."""
        self.registry = registry
        self.host = api_host(registry)
        plain = is_loopback(self.host) or (insecure if isinstance(insecure, bool)
                                           else registry in set(insecure))
        if scheme is not None:
            plain = scheme == "http"
        self.base_url = f"{'http' if plain else 'https'}://{self.host}"
        self._credentials = credentials
        self._ssl: ssl.SSLContext | bool = True
        if not plain:
            ctx = ssl.create_default_context()
            if ca_cert:
                ctx.load_verify_locations(ca_cert)
            self._ssl = ctx
        self._timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, _Token] = {}
        self._basic: str | None = None
        self._bearer_params: dict[str, str] | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, auto_decompress=False,
                connector=aiohttp.TCPConnector(limit=32, ssl=self._ssl))
        return self._session

    # ------------------------------------------------------------------ auth

    def _creds(self) -> Credentials | None:
        return self._credentials(self.registry) if self._credentials else None

    def _auth_header(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token is not None and token.expires > time.monotonic():
            return f"Bearer {token.value}"
        return self._basic

    async def _fetch_token(self, params: dict[str, str], scopes: list[str]) -> _Token:
        realm = params.get("realm")
        if not realm:
            raise Unauthorized("the registry's Bearer challenge has no realm")
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        for scope in scopes:
            query.append(("scope", scope))
        headers: dict[str, str] = {}
        creds = self._creds()
        if creds is not None:
            query.append(("account", creds[0]))
            raw = f"{creds[0]}:{creds[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        with _map_errors(f"token from {realm}"):
            async with self._sess().get(url, headers=headers) as resp:
                if resp.status in (401, 403):
                    raise Unauthorized(
                        f"{self.registry}: the token service refused "
                        f"{'the stored credentials' if creds else 'anonymous access'}"
                        f" (HTTP {resp.status}); try `strata login {self.registry}`")
                if resp.status != 200:
                    raise await _error_from_response(resp, f"token from {realm}")
                body = await resp.json(content_type=None)
        value = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise Unauthorized(f"the token service at {realm} returned no token")
        expires_in = body.get("expires_in") or 60
        return _Token(value, time.monotonic() + max(float(expires_in) - 5, 1.0))

    async def _answer_challenge(self, resp: aiohttp.ClientResponse, scope: str,
                                extra_scopes: list[str], sent: str | None) -> bool:
        """Set up auth for `scope` after a 401; False when there is nothing new to try.

        `sent` is the Authorization the refused request carried: when a parallel request has
        meanwhile obtained something different, that is simply retried."""
        header = resp.headers.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(header)
        current = self._auth_header(scope)
        if current is not None and current != sent:
            return True
        if scheme == "bearer":
            scopes = [s for s in [scope, *extra_scopes] if s]
            if params.get("scope") and params["scope"] not in scopes:
                scopes.append(params["scope"])
            old = self._tokens.get(scope)
            token = await self._fetch_token(params, scopes)
            if old is not None and old.value == token.value:
                return False
            now = time.monotonic()  # (a long-lived client meets many scopes: drop old ones)
            self._tokens = {k: t for k, t in self._tokens.items() if t.expires > now}
            self._tokens[scope] = token
            self._bearer_params = params
            return True
        if scheme == "basic":
            creds = self._creds()
            if creds is None:
                return False
            raw = f"{creds[0]}:{creds[1]}".encode()
            basic = "Basic " + base64.b64encode(raw).decode()
            if basic == sent:
                return False
            self._basic = basic
            return True
        return False

    # ------------------------------------------------------------------ requests

    def _url(self, path_or_url: str) -> str:
        return urljoin(self.base_url + "/", path_or_url)

    @contextlib.asynccontextmanager
    async def _request(self, method: str, path: str, *, scope: str = "",
                       extra_scopes: list[str] | None = None,
                       headers: dict[str, str] | None = None,
                       data: Callable[[], Any] | None = None,
                       ok: Iterable[int] = (200,), what: str = "") -> AsyncIterator[
                           aiohttp.ClientResponse]:
        """One request with the auth dance; `data` is a factory so a retry gets a fresh body.

        Yields the response when its status is in `ok`; raises the decoded error otherwise.
        """
        what = what or f"{method} {path}"
        ok_set = set(ok)
        for attempt in range(3):
            hdrs = dict(headers or {})
            auth = self._auth_header(scope)
            if auth:
                hdrs["Authorization"] = auth
            with _map_errors(f"{self.registry}: {what}"):
                async with self._sess().request(method, self._url(path), headers=hdrs,
                                                data=data() if data else None,
                                                allow_redirects=True) as resp:
                    if resp.status == 401 and attempt < 2 and await self._answer_challenge(
                            resp, scope, extra_scopes or [], auth):
                        continue
                    if resp.status not in ok_set:
                        raise await _error_from_response(resp, f"{self.registry}: {what}")
                    yield resp
                    return
        raise Unauthorized(f"{self.registry}: {what}: authentication failed")

    # ------------------------------------------------------------------ basics

    async def ping(self) -> None:
        """GET /v2/, authenticating if challenged (used by `login` to check credentials)."""
        async with self._request("GET", api.BASE, what="GET /v2/") as resp:
            await resp.read()

    # ------------------------------------------------------------------ manifests

    async def resolve(self, repository: str, reference: str) -> tuple[Descriptor, bytes]:
        """Fetch a manifest or index by tag or digest; bytes are checked against their digest
        (the Docker-Content-Digest header, or the reference when it is a digest)."""
        path = api.manifest_path(repository, reference)
        what = f"manifest {repository}:{reference}"
        async with self._request("GET", path, scope=f"repository:{repository}:pull",
                                 headers={"Accept": MANIFEST_ACCEPT}, what=what) as resp:
            data = await resp.content.read(MAX_MANIFEST_BYTES + 1)
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
            header_digest = resp.headers.get(api.CONTENT_DIGEST_HEADER)
        if len(data) > MAX_MANIFEST_BYTES:
            raise error_for_code("MANIFEST_INVALID", f"{what}: larger than {MAX_MANIFEST_BYTES}")
        self.bytes_in += len(data)
        expected: Digest | None = None
        if reference.startswith("sha") and ":" in reference:
            expected = Digest.parse(reference)
        elif header_digest:
            with contextlib.suppress(RegistryError):
                expected = Digest.parse(header_digest)
        algorithm = expected.algorithm if expected else "sha256"
        actual = Digest.from_bytes(data, algorithm)
        if expected is not None and actual != expected:
            raise DigestInvalid(f"{what}: content hashes to {actual}, expected {expected}")
        media_type = ctype
        with contextlib.suppress(ValueError, AttributeError, RecursionError):
            obj = json.loads(data)
            if isinstance(obj, dict) and isinstance(obj.get("mediaType"), str):
                media_type = obj["mediaType"]
        return Descriptor(media_type or mediatypes.OCI_MANIFEST, actual, len(data)), data

    async def manifest_exists(self, repository: str, reference: str) -> Descriptor | None:
        path = api.manifest_path(repository, reference)
        try:
            async with self._request("HEAD", path, scope=f"repository:{repository}:pull",
                                     headers={"Accept": MANIFEST_ACCEPT}) as resp:
                digest = resp.headers.get(api.CONTENT_DIGEST_HEADER)
                size = int(resp.headers.get("Content-Length", "0"))
                ctype = resp.headers.get("Content-Type", mediatypes.OCI_MANIFEST)
        except (ManifestUnknown, NameUnknown):
            return None
        if not digest:
            return None
        return Descriptor(ctype, Digest.parse(digest), size)

    async def put_manifest(self, repository: str, reference: str, media_type: str,
                           data: bytes) -> Digest:
        """PUT a manifest by tag or digest; returns the digest of the bytes sent."""
        path = api.manifest_path(repository, reference)
        async with self._request("PUT", path, scope=f"repository:{repository}:pull,push",
                                 headers={"Content-Type": media_type}, data=lambda: data,
                                 ok=(200, 201), what=f"put manifest {repository}:{reference}"):
            pass
        self.bytes_out += len(data)
        return Digest.from_bytes(data)

    # ------------------------------------------------------------------ blobs

    async def blob_exists(self, repository: str, digest: Digest) -> int | None:
        """HEAD a blob: its size when the repository has it, else None."""
        try:
            async with self._request("HEAD", api.blob_path(repository, str(digest)),
                                     scope=f"repository:{repository}:pull",
                                     what=f"HEAD blob {digest}") as resp:
                return int(resp.headers.get("Content-Length", "-1"))
        except (BlobUnknown, NameUnknown):
            return None

    @contextlib.asynccontextmanager
    async def open_blob(self, repository: str, digest: Digest,
                        offset: int = 0) -> AsyncIterator[BlobStream]:
        """Stream a blob from `offset` (Range). If the server ignores Range the stream starts
        at 0 (`BlobStream.offset` says which). No verification here; see `blob_body`."""
        headers = {"Range": f"bytes={offset}-"} if offset > 0 else {}
        async with self._request("GET", api.blob_path(repository, str(digest)),
                                 scope=f"repository:{repository}:pull", headers=headers,
                                 ok=(200, 206), what=f"blob {digest}") as resp:
            start = offset if resp.status == 206 else 0

            async def chunks() -> AsyncIterator[bytes]:
                received = 0
                with _map_errors(f"{self.registry}: blob {digest}"):
                    try:
                        async for chunk in resp.content.iter_chunked(CHUNK):
                            received += len(chunk)
                            self.bytes_in += len(chunk)
                            yield chunk
                    except aiohttp.ClientPayloadError:
                        raise StreamInterrupted(
                            f"{self.registry}: blob {digest}: the stream ended after "
                            f"{start + received} bytes", received=received) from None

            yield BlobStream(start, chunks())

    @contextlib.asynccontextmanager
    async def blob_body(self, repository: str, desc: Descriptor,
                        offset: int = 0) -> AsyncIterator[AsyncIterator[bytes]]:
        """The bytes of `desc` after the `offset` bytes the caller already holds (Range).

        Bytes sent again by a server that ignored Range are dropped; more than `desc.size`
        raises DigestInvalid; a body that ends short raises StreamInterrupted after its last
        chunk. No hashing here: the caller digests what it keeps (see `fetch_blob`)."""
        async with self.open_blob(repository, desc.digest, offset) as stream:
            yield self._bounded(stream, desc, offset)

    async def _bounded(self, stream: BlobStream, desc: Descriptor,
                       offset: int) -> AsyncIterator[bytes]:
        skip = offset - stream.offset  # the server ignored Range: drop what the caller holds
        have = offset
        async for chunk in stream.chunks:
            if skip:
                drop = min(skip, len(chunk))
                chunk, skip = chunk[drop:], skip - drop
                if not chunk:
                    continue
            if have + len(chunk) > desc.size:
                raise DigestInvalid(f"blob {desc.digest}: more than the {desc.size} bytes "
                                    "its descriptor declares")
            have += len(chunk)
            yield chunk
        if have < desc.size:
            raise StreamInterrupted(f"{self.registry}: blob {desc.digest}: got {have} of "
                                    f"{desc.size} bytes", received=have - offset)

    async def fetch_blob(self, repository: str, desc: Descriptor,
                         write: Callable[[bytes], object], *, offset: int = 0,
                         digester: Digester | None = None,
                         on_bytes: Callable[[int], None] | None = None) -> Digest:
        """Stream `desc` into `write`, verifying size and digest as the bytes flow.

        To resume, pass `offset` (bytes the caller already holds) and a `digester` that has
        already hashed them; the rest comes with a Range request. Raises DigestInvalid when the
        content does not match (the caller discards what it wrote), StreamInterrupted when the
        body ends early (the caller may resume from what it holds).
        """
        if digester is None:
            if offset:
                raise ValueError("resuming needs the digester of the bytes already held")
            digester = Digester(desc.digest.algorithm)
        async with self.blob_body(repository, desc, offset) as chunks:
            async for chunk in chunks:
                digester.update(chunk)
                write(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        actual = digester.digest()
        if actual != desc.digest:
            raise DigestInvalid(f"blob {desc.digest} from {self.registry}/{repository}: "
                                f"content hashes to {actual}")
        return actual

    async def mount_blob(self, repository: str, digest: Digest, source: str) -> str | None:
        """Cross-repository mount. None when mounted; else the upload Location the registry
        opened instead (the caller uploads there)."""
        path = api.uploads_path(repository, {"mount": str(digest), "from": source})
        async with self._request("POST", path, scope=f"repository:{repository}:pull,push",
                                 extra_scopes=[f"repository:{source}:pull"],
                                 ok=(201, 202), what=f"mount {digest} from {source}") as resp:
            if resp.status == 201:
                return None
            return resp.headers["Location"]

    async def start_upload(self, repository: str) -> str:
        async with self._request("POST", api.uploads_path(repository),
                                 scope=f"repository:{repository}:pull,push", ok=(202,),
                                 what=f"start upload to {repository}") as resp:
            return resp.headers["Location"]

    def _with_query(self, location: str, **params: str) -> str:
        parts = urlsplit(self._url(location))
        query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def _resume_point(self, repository: str, location: str) -> tuple[str, int]:
        """Where to continue after a failed PATCH: (location, offset) from the upload status.

        `Range: 0-0` means either nothing or one byte (distribution's ambiguity): a fresh
        session from 0 is the safe answer, as is any session the registry forgot."""
        try:
            async with self._request("GET", location,
                                     scope=f"repository:{repository}:pull,push",
                                     ok=(204, 200), what="upload status") as resp:
                rng = resp.headers.get("Range", "")
                new_location = resp.headers.get("Location", location)
        except (TransportError, oci_errors.BlobUploadUnknown, NameUnknown):
            return await self.start_upload(repository), 0
        m = re.fullmatch(r"(?:bytes=)?0-([0-9]{1,18})", rng.strip())
        end = int(m.group(1)) if m else 0
        if end == 0:
            return await self.start_upload(repository), 0
        return new_location, end + 1

    async def push_blob(self, repository: str, desc: Descriptor,
                        read_range: Callable[[int, int], AsyncIterator[bytes]], *,
                        location: str | None = None, retries: int = 3,
                        on_bytes: Callable[[int], None] | None = None) -> None:
        """Upload a blob. `read_range(start, length)` streams that slice of its bytes.

        Small blobs go in one PUT; large ones as PATCH chunks, each retried after asking the
        registry how far it got. `location` continues an upload session already opened (for
        example by a mount the registry declined)."""
        scope = f"repository:{repository}:pull,push"
        loc = location or await self.start_upload(repository)
        what = f"upload {desc.digest}"
        if desc.size <= MONOLITHIC_LIMIT:
            for attempt in range(retries + 1):
                try:
                    url = self._with_query(loc, digest=str(desc.digest))
                    async with self._request(
                            "PUT", url, scope=scope, data=lambda: read_range(0, desc.size),
                            headers={"Content-Type": "application/octet-stream",
                                     "Content-Length": str(desc.size)},
                            ok=(201, 204), what=what):
                        pass
                    break
                except TransportError:
                    if attempt == retries:
                        raise
                    loc = await self.start_upload(repository)
            self.bytes_out += desc.size
            if on_bytes:
                on_bytes(desc.size)
            return
        offset = 0
        failures = 0
        while offset < desc.size:
            length = min(UPLOAD_CHUNK, desc.size - offset)
            start = offset
            try:
                async with self._request(
                        "PATCH", loc, scope=scope,
                        data=functools.partial(read_range, start, length),
                        headers={"Content-Type": "application/octet-stream",
                                 "Content-Length": str(length),
                                 "Content-Range": f"{start}-{start + length - 1}"},
                        ok=(202, 204), what=what) as resp:
                    loc = resp.headers.get("Location", loc)
                offset += length
                self.bytes_out += length
                if on_bytes:
                    on_bytes(length)
            except (TransportError, RegistryError) as exc:
                failures += 1
                if failures > retries or not isinstance(
                        exc, TransportError | UnknownError | oci_errors.RangeInvalid):
                    raise
                await asyncio.sleep(0.2 * failures)
                loc, offset = await self._resume_point(repository, loc)
        async with self._request("PUT", self._with_query(loc, digest=str(desc.digest)),
                                 scope=scope, headers={"Content-Length": "0"},
                                 ok=(201, 204), what=what):
            pass

    # ------------------------------------------------------------------ listing, search

    async def tags(self, repository: str) -> list[str]:
        """Every tag of a repository (following `Link` pagination)."""
        out: list[str] = []
        path: str | None = api.tags_path(repository)
        seen: set[str] = set()
        while path and path not in seen:  # (a Link back to a page read ends the list)
            seen.add(path)
            async with self._request("GET", path, scope=f"repository:{repository}:pull",
                                     what=f"tags of {repository}") as resp:
                body = await resp.json(content_type=None)
                path = _next_link(resp.headers.get("Link"))
            out.extend(body.get("tags") or [])
        return out

    async def catalog(self) -> list[str]:
        out: list[str] = []
        path: str | None = api.catalog_path()
        while path:
            async with self._request("GET", path, scope="registry:catalog:*",
                                     what="catalog") as resp:
                body = await resp.json(content_type=None)
                path = _next_link(resp.headers.get("Link"))
            out.extend(body.get("repositories") or [])
        return out

    async def referrers(self, repository: str, digest: Digest,
                        artifact_type: str | None = None) -> list[Descriptor]:
        """The referrers of `digest` (following `Link` pagination)."""
        out: list[Descriptor] = []
        path: str | None = api.referrers_path(repository, str(digest), artifact_type)
        while path:
            async with self._request("GET", path, scope=f"repository:{repository}:pull",
                                     what=f"referrers of {digest}") as resp:
                body = await resp.json(content_type=None)
                path = _next_link(resp.headers.get("Link"))
            out.extend(Descriptor.from_json(m) for m in body.get("manifests") or [])
        return out

    async def search(self, term: str, limit: int = 25) -> dict[str, Any]:
        """strata's `/strata/v1/search`, falling back to docker's `/v1/search`.

        Returns the JSON body; `"api"` says which endpoint answered ("strata" or "v1")."""
        query = urlencode({"q": term, "n": str(limit)})
        for api_name, base in (("strata", api.SEARCH), ("v1", api.V1_SEARCH)):
            try:
                async with self._request("GET", f"{base}?{query}", scope="registry:catalog:*",
                                         what=f"search {term!r}") as resp:
                    body = await resp.json(content_type=None)
            except (NameUnknown, Unsupported, UnknownError) as exc:
                if api_name == "v1":
                    raise RegistryError(f"{self.registry} offers no search API ({exc})") from None
                continue
            if isinstance(body, dict):
                body["api"] = api_name
                return body
        raise RegistryError(f"{self.registry} offers no search API")


def _next_link(header: str | None) -> str | None:
    """The target of `Link: <...>; rel="next"`."""
    if not header:
        return None
    m = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', header)
    return m.group(1) if m else None
