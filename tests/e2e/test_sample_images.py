"""Every sample under sample_images/ builds offline with `strata build` and its container runs
with `strata run` (hello-busybox also under `docker run` after `strata save` / `docker load`).

Base images come from the samples' own scripts: sample_images/busybox/make-base.sh (offline)
and sample_images/debian/make-base.sh (debootstrap once, tarballs cached in
/var/cache/strata-samples), whose gcc variant is the C sample's compiler base (imported as
debian:bookworm-gcc, picked through the Dockerfile's DEBIAN_TAG arg).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from e2e_tools import REPO, STRATA, Docker, Strata, run

pytestmark = pytest.mark.slow

SAMPLES = REPO / "sample_images"
CACHE_DIR = os.environ.get("STRATA_SAMPLES_CACHE", "/var/cache/strata-samples")
DEBOOTSTRAP_TIMEOUT = 1800


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Strata:
    """A store with the sample bases: busybox, debian, debian-python, debian:bookworm-gcc."""
    store = Strata(tmp_path_factory.mktemp("samples-root"))
    env = {**os.environ, "STRATA": STRATA, "STRATA_ARGS": f"--root {store.root}",
           "CACHE_DIR": CACHE_DIR}
    debian_base = ["sh", str(SAMPLES / "debian" / "make-base.sh")]
    # The gcc tarball's debootstrap (minutes, once per cache dir) runs alongside the others;
    # it is imported afterwards so two imports never write the store at once.
    gcc = subprocess.Popen([*debian_base, "--tar-only", "gcc"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run(["sh", str(SAMPLES / "busybox" / "make-base.sh")], env=env)
        run([*debian_base, "--all"], env=env, timeout=DEBOOTSTRAP_TIMEOUT)
        _, err = gcc.communicate(timeout=DEBOOTSTRAP_TIMEOUT)
    finally:
        if gcc.poll() is None:
            gcc.kill()
            gcc.wait()
    assert gcc.returncode == 0, f"make-base.sh --tar-only gcc failed:\n{err[-3000:]}"
    run([*debian_base, "gcc"], env=env)  # imports the cached tarball as debian:bookworm-gcc
    return store


def build(store: Strata, sample: str, tag: str, *extra: str) -> None:
    proc = store("build", "--progress", "plain", "-t", tag, *extra, str(SAMPLES / sample),
                 check=False, timeout=900)
    assert proc.returncode == 0, f"strata build {sample} failed:\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"


def strata_run(store: Strata, tag: str, *cmd: str) -> str:
    return store("run", "--rm", tag, *cmd).stdout


def test_hello_busybox_builds_and_greets(sample_store: Strata) -> None:
    build(sample_store, "hello-busybox", "samples/hello-busybox:1")
    assert strata_run(sample_store, "samples/hello-busybox:1").strip() == "Hello from strata"
    assert strata_run(sample_store, "samples/hello-busybox:1", "cat",
                      "/srv/greeting.txt").strip() == "Hello from strata"


def test_hello_busybox_runs_under_docker(sample_store: Strata, docker: Docker,
                                        tmp_path: Path) -> None:
    build(sample_store, "hello-busybox", "samples/hello-busybox:1")
    sample_store("save", "-o", str(tmp_path / "hello.tar"), "samples/hello-busybox:1")
    docker("load", "-i", str(tmp_path / "hello.tar"))
    out = docker("run", "--rm", "--network=none", "samples/hello-busybox:1").stdout
    assert out.strip() == "Hello from strata"
    pwd = docker("run", "--rm", "--network=none", "samples/hello-busybox:1", "pwd").stdout
    assert pwd.strip() == "/srv"


def test_heredocs_sample_writes_its_files(sample_store: Strata) -> None:
    build(sample_store, "heredocs", "samples/heredocs:1")
    out = strata_run(sample_store, "samples/heredocs:1")
    assert out.splitlines() == [
        "== /opt/demo/built-by.txt", "built by strata",
        "== /opt/demo/chomped.txt", "tabs are stripped",
        "== /opt/demo/motd", "Welcome to the heredoc sample (target: /opt/demo).",
    ]


def test_cache_mount_survives_into_the_next_build(sample_store: Strata, tmp_path: Path) -> None:
    """The RUN step re-runs (its command text changed) and finds the cache's file.

    (docker 20.10's `--no-cache` also starts cache mounts empty, so a plain rebuild with a
    changed step is the portable way to see the cache survive.)
    """
    build(sample_store, "cache-mount", "samples/cache-mount:1")
    first = strata_run(sample_store, "samples/cache-mount:1").splitlines()
    changed = tmp_path / "cache-mount"
    shutil.copytree(SAMPLES / "cache-mount", changed)
    dockerfile = changed / "Dockerfile"
    text = dockerfile.read_text()
    assert "count=$((count + 1));" in text
    dockerfile.write_text(text.replace("count=$((count + 1));", "count=$((count + 1)); : again;"))
    proc = sample_store("build", "--progress", "plain", "-t", "samples/cache-mount:2",
                        str(changed), check=False, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    second = strata_run(sample_store, "samples/cache-mount:2").splitlines()
    match = re.fullmatch(r"cache used by (\d+) build\(s\)", first[0])
    assert match, first
    assert second[0] == f"cache used by {int(match.group(1)) + 1} build(s)"
    assert re.match(r"-rw-r--r--\s+1 root\s+root\s+65536 .* /scratch/blob$", second[1])
    absent = strata_run(sample_store, "samples/cache-mount:2", "sh", "-c",
                        "test -e /var/cache/build/count || echo absent")
    assert absent.strip() == "absent", "a cache mount's content must not land in a layer"


def test_c_multistage_ships_a_static_binary(sample_store: Strata) -> None:
    build(sample_store, "c-multistage", "samples/c-multistage:1",
          "--build-arg", "DEBIAN_TAG=bookworm-gcc")
    out = strata_run(sample_store, "samples/c-multistage:1")
    assert out.strip() == "Hello from a static C binary built by strata"
    [info] = json.loads(sample_store("inspect", "samples/c-multistage:1").stdout)
    assert info["Config"]["User"] == "65534:65534"
    assert info["Config"]["Entrypoint"] == ["/usr/local/bin/hello"]


def test_python_app_runs_as_its_user(sample_store: Strata) -> None:
    build(sample_store, "python-app", "samples/python-app:1")
    out = strata_run(sample_store, "samples/python-app:1")
    assert re.fullmatch(r"Hello from python-app on Python 3\.11\.\d+", out.strip())
    uid = strata_run(sample_store, "samples/python-app:1", "id", "-un")
    assert uid.strip() == "app"
