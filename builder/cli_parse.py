"""`strata parse`: print a Dockerfile's instructions (text or --json)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the `parse` subcommand to the `strata` parser."""
    del sub  # filled in with the grammar (issue 2)


def _unused(args: argparse.Namespace) -> int:  # pragma: no cover
    return 0
