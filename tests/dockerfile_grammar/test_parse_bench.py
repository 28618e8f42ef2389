"""The benchmark's generated Dockerfile stays valid and exactly the requested size."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "parse_bench.py"


def _load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("parse_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_file_has_the_requested_lines_and_every_feature() -> None:
    from dockerfile_grammar import parse

    text = _load().generate(2_000)
    assert text.count("\n") == 2_000
    df = parse(text)
    keywords = {i.KEYWORD for i in df.instructions}
    assert {"FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "LABEL", "HEALTHCHECK", "ONBUILD",
            "EXPOSE", "VOLUME", "USER", "WORKDIR", "CMD", "ENTRYPOINT"} <= keywords
    assert any(getattr(i, "heredocs", ()) for i in df.instructions)


def test_benchmark_prints_a_result_line() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--lines", "500", "--runs", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("RESULT parse lines_per_s=")
