"""The shared OCI model: digests, descriptors, media types, manifests. Stdlib only, no I/O.

Names are loaded on first use (PEP 562), so importing one submodule, such as
`registry.oci.errors` for the CLI's error handler, does not build every manifest dataclass.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.oci import mediatypes
    from registry.oci.descriptor import Descriptor, Platform
    from registry.oci.digest import Digest, Digester, is_digest
    from registry.oci.errors import ErrorCode, RegistryError, error_for_code
    from registry.oci.manifest import (
        MAX_MANIFEST_BYTES,
        HistoryEntry,
        ImageConfig,
        ImageIndex,
        ImageManifest,
        Manifest,
        canonical_bytes,
        parse_manifest,
    )
    from registry.oci.reference import Reference, parse_reference, validate_name, validate_tag

_HOME = {
    "mediatypes": "mediatypes",
    "Descriptor": "descriptor", "Platform": "descriptor",
    "Digest": "digest", "Digester": "digest", "is_digest": "digest",
    "ErrorCode": "errors", "RegistryError": "errors", "error_for_code": "errors",
    "MAX_MANIFEST_BYTES": "manifest", "HistoryEntry": "manifest", "ImageConfig": "manifest",
    "ImageIndex": "manifest", "ImageManifest": "manifest", "Manifest": "manifest",
    "canonical_bytes": "manifest", "parse_manifest": "manifest",
    "Reference": "reference", "parse_reference": "reference", "validate_name": "reference",
    "validate_tag": "reference",
}

__all__ = [
    "Descriptor",
    "Digest",
    "Digester",
    "ErrorCode",
    "HistoryEntry",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "MAX_MANIFEST_BYTES",
    "Manifest",
    "Platform",
    "Reference",
    "RegistryError",
    "canonical_bytes",
    "error_for_code",
    "is_digest",
    "mediatypes",
    "parse_manifest",
    "parse_reference",
    "validate_name",
    "validate_tag",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{home}")
    value = module if home == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
