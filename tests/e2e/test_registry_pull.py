"""A strata-built image travels through strata's own registry and podman pulls it intact.

strata build -> skopeo copy from the store's OCI layout -> strata-registry -> podman pull
(vfs storage, tmp root) -> podman save -> the same tree and config as `strata save`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_tools import BASE_IMAGE, Case, File, Strata, run, write_context
from e2e_tree import Image, config_differences, read_docker_archive, tree_differences
from tooling import free_port

pytestmark = pytest.mark.slow

REGISTRY = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "strata-registry")

PUSHED = Case("pushed", f"""\
FROM {BASE_IMAGE}
COPY greeting.txt /srv/greeting.txt
RUN ln -s /srv/greeting.txt /greeting && chmod 0600 /srv/greeting.txt && rm /bin/vi
ENV GREETING=hello
CMD ["cat", "/greeting"]
""", context={"greeting.txt": File("hello through the registry\n")})


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("registry")
    port = free_port()
    log = (base / "registry.log").open("wb")
    proc = subprocess.Popen([REGISTRY, "serve", "--addr", f"127.0.0.1:{port}",
                             "--root", str(base / "data")], stdout=log, stderr=subprocess.STDOUT)
    url = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://{url}/v2/", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            raise RuntimeError((base / "registry.log").read_text()[-3000:])
        time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_podman_pulls_strata_image_from_strata_registry(
        strata: Strata, registry_url: str, tmp_path: Path) -> None:
    context = write_context(PUSHED, tmp_path / "context")
    built = strata.build(PUSHED, context, "e2e/pushed:1")
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    strata("save", "-o", str(tmp_path / "strata.tar"), "e2e/pushed:1")
    ours = read_docker_archive(tmp_path / "strata.tar")

    remote = f"{registry_url}/e2e/pushed:1"
    run(["skopeo", "copy", "--dest-tls-verify=false",
         f"oci:{strata.root / 'oci'}:e2e/pushed:1", f"docker://{remote}"])

    short = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))  # podman: runroot <= 50 chars
    try:
        pulled = pull_and_save(short, remote, tmp_path / "podman.tar")
    finally:
        shutil.rmtree(short, ignore_errors=True)

    assert not config_differences(pulled.container_config, ours.container_config)
    assert not tree_differences(pulled.tree, ours.tree)
    assert ours.tree["greeting"].link == "/srv/greeting.txt"
    assert ours.tree["srv/greeting.txt"].mode == 0o600
    assert "bin/vi" not in ours.tree and "bin/sh" in ours.tree


def pull_and_save(base: Path, remote: str, archive: Path) -> Image:
    """podman pull (vfs storage below `base`), check the config, podman save, read it back."""
    podman = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
              "--storage-driver", "vfs"]
    run([*podman, "pull", "--tls-verify=false", remote])
    inspect = json.loads(run([*podman, "image", "inspect", remote]).stdout)[0]
    assert inspect["Config"]["Cmd"] == ["cat", "/greeting"]
    run([*podman, "save", "--format", "docker-archive", "-o", str(archive), remote])
    return read_docker_archive(archive)
