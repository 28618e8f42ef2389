from __future__ import annotations

import subprocess
import sys

from builder.cli import main as strata_main
from registry.server.__main__ import main as registry_main


def test_strata_version_subcommand_prints_version(capsys) -> None:
    assert strata_main(["version"]) == 0
    assert capsys.readouterr().out.startswith("strata ")


def test_version_flags_exit_zero() -> None:
    for module in ("builder.cli", "registry.server"):
        proc = subprocess.run([sys.executable, "-m", module, "--version"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "0.1.0" in proc.stdout or "unknown" in proc.stdout


def test_registry_main_without_command_shows_help(capsys) -> None:
    assert registry_main([]) == 2
    assert "strata-registry" in capsys.readouterr().err
