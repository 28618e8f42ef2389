"""Real clients against strata-registry with Basic auth (auth_htpasswd): docker login, push,
pull and search; podman login, push and pull; skopeo with --creds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tooling import DOCKER_CLIENT
from transfer_registries import RunningRegistry, start_strata_registry

USER, PASSWORD = "ci-pusher", "correct horse battery staple"


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    reg = start_strata_registry(tmp_path, htpasswd=(USER, PASSWORD))
    yield reg
    reg.stop()


def test_docker_login_push_pull_and_search(run, auth_registry: RunningRegistry,
                                           docker_daemon, busybox_tar,
                                           tmp_path: Path) -> None:
    host = auth_registry.host
    env = {**docker_daemon, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    ref = f"{host}/private/busybox:1"

    def docker(*args: str, check: bool = True):  # noqa: ANN202
        return run(DOCKER_CLIENT, *args, env=env, check=check, timeout=180)

    def login(password: str, check: bool = True):  # noqa: ANN202  (output in bytes)
        return run(DOCKER_CLIENT, "login", "-u", USER, "--password-stdin", host, env=env,
                   check=check, timeout=60, input=password.encode() + b"\n")

    docker("import", "--change", "LABEL org.opencontainers.image.description=\"behind auth\"",
           str(busybox_tar), ref)
    denied = docker("push", ref, check=False)
    assert denied.returncode != 0 and "no basic auth credentials" in denied.stderr, \
        denied.stderr
    wrong = login("nope", check=False)
    assert wrong.returncode != 0 and b"401" in wrong.stderr, wrong.stderr
    login(PASSWORD)
    pushed = docker("push", ref).stdout
    digest = pushed.split("digest: ")[1].split()[0]
    docker("rmi", ref)
    assert digest in docker("pull", ref).stdout
    found = docker("search", "--no-trunc", f"{host}/busybox").stdout
    assert "private/busybox" in found and "behind auth" in found, found
    docker("logout", host)
    docker("rmi", ref)
    assert docker("pull", ref, check=False).returncode != 0
    users = {(path, status, user) for path, status, user in _requests(auth_registry)}
    assert ("/v2/private/busybox/manifests/1", 201, USER) in users


def test_podman_and_skopeo_with_credentials(run, auth_registry: RunningRegistry,
                                            containers_storage, busybox_tar,
                                            tmp_path: Path) -> None:
    host = auth_registry.host
    authfile = str(tmp_path / "auth.json")
    Path(authfile).write_text("{}")
    podman = ("podman", *containers_storage, "--events-backend=none")
    run(*podman, "import", str(busybox_tar), "localhost/bb:auth")
    denied = run(*podman, "push", "--tls-verify=false", "--authfile", authfile,
                 "localhost/bb:auth", f"{host}/private/podman:1", check=False, timeout=180)
    assert denied.returncode != 0 and "authentication required" in denied.stderr, \
        denied.stderr
    run(*podman, "login", "--tls-verify=false", "--authfile", authfile, "-u", USER,
        "--password-stdin", host, input=PASSWORD.encode())
    run(*podman, "push", "--tls-verify=false", "--authfile", authfile, "localhost/bb:auth",
        f"{host}/private/podman:1", timeout=180)
    run(*podman, "rmi", "localhost/bb:auth")
    run(*podman, "pull", "--tls-verify=false", "--authfile", authfile,
        f"{host}/private/podman:1", timeout=180)
    tags = json.loads(run("skopeo", "list-tags", "--tls-verify=false", "--creds",
                          f"{USER}:{PASSWORD}", f"docker://{host}/private/podman").stdout)
    assert tags["Tags"] == ["1"]
    anonymous = run("skopeo", "inspect", "--tls-verify=false", "--no-creds",
                    f"docker://{host}/private/podman:1", check=False)
    assert anonymous.returncode != 0 and "authentication required" in anonymous.stderr, \
        anonymous.stderr


def _requests(reg: RunningRegistry) -> list[tuple[str, int, str | None]]:
    """(path, status, user) of every request in the registry's JSON access log."""
    reg.requests()  # (waits for the log's flush)
    out = []
    for line in reg.log.read_text().splitlines():
        if line.startswith('{"ts"') and '"method"' in line:
            record = json.loads(line)
            out.append((record["path"], record["status"], record.get("user")))
    return out
