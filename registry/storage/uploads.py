"""UploadStore: the blob upload session state machine (DESIGN section 5.3).

    OPEN --append--> OPEN --commit--> COMMITTED
      |--cancel--> CANCELLED        |--expire--> EXPIRED
Valid moves sit in TRANSITIONS; an action on an ended session raises BlobUploadUnknown.

State lives in storage, so a restart or another worker process continues a session:
`uploads/<id>/session.json` (repo, started_at) and `uploads/<id>/data`, whose size is the
offset. A live hashlib object per session is only a cache, valid while its byte count equals
the data size; otherwise commit re-hashes the data. Bytes are hashed in the same pass as they
are written (the driver's `tap`), in a worker thread, block by block, while the next block is
being received. One asyncio.Lock per session serializes its appends and commit in a process.

Commit: with the data held exclusively, move a shared session's data aside to
`uploads/<id>/committing`, so that an append waiting for it in another process finds the
session gone instead of writing into a blob being published; then append the final chunk,
fsync, check the digest, atomically move the data to the blob path (nothing is visible under
a digest before it is verified), link it into the repository, remove the session. A failed
commit cancels the session, as distribution does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid as uuidlib
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from registry.oci import Digest, validate_name
from registry.oci.errors import BlobUploadUnknown, DigestInvalid, RangeInvalid
from registry.storage import paths
from registry.storage.blobs import BlobStore
from registry.storage.driver import FileWriter, PathNotFound, Source, StorageDriver, Tap
from registry.storage.values import BlobInfo, StoreConfig, UploadStatus

log = logging.getLogger(__name__)

class UploadState(Enum):
    OPEN = "open"
    COMMITTED = "committed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class UploadAction(Enum):
    APPEND = "append"
    COMMIT = "commit"
    CANCEL = "cancel"
    EXPIRE = "expire"


TRANSITIONS: dict[tuple[UploadState, UploadAction], UploadState] = {
    (UploadState.OPEN, UploadAction.APPEND): UploadState.OPEN,
    (UploadState.OPEN, UploadAction.COMMIT): UploadState.COMMITTED,
    (UploadState.OPEN, UploadAction.CANCEL): UploadState.CANCELLED,
    (UploadState.OPEN, UploadAction.EXPIRE): UploadState.EXPIRED,
}


def next_state(uuid: str, state: UploadState, action: UploadAction) -> UploadState:
    """The state after `action`, or BlobUploadUnknown when the move is not in the table."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise BlobUploadUnknown(f"upload {uuid} is {state.value}",
                                detail={"uuid": uuid, "state": state.value}) from None


@dataclass(slots=True)
class _Session:
    uuid: str
    repo: str
    started_at: float
    state: UploadState = UploadState.OPEN
    hasher: Any = None  # hashlib sha256 object fed so far, or None (re-hash on commit)
    hashed: int = 0  # bytes the hasher has seen
    shared: bool = True  # reachable by id from any process (not a monolithic upload's own)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


Body = AsyncIterable[bytes] | Source
"""A chunk stream: pieces as they arrive, or a Source that fills the writer's buffers."""


async def pump(body: Body, writer: FileWriter, tap: Tap | None) -> None:
    """Write `body` as it arrives: pieces through `write`, a Source through `receive`. The
    writer writes (and taps) whole blocks in worker threads while the next block arrives
    (FilesystemFileWriter)."""
    if not isinstance(body, AsyncIterable):
        await writer.receive(body, tap)
        return
    async for chunk in body:
        if chunk:
            await writer.write(chunk, tap)


class UploadStore:
    def __init__(self, driver: StorageDriver, blobs: BlobStore, config: StoreConfig) -> None:
        self._driver = driver
        self._blobs = blobs
        self._config = config
        self._sessions: dict[str, _Session] = {}
        self._ended: dict[str, UploadState] = {}

    # ------------------------------------------------------------------ session bookkeeping

    def _forget(self, session: _Session, state: UploadState) -> None:
        session.state = state
        session.hasher = None
        self._sessions.pop(session.uuid, None)
        if len(self._ended) > 10000:
            self._ended.clear()
        self._ended[session.uuid] = state

    async def _session(self, repo: str, uuid: str) -> _Session:
        """The live session for `uuid` in `repo` (loaded from storage if another process or
        an earlier run started it); BlobUploadUnknown otherwise."""
        paths.check_upload_id(uuid)
        ended = self._ended.get(uuid)
        if ended is not None:
            next_state(uuid, ended, UploadAction.APPEND)
        session = self._sessions.get(uuid)
        if session is None:
            try:
                raw = json.loads(await self._driver.get_content(paths.upload_session(uuid)))
                session = _Session(uuid, str(raw["repo"]), float(raw["started_at"]))
            except (PathNotFound, ValueError, KeyError, TypeError):
                raise BlobUploadUnknown(detail={"uuid": uuid}) from None
            session = self._sessions.setdefault(uuid, session)
        if session.repo != repo:
            raise BlobUploadUnknown(detail={"uuid": uuid})
        return session

    async def _offset(self, session: _Session) -> int:
        """Bytes received so far; ends the session when another process already did."""
        try:
            return (await self._driver.stat(paths.upload_data(session.uuid))).size
        except PathNotFound:
            self._forget(session, UploadState.CANCELLED)
            raise BlobUploadUnknown(detail={"uuid": session.uuid}) from None

    async def _check(self, repo: str, uuid: str, action: UploadAction) -> _Session:
        """Check the move is allowed and the session not expired; returns the session.
        The caller holds the session lock."""
        session = await self._session(repo, uuid)
        next_state(uuid, session.state, action)
        if time.time() - session.started_at > self._config.upload_ttl_seconds:
            next_state(uuid, session.state, UploadAction.EXPIRE)
            await self._remove(session, UploadState.EXPIRED)
            raise BlobUploadUnknown("upload expired", detail={"uuid": uuid})
        return session

    async def _open(self, repo: str, uuid: str, action: UploadAction) -> tuple[_Session, int]:
        """`_check`, then the session's offset."""
        session = await self._check(repo, uuid, action)
        return session, await self._offset(session)

    async def _data_writer(self, session: _Session, start: int | None) -> FileWriter:
        """The session's data opened for appending (held exclusively, so its size is the
        offset); RangeInvalid when `start` is not that offset, BlobUploadUnknown (and the
        session ends) when another process already ended it. One storage call: no stat."""
        try:
            writer = await self._driver.writer(paths.upload_data(session.uuid), append=True,
                                               create=False)
        except PathNotFound:
            self._forget(session, UploadState.CANCELLED)
            raise BlobUploadUnknown(detail={"uuid": session.uuid}) from None
        if start is not None and start != writer.size:
            await writer.close()
            raise RangeInvalid(f"chunk starts at {start}, upload is at {writer.size}",
                               detail={"offset": writer.size})
        return writer

    async def _remove(self, session: _Session, state: UploadState) -> None:
        self._forget(session, state)
        with contextlib.suppress(PathNotFound):
            await self._driver.delete(paths.upload_dir(session.uuid))

    def _status(self, session: _Session, offset: int) -> UploadStatus:
        return UploadStatus(session.uuid, session.repo, offset, session.started_at)

    # ------------------------------------------------------------------ public API

    async def start(self, repo: str) -> UploadStatus:
        """Open a new session in `repo` (NameInvalid for a bad name)."""
        return self._status(await self._begin(repo, shared=True), 0)

    async def _begin(self, repo: str, shared: bool) -> _Session:
        """A new OPEN session. Only a `shared` one (reachable by id from any process) gets a
        session.json; a private one (monolithic put) is purged by its data file's age."""
        validate_name(repo)
        uuid = uuidlib.uuid4().hex
        started_at = time.time()
        writer = await self._driver.writer(paths.upload_data(uuid))
        await writer.close()
        if shared:
            await self._driver.put_content(
                paths.upload_session(uuid),
                json.dumps({"repo": repo, "started_at": started_at}).encode())
        session = _Session(uuid, repo, started_at, hasher=hashlib.sha256(), shared=shared)
        self._sessions[uuid] = session
        return session

    async def status(self, repo: str, uuid: str) -> UploadStatus:
        """Where the session is (not serialized with a running append: a snapshot)."""
        session, offset = await self._open(repo, uuid, UploadAction.APPEND)
        return self._status(session, offset)

    async def append(self, repo: str, uuid: str, chunks: Body,
                     start: int | None = None) -> UploadStatus:
        """Append a chunk stream. `start` (from Content-Range) must equal the offset, else
        RangeInvalid with detail {"offset": n} and nothing is written."""
        session = await self._session(repo, uuid)
        async with session.lock:
            session = await self._check(repo, uuid, UploadAction.APPEND)
            writer = await self._data_writer(session, start)
            size = await self._write(session, writer, chunks, commit=False)
            return self._status(session, size)

    async def _write(self, session: _Session, writer: FileWriter,
                     chunks: Body | None, commit: bool) -> int:
        """Append `chunks` to the session data through `writer` (which this ends), hashing
        them in the same pass when the live hasher is in step with the data; fsync when
        `commit`. Returns the new size."""
        hasher = session.hasher if writer.size == session.hashed else None
        if hasher is None and writer.size == 0:
            hasher = hashlib.sha256()
        try:
            if chunks is not None:
                await pump(chunks, writer, hasher.update if hasher is not None else None)
        except BaseException:
            session.hasher = None
            await writer.close()
            raise
        if commit:
            await writer.commit()
        else:
            await writer.close()
        session.hasher = hasher
        session.hashed = writer.size
        return writer.size

    async def commit(self, repo: str, uuid: str, digest: Digest,
                     chunks: Body | None = None,
                     start: int | None = None) -> BlobInfo:
        """Finish the upload as `digest`: append `chunks`, verify, move into place, link.

        DigestInvalid (and the session is cancelled) when the bytes do not match; a second
        commit of the same uuid raises BlobUploadUnknown.
        """
        session = await self._session(repo, uuid)
        async with session.lock:
            session = await self._check(repo, uuid, UploadAction.COMMIT)
            # RangeInvalid here leaves the session usable (a client can resume).
            writer = await self._data_writer(session, start)
            data = paths.upload_data(uuid)
            if session.shared:
                # Held by `writer` (no other append can start), the data leaves the path that
                # appends open; the writer goes on writing the same file under its new name.
                try:
                    await self._driver.move(data, paths.upload_committing(uuid))
                except BaseException:
                    await writer.close()
                    await self._remove(session, UploadState.CANCELLED)
                    raise
                data = paths.upload_committing(uuid)
            try:
                size = await self._write(session, writer, chunks, commit=True)
                actual = await self._digest(data, session, size, digest.algorithm)
            except BaseException:
                await self._remove(session, UploadState.CANCELLED)
                raise
            if actual != digest:
                await self._remove(session, UploadState.CANCELLED)
                raise DigestInvalid(detail={"digest": str(digest), "actual": str(actual)})
            await self._publish(data, digest, size)
            info = await self._blobs.link(repo, digest, size)
            await self._remove(session, UploadState.COMMITTED)
            return info

    async def _digest(self, data: str, session: _Session, size: int, algorithm: str) -> Digest:
        """The digest of the `data` file: the live hasher's when it saw all of it."""
        if session.hasher is not None and session.hashed == size and algorithm == "sha256":
            return Digest("sha256", session.hasher.hexdigest())
        try:
            hasher = hashlib.new(algorithm)
        except ValueError:
            raise DigestInvalid(f"unsupported digest algorithm {algorithm!r}") from None
        loop = asyncio.get_running_loop()
        async for chunk in self._driver.reader(data):
            await loop.run_in_executor(None, hasher.update, chunk)
        return Digest(algorithm, hasher.hexdigest())

    async def _publish(self, data: str, digest: Digest, size: int) -> None:
        """Move the verified `data` to the blob path unless identical bytes are already there."""
        target = paths.blob_data(digest)
        try:
            if (await self._driver.stat(target)).size == size:
                return
        except PathNotFound:
            pass
        await self._driver.move(data, target)

    async def cancel(self, repo: str, uuid: str) -> None:
        """End the session, removing what it received. An append or commit that another
        process is running on it goes first (the cancel waits for their writer); once a
        commit has taken the data, the session is gone (BlobUploadUnknown)."""
        session = await self._session(repo, uuid)
        async with session.lock:
            session = await self._check(repo, uuid, UploadAction.CANCEL)
            writer = await self._data_writer(session, None)
            try:
                await self._remove(session, UploadState.CANCELLED)
            finally:
                await writer.close()

    async def put(self, repo: str, digest: Digest, chunks: Body) -> BlobInfo:
        """Monolithic upload (POST ?digest=): a session opened and committed in one call."""
        session = await self._begin(repo, shared=False)
        return await self.commit(repo, session.uuid, digest, chunks)

    async def purge_expired(self, now: float | None = None) -> int:
        """Remove sessions older than the TTL (and orphan upload dirs); returns how many.
        Also forgets the sessions this process knew that another one has ended since."""
        now = time.time() if now is None else now
        ttl = self._config.upload_ttl_seconds
        known = [s for s in self._sessions.values() if s.shared]  # (their dirs exist by now)
        try:
            entries: Sequence[str] = await self._driver.list(paths.UPLOADS)
        except PathNotFound:
            entries = []
        listed = {entry.rsplit("/", 1)[-1] for entry in entries}
        for session in known:
            if session.uuid not in listed and not session.lock.locked():
                self._sessions.pop(session.uuid, None)  # committed or cancelled elsewhere
        purged = 0
        for entry in entries:
            uuid = entry.rsplit("/", 1)[-1]
            try:
                paths.check_upload_id(uuid)
            except BlobUploadUnknown:
                continue
            live = self._sessions.get(uuid)
            if live is not None and live.lock.locked():
                continue
            started = await self._started_at(uuid)
            if started is not None and now - started <= ttl:
                continue
            if live is not None:
                self._forget(live, UploadState.EXPIRED)
            with contextlib.suppress(PathNotFound):
                await self._driver.delete(paths.upload_dir(uuid))
                purged += 1
        return purged

    async def _started_at(self, uuid: str) -> float | None:
        try:
            raw = json.loads(await self._driver.get_content(paths.upload_session(uuid)))
            return float(raw["started_at"])
        except (PathNotFound, ValueError, KeyError, TypeError):
            pass
        try:  # no session file: an orphan, or a start racing us; judge by the data's age
            return (await self._driver.stat(paths.upload_data(uuid))).mtime
        except PathNotFound:
            return None
