"""Manifest content negotiation on `Accept`, as distribution answers it.

A registry stores a manifest's exact bytes and cannot convert between formats, so the choice
is what to send when the client's Accept does not list the stored media type:

- an index or manifest list fetched by tag, by a client that lists an image manifest type:
  the index's linux/amd64 image (distribution's rewrite for clients that cannot read lists);
- anything else: 404 MANIFEST_UNKNOWN naming the type, as distribution answers an OCI
  manifest to a client that only accepts Docker types.

No Accept, `*/*`, `application/*` and `application/json` (every manifest is JSON) accept
any manifest. A media type with `q=0` is refused (RFC 9110 §12.5.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.oci import mediatypes as mt
from registry.oci.descriptor import Platform

DEFAULT_PLATFORM = Platform("linux", "amd64")
"""The index entry given to a client that cannot read an index (distribution's choice)."""

_ANY = frozenset({"*/*", "application/*", "application/json"})


@dataclass(frozen=True, slots=True)
class Acceptable:
    """What an Accept field lets through: the types it lists with q above 0, those it
    refuses with q=0, and whether a wildcard takes the rest."""

    types: frozenset[str]
    refused: frozenset[str]
    anything: bool

    @classmethod
    def parse(cls, accept: str | None) -> Acceptable:
        if accept is None or not accept.strip():
            return cls(frozenset(), frozenset(), True)
        types, refused, anything = set(), set(), False
        for item in accept.split(","):
            media_type, *params = (part.strip() for part in item.split(";"))
            media_type = media_type.lower()
            if not media_type:
                continue
            if _refused(params):
                refused.add(media_type)
            elif media_type in _ANY:
                anything = True
            else:
                types.add(media_type)
        return cls(frozenset(types), frozenset(refused), anything)

    def takes(self, media_type: str) -> bool:
        return media_type not in self.refused and (self.anything or media_type in self.types)


def _refused(params: list[str]) -> bool:
    """A `q=0` (or 0.0, 0.000) parameter: the client refuses the type."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value) == 0
            except ValueError:
                return False
    return False


def accepts(accept: str | None, media_type: str) -> bool:
    """Whether a client sending `accept` takes a manifest of `media_type`.

    The usual case (the type listed, no q-values) is a substring test, so the HEAD and GET
    hot paths parse nothing.
    """
    if accept is None or (media_type in accept and ";" not in accept):
        return True
    return Acceptable.parse(accept).takes(media_type)


def wants_an_image_from(accept: str | None, media_type: str) -> bool:
    """An index the client cannot read, where it can read an image manifest instead."""
    acceptable = Acceptable.parse(accept)
    return (media_type in mt.INDEXES and not acceptable.takes(media_type)
            and any(acceptable.takes(t) for t in mt.IMAGE_MANIFESTS))
