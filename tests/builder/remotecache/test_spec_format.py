"""--cache-to / --cache-from parsing and the cache manifest format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.cache import CachedLayer, CacheRecord
from builder.errors import InvalidArgument
from builder.remotecache import ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, parse_cache_from, parse_cache_to
from builder.remotecache.format import (
    CacheDocument,
    StepRecord,
    inline_records,
    parse_config,
    with_inline_records,
)
from registry.oci import Descriptor, Digest, mediatypes


def test_cache_to_registry_with_options() -> None:
    spec = parse_cache_to("type=registry,ref=127.0.0.1:5000/app:cache,mode=max,"
                          "compression=zstd,cache-mounts=true")
    assert (spec.type, spec.ref, spec.mode, spec.compression, spec.cache_mounts) == (
        "registry", "127.0.0.1:5000/app:cache", "max", "zstd", True)


def test_cache_to_defaults_to_mode_min_and_local_needs_dest(tmp_path: Path) -> None:
    assert parse_cache_to(f"type=local,dest={tmp_path}").mode == "min"
    assert parse_cache_to(f"type=local,dest={tmp_path}").dest == tmp_path
    with pytest.raises(InvalidArgument, match="dest"):
        parse_cache_to("type=local")


@pytest.mark.parametrize("bad", ["type=registry", "type=s3,ref=x", "type=registry,ref=x,mode=all",
                                 "type=inline,mode=max", "type=registry,ref=x,bogus=1",
                                 "type=registry,ref=x,cache-mounts=maybe"])
def test_bad_cache_to_values_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_cache_to(bad)


def test_cache_from_accepts_a_bare_reference_and_local_src(tmp_path: Path) -> None:
    assert parse_cache_from("localhost:5000/app:cache").ref == "localhost:5000/app:cache"
    assert parse_cache_from(f"type=local,src={tmp_path}").src == tmp_path
    with pytest.raises(InvalidArgument):
        parse_cache_from("type=inline")


def _record(n: int, layer: bool = True) -> StepRecord:
    blob = Digest.from_bytes(f"layer{n}".encode())
    cached = CachedLayer(Descriptor(mediatypes.OCI_LAYER_GZIP, blob, 10 + n),
                         str(Digest.from_bytes(f"diff{n}".encode()))) if layer else None
    key = str(Digest.from_bytes(f"key{n}".encode()))
    parent = str(Digest.from_bytes(f"key{n - 1}".encode())) if n else None
    return StepRecord(key, parent, "build", f"RUN step {n}",
                      CacheRecord(cached, {"config": {"Env": [f"N={n}"]}}, n % 2 == 0))


def test_cache_manifest_is_a_plain_oci_manifest_with_our_artifact_type() -> None:
    recs = [_record(0), _record(1), _record(2, layer=False)]
    doc = CacheDocument({r.key: r for r in recs}, "max")
    config = doc.config_bytes()
    manifest = doc.manifest(config).to_json()
    assert manifest["mediaType"] == mediatypes.OCI_MANIFEST
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    assert manifest["config"]["digest"] == str(Digest.from_bytes(config))
    assert [layer["digest"] for layer in manifest["layers"]] == [
        str(r.record.layer.descriptor.digest) for r in recs if r.record.layer]
    back = parse_config(config)
    assert set(back.records) == {r.key for r in recs}
    for r in recs:
        assert back.records[r.key] == r


def test_config_bytes_are_canonical_and_independent_of_record_order() -> None:
    a, b = _record(0), _record(1)
    one = CacheDocument({a.key: a, b.key: b}).config_bytes()
    two = CacheDocument({b.key: b, a.key: a}).config_bytes()
    assert one == two


def test_records_of_another_key_version_are_dropped() -> None:
    doc = json.loads(CacheDocument({_record(0).key: _record(0)}).config_bytes())
    doc["keyVersion"] = 999
    assert parse_config(json.dumps(doc).encode()).records == {}


def test_inline_records_round_trip_through_an_image_config() -> None:
    rec = _record(3)
    image_config = json.dumps({"architecture": "amd64", "os": "linux",
                               "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    decorated = json.loads(with_inline_records(image_config, [rec]))
    assert decorated["architecture"] == "amd64"
    assert inline_records(decorated) == {rec.key: rec}
    assert inline_records({"architecture": "amd64"}) == {}
