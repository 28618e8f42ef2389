"""Local image commands: images, inspect, history, tag, rmi, prune, import, save, load, system."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add the image-management subcommands to the `strata` parser."""
    del sub  # filled in with the content store (issue 3)
