"""Differential: the case table's expansions against docker's own BuildKit.

Every plain-word row of expand_cases.txt that the installed dockerd's built-in Dockerfile
frontend understands becomes one ``ENV V<n>=<source>`` line of a ``FROM scratch`` image; the
image config's Env must hold exactly what :func:`expand` predicts. The dockerd here (20.10)
ships an older frontend that only knows ``$v``, ``${v}``, ``${v:-w}`` and ``${v:+w}``, so rows
using the newer modifiers are covered by the table alone.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Protocol

import pytest
from tooling import DOCKER_CLIENT

from dockerfile_grammar import DockerfileError, parse
from dockerfile_grammar.expand import expand
from dockerfile_grammar.instructions import Env

pytestmark = pytest.mark.slow


def _load_table_module() -> ModuleType:
    """test_expand.py by path (the importlib import mode puts no test folder on sys.path)."""
    path = Path(__file__).with_name("test_expand.py")
    spec = importlib.util.spec_from_file_location("_strata_expand_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


class Case(Protocol):
    """A row of the case table (test_expand.Case)."""

    kind: str
    source: str
    expected: str | list[str]
    env: dict[str, str]
    escape: str


_TABLE = _load_table_module()
CASES: list[Case] = _TABLE.CASES
START_ENV: dict[str, str] = _TABLE.START_ENV

_BRACED = re.compile(r"\$\{(\w*)(.?)(.?)")


def _old_frontend_understands(source: str) -> bool:
    """Only $v, ${v}, ${v:-w} and ${v:+w}; nothing that ends in a line continuation."""
    if source.endswith("\\"):
        return False
    for found in _BRACED.finditer(source):
        name, first, second = found.groups()
        if not name or not (first == "}" or (first == ":" and second in "-+" and second)):
            return False
    return True


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _parity_rows(*, errors: bool = False) -> list[tuple[str, Case]]:
    rows: list[tuple[str, Case]] = []
    for case in CASES:
        if case.kind != "A" or case.escape != "\\" or not isinstance(case.expected, str):
            continue
        if case.expected.startswith("error") != errors:
            continue
        if not _old_frontend_understands(case.source):
            continue
        name = f"V{len(rows)}"
        try:
            parsed = parse(f"FROM scratch\nENV {name}={case.source}\n").stages[0].instructions[0]
        except DockerfileError:
            continue  # the source is not one ENV word (spaces, quotes spanning words...)
        pairs = [(p.key, p.value) for p in parsed.pairs] if isinstance(parsed, Env) else []
        if pairs != [(name, case.source)]:
            continue
        rows.append((name, case))
    return rows


def _dockerfile(rows: list[tuple[str, Case]]) -> str:
    lines = ["FROM scratch"]
    lines.append("ENV " + " ".join(f"{k}={_quoted(v)}" for k, v in START_ENV.items()))
    current = dict(START_ENV)
    for name, case in rows:
        for key, value in case.env.items():
            if current.get(key) != value:
                lines.append(f"ENV {key}={_quoted(value)}")
                current[key] = value
        lines.append(f"ENV {name}={case.source}")
    return "\n".join(lines) + "\n"


def test_table_rows_expand_like_docker(docker_daemon: dict[str, str], tmp_path: Path) -> None:
    rows = _parity_rows()
    assert len(rows) >= 80
    (tmp_path / "Dockerfile").write_text(_dockerfile(rows), encoding="utf-8")
    iidfile = tmp_path / "iid"
    build = subprocess.run(
        [DOCKER_CLIENT, "build", "-q", "--iidfile", str(iidfile), str(tmp_path)],
        env=docker_daemon, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    inspect = subprocess.run(
        [DOCKER_CLIENT, "image", "inspect", "--format", "{{json .Config.Env}}",
         iidfile.read_text().strip()],
        env=docker_daemon, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert inspect.returncode == 0, inspect.stderr
    docker_env = dict(item.partition("=")[::2] for item in json.loads(inspect.stdout))
    mismatches = {
        case.source: (docker_env.get(name), expand(case.source, case.env))
        for name, case in rows
        if docker_env.get(name) != expand(case.source, case.env)
    }
    assert mismatches == {}
    # The table's own expectations agree with docker too.
    assert {c.source: c.expected for _, c in rows} == {c.source: docker_env[n] for n, c in rows}


ERROR_ROWS = _parity_rows(errors=True)


@pytest.mark.parametrize(("name", "case"), ERROR_ROWS, ids=[c.source for _, c in ERROR_ROWS])
def test_table_error_rows_fail_in_docker_too(
    docker_daemon: dict[str, str], tmp_path: Path, name: str, case: Case
) -> None:
    (tmp_path / "Dockerfile").write_text(_dockerfile([(name, case)]), encoding="utf-8")
    build = subprocess.run(
        [DOCKER_CLIENT, "build", "-q", str(tmp_path)],
        env=docker_daemon, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert build.returncode != 0
    assert "failed to process" in build.stderr
