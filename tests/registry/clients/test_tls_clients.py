"""Real clients against strata-registry over https: skopeo and podman verifying the server
with a CA and presenting a client certificate (tls_client_ca), docker pushing and pulling."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tooling import DOCKER_CLIENT, LoopbackPki
from transfer_registries import RunningRegistry, start_strata_registry


@pytest.fixture
def cert_dir(tmp_path: Path, pki: LoopbackPki) -> Path:
    """A containers/image certificate directory: the CA (*.crt) and a client pair
    (*.cert + *.key)."""
    path = tmp_path / "certs.d"
    path.mkdir()
    shutil.copy(pki.ca, path / "ca.crt")
    shutil.copy(pki.client_cert, path / "client.cert")
    shutil.copy(pki.client_key, path / "client.key")
    return path


@pytest.fixture
def mutual_tls_registry(tmp_path: Path, pki: LoopbackPki) -> Iterator[RunningRegistry]:
    reg = start_strata_registry(tmp_path, tls=pki, client_ca=True)
    yield reg
    reg.stop()


def test_skopeo_and_podman_over_mutual_tls(run, mutual_tls_registry: RunningRegistry,
                                           cert_dir: Path, tmp_path: Path, oci_layout,
                                           containers_storage) -> None:
    host = mutual_tls_registry.host
    desc = oci_layout.image("amd64", {"etc/hello": b"over tls"})
    oci_layout.tag(desc, "v1")
    run("skopeo", "--insecure-policy", "copy", "--dest-cert-dir", str(cert_dir),
        f"oci:{oci_layout.root}:v1", f"docker://{host}/tls/skopeo:v1")
    info = json.loads(run("skopeo", "inspect", "--cert-dir", str(cert_dir),
                          f"docker://{host}/tls/skopeo:v1").stdout)
    assert info["Digest"] == desc["digest"]

    no_client = tmp_path / "ca-only"
    no_client.mkdir()
    shutil.copy(cert_dir / "ca.crt", no_client / "ca.crt")
    refused = run("skopeo", "inspect", "--cert-dir", str(no_client),
                  f"docker://{host}/tls/skopeo:v1", check=False)
    # (Go's TLS 1.3 client sees the server's refusal as the connection's end)
    assert refused.returncode != 0 and "pinging container registry" in refused.stderr, \
        refused.stderr

    podman = ("podman", *containers_storage, "--events-backend=none")
    run(*podman, "pull", "--cert-dir", str(cert_dir), f"{host}/tls/skopeo:v1", timeout=180)
    pulled = json.loads(run(*podman, "image", "inspect", f"{host}/tls/skopeo:v1").stdout)[0]
    assert f"{host}/tls/skopeo@{desc['digest']}" in pulled["RepoDigests"]
    run(*podman, "push", "--cert-dir", str(cert_dir), f"{host}/tls/skopeo:v1",
        f"{host}/tls/podman:v1", timeout=180)
    tags = json.loads(run("skopeo", "list-tags", "--cert-dir", str(cert_dir),
                          f"docker://{host}/tls/podman").stdout)
    assert tags["Tags"] == ["v1"]


def test_docker_push_and_pull_over_https(run, tmp_path: Path, pki: LoopbackPki,
                                         docker_daemon, busybox_tar) -> None:
    """The port speaks TLS only, so docker (which tries https first) cannot fall back."""
    reg = start_strata_registry(tmp_path, tls=pki)
    try:
        ref = f"{reg.host}/tls/busybox:1"

        def docker(*args: str, check: bool = True):  # noqa: ANN202
            return run(DOCKER_CLIENT, *args, env=docker_daemon, check=check, timeout=180)

        docker("import", str(busybox_tar), ref)
        pushed = docker("push", ref).stdout
        digest = pushed.split("digest: ")[1].split()[0]
        docker("rmi", ref)
        assert digest in docker("pull", ref).stdout
        docker("rmi", ref)
    finally:
        reg.stop()
    assert any(path == "/v2/tls/busybox/manifests/1" and status == 201
               for method, path, status in reg.requests() if method == "PUT")
