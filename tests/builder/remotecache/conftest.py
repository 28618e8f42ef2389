"""Fixtures: a real strata-registry on loopback (tests/transfer_registries.py)."""

import sys
from pathlib import Path

from transfer_registries import strata_registry  # noqa: F401 - pytest fixture, found by name

sys.path.insert(0, str(Path(__file__).parent))  # ci_util (importlib mode)
