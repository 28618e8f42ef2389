"""`strata build` and `strata run`."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add the build and run subcommands to the `strata` parser."""
    del sub  # filled in with the build engine (issue 4)
