"""Differential: what .dockerignore leaves in the context, against docker's BuildKit.

For each ignore file, ``COPY . /x/`` from a fixed tree is exported with
``docker build -o type=local``; the exported paths (files and directories) must be exactly
what :func:`walk_context` yields. The cases stay within what the 20.10 client and fsutil
here agree on with current patternmatcher (no exceptions relying on deep parent matches).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tooling import DOCKER_CLIENT

from dockerfile_grammar.dockerignore import DockerIgnore, walk_context

pytestmark = pytest.mark.slow

TREE = [
    "a.txt", "b.txt", "c.log", "keep.tmp", "x.tmp", "src/main.py", "src/util/u.py",
    "src/x.tmp", "node_modules/p/index.js", "docs/readme.md", "docs/api/ref.md",
    "docs/api/img.png", "build/out", "dist/app", "logs/a.log", "empty/",
]  # fmt: skip

IGNORE_FILES = {
    "dirs_and_globs": "node_modules\n*.log\n",
    "star_then_exception": "*\n!src\n",
    "double_star_with_exception": "**/*.tmp\n!keep.tmp\n",
    "prefix_then_nested_exception": "docs/**\n!docs/api/*.md\n",
    "comments_slashes_spaces": "# comment\n/build\n  dist/  \n./logs/../empty\n",
    "classes_and_exception": "[a-c]*\n!b*\n",
    "directory_exception_reincludes_children": "src\n!src/util\n",
}


@pytest.fixture(scope="module")
def context_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ignore-parity") / "ctx"
    for rel in TREE:
        target = root / rel
        if rel.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rel)
    return root


def exported_paths(out: Path) -> set[str]:
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(out):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), out).replace(os.sep, "/"))
    return found


@pytest.mark.parametrize("case", sorted(IGNORE_FILES))
def test_context_matches_docker(
    docker_daemon: dict[str, str], context_tree: Path, tmp_path: Path, case: str
) -> None:
    ignore_text = IGNORE_FILES[case]
    (context_tree / ".dockerignore").write_text(ignore_text)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM scratch\nCOPY . /x/\n")
    out = tmp_path / "out"
    build = subprocess.run(
        [DOCKER_CLIENT, "build", "-q", "--no-cache", "-f", str(dockerfile), "-o",
         f"type=local,dest={out}", str(context_tree)],
        env=docker_daemon, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    ours = set(walk_context(context_tree, DockerIgnore.parse(ignore_text)))
    assert exported_paths(out / "x") == ours
