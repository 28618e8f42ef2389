"""Content store: blobs addressed by digest, written by ingest-verify-rename.

Layout under the store root (the blob half is a valid OCI image layout):

    <root>/oci/oci-layout              {"imageLayoutVersion": "1.0.0"}
    <root>/oci/index.json              maintained by builder.images
    <root>/oci/blobs/sha256/<hex>      committed blobs, never rewritten in place
    <root>/ingest/<ref>-<rand>/data    an in-flight write; `lock` is flock'ed by its writer

Lifecycle of a write (after containerd's local content store): `writer(ref)` creates a private
ingest directory on the same filesystem as the blobs; bytes are hashed while they are written;
`commit(size, digest)` flushes, fsyncs, checks size and digest, and renames the data file into
`blobs/`. Nothing is visible under a digest before that rename, so a crash at any point leaves
only an ingest directory, which `cleanup_stale_ingests` removes once no process holds its lock.
Two writers of the same blob are safe: each has its own ingest directory and the second rename
either finds the blob present (and discards its copy) or replaces it with identical bytes.

A resumable write (`resumable_writer(ref, ...)`, used by pulls) is named by its ref alone:
`<root>/ingest/<ref>/data`. Leaving it without commit keeps the data, and the next writer with
that ref re-hashes it and continues where it stopped; only one writer holds a ref at a time.
Constructing, writing and committing block on disk: async callers run them in a thread.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from builder.errors import DigestMismatch, FailedPrecondition, InvalidArgument, NotFound
from builder.fsutil import WRITEBACK_BATCH, atomic_write, fsync_dir, start_writeback
from registry.oci import Digest, Digester, mediatypes

CHUNK = 1 << 20
_REF_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: Digest
    size: int


class Provider(Protocol):
    """Reads committed content. The caller closes the returned file."""

    def open(self, digest: Digest) -> BinaryIO: ...


class Writer(Protocol):
    """One in-flight blob. Use as a context manager: leaving without commit discards it."""

    @property
    def size(self) -> int: ...

    def write(self, data: bytes | bytearray | memoryview) -> int: ...

    def commit(self, size: int | None = None, digest: Digest | None = None) -> Digest: ...

    def close(self) -> None: ...

    def __enter__(self) -> Writer: ...

    def __exit__(self, *exc: object) -> None: ...


class Ingester(Protocol):
    """Starts writes. `expected` lets the writer verify on commit without the caller's help."""

    def writer(self, ref: str, expected: Digest | None = None,
               expected_size: int | None = None) -> Writer: ...


class ContentStore(Provider, Ingester, Protocol):
    """Provider + Ingester + the two management calls the image store needs."""

    def info(self, digest: Digest) -> BlobInfo: ...

    def delete(self, digest: Digest) -> None: ...


class LocalWriter:
    """A Writer backed by `<ingest>/<ref>-<rand>/data`, or `<ingest>/<ref>/data` when
    `resumable`; see the module docstring.

    A resumable writer raises BlockingIOError when another writer holds the ref (retry
    later); it starts with the bytes an earlier writer left (`size` says how many), and
    `close()` without commit keeps them unless `discard()` was called."""

    def __init__(self, store: LocalContentStore, ref: str, expected: Digest | None,
                 expected_size: int | None, *, resumable: bool = False) -> None:
        self._store = store
        self._expected = expected
        self._expected_size = expected_size
        self._resumable = resumable
        self._keep = resumable
        safe = _REF_SAFE.sub("_", ref)[:80] or "blob"
        algorithm = expected.algorithm if expected is not None else "sha256"
        self._digester = Digester(algorithm)
        self._done = False
        self._synced = 0  # bytes already handed to writeback (start_writeback)
        self._file: BinaryIO | None = None
        if resumable:
            self.dir = store.ingest_dir / safe
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _lock_existing(self.dir / "lock")
            try:
                self._file = open(self.dir / "data", "a+b")  # noqa: SIM115
                self._file.seek(0)
                while chunk := self._file.read(CHUNK):
                    self._digester.update(chunk)
                self._synced = self._digester.size
                if expected_size is not None and self._digester.size > expected_size:
                    self.restart()
            except BaseException:
                self.close()
                raise
            return
        self.dir = store.ingest_dir / f"{safe}-{uuid.uuid4().hex[:12]}"
        self.dir.mkdir(parents=True)
        self._lock_fd = os.open(self.dir / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._file = open(self.dir / "data", "wb")  # noqa: SIM115

    @property
    def size(self) -> int:
        return self._digester.size

    def digest(self) -> Digest:
        """The digest of the bytes written so far."""
        return self._digester.digest()

    def restart(self) -> None:
        """Drop the bytes written so far (a resumed partial that cannot be continued)."""
        if self._file is None:
            raise FailedPrecondition("restart after commit or close")
        self._file.truncate(0)
        self._file.seek(0)
        self._digester = Digester(self._digester.algorithm)
        self._synced = 0

    def discard(self) -> None:
        """Let `close()` remove the data even of a resumable writer."""
        self._keep = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._file is None:
            raise FailedPrecondition("write after commit or close")
        self._digester.update(data)
        if self._expected_size is not None and self._digester.size > self._expected_size:
            raise DigestMismatch(f"{self._expected_size} bytes",
                                 f"more than {self._expected_size} bytes", "size")
        self._file.write(data)
        if self._digester.size - self._synced >= WRITEBACK_BATCH:
            # start writing the blob back now: commit's fsync then waits for little
            self._file.flush()
            start_writeback(self._file.fileno(), self._synced, self._digester.size - self._synced)
            self._synced = self._digester.size
        return len(data)

    def commit(self, size: int | None = None, digest: Digest | None = None) -> Digest:
        """Verify and publish; returns the digest. Raises DigestMismatch and discards on error."""
        if self._file is None:
            raise FailedPrecondition("writer already closed")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            actual = self._digester.digest()
            want_size = size if size is not None else self._expected_size
            if want_size is not None and want_size != self._digester.size:
                raise DigestMismatch(str(want_size), str(self._digester.size), "size")
            for want in (digest, self._expected):
                if want is not None and want != actual:
                    raise DigestMismatch(str(want), str(actual))
            target = self._store.blob_path(actual)
            target.parent.mkdir(parents=True, exist_ok=True)
            # Replacing a blob another writer just committed swaps in identical bytes;
            # readers of the old inode are unaffected.
            os.rename(self.dir / "data", target)
            fsync_dir(target.parent)
            self._done = True
            return actual
        except BaseException:
            self._keep = False  # bytes that failed verification are never resumed
            raise
        finally:
            self.close()

    def close(self) -> None:
        """Discard the ingest directory (after commit it holds only the lock file), except
        the data of a resumable writer that was not committed or discarded."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock_fd >= 0:
            data = self.dir / "data"
            if not (self._keep and not self._done and data.exists()
                    and data.stat().st_size > 0):
                shutil.rmtree(self.dir, ignore_errors=True)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> LocalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock_existing(path: Path) -> int:
    """flock `path` (created if missing) without waiting; BlockingIOError when another
    writer holds it or replaced its directory meanwhile. Returns the open descriptor."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: busy
        try:  # the holder may have finished and removed the directory meanwhile
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = -1
        if current != os.fstat(fd).st_ino:
            raise BlockingIOError("the ingest directory was replaced; retry")
    except BaseException:
        os.close(fd)
        raise
    return fd


class LocalContentStore:
    """Blobs in `<root>/oci/blobs/<alg>/<hex>`; in-flight writes in `<root>/ingest/`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.layout_dir = self.root / "oci"
        self.blobs_dir = self.layout_dir / "blobs"
        self.ingest_dir = self.root / "ingest"
        for d in (self.blobs_dir / "sha256", self.ingest_dir):
            d.mkdir(parents=True, exist_ok=True)
        layout = self.layout_dir / "oci-layout"
        if not layout.exists():
            atomic_write(layout, json.dumps(
                {"imageLayoutVersion": mediatypes.OCI_LAYOUT_VERSION}).encode())
        if not (self.layout_dir / "index.json").exists():
            atomic_write(self.layout_dir / "index.json", json.dumps(
                {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
                 "manifests": []}).encode())

    def blob_path(self, digest: Digest) -> Path:
        return self.blobs_dir / digest.algorithm / digest.encoded

    # Provider
    def open(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    # Ingester
    def writer(self, ref: str, expected: Digest | None = None,
               expected_size: int | None = None) -> LocalWriter:
        return LocalWriter(self, ref, expected, expected_size)

    def resumable_writer(self, ref: str, expected: Digest, expected_size: int) -> LocalWriter:
        """A writer that continues what an earlier writer with this `ref` left (see
        LocalWriter); BlockingIOError while another writer holds `ref`."""
        return LocalWriter(self, ref, expected, expected_size, resumable=True)

    def info(self, digest: Digest) -> BlobInfo:
        try:
            return BlobInfo(digest, self.blob_path(digest).stat().st_size)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def exists(self, digest: Digest) -> bool:
        return self.blob_path(digest).is_file()

    def delete(self, digest: Digest) -> None:
        try:
            self.blob_path(digest).unlink()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def walk(self) -> Iterator[BlobInfo]:
        """Every committed blob (files with an invalid name are skipped)."""
        for alg_dir in sorted(self.blobs_dir.iterdir()):
            if not alg_dir.is_dir():
                continue
            for entry in sorted(alg_dir.iterdir()):
                try:
                    digest = Digest.parse(f"{alg_dir.name}:{entry.name}")
                except Exception:  # noqa: BLE001 - stray file, not a blob
                    continue
                yield BlobInfo(digest, entry.stat().st_size)

    def verify(self, digest: Digest) -> None:
        """Re-hash a committed blob; DigestMismatch if its bytes changed."""
        with self.open(digest) as f:
            d = Digester(digest.algorithm)
            while chunk := f.read(CHUNK):
                d.update(chunk)
        if d.digest() != digest:
            raise DigestMismatch(str(digest), str(d.digest()), "blob")

    def cleanup_stale_ingests(self) -> int:
        """Remove ingest directories whose writer is gone (its flock is free). Returns count."""
        removed = 0
        for entry in self.ingest_dir.iterdir():
            if not entry.is_dir():
                continue
            try:
                fd = os.open(entry / "lock", os.O_RDWR)
            except FileNotFoundError:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue  # a live writer
                raise
            else:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
            finally:
                os.close(fd)
        return removed


# ----------------------------------------------------------------------------- helpers


def write_blob(ingester: Ingester, ref: str, chunks: Iterable[bytes] | BinaryIO,
               expected: Digest | None = None, expected_size: int | None = None) -> BlobInfo:
    """Stream `chunks` (an iterable of bytes or a readable file) into a verified blob."""
    with ingester.writer(ref, expected, expected_size) as w:
        if hasattr(chunks, "read"):
            reader: BinaryIO = chunks  # type: ignore[assignment]
            while chunk := reader.read(CHUNK):
                w.write(chunk)
        else:
            for chunk in chunks:
                w.write(chunk)
        size = w.size
        digest = w.commit(expected_size, expected)
    return BlobInfo(digest, size)


def write_bytes(ingester: Ingester, data: bytes, expected: Digest | None = None) -> BlobInfo:
    """Store a small in-memory object (manifest, config)."""
    return write_blob(ingester, "bytes", [data], expected, None)


def read_small(provider: Provider, digest: Digest, limit: int = 8 * 1024 * 1024) -> bytes:
    """Whole-object read for manifests and configs only, with a size cap."""
    with provider.open(digest) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InvalidArgument(f"blob {digest} is larger than {limit} bytes")
    return data
