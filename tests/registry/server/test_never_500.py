"""Client mistakes of every shape get a 4xx answer, never a 500 (and never a partial object)."""

from __future__ import annotations

import os

import pytest

ODD_REQUESTS: list[tuple[str, str, dict[str, str], bytes]] = [
    ("PUT", "/v2/app/manifests/latest", {"Content-Type": "application/json"}, b"\xff\xfe\x00"),
    ("PUT", "/v2/app/manifests/latest", {}, b"[]"),
    ("PUT", "/v2/app/manifests/latest", {}, b'{"schemaVersion": 2, "layers": "x"}'),
    ("PUT", "/v2/app/manifests/latest", {}, b'{"schemaVersion": 2, "config": {"digest": 5}}'),
    ("PUT", "/v2/app/manifests/latest", {}, b'{"schemaVersion": 1, "fsLayers": []}'),
    ("PUT", "/v2/app/manifests/latest", {"Content-Type":
     "application/vnd.docker.distribution.manifest.v1+prettyjws"}, b"{}"),
    ("PUT", "/v2/app/manifests/latest", {}, b'{"schemaVersion": 2, "manifests": [{}]}'),
    ("PUT", "/v2/app/manifests/sha256:abc", {}, b"{}"),
    ("PUT", "/v2/app/manifests/deep", {}, b'{"schemaVersion": 2, "annotations": '
     + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("PUT", "/v2/app/manifests/deep", {}, b'{"schemaVersion": 2, "manifests": '
     + b'[{"a":' * 50_000 + b"0" + b"}]" * 50_000 + b"}"),
    ("PUT", "/v2/app/manifests/" + "t" * 200, {}, b"{}"),
    ("POST", "/v2/app/blobs/uploads/?digest=sha256:zz", {}, b"x"),
    ("POST", "/v2/app/blobs/uploads/?digest=", {}, b"x"),
    ("POST", "/v2/app/blobs/uploads/?mount=garbage&from=other", {}, b""),
    ("POST", "/v2/app/blobs/uploads/?mount=sha256:" + "0" * 64 + "&from=Bad..Name", {}, b""),
    ("PATCH", "/v2/app/blobs/uploads/../../etc", {}, b"x"),
    ("PATCH", "/v2/app/blobs/uploads/%2e%2e", {}, b"x"),
    ("PUT", "/v2/app/blobs/uploads/nothex?digest=sha256:" + "0" * 64, {}, b""),
    ("GET", "/v2/app/tags/list?n=99999999999999999999", {}, b""),
    ("GET", "/v2/app/tags/list?n=1e3", {}, b""),
    ("GET", "/v2/app/tags/list?n=" + "9" * 5000, {}, b""),
    ("GET", "/v2/app/tags/list?n=%C2%B2", {}, b""),
    ("GET", "/strata/v1/search?q=app&page=" + "9" * 5000, {}, b""),
    ("PUT", "/v2/app/manifests/huge", {}, b'{"schemaVersion": 2, "n": ' + b"1" * 5000 + b"}"),
    ("GET", "/v2/_catalog?n=-5", {}, b""),
    ("GET", "/v2/app/referrers/sha512:abc", {}, b""),
    ("GET", "/v2/app/referrers/not-a-digest", {}, b""),
    ("GET", "/v2/app/blobs/sha256:" + "0" * 63, {}, b""),
    ("GET", "/v2/app/blobs/" + "a" * 3000, {}, b""),
    ("GET", "/v2/" + "a/" * 200 + "b/manifests/latest", {}, b""),
    ("GET", "/v2/%00/manifests/latest", {}, b""),
    ("GET", "/v2/app/manifests/%00", {}, b""),
    ("DELETE", "/v2/app/manifests/", {}, b""),
    ("DELETE", "/v2/app/blobs/uploads/", {}, b""),
    ("HEAD", "/v2/app/manifests/sha256:" + "f" * 64, {}, b""),
    ("POST", "/v2/app/manifests/latest", {}, b"{}"),
    ("GET", "/v1/search?q=%22%22%22&n=x", {}, b""),
    ("GET", "/strata/v1/search?q=NEAR(a b)&page=-3", {}, b""),
    ("GET", "/strata/v1/search?q=" + "x" * 5000, {}, b""),
]


@pytest.mark.parametrize("method,path,headers,body", ODD_REQUESTS,
                         ids=[f"{m} {p[:50]}" for m, p, _, _ in ODD_REQUESTS])
async def test_odd_request_is_answered_without_500(reg, method: str, path: str,
                                                    headers: dict[str, str], body: bytes) -> None:
    await reg.push_image("app", "base")
    resp = await reg.request(method, path, headers=headers, data=body or None)
    assert resp.status < 500, (resp.status, await resp.text())
    assert resp.headers.get("Docker-Distribution-API-Version") == "registry/2.0"


async def test_bad_content_range_values_never_500(reg) -> None:
    for value in ("", "bytes", "a-b", "5-2", "0-", "-5", "0-99999999999999999999999", "0-9/10",
                  "\u00b2-3", "0-\u0669", "0-" + "9" * 5000, "9" * 5000 + "-" + "9" * 5001):
        resp = await reg.post("/v2/app/blobs/uploads/")
        location = resp.headers["Location"]
        resp = await reg.patch(location, data=b"0123456789", headers={"Content-Range": value})
        assert resp.status < 500, (value, resp.status)


async def test_failed_pushes_leave_nothing_visible(reg) -> None:
    data = os.urandom(10_000)
    wrong = reg.sha(b"something else")
    resp = await reg.post("/v2/partial/blobs/uploads/")
    location = resp.headers["Location"]
    resp = await reg.patch(location, data=data[:5000])
    resp = await reg.put(resp.headers["Location"], params={"digest": wrong}, data=data[5000:])
    assert resp.status == 400
    for digest in (wrong, reg.sha(data)):
        assert (await reg.head(f"/v2/partial/blobs/{digest}")).status == 404
    resp = await reg.get("/v2/partial/tags/list")
    assert resp.status == 404
    resp = await reg.get("/v2/_catalog")
    assert "partial" not in (await resp.json())["repositories"]
