"""The shared OCI model: digests, descriptors, media types, manifests. Stdlib only, no I/O."""

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

__all__ = [
    "MAX_MANIFEST_BYTES", "Descriptor", "Digest", "Digester", "ErrorCode", "HistoryEntry",
    "ImageConfig", "ImageIndex", "ImageManifest", "Manifest", "Platform", "Reference",
    "RegistryError", "canonical_bytes", "error_for_code", "is_digest", "mediatypes",
    "parse_manifest", "parse_reference", "validate_name", "validate_tag",
]
