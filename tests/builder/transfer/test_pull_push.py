"""strata push / pull through the CLI against real registries on loopback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from transfer_registries import RunningRegistry, strata


@pytest.fixture
def local_image(tmp_path: Path, busybox_rootfs_tar: Path) -> Path:
    """A store holding `base:1`, a busybox image, plus `app:1` = base + one more layer."""
    root = tmp_path / "src"
    strata(root, "import", str(busybox_rootfs_tar), "base:1")
    return root


def _blob_uploads(reqs: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return [r for r in reqs if r[0] in ("PATCH", "PUT") and "/blobs/uploads/" in r[1]]


def test_push_then_pull_into_an_empty_store(tmp_path: Path, local_image: Path,
                                            strata_registry: RunningRegistry) -> None:
    ref = f"{strata_registry.host}/team/busybox:1"
    strata(local_image, "tag", "base:1", ref)
    pushed = strata(local_image, "push", "--progress", "plain", ref)
    assert "Pushed" in pushed.stderr
    digest = pushed.stdout.strip()
    empty = tmp_path / "empty"
    pulled = strata(empty, "pull", "--progress", "plain", ref)
    assert "Pull complete" in pulled.stderr and f"Digest: {digest}" in pulled.stderr
    images = json.loads(strata(empty, "images", "--format", "json").stdout)
    assert any(ref.rsplit(":", 1)[0] in json.dumps(i) for i in images)
    strata(empty, "system", "check")
    layers = strata(empty, "unpack", ref).stdout.split()
    assert Path(layers[-1], "bin", "busybox").exists()


def test_second_push_skips_existing_blobs(local_image: Path,
                                          strata_registry: RunningRegistry) -> None:
    ref = f"{strata_registry.host}/again:1"
    strata(local_image, "tag", "base:1", ref)
    strata(local_image, "push", ref)
    before = len(strata_registry.requests())
    out = strata(local_image, "push", "--progress", "plain", ref)
    assert out.stderr.count("Layer already exists") == 2
    assert _blob_uploads(strata_registry.requests()[before:]) == []


@pytest.mark.parametrize("which", ["strata", "distribution"])
def test_push_to_another_repository_mounts_known_blobs(
        which: str, local_image: Path, strata_registry: RunningRegistry,
        docker_registry: RunningRegistry) -> None:
    reg = strata_registry if which == "strata" else docker_registry
    strata(local_image, "tag", "base:1", f"{reg.host}/first/repo:1")
    strata(local_image, "tag", "base:1", f"{reg.host}/second/repo:1")
    strata(local_image, "push", f"{reg.host}/first/repo:1")
    before = len(reg.requests())
    out = strata(local_image, "push", "--progress", "plain", f"{reg.host}/second/repo:1")
    assert out.stderr.count("Mounted from first/repo") == 2
    reqs = reg.requests()[before:]
    mounts = [r for r in reqs if r[0] == "POST" and "mount=" in r[1] and "from=first" in r[1]]
    assert len(mounts) == 2 and all(r[2] == 201 for r in mounts), reqs
    assert _blob_uploads(reqs) == []


def test_pull_skips_layers_already_in_the_store(tmp_path: Path, local_image: Path,
                                                strata_registry: RunningRegistry) -> None:
    ref = f"{strata_registry.host}/skip:1"
    strata(local_image, "tag", "base:1", ref)
    strata(local_image, "push", ref)
    before = len(strata_registry.requests())
    out = strata(local_image, "pull", "--progress", "plain", ref)
    assert out.stderr.count("Already exists") == 1  # the layer (the config is not listed)
    gets = [r for r in strata_registry.requests()[before:] if "/blobs/" in r[1]]
    assert gets == []


def test_push_to_distribution_then_docker_pulls_and_runs_it(
        local_image: Path, docker_registry: RunningRegistry,
        docker_daemon: dict[str, str]) -> None:
    ref = f"{docker_registry.host}/strata/busybox:1"
    strata(local_image, "tag", "base:1", ref)
    strata(local_image, "push", ref)
    subprocess.run(["/usr/bin/docker", "pull", ref], env=docker_daemon, check=True,
                   capture_output=True, timeout=120)
    run = subprocess.run(["/usr/bin/docker", "run", "--rm", "--network", "none", ref,
                          "/bin/sh", "-c", "echo hello from strata"],
                         env=docker_daemon, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "hello from strata"


def test_pull_of_an_image_pushed_by_docker(tmp_path: Path, busybox_rootfs_tar: Path,
                                           docker_registry: RunningRegistry,
                                           docker_daemon: dict[str, str]) -> None:
    ref = f"{docker_registry.host}/bydocker/busybox:1"
    subprocess.run(["/usr/bin/docker", "import", str(busybox_rootfs_tar), ref],
                   env=docker_daemon, check=True, capture_output=True, timeout=120)
    subprocess.run(["/usr/bin/docker", "push", ref], env=docker_daemon, check=True,
                   capture_output=True, timeout=120)
    root = tmp_path / "store"
    strata(root, "pull", ref)
    inspect = json.loads(strata(root, "inspect", ref).stdout)[0]
    assert inspect["Descriptor"]["mediaType"] == \
        "application/vnd.docker.distribution.manifest.v2+json"
    layers = strata(root, "unpack", ref).stdout.split()
    assert Path(layers[-1], "bin", "busybox").exists()
    strata(root, "system", "check")


def test_push_with_docker_media_types_rewrites_the_manifest(
        tmp_path: Path, local_image: Path, strata_registry: RunningRegistry) -> None:
    ref = f"{strata_registry.host}/converted:1"
    strata(local_image, "tag", "base:1", ref)
    local = json.loads(strata(local_image, "inspect", ref).stdout)[0]
    assert local["Descriptor"]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    digest = strata(local_image, "push", "--media-types", "docker", ref).stdout.strip()
    assert digest != local["Descriptor"]["digest"]
    root = tmp_path / "pulled"
    out = strata(root, "pull", "--progress", "plain", ref)
    assert out.stderr.count("Pull complete") == 1  # the layer; the config is not listed
    pulled = json.loads(strata(root, "inspect", ref).stdout)[0]
    assert pulled["Descriptor"] == {**pulled["Descriptor"], "digest": digest,
                                    "mediaType": "application/vnd.docker.distribution."
                                                 "manifest.v2+json"}
    assert pulled["Id"] == local["Id"]
