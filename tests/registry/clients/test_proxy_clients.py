"""Real clients pulling through strata-registry as a pull-through cache of docker-registry
(CNCF distribution): docker pull, podman pull, skopeo inspect; the image then comes from the
cache with the upstream stopped. And the cache as a dockerd `--registry-mirror`: `docker pull
busybox` (a Docker Hub name) is served by it, with no Docker Hub in reach."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from dockerd import private_dockerd
from tooling import DOCKER_CLIENT
from transfer_registries import start_docker_registry, start_strata_registry


def test_docker_podman_and_skopeo_pull_through_the_cache(run, tmp_path: Path, docker_daemon,
                                                         busybox_tar, containers_storage,
                                                         oci_layout) -> None:
    (tmp_path / "upstream").mkdir()
    (tmp_path / "cache").mkdir()
    upstream = start_docker_registry(tmp_path / "upstream")
    cache = start_strata_registry(tmp_path / "cache", env={
        "STRATA_REGISTRY_PROXY_REMOTE_URL": upstream.url})
    try:
        def docker(*args: str, check: bool = True):  # noqa: ANN202
            return run(DOCKER_CLIENT, *args, env=docker_daemon, check=check, timeout=180)

        source = f"{upstream.host}/library/busybox:stable"
        docker("import", str(busybox_tar), source)
        digest = docker("push", source).stdout.split("digest: ")[1].split()[0]
        docker("rmi", source)
        desc = oci_layout.image("amd64", {"etc/hello": b"through the cache"})
        oci_layout.tag(desc, "v1")
        run("skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
            f"oci:{oci_layout.root}:v1", f"docker://{upstream.host}/team/tool:v1")

        mirrored = f"{cache.host}/library/busybox:stable"
        assert digest in docker("pull", mirrored).stdout
        podman = ("podman", *containers_storage, "--events-backend=none")
        run(*podman, "pull", "--tls-verify=false", f"{cache.host}/team/tool:v1", timeout=180)
        upstream.stop()

        docker("rmi", mirrored)
        assert digest in docker("pull", mirrored).stdout  # from the cache alone
        info = json.loads(run("skopeo", "inspect", "--tls-verify=false",
                              f"docker://{cache.host}/team/tool:v1").stdout)
        assert info["Digest"] == desc["digest"]
        out = tmp_path / "copied"
        run("skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
            f"docker://{cache.host}/team/tool:v1", f"oci:{out}:v1")
        assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == \
            desc["digest"]
        docker("rmi", mirrored)
    finally:
        cache.stop()
        upstream.stop()


def test_the_cache_as_a_docker_registry_mirror(run, tmp_path: Path, busybox_tar) -> None:
    (tmp_path / "hub").mkdir()
    (tmp_path / "cache").mkdir()
    hub = start_docker_registry(tmp_path / "hub")  # stands in for Docker Hub
    cache = start_strata_registry(tmp_path / "cache",
                                  env={"STRATA_REGISTRY_PROXY_REMOTE_URL": hub.url})
    base = Path(tempfile.mkdtemp(prefix="strata-mirror-dockerd-"))
    try:
        run("skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
            f"tarball:{busybox_tar}", f"docker://{hub.host}/library/busybox:stable")
        with private_dockerd(base, extra_args=["--registry-mirror", cache.url]) as env:
            pulled = run(DOCKER_CLIENT, "pull", "busybox:stable", env=env, timeout=180).stdout
            assert "docker.io/library/busybox:stable" in pulled
            run(DOCKER_CLIENT, "image", "inspect", "busybox:stable", env=env)
        assert any(path == "/v2/library/busybox/manifests/stable" and status == 200
                   for _, path, status in cache.requests())
    finally:
        shutil.rmtree(base, ignore_errors=True)
        cache.stop()
        hub.stop()
