"""Differential tests: every Dockerfile in e2e_cases is built by docker (BuildKit, a private
dockerd) and by `strata build` from the same context and the same base rootfs; the image
configs, the flattened file trees and the containers' output must match.

Both images are read the same way: `docker save` / `strata save` (docker-archive), then the
layers are applied in order with whiteouts (e2e_tree). Unlike `docker export`, this sees
exactly what the builder committed, so a build-time file such as /etc/resolv.conf leaking into
a layer is a difference, not noise. Directory and file mtimes are not compared.
"""

from __future__ import annotations

import functools
import http.server
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e_cases import CASES, CASES_BY_NAME
from e2e_tools import BASE_IMAGE, Case, Docker, Strata, write_context
from e2e_tree import Image, config_differences, read_docker_archive, tree_differences

pytestmark = pytest.mark.slow

RUN_CASES = [case for case in CASES if case.runs]


@dataclass(slots=True)
class Built:
    """Both builds of one case; `error` holds a failed build's output."""

    docker_tag: str
    strata_tag: str
    docker_image: Image | None = None
    strata_image: Image | None = None
    strata_archive: Path | None = None
    error: str | None = None
    loaded: bool = False

    def images(self) -> tuple[Image, Image]:
        if self.error is not None:
            pytest.fail(self.error)
        assert self.docker_image is not None and self.strata_image is not None
        return self.strata_image, self.docker_image


class ParityBuilds:
    """Builds each case once per session with both builders, on first use."""

    def __init__(self, docker: Docker, strata: Strata, workdir: Path) -> None:
        self.docker, self.strata, self.workdir = docker, strata, workdir
        self._built: dict[str, Built] = {}

    def get(self, case: Case) -> Built:
        if case.name not in self._built:
            self._built[case.name] = self._build(case)
        return self._built[case.name]

    def _build(self, case: Case) -> Built:
        for name in case.needs:
            if (error := self.get(CASES_BY_NAME[name]).error) is not None:
                return Built("", "", error=f"the case {name} this one builds on failed:\n{error}")
        out = Built(docker_tag=f"e2e-docker/{case.name}:1", strata_tag=f"e2e-strata/{case.name}:1")
        context = write_context(case, self.workdir / case.name / "context")
        docker_run = self.docker.build(case, context, out.docker_tag)
        if docker_run.returncode != 0:
            out.error = f"docker build failed (the case is wrong):\n{docker_run.stderr[-3000:]}"
            return out
        docker_tar = self.workdir / case.name / "docker.tar"
        self.docker("save", "-o", str(docker_tar), out.docker_tag)
        out.docker_image = read_docker_archive(docker_tar, ref=out.docker_tag)
        if case.also_tag:
            self.docker("tag", out.docker_tag, case.also_tag)
        strata_run = self.strata.build(case, context, out.strata_tag)
        if strata_run.returncode != 0:
            out.error = (f"strata build failed (docker built it):\nstdout:\n"
                         f"{strata_run.stdout[-3000:]}\nstderr:\n{strata_run.stderr[-3000:]}")
            return out
        out.strata_archive = self.workdir / case.name / "strata.tar"
        self.strata("save", "-o", str(out.strata_archive), out.strata_tag)
        out.strata_image = read_docker_archive(out.strata_archive, ref=out.strata_tag)
        if case.also_tag:
            self.strata("tag", out.strata_tag, case.also_tag)
        return out

    def load_into_docker(self, built: Built) -> str:
        """`docker load` the strata image; returns the tag docker now knows it by."""
        built.images()
        if not built.loaded:
            assert built.strata_archive is not None
            self.docker("load", "-i", str(built.strata_archive))
            built.loaded = True
        return built.strata_tag


@pytest.fixture(scope="session")
def parity(docker: Docker, strata: Strata,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParityBuilds]:
    yield ParityBuilds(docker, strata, tmp_path_factory.mktemp("parity"))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_image_config_matches_docker(parity: ParityBuilds, case: Case) -> None:
    ours, theirs = parity.get(case).images()
    diffs = config_differences(ours.container_config, theirs.container_config)
    assert not diffs, "\n".join(diffs)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_file_tree_matches_docker(parity: ParityBuilds, case: Case) -> None:
    ours, theirs = parity.get(case).images()
    docker_tree = dict(theirs.tree)
    for stub in case.mount_stubs:  # docker 20.10 may leave each (and its created parents)
        entry = docker_tree.pop(stub, None)
        assert entry is None or entry.kind in ("dir", "file"), stub
    for stub in case.mount_stubs:
        assert not any(p.startswith(stub + "/") for p in docker_tree), stub
        assert stub not in ours.tree, f"RUN --mount stub /{stub} left in the layer"
    diffs = tree_differences(ours.tree, docker_tree)
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(diffs[:80])


@pytest.mark.parametrize("case", RUN_CASES, ids=str)
def test_container_output_matches_docker(parity: ParityBuilds, docker: Docker,
                                         case: Case) -> None:
    built = parity.get(case)
    ours = parity.load_into_docker(built)
    for spec in case.runs:
        results = {}
        for label, image in (("docker", built.docker_tag), ("strata", ours)):
            proc = docker("run", "--rm", "--network=none", image, *spec.args, check=False)
            results[label] = (proc.returncode, proc.stdout.strip())
        assert results["strata"] == results["docker"], f"run {spec.args}: {results}"
        if spec.expected is not None:
            assert results["docker"] == (0, spec.expected)



NATIVE_CASES = [CASES_BY_NAME[name] for name in
                ("run-forms", "run-deletes", "copy-into-existing", "multi-stage")]


@pytest.mark.parametrize("case", NATIVE_CASES, ids=str)
def test_native_snapshotter_tree_matches_docker(parity: ParityBuilds, strata_native: Strata,
                                                case: Case, tmp_path: Path) -> None:
    """The copy-based snapshotter (two-tree diff instead of an overlay upperdir) commits the
    same layers: deletions, replaced directories, links and modes as docker."""
    _, theirs = parity.get(case).images()
    context = write_context(case, tmp_path / "context")
    tag = f"e2e-native/{case.name}:1"
    proc = strata_native.build(case, context, tag)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    strata_native("save", "-o", str(tmp_path / "native.tar"), tag)
    ours = read_docker_archive(tmp_path / "native.tar", ref=tag)
    diffs = tree_differences(ours.tree, theirs.tree)
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(diffs[:80])


def _build_history(image: Image) -> list[tuple[bool, str]]:
    """(empty_layer, created_by) of the entries the build added (the base's one is skipped)."""
    entries = image.config.get("history") or []
    return [(bool(h.get("empty_layer")), str(h.get("created_by", ""))) for h in entries[1:]]


@pytest.mark.parametrize("case", [c for c in CASES if "FROM scratch" not in c.dockerfile],
                         ids=str)
def test_history_matches_docker(parity: ParityBuilds, case: Case) -> None:
    """Same layers in the same order, and history entries that read like BuildKit's."""
    ours, theirs = parity.get(case).images()
    assert ours.layer_count == theirs.layer_count
    mine, docker = _build_history(ours), _build_history(theirs)
    diffs = [f"#{i}: strata={a!r} docker={b!r}"
             for i, (a, b) in enumerate(itertools.zip_longest(mine, docker)) if a != b]
    assert not diffs, "\n".join(diffs)


@pytest.fixture(scope="module")
def http_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A loopback HTTP server with a few files; yields its port."""
    root = tmp_path_factory.mktemp("http-files")
    (root / "hello.txt").write_text("hello over http\n")
    (root / "tool.tar.gz").write_bytes(b"\x1f\x8b not extracted when fetched by URL")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_network_and_add_url_match_docker(parity: ParityBuilds, http_files: int) -> None:
    """RUN reaches a loopback server (host network, as `docker build --network=host`), and
    ADD <url> downloads like docker: mode 0600, archives not extracted, dest dir rules."""
    case = Case("network-and-urls", f"""\
FROM {BASE_IMAGE}
ARG PORT
RUN wget -q -O /fetched-by-run http://127.0.0.1:$PORT/hello.txt
ADD http://127.0.0.1:${{PORT}}/hello.txt /added-url
ADD http://127.0.0.1:${{PORT}}/hello.txt /url-dir/
ADD http://127.0.0.1:${{PORT}}/tool.tar.gz /downloads/
""", build_args={"PORT": str(http_files)})
    ours, theirs = parity.get(case).images()
    diffs = tree_differences(ours.tree, theirs.tree)
    diffs += config_differences(ours.container_config, theirs.container_config)
    assert not diffs, "\n".join(diffs)
    assert theirs.tree["added-url"].mode == 0o600  # the reference really fetched the URL
    assert theirs.tree["downloads/tool.tar.gz"].kind == "file"
