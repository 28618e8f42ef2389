"""Blob GET/HEAD/DELETE: Range, digests, repository scoping, deletes switched off."""

from __future__ import annotations

import asyncio
import os

import pytest
from multidict import CIMultiDict

from registry.server.ranges import decide


async def test_get_blob_returns_bytes_with_digest_and_length(reg) -> None:
    data = os.urandom(5000)
    digest = await reg.push_blob("lib/app", data)
    resp = await reg.get(f"/v2/lib/app/blobs/{digest}")
    assert resp.status == 200
    assert await resp.read() == data
    assert resp.headers["Docker-Content-Digest"] == digest
    assert resp.headers["Content-Length"] == "5000"
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_head_blob_has_length_and_no_body(reg) -> None:
    data = os.urandom(1234)
    digest = await reg.push_blob("app", data)
    resp = await reg.head(f"/v2/app/blobs/{digest}")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == "1234"
    assert resp.headers["Docker-Content-Digest"] == digest
    assert await resp.read() == b""


async def test_range_request_returns_206_with_content_range(reg) -> None:
    data = os.urandom(1000)
    digest = await reg.push_blob("app", data)
    resp = await reg.get(f"/v2/app/blobs/{digest}", headers={"Range": "bytes=100-199"})
    assert resp.status == 206
    assert await resp.read() == data[100:200]
    assert resp.headers["Content-Range"] == "bytes 100-199/1000"


@pytest.mark.parametrize("header,start,stop", [
    ("bytes=900-", 900, 1000), ("bytes=-100", 900, 1000), ("bytes=0-0", 0, 1),
    ("bytes=950-5000", 950, 1000), ("bytes=-" + "9" * 5000, 0, 1000),
    ("bytes=10-" + "9" * 5000, 10, 1000)])
async def test_open_and_suffix_ranges(reg, header: str, start: int, stop: int) -> None:
    data = os.urandom(1000)
    digest = await reg.push_blob("app", data)
    resp = await reg.get(f"/v2/app/blobs/{digest}", headers={"Range": header})
    assert resp.status == 206
    assert await resp.read() == data[start:stop]
    assert resp.headers["Content-Range"] == f"bytes {start}-{stop - 1}/1000"


async def test_unsatisfiable_range_is_416_not_500(reg) -> None:
    digest = await reg.push_blob("app", b"abc")
    resp = await reg.get(f"/v2/app/blobs/{digest}", headers={"Range": "bytes=10-20"})
    assert resp.status == 416
    # (int() refuses more than 4,300 digits: such a position is past any blob)
    resp = await reg.get(f"/v2/app/blobs/{digest}", headers={"Range": "bytes=" + "9" * 5000 + "-"})
    assert resp.status == 416


async def test_unknown_blob_is_404_blob_unknown(reg) -> None:
    await reg.push_blob("app", b"something")
    resp = await reg.get(f"/v2/app/blobs/{reg.sha(b'never pushed')}")
    assert resp.status == 404
    assert await reg.error_code(resp) == "BLOB_UNKNOWN"


async def test_blob_is_not_served_through_a_repository_that_does_not_reference_it(reg) -> None:
    digest = await reg.push_blob("owner", b"private bytes")
    await reg.push_blob("stranger", b"other bytes")
    resp = await reg.get(f"/v2/stranger/blobs/{digest}")
    assert resp.status == 404
    assert await reg.error_code(resp) == "BLOB_UNKNOWN"
    resp = await reg.head(f"/v2/stranger/blobs/{digest}")
    assert resp.status == 404


async def test_malformed_digest_is_400_digest_invalid(reg) -> None:
    resp = await reg.get("/v2/app/blobs/sha256:nothex")
    assert resp.status == 400
    assert await reg.error_code(resp) == "DIGEST_INVALID"


async def test_unknown_digest_algorithm_is_400_digest_invalid(reg) -> None:
    resp = await reg.get("/v2/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e")
    assert resp.status == 400
    assert await reg.error_code(resp) == "DIGEST_INVALID"


async def test_delete_blob_returns_202_then_blob_is_gone(reg) -> None:
    digest = await reg.push_blob("app", b"delete me")
    resp = await reg.delete(f"/v2/app/blobs/{digest}")
    assert resp.status == 202
    resp = await reg.get(f"/v2/app/blobs/{digest}")
    assert resp.status == 404
    assert await reg.error_code(resp) == "BLOB_UNKNOWN"


async def test_delete_unknown_blob_is_404(reg) -> None:
    await reg.push_blob("app", b"x")
    resp = await reg.delete(f"/v2/app/blobs/{reg.sha(b'nope')}")
    assert resp.status == 404
    assert await reg.error_code(resp) == "BLOB_UNKNOWN"


async def test_delete_when_disabled_is_405_unsupported(make_reg) -> None:
    reg = await make_reg(delete_enabled=False)
    digest = await reg.push_blob("app", b"keep me")
    resp = await reg.delete(f"/v2/app/blobs/{digest}")
    assert resp.status == 405
    assert await reg.error_code(resp) == "UNSUPPORTED"
    resp = await reg.get(f"/v2/app/blobs/{digest}")
    assert resp.status == 200


async def test_invalid_repository_names_are_400_name_invalid(reg) -> None:
    digest = reg.sha(b"x")
    for name in ("Upper/case", "a..b", "-lead", "a//b", "x" * 256):
        resp = await reg.get(f"/v2/{name}/blobs/{digest}")
        assert resp.status == 400, name
        assert await reg.error_code(resp) == "NAME_INVALID", name


async def _raw_get(reg, path: str) -> tuple[int, bytes]:
    """Send `path` byte for byte (HTTP clients would normalize the dot segments away)."""
    reader, writer = await asyncio.open_connection(reg.client.host, reg.client.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_dot_dot_path_component_never_reaches_another_repository(reg) -> None:
    digest = await reg.push_blob("secret", b"classified")
    for path in (f"/v2/public/../secret/blobs/{digest}",
                 f"/v2/public/%2E%2E/secret/blobs/{digest}",
                 f"/v2/../v2/secret/blobs/{digest}",
                 f"/v2/secret/./blobs/{digest}"):
        status, body = await _raw_get(reg, path)
        assert status == 400, path
        assert b"NAME_INVALID" in body
        assert b"classified" not in body


async def test_nested_repository_names_work(reg) -> None:
    data = b"nested"
    digest = await reg.push_blob("a/b/c/d", data)
    resp = await reg.get(f"/v2/a/b/c/d/blobs/{digest}")
    assert resp.status == 200
    assert await resp.read() == data


# Range and conditional requests (RFC 9110 §13, §14): the digest is the blob's one ETag.

def _etag(digest: str) -> str:
    return f'"{digest}"'


async def _assert_whole_blob(resp, data: bytes, method: str) -> None:
    assert resp.status == 200
    assert "Content-Range" not in resp.headers
    assert resp.headers["Content-Length"] == str(len(data))
    assert await resp.read() == (data if method == "GET" else b"")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("header", ["bytes=0-4,10-14", "bytes=0-4, 900-", "items=0-4",
                                    "bytes=5-2", "bytes=abc", "bytes=-"])
async def test_range_that_is_not_one_byte_range_is_ignored_with_the_whole_blob(
        reg, method: str, header: str) -> None:
    data = os.urandom(1000)
    digest = await reg.push_blob("app", data)
    resp = await reg.request(method, f"/v2/app/blobs/{digest}", headers={"Range": header})
    await _assert_whole_blob(resp, data, method)
    assert resp.headers["ETag"] == _etag(digest)


async def test_range_unit_is_case_insensitive(reg) -> None:
    data = os.urandom(100)
    digest = await reg.push_blob("app", data)
    resp = await reg.get(f"/v2/app/blobs/{digest}", headers={"Range": "Bytes=10-19"})
    assert resp.status == 206
    assert await resp.read() == data[10:20]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("header", ["bytes=-0", "bytes=1000-", "bytes=1000-1000"])
async def test_unsatisfiable_range_is_416_with_the_size_and_the_digest_etag(
        reg, method: str, header: str) -> None:
    digest = await reg.push_blob("app", os.urandom(1000))
    resp = await reg.request(method, f"/v2/app/blobs/{digest}", headers={"Range": header})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == "bytes */1000"
    assert resp.headers["ETag"] == _etag(digest)
    assert resp.headers["Docker-Content-Digest"] == digest


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_if_range_with_the_digest_etag_serves_the_range(reg, method: str) -> None:
    data = os.urandom(1000)
    digest = await reg.push_blob("app", data)
    resp = await reg.request(method, f"/v2/app/blobs/{digest}",
                             headers={"Range": "bytes=10-19", "If-Range": _etag(digest)})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == "bytes 10-19/1000"
    assert resp.headers["Content-Length"] == "10"
    assert await resp.read() == (data[10:20] if method == "GET" else b"")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("if_range", ['"sha256:0000"', "W/{etag}", '"1234-abcd"',
                                      "Wed, 21 Oct 2015 07:28:00 GMT",
                                      "Fri, 01 Jan 2100 00:00:00 GMT"])
async def test_if_range_that_does_not_match_ignores_the_range(
        reg, method: str, if_range: str) -> None:
    """A weak tag never matches (strong comparison); we send no Last-Modified, so no date
    matches either."""
    data = os.urandom(1000)
    digest = await reg.push_blob("app", data)
    resp = await reg.request(method, f"/v2/app/blobs/{digest}", headers={
        "Range": "bytes=10-19", "If-Range": if_range.format(etag=_etag(digest))})
    await _assert_whole_blob(resp, data, method)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("extra", [{}, {"Range": "bytes=0-9"}])
async def test_every_blob_answer_carries_the_digest_etag_and_no_last_modified(
        reg, method: str, extra: dict[str, str]) -> None:
    digest = await reg.push_blob("app", os.urandom(100))
    resp = await reg.request(method, f"/v2/app/blobs/{digest}", headers=extra)
    assert resp.status == (206 if extra else 200)
    assert resp.headers["ETag"] == _etag(digest)
    assert resp.headers["Docker-Content-Digest"] == digest
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert "Last-Modified" not in resp.headers


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("if_none_match", ["{etag}", "W/{etag}", "*", '"other", {etag}'])
async def test_if_none_match_with_the_digest_etag_is_304(
        reg, method: str, if_none_match: str) -> None:
    digest = await reg.push_blob("app", os.urandom(100))
    resp = await reg.request(method, f"/v2/app/blobs/{digest}", headers={
        "If-None-Match": if_none_match.format(etag=_etag(digest)), "Range": "bytes=0-9"})
    assert resp.status == 304
    assert resp.headers["ETag"] == _etag(digest)
    assert resp.headers["Docker-Content-Digest"] == digest
    assert await resp.read() == b""


async def test_if_none_match_with_another_etag_sends_the_blob(reg) -> None:
    data = os.urandom(100)
    digest = await reg.push_blob("app", data)
    resp = await reg.get(f"/v2/app/blobs/{digest}", headers={"If-None-Match": '"1234-abcd"'})
    await _assert_whole_blob(resp, data, "GET")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("if_match", ['"1234-abcd"', "W/{etag}"])
async def test_if_match_without_the_digest_etag_is_412(reg, method: str, if_match: str) -> None:
    """If-Match compares strongly: a weak tag never matches."""
    digest = await reg.push_blob("app", os.urandom(100))
    resp = await reg.request(method, f"/v2/app/blobs/{digest}", headers={
        "If-Match": if_match.format(etag=_etag(digest)), "Range": "bytes=0-9"})
    assert resp.status == 412
    assert resp.headers["ETag"] == _etag(digest)
    assert resp.headers["Docker-Content-Digest"] == digest


@pytest.mark.parametrize("if_match", ["{etag}", "*", '"other", {etag}'])
async def test_if_match_with_the_digest_etag_serves_the_range(reg, if_match: str) -> None:
    data = os.urandom(100)
    digest = await reg.push_blob("app", data)
    resp = await reg.get(f"/v2/app/blobs/{digest}", headers={
        "If-Match": if_match.format(etag=_etag(digest)), "Range": "bytes=0-9"})
    assert resp.status == 206
    assert await resp.read() == data[:10]


@pytest.mark.parametrize("headers,status,span", [
    ({}, 200, (0, 10)),
    ({"Range": "bytes=2-3"}, 206, (2, 4)),
    ({"Range": "bytes=-3"}, 206, (7, 10)),
    ({"Range": "bytes= 2-3 ,"}, 206, (2, 4)),  # empty list elements are allowed
    ({"Range": "bytes=²-3"}, 200, (0, 10)),  # not an ASCII digit
    ({"Range": "bytes=10-"}, 416, (0, 0)),
    ({"If-Match": '"sha256:ab"', "If-None-Match": '"sha256:ab"'}, 304, (0, 0)),
    ({"If-Match": '"x"', "If-None-Match": '"sha256:ab"'}, 412, (0, 0)),  # If-Match first
    ({"If-None-Match": '"x"', "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
     200, (0, 10)),  # no Last-Modified: date conditions are ignored
    ({"If-Unmodified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"}, 200, (0, 10)),
])
def test_decide_follows_rfc_9110_precedence(headers: dict[str, str], status: int,
                                            span: tuple[int, int]) -> None:
    reply = decide(CIMultiDict(headers), 10, "sha256:ab")
    assert (reply.status, reply.start, reply.stop) == (status, *span)


def test_decide_on_an_empty_blob_sends_it_whole_for_a_suffix_range() -> None:
    assert decide(CIMultiDict({"Range": "bytes=-5"}), 0, "sha256:ab").status == 200
    assert decide(CIMultiDict({"Range": "bytes=0-"}), 0, "sha256:ab").status == 416


def test_decide_joins_header_lines_into_one_list() -> None:
    headers = CIMultiDict([("If-None-Match", '"x"'), ("If-None-Match", '"sha256:ab"')])
    assert decide(headers, 10, "sha256:ab").status == 304
