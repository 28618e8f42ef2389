"""Manifests: PUT/GET/HEAD/DELETE by tag and digest for the four types, and the negatives."""

from __future__ import annotations

import gzip
import json
import os
import threading

import pytest

from registry.oci import manifest as manifest_module
from registry.oci import mediatypes as mt
from registry.oci.manifest import OFF_LOOP_BYTES
from registry.server.manifests import MAX_TAGS_PER_PUT


async def _manifest_over_pushed_blobs(reg, config: bytes = b"{}", layer: bytes = b"l") -> bytes:
    """An OCI image manifest (not yet put) whose config and one layer are pushed to `app`."""
    await reg.push_blob("app", config)
    await reg.push_blob("app", layer)
    return reg.image_manifest(config, [layer])


@pytest.mark.parametrize("media_type", [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])
async def test_put_image_manifest_then_get_by_tag_and_digest(reg, media_type: str) -> None:
    image = await reg.push_image("lib/app", "v1", media_type=media_type)
    for ref in ("v1", image.digest):
        resp = await reg.get(f"/v2/lib/app/manifests/{ref}",
                             headers={"Accept": media_type})
        assert resp.status == 200
        assert await resp.read() == image.manifest
        assert resp.headers["Content-Type"] == media_type
        assert resp.headers["Docker-Content-Digest"] == image.digest
        assert resp.headers["Content-Length"] == str(len(image.manifest))


async def test_put_returns_201_location_and_digest(reg) -> None:
    body = await _manifest_over_pushed_blobs(reg, b'{"a":1}', os.urandom(100))
    resp = await reg.put_manifest("app", "latest", body)
    assert resp.status == 201
    digest = reg.sha(body)
    assert resp.headers["Docker-Content-Digest"] == digest
    assert resp.headers["Location"] == f"/v2/app/manifests/{digest}"
    assert "OCI-Subject" not in resp.headers


async def test_head_manifest_has_headers_and_no_body(reg) -> None:
    image = await reg.push_image("app", "v1")
    resp = await reg.head("/v2/app/manifests/v1")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(image.manifest))
    assert resp.headers["Docker-Content-Digest"] == image.digest
    assert resp.headers["Content-Type"] == mt.OCI_MANIFEST
    assert await resp.read() == b""


@pytest.mark.parametrize("index_type,child_type", [
    (mt.OCI_INDEX, mt.OCI_MANIFEST), (mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST)])
async def test_index_put_and_get_keeps_exact_bytes(reg, index_type: str, child_type: str) -> None:
    amd = await reg.push_image("multi", None, media_type=child_type, arch="amd64")
    arm = await reg.push_image("multi", None, media_type=child_type, arch="arm64")
    index = json.dumps({
        "schemaVersion": 2, "mediaType": index_type,
        "manifests": [
            {"mediaType": child_type, "digest": amd.digest, "size": len(amd.manifest),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": child_type, "digest": arm.digest, "size": len(arm.manifest),
             "platform": {"architecture": "arm64", "os": "linux"}},
        ]}, indent=3).encode()
    resp = await reg.put_manifest("multi", "latest", index, index_type)
    assert resp.status == 201, await resp.text()
    resp = await reg.get("/v2/multi/manifests/latest")
    assert await resp.read() == index
    assert resp.headers["Content-Type"] == index_type
    assert resp.headers["Docker-Content-Digest"] == reg.sha(index)


async def test_buildkit_registry_cache_index_listing_blobs_is_accepted(reg) -> None:
    """BuildKit's --cache-to type=registry (image-manifest=false, its default before v0.21)
    pushes an index whose entries are its layers and cache config, not manifests;
    distribution takes it. Entries must still be content of the repository."""
    layer = gzip.compress(os.urandom(1000))
    config = json.dumps({"layers": [{"blob": reg.sha(layer), "parent": -1}]}).encode()
    await reg.push_blob("ci/cache", layer)
    await reg.push_blob("ci/cache", config)
    entries = [{"mediaType": mt.OCI_LAYER_GZIP, "digest": reg.sha(layer), "size": len(layer),
                "annotations": {"buildkit/createdat": "2024-01-01T00:00:00Z"}},
               {"mediaType": "application/vnd.buildkit.cacheconfig.v0",
                "digest": reg.sha(config), "size": len(config)}]
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                        "manifests": entries}).encode()
    resp = await reg.put_manifest("ci/cache", "main", index, mt.OCI_INDEX)
    assert resp.status == 201, await resp.text()
    assert await (await reg.get("/v2/ci/cache/manifests/main")).read() == index
    missing = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {**entries[0], "digest": reg.sha(b"never pushed")}]}).encode()
    resp = await reg.put_manifest("ci/cache", "broken", missing, mt.OCI_INDEX)
    assert resp.status == 404
    assert await reg.error_code(resp) == "MANIFEST_BLOB_UNKNOWN"
    resp = await reg.put_manifest("other", "main", index, mt.OCI_INDEX)  # not its content
    assert resp.status == 404


async def test_index_with_unknown_child_is_manifest_blob_unknown(reg) -> None:
    await reg.push_image("multi", "base")
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": reg.sha(b"missing"), "size": 7}]}).encode()
    resp = await reg.put_manifest("multi", "latest", index, mt.OCI_INDEX)
    assert resp.status == 404
    assert await reg.error_code(resp) == "MANIFEST_BLOB_UNKNOWN"


async def test_manifest_with_missing_layer_is_manifest_blob_unknown(reg) -> None:
    config = b"{}"
    await reg.push_blob("app", config)
    body = reg.image_manifest(config, [b"layer never pushed"])
    resp = await reg.put_manifest("app", "latest", body)
    assert resp.status == 404
    assert await reg.error_code(resp) == "MANIFEST_BLOB_UNKNOWN"
    resp = await reg.get("/v2/app/manifests/latest")
    assert resp.status == 404


async def test_malformed_json_is_400_manifest_invalid(reg) -> None:
    resp = await reg.put_manifest("app", "latest", b'{"schemaVersion": 2, "config": ')
    assert resp.status == 400
    assert await reg.error_code(resp) == "MANIFEST_INVALID"


async def test_unknown_media_type_is_400_manifest_invalid(reg) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/x-unknown+json",
                       "config": {}, "layers": []}).encode()
    resp = await reg.put_manifest("app", "latest", body, "application/x-unknown+json")
    assert resp.status == 400
    assert await reg.error_code(resp) == "MANIFEST_INVALID"


async def test_content_type_disagreeing_with_body_is_400(reg) -> None:
    body = await _manifest_over_pushed_blobs(reg)
    resp = await reg.put_manifest("app", "latest", body, mt.DOCKER_MANIFEST)
    assert resp.status == 400
    assert await reg.error_code(resp) == "MANIFEST_INVALID"


async def test_digest_reference_not_matching_body_is_400_digest_invalid(reg) -> None:
    body = await _manifest_over_pushed_blobs(reg)
    resp = await reg.put_manifest("app", reg.sha(b"other"), body)
    assert resp.status == 400
    assert await reg.error_code(resp) == "DIGEST_INVALID"
    resp = await reg.get(f"/v2/app/manifests/{reg.sha(body)}")
    assert resp.status == 404


async def test_put_by_digest_reference(reg) -> None:
    body = await _manifest_over_pushed_blobs(reg)
    resp = await reg.put_manifest("app", reg.sha(body), body)
    assert resp.status == 201
    resp = await reg.get(f"/v2/app/manifests/{reg.sha(body)}")
    assert await resp.read() == body


def _padded_manifest(config_digest: str, size: int) -> bytes:
    """An OCI manifest of exactly `size` bytes (an annotation pads it)."""
    def body(pad: int) -> bytes:
        return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                           "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest,
                                      "size": 2},
                           "layers": [], "annotations": {"pad": "x" * pad}}).encode()
    data = body(size - len(body(0)))
    assert len(data) == size
    return data


async def test_manifest_over_4_mib_is_413_and_4_mib_is_accepted(reg) -> None:
    """The spec: SHOULD answer 413 over the limit, and expect pushes of at least 4 MB."""
    config = b"{}"
    await reg.push_blob("app", config)
    limit = 4 * 1024 * 1024
    resp = await reg.put_manifest("app", "big", _padded_manifest(reg.sha(config), limit + 1))
    assert resp.status == 413
    assert await reg.error_code(resp) == "MANIFEST_INVALID"
    resp = await reg.get("/v2/app/manifests/big")
    assert resp.status == 404
    resp = await reg.put_manifest("app", "big", _padded_manifest(reg.sha(config), limit))
    assert resp.status == 201


async def test_docker_schema1_manifest_is_400_manifest_invalid(reg) -> None:
    """As distribution answers with schema 1 off (not a 405: the endpoint takes PUTs)."""
    for media_type in (mt.DOCKER_MANIFEST_V1, mt.DOCKER_MANIFEST_V1_SIGNED):
        resp = await reg.put_manifest("app", "old", b'{"schemaVersion": 1}', media_type)
        assert resp.status == 400
        assert await reg.error_code(resp) == "MANIFEST_INVALID"
        assert "schema 1" in (await resp.json())["errors"][0]["message"]


async def test_put_with_tag_query_answers_oci_tag_headers(reg) -> None:
    body = await _manifest_over_pushed_blobs(reg)
    digest = reg.sha(body)
    resp = await reg.put_manifest("app", digest, body, params=[("tag", "a"), ("tag", "b")])
    assert resp.status == 201, await resp.text()
    assert sorted(resp.headers.getall("OCI-Tag")) == ["a", "b"]
    for tag in ("a", "b"):
        resp = await reg.head(f"/v2/app/manifests/{tag}")
        assert resp.headers["Docker-Content-Digest"] == digest


async def test_tags_of_one_put_are_distinct_and_bounded(reg) -> None:
    # One OCI-Tag header per tag: 200 tags made an answer no client would read (aiohttp
    # takes 128 header lines, Go's net/http a megabyte of them).
    body = await _manifest_over_pushed_blobs(reg)
    digest = reg.sha(body)
    resp = await reg.put_manifest("app", digest, body,
                                  params=[("tag", "a"), ("tag", "a"), ("tag", "b")])
    assert resp.headers.getall("OCI-Tag") == ["a", "b"]
    too_many = [("tag", f"t{i}") for i in range(MAX_TAGS_PER_PUT + 1)]
    resp = await reg.put_manifest("app", digest, body, params=too_many)
    assert resp.status == 400
    assert await reg.error_code(resp) == "MANIFEST_INVALID"
    assert await (await reg.get("/v2/app/tags/list")).json() == {"name": "app",
                                                                 "tags": ["a", "b"]}
    resp = await reg.put_manifest("app", digest, body, params=too_many[:-1])
    assert len(resp.headers.getall("OCI-Tag")) == MAX_TAGS_PER_PUT


_MD5 = "md5:" + "0" * 32


@pytest.mark.parametrize("path,value", [
    (("annotations",), {"created": 12345}),
    (("annotations",), {"list": ["a"]}),
    (("artifactType",), 7),
    (("schemaVersion",), 2.0),
    (("schemaVersion",), True),
    (("layers", 0, "size"), 10 ** 30),
    (("layers", 0, "urls"), 5),
    (("layers", 0, "urls"), [1]),
    (("layers", 0, "artifactType"), ["x"]),
    (("layers", 0, "annotations"), {"a": None}),
    (("layers", 0, "digest"), _MD5),
    (("config", "digest"), _MD5),
    (("subject",), {"mediaType": mt.OCI_MANIFEST, "digest": _MD5, "size": 1}),
    (("layers", 0, "platform"), {"os": "linux", "architecture": "amd64", "os.features": True}),
    (("layers", 0, "platform"), {"os": "linux", "architecture": "amd64", "variant": 8}),
    (("annotations",), {"a": "\ud800"}),
    (("artifactType",), "\udfff"),
    (("config", "mediaType"), "application/x\ud800"),
])
async def test_a_field_of_the_wrong_type_is_400_manifest_invalid(reg, path: tuple, value) -> None:
    """Every field is checked against the image spec's types (a fuzzing review found
    TypeErrors, 500s, and non-string annotations served on by the referrers API), and an
    unknown digest algorithm inside a manifest is a bad manifest (it was 405)."""
    body = json.loads(await _manifest_over_pushed_blobs(reg))
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    resp = await reg.put_manifest("app", "odd", json.dumps(body).encode())
    assert resp.status == 400, await resp.text()
    assert await reg.error_code(resp) == "MANIFEST_INVALID"
    assert (await reg.head("/v2/app/manifests/odd")).status == 404


async def test_an_emoji_escaped_as_a_surrogate_pair_is_text(reg) -> None:
    body = json.loads(await _manifest_over_pushed_blobs(reg))
    body["annotations"] = {"org.opencontainers.image.title": "\U0001F600"}
    data = json.dumps(body).encode()  # ASCII only: "\\ud83d\\ude00"
    assert b"\\ud83d\\ude00" in data
    assert (await reg.put_manifest("app", "emoji", data)).status == 201


async def test_invalid_tag_is_400_manifest_invalid(reg) -> None:
    """distribution says TAG_INVALID, which is not one of the spec's codes."""
    for tag in ("-bad", "x" * 129):
        resp = await reg.put_manifest("app", tag, b"{}")
        assert resp.status == 400
        assert await reg.error_code(resp) == "MANIFEST_INVALID"
        assert "invalid tag" in (await resp.json())["errors"][0]["message"]


async def test_unknown_manifest_is_404_manifest_unknown(reg) -> None:
    await reg.push_image("app", "v1")
    for ref in ("nope", reg.sha(b"nope")):
        resp = await reg.get(f"/v2/app/manifests/{ref}")
        assert resp.status == 404
        assert await reg.error_code(resp) in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")


async def test_a_reference_that_is_no_valid_tag_names_no_manifest_404(reg) -> None:
    """The spec's conformance tests read `.INVALID_MANIFEST_NAME` and want 404 (only a PUT
    of such a tag is 400 MANIFEST_INVALID)."""
    await reg.push_image("app", "v1")
    for ref in (".INVALID_MANIFEST_NAME", "-bad", "x" * 129):
        for method in ("GET", "HEAD", "DELETE"):
            resp = await reg.request(method, f"/v2/app/manifests/{ref}")
            assert resp.status == 404, (method, ref)
            if method != "HEAD":
                assert await reg.error_code(resp) == "MANIFEST_UNKNOWN"


async def test_manifest_in_unknown_repository_is_404(reg) -> None:
    resp = await reg.get("/v2/never/pushed/manifests/latest")
    assert resp.status == 404
    assert await reg.error_code(resp) in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN")


async def test_invalid_names_are_400_name_invalid(reg) -> None:
    for name in ("UPPER", "a..b", "a/-b"):
        resp = await reg.get(f"/v2/{name}/manifests/latest")
        assert resp.status == 400
        assert await reg.error_code(resp) == "NAME_INVALID"


async def test_tag_moves_to_a_new_manifest(reg) -> None:
    first = await reg.push_image("app", "latest")
    resp = await reg.get("/v2/app/manifests/latest")
    assert resp.headers["Docker-Content-Digest"] == first.digest
    second = await reg.push_image("app", "latest")
    resp = await reg.get("/v2/app/manifests/latest")
    assert resp.headers["Docker-Content-Digest"] == second.digest
    resp = await reg.get(f"/v2/app/manifests/{first.digest}")
    assert resp.status == 200


async def test_delete_by_tag_keeps_the_manifest(reg) -> None:
    image = await reg.push_image("app", "v1")
    resp = await reg.delete("/v2/app/manifests/v1")
    assert resp.status == 202
    assert (await reg.get("/v2/app/manifests/v1")).status == 404
    assert (await reg.get(f"/v2/app/manifests/{image.digest}")).status == 200


async def test_delete_by_digest_removes_manifest_and_its_tags(reg) -> None:
    image = await reg.push_image("app", "v1")
    resp = await reg.delete(f"/v2/app/manifests/{image.digest}")
    assert resp.status == 202
    for ref in ("v1", image.digest):
        resp = await reg.get(f"/v2/app/manifests/{ref}")
        assert resp.status == 404
        assert await reg.error_code(resp) == "MANIFEST_UNKNOWN"


async def test_delete_unknown_manifest_is_404(reg) -> None:
    await reg.push_image("app", "v1")
    resp = await reg.delete(f"/v2/app/manifests/{reg.sha(b'x')}")
    assert resp.status == 404


async def test_manifest_delete_when_disabled_is_405(make_reg) -> None:
    reg = await make_reg(delete_enabled=False)
    image = await reg.push_image("app", "v1")
    resp = await reg.delete(f"/v2/app/manifests/{image.digest}")
    assert resp.status == 405
    assert await reg.error_code(resp) == "UNSUPPORTED"
    assert resp.headers["Allow"] == "GET, HEAD, PUT"  # RFC 9110: a 405 says what is allowed
    assert (await reg.get("/v2/app/manifests/v1")).status == 200


async def test_subject_answers_oci_subject_header(reg) -> None:
    base = await reg.push_image("app", "v1")
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": base.digest, "size": len(base.manifest)}
    sig = await reg.push_image("app", None, subject=subject,
                               artifact_type="application/vnd.example.sig")
    resp = await reg.put_manifest("app", sig.digest, sig.manifest)
    assert resp.status == 201
    assert resp.headers["OCI-Subject"] == base.digest


async def test_get_after_two_workers_style_invalidation(reg) -> None:
    """A HEAD cached before a tag moves never serves the old digest afterwards."""
    first = await reg.push_image("app", "t")
    for _ in range(3):
        resp = await reg.head("/v2/app/manifests/t")
        assert resp.headers["Docker-Content-Digest"] == first.digest
    second = await reg.push_image("app", "t")
    resp = await reg.head("/v2/app/manifests/t")
    assert resp.headers["Docker-Content-Digest"] == second.digest


async def test_if_none_match_with_the_manifest_etag_is_304(reg) -> None:
    """RFC 9110 §13.2.1: preconditions are evaluated; a client's cached manifest holds."""
    image = await reg.push_image("app", "v1")
    for ref in ("v1", image.digest):
        for method in (reg.get, reg.head):
            resp = await method(f"/v2/app/manifests/{ref}",
                                headers={"If-None-Match": f'"{image.digest}"'})
            assert resp.status == 304
            assert resp.headers["ETag"] == f'"{image.digest}"'
            assert resp.headers["Docker-Content-Digest"] == image.digest
            assert await resp.read() == b""
    resp = await reg.get("/v2/app/manifests/v1", headers={"If-None-Match": '"sha256:other"'})
    assert resp.status == 200
    assert await resp.read() == image.manifest


async def test_if_match_not_naming_the_manifest_is_412(reg) -> None:
    image = await reg.push_image("app", "v1")
    resp = await reg.get("/v2/app/manifests/v1", headers={"If-Match": '"sha256:other"'})
    assert resp.status == 412
    resp = await reg.get("/v2/app/manifests/v1", headers={"If-Match": f'"{image.digest}"'})
    assert resp.status == 200


async def _two_images(reg) -> tuple[bytes, bytes]:
    """Two image manifests of `app` (blobs pushed, manifests not yet put)."""
    return (await _manifest_over_pushed_blobs(reg, b'{"n":1}', b"one"),
            await _manifest_over_pushed_blobs(reg, b'{"n":2}', b"two"))


async def _tagged(reg, tag: str) -> str | None:
    resp = await reg.head(f"/v2/app/manifests/{tag}")
    return resp.headers["Docker-Content-Digest"] if resp.status == 200 else None


async def test_put_if_none_match_star_never_overwrites_a_tag(reg) -> None:
    """The spec's conditional requests: `If-None-Match: *` creates a tag or is 412."""
    old, new = await _two_images(reg)
    assert (await reg.put_manifest("app", "v1", old)).status == 201
    resp = await reg.put_manifest("app", "v1", new, conditions={"If-None-Match": "*"})
    assert resp.status == 412
    assert await reg.error_code(resp) == "DENIED"
    assert await _tagged(reg, "v1") == reg.sha(old)
    resp = await reg.put_manifest("app", "v2", new, conditions={"If-None-Match": "*"})
    assert resp.status == 201
    assert await _tagged(reg, "v2") == reg.sha(new)
    # By digest the target is the manifest itself; listing another ETag lets the write on.
    resp = await reg.put_manifest("app", reg.sha(old), old, conditions={"If-None-Match": "*"})
    assert resp.status == 412
    resp = await reg.put_manifest("app", "v1", new,
                                  conditions={"If-None-Match": f'W/"{reg.sha(old)}"'})
    assert resp.status == 412  # If-None-Match compares weakly
    resp = await reg.put_manifest("app", "v1", new,
                                  conditions={"If-None-Match": f'"{reg.sha(new)}"'})
    assert resp.status == 201


async def test_put_if_match_moves_a_tag_only_from_the_expected_manifest(reg) -> None:
    """`If-Match: "<digest>"` (the ETag a GET gave) guards a tag against lost updates."""
    old, new = await _two_images(reg)
    assert (await reg.put_manifest("app", "v1", old)).status == 201
    for stale in (f'"{reg.sha(new)}"', f'W/"{reg.sha(old)}"', '"not-a-digest"'):
        resp = await reg.put_manifest("app", "v1", new, conditions={"If-Match": stale})
        assert resp.status == 412, stale  # (a weak tag never matches strongly)
        assert await _tagged(reg, "v1") == reg.sha(old)
    resp = await reg.put_manifest("app", "v2", new, conditions={"If-Match": "*"})
    assert resp.status == 412  # no manifest under v2 yet
    assert await _tagged(reg, "v2") is None
    resp = await reg.put_manifest("app", "v1", new, params={"tag": "extra"}, conditions={
        "If-Match": f'"sha256:{"0" * 64}", "{reg.sha(old)}"'})
    assert resp.status == 201
    assert resp.headers["OCI-Tag"] == "extra"
    assert await _tagged(reg, "v1") == await _tagged(reg, "extra") == reg.sha(new)
    resp = await reg.put_manifest("app", "v1", old, conditions={"If-Match": "*"})
    assert resp.status == 201
    assert await _tagged(reg, "v1") == reg.sha(old)


async def test_delete_if_match_removes_only_the_expected_manifest(reg) -> None:
    old, new = await _two_images(reg)
    for tag, body in (("v1", old), ("v2", new)):
        assert (await reg.put_manifest("app", tag, body)).status == 201
    stale = {"If-Match": f'"{reg.sha(new)}"'}
    assert (await reg.client.delete("/v2/app/manifests/v1", headers=stale)).status == 412
    assert await _tagged(reg, "v1") == reg.sha(old)
    resp = await reg.client.delete(f"/v2/app/manifests/{reg.sha(old)}", headers=stale)
    assert resp.status == 412
    resp = await reg.client.delete(f"/v2/app/manifests/{reg.sha(new)}",
                                   headers={"If-None-Match": "*"})
    assert resp.status == 412
    assert await _tagged(reg, "v2") == reg.sha(new)
    resp = await reg.client.delete("/v2/app/manifests/v1",
                                   headers={"If-Match": f'"{reg.sha(old)}"'})
    assert resp.status == 202
    assert await _tagged(reg, "v1") is None
    # Nothing to delete is 404 whatever the condition (RFC 9110 §13.2.1).
    resp = await reg.client.delete("/v2/app/manifests/v1", headers={"If-Match": "*"})
    assert resp.status == 404


async def _multi_arch(reg, index_type: str = mt.OCI_INDEX,
                      child_type: str = mt.OCI_MANIFEST,
                      arches: tuple[str, ...] = ("arm64", "amd64")) -> tuple[bytes, dict]:
    """An index tagged `multi:latest` over one image per arch; returns it and the images."""
    images = {arch: await reg.push_image("multi", None, media_type=child_type, arch=arch)
              for arch in arches}
    index = json.dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": [
        {"mediaType": child_type, "digest": image.digest, "size": len(image.manifest),
         "platform": {"architecture": arch, "os": "linux"}}
        for arch, image in images.items()]}).encode()
    resp = await reg.put_manifest("multi", "latest", index, index_type)
    assert resp.status == 201, await resp.text()
    return index, images


async def test_a_manifest_type_the_accept_header_does_not_list_is_404(reg) -> None:
    """As distribution answers an OCI manifest to a client that takes Docker types only."""
    image = await reg.push_image("app", "v1")
    for ref in ("v1", image.digest):
        for method in (reg.get, reg.head):
            resp = await method(f"/v2/app/manifests/{ref}",
                                headers={"Accept": mt.DOCKER_MANIFEST})
            assert resp.status == 404
            if method == reg.get:
                assert await reg.error_code(resp) == "MANIFEST_UNKNOWN"
                assert mt.OCI_MANIFEST in (await resp.json())["errors"][0]["message"]
    refused = f"{mt.OCI_MANIFEST};q=0, */*"
    resp = await reg.get("/v2/app/manifests/v1", headers={"Accept": refused})
    assert resp.status == 404


@pytest.mark.parametrize("accept", [
    None, "*/*", "application/json", f"{mt.DOCKER_MANIFEST}, {mt.OCI_MANIFEST}",
    f"{mt.DOCKER_MANIFEST};q=0.5, {mt.OCI_MANIFEST};q=0.9",
    f"{mt.DOCKER_MANIFEST}, application/*"])
async def test_accept_headers_that_take_the_stored_type(reg, accept: str | None) -> None:
    image = await reg.push_image("app", "v1")
    headers = {} if accept is None else {"Accept": accept}
    resp = await reg.get("/v2/app/manifests/v1", headers=headers,
                         skip_auto_headers=["Accept"])
    assert resp.status == 200
    assert await resp.read() == image.manifest


async def test_several_accept_header_lines_count_together(reg) -> None:
    """docker sends one Accept line per media type."""
    image = await reg.push_image("app", "v1")
    headers = [("Accept", mt.DOCKER_MANIFEST), ("Accept", mt.OCI_MANIFEST)]
    resp = await reg.get("/v2/app/manifests/v1", headers=headers)
    assert resp.status == 200
    assert await resp.read() == image.manifest


@pytest.mark.parametrize("index_type,child_type", [
    (mt.OCI_INDEX, mt.OCI_MANIFEST), (mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST)])
async def test_an_index_by_tag_gives_its_linux_amd64_image_to_a_client_that_cannot_read_it(
        reg, index_type: str, child_type: str) -> None:
    index, images = await _multi_arch(reg, index_type, child_type)
    amd64 = images["amd64"]
    for method in (reg.get, reg.head):
        resp = await method("/v2/multi/manifests/latest", headers={"Accept": child_type})
        assert resp.status == 200
        assert resp.headers["Docker-Content-Digest"] == amd64.digest
        assert resp.headers["Content-Type"] == child_type
        if method == reg.get:
            assert await resp.read() == amd64.manifest
    # By digest the bytes must match the digest: no rewrite.
    resp = await reg.get(f"/v2/multi/manifests/{reg.sha(index)}",
                         headers={"Accept": child_type})
    assert resp.status == 404
    # A client that reads indexes gets the index.
    resp = await reg.get("/v2/multi/manifests/latest",
                         headers={"Accept": f"{child_type}, {index_type}"})
    assert await resp.read() == index


async def test_an_index_without_linux_amd64_is_404_to_a_client_that_cannot_read_it(
        reg) -> None:
    await _multi_arch(reg, arches=("arm64",))
    resp = await reg.get("/v2/multi/manifests/latest", headers={"Accept": mt.OCI_MANIFEST})
    assert resp.status == 404
    assert await reg.error_code(resp) == "MANIFEST_UNKNOWN"


async def test_a_large_index_is_negotiated_without_parsing_on_the_event_loop(
        reg, monkeypatch: pytest.MonkeyPatch) -> None:
    # The JSON of a 4 MiB index costs 0.1-0.2 s to parse: on the loop, 40 such HEADs held
    # every other request of the worker for seconds.
    image = await reg.push_image("multi", None)
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest),
         "platform": {"architecture": "amd64", "os": "linux"}}],
        "annotations": {"padding": "x" * OFF_LOOP_BYTES}}).encode()
    assert (await reg.put_manifest("multi", "latest", index, mt.OCI_INDEX)).status == 201
    threads: list[str] = []
    parse = manifest_module.parse_manifest

    def recording(data: bytes, *args: object) -> object:
        if data == index:
            threads.append(threading.current_thread().name)
        return parse(data, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(manifest_module, "parse_manifest", recording)
    resp = await reg.head("/v2/multi/manifests/latest", headers={"Accept": mt.OCI_MANIFEST})
    assert resp.headers["Docker-Content-Digest"] == image.digest
    assert threads and threading.main_thread().name not in threads
