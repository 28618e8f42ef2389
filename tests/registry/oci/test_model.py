from __future__ import annotations

import hashlib
import json

import pytest

from registry.oci import (
    Descriptor,
    Digest,
    Digester,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Platform,
    canonical_bytes,
    error_for_code,
    parse_manifest,
    parse_reference,
    validate_name,
)
from registry.oci import mediatypes as mt
from registry.oci.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestInvalid,
    NameInvalid,
    UnknownError,
    Unsupported,
)
from registry.oci.reference import split_registry_url

HEX = "a" * 64


def test_digest_parse_accepts_sha256_and_renders_canonically() -> None:
    d = Digest.parse(f"sha256:{HEX}")
    assert (d.algorithm, d.encoded, str(d)) == ("sha256", HEX, f"sha256:{HEX}")


@pytest.mark.parametrize("bad", ["sha256", f"sha256:{HEX[:-1]}", f"sha256:{HEX.upper()}",
                                 f"SHA256:{HEX}", ":abc", f"sha256:{HEX}g"])
def test_malformed_digest_is_digest_invalid(bad: str) -> None:
    with pytest.raises(DigestInvalid):
        Digest.parse(bad)


def test_unknown_algorithm_is_unsupported() -> None:
    with pytest.raises(Unsupported):
        Digest.parse("md5:d41d8cd98f00b204e9800998ecf8427e")


def test_digester_counts_and_hashes_while_streaming() -> None:
    d = Digester()
    for chunk in (b"abc", b"", b"def"):
        d.update(chunk)
    assert d.size == 6
    assert d.digest().encoded == hashlib.sha256(b"abcdef").hexdigest()


def _blob(data: bytes, media_type: str) -> dict[str, object]:
    return {"mediaType": media_type, "digest": f"sha256:{hashlib.sha256(data).hexdigest()}",
            "size": len(data)}


def test_oci_manifest_round_trips_and_lists_its_blobs() -> None:
    body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": _blob(b"{}", mt.OCI_CONFIG), "layers": [_blob(b"x", mt.OCI_LAYER_GZIP)],
            "subject": _blob(b"m", mt.OCI_MANIFEST), "annotations": {"a": "b"}}
    m = parse_manifest(json.dumps(body).encode())
    assert isinstance(m, ImageManifest)
    assert [d.media_type for d in m.blobs()] == [mt.OCI_CONFIG, mt.OCI_LAYER_GZIP]
    assert m.subject is not None and m.effective_artifact_type() == mt.OCI_CONFIG
    assert parse_manifest(canonical_bytes(m.to_json())) == m


def test_manifest_without_media_type_is_inferred_from_shape() -> None:
    body = {"schemaVersion": 2, "manifests": []}
    assert isinstance(parse_manifest(json.dumps(body).encode()), ImageIndex)


@pytest.mark.parametrize("body,ctype", [
    (b"{not json", None),
    (b"[]", None),
    (json.dumps({"schemaVersion": 1, "mediaType": mt.OCI_MANIFEST}).encode(), None),
    (json.dumps({"schemaVersion": 2, "mediaType": "application/x-nope"}).encode(), None),
    (json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": []}).encode(), None),
    (json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode(),
     mt.OCI_MANIFEST),
])
def test_invalid_manifests_are_manifest_invalid(body: bytes, ctype: str | None) -> None:
    with pytest.raises(ManifestInvalid):
        parse_manifest(body, ctype)


def test_oversized_manifest_is_refused() -> None:
    with pytest.raises(ManifestInvalid, match="limit"):
        parse_manifest(b" " * (4 * 1024 * 1024 + 1))


def test_index_selects_child_for_platform() -> None:
    arm = {**_blob(b"a", mt.OCI_MANIFEST), "platform": {"os": "linux", "architecture": "arm64",
                                                         "variant": "v8"}}
    amd = {**_blob(b"b", mt.OCI_MANIFEST), "platform": {"os": "linux", "architecture": "amd64"}}
    idx = parse_manifest(json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                                     "manifests": [arm, amd]}).encode())
    assert isinstance(idx, ImageIndex)
    chosen = idx.select(Platform.parse("linux/amd64"))
    assert chosen is not None and chosen.digest == Descriptor.from_json(amd).digest
    assert idx.select(Platform.parse("linux/arm64")) is not None
    assert idx.select(Platform.parse("linux/s390x")) is None


def test_image_config_keeps_unknown_fields() -> None:
    raw = {"architecture": "amd64", "os": "linux", "config": {"Env": ["A=1"]},
           "rootfs": {"type": "layers", "diff_ids": [f"sha256:{HEX}"]},
           "history": [{"created_by": "x", "empty_layer": True}], "docker_version": "20"}
    cfg = ImageConfig.from_json(raw)
    assert cfg.to_json()["docker_version"] == "20"
    assert cfg.history[0].empty_layer and cfg.diff_ids == (f"sha256:{HEX}",)


@pytest.mark.parametrize("text,expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("user/app:1.0", "docker.io/user/app:1.0"),
    ("localhost/app", "localhost/app:latest"),
    ("127.0.0.1:5000/a/b/c:v", "127.0.0.1:5000/a/b/c:v"),
    (f"quay.io/x/y@sha256:{HEX}", f"quay.io/x/y@sha256:{HEX}"),
    ("registry-1.docker.io/busybox", "docker.io/library/busybox:latest"),
])
def test_reference_normalization_matches_docker(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


def test_local_reference_has_no_registry() -> None:
    ref = parse_reference("app:dev", default_registry=None)
    assert ref.registry is None and ref.name == "app" and ref.reference == "dev"
    assert parse_reference("busybox").familiar() == "busybox:latest"


@pytest.mark.parametrize("name", ["UPPER", "a/../b", "a//b", "-a", "a-", "a" * 256, ""])
def test_invalid_repository_names_are_refused(name: str) -> None:
    with pytest.raises(NameInvalid):
        validate_name(name)


def test_nested_names_up_to_255_chars_are_valid() -> None:
    name = "/".join(["abc"] * 63)  # 251 characters
    assert validate_name(name) == name


def test_error_codes_round_trip_through_the_wire_form() -> None:
    err = error_for_code("BLOB_UNKNOWN", "gone", {"digest": "x"})
    assert isinstance(err, BlobUnknown) and err.detail == {"digest": "x"}
    assert isinstance(error_for_code("NOT_A_CODE"), UnknownError)


@pytest.mark.parametrize("url,expected", [
    ("http://127.0.0.1:5000", ("http", "127.0.0.1:5000")),
    ("https://registry-1.docker.io/", ("https", "registry-1.docker.io")),
    ("https://[::1]:5000", ("https", "[::1]:5000")),
])
def test_a_registry_url_is_its_scheme_and_host(url: str, expected: tuple[str, str]) -> None:
    assert split_registry_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://h", "https://h/v2", "https://u:p@h", "https://h?x=1",
                                 "https://h:abc", "https://h:99999", "https://h:0", "h:5000"])
def test_anything_more_than_a_registry_url_is_refused(url: str) -> None:
    """(proxy_remote_url and STRATA_REGISTRY_MIRRORS both take only this shape)"""
    with pytest.raises(ValueError, match="no http"):
        split_registry_url(url)
