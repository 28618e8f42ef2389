"""The CLI builds only the parser of the command it runs; the table must name every command."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from builder.cli import _COMMAND_MODULES, build_parser


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices) - {"version"}


def test_every_command_is_in_the_dispatch_table() -> None:
    assert _commands(build_parser()) == set(_COMMAND_MODULES)


@pytest.mark.parametrize("command", sorted(_COMMAND_MODULES))
def test_a_command_line_builds_its_own_parser(command: str) -> None:
    parser = build_parser(["--root", "/x", command])
    assert command in _commands(parser)
    assert len(_commands(parser)) < len(_COMMAND_MODULES)


def test_unknown_command_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "builder.cli", "nosuch"], capture_output=True,
                         text=True)
    assert out.returncode == 2
    assert "invalid choice: 'nosuch'" in out.stderr and "build" in out.stderr
    assert "search" in out.stderr


def test_build_help_explains_the_build_options() -> None:
    out = subprocess.run([sys.executable, "-m", "builder.cli", "build", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0
    assert "--cache-from" in out.stdout and "--progress" in out.stdout


def test_build_refuses_an_unknown_network_mode(tmp_path: object) -> None:
    out = subprocess.run([sys.executable, "-m", "builder.cli", "--root", str(tmp_path), "build",
                          "--network", "bridge", "."], capture_output=True, text=True)
    assert out.returncode != 0
    assert "unsupported --network 'bridge' (default, none, host)" in out.stderr
