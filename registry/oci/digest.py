"""Content digests (`algorithm:encoded`) and a streaming Digester.

Grammar from the OCI image spec (descriptor.md):
    digest    ::= algorithm ":" encoded
    algorithm ::= component (separator component)*   component ::= [a-z0-9]+   separator ::= [+._-]
    encoded   ::= [a-zA-Z0-9=_-]+
sha256 and sha512 are the registered algorithms; their encoded part is lowercase hex.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from registry.oci.errors import DigestInvalid, Unsupported

if TYPE_CHECKING:
    from collections.abc import Iterable

_ALGORITHM = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_ENCODED = re.compile(r"[a-zA-Z0-9=_-]+")
# registered algorithm -> length of its hex encoding
REGISTERED: dict[str, int] = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[a-f0-9]+")


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A validated digest. `str(d)` gives the canonical `algorithm:encoded` form."""

    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Validate; DigestInvalid for bad syntax, Unsupported for unknown algorithms."""
        algorithm, sep, encoded = value.partition(":")
        if not sep or not _ALGORITHM.fullmatch(algorithm) or not _ENCODED.fullmatch(encoded):
            raise DigestInvalid(f"invalid digest {value!r}")
        length = REGISTERED.get(algorithm)
        if length is None:
            raise Unsupported(f"unsupported digest algorithm {algorithm!r}")
        if len(encoded) != length or not _HEX.fullmatch(encoded):
            raise DigestInvalid(f"invalid {algorithm} digest {value!r}")
        return cls(algorithm, encoded)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    @classmethod
    def from_chunks(cls, chunks: Iterable[bytes], algorithm: str = "sha256") -> Digest:
        digester = Digester(algorithm)
        for chunk in chunks:
            digester.update(chunk)
        return digester.digest()

    @property
    def hex(self) -> str:
        return self.encoded

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def is_digest(value: str) -> bool:
    """True when `value` looks like a digest (has a valid algorithm prefix and a colon)."""
    algorithm, sep, _ = value.partition(":")
    return bool(sep) and bool(_ALGORITHM.fullmatch(algorithm))


class Digester:
    """Hash while data flows; also counts bytes so size and digest are checked together."""

    __slots__ = ("algorithm", "_hash", "size")

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in REGISTERED:
            raise Unsupported(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._hash: _Hash = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(bytes(data) if isinstance(data, memoryview) else data)  # type: ignore[arg-type]
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())
