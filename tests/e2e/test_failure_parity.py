"""Dockerfiles docker refuses to build: strata must refuse them too, with a message and no
traceback, and leave its store consistent."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_tools import BASE_IMAGE, Case, Docker, Strata, Symlink, write_context

pytestmark = pytest.mark.slow

BASE = BASE_IMAGE

# Not here: `COPY --chown=nosuchuser` (docker 20.10 silently uses 0:0) and a wildcard that
# matches nothing (docker builds it; see the copy-glob-matches-nothing parity case).
FAILING = [
    Case("run-exits-nonzero", f"FROM {BASE}\nRUN echo before && exit 3\n"),
    Case("copy-missing-source", f"FROM {BASE}\nCOPY missing.txt /\n"),
    Case("copy-outside-context", f"FROM {BASE}\nCOPY ../outside.txt /\n"),
    Case("copy-through-escaping-symlink", f"FROM {BASE}\nCOPY escape/passwd /stolen\n",
         context={"escape": Symlink("/etc")}),
    Case("unknown-target", f"FROM {BASE} AS one\nRUN true\n", target="two"),
    Case("cyclic-stages", "FROM b AS a\nRUN true\nFROM a AS b\nRUN true\n"),
    Case("unknown-user-for-run", f"FROM {BASE}\nUSER nosuchuser\nRUN true\n"),
    Case("unknown-instruction", f"FROM {BASE}\nFROBNICATE now\n"),
    Case("copy-from-unknown-stage-index", f"FROM {BASE}\nCOPY --from=5 /etc/passwd /\n"),
]


@pytest.mark.parametrize("case", FAILING, ids=str)
def test_strata_refuses_what_docker_refuses(docker: Docker, strata: Strata, case: Case,
                                            tmp_path: Path) -> None:
    context = write_context(case, tmp_path / "ctx")
    (tmp_path / "outside.txt").write_text("outside the context\n")
    theirs = docker.build(case, context, f"e2e-fail/{case.name}:1")
    assert theirs.returncode != 0, "docker built it: the case is wrong"
    before = strata("images", "--format", "json").stdout
    ours = strata.build(case, context, f"e2e-fail/{case.name}:1")
    output = ours.stdout + ours.stderr
    assert ours.returncode != 0, f"strata built what docker refused:\n{output[-2000:]}"
    assert "Traceback" not in output, output[-3000:]
    assert output.strip(), "a failed build must say why"
    assert strata("images", "--format", "json").stdout == before
    strata("system", "check", "--quick")
