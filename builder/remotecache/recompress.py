"""`--cache-to ...,compression=gzip|zstd|none`: cache blobs in the requested compression.

A layer whose blob is compressed otherwise is decompressed and recompressed (streaming) into a
new blob with the same diff_id; the record then points at the new blob. Conversions are
remembered per source digest, so a layer shared by many records is converted once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace

from builder.cache import CachedLayer
from builder.content import CHUNK, LocalContentStore
from builder.layers.compression import media_type_for, open_compressor, open_decompressed
from builder.remotecache.format import CacheDocument, StepRecord
from registry.oci import Descriptor, mediatypes

_COMPRESSION_OF = {
    mediatypes.OCI_LAYER_GZIP: "gzip", mediatypes.DOCKER_LAYER_GZIP: "gzip",
    mediatypes.OCI_LAYER_ZSTD: "zstd", mediatypes.OCI_LAYER: "none",
}


def normalize(compression: str) -> str:
    return "none" if compression == "uncompressed" else compression


def convert_blob(content: LocalContentStore, desc: Descriptor, compression: str) -> Descriptor:
    """A blob of the same uncompressed tar in `compression` (written to `content`)."""
    with content.open(desc.digest) as raw, \
            content.writer(f"recompress-{uuid.uuid4().hex[:12]}") as w:
        plain = open_decompressed(raw)
        comp = open_compressor(w, compression)
        while chunk := plain.read(CHUNK):
            comp.write(chunk)
        comp.close()
        size = w.size
        digest = w.commit()
    return Descriptor(media_type_for(compression), digest, size)


def recompress(doc: CacheDocument, compression: str, content: LocalContentStore,
               ensure_local: Callable[[Iterable[Descriptor]], int]) -> CacheDocument:
    """`doc` with every layer blob in `compression` (records already in it are kept)."""
    compression = normalize(compression)
    converted: dict[str, Descriptor] = {}
    records: dict[str, StepRecord] = {}
    for key, rec in doc.records.items():
        layer = rec.record.layer
        if layer is None or _COMPRESSION_OF.get(layer.descriptor.media_type) == compression:
            records[key] = rec
            continue
        src = layer.descriptor
        if str(src.digest) not in converted:
            ensure_local([src])
            converted[str(src.digest)] = convert_blob(content, src, compression)
        new_layer = CachedLayer(converted[str(src.digest)], layer.diff_id)
        records[key] = replace(rec, record=replace(rec.record, layer=new_layer))
    return CacheDocument(records, doc.mode, doc.cache_mounts)
