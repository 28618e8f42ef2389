"""RegistryClient against real registries on loopback (strata-registry, docker-registry)."""

from __future__ import annotations

import os

import pytest
from tooling import free_port
from transfer_registries import RunningRegistry, _desc, _push_image, _reader

from registry import client as client_mod
from registry.client import RegistryClient, RegistryUnreachable, is_loopback, parse_challenge
from registry.oci import Descriptor, Digest, Digester, canonical_bytes, mediatypes
from registry.oci.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    Unauthorized,
)


def test_loopback_hosts_use_plain_http() -> None:
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost:1") and is_loopback("[::1]:5")
    assert not is_loopback("example.com:5000")
    assert RegistryClient("127.0.0.9:80").base_url == "http://127.0.0.9:80"
    assert RegistryClient("reg.example").base_url == "https://reg.example"
    assert RegistryClient("reg.example", insecure=["reg.example"]).base_url == "http://reg.example"
    assert RegistryClient("docker.io").base_url == "https://registry-1.docker.io"


def test_bearer_challenge_is_parsed() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "reg",
                      "scope": "repository:a/b:pull"}


@pytest.mark.parametrize("which", ["strata", "distribution"])
async def test_push_resolve_fetch_round_trip(which: str, strata_registry: RunningRegistry,
                                             docker_registry: RunningRegistry) -> None:
    reg = strata_registry if which == "strata" else docker_registry
    layer = os.urandom(300_000)
    async with RegistryClient(reg.host) as client:
        mdesc, manifest = await _push_image(client, "team/app", "v1", layer)
        desc, data = await client.resolve("team/app", "v1")
        assert data == manifest and desc.digest == mdesc.digest
        assert desc.media_type == mediatypes.OCI_MANIFEST
        assert await client.blob_exists("team/app", Digest.from_bytes(layer)) == len(layer)
        got = bytearray()
        await client.fetch_blob("team/app", _desc(layer), got.extend)
        assert bytes(got) == layer
        assert await client.tags("team/app") == ["v1"]
        assert "team/app" in await client.catalog()


async def test_fetch_resumes_from_an_offset_with_range(strata_registry: RunningRegistry) -> None:
    layer = os.urandom(2_000_000)
    async with RegistryClient(strata_registry.host) as client:
        await _push_image(client, "resume", "v1", layer)
        digester = Digester()
        digester.update(layer[:777_777])
        rest = bytearray()
        await client.fetch_blob("resume", _desc(layer), rest.extend, offset=777_777,
                                digester=digester)
        assert bytes(rest) == layer[777_777:]


async def test_large_blobs_upload_in_chunks(strata_registry: RunningRegistry,
                                            docker_registry: RunningRegistry,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "MONOLITHIC_LIMIT", 100_000)
    monkeypatch.setattr(client_mod, "UPLOAD_CHUNK", 300_000)
    layer = os.urandom(1_000_001)
    for reg in (strata_registry, docker_registry):
        async with RegistryClient(reg.host) as client:
            await client.push_blob("chunked", _desc(layer), _reader(layer))
            assert await client.blob_exists("chunked", Digest.from_bytes(layer)) == len(layer)
        patches = [r for r in reg.requests() if r[0] == "PATCH"]
        assert len(patches) == 4, reg.requests()


@pytest.mark.parametrize("which", ["strata", "distribution"])
async def test_cross_repository_mount(which: str, strata_registry: RunningRegistry,
                                      docker_registry: RunningRegistry) -> None:
    reg = strata_registry if which == "strata" else docker_registry
    layer = os.urandom(50_000)
    async with RegistryClient(reg.host) as client:
        await client.push_blob("src/repo", _desc(layer), _reader(layer))
        assert await client.mount_blob("dst/repo", Digest.from_bytes(layer), "src/repo") is None
        assert await client.blob_exists("dst/repo", Digest.from_bytes(layer)) == len(layer)


async def test_error_envelopes_come_back_as_typed_errors(
        strata_registry: RunningRegistry, docker_registry: RunningRegistry) -> None:
    for reg in (strata_registry, docker_registry):
        async with RegistryClient(reg.host) as client:
            with pytest.raises(ManifestUnknown):
                await client.resolve("nothing/here", "latest")
            missing = _desc(b"missing")
            with pytest.raises(BlobUnknown):
                await client.fetch_blob("nothing/here", missing, lambda b: None)
            assert await client.blob_exists("nothing/here", missing.digest) is None
            bad = canonical_bytes({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                                   "config": missing.to_json(), "layers": []})
            with pytest.raises(ManifestBlobUnknown):
                await client.put_manifest("nothing/here", "t", mediatypes.OCI_MANIFEST, bad)


async def test_wrong_digest_for_pushed_blob_is_refused(strata_registry: RunningRegistry) -> None:
    async with RegistryClient(strata_registry.host) as client:
        lie = Descriptor("application/octet-stream", Digest.from_bytes(b"other"), 5)
        with pytest.raises(DigestInvalid):
            await client.push_blob("lies", lie, _reader(b"hello"))


async def test_unreachable_registry_is_a_clear_error() -> None:
    async with RegistryClient(f"127.0.0.1:{free_port()}") as client:
        with pytest.raises(RegistryUnreachable, match="cannot connect"):
            await client.resolve("x", "latest")


async def test_basic_auth_against_distribution_htpasswd(
        basic_auth_registry: RunningRegistry) -> None:
    async with RegistryClient(basic_auth_registry.host) as anonymous:
        with pytest.raises(Unauthorized):
            await anonymous.ping()
    async with RegistryClient(basic_auth_registry.host,
                              credentials=lambda _r: ("alice", "wrong")) as wrong:
        with pytest.raises(Unauthorized):
            await wrong.ping()
    async with RegistryClient(basic_auth_registry.host,
                              credentials=lambda _r: ("alice", "s3cret")) as client:
        await client.ping()
        await _push_image(client, "private/app", "v1", os.urandom(1000))
        desc, _ = await client.resolve("private/app", "v1")
        assert desc.media_type == mediatypes.OCI_MANIFEST


async def test_referrers_list_manifests_with_a_subject(strata_registry: RunningRegistry) -> None:
    async with RegistryClient(strata_registry.host) as client:
        subject, _ = await _push_image(client, "signed/app", "v1", os.urandom(1000))
        empty = mediatypes.EMPTY_JSON
        await client.push_blob("signed/app", _desc(empty, mediatypes.OCI_EMPTY), _reader(empty))
        sig = canonical_bytes({
            "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": _desc(empty, mediatypes.OCI_EMPTY).to_json(), "layers": [
                _desc(empty, mediatypes.OCI_EMPTY).to_json()],
            "subject": subject.to_json()})
        sig_digest = await client.put_manifest("signed/app", str(Digest.from_bytes(sig)),
                                               mediatypes.OCI_MANIFEST, sig)
        found = await client.referrers("signed/app", subject.digest)
        assert [d.digest for d in found] == [sig_digest]
        assert found[0].artifact_type == "application/vnd.example.signature"
        assert await client.referrers("signed/app", subject.digest, "other/type") == []
        # Over 4 MiB of descriptors: the server pages them and the client follows the Link.
        digests = [sig_digest]
        for i in range(5):
            heavy = canonical_bytes({
                "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                "artifactType": "application/vnd.example.sbom",
                "config": _desc(empty, mediatypes.OCI_EMPTY).to_json(), "layers": [
                    _desc(empty, mediatypes.OCI_EMPTY).to_json()],
                "annotations": {"pad": str(i) * 1_000_000}, "subject": subject.to_json()})
            digests.append(await client.put_manifest(
                "signed/app", str(Digest.from_bytes(heavy)), mediatypes.OCI_MANIFEST, heavy))
        found = await client.referrers("signed/app", subject.digest)
        assert sorted(d.digest for d in found) == sorted(digests)
