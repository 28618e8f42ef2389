"""Fixtures: real registries on loopback (defined once in tests/transfer_registries.py)."""

from transfer_registries import (  # noqa: F401 - pytest fixtures, found by name
    basic_auth_registry,
    docker_registry,
    strata_registry,
)
