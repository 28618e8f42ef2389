"""Local images: references, the OCI `index.json`, unpacked layers and garbage collection.

Sources of truth, in commit order for every change:
  1. blobs (builder.content): written and verified first;
  2. strata.db (builder.metadata): image rows and references, one transaction;
  3. `oci/index.json`: derived from the database and rewritten atomically after each change
     (and on open if a crash left it stale), one descriptor per reference annotated with
     `org.opencontainers.image.ref.name`, so skopeo and umoci read the store directly.

Locks (flock, released by the kernel if a process dies):
  `<root>/lock`     exclusive while the database and index.json change (short);
  `<root>/gc.lock`  shared by anything that writes blobs before registering them (load, import,
                    unpack), exclusive for anything that deletes blobs or layers (rmi, prune).
Unpacked layers live at `<root>/layers/<chain-id hex>/`, applied into a temp dir, deduplicated
into the file index `<root>/files/` and renamed into place: the rename is the commit point.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.content import LocalContentStore, read_small
from builder.errors import FailedPrecondition, InvalidArgument, NotFound
from builder.fsutil import atomic_write, fsync_dir
from builder.layers.applier import apply_layer
from builder.layers.fileindex import FileIndex
from builder.metadata import ImageRow, LayerRow, Metadata, UnpackedRow
from registry.oci import (
    Descriptor,
    Digest,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Platform,
    RegistryError,
    canonical_bytes,
    mediatypes,
    parse_manifest,
    parse_reference,
)

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def normalize_name(text: str) -> str:
    """`busybox` -> `busybox:latest`; docker.io/library/x -> x (docker's familiar form)."""
    try:
        ref = parse_reference(text, default_registry=None)
    except RegistryError as exc:
        raise InvalidArgument(f"invalid reference {text!r}: {exc}") from None
    if ref.digest is not None:
        raise InvalidArgument(f"{text!r}: a tag cannot contain a digest")
    if ref.registry == "docker.io":
        return ref.familiar()
    return str(ref)


def names_an_id(text: str) -> bool:
    """Does `resolve` read `text` as a digest or an image-ID prefix (>= 4 hex) rather than
    as a name?"""
    hexpart = text.removeprefix("sha256:")
    return text.startswith("sha256:") or (
        4 <= len(hexpart) <= 64 and all(c in "0123456789abcdef" for c in hexpart))


DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
_OCI_TO_DOCKER = {
    mediatypes.OCI_MANIFEST: mediatypes.DOCKER_MANIFEST,
    mediatypes.OCI_CONFIG: mediatypes.DOCKER_CONFIG,
    mediatypes.OCI_LAYER_GZIP: mediatypes.DOCKER_LAYER_GZIP,
    mediatypes.OCI_LAYER: DOCKER_LAYER_TAR,
    mediatypes.OCI_LAYER_NONDIST_GZIP: mediatypes.DOCKER_LAYER_FOREIGN_GZIP,
}
_DOCKER_TO_OCI = {v: k for k, v in _OCI_TO_DOCKER.items()}


def convert_manifest(manifest: ImageManifest, to: str) -> ImageManifest:
    """The same image with Docker schema2 (`to="docker"`) or OCI (`to="oci"`) media types.

    Blobs are unchanged; only the manifest bytes (and so its digest) differ. zstd layers have
    no Docker media type (InvalidArgument). Docker schema2 has no subject or annotations.
    """
    table = _OCI_TO_DOCKER if to == "docker" else _DOCKER_TO_OCI if to == "oci" else None
    if table is None:
        raise InvalidArgument(f"unknown media type family {to!r} (docker or oci)")

    def conv(desc: Descriptor) -> Descriptor:
        if desc.media_type in table.values():
            return desc
        if desc.media_type not in table:
            raise InvalidArgument(f"{desc.media_type} has no {to} equivalent")
        return Descriptor(table[desc.media_type], desc.digest, desc.size, urls=desc.urls)

    media = table.get(manifest.media_type, manifest.media_type)
    if to == "docker":
        return ImageManifest(media, conv(manifest.config), tuple(map(conv, manifest.layers)))
    return ImageManifest(media, conv(manifest.config), tuple(map(conv, manifest.layers)),
                         manifest.subject, manifest.artifact_type, manifest.annotations)


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """OCI ChainIDs: chain(0) = diff(0); chain(n) = sha256(chain(n-1) + " " + diff(n))."""
    out: list[str] = []
    for diff in diff_ids:
        if not out:
            out.append(diff)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff}".encode()).hexdigest())
    return out


@dataclass(frozen=True, slots=True)
class Image:
    """A stored image: its manifest descriptor, config digest and local names."""

    manifest: Descriptor
    config_digest: Digest
    created: str | None
    size: int
    added: float
    names: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """The image ID, as docker has it: the config digest."""
        return str(self.config_digest)


@dataclass(frozen=True, slots=True)
class RemoveReport:
    untagged: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()


@dataclass(slots=True)
class PruneReport:
    images: list[str] = field(default_factory=list)
    blobs: int = 0
    blob_bytes: int = 0
    layers: int = 0
    pool_files: int = 0
    temp_entries: int = 0


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def _lock_is_free(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    finally:
        os.close(fd)


class ImageStore:
    """Tag, resolve, list, remove, prune and unpack images of one store root."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.content = LocalContentStore(self.root)
        self.layers_dir = self.root / "layers"
        self.pool_dir = self.root / "files"
        self.locks_dir = self.root / "locks"
        for d in (self.layers_dir, self.pool_dir, self.locks_dir):
            d.mkdir(exist_ok=True)
        self.db = Metadata(self.root / "strata.db")
        if self._index_bytes() != self._read_index_file():
            with self.lock():
                self.sync_index()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ locks

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return _flock(self.root / "lock", fcntl.LOCK_EX)

    def gc_guard(self, exclusive: bool = False) -> contextlib.AbstractContextManager[None]:
        return _flock(self.root / "gc.lock", fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)

    # ------------------------------------------------------------------ index.json

    def _index_bytes(self) -> bytes:
        entries: list[dict[str, Any]] = []
        named: set[str] = set()
        for name, digest, _ in self.db.refs():
            row = self.db.image(digest)
            if row is None:
                continue
            named.add(digest)
            entries.append({"mediaType": row.media_type, "digest": digest,
                            "size": row.manifest_size,
                            "annotations": {REF_NAME: name, CONTAINERD_NAME: name}})
        for row in sorted(self.db.images(), key=lambda r: r.manifest_digest):
            if row.manifest_digest not in named:
                entries.append({"mediaType": row.media_type, "digest": row.manifest_digest,
                                "size": row.manifest_size})
        index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": entries}
        return json.dumps(index, indent=2, sort_keys=True).encode() + b"\n"

    def _read_index_file(self) -> bytes | None:
        try:
            return (self.content.layout_dir / "index.json").read_bytes()
        except FileNotFoundError:
            return None

    def sync_index(self) -> None:
        """Rewrite oci/index.json from the database (call with the store lock held)."""
        data = self._index_bytes()
        if data != self._read_index_file():
            atomic_write(self.content.layout_dir / "index.json", data)

    def index_in_sync(self) -> bool:
        return self._index_bytes() == self._read_index_file()

    # ------------------------------------------------------------------ reading

    def manifest_bytes(self, image: Image) -> bytes:
        return read_small(self.content, image.manifest.digest)

    def manifest(self, image: Image) -> ImageManifest:
        m = parse_manifest(self.manifest_bytes(image), image.manifest.media_type)
        if not isinstance(m, ImageManifest):
            raise FailedPrecondition(f"{image.manifest.digest} is not an image manifest")
        return m

    def config_json(self, image: Image) -> dict[str, Any]:
        obj = json.loads(read_small(self.content, image.config_digest))
        if not isinstance(obj, dict):
            raise FailedPrecondition(f"config {image.config_digest} is not a JSON object")
        return obj

    def config(self, image: Image) -> ImageConfig:
        return ImageConfig.from_json(self.config_json(image))

    def layers(self, image: Image) -> list[LayerRow]:
        return self.db.layers(str(image.manifest.digest))

    def _image_from_row(self, row: ImageRow) -> Image:
        desc = Descriptor(row.media_type, Digest.parse(row.manifest_digest), row.manifest_size)
        return Image(desc, Digest.parse(row.config_digest), row.created, row.size, row.added,
                     tuple(self.db.refs_of(row.manifest_digest)))

    def images(self) -> list[Image]:
        return [self._image_from_row(r) for r in self.db.images()]

    def resolve(self, text: str) -> Image:
        """A name[:tag], a full manifest or config digest, or an image-ID prefix (>= 4 hex)."""
        text = text.strip()
        candidates: list[ImageRow] = []
        hexpart = text.removeprefix("sha256:")
        if names_an_id(text):
            candidates = self.db.images_by_config_prefix("sha256:" + hexpart)
            ids = {r.config_digest for r in candidates}
            if len(ids) > 1 and len({r.manifest_digest for r in candidates}) > 1:
                raise InvalidArgument(f"{text!r} is ambiguous: matches {len(ids)} images")
            if candidates:
                return self._image_from_row(candidates[0])
            if text.startswith("sha256:"):
                raise NotFound(f"no such image: {text}")
        try:
            name = normalize_name(text)
        except InvalidArgument:
            raise NotFound(f"no such image: {text}") from None
        digest = self.db.ref(name)
        if digest is None:
            raise NotFound(f"no such image: {text}")
        row = self.db.image(digest)
        if row is None:
            raise NotFound(f"no such image: {text} (dangling reference)")
        return self._image_from_row(row)

    # ------------------------------------------------------------------ adding

    def add_image(self, manifest_digest: Digest, names: Iterable[str] = (),
                  media_type: str | None = None) -> Image:
        """Register an image whose manifest, config and layer blobs are all committed.

        An index is resolved to the host platform's manifest. Names are (re)pointed at it.
        """
        data = read_small(self.content, manifest_digest)
        parsed = parse_manifest(data, media_type)
        if isinstance(parsed, ImageIndex):
            host = Platform.host()
            present = [d for d in parsed.manifests if self.content.exists(d.digest)]
            chosen = next((d for d in present if d.platform is not None
                           and host.matches(d.platform)), None) or (
                present[0] if len(present) == 1 and present[0].platform is None else None)
            if chosen is None:
                raise NotFound(f"index {manifest_digest} has no manifest for {Platform.host()}")
            return self.add_image(chosen.digest, names, chosen.media_type)
        media_type = parsed.media_type
        for blob in parsed.blobs():
            if not self.content.exists(blob.digest):
                raise NotFound(f"image {manifest_digest} needs blob {blob.digest}, not in store")
        config_obj = json.loads(read_small(self.content, parsed.config.digest))
        config = ImageConfig.from_json(config_obj)
        if len(config.diff_ids) != len(parsed.layers):
            raise InvalidArgument(f"image {manifest_digest}: {len(parsed.layers)} layers but "
                                  f"{len(config.diff_ids)} diff_ids in the config")
        chains = chain_ids(config.diff_ids)
        layer_rows = [LayerRow(i, diff, chain, str(d.digest), d.media_type, d.size)
                      for i, (diff, chain, d) in enumerate(zip(config.diff_ids, chains,
                                                               parsed.layers, strict=True))]
        size = parsed.config.size + sum(d.size for d in parsed.layers)
        row = ImageRow(str(manifest_digest), media_type, len(data), str(parsed.config.digest),
                       config.created, time.time(), size)
        blobs = [str(manifest_digest)] + [str(b.digest) for b in parsed.blobs()]
        normalized = [normalize_name(n) for n in names]
        with self.lock():
            self.db.put_image(row, blobs, layer_rows)
            for name in normalized:
                self.db.set_ref(name, str(manifest_digest))
            self.sync_index()
        stored = self.db.image(str(manifest_digest))
        assert stored is not None
        return self._image_from_row(stored)

    def add_manifest(self, manifest: ImageManifest, names: Iterable[str] = ()) -> Image:
        """Write a manifest we created (canonical bytes) and register it."""
        data = canonical_bytes(manifest.to_json())
        from builder.content import write_bytes
        info = write_bytes(self.content, data)
        return self.add_image(info.digest, names, manifest.media_type)

    # ------------------------------------------------------------------ tags

    def tag(self, source: str, target: str) -> Image:
        image = self.resolve(source)
        with self.lock():
            self.db.set_ref(normalize_name(target), str(image.manifest.digest))
            self.sync_index()
        return self.resolve(target)

    def untag(self, name: str) -> str:
        normalized = normalize_name(name)
        with self.lock():
            if not self.db.delete_ref(normalized):
                raise NotFound(f"no such image: {name}")
            self.sync_index()
        return normalized

    def remove(self, text: str, force: bool = False) -> RemoveReport:
        """docker rmi: untag a name; delete the image once no name is left, keeping shared
        blobs and unpacked layers that another image still uses."""
        image = self.resolve(text)
        digest = str(image.manifest.digest)
        try:
            by_name = self.db.ref(normalize_name(text)) == digest
        except InvalidArgument:
            by_name = False
        untagged: list[str] = []
        if by_name:
            untagged.append(self.untag(text))
        else:
            if len(image.names) > 1 and not force:
                raise FailedPrecondition(
                    f"image {image.id[7:19]} is referenced by {len(image.names)} names "
                    f"({', '.join(image.names)}); remove them by name or use --force")
            for name in image.names:
                untagged.append(self.untag(name))
        with self.gc_guard(exclusive=True):
            with self.lock():
                if self.db.refs_of(digest):  # still named (possibly re-tagged meanwhile)
                    return RemoveReport(tuple(untagged))
                self.db.delete_image(digest)
                self.sync_index()
            self._collect(PruneReport())
        return RemoveReport(tuple(untagged), (image.id,))

    # ------------------------------------------------------------------ garbage collection

    def prune(self) -> PruneReport:
        """Delete dangling images, then every unreferenced blob, unpacked layer, file-index
        entry and stale temp file."""
        report = PruneReport()
        with self.gc_guard(exclusive=True):
            with self.lock():
                for row in self.db.images():
                    if not self.db.refs_of(row.manifest_digest):
                        self.db.delete_image(row.manifest_digest)
                        report.images.append(row.config_digest)
                self.sync_index()
            self._collect(report)
            report.temp_entries += self.cleanup_temp()
        return report

    def _collect(self, report: PruneReport) -> None:
        """Remove unreferenced blobs and layers (caller holds the exclusive gc guard)."""
        keep = self.db.referenced_blobs()
        for info in list(self.content.walk()):
            if str(info.digest) not in keep:
                with contextlib.suppress(NotFound):
                    self.content.delete(info.digest)
                    report.blobs += 1
                    report.blob_bytes += info.size
        chains = self.db.referenced_chains()
        for entry in list(self.layers_dir.iterdir()):
            if entry.name.startswith("."):
                continue
            chain = "sha256:" + entry.name
            if chain in chains:
                continue
            self.db.delete_unpacked(chain)
            trash = self.layers_dir / f".trash-{entry.name}-{uuid.uuid4().hex[:8]}"
            os.rename(entry, trash)
            shutil.rmtree(trash, ignore_errors=True)
            report.layers += 1
        for row in self.db.all_unpacked():
            if not self.layer_path(row.chain_id).is_dir():
                self.db.delete_unpacked(row.chain_id)
        report.pool_files += _file_index(self.pool_dir).prune()

    def cleanup_temp(self) -> int:
        """Remove temp files of writers that died (their flock is free)."""
        removed = self.content.cleanup_stale_ingests()
        for entry in list(self.layers_dir.iterdir()):
            if entry.name.startswith(".trash-"):
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
            elif entry.name.startswith(".tmp-"):
                lock = self.locks_dir / (entry.name + ".lock")
                if _lock_is_free(lock):
                    shutil.rmtree(entry, ignore_errors=True)
                    with contextlib.suppress(FileNotFoundError):
                        lock.unlink()
                    removed += 1
        return removed

    # ------------------------------------------------------------------ unpacking

    def layer_path(self, chain_id: str) -> Path:
        return self.layers_dir / Digest.parse(chain_id).encoded

    def unpack(self, image: Image) -> list[Path]:
        """Unpack each layer once per chain ID (overlay whiteouts) and dedupe its files.

        Returns the layer directories, lowest first, ready to serve as overlay lowerdirs.
        """
        paths: list[Path] = []
        with self.gc_guard():
            parent: str | None = None
            for layer in self.layers(image):
                path = self.layer_path(layer.chain_id)
                if not path.is_dir():
                    with _flock(self.locks_dir / f"chain-{path.name}", fcntl.LOCK_EX):
                        if not path.is_dir():
                            self._unpack_one(layer, path, parents=paths[::-1])
                if self.db.unpacked(layer.chain_id) is None:
                    self.db.put_unpacked(UnpackedRow(layer.chain_id, parent, layer.diff_id,
                                                     _tree_size(path), time.time()))
                paths.append(path)
                parent = layer.chain_id
        return paths

    def lower_dirs(self, chain_id: str) -> list[Path]:
        """The unpacked directories below `chain_id`'s layer, topmost first."""
        dirs: list[Path] = []
        row = self.db.unpacked(chain_id)
        while row is not None and row.parent is not None:
            dirs.append(self.layer_path(row.parent))
            row = self.db.unpacked(row.parent)
        return dirs

    def _unpack_one(self, layer: LayerRow, path: Path, *, parents: Sequence[Path]) -> None:
        """Apply one layer over `parents` (topmost first), so a layer that omits a directory
        entry (umoci writes `etc/.wh.x` without `etc/`) inherits the lower directory's
        metadata instead of hiding it under a default 0755 root-owned directory."""
        with self.temp_layer_dir(path.name[:16]) as tmp:
            with self.content.open(Digest.parse(layer.blob_digest)) as stream:
                apply_layer(stream, tmp, whiteouts="overlay",
                            expected_diff_id=Digest.parse(layer.diff_id), parents=parents)
            _file_index(self.pool_dir).dedupe_tree(tmp)
            _syncfs(tmp)  # file data durable before the rename publishes the tree
            os.rename(tmp, path)
            fsync_dir(self.layers_dir)

    @contextlib.contextmanager
    def temp_layer_dir(self, label: str) -> Iterator[Path]:
        """A fresh `layers/.tmp-<label>-<rand>` dir, flock-guarded so `cleanup_temp` can tell a
        live one from one whose process died; removed on exit unless renamed away."""
        tmp_name = f".tmp-{label}-{uuid.uuid4().hex[:12]}"
        tmp = self.layers_dir / tmp_name
        lock = self.locks_dir / (tmp_name + ".lock")
        with _flock(lock, fcntl.LOCK_EX):
            try:
                tmp.mkdir()
                yield tmp
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()


def _syncfs(path: Path) -> None:
    """syncfs(2) on the filesystem holding `path` (falls back to sync(2))."""
    import ctypes

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            os.sync()
    except (OSError, AttributeError):
        os.sync()
    finally:
        os.close(fd)


def _file_index(pool_dir: Path) -> FileIndex:
    return FileIndex(pool_dir)


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class ThreadStores:
    """One ImageStore per thread on one root (each holds its own SQLite connection, which must
    not cross threads); `close()` closes every store handed out."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._local = threading.local()
        self._lock = threading.Lock()
        self._stores: list[ImageStore] = []

    def get(self) -> ImageStore:
        store: ImageStore | None = getattr(self._local, "store", None)
        if store is None:
            store = ImageStore(self.root)
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def close(self) -> None:
        with self._lock:
            for store in self._stores:
                with contextlib.suppress(Exception):
                    store.close()
            self._stores.clear()

