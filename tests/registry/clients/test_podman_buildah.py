"""podman and buildah (private vfs storage) pushing to and pulling from the registry."""

from __future__ import annotations

import json


def test_podman_push_and_pull(run, registry, containers_storage, busybox_tar) -> None:
    def podman(*args: str, check: bool = True):  # noqa: ANN202
        return run("podman", *containers_storage, "--events-backend=none", *args, check=check,
                   timeout=180)

    ref = f"{registry.host}/podmantest/busybox:1"
    podman("import", "--change", "CMD [\"/bin/sh\"]", str(busybox_tar), "localhost/bb:podman")
    podman("push", "--tls-verify=false", "localhost/bb:podman", ref)
    digest = registry.get_json("/v2/podmantest/busybox/tags/list")
    assert digest == {"name": "podmantest/busybox", "tags": ["1"]}
    podman("rmi", "localhost/bb:podman")
    podman("pull", "--tls-verify=false", ref)
    info = json.loads(podman("image", "inspect", ref).stdout)[0]
    assert info["Config"]["Cmd"] == ["/bin/sh"]
    assert any(d.startswith(f"{registry.host}/podmantest/busybox@sha256:")
               for d in info["RepoDigests"])
    podman("rmi", ref)


def test_buildah_push_and_pull(run, registry, containers_storage, busybox_tar) -> None:
    def buildah(*args: str, check: bool = True):  # noqa: ANN202
        return run("buildah", *containers_storage, *args, check=check, timeout=180)

    ref = f"{registry.host}/buildahtest/busybox:1"
    container = buildah("from", "scratch").stdout.strip()
    buildah("add", container, str(busybox_tar), "/")
    buildah("config", "--label", "org.opencontainers.image.description=built by buildah",
            "--cmd", "/bin/sh", container)
    buildah("commit", container, "localhost/bb:buildah")
    buildah("rm", container)
    buildah("push", "--tls-verify=false", "localhost/bb:buildah", f"docker://{ref}")
    buildah("rmi", "localhost/bb:buildah")
    buildah("pull", "--tls-verify=false", ref)
    info = json.loads(buildah("inspect", "--type", "image", ref).stdout)
    assert info["OCIv1"]["config"]["Labels"]["org.opencontainers.image.description"] == \
        "built by buildah"
    buildah("rmi", ref)
