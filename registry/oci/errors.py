"""Registry error family: a class per error, each with its distribution-spec code; no HTTP.

    RegistryError
     ├── BlobUnknown            BLOB_UNKNOWN
     ├── BlobUploadInvalid      BLOB_UPLOAD_INVALID
     │    └── RangeInvalid      BLOB_UPLOAD_INVALID (read from RANGE_INVALID: distribution)
     ├── BlobUploadUnknown      BLOB_UPLOAD_UNKNOWN
     ├── DigestInvalid          DIGEST_INVALID
     ├── ManifestBlobUnknown    MANIFEST_BLOB_UNKNOWN
     ├── ManifestInvalid        MANIFEST_INVALID
     │    ├── TagInvalid        MANIFEST_INVALID (read from TAG_INVALID: distribution)
     │    └── ManifestTooLarge  MANIFEST_INVALID
     ├── ManifestUnknown        MANIFEST_UNKNOWN
     ├── NameInvalid            NAME_INVALID
     ├── NameUnknown            NAME_UNKNOWN
     ├── SizeInvalid            SIZE_INVALID
     ├── Unauthorized           UNAUTHORIZED
     ├── Denied                 DENIED
     ├── Unsupported            UNSUPPORTED
     │    ├── PaginationInvalid UNSUPPORTED (read from PAGINATION_NUMBER_INVALID: distribution)
     │    └── SearchQueryInvalid UNSUPPORTED
     ├── TooManyRequests        TOOMANYREQUESTS
     └── UnknownError           UNKNOWN
          └── UpstreamUnavailable UNKNOWN (a pull-through cache's upstream failed)
A class's `code` is what strata puts on the wire: only the distribution spec's fourteen codes
("The code field MUST be one of the following"), plus UNKNOWN for a 500. The finer classes
share their parent's code; distribution's own extension codes (RANGE_INVALID, TAG_INVALID,
PAGINATION_NUMBER_INVALID) are still understood when a registry sends them. The HTTP status
of each class lives only in registry/server/errors.py; registry/client.py maps error
envelopes back to these classes with `error_for_code`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    BLOB_UNKNOWN = "BLOB_UNKNOWN"
    BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
    BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
    DIGEST_INVALID = "DIGEST_INVALID"
    MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
    NAME_INVALID = "NAME_INVALID"
    NAME_UNKNOWN = "NAME_UNKNOWN"
    SIZE_INVALID = "SIZE_INVALID"
    UNAUTHORIZED = "UNAUTHORIZED"
    DENIED = "DENIED"
    UNSUPPORTED = "UNSUPPORTED"
    TOOMANYREQUESTS = "TOOMANYREQUESTS"
    # distribution's extensions: read from other registries, never sent by strata
    RANGE_INVALID = "RANGE_INVALID"
    TAG_INVALID = "TAG_INVALID"
    PAGINATION_NUMBER_INVALID = "PAGINATION_NUMBER_INVALID"
    UNKNOWN = "UNKNOWN"


class RegistryError(Exception):
    """Base of the family. `detail` is JSON-serializable extra information for the envelope."""

    code: ClassVar[ErrorCode] = ErrorCode.UNKNOWN
    default_message: ClassVar[str] = "unknown error"

    def __init__(self, message: str | None = None, *, detail: Any = None) -> None:
        self.message = message or self.default_message
        self.detail = detail
        super().__init__(self.message)


class BlobUnknown(RegistryError):
    code = ErrorCode.BLOB_UNKNOWN
    default_message = "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code = ErrorCode.BLOB_UPLOAD_INVALID
    default_message = "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    code = ErrorCode.BLOB_UPLOAD_UNKNOWN
    default_message = "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    code = ErrorCode.DIGEST_INVALID
    default_message = "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    code = ErrorCode.MANIFEST_BLOB_UNKNOWN
    default_message = "manifest references a manifest or blob unknown to registry"


class ManifestInvalid(RegistryError):
    code = ErrorCode.MANIFEST_INVALID
    default_message = "manifest invalid"


class ManifestUnknown(RegistryError):
    code = ErrorCode.MANIFEST_UNKNOWN
    default_message = "manifest unknown to registry"


class NameInvalid(RegistryError):
    code = ErrorCode.NAME_INVALID
    default_message = "invalid repository name"


class NameUnknown(RegistryError):
    code = ErrorCode.NAME_UNKNOWN
    default_message = "repository name not known to registry"


class SizeInvalid(RegistryError):
    code = ErrorCode.SIZE_INVALID
    default_message = "provided length did not match content length"


class Unauthorized(RegistryError):
    code = ErrorCode.UNAUTHORIZED
    default_message = "authentication required"


class Denied(RegistryError):
    code = ErrorCode.DENIED
    default_message = "requested access to the resource is denied"


class Unsupported(RegistryError):
    code = ErrorCode.UNSUPPORTED
    default_message = "the operation is unsupported"


class TooManyRequests(RegistryError):
    code = ErrorCode.TOOMANYREQUESTS
    default_message = "too many requests"


class RangeInvalid(BlobUploadInvalid):
    """A chunk that does not start where the upload is, or a malformed Content-Range."""

    default_message = "invalid content range"


class TagInvalid(ManifestInvalid):
    default_message = "invalid tag"


class ManifestTooLarge(ManifestInvalid):
    default_message = "manifest is larger than the registry accepts"


class PaginationInvalid(Unsupported):
    default_message = "invalid number of results requested"


class SearchQueryInvalid(Unsupported):
    """Search text past the index's bounds (length, words) or holding a control character."""

    default_message = "invalid search query"


class TransferCodingUnsupported(Unsupported):
    """A request body in a transfer coding other than chunked (RFC 9112 §6.1: 501)."""

    default_message = "the request body's transfer coding is not supported"


class ContentCodingUnsupported(Unsupported):
    """A request body with a Content-Encoding: a blob or manifest is stored as the bytes sent
    (RFC 9110 §8.4.1 allows 415)."""

    default_message = "request bodies are taken without a content coding (identity)"


class PreconditionFailed(Denied):
    """A conditional manifest write (If-Match / If-None-Match) whose condition does not hold
    for what the reference names now: the write is refused, nothing changed."""

    default_message = "the manifest the reference names does not meet the request's condition"


class UnknownError(RegistryError):
    code = ErrorCode.UNKNOWN
    default_message = "unknown error"


class UpstreamUnavailable(UnknownError):
    default_message = "the upstream registry could not be reached"


SPEC_CODES: frozenset[ErrorCode] = frozenset(ErrorCode) - {
    ErrorCode.RANGE_INVALID, ErrorCode.TAG_INVALID, ErrorCode.PAGINATION_NUMBER_INVALID,
    ErrorCode.UNKNOWN}
"""The distribution spec's error codes: the only ones a 4xx error body may carry."""

_BY_CODE: dict[ErrorCode, type[RegistryError]] = {
    **{cls.code: cls for cls in (
        BlobUnknown, BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, ManifestBlobUnknown,
        ManifestInvalid, ManifestUnknown, NameInvalid, NameUnknown, SizeInvalid, Unauthorized,
        Denied, Unsupported, TooManyRequests, UnknownError)},
    ErrorCode.RANGE_INVALID: RangeInvalid,
    ErrorCode.TAG_INVALID: TagInvalid,
    ErrorCode.PAGINATION_NUMBER_INVALID: PaginationInvalid,
}


def error_for_code(code: str, message: str | None = None, detail: Any = None) -> RegistryError:
    """Rebuild the typed error for a wire code (unknown codes become UnknownError)."""
    try:
        cls = _BY_CODE[ErrorCode(code)]
    except ValueError:
        cls = UnknownError
    return cls(message, detail=detail)
