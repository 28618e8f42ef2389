"""Layer tar writing (deterministic) and applying (member by member, hostile-input safe).

Writing (`write_changes`): PAX headers in the order the changes come (sorted by the change
sources), no atime/ctime, empty uname/gname, integer mtimes clamped to SOURCE_DATE_EPOCH when
given, `.wh.NAME` for deletions and `.wh..wh..opq` after an opaque directory (both mtime 0),
hard links inside the layer as link entries (first path seen per (dev, inode) wins), xattrs as
`SCHILY.xattr.*` records (overlayfs' private ones dropped), sockets skipped.

Applying (`apply_tar`): never `TarFile.extractall`. Each member name is cleaned (absolute names
and `..` components are refused), its parent resolved with `resolve_in_root` (symlinks that this
same layer created are refused, older ones are followed but clamped to the root), the entry itself
is created with O_NOFOLLOW / O_EXCL after removing whatever was there, hard-link targets are
resolved inside the root, whiteouts are validated, device nodes are made only as root, directory
modes and times are set last, and ApplyLimits bound total bytes, entry count and header size.
A broken rule raises LayerRejected naming the member. The root must be private to the caller
during the call (nothing else writes into it); apply into a temp dir and rename on success.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from builder.errors import FailedPrecondition, InvalidArgument, LayerRejected
from builder.layers.changes import OVERLAY_XATTR_PREFIXES, Change, ChangeKind, read_xattrs
from builder.layers.resolve import clean_relative, resolve_with_links
from registry.oci.digest import Digest

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
XATTR_PAX_PREFIX = "SCHILY.xattr."
_ENCODING, _ERRORS = "utf-8", "surrogateescape"
_CHUNK = 1 << 20
_BUFFER = 1 << 20
_END_OF_ARCHIVE = b"\0" * (2 * tarfile.BLOCKSIZE)
WHITEOUT_MODES = ("overlay", "merge", "none")


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


# ---------------------------------------------------------------------------------------- write


class _TarStream:
    """Buffers small writes into ~1 MiB chunks for the downstream hashers and compressors."""

    __slots__ = ("_out", "_buf")

    def __init__(self, out: Sink) -> None:
        self._out = out
        self._buf = bytearray()

    def put(self, data: bytes) -> None:
        if len(data) >= _BUFFER // 4:
            self.flush()
            self._out.write(data)
            return
        self._buf += data
        if len(self._buf) >= _BUFFER:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._out.write(bytes(self._buf))
            self._buf.clear()


def _pad(size: int) -> bytes:
    rest = size % tarfile.BLOCKSIZE
    return b"\0" * (tarfile.BLOCKSIZE - rest) if rest else b""


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, _ENCODING, _ERRORS)


def _whiteout_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.REGTYPE
    info.mode = 0
    info.mtime = 0
    info.uname = info.gname = ""
    return info


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def write_changes(
    changes: Iterable[Change], out: Sink, *, source_date_epoch: int | None = None
) -> None:
    """Write an OCI layer tar for `changes` into `out` (see module docstring)."""
    stream = _TarStream(out)
    inodes: dict[tuple[int, int], str] = {}
    for change in changes:
        path = change.path.strip("/")
        if not path:
            continue
        if change.kind is ChangeKind.DELETE:
            parent, _, base = path.rpartition("/")
            stream.put(_header(_whiteout_info(_join(parent, WHITEOUT_PREFIX + base))))
            continue
        if change.source is None:
            raise InvalidArgument(f"change {path!r} has no source")
        _write_entry(stream, path, change.source, inodes, source_date_epoch)
        if change.opaque:
            stream.put(_header(_whiteout_info(_join(path, OPAQUE_WHITEOUT))))
    stream.put(_END_OF_ARCHIVE)
    stream.flush()


def _write_entry(
    stream: _TarStream,
    path: str,
    source: Path,
    inodes: dict[tuple[int, int], str],
    source_date_epoch: int | None,
) -> None:
    st = os.lstat(source)
    mode = st.st_mode
    if stat.S_ISSOCK(mode):
        return  # sockets cannot be archived (containerd and docker skip them too)
    info = tarfile.TarInfo(path)
    info.mode = stat.S_IMODE(mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    mtime = int(st.st_mtime)
    if source_date_epoch is not None and mtime > source_date_epoch:
        mtime = source_date_epoch
    info.mtime = mtime
    info.pax_headers = {
        XATTR_PAX_PREFIX + name: value.decode(_ENCODING, _ERRORS)
        for name, value in read_xattrs(source).items()
    }
    data_size = 0
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        first = inodes.get(key) if st.st_nlink > 1 else None
        if first is not None:
            info.type, info.linkname = tarfile.LNKTYPE, first
        else:
            if st.st_nlink > 1:
                inodes[key] = path
            info.type, info.size = tarfile.REGTYPE, st.st_size
            data_size = st.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(source)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:  # pragma: no cover - no other file types on Linux
        return
    stream.put(_header(info))
    if data_size:
        _copy_file(stream, source, data_size, path)


def _copy_file(stream: _TarStream, source: Path, size: int, path: str) -> None:
    remaining = size
    with open(source, "rb", buffering=0) as f:
        while remaining:
            chunk = f.read(min(remaining, _CHUNK))
            if not chunk:
                raise FailedPrecondition(f"{path}: file shrank while being archived")
            stream.put(chunk)
            remaining -= len(chunk)
    stream.put(_pad(size))


# ---------------------------------------------------------------------------------------- apply


@dataclass(frozen=True, slots=True)
class ApplyLimits:
    """Bounds on what one layer may unpack to (a tar bomb is refused, not half-applied)."""

    max_bytes: int = 64 << 30  # uncompressed tar bytes (and sum of member sizes)
    max_entries: int = 5_000_000
    max_header_bytes: int = 16 << 20  # one PAX / GNU long-name header


class _HashingReader:
    """Forward-only reader for tarfile's "r:" mode: hashes and counts everything read.

    tarfile only ever seeks forward, except one byte back (`seek(offset - 1); read(1)`), served
    from a small tail of the bytes already delivered.
    """

    def __init__(self, raw: BinaryIO, limits: ApplyLimits) -> None:
        self._raw = raw
        self._limits = limits
        self._hash = hashlib.sha256()
        self.total = 0
        self._pos = 0
        self._tail = b""
        self._replay = b""

    def _pull(self, n: int) -> bytes:
        parts = []
        while n > 0:
            data = self._raw.read(n)
            if not data:
                break
            self._hash.update(data)
            self.total += len(data)
            if self.total > self._limits.max_bytes:
                raise LayerRejected(
                    f"layer is larger than the limit of {self._limits.max_bytes} bytes uncompressed"
                )
            parts.append(data)
            n -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise ValueError("unbounded read on a layer stream")
        if n > self._limits.max_header_bytes and n > _CHUNK:
            raise LayerRejected(
                f"tar header of {n} bytes exceeds the limit of {self._limits.max_header_bytes}"
            )
        out = b""
        if self._replay:
            out, self._replay = self._replay[:n], self._replay[n:]
        if len(out) < n:
            out += self._pull(n - len(out))
        self._pos += len(out)
        self._tail = out[-tarfile.BLOCKSIZE:] if len(out) >= tarfile.BLOCKSIZE else (
            self._tail + out
        )[-tarfile.BLOCKSIZE:]
        return out

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0:
            raise OSError(errno.ESPIPE, "layer stream only seeks absolutely")
        if pos < self._pos:
            back = self._pos - pos
            if back > len(self._tail):
                raise OSError(errno.ESPIPE, "layer stream cannot seek backwards")
            self._replay = self._tail[-back:] + self._replay
            self._tail = self._tail[:-back]
            self._pos = pos
        while self._pos < pos:
            if not self.read(min(pos - self._pos, _CHUNK)):
                break
        return self._pos

    def saw_end_marker(self) -> bool:
        """True when the last block tarfile read was a zero block (not a bare end of data)."""
        return self._tail == bytes(tarfile.BLOCKSIZE)

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def digest(self) -> Digest:
        return Digest("sha256", self._hash.hexdigest())


@dataclass(slots=True)
class _ApplyState:
    root: Path
    whiteouts: str
    limits: ApplyLimits
    as_root: bool
    entries: int = 0
    member_bytes: int = 0
    created_links: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)
    dirs: list[tuple[Path, tarfile.TarInfo]] = field(default_factory=list)
    parents: tuple[Path, ...] = ()
    # parent rel path -> resolved, existing directory; cleared whenever an entry is removed
    # or a symlink is created, the only ways a resolved parent can change meaning
    parent_cache: dict[str, Path] = field(default_factory=dict)


def apply_tar(
    stream: BinaryIO,
    root: Path,
    *,
    whiteouts: str = "overlay",
    limits: ApplyLimits | None = None,
    parents: Sequence[Path] = (),
) -> Digest:
    """Apply the uncompressed layer tar `stream` onto `root`; returns the sha256 of the tar bytes.

    whiteouts="overlay": `.wh.NAME` becomes a 0/0 character device and `.wh..wh..opq` the
    `trusted.overlay.opaque=y` xattr, so `root` can serve as an overlay lower directory.
    whiteouts="merge": the named path (or the directory's older contents) is deleted, for
    applying onto a flattened tree. whiteouts="none": `.wh.` entries are ordinary files, as
    docker's ADD extracts a local archive. See the module docstring for the safety rules.

    parents: the unpacked directories of the lower layers, topmost first. A layer may omit the
    entry of a directory it writes into (umoci and hand-made tars do); applied into an empty
    directory that then serves as an overlay lower, such an implied directory would hide the
    lower one's mode, owner and xattrs, so its metadata is copied from the first parent that has
    it (default 0755 root when none does). Not needed in merge mode.
    """
    if whiteouts not in WHITEOUT_MODES:
        raise InvalidArgument(f"whiteouts must be one of {WHITEOUT_MODES}, got {whiteouts!r}")
    lim = limits or ApplyLimits()
    state = _ApplyState(Path(os.path.abspath(root)), whiteouts, lim, os.geteuid() == 0)
    state.parents = tuple(Path(p) for p in parents)
    reader = _HashingReader(stream, lim)
    try:
        tf = tarfile.TarFile(
            fileobj=reader,  # type: ignore[arg-type]
            mode="r",
            encoding=_ENCODING,
            errors=_ERRORS,
        )
    except tarfile.ReadError as e:
        if reader.total == 0:
            raise LayerRejected("layer is empty or its compressed stream is truncated") from None
        raise LayerRejected(f"not a valid layer tar: {e}") from None
    try:
        while True:
            try:
                member = tf.next()
            except tarfile.TarError as e:
                raise LayerRejected(
                    f"corrupt layer tar after {state.entries} entries: {e}"
                ) from None
            if member is None:
                if not reader.saw_end_marker():
                    raise LayerRejected(
                        f"layer tar is truncated: no end-of-archive marker after "
                        f"{state.entries} entries"
                    )
                break
            tf.members.clear()  # type: ignore[attr-defined]  # keep memory flat
            state.entries += 1
            if state.entries > lim.max_entries:
                raise LayerRejected(
                    f"{member.name!r}: layer has more than {lim.max_entries} entries"
                )
            try:
                _apply_member(tf, reader, member, state)
            except OSError as e:
                e.add_note(f"while applying layer member {member.name!r}")
                raise
        _finish_dirs(state)
        reader.drain()
    finally:
        tf.close()
    return reader.digest()


def _reject(member: tarfile.TarInfo, why: str) -> LayerRejected:
    return LayerRejected(f"layer member {member.name!r} rejected: {why}")


def _clean_name(member: tarfile.TarInfo, name: str, what: str = "path") -> str:
    if name.startswith("/"):
        raise _reject(member, f"absolute {what} {name!r}")
    rel = clean_relative(name)
    if rel is None:
        raise _reject(member, f"{what} {name!r} escapes the root with '..'")
    return rel


def _resolve(state: _ApplyState, member: tarfile.TarInfo, rel: str, follow_final: bool) -> Path:
    def refuse_own_links(link_rel: str) -> None:
        if link_rel in state.created_links:
            raise _reject(member, f"goes through symlink {link_rel!r} created by this layer")

    try:
        return resolve_with_links(
            state.root, rel, follow_final=follow_final, on_link=refuse_own_links
        )
    except LayerRejected:
        raise
    except InvalidArgument as e:
        raise _reject(member, str(e)) from None


def _ensure_dir_chain(state: _ApplyState, member: tarfile.TarInfo, directory: Path) -> None:
    """Create missing directories between the root and `directory` (already resolved)."""
    current = state.root
    for comp in directory.relative_to(state.root).parts:
        current = current / comp
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            os.chmod(current, 0o755)  # whatever the umask: implied directories are 0755
            _copy_implied_dir_metadata(state, current)
            continue
        if not stat.S_ISDIR(st.st_mode):
            where = str(current.relative_to(state.root))
            raise _reject(member, f"parent {where!r} is not a directory")


def _copy_implied_dir_metadata(state: _ApplyState, created: Path) -> None:
    rel = str(created.relative_to(state.root))
    for lower in state.parents:
        try:
            source = resolve_with_links(lower, rel)
            st = os.lstat(source)
        except (OSError, InvalidArgument):
            continue
        if not stat.S_ISDIR(st.st_mode):
            return  # deleted or replaced in that lower: nothing below shows through
        info = tarfile.TarInfo(rel)
        info.type = tarfile.DIRTYPE
        info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        info.mtime = st.st_mtime
        info.pax_headers = {
            XATTR_PAX_PREFIX + name: value.decode(_ENCODING, _ERRORS)
            for name, value in read_xattrs(source).items()
        }
        _set_owner_and_xattrs(state, info, created, is_link=False)
        state.dirs.append((created, info))
        return


def _remove(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _apply_member(
    tf: tarfile.TarFile, reader: _HashingReader, member: tarfile.TarInfo, state: _ApplyState
) -> None:
    rel = _clean_name(member, member.name)
    if member.size < 0 or (member.isreg() and member.size > state.limits.max_bytes):
        raise _reject(member, f"size {member.size} is over the limit")
    state.member_bytes += max(member.size, 0) if member.isreg() else 0
    if state.member_bytes > state.limits.max_bytes:
        raise _reject(
            member, f"layer content exceeds the limit of {state.limits.max_bytes} bytes"
        )
    if not rel:
        if not member.isdir():
            raise _reject(member, "the root entry must be a directory")
        state.dirs.append((state.root, member))
        return
    parent_rel, _, base = rel.rpartition("/")
    parent = state.parent_cache.get(parent_rel)
    if parent is None:
        parent = _resolve(state, member, parent_rel, follow_final=True)
        _ensure_dir_chain(state, member, parent)
        state.parent_cache[parent_rel] = parent
    if base.startswith(WHITEOUT_PREFIX) and state.whiteouts != "none":
        _apply_whiteout(state, member, parent, base)
        return
    target = parent / base
    existing = _lstat_or_none(target)
    if existing is not None and not (stat.S_ISDIR(existing.st_mode) and member.isdir()):
        _remove(target)
        state.parent_cache.clear()
    if member.isreg():
        _create_file(tf, reader, member, target, state)
    elif member.isdir():
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            os.mkdir(target, 0o700)
        _set_owner_and_xattrs(state, member, target, is_link=False)
        state.dirs.append((target, member))
    elif member.issym():
        os.symlink(member.linkname, target)
        state.parent_cache.clear()
        state.created_links.add(str(target.relative_to(state.root)))
        _set_owner_and_xattrs(state, member, target, is_link=True)
        os.utime(target, ns=_ns(member), follow_symlinks=False)
    elif member.islnk():
        _create_hardlink(state, member, target)
    elif member.ischr() or member.isblk() or member.isfifo():
        if not member.isfifo() and not state.as_root:
            log.warning("skipping device node %s: device nodes are only created as root", rel)
            return
        kind = stat.S_IFIFO if member.isfifo() else (
            stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        )
        device = 0 if member.isfifo() else os.makedev(member.devmajor, member.devminor)
        os.mknod(target, kind | 0o600, device)
        _set_owner_and_xattrs(state, member, target, is_link=False)
        os.chmod(target, member.mode & 0o7777)
        os.utime(target, ns=_ns(member), follow_symlinks=False)
    else:
        raise _reject(member, f"unsupported tar entry type {member.type!r}")
    state.written.add(str(target))


def _lstat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _ns(member: tarfile.TarInfo) -> tuple[int, int]:
    t = int(member.mtime * 1_000_000_000)
    return (t, t)


def _create_file(
    tf: tarfile.TarFile,
    reader: _HashingReader,
    member: tarfile.TarInfo,
    target: Path,
    state: _ApplyState,
) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(target, flags, 0o600)
    try:
        if member.sparse is not None:
            src = tf.extractfile(member)
            assert src is not None
            read = src.read
        else:
            read = reader.read
        remaining = member.size
        while remaining:
            chunk = read(min(remaining, _CHUNK))
            if not chunk:
                raise _reject(member, "archive ends inside the file data")
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            remaining -= len(chunk)
        _set_owner_and_xattrs(state, member, fd, is_link=False)
        os.chmod(fd, member.mode & 0o7777)
        os.utime(fd, ns=_ns(member))
    finally:
        os.close(fd)


def _create_hardlink(state: _ApplyState, member: tarfile.TarInfo, target: Path) -> None:
    link_rel = _clean_name(member, member.linkname, "hard link target")
    if not link_rel:
        raise _reject(member, "hard link to the root directory")
    source = _resolve(state, member, link_rel, follow_final=False)
    if source == target:
        raise _reject(member, "hard link to itself")
    st = _lstat_or_none(source)
    if st is None:
        raise _reject(member, f"hard link target {member.linkname!r} does not exist in the layer")
    if stat.S_ISDIR(st.st_mode):
        raise _reject(member, f"hard link target {member.linkname!r} is a directory")
    os.link(source, target, follow_symlinks=False)


def _xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    out = {}
    for key, value in member.pax_headers.items():
        if key.startswith(XATTR_PAX_PREFIX):
            name = key[len(XATTR_PAX_PREFIX):]
            if name.startswith(OVERLAY_XATTR_PREFIXES):
                continue  # overlayfs metadata is ours to set, never the layer's
            out[name] = value.encode(_ENCODING, _ERRORS)
    return out


def _set_owner_and_xattrs(
    state: _ApplyState, member: tarfile.TarInfo, target: Path | int, *, is_link: bool
) -> None:
    """chown first (it clears setuid bits and security.capability), then the xattrs."""
    if state.as_root:
        if isinstance(target, int):
            os.chown(target, member.uid, member.gid)
        else:
            os.chown(target, member.uid, member.gid, follow_symlinks=False)
    for name, value in _xattrs(member).items():
        try:
            if isinstance(target, int):
                os.setxattr(target, name, value)
            else:
                os.setxattr(target, name, value, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES):
                raise
            log.warning("%s: cannot set xattr %s: %s", member.name, name, e.strerror)


def _apply_whiteout(
    state: _ApplyState, member: tarfile.TarInfo, parent: Path, base: str
) -> None:
    if base == OPAQUE_WHITEOUT:
        if state.whiteouts == "overlay":
            _set_opaque(member, parent)
        else:
            with os.scandir(parent) as it:
                stale = [Path(e.path) for e in it if e.path not in state.written]
            for path in stale:
                _remove(path)
            state.parent_cache.clear()
        return
    name = base[len(WHITEOUT_PREFIX):]
    if name in ("", ".", "..") or "/" in name:
        raise _reject(member, f"whiteout {base!r} does not name an entry of its directory")
    target = parent / name
    if str(target) in state.written:
        return  # a whiteout only hides lower layers, never an entry of its own layer
    _remove(target)
    state.parent_cache.clear()
    if state.whiteouts == "merge":
        return
    try:
        os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
    except PermissionError:
        raise FailedPrecondition(
            "overlay whiteouts need CAP_MKNOD (root); apply with whiteouts='merge' instead"
        ) from None
    state.written.add(str(target))


def _set_opaque(member: tarfile.TarInfo, directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            os.setxattr(fd, "trusted.overlay.opaque", b"y")
        except PermissionError:
            os.setxattr(fd, "user.overlay.opaque", b"y")
    finally:
        os.close(fd)


def _finish_dirs(state: _ApplyState) -> None:
    """Directory modes and times last (creating children changes a directory's mtime)."""
    for path, member in reversed(state.dirs):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError, OSError) as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                continue  # replaced or removed by a later entry
            raise
        try:
            if path == state.root and state.as_root:
                os.chown(fd, member.uid, member.gid)
            os.chmod(fd, member.mode & 0o7777)
            os.utime(fd, ns=_ns(member))
        finally:
            os.close(fd)
