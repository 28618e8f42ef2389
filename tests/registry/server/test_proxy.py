"""strata-registry as a pull-through cache (proxy_remote_url) of another registry process on
loopback: what it fetches, what it keeps when the upstream is gone, moved tags, ranges,
refused pushes, and an upstream that needs credentials."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from transfer_registries import (
    RunningRegistry,
    _desc,
    _push_image,
    _reader,
    start_docker_registry,
    start_strata_registry,
)

from registry.client import RegistryClient
from registry.oci import canonical_bytes
from registry.oci import mediatypes as mt
from registry.server.config import ConfigError, load_config

UPSTREAM_USER = ("mirror", "pull-only-secret")


@dataclass
class Pair:
    upstream: RunningRegistry
    cache: RunningRegistry


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    """An upstream with Basic auth, and a cache of it with 1 and with 2 worker processes."""
    (tmp_path / "upstream").mkdir()
    (tmp_path / "cache").mkdir()
    upstream = start_strata_registry(tmp_path / "upstream", htpasswd=UPSTREAM_USER)
    cache = start_strata_registry(tmp_path / "cache", workers=request.param, env={
        "STRATA_REGISTRY_PROXY_REMOTE_URL": upstream.url,
        "STRATA_REGISTRY_PROXY_USERNAME": UPSTREAM_USER[0],
        "STRATA_REGISTRY_PROXY_PASSWORD": UPSTREAM_USER[1]})
    yield Pair(upstream, cache)
    cache.stop()
    upstream.stop()


async def _push(reg: RunningRegistry, repo: str, tag: str, layer: bytes) -> bytes:
    async with RegistryClient(reg.host, credentials=lambda _r: UPSTREAM_USER) as client:
        return (await _push_image(client, repo, tag, layer))[1]


def _get(url: str, headers: dict[str, str] | None = None,
         method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


ACCEPT = {"Accept": mt.OCI_MANIFEST}


async def test_a_pull_fills_the_cache_which_serves_it_when_the_upstream_is_gone(
        pair: Pair) -> None:
    layer = os.urandom(5 << 20)  # over the socket take-over size, several chunks
    manifest = await _push(pair.upstream, "team/app", "1", layer)
    base = f"{pair.cache.url}/v2/team/app"

    status, headers, body = _get(f"{base}/manifests/1", ACCEPT)
    assert (status, body) == (200, manifest)
    assert headers["Docker-Content-Digest"] == _sha(manifest)
    status, headers, _ = _get(f"{base}/blobs/{_sha(layer)}", method="HEAD")
    assert (status, headers["Content-Length"]) == (200, str(len(layer)))
    status, headers, body = _get(f"{base}/blobs/{_sha(layer)}")
    assert status == 200 and body == layer
    config = json.loads(manifest)["config"]["digest"]
    status, _, _ = _get(f"{base}/blobs/{config}", {"Range": "bytes=2-9"})
    assert status == 206

    pair.upstream.stop()
    status, _, body = _get(f"{base}/manifests/1", ACCEPT)
    assert (status, body) == (200, manifest)  # the tag, from the cache
    assert _get(f"{base}/manifests/{_sha(manifest)}", ACCEPT)[2] == manifest
    assert _get(f"{base}/blobs/{_sha(layer)}")[2] == layer
    status, _, body = _get(f"{base}/manifests/never-pulled", ACCEPT)
    assert status == 502 and json.loads(body)["errors"][0]["code"] == "UNKNOWN"
    status, _, body = _get(f"{pair.cache.url}/v2/_catalog")
    assert json.loads(body)["repositories"] == ["team/app"]
    tags = json.loads(_get(f"{base}/tags/list")[2])
    assert tags == {"name": "team/app", "tags": ["1"]}  # the cache's own, upstream gone


async def test_a_moved_tag_is_followed_and_unknown_things_are_404(pair: Pair) -> None:
    first = await _push(pair.upstream, "team/app", "latest", b"one" * 1000)
    base = f"{pair.cache.url}/v2/team/app"
    assert _get(f"{base}/manifests/latest", ACCEPT)[2] == first
    second = await _push(pair.upstream, "team/app", "latest", b"two" * 1000)
    status, headers, body = _get(f"{base}/manifests/latest", ACCEPT)
    assert (status, body) == (200, second)
    assert _get(f"{base}/manifests/{_sha(first)}", ACCEPT)[2] == first  # still by digest

    status, _, body = _get(f"{base}/manifests/nope", ACCEPT)
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    status, _, body = _get(f"{base}/blobs/{_sha(b'never pushed')}")
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "BLOB_UNKNOWN"
    await _push(pair.upstream, "team/app", "v2", b"three" * 1000)
    await _push(pair.upstream, "team/app", "V1", b"four" * 1000)
    tags = json.loads(_get(f"{base}/tags/list?n=2")[2])["tags"]
    assert tags == ["latest", "V1"]  # the upstream's, in the spec's lexical order
    status, headers, body = _get(f"{base}/tags/list?n=2&last=V1")
    assert json.loads(body)["tags"] == ["v2"] and "Link" not in headers


async def test_labels_are_searchable_and_referrers_come_from_the_upstream(
        pair: Pair, tmp_path: Path) -> None:
    config = canonical_bytes({"architecture": "amd64", "os": "linux", "config": {"Labels": {
        "org.opencontainers.image.description": "a relational database"}},
        "rootfs": {"type": "layers", "diff_ids": []}})
    layer, empty = b"db layer", mt.EMPTY_JSON
    async with RegistryClient(pair.upstream.host,
                              credentials=lambda _r: UPSTREAM_USER) as client:
        for data, media_type in ((config, mt.OCI_CONFIG), (layer, mt.OCI_LAYER_GZIP),
                                 (empty, mt.OCI_EMPTY)):
            await client.push_blob("team/db", _desc(data, media_type), _reader(data))
        image = canonical_bytes({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                                 "config": _desc(config, mt.OCI_CONFIG).to_json(),
                                 "layers": [_desc(layer, mt.OCI_LAYER_GZIP).to_json()]})
        await client.put_manifest("team/db", "16", mt.OCI_MANIFEST, image)
        signature = canonical_bytes({
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": _desc(empty, mt.OCI_EMPTY).to_json(),
            "layers": [_desc(empty, mt.OCI_EMPTY).to_json()],
            "subject": _desc(image, mt.OCI_MANIFEST).to_json()})
        await client.put_manifest("team/db", _sha(signature), mt.OCI_MANIFEST, signature)
    base = f"{pair.cache.url}/v2/team/db"
    assert _get(f"{base}/manifests/16", ACCEPT)[2] == image  # (its config comes along)
    for _ in range(50):  # (the index is updated in the background)
        found = json.loads(_get(f"{pair.cache.url}/v1/search?q=relational")[2])
        if found["num_results"]:
            break
        time.sleep(0.1)
    assert [r["name"] for r in found["results"]] == ["team/db"]
    status, _, body = _get(f"{base}/referrers/{_sha(image)}")
    assert status == 200
    assert [m["digest"] for m in json.loads(body)["manifests"]] == [_sha(signature)]
    status, _, body = _get(f"{base}/referrers/{_sha(image)}?artifactType=other/type")
    assert json.loads(body)["manifests"] == []

    # distribution 2.8 has no referrers API: the cache says so (404), and clients fall back
    (tmp_path / "old").mkdir()
    (tmp_path / "oldcache").mkdir()
    old = start_docker_registry(tmp_path / "old")
    cache = start_strata_registry(tmp_path / "oldcache",
                                  env={"STRATA_REGISTRY_PROXY_REMOTE_URL": old.url})
    try:
        assert _get(f"{cache.url}/v2/team/db/referrers/{_sha(image)}")[0] == 404
    finally:
        cache.stop()
        old.stop()


async def test_a_cache_takes_no_pushes_or_deletes(pair: Pair) -> None:
    manifest = await _push(pair.upstream, "team/app", "1", b"layer")
    _get(f"{pair.cache.url}/v2/team/app/manifests/1", ACCEPT)
    for method, path in (("POST", "/v2/team/app/blobs/uploads/"),
                         ("PUT", "/v2/team/app/manifests/2"),
                         ("DELETE", f"/v2/team/app/manifests/{_sha(manifest)}")):
        status, headers, body = _get(pair.cache.url + path, method=method)
        assert status == 405 and headers["Allow"] == "GET, HEAD", (method, path)
        error = json.loads(body)["errors"][0]
        assert error["code"] == "UNSUPPORTED" and pair.upstream.url in error["message"]
    assert _get(f"{pair.cache.url}/v2/team/app/manifests/1", ACCEPT)[0] == 200


async def test_the_upstream_password_stays_out_of_logs_and_answers(pair: Pair,
                                                                  tmp_path: Path) -> None:
    manifest = await _push(pair.upstream, "team/app", "1", b"layer")
    assert _get(f"{pair.cache.url}/v2/team/app/manifests/1", ACCEPT)[2] == manifest
    (tmp_path / "wrong").mkdir()
    wrong = start_strata_registry(tmp_path / "wrong", env={
        "STRATA_REGISTRY_PROXY_REMOTE_URL": pair.upstream.url,
        "STRATA_REGISTRY_PROXY_USERNAME": UPSTREAM_USER[0],
        "STRATA_REGISTRY_PROXY_PASSWORD": "not-the-" + UPSTREAM_USER[1]})
    try:
        status, _, body = _get(f"{wrong.url}/v2/team/app/manifests/1", ACCEPT)
    finally:
        wrong.stop()
    assert status == 404 and b"not accessible" in body  # refused upstream: never a 401
    pair.cache.stop()
    for log in (pair.cache.log, wrong.log):
        text = log.read_text()
        assert f"pull-through cache of {pair.upstream.url}" in text
        assert UPSTREAM_USER[1] not in text
    assert UPSTREAM_USER[1] not in body.decode()


@pytest.mark.parametrize("env,message", [
    ({"STRATA_REGISTRY_PROXY_REMOTE_URL": "ftp://x"}, "proxy_remote_url must be"),
    ({"STRATA_REGISTRY_PROXY_REMOTE_URL": "https://u:p@hub"}, "proxy_remote_url must be"),
    ({"STRATA_REGISTRY_PROXY_REMOTE_URL": "https://hub/v2"}, "proxy_remote_url must be"),
    ({"STRATA_REGISTRY_PROXY_REMOTE_URL": "https://hub:abc"}, "proxy_remote_url must be"),
    ({"STRATA_REGISTRY_PROXY_REMOTE_URL": "https://hub:99999"}, "proxy_remote_url must be"),
    ({"STRATA_REGISTRY_PROXY_TIMEOUT_SECONDS": "nan"}, "finite number"),
    ({"STRATA_REGISTRY_IDLE_TIMEOUT_SECONDS": "inf"}, "finite number"),
    ({"STRATA_REGISTRY_PROXY_REMOTE_URL": "https://hub",
      "STRATA_REGISTRY_PROXY_USERNAME": "u"}, "go together"),
    ({"STRATA_REGISTRY_PROXY_USERNAME": "u", "STRATA_REGISTRY_PROXY_PASSWORD": "p"},
     "needs proxy_remote_url"),
])
def test_bad_proxy_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(env=env)
    assert "secret" not in repr(load_config(env={
        "STRATA_REGISTRY_PROXY_REMOTE_URL": "https://hub", "STRATA_REGISTRY_PROXY_USERNAME": "u",
        "STRATA_REGISTRY_PROXY_PASSWORD": "secret"}))
