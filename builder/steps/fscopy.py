"""Writing COPY/ADD results into a mounted root filesystem, safely.

Every destination path is resolved inside the root with builder.layers.resolve (symlinks in
the image are followed, never out of the root); the final component is replaced, never written
through. Directory times are set last, deepest first, so creating children does not disturb
them.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from builder.context import ContextEntry, EntryKind
from builder.errors import InvalidArgument
from builder.layers.resolve import resolve_in_root


def _copy_fd(in_fd: int, out_fd: int) -> None:
    """Copy all bytes between two fds in the kernel (sendfile), or by a read loop where the
    kernel refuses. Not copy_file_range: an overlay upper dir, where COPY writes, refuses it
    (EXDEV) for a source on any other filesystem, and the failed try costs more than a copy."""
    try:
        while os.sendfile(out_fd, in_fd, None, 1 << 30) > 0:
            pass
    except OSError:
        os.lseek(in_fd, 0, os.SEEK_SET)
        os.lseek(out_fd, 0, os.SEEK_SET)
        os.ftruncate(out_fd, 0)
        while chunk := os.read(in_fd, 1 << 20):
            os.write(out_fd, chunk)


def _copy_file(source: str, dest: Path) -> None:
    """Copy a regular file's bytes; `dest` must not exist (O_EXCL, never through a symlink)."""
    out_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    try:
        in_fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _copy_fd(in_fd, out_fd)
        finally:
            os.close(in_fd)
    finally:
        os.close(out_fd)


COPY_THREADS = 4


@dataclass(frozen=True, slots=True)
class Ownership:
    """How to set owners and modes: `chown` overrides, else `keep_owner` keeps the source's
    (COPY --from) or uses root (build context, as docker's context transfer does)."""

    chown: tuple[int, int] | None = None
    chmod: int | None = None
    keep_owner: bool = False

    def owner(self, uid: int, gid: int) -> tuple[int, int]:
        if self.chown is not None:
            return self.chown
        return (uid, gid) if self.keep_owner else (0, 0)

    def mode(self, mode: int) -> int:
        return self.chmod if self.chmod is not None else mode


@dataclass(slots=True)
class Writer:
    """Creates entries under `root` (a mounted rootfs) at container paths."""

    root: Path
    own: Ownership
    dir_times: list[tuple[Path, int]] = field(default_factory=list)
    _dirs: dict[str, Path] = field(default_factory=dict)  # container dir -> host dir (made)

    def host(self, path: str, *, follow_final: bool = False) -> Path:
        return resolve_in_root(self.root, path, follow_final=follow_final)

    def mkdirs(self, path: str) -> Path:
        """Create `path` and missing parents (0755, owned by chown or root); return it."""
        known = self._dirs.get(path)
        if known is not None:
            return known
        parts = [p for p in path.split("/") if p not in ("", ".")]
        current = "/"
        host = self.root
        for i, part in enumerate(parts):
            current = current.rstrip("/") + "/" + part
            cached = self._dirs.get(current)
            if cached is not None:
                host = cached
                continue
            host = self.host(current, follow_final=True)
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                os.mkdir(host)
                os.chmod(host, 0o755)
                uid, gid = self.own.chown or (0, 0)
                os.lchown(host, uid, gid)
                continue
            if not stat.S_ISDIR(st.st_mode):
                # docker: mkdir fails with "not a directory"; never replace what is there
                # (through a symlink that would destroy the link's target)
                raise InvalidArgument(f"cannot copy to {path}: /{current.lstrip('/')} is not "
                                      "a directory")
            if i < len(parts) - 1:
                self._dirs[current] = host
        self._dirs[path] = host
        return host

    def is_dir(self, path: str) -> bool:
        try:
            return stat.S_ISDIR(os.stat(self.host(path, follow_final=True)).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def _replace(self, host: Path, want_dir: bool) -> bool:
        """Clear what stands at `host`; True when an existing directory is kept."""
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if want_dir:
                return True
            shutil.rmtree(host)
            self._dirs.clear()
        else:
            os.unlink(host)
        return False

    def place(self, entry: ContextEntry, dest: str) -> None:
        """Create one entry (file, dir, symlink, fifo, device) at container path `dest`."""
        parent, _, name = dest.rstrip("/").rpartition("/")
        parent_host = self.mkdirs(parent or "/")
        host = parent_host / name
        kind = entry.kind
        kept = self._replace(host, kind is EntryKind.DIR)
        if kind is EntryKind.DIR:
            if not kept:
                os.mkdir(host)
            self.dir_times.append((host, entry.st.st_mtime_ns))
        elif kind is EntryKind.FILE:
            _copy_file(entry.hostpath, host)
        elif kind is EntryKind.SYMLINK:
            os.symlink(entry.link_target or "", host)
        elif kind is EntryKind.FIFO:
            os.mkfifo(host)
        elif kind in (EntryKind.CHAR, EntryKind.BLOCK):
            os.mknod(host, entry.st.st_mode, entry.st.st_rdev)
        else:
            return  # sockets are not copied
        self._finish(host, kind, entry.mode, entry.uid, entry.gid, entry.st.st_mtime_ns)

    def write_bytes(self, dest: str, data: bytes, mode: int, mtime_ns: int | None) -> None:
        parent, _, name = dest.rstrip("/").rpartition("/")
        host = self.mkdirs(parent or "/") / name
        self._replace(host, False)
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        self._finish(host, EntryKind.FILE, mode, 0, 0, mtime_ns)

    def write_file(self, dest: str, source: Path, mode: int, mtime_ns: int | None) -> None:
        parent, _, name = dest.rstrip("/").rpartition("/")
        host = self.mkdirs(parent or "/") / name
        self._replace(host, False)
        _copy_file(str(source), host)
        self._finish(host, EntryKind.FILE, mode, 0, 0, mtime_ns)

    def copy_regular(self, entry: ContextEntry, host: Path) -> bool:
        """Create regular file `host` from `entry` with all its metadata through one fd.
        False when something already stands there (the caller then uses `place`).
        Thread-safe: touches nothing but `host`."""
        try:
            out_fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            return False
        try:
            in_fd = os.open(entry.hostpath, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _copy_fd(in_fd, out_fd)
            finally:
                os.close(in_fd)
            os.fchown(out_fd, *self.own.owner(entry.uid, entry.gid))
            os.fchmod(out_fd, self.own.mode(entry.mode))
            mtime = entry.st.st_mtime_ns
            os.utime(out_fd, ns=(mtime, mtime))
        finally:
            os.close(out_fd)
        return True

    def _finish(self, host: Path, kind: EntryKind, mode: int, uid: int, gid: int,
                mtime_ns: int | None) -> None:
        ouid, ogid = self.own.owner(uid, gid)
        os.lchown(host, ouid, ogid)
        if kind is not EntryKind.SYMLINK:
            os.chmod(host, self.own.mode(mode))
        if mtime_ns is not None and kind is not EntryKind.DIR:
            os.utime(host, ns=(mtime_ns, mtime_ns), follow_symlinks=False)

    def finish_dirs(self) -> None:
        for host, mtime in sorted(self.dir_times, key=lambda t: -len(str(t[0]))):
            os.utime(host, ns=(mtime, mtime), follow_symlinks=False)
        self.dir_times.clear()

    def copy_tree(self, entries: Iterable[ContextEntry], top: ContextEntry, dest: str) -> None:
        """Copy `entries` (a matched directory `top` and its subtree, walk order) so that
        `top`'s contents land in `dest`; a `dest` that did not exist is made like any missing
        parent (0755, the --chown owner; neither `top`'s mode nor --chmod), as BuildKit does."""
        cut = len(top.relpath) + 1 if top.relpath else 0
        base = dest.rstrip("/") or "/"
        # regular files are copied by a few threads (copy_file_range releases the GIL);
        # directories and everything else are made here, in walk order, parents first
        pool = ThreadPoolExecutor(max_workers=COPY_THREADS)
        pending: list[tuple[ContextEntry, str, Future[bool]]] = []
        try:
            for e in entries:
                if e is top:
                    self.mkdirs(base)
                    continue
                target = base.rstrip("/") + "/" + e.relpath[cut:]
                if e.kind is EntryKind.FILE:
                    parent, _, name = target.rpartition("/")
                    host = self.mkdirs(parent or "/") / name
                    pending.append((e, target, pool.submit(self.copy_regular, e, host)))
                else:
                    self.place(e, target)
        finally:
            pool.shutdown(wait=True)
        for e, target, fut in pending:
            if not fut.result():  # something stood there: replace it the careful way
                self.place(e, target)
