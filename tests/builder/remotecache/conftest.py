"""Fixtures: a real strata-registry on loopback (tests/transfer_registries.py)."""

from transfer_registries import strata_registry  # noqa: F401 - pytest fixture, found by name
