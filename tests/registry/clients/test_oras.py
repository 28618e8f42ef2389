"""oras (the Python SDK): push an artifact whose subject is an image, discover it through the
referrers API, pull it back."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import oras.client
import oras.oci

ARTIFACT_TYPE = "application/vnd.strata.test.sbom"


def test_oras_push_with_subject_discover_and_pull(run, registry, oci_layout,
                                                  tmp_path: Path) -> None:
    desc = oci_layout.image("amd64", {"etc/oras": b"subject image"})
    oci_layout.tag(desc, "v1")
    run("skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
        f"oci:{oci_layout.root}:v1", f"docker://{registry.host}/orastest/app:v1")
    subject_bytes = (oci_layout.root / "blobs" / "sha256" / desc["digest"][7:]).read_bytes()
    subject = oras.oci.Subject(mediaType=desc["mediaType"], digest=desc["digest"],
                               size=len(subject_bytes))

    work = tmp_path / "artifact"
    work.mkdir()
    (work / "sbom.json").write_text(json.dumps({"packages": ["busybox"]}))
    client = oras.client.OrasClient(insecure=True)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        resp = client.push(target=f"{registry.host}/orastest/app:sbom",
                           files=[f"sbom.json:{ARTIFACT_TYPE}"], subject=subject,
                           manifest_annotations={"org.opencontainers.image.description":
                                                 "an sbom"})
    finally:
        os.chdir(cwd)
    assert resp.status_code == 201
    assert resp.headers["OCI-Subject"] == desc["digest"]

    # discover: the referrers API lists the artifact, with and without a filter
    index = registry.get_json(f"/v2/orastest/app/referrers/{desc['digest']}")
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert len(index["manifests"]) == 1
    ref = index["manifests"][0]
    assert ref["annotations"]["org.opencontainers.image.description"] == "an sbom"
    filtered = registry.get_json(
        f"/v2/orastest/app/referrers/{desc['digest']}?artifactType=application/none")
    assert filtered["manifests"] == []

    out = tmp_path / "pulled"
    files = client.pull(target=f"{registry.host}/orastest/app@{ref['digest']}",
                        outdir=str(out))
    assert [Path(f).name for f in files] == ["sbom.json"]
    data = (out / "sbom.json").read_bytes()
    assert json.loads(data) == {"packages": ["busybox"]}
    manifest = registry.get_json(f"/v2/orastest/app/manifests/{ref['digest']}")
    assert manifest["subject"]["digest"] == desc["digest"]
    assert manifest["layers"][0]["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()


def test_oras_pushes_a_large_file_received_straight_from_the_socket(registry,
                                                                     tmp_path: Path) -> None:
    """oras sends a blob as one PUT with a Content-Length: over DIRECT_BODY_MIN, the registry
    receives it from the socket itself (SocketBody), then hands the connection back to aiohttp
    for the requests that follow on it (the manifest PUT)."""
    work = tmp_path / "big"
    work.mkdir()
    data = os.urandom(9 * 1024 * 1024 + 12345)
    (work / "model.bin").write_bytes(data)
    client = oras.client.OrasClient(insecure=True)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        resp = client.push(target=f"{registry.host}/orastest/big:v1", files=["model.bin"])
    finally:
        os.chdir(cwd)
    assert resp.status_code == 201
    files = client.pull(target=f"{registry.host}/orastest/big:v1", outdir=str(tmp_path / "out"))
    assert [Path(f).read_bytes() == data for f in files] == [True]
