"""parse_file_cached: the same bytes parse once; any change, or an error, goes to the parser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockerfile_grammar import DockerfileError, parse_file
from dockerfile_grammar.cache import parse_file_cached

DOCKERFILE = "FROM busybox AS base\nARG X=1\nRUN echo $X\nCOPY a /b\n"


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("STRATA_NO_GRAMMAR_CACHE", raising=False)
    return home


def _cold_parse(path: Path, home: Path) -> str:
    """Parse in a fresh interpreter; report whether Lark had to be imported."""
    code = ("import sys\nfrom dockerfile_grammar.cache import parse_file_cached\n"
            f"df = parse_file_cached({str(path)!r})\n"
            "print(len(df.instructions), 'lark' in sys.modules)")
    env = dict(os.environ, XDG_CACHE_HOME=str(home))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_parsed_file_is_answered_without_the_parser(tmp_path: Path, cache_home: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(DOCKERFILE)
    assert _cold_parse(path, cache_home) == "4 True"
    assert _cold_parse(path, cache_home) == "4 False"
    assert parse_file_cached(path) == parse_file(path)
    directory = cache_home / "strata"
    assert directory.stat().st_mode & 0o777 == 0o700
    path.write_text(DOCKERFILE + "CMD x\n")
    assert _cold_parse(path, cache_home) == "5 True"


def test_errors_are_never_cached(tmp_path: Path, cache_home: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM busybox\nNOPE x\n")
    for _ in range(2):
        with pytest.raises(DockerfileError, match="NOPE"):
            parse_file_cached(path)


def test_the_file_name_is_part_of_the_key(tmp_path: Path, cache_home: Path) -> None:
    a, b = tmp_path / "a.Dockerfile", tmp_path / "b.Dockerfile"
    a.write_text(DOCKERFILE)
    b.write_text(DOCKERFILE)
    assert parse_file_cached(a).instructions[0].location.filename == str(a)
    assert parse_file_cached(b).instructions[0].location.filename == str(b)


def test_no_cache_when_asked_or_when_the_directory_is_not_private(
        tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(DOCKERFILE)
    monkeypatch.setenv("STRATA_NO_GRAMMAR_CACHE", "1")
    parse_file_cached(path)
    assert not (cache_home / "strata").exists()
    monkeypatch.delenv("STRATA_NO_GRAMMAR_CACHE")
    (cache_home / "strata").mkdir(parents=True)
    (cache_home / "strata").chmod(0o777)
    parse_file_cached(path)
    assert not (cache_home / "strata" / "dockerfiles").exists()
