"""skopeo against the registry process: copy both ways, cross-repo mount, inspect, list-tags,
and a multi-arch OCI index with --all."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

SKOPEO = "skopeo"
NO_TLS = ("--src-tls-verify=false", "--dest-tls-verify=false")


def _copy(run, *args: str) -> None:
    run(SKOPEO, "--insecure-policy", "copy", *NO_TLS, *args)


def test_oci_to_registry_then_registry_to_oci_roundtrip(run, registry,
                                                        oci_layout,
                                                        tmp_path: Path) -> None:
    desc = oci_layout.image("amd64", {"etc/hello": b"roundtrip"})
    oci_layout.tag(desc, "v1")
    _copy(run, f"oci:{oci_layout.root}:v1", f"docker://{registry.host}/skopeo/roundtrip:v1")
    out = tmp_path / "out"
    _copy(run, f"docker://{registry.host}/skopeo/roundtrip:v1", f"oci:{out}:v1")
    index = json.loads((out / "index.json").read_text())
    pulled = index["manifests"][0]["digest"]
    # Same layer and config bytes came back (skopeo may re-encode nothing for OCI->OCI).
    assert pulled == desc["digest"]
    manifest = json.loads((out / "blobs" / "sha256" / pulled.split(":")[1]).read_bytes())
    for layer in manifest["layers"]:
        assert (out / "blobs" / "sha256" / layer["digest"].split(":")[1]).exists()


def test_copy_between_two_repositories_mounts_blobs(run, registry,
                                                    oci_layout) -> None:
    desc = oci_layout.image("amd64", {"etc/mount": b"shared layer"})
    oci_layout.tag(desc, "v1")
    _copy(run, f"oci:{oci_layout.root}:v1", f"docker://{registry.host}/skopeo/src:v1")
    _copy(run, f"docker://{registry.host}/skopeo/src:v1",
          f"docker://{registry.host}/skopeo/dst:v1")
    mounts = [(method, path, status) for method, path, status in registry.requests()
              if method == "POST" and path.startswith("/v2/skopeo/dst/blobs/uploads/")
              and "mount=" in path]
    assert mounts and all(status == 201 for _, _, status in mounts), mounts
    inspect = json.loads(run(SKOPEO, "inspect", "--tls-verify=false",
                             f"docker://{registry.host}/skopeo/dst:v1").stdout)
    assert inspect["Digest"] == desc["digest"]


def test_inspect_and_list_tags(run, registry, oci_layout) -> None:
    desc = oci_layout.image("amd64", labels={"org.opencontainers.image.description": "hi"})
    oci_layout.tag(desc, "v1")
    for tag in ("v1", "v2", "latest"):
        _copy(run, f"oci:{oci_layout.root}:v1", f"docker://{registry.host}/skopeo/tags:{tag}")
    out = json.loads(run(SKOPEO, "list-tags", "--tls-verify=false",
                         f"docker://{registry.host}/skopeo/tags").stdout)
    assert out["Tags"] == ["latest", "v1", "v2"]
    info = json.loads(run(SKOPEO, "inspect", "--tls-verify=false",
                          f"docker://{registry.host}/skopeo/tags:v2").stdout)
    assert info["Digest"] == desc["digest"]
    assert info["Architecture"] == "amd64"
    assert info["Labels"] == {"org.opencontainers.image.description": "hi"}
    raw = run(SKOPEO, "inspect", "--raw", "--tls-verify=false",
              f"docker://{registry.host}/skopeo/tags:v2").stdout
    blob = (oci_layout.root / "blobs" / "sha256" / desc["digest"].split(":")[1]).read_text()
    assert raw.strip() == blob.strip()


def test_multi_arch_index_copied_with_all_reads_back_intact(
        run, registry, oci_layout, tmp_path: Path) -> None:
    index_desc = oci_layout.multi_arch(("amd64", "arm64"))
    oci_layout.tag(index_desc, "multi")
    _copy(run, "--all", f"oci:{oci_layout.root}:multi", f"docker://{registry.host}/skopeo/multi:1")
    raw = run(SKOPEO, "inspect", "--raw", "--tls-verify=false",
              f"docker://{registry.host}/skopeo/multi:1").stdout
    original = (oci_layout.root / "blobs" / "sha256" / index_desc["digest"].split(":")[1])
    assert raw.strip() == original.read_text().strip()
    index = json.loads(raw)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    for arch in ("amd64", "arm64"):
        info = json.loads(run(SKOPEO, "inspect", "--tls-verify=false", "--override-arch", arch,
                              f"docker://{registry.host}/skopeo/multi:1").stdout)
        assert info["Architecture"] == arch
    out = tmp_path / "back"
    _copy(run, "--all", f"docker://{registry.host}/skopeo/multi:1", f"oci:{out}:multi")
    back = json.loads((out / "index.json").read_text())
    assert back["manifests"][0]["digest"] == index_desc["digest"]
    for child in index["manifests"]:
        assert (out / "blobs" / "sha256" / child["digest"].split(":")[1]).exists()


def test_a_large_layer_roundtrips(run, registry, oci_layout, tmp_path: Path) -> None:
    """skopeo sends a layer as one PATCH with its Content-Length (and Connection: close): over
    DIRECT_BODY_MIN, the registry receives it from the socket itself (SocketBody)."""
    desc = oci_layout.image("amd64", {"opt/model.bin": os.urandom(9 * 1024 * 1024 + 7)})
    oci_layout.tag(desc, "v1")
    _copy(run, f"oci:{oci_layout.root}:v1", f"docker://{registry.host}/skopeo/large:v1")
    patches = [status for method, path, status in registry.requests()
               if method == "PATCH" and path.startswith("/v2/skopeo/large/blobs/uploads/")]
    assert patches and set(patches) == {202}
    out = tmp_path / "out"
    _copy(run, f"docker://{registry.host}/skopeo/large:v1", f"oci:{out}:v1")
    pushed = json.loads((oci_layout.root / "blobs" / "sha256" /
                         desc["digest"].split(":")[1]).read_bytes())
    for layer in pushed["layers"]:
        blob = out / "blobs" / "sha256" / layer["digest"].split(":")[1]
        assert blob.stat().st_size == layer["size"]
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == layer["digest"]
