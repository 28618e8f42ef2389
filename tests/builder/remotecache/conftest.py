"""Fixtures: a real strata-registry on loopback (tests/transfer_registries.py)."""

import sys
from pathlib import Path

from transfer_registries import (  # noqa: F401 - pytest fixtures, found by name
    docker_registry,
    strata_registry,
)

sys.path.insert(0, str(Path(__file__).parent))  # ci_util (importlib mode)
