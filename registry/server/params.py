"""Request parsing shared by the handlers: names, digests, pagination, ranges, body streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from registry.oci.digest import Digest
from registry.oci.errors import (
    DigestInvalid,
    NameInvalid,
    PaginationInvalid,
    RangeInvalid,
    Unsupported,
)
from registry.oci.reference import validate_name

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


def pagination(request: web.Request) -> tuple[int | None, str | None]:
    """`n` and `last` from the query; PAGINATION_NUMBER_INVALID for a bad `n`."""
    raw_n = request.query.get("n")
    n: int | None = None
    if raw_n is not None and raw_n != "":
        try:
            n = int(raw_n)
        except ValueError:
            raise PaginationInvalid(f"n={raw_n!r} is not a number", detail={"n": raw_n}) from None
        if n < 0 or n > MAX_PAGE:
            raise PaginationInvalid(f"n must be between 0 and {MAX_PAGE}", detail={"n": n})
    last = request.query.get("last") or None
    return n, last


def content_range_start(request: web.Request) -> int | None:
    """The start offset of a PATCH/PUT `Content-Range: <start>-<end>` header, or None.

    The end must agree with Content-Length when both are given; a malformed header is
    RANGE_INVALID (416), as distribution answers.
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
    if not sep or not start_s.isdigit() or not end_s.isdigit():
        raise RangeInvalid(f"malformed Content-Range {header!r}")
    start, end = int(start_s), int(end_s)
    if end < start:
        raise RangeInvalid(f"Content-Range end before start: {header!r}")
    length = request.content_length
    if length is not None and length != end - start + 1:
        raise RangeInvalid(f"Content-Range {header!r} does not match Content-Length {length}")
    return start


def range_header(offset: int) -> str:
    """The `Range` value for an upload holding `offset` bytes (distribution writes 0-0 at 0)."""
    return f"0-{max(offset - 1, 0)}"


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
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(request.content_length)
    data = bytearray()
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            raise TooLarge(len(data))
