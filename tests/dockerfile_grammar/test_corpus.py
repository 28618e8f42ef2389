"""Golden corpus: every ``cases/<name>/Dockerfile`` parses to its ``expected.json``.

Valid cases store the :func:`dockerfile_grammar.to_json` output; invalid cases store
``{"error": {"line": N, "column": C, "message": "..."}}``. Set ``STRATA_REGEN=1`` to
rewrite the expected files (then review every diff before committing).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from dockerfile_grammar import DockerfileError, parse, to_json

CASES = Path(__file__).parent / "cases"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "Dockerfile").is_file())


def _result(name: str) -> Any:
    text = (CASES / name / "Dockerfile").read_bytes().decode("utf-8")
    try:
        return to_json(parse(text))
    except DockerfileError as err:
        return {"error": {"line": err.line, "column": err.column, "message": err.message}}


def test_corpus_is_large_enough() -> None:
    invalid = [n for n in NAMES if n.startswith("err-")]
    assert len(NAMES) >= 80 and len(invalid) >= 25


@pytest.mark.parametrize("name", NAMES)
def test_case_matches_expected(name: str) -> None:
    expected_path = CASES / name / "expected.json"
    got = _result(name)
    if os.environ.get("STRATA_REGEN") == "1":
        expected_path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
    expected = json.loads(expected_path.read_text())
    assert got == expected
    assert ("error" in expected) == name.startswith("err-")
