"""Push a manifest whose blobs may still be remote (lazily imported build cache layers).

Blobs the store lacks are first checked on the target repository (HEAD), then mounted from
another repository of the same registry known to hold them (`transfer_blob_sources`, filled
when the cache was imported); only blobs neither works for are downloaded. Then the ordinary
push runs: it finds the mounted blobs present and uploads only what the store has and the
repository lacks. A fully cached build pushed next to its cache moves no layer bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from builder.images import ImageStore
from builder.transfer import (
    PushStats,
    RemoteOptions,
    known_sources,
    push_target,
    record_sources,
    run_client,
    upload,
)
from builder.transfer_progress import QuietProgress, TransferProgress
from registry.oci import Descriptor, Digest
from registry.oci import errors as oci_errors

_MOUNT_REFUSED = (oci_errors.Unauthorized, oci_errors.Denied, oci_errors.BlobUnknown,
                  oci_errors.NameUnknown, oci_errors.Unsupported)


def push_lazy(store: ImageStore, ref: str, data: bytes, media_type: str,
              fetch: Callable[[Iterable[Descriptor]], int],
              options: RemoteOptions | None = None,
              progress: TransferProgress | None = None) -> tuple[Digest, PushStats]:
    """Push the image manifest `data` to `ref`; `fetch` downloads blobs that must be uploaded
    but are not in the store. Returns the manifest digest and per-blob statistics."""
    options = options or RemoteOptions()
    view = progress or QuietProgress(sys.stderr)
    parsed, manifest = push_target(ref, data, media_type)
    assert parsed.registry is not None
    registry = parsed.registry
    with store.gc_guard():
        sources = known_sources(store, registry)
        missing = [b for b in manifest.blobs() if not store.content.exists(b.digest)]
        premounted: list[Digest] = []

        async def premount() -> list[Descriptor]:
            need: list[Descriptor] = []
            async with options.client(registry) as client:
                for blob in missing:
                    if await client.blob_exists(parsed.repository, blob.digest) is not None:
                        premounted.append(blob.digest)
                        continue
                    mounted = False
                    for source in sources.get(str(blob.digest), []):
                        if source == parsed.repository:
                            continue
                        try:
                            location = await client.mount_blob(parsed.repository,
                                                               blob.digest, source)
                        except _MOUNT_REFUSED:
                            continue
                        if location is None:
                            mounted = True
                            break
                    if mounted:
                        premounted.append(blob.digest)
                        view.update(blob.digest.encoded[:12], "Mounted (not downloaded)")
                    else:
                        need.append(blob)
            return need

        if missing:
            need = run_client(premount())
            if need:
                fetch(need)
        desc = Descriptor(manifest.media_type, Digest.from_bytes(data), len(data))
        stats = upload(store, parsed, desc, data, manifest, sources, options, view)
        stats.mounted.extend(d for d in premounted if d not in stats.mounted)
        record_sources(store, registry, parsed.repository,
                       [desc.digest, *(b.digest for b in manifest.blobs())])
    view.close()
    return desc.digest, stats
