"""Build cache export/import through registries, images (inline) and directories.

Public surface: spec parsing (`parse_cache_to`, `parse_cache_from`), the cache document format
(`format`), `RemoteCache` (import, lazy blobs, export) and `push_lazy`.
"""

from builder.remotecache.format import (
    ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE,
    INLINE_CONFIG_KEY,
    CacheDocument,
    StepRecord,
)
from builder.remotecache.push import push_lazy
from builder.remotecache.session import ExportReport, RemoteCache
from builder.remotecache.spec import CacheExport, CacheImport, parse_cache_from, parse_cache_to

__all__ = ["ARTIFACT_TYPE", "CONFIG_MEDIA_TYPE", "INLINE_CONFIG_KEY", "CacheDocument",
           "CacheExport", "CacheImport", "ExportReport", "RemoteCache", "StepRecord",
           "parse_cache_from", "parse_cache_to", "push_lazy"]
