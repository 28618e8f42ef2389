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


def test_cli_start_up_does_not_import_aiohttp() -> None:
    """Every `strata` command builds the whole parser; aiohttp costs ~150 ms to import."""
    code = ("import sys; from builder.cli import build_parser; build_parser(); "
            "print('aiohttp' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_transfer_concurrency_default_matches_the_cli() -> None:
    from builder import cli_transfer, transfer

    assert cli_transfer.DEFAULT_CONCURRENCY == transfer.DEFAULT_CONCURRENCY


def test_a_stray_registry_error_is_a_message_not_a_traceback(monkeypatch, capsys) -> None:
    from builder import cli
    from registry.oci.errors import ManifestUnknown

    def boom(args: object) -> int:
        raise ManifestUnknown("no such manifest")

    monkeypatch.setattr(cli, "_cmd_version", boom)
    assert cli.main(["version"]) == 1
    assert "MANIFEST_UNKNOWN: no such manifest" in capsys.readouterr().err
