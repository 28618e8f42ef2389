"""Build steps, one module per instruction family (DESIGN 3): run.py (RUN), copy.py (COPY/ADD),
metadata.py (config-only instructions and WORKDIR). They share the values defined here:

* `Layer`: one layer of the image being built (blob descriptor, diff_id, chain ID);
* `State`: what a stage looks like after a step: its cache key, config and layers.

Steps never look at the plan or the progress display; the orchestrator (builder.build) asks
the cache first and calls a step only on a miss.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from builder.imageconfig import ConfigState
from registry.oci import Descriptor


def next_chain_id(parent: str | None, diff_id: str) -> str:
    """OCI ChainID of `diff_id` applied on the chain `parent`."""
    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Layer:
    descriptor: Descriptor
    diff_id: str
    chain_id: str


@dataclass(frozen=True, slots=True)
class State:
    """A stage after some step. `key` is the cache key of that step (the parent of the next)."""

    key: str
    config: ConfigState
    layers: tuple[Layer, ...] = ()
    base_image: str | None = None  # manifest digest the stage started from (for unpacking)

    @property
    def chain_id(self) -> str | None:
        return self.layers[-1].chain_id if self.layers else None

    def with_layer(self, descriptor: Descriptor, diff_id: str) -> tuple[Layer, ...]:
        return (*self.layers, Layer(descriptor, diff_id, next_chain_id(self.chain_id, diff_id)))

    def advance(self, key: str, config: ConfigState,
                layers: tuple[Layer, ...] | None = None) -> State:
        return replace(self, key=key, config=config,
                       layers=self.layers if layers is None else layers)
