"""Base images: how the builder turns an image reference a stage reads into its parts.

The builder asks a `BaseResolver` once per reference (FROM, COPY --from=<image>, RUN --mount
from=<image>), on the main thread, before any stage runs. `StoreResolver` is the default: the
local store, and for a reference that names its registry (`host[:port]/name:tag`) a pull when
the store lacks it. builder.remotecache adds a resolver that leaves a registry image's layers
remote until a step needs their bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from builder.errors import NotFound
from builder.images import Image, ImageStore
from builder.steps import Layer
from registry.oci import Descriptor, Digest, ImageConfig


@dataclass(frozen=True, slots=True)
class BaseImage:
    """A resolved image: its store entry, config, and layers bottom first (blobs may be
    remote when a lazy resolver produced it)."""

    image: Image
    config: ImageConfig
    layers: tuple[Layer, ...]


class BaseResolver(Protocol):
    """ref -> BaseImage. Raises NotFound (or a transfer error) when it cannot be had."""

    def resolve(self, ref: str) -> BaseImage: ...


def names_registry(ref: str) -> bool:
    """Does `ref` start with a registry host (`localhost`, or a name with `.` or `:`)?
    Only such base images are pulled when missing: a bare `busybox` must be local."""
    first, sep, _ = ref.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def stored_image(store: ImageStore, image: Image) -> BaseImage:
    """The BaseImage of an image registered in `store` (its layers are local)."""
    layers = tuple(Layer(Descriptor(r.media_type, Digest.parse(r.blob_digest), r.size),
                         r.diff_id, r.chain_id) for r in store.layers(image))
    return BaseImage(image, store.config(image), layers)


class StoreResolver:
    """The default resolver: the local store; `pull(ref)` fetches a registry image it lacks
    (None: never pull, a missing image is NotFound)."""

    def __init__(self, store: ImageStore, pull: Callable[[str], Image] | None = None) -> None:
        self.store = store
        self.pull = pull

    def resolve(self, ref: str) -> BaseImage:
        try:
            image = self.store.resolve(ref)
        except NotFound:
            if self.pull is None or not names_registry(ref):
                raise NotFound(f"base image {ref!r} not found in the local store "
                               "(strata pull / load / import it first)") from None
            image = self.pull(ref)
        return stored_image(self.store, image)


__all__ = ["BaseImage", "BaseResolver", "StoreResolver", "names_registry", "stored_image"]
