"""Blob GET/HEAD/DELETE: Range, digests, repository scoping, deletes switched off."""

from __future__ import annotations

import asyncio
import os

import pytest


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
    ("bytes=950-5000", 950, 1000)])
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
