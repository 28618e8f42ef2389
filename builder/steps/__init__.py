"""Build steps, one module per instruction family (DESIGN 3): run.py (RUN), copy.py (COPY/ADD),
metadata.py (config-only instructions and WORKDIR). They share the values defined here:

* `Layer`: one layer of the image being built (blob descriptor, diff_id, chain ID);
* `PendingLayer`: a layer a step just committed whose blob is still being written;
* `State`: what a stage looks like after a step: its cache key, config and layers.

Steps never look at the plan or the progress display; the orchestrator (builder.build) asks
the cache first and calls a step only on a miss.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future
from dataclasses import dataclass, replace

from builder.imageconfig import ConfigState
from registry.oci import Descriptor, ImageConfig


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

    @property
    def snapshot(self) -> str:
        """The committed snapshot holding this layer's tree (named by chain ID)."""
        return self.chain_id

    def result(self) -> Layer:
        return self


class PendingLayer:
    """A layer whose snapshot is committed but whose blob the workspace is still writing.

    The next step can mount `snapshot` at once; reading `descriptor`, `diff_id` or `chain_id`
    waits for the blob (and raises what writing it raised). Like BuildKit's lazy blobs, this
    takes the tar, digest and fsync of a layer off the path of the steps that follow it.
    `snapshot` is the provisional name until the workspace renames it to the chain ID."""

    __slots__ = ("future", "snapshot")

    def __init__(self, snapshot: str) -> None:
        self.snapshot = snapshot
        self.future: Future[Layer] = Future()

    def result(self) -> Layer:
        return self.future.result()

    @property
    def descriptor(self) -> Descriptor:
        return self.result().descriptor

    @property
    def diff_id(self) -> str:
        return self.result().diff_id

    @property
    def chain_id(self) -> str:
        return self.result().chain_id


LayerRef = Layer | PendingLayer


@dataclass(frozen=True, slots=True)
class State:
    """A stage after some step. `key` is the cache key of that step (the parent of the next).

    `config.config.diff_ids` is not kept up to date while steps add layers (a pending layer
    has no diff_id yet): `image_config` gives the config with the diff_ids of `layers`."""

    key: str
    config: ConfigState
    layers: tuple[LayerRef, ...] = ()
    base_image: str | None = None  # manifest digest the stage started from (for unpacking)

    @property
    def top(self) -> LayerRef | None:
        return self.layers[-1] if self.layers else None

    @property
    def chain_id(self) -> str | None:
        """Chain ID of the top layer (waits for a pending one)."""
        return self.layers[-1].chain_id if self.layers else None

    def with_layer(self, descriptor: Descriptor, diff_id: str) -> tuple[LayerRef, ...]:
        return (*self.layers, Layer(descriptor, diff_id, next_chain_id(self.chain_id, diff_id)))

    def image_config(self) -> ImageConfig:
        """The config with `rootfs.diff_ids` of this state's layers (waits for pending ones)."""
        return replace(self.config.config, diff_ids=tuple(layer.diff_id for layer in self.layers))

    def advance(self, key: str, config: ConfigState,
                layers: tuple[LayerRef, ...] | None = None) -> State:
        return replace(self, key=key, config=config,
                       layers=self.layers if layers is None else layers)
