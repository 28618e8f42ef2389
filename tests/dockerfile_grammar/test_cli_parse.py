"""`strata parse`: readable listing, --json, stdin, and errors with exit status 1."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from builder.cli import main

SAMPLE = "FROM busybox AS base\nCOPY --from=base --chown=1000 \\\n  a /b\nRUN <<EOF\necho hi\nEOF\n"


@pytest.fixture()
def dockerfile(tmp_path: Path) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(SAMPLE)
    return path


def test_text_listing_shows_lines_and_stages(dockerfile: Path, capsys) -> None:
    assert main(["parse", str(dockerfile)]) == 0
    out = capsys.readouterr().out
    assert "stage 0 (base)" in out
    assert "2-3  COPY --from=base --chown=1000 a /b" in out
    assert "<<EOF: 1 line" in out


def test_json_output_has_directives_first_then_instructions(dockerfile: Path, capsys) -> None:
    assert main(["parse", "-f", str(dockerfile), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0] == {"directives": {"syntax": None, "escape": "\\", "check": None}}
    copy = data[2]
    assert copy["instruction"] == "COPY"
    assert (copy["line"], copy["end_line"]) == (2, 3)
    assert copy["flags"] == ["--from=base", "--chown=1000"]
    assert copy["sources"] == ["a"] and copy["dest"] == "/b" and copy["from"] == "base"
    assert data[3]["heredocs"][0]["content"] == "echo hi\n"


def test_error_goes_to_stderr_with_location_and_exit_1(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "Dockerfile.bad"
    bad.write_text("FROM busybox\n\n  RUNN make\n")
    assert main(["parse", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    first, source, caret = captured.err.splitlines()
    assert first == f'{bad}:3:3: unknown instruction "RUNN" (did you mean RUN?)'
    assert source == "  RUNN make"
    assert caret == "  ^"


def test_missing_file_exits_1(tmp_path: Path, capsys) -> None:
    assert main(["parse", str(tmp_path / "nope")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_stdin_is_read_with_dash(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("FROM scratch\nCMD [\"x\"]\n"))
    assert main(["parse", "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[2]["command"] == {"form": "exec", "argv": ["x"]}


def test_console_script_exit_status(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM x\nCOPY --chwon=1 a b\n")
    proc = subprocess.run(
        [sys.executable, "-m", "builder.cli", "parse", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert f"{bad}:2:6: unknown flag --chwon for COPY (did you mean --chown?)" in proc.stderr


@pytest.mark.parametrize(
    "sample", sorted((Path(__file__).parents[2] / "sample_images").glob("*/Dockerfile"))
)
def test_every_sample_dockerfile_parses(sample: Path, capsys) -> None:
    assert main(["parse", str(sample)]) == 0
