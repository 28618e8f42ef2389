"""Docker Hub mirrors ($STRATA_REGISTRY_MIRRORS, as docker's registry-mirrors): `strata pull
busybox:1` (docker.io/library/busybox:1) comes from a strata-registry pull-through cache of
a registry on loopback standing in for Docker Hub, with no Docker Hub in reach."""

from __future__ import annotations

from pathlib import Path

from transfer_registries import RunningRegistry, start_strata_registry, strata


def test_a_docker_hub_image_comes_from_the_first_mirror_that_has_it(
        tmp_path: Path, busybox_rootfs_tar: Path, strata_registry: RunningRegistry) -> None:
    hub = strata_registry  # holds library/busybox:1, as Docker Hub would
    strata(tmp_path / "pusher", "import", str(busybox_rootfs_tar), f"{hub.host}/library/busybox:1")
    strata(tmp_path / "pusher", "push", f"{hub.host}/library/busybox:1")
    (tmp_path / "mirror").mkdir()
    mirror = start_strata_registry(tmp_path / "mirror",
                                   env={"STRATA_REGISTRY_PROXY_REMOTE_URL": hub.url})
    try:
        env = {"STRATA_REGISTRY_MIRRORS": f"http://127.0.0.1:1, {mirror.url}"}
        out = strata(tmp_path / "ci", "pull", "--progress", "plain", "busybox:1", env=env)
        assert "mirror http://127.0.0.1:1:" in out.stderr + out.stdout  # the first is down
        images = strata(tmp_path / "ci", "images", env=env).stdout
        assert any(line.split()[:2] == ["busybox", "1"] for line in images.splitlines()), images
        assert any(path == "/v2/library/busybox/manifests/1" for _, path, _ in mirror.requests())
        bad = strata(tmp_path / "ci", "pull", "busybox:1", check=False,
                     env={"STRATA_REGISTRY_MIRRORS": "ftp://mirror"})
        assert bad.returncode != 0 and "STRATA_REGISTRY_MIRRORS" in bad.stderr
    finally:
        mirror.stop()
