"""docker (the 20.10 daemon and CLI) pushing, pulling and searching through the registry."""

from __future__ import annotations

import json

from tooling import DOCKER_CLIENT


def test_docker_push_pull_and_search(run, registry, docker_daemon, busybox_tar) -> None:
    ref = f"{registry.host}/dockertest/busybox:1.0"

    def docker(*args: str, check: bool = True):  # noqa: ANN202
        return run(DOCKER_CLIENT, *args, env=docker_daemon, check=check, timeout=180)

    docker("import", "--change", "CMD [\"/bin/sh\"]", "--change",
           "LABEL org.opencontainers.image.description=\"strata docker client test\"",
           str(busybox_tar), ref)
    pushed = docker("push", ref).stdout
    assert "digest: sha256:" in pushed
    digest = pushed.split("digest: ")[1].split()[0]
    docker("rmi", ref)
    assert docker("image", "inspect", ref, check=False).returncode != 0
    pulled = docker("pull", ref).stdout
    assert digest in pulled
    info = json.loads(docker("image", "inspect", ref).stdout)[0]
    assert info["RepoDigests"] == [f"{registry.host}/dockertest/busybox@{digest}"]
    assert info["Config"]["Cmd"] == ["/bin/sh"]

    manifest = registry.get_json("/v2/dockertest/busybox/manifests/1.0",
                                 accept="application/vnd.docker.distribution.manifest.v2+json")
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"

    out = docker("search", "--no-trunc", f"{registry.host}/busybox").stdout
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["NAME", "DESCRIPTION"]
    assert any("dockertest/busybox" in line and "strata docker client test" in line
               for line in lines[1:]), out
    out = docker("search", f"{registry.host}/no-such-thing-anywhere").stdout
    assert len(out.strip().splitlines()) == 1  # the header only
