"""Built layers: gzip when it pays, plain tar for incompressible content; docker loads both."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from build_util import Strata
from tooling import DOCKER_CLIENT

Ctx = Callable[..., Path]


def media_types(strata: Strata, ref: str) -> list[str]:
    from builder.images import ImageStore

    with ImageStore(strata.root) as store:
        return [row.media_type for row in store.layers(store.resolve(ref))]


def test_incompressible_layers_are_plain_tar_and_docker_runs_them(
        strata: Strata, context: Ctx, tmp_path: Path, docker_daemon: dict[str, str]) -> None:
    blob = os.urandom(6 << 20)
    text = b"compressible line of text\n" * 300_000
    ctx = context("FROM busybox\nCOPY random.bin /r.bin\nCOPY text.txt /t.txt\n"
                  "CMD [\"md5sum\", \"/r.bin\", \"/t.txt\"]\n",
                  {"random.bin": blob, "text.txt": text})
    assert strata.build(ctx, "-t", "fmt:1").rc == 0
    types = media_types(strata, "fmt:1")
    assert types[1:] == ["application/vnd.oci.image.layer.v1.tar",
                         "application/vnd.oci.image.layer.v1.tar+gzip"]
    archive = tmp_path / "fmt.tar"
    assert strata("save", "-o", str(archive), "fmt:1").rc == 0
    load = subprocess.run([DOCKER_CLIENT, "load", "-i", str(archive)], env=docker_daemon,
                          capture_output=True, text=True, timeout=300)
    assert load.returncode == 0, load.stderr
    run = subprocess.run([DOCKER_CLIENT, "run", "--rm", "--network=none", "fmt:1"],
                         env=docker_daemon, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    sums = [line.split()[0] for line in run.stdout.splitlines()]
    assert sums == [hashlib.md5(blob).hexdigest(), hashlib.md5(text).hexdigest()]
    subprocess.run([DOCKER_CLIENT, "rmi", "-f", "fmt:1"], env=docker_daemon,
                   capture_output=True, timeout=120)
