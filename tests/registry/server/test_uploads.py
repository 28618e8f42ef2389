"""Blob uploads: monolithic, POST+PUT, chunked PATCH, status, cancel, mounts, negatives."""

from __future__ import annotations

import os

import pytest


async def _start(reg, repo: str = "app") -> str:
    resp = await reg.post(f"/v2/{repo}/blobs/uploads/")
    assert resp.status == 202, await resp.text()
    assert resp.headers["Range"] == "0-0"
    assert resp.headers["Docker-Upload-UUID"]
    assert resp.headers["Location"].startswith(f"/v2/{repo}/blobs/uploads/")
    return resp.headers["Location"]


async def test_monolithic_post_with_digest_returns_201_and_location(reg) -> None:
    data = os.urandom(3000)
    digest = reg.sha(data)
    resp = await reg.post("/v2/app/blobs/uploads/", params={"digest": digest}, data=data)
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v2/app/blobs/{digest}"
    assert resp.headers["Docker-Content-Digest"] == digest
    got = await reg.get(resp.headers["Location"])
    assert await got.read() == data


async def test_post_without_the_trailing_slash_starts_a_session_too(reg) -> None:
    """distribution answers 301 there, which a client may follow as a GET; strata serves it."""
    resp = await reg.post("/v2/app/blobs/uploads", headers={"Content-Length": "0"})
    assert resp.status == 202
    assert resp.headers["Location"].startswith("/v2/app/blobs/uploads/")
    data = b"no slash"
    resp = await reg.post("/v2/app/blobs/uploads", params={"digest": reg.sha(data)}, data=data)
    assert resp.status == 201


async def test_post_then_put_with_whole_body(reg) -> None:
    data = os.urandom(70_000)
    location = await _start(reg)
    resp = await reg.put(location, params={"digest": reg.sha(data)}, data=data)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Docker-Content-Digest"] == reg.sha(data)
    assert resp.headers["Location"] == f"/v2/app/blobs/{reg.sha(data)}"


async def test_chunked_patches_then_put_without_body(reg) -> None:
    data = os.urandom(300_000)
    location = await _start(reg)
    for start in range(0, len(data), 100_000):
        chunk = data[start:start + 100_000]
        resp = await reg.patch(location, data=chunk, headers={
            "Content-Range": f"{start}-{start + len(chunk) - 1}",
            "Content-Type": "application/octet-stream"})
        assert resp.status == 202, await resp.text()
        assert resp.headers["Range"] == f"0-{start + len(chunk) - 1}"
        assert resp.headers["Docker-Upload-UUID"]
        location = resp.headers["Location"]
    resp = await reg.put(location, params={"digest": reg.sha(data)})
    assert resp.status == 201, await resp.text()
    got = await reg.get(f"/v2/app/blobs/{reg.sha(data)}")
    assert await got.read() == data


async def test_streamed_patch_without_content_range(reg) -> None:
    data = os.urandom(50_000)
    location = await _start(reg)
    resp = await reg.patch(location, data=data)
    assert resp.status == 202
    assert resp.headers["Range"] == f"0-{len(data) - 1}"
    resp = await reg.put(resp.headers["Location"], params={"digest": reg.sha(data)})
    assert resp.status == 201


async def test_put_with_final_chunk_after_patches(reg) -> None:
    data = os.urandom(20_000)
    location = await _start(reg)
    resp = await reg.patch(location, data=data[:12_000], headers={"Content-Range": "0-11999"})
    assert resp.status == 202
    resp = await reg.put(resp.headers["Location"], params={"digest": reg.sha(data)},
                         data=data[12_000:], headers={"Content-Range": "12000-19999"})
    assert resp.status == 201, await resp.text()
    got = await reg.get(f"/v2/app/blobs/{reg.sha(data)}")
    assert await got.read() == data


async def test_out_of_order_chunk_is_416_with_current_range(reg) -> None:
    location = await _start(reg)
    resp = await reg.patch(location, data=b"a" * 100, headers={"Content-Range": "0-99"})
    assert resp.status == 202
    location = resp.headers["Location"]
    resp = await reg.patch(location, data=b"b" * 100, headers={"Content-Range": "200-299"})
    assert resp.status == 416
    assert resp.headers["Range"] == "0-99"
    assert resp.headers["Location"]
    assert await reg.error_code(resp) == "BLOB_UPLOAD_INVALID"  # the spec has no RANGE_INVALID
    # The session survives and continues at the right offset.
    resp = await reg.patch(location, data=b"c" * 100, headers={"Content-Range": "100-199"})
    assert resp.status == 202
    assert resp.headers["Range"] == "0-199"


async def test_content_range_disagreeing_with_length_is_416(reg) -> None:
    location = await _start(reg)
    resp = await reg.patch(location, data=b"x" * 10, headers={"Content-Range": "0-99"})
    assert resp.status == 416


async def test_upload_status_is_204_with_range(reg) -> None:
    location = await _start(reg)
    resp = await reg.get(location)
    assert resp.status == 204
    assert resp.headers["Range"] == "0-0"
    resp = await reg.patch(location, data=b"z" * 10)
    resp = await reg.get(resp.headers["Location"])
    assert resp.status == 204
    assert resp.headers["Range"] == "0-9"
    assert resp.headers["Docker-Upload-UUID"]
    assert resp.headers["Location"]


async def test_cancel_upload_is_204_then_unknown(reg) -> None:
    location = await _start(reg)
    resp = await reg.delete(location)
    assert resp.status == 204
    resp = await reg.get(location)
    assert resp.status == 404
    assert await reg.error_code(resp) == "BLOB_UPLOAD_UNKNOWN"
    resp = await reg.delete(location)
    assert resp.status == 404


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
async def test_unknown_upload_id_is_404_blob_upload_unknown(reg, method: str) -> None:
    url = "/v2/app/blobs/uploads/00000000-0000-0000-0000-000000000000"
    params = {"digest": reg.sha(b"")} if method == "PUT" else None
    resp = await reg.request(method, url, params=params, data=b"" if method != "GET" else None)
    assert resp.status == 404
    assert await reg.error_code(resp) == "BLOB_UPLOAD_UNKNOWN"


async def test_second_finalize_of_same_upload_is_404(reg) -> None:
    data = b"finalize once"
    location = await _start(reg)
    resp = await reg.put(location, params={"digest": reg.sha(data)}, data=data)
    assert resp.status == 201
    resp = await reg.put(location, params={"digest": reg.sha(data)}, data=data)
    assert resp.status == 404
    assert await reg.error_code(resp) == "BLOB_UPLOAD_UNKNOWN"


async def test_digest_mismatch_at_put_is_400_and_nothing_is_visible(reg) -> None:
    data = b"the real bytes"
    claimed = reg.sha(b"other bytes")
    location = await _start(reg)
    resp = await reg.put(location, params={"digest": claimed}, data=data)
    assert resp.status == 400
    assert await reg.error_code(resp) == "DIGEST_INVALID"
    for digest in (claimed, reg.sha(data)):
        resp = await reg.head(f"/v2/app/blobs/{digest}")
        assert resp.status == 404


async def test_monolithic_digest_mismatch_is_400_and_nothing_is_visible(reg) -> None:
    claimed = reg.sha(b"not this")
    resp = await reg.post("/v2/app/blobs/uploads/", params={"digest": claimed}, data=b"this")
    assert resp.status == 400
    assert await reg.error_code(resp) == "DIGEST_INVALID"
    resp = await reg.head(f"/v2/app/blobs/{claimed}")
    assert resp.status == 404


async def test_put_without_digest_is_400_digest_invalid(reg) -> None:
    location = await _start(reg)
    resp = await reg.put(location, data=b"abc")
    assert resp.status == 400
    assert await reg.error_code(resp) == "DIGEST_INVALID"


async def test_put_with_unknown_digest_algorithm_is_400(reg) -> None:
    location = await _start(reg)
    resp = await reg.put(location, params={"digest": "crc32:0000"}, data=b"abc")
    assert resp.status == 400
    assert await reg.error_code(resp) == "DIGEST_INVALID"


async def test_cross_repository_mount_returns_201(reg) -> None:
    data = os.urandom(500)
    digest = await reg.push_blob("source", data)
    resp = await reg.post("/v2/target/blobs/uploads/",
                          params={"mount": digest, "from": "source"})
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v2/target/blobs/{digest}"
    assert resp.headers["Docker-Content-Digest"] == digest
    got = await reg.get(f"/v2/target/blobs/{digest}")
    assert await got.read() == data


async def test_mount_of_unknown_blob_starts_an_upload_session(reg) -> None:
    await reg.push_blob("source", b"x")
    resp = await reg.post("/v2/target/blobs/uploads/",
                          params={"mount": reg.sha(b"unknown"), "from": "source"})
    assert resp.status == 202
    assert resp.headers["Docker-Upload-UUID"]


async def test_mount_from_repository_without_the_blob_starts_a_session(reg) -> None:
    digest = await reg.push_blob("owner", b"owned")
    await reg.push_blob("empty", b"other")
    resp = await reg.post("/v2/target/blobs/uploads/",
                          params={"mount": digest, "from": "empty"})
    assert resp.status == 202


async def test_automatic_mount_without_from_when_blob_is_known(reg) -> None:
    digest = await reg.push_blob("source", b"shared layer")
    resp = await reg.post("/v2/target/blobs/uploads/", params={"mount": digest})
    assert resp.status == 201
    assert resp.headers["Docker-Content-Digest"] == digest


async def test_no_automatic_mount_of_a_blob_deleted_from_every_repository(reg) -> None:
    # Its bytes stay on disk until a garbage collection, but no repository offers them:
    # a mount without `from` must not bring them back (nor tell that they exist).
    digest = await reg.push_blob("source", b"withdrawn layer")
    assert (await reg.delete(f"/v2/source/blobs/{digest}")).status == 202
    resp = await reg.post("/v2/target/blobs/uploads/", params={"mount": digest})
    assert resp.status == 202
    assert (await reg.head(f"/v2/target/blobs/{digest}")).status == 404
    resp = await reg.post("/v2/target/blobs/uploads/",
                          params={"mount": digest, "from": "source"})
    assert resp.status == 202


async def test_upload_to_invalid_name_is_400(reg) -> None:
    resp = await reg.post("/v2/UPPER/blobs/uploads/")
    assert resp.status == 400
    assert await reg.error_code(resp) == "NAME_INVALID"


async def test_patch_and_monolithic_post_with_chunked_transfer_encoding(reg) -> None:
    data = os.urandom(200_000)

    async def stream():  # noqa: ANN202 - no Content-Length: Transfer-Encoding: chunked
        for start in range(0, len(data), 30_000):
            yield data[start:start + 30_000]

    location = await _start(reg)
    resp = await reg.patch(location, data=stream())
    assert resp.status == 202, await resp.text()
    assert resp.headers["Range"] == f"0-{len(data) - 1}"
    resp = await reg.put(resp.headers["Location"], params={"digest": reg.sha(data)})
    assert resp.status == 201
    other = data[::-1]
    resp = await reg.post("/v2/app/blobs/uploads/", params={"digest": reg.sha(other)},
                          data=(other[i:i + 50_000] async for i in _aiter(range(0, len(other),
                                                                               50_000))))
    assert resp.status == 201, await resp.text()
    got = await reg.get(f"/v2/app/blobs/{reg.sha(other)}")
    assert await got.read() == other


async def _aiter(items):  # noqa: ANN202
    for item in items:
        yield item
