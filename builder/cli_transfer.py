"""`strata pull`, `push`, `search`, `login`, `logout`: the registry client commands."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add the registry client subcommands to the `strata` parser."""
    del sub  # filled in with the distribution client (issue 6)
