"""Request parsing shared by the handlers: names, digests, pagination, ranges, body streams."""

from __future__ import annotations

import asyncio
import concurrent.futures
import select
import socket
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from registry.oci.digest import Digest
from registry.oci.errors import (
    ContentCodingUnsupported,
    DigestInvalid,
    NameInvalid,
    PaginationInvalid,
    RangeInvalid,
    TransferCodingUnsupported,
    Unsupported,
)
from registry.oci.reference import validate_name
from registry.server.errors import IncompleteBody
from registry.storage.filesystem import RECEIVING_THREADS

MAX_PAGE = 10_000

BODY_READ_SIZE = 1024 * 1024
"""Socket read size while a request body streams in (asyncio's default is 256 KiB): fewer
recv calls, wake-ups and parser calls per pushed byte."""


def repo_name(request: web.Request) -> str:
    """The validated repository name of the route; NameInvalid otherwise."""
    name = request.match_info["name"]
    if ".." in name.split("/") or name.startswith("/"):
        raise NameInvalid(f"invalid repository name {name!r}", detail={"name": name})
    return validate_name(name)


def parse_digest(text: str | None, what: str = "digest") -> Digest:
    """A digest from a URL or query; DigestInvalid for bad syntax *and* unknown algorithms.

    distribution answers an unparseable digest with 400 DIGEST_INVALID whatever the reason.
    """
    if not text:
        raise DigestInvalid(f"missing {what}")
    try:
        return Digest.parse(text)
    except Unsupported as exc:
        raise DigestInvalid(exc.message, detail={"digest": text}) from None


HUGE = 10 ** 18
"""What a number of more than 18 digits counts as: more than any count or byte position here
(int() itself refuses strings of over 4,300 digits)."""


def decimal(text: str) -> int | None:
    """`text` as a whole number if it is ASCII digits only, else None: int() would also take
    "5_0", "+3", " 3" and other scripts' digits ("²" passes isdigit() but not int()). More
    than 18 digits count as HUGE."""
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text) if len(text) <= 18 else HUGE


def query_int(request: web.Request, key: str, signed: bool = False) -> int | None:
    """The query parameter `key` as a whole number of ASCII digits (with a leading `-` when
    `signed`), None when absent or empty; PaginationInvalid (400) for anything else."""
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    negative = signed and raw.startswith("-")
    value = decimal(raw[1:] if negative else raw)
    if value is None:
        raise PaginationInvalid(f"{key}={raw[:100]!r} is not a number",
                                detail={key: raw[:100]})
    return -value if negative else value


def pagination(request: web.Request) -> tuple[int | None, str | None]:
    """`n` and `last` from the query. An `n` over MAX_PAGE is served as MAX_PAGE (the spec
    lets a page hold fewer than `n` when a Link header follows); a negative or non-numeric
    `n` is PaginationInvalid (400)."""
    n = query_int(request, "n")
    last = request.query.get("last") or None
    return (None if n is None else min(n, MAX_PAGE)), last


def content_range_start(request: web.Request) -> int | None:
    """The start offset of a PATCH/PUT `Content-Range: <start>-<end>` header, or None.

    The end must agree with Content-Length when both are given; a malformed header is
    RangeInvalid (416, as distribution answers; BLOB_UPLOAD_INVALID on the wire).
    """
    header = request.headers.get("Content-Range")
    if header is None:
        return None
    text = header.strip()
    for prefix in ("bytes=", "bytes "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.split("/", 1)[0]
    start_s, sep, end_s = text.partition("-")
    start, end = decimal(start_s), decimal(end_s)
    if not sep or start is None or end is None:
        raise RangeInvalid(f"malformed Content-Range {header[:100]!r}")
    if end < start:
        raise RangeInvalid(f"Content-Range end before start: {header[:100]!r}")
    length = request.content_length
    if length is not None and length != end - start + 1:
        raise RangeInvalid(
            f"Content-Range {header[:100]!r} does not match Content-Length {length}")
    return start


def range_header(offset: int) -> str:
    """The `Range` value for an upload holding `offset` bytes (distribution writes 0-0 at 0)."""
    return f"0-{max(offset - 1, 0)}"


DIRECT_BODY_MIN = 4 * 1024 * 1024
"""Bodies from this size on are received straight from the socket (SocketBody). Smaller ones
stay with aiohttp: taking a connection over has a fixed cost (a duplicate socket, a receiving
thread, a new connection object when it goes back) that their copies do not outweigh."""

RECV_LOWAT = 1024 * 1024
"""SO_RCVLOWAT while a SocketBody receives: wake the receiving thread for a megabyte at a time,
not for every segment."""

BODY_IDLE_TIMEOUT = 300.0
"""Seconds an upload body (a SocketBody's or aiohttp's) may go without a byte before it
fails the upload."""

_POLL_SECONDS = 0.5  # how soon a receiving thread notices `close`

_RECEIVING = threading.BoundedSemaphore(RECEIVING_THREADS)
"""Bodies SocketBodies receive at once in this process: each holds a storage thread (the
filesystem driver's receiving threads) for as long as its client sends. With none free, a body
comes through aiohttp's parser, which holds no thread while its client is slow: clients that
trickle cannot stall every other large upload."""
_discarding = concurrent.futures.ThreadPoolExecutor(RECEIVING_THREADS,
                                                    thread_name_prefix="strata-discard")
"""Where the rest of a body a handler left unread is received and dropped (`discard_rest`,
up to HAND_BACK_SECONDS each): never in the default executor, which serves file opens."""

HAND_BACK_SECONDS = 10.0
"""How long a connection taken by a SocketBody may take to be ready to go back to aiohttp
(the rest of a body its handler left unread received, the response sent) before it closes
instead. aiohttp lingers as long over an unread body."""

SOCKET_BODY = web.RequestKey("socket_body", object)
"""The SocketBody that took a request's connection over."""


@dataclass
class ConnectionHandBack:
    """Where connections taken over by a SocketBody go back once their body is in: the
    server's protocol factory (aiohttp's `web.Server`, set after the runner's setup). Without
    one, such a connection closes after its response."""

    protocol_factory: Callable[[], asyncio.BaseProtocol] | None = None


HAND_BACK = web.AppKey("hand_back", ConnectionHandBack)


def request_body(request: web.Request,
                 ends_upload: bool = True) -> AsyncIterable[bytes] | SocketBody:
    """The request body for storage: a SocketBody where one can take the connection over,
    else the pieces aiohttp parses (body_pieces).

    A body that does not end its upload (a PATCH) is taken only where its connection goes
    back to aiohttp afterwards: were it closed, the session's next chunk could reach another
    worker process, whose live hasher is not in step with the data (a re-hash at commit).
    """
    check_body_codings(request)
    if SocketBody.fits(request) and (ends_upload or _can_hand_back(request)) \
            and _RECEIVING.acquire(blocking=False):
        try:
            return SocketBody(request, slot=_RECEIVING)
        except BaseException:
            _RECEIVING.release()
            raise
    return body_pieces(request)


def check_body_codings(request: web.Request) -> None:
    """A body is taken as the bytes sent: TransferCodingUnsupported (501) for a transfer
    coding but chunked, which aiohttp decodes (gzip would be stored still encoded, RFC 9112
    §6.1), and ContentCodingUnsupported (415) for a Content-Encoding, which aiohttp would
    decode (a blob stored as other bytes than were sent, or a 500 for a body that is not
    what its header says)."""
    for field in request.headers.getall(hdrs.TRANSFER_ENCODING, ()):
        if any(c.strip().lower() not in ("chunked", "") for c in field.split(",")):
            raise TransferCodingUnsupported(detail={"Transfer-Encoding": field[:200]})
    for field in request.headers.getall(hdrs.CONTENT_ENCODING, ()):
        if any(c.strip().lower() not in ("identity", "") for c in field.split(",")):
            raise ContentCodingUnsupported(detail={"Content-Encoding": field[:200]})


def _can_hand_back(request: web.Request) -> bool:
    hand_back = request.app.get(HAND_BACK)
    return hand_back is not None and hand_back.protocol_factory is not None


class SocketBody:
    """A request body received straight into the reader's buffer (a storage Source).

    aiohttp copies each body byte twice before a handler sees it: into a bytes object per
    socket read, then into a slice per parsed piece, both on the event loop. A large body with
    a Content-Length on a plain TCP connection is taken over instead, as soon as the handler
    asks for it: what aiohttp has parsed so far is kept as the head, the payload stream is
    ended and the transport paused. A storage thread then receives the rest from a duplicate of
    the socket (`readinto`, waiting in poll(2)).

    aiohttp's parser still expects the body it never saw, so that connection cannot serve
    another request. Once the whole body is in and the response has left, the duplicate
    socket goes back to aiohttp as a new connection with a fresh parser (`hand_back`,
    `return_taken_connection`); the old transport closes its own descriptor only, so the
    client keeps its keep-alive connection. A body cut short closes the connection
    (`close_taken_connection`).
    """

    __slots__ = ("_left", "_head", "_sock", "_poll", "_lowat", "_lock", "_reading", "_closed",
                 "handed_back", "_idle_timeout", "_slot")

    def __init__(self, request: web.Request, idle_timeout: float = BODY_IDLE_TIMEOUT,
                 slot: threading.BoundedSemaphore | None = None) -> None:
        """Take the connection over (on the event loop). `slot`, acquired by the caller, is
        released once no thread needs to wait for this body: all in, or failed, or closed."""
        assert request.content_length is not None
        self._idle_timeout = idle_timeout
        self._slot = slot
        self._lock = threading.Lock()
        self._reading = False
        self._closed = False
        self.handed_back = False
        self._sock: socket.socket | None = None
        content = request.content
        pieces = []
        while piece := content.read_nowait():  # (this may resume the transport: paused below)
            pieces.append(piece)
        self._head = memoryview(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        self._left = max(request.content_length - len(self._head), 0)
        if not self._left:  # aiohttp had it all: the connection stays as it is
            self._release_slot()
            return
        transport = request.transport
        assert transport is not None
        content.feed_eof()
        transport.pause_reading()
        request[SOCKET_BODY] = self
        self._sock = transport.get_extra_info("socket").dup()
        self._lowat = min(RECV_LOWAT, self._left)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, self._lowat)
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)

    @staticmethod
    def fits(request: web.Request) -> bool:
        """A plain (no TLS, no Content-Encoding) body of a known, large length."""
        length = request.content_length
        transport = request.transport
        return (length is not None and length >= DIRECT_BODY_MIN
                and transport is not None
                and transport.get_extra_info("sslcontext") is None
                and transport.get_extra_info("socket") is not None
                and hdrs.CONTENT_ENCODING not in request.headers)

    def readinto(self, buf: memoryview) -> int:
        """Fill `buf` from the head, then from the socket (a worker thread calls this)."""
        return self._readinto(buf, self._idle_timeout)

    @property
    def received_all(self) -> bool:
        """Every body byte has been read (and nothing has failed)."""
        return not (self._head or self._left or self._closed)

    def discard_rest(self, seconds: float) -> bool:
        """Receive and drop what the handler left of the body (a worker thread calls this),
        as aiohttp lingers over an unread body, so that the client reads its response rather
        than a reset and the connection can go on. False if that takes over `seconds`, or the
        connection fails."""
        deadline = time.monotonic() + seconds
        scratch = memoryview(bytearray(RECV_LOWAT))
        try:
            while self._head or self._left:
                if (left := deadline - time.monotonic()) <= 0:
                    return False
                self._readinto(scratch, left)
        except OSError:  # TimeoutError and ConnectionError included
            return False
        return True

    def _readinto(self, buf: memoryview, idle_timeout: float) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        if not self._left:
            return 0
        with self._lock:
            if self._closed or self._sock is None:
                raise ConnectionAbortedError("the upload was cancelled")
            self._reading = True
            sock = self._sock
        received = False
        try:
            n = self._receive(sock, buf[:self._left], idle_timeout)
            self._left -= n
            if not self._left:  # all in: wake the next owner for any byte again
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
                with self._lock:
                    self._release_slot()
            received = True
        finally:
            with self._lock:
                self._reading = False
                self._closed = self._closed or not received  # a failed body cannot go on
                if self._closed:
                    self._release()
        return n

    def _receive(self, sock: socket.socket, view: memoryview, idle_timeout: float) -> int:
        if self._left < self._lowat:  # the last bytes: wake for what is left
            self._lowat = self._left
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, self._lowat)
        deadline = time.monotonic() + idle_timeout
        while True:
            try:
                n = sock.recv_into(view)
            except BlockingIOError:
                if self._closed:
                    raise ConnectionAbortedError("the upload was cancelled") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no body bytes for {idle_timeout:.0f} s "
                                       f"with {self._left} to come") from None
                self._poll.poll(_POLL_SECONDS * 1000)
                continue
            if not n:
                raise IncompleteBody(
                    f"the client ended the body with {self._left} of its bytes unsent")
            return n

    def close(self) -> None:
        """Stop (any thread): a blocked readinto gives up within _POLL_SECONDS."""
        with self._lock:
            self._closed = True
            if not self._reading:
                self._release()

    def hand_back(self) -> socket.socket | None:
        """The socket, once the whole body is in (on the event loop); None otherwise.

        The caller owns it from then on; `close` leaves it alone.
        """
        with self._lock:
            if self._closed or self._reading or self._head or self._left or self._sock is None:
                return None
            sock, self._sock = self._sock, None
            self._closed = self.handed_back = True
        self._poll.unregister(sock)
        return sock

    def _release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._release_slot()

    def _release_slot(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.release()


@web.middleware
async def return_taken_connection(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Send the response to a request whose body a SocketBody received, then give the
    connection back to aiohttp as a new one (the client's keep-alive connection lives on).

    Outermost middleware, so it sees every response, error responses included. The rest of
    a body the handler did not read (say, a chunk answered with 416) is received and dropped
    first. Where that fails, or the response does not leave within HAND_BACK_SECONDS,
    `close_taken_connection` closes the connection instead.
    """
    try:
        response = await handler(request)
    except BaseException:  # (a client gone: no response will close the body)
        if isinstance(body := request.get(SOCKET_BODY), SocketBody):
            body.close()
        raise
    body = request.get(SOCKET_BODY)
    if (not isinstance(body, SocketBody) or response.prepared or not request.keep_alive
            or not _can_hand_back(request)):
        return response  # (a client that asked to close gets its wish)
    transport = request.transport
    if transport is None or (not body.received_all and not await asyncio.get_running_loop(
            ).run_in_executor(_discarding, body.discard_rest, HAND_BACK_SECONDS)):
        return response
    sock = body.hand_back()
    if sock is None:
        return response
    try:
        await response.prepare(request)
        await response.write_eof()
        if not await _sent(transport):
            sock.close()
            response.force_close()
            return response
        factory = request.app[HAND_BACK].protocol_factory
        assert factory is not None
        await asyncio.get_running_loop().connect_accepted_socket(factory, sock)
    except BaseException:
        sock.close()
        raise
    # aiohttp closes its transport after this response: that closes its own descriptor
    # only, and the connection goes on through `sock`'s.
    response.force_close()
    return response


async def _sent(transport: asyncio.BaseTransport) -> bool:
    """Wait until the transport's write buffer is in the kernel (True), or give up."""
    assert isinstance(transport, asyncio.WriteTransport)
    deadline = time.monotonic() + HAND_BACK_SECONDS
    while transport.get_write_buffer_size():
        if transport.is_closing() or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.001)
    return not transport.is_closing()


async def close_taken_connection(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: a connection a SocketBody took over and did not hand back
    closes after the response (`Connection: close`), and the SocketBody's socket with it."""
    body = request.get(SOCKET_BODY)
    if isinstance(body, SocketBody) and not body.handed_back:
        body.close()
        response.force_close()  # aiohttp closes after sending; the header is already made:
        response.headers[hdrs.CONNECTION] = "close"


async def body_pieces(request: web.Request) -> AsyncIterator[bytes]:
    """The request body piece by piece as it arrives (never the whole body at once).

    `readchunk` hands over each received buffer as is, where `readany` would join whatever is
    queued into a new bytes object; storage batches the pieces into large writes itself.
    """
    transport = request.transport
    if transport is not None and getattr(transport, "max_size", BODY_READ_SIZE) < BODY_READ_SIZE:
        transport.max_size = BODY_READ_SIZE  # type: ignore[attr-defined]
    content = request.content
    while True:
        async with asyncio.timeout(BODY_IDLE_TIMEOUT):  # a stalled client: 408, as SocketBody
            data, _ = await content.readchunk()
        if data:
            yield data
        elif content.at_eof():
            return


class TooLarge(Exception):
    """The body went over the caller's limit; the caller picks the error code."""

    def __init__(self, size: int) -> None:
        super().__init__(f"body of at least {size} bytes is over the limit")
        self.size = size


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body if it is at most `limit` bytes, else TooLarge (read no further)."""
    check_body_codings(request)
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(request.content_length)
    data = bytearray()
    while True:
        async with asyncio.timeout(BODY_IDLE_TIMEOUT):  # a stalled client: 408, as uploads
            chunk = await request.content.read(65536)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            raise TooLarge(len(data))
