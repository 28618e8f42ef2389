"""create_app(config) -> web.Application: routes, state (AppKeys), one middleware, access log.

Route order matters because repository names contain slashes (`{name:.+}`): the literal
endpoints come first, and each pattern ends in a fixed suffix (`/blobs/uploads/`,
`/manifests/<ref>`...), so a greedy name never swallows one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import ClassVar, TextIO

from aiohttp import HttpVersion11, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from registry.auth import BasicAuth, HtpasswdInvalid, claimed_user, load_htpasswd
from registry.oci.api import API_VERSION, API_VERSION_HEADER
from registry.oci.errors import TooManyRequests, Unauthorized, Unsupported
from registry.search import SearchIndex
from registry.server import blobs, catalog, keys, manifests, referrers, search, tags, uploads
from registry.server.config import ConfigError, RegistryConfig
from registry.server.errors import (
    Handler,
    error_middleware,
    error_response,
    quiet_client_errors,
)
from registry.server.keys import AUTH, PROXY, USER
from registry.server.params import (
    HAND_BACK,
    ConnectionHandBack,
    close_taken_connection,
    return_taken_connection,
)
from registry.server.proxy import (
    PullThrough,
    read_only_middleware,
    read_only_refusal,
    upstream_client,
)
from registry.storage import (
    ManifestInfo,
    ManifestListener,
    RegistryStore,
    StorageDriver,
    StoreConfig,
)

log = logging.getLogger("registry.server")
access_log = logging.getLogger("registry.access")

NAME = "{name:.+}"


async def api_base(request: web.Request) -> web.Response:
    """GET /v2/: 200 `{}`: the client may go on (authenticated, where auth_htpasswd asks)."""
    return web.json_response({}, headers={API_VERSION_HEADER: API_VERSION})


REFUSED_CLOSE_SECONDS = 0.5
"""How long a connection whose Expect: 100-continue request was refused stays open after the
answer, reading what the client may send anyway."""


async def expect_continue(request: web.Request) -> web.Response | None:
    """`Expect: 100-continue` on HTTP/1.1 gets its interim answer (RFC 9110 §10.1.1), as
    aiohttp's own handler gives it; any other expectation is 417. aiohttp's handler put the
    raw header in that 417's body, and one that was no UTF-8 made it a 500. A request that
    auth_htpasswd refuses gets its 401 instead of the 100, and a push to a pull-through
    cache its 405: their bodies are not wanted."""
    if request.version != HttpVersion11:
        return None
    refused = await auth_refusal(request) if AUTH in request.app else None
    if refused is None and PROXY in request.app:
        refused = read_only_refusal(request)
    if refused is not None:
        # The body should not come: answer, end our side, and close half a second later,
        # as Go's net/http does, rather than linger up to 10 s for a body (taking the next
        # request's bytes for it). A client that sends its body anyway still reads the
        # answer: closing at once with its bytes unread would reset the connection.
        refused.force_close()
        await refused.prepare(request)
        await refused.write_eof()
        transport = request.transport
        if transport is not None and transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(REFUSED_CLOSE_SECONDS, request.protocol.force_close)
        return refused
    if request.headers.get("Expect", "").strip().lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # (the interim answer is not the response)
        return None
    raise web.HTTPExpectationFailed(text="only Expect: 100-continue is supported",
                                    headers={API_VERSION_HEADER: API_VERSION})


async def auth_refusal(request: web.Request) -> web.Response | None:
    """None when the request proves its user (kept in request[USER]); otherwise the 401
    UNAUTHORIZED with the challenge to answer it with (429 while the authenticator cannot
    tell now)."""
    if USER in request:
        return None
    auth = request.app[AUTH]
    authorization = request.headers.get("Authorization")
    try:
        user = await auth.user(authorization)
    except TooManyRequests as exc:
        return error_response(exc, headers={"Retry-After": "1"})
    if user is None:
        if authorization:
            log.info("authentication failed for %r from %s", claimed_user(authorization),
                     request.remote)
        return error_response(Unauthorized(), headers={"WWW-Authenticate": auth.challenge})
    request[USER] = user
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only requests that prove their user reach `handler` (see `auth_refusal`)."""
    return await auth_refusal(request) or await handler(request)


ROUTES = [
    ("GET", "/v2/", api_base),
    ("GET", "/v2", api_base),
    ("GET", "/v2/_catalog", catalog.catalog),
    ("POST", f"/v2/{NAME}/blobs/uploads/", uploads.start_upload),
    ("POST", f"/v2/{NAME}/blobs/uploads", uploads.start_upload),  # a client that drops the /
    ("GET", f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.upload_status),
    ("PATCH", f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.patch_upload),
    ("PUT", f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.finish_upload),
    ("DELETE", f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.cancel_upload),
    ("GET", f"/v2/{NAME}/blobs/{{digest}}", blobs.get_blob),  # GET also answers HEAD
    ("DELETE", f"/v2/{NAME}/blobs/{{digest}}", blobs.delete_blob),
    ("GET", f"/v2/{NAME}/manifests/{{reference}}", manifests.get_manifest),
    ("PUT", f"/v2/{NAME}/manifests/{{reference}}", manifests.put_manifest),
    ("DELETE", f"/v2/{NAME}/manifests/{{reference}}", manifests.delete_manifest),
    ("GET", f"/v2/{NAME}/tags/list", tags.list_tags),
    ("GET", f"/v2/{NAME}/referrers/{{digest}}", referrers.list_referrers),
    ("GET", "/v1/_ping", search.v1_ping),
    ("GET", "/v1/search", search.v1_search),
    ("GET", "/strata/v1/search", search.strata_search),
]
"""Every endpoint, in the order the router tries them."""


async def no_route(request: web.Request) -> web.StreamResponse:
    """What no endpoint takes: 405 (UNSUPPORTED, with Allow) where other methods of the path
    are served, else 404. A route of its own (the last), so that expect_continue handles its
    Expect header too: aiohttp's own handler turned one that is no UTF-8 into a 500."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            allowed |= (await resource.resolve(request))[1]
    if not allowed:
        raise web.HTTPNotFound()
    return error_response(Unsupported(f"{request.method} is not allowed here"),
                          headers={"Allow": ", ".join(sorted(allowed))})


def add_routes(app: web.Application) -> None:
    for method, path, handler in ROUTES:
        if method == "GET":
            app.router.add_get(path, handler, expect_handler=expect_continue)
        else:
            app.router.add_route(method, path, handler, expect_handler=expect_continue)
    app.router.add_route("*", "/{path:.*}", no_route, expect_handler=expect_continue)


def create_app(config: RegistryConfig, driver: StorageDriver | None = None) -> web.Application:
    """The registry application; storage opens on startup and closes on cleanup.

    `driver` replaces the filesystem driver on `config.root` (tests run the API over the
    memory driver too, which has no local files and so exercises the streaming blob path).
    """
    middlewares = [return_taken_connection, error_middleware]
    if config.auth_htpasswd is not None:
        middlewares.append(auth_middleware)
    if config.proxy_remote_url is not None:
        middlewares.append(read_only_middleware)
    app = web.Application(middlewares=middlewares, client_max_size=1024 ** 2)
    app[keys.CONFIG] = config
    app[HAND_BACK] = ConnectionHandBack()  # see hand_back_to
    app.on_response_prepare.append(close_taken_connection)
    add_routes(app)
    quiet_client_errors()
    app.cleanup_ctx.append(functools.partial(_lifecycle, driver=driver))
    return app


REQUEST_HEAD_LIMITS = {"max_line_size": 64 * 1024, "max_field_size": 64 * 1024}
"""aiohttp's limits on a request line and on one header field (8190 bytes by default, beyond
which it answers a bare 400): registry clients send bearer tokens and ?tag= lists longer than
that, and distribution (Go's net/http) takes request heads of up to 1 MB."""


def hand_back_to(app: web.Application, runner: web.BaseRunner) -> None:
    """Connections that SocketBodies took over go back to `runner`'s server once their body is
    in (call after `runner.setup()`); until then they close after their response."""
    app[HAND_BACK].protocol_factory = runner.server


async def _lifecycle(app: web.Application,
                     driver: StorageDriver | None = None) -> AsyncIterator[None]:
    config = app[keys.CONFIG]
    store = await RegistryStore.open(StoreConfig(
        root=config.root, delete_enabled=config.delete_enabled,
        upload_ttl_seconds=config.upload_ttl_seconds,
        max_manifest_bytes=config.max_manifest_bytes), driver)
    app[keys.STORE] = store
    index: SearchIndex | None = None
    if config.search_enabled:
        index = await SearchIndex.open(store.db_path, store)
        store.add_listener(_search_listener(index))
    app[keys.SEARCH] = index
    loop = asyncio.get_running_loop()
    tasks = []
    if config.purge_interval_seconds > 0:
        tasks.append(loop.create_task(_purge_loop(store, config.purge_interval_seconds)))
    auth = None
    if config.auth_htpasswd is not None:
        auth = await loop.run_in_executor(None, _basic_auth, config)
        app[AUTH] = auth
        tasks.append(loop.create_task(auth.watch()))
    proxy = None
    if config.proxy_remote_url is not None:
        proxy = app[PROXY] = PullThrough(upstream_client(config), store,
                                         config.proxy_remote_url, config.proxy_timeout_seconds)
        log.info("pull-through cache of %s", config.proxy_remote_url)
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if auth is not None:
            auth.close()
        if proxy is not None:
            await proxy.close()
        if index is not None:
            await index.close()
        await store.close()


def _basic_auth(config: RegistryConfig) -> BasicAuth:
    assert config.auth_htpasswd is not None
    try:
        auth = BasicAuth(load_htpasswd(config.auth_htpasswd), config.auth_realm)
    except HtpasswdInvalid as exc:
        raise ConfigError(str(exc)) from None
    log.info("Basic auth: %d users from %s%s", len(auth.htpasswd.users), config.auth_htpasswd,
             "" if config.tls_certificate else " (over plain http: passwords are readable "
             "on the way; set tls_certificate)")
    return auth


def _search_listener(index: SearchIndex) -> ManifestListener:
    def on_manifest_change(repo: str, tag: str | None, info: ManifestInfo,
                           deleted: bool) -> None:
        try:
            index.schedule(repo)
        except RuntimeError:  # called outside the loop thread: nothing to schedule on
            log.warning("search index: change in %s seen outside the event loop", repo)
    return on_manifest_change


async def _purge_loop(store: RegistryStore, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            purged = await store.uploads.purge_expired()
            if purged:
                log.info("purged %d expired upload sessions", purged)
        except Exception:
            log.exception("upload purge failed")


class AccessLogSink:
    """Batches access lines and writes them in one call (a write per request costs ~25% of a
    manifest HEAD). Flushed when `max_lines` are queued, by the server's periodic flush, and
    at shutdown; only the CLI server installs one (AccessLogger.sink)."""

    def __init__(self, stream: TextIO, max_lines: int = 256) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self.max_lines = max_lines

    def write(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= self.max_lines:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()


_stamp_second = -1
_stamp_text = ""


def _timestamp(now: float) -> str:
    """`YYYY-mm-dd HH:MM:SS,mmm` (the text log format), formatting the date once a second."""
    global _stamp_second, _stamp_text
    second = int(now)
    if second != _stamp_second:
        _stamp_second = second
        _stamp_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
    return f"{_stamp_text},{int((now - second) * 1000):03d}"


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path, status, bytes, duration, client (text or JSON)."""

    json_format = False
    sink: ClassVar[AccessLogSink | None] = None

    def log(self, request: BaseRequest, response: StreamResponse, time_: float) -> None:
        client = request.remote or "-"
        # body bytes: body_length also counts the header block, so prefer the declared length
        if request.method == "HEAD" or response.status in (204, 304):
            sent = 0
        elif response.content_length is not None:
            sent = response.content_length
        else:
            sent = response.body_length
        now = time.time()
        if self.json_format:
            record = {
                "ts": round(now, 3), "client": client, "method": request.method,
                "path": request.path_qs, "status": response.status,
                "bytes": sent, "duration_ms": round(time_ * 1000, 3),
            }
            if (user := request.get(USER)) is not None:
                record["user"] = user
            line = json.dumps(record)
        else:
            line = (f"{client} {request.method} {request.path_qs} {response.status} "
                    f"{sent} {time_ * 1000:.1f}ms")
        sink = AccessLogger.sink
        if sink is None:
            self.logger.info(line)
        elif self.json_format:
            sink.write(line)
        else:
            sink.write(f"{_timestamp(now)} access {line}")


class JsonAccessLogger(AccessLogger):
    json_format = True
