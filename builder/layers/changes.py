"""Change sources: what a snapshot changed relative to its parent, as a sorted stream of Change.

Two sources feed the same tar writer (DESIGN.md 5.1):

- `overlay_changes(upper)`: an overlay upper directory *is* the diff. A 0/0 character device is a
  deletion (whiteout); a directory carrying `trusted.overlay.opaque=y` (or the `user.overlay.`
  form used by unprivileged mounts) hides everything below it in the lower layers.
- `tree_changes(lower, upper)`: a two-tree walk for the copy snapshotter, comparing type, mode,
  owner, size, mtime, link target, device numbers and xattrs, and the bytes when size and mtime
  agree but the mtime has no sub-second part (a copy with coarse timestamps is ambiguous).

Order: deterministic. Within each directory the deletions come first (image-spec layer.md: whiteout
entries SHOULD appear before sibling entries), then the present entries sorted by name, each
directory immediately followed by its own contents.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
# The overlay (upperdir / unpacked-layer) form of the OCI markers: a deletion is a 0/0 character
# device, an opaque directory carries one of these xattrs set to "y".
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_CHUNK = 1 << 20


class ChangeKind(enum.Enum):
    ADD = "add"
    MODIFY = "modify"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """One changed path. `path` is posix, relative to the snapshot root, without a leading `/`.

    `source` is the host path holding the new entry (None for DELETE). `opaque` marks a directory
    whose lower contents are hidden (written as `.wh..wh..opq` right after the directory entry).
    """

    kind: ChangeKind
    path: str
    source: Path | None
    opaque: bool = False


def read_xattrs(path: Path | str) -> dict[str, bytes]:
    """All xattrs of `path` (not following a final symlink), minus overlayfs' private ones."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for name in sorted(names):
        if name.startswith(OVERLAY_XATTR_PREFIXES):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


def is_opaque(path: Path) -> bool:
    """True if the directory `path` is an overlay opaque directory (hides lower contents)."""
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def is_whiteout(st: os.stat_result) -> bool:
    """True if `st` (an lstat result) is an overlay whiteout: a 0/0 character device."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _sorted_entries(directory: Path) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as it:
        return sorted(it, key=lambda e: e.name)


def overlay_changes(upper: Path) -> Iterator[Change]:
    """Changes recorded in an overlay upper directory (ordered as the module docstring says).

    The upper directory cannot tell an added entry from a modified one, so every present entry is
    reported as ADD (the tar writer treats ADD and MODIFY alike).
    """
    yield from _walk_upper(Path(upper), "")


def _walk_upper(directory: Path, prefix: str) -> Iterator[Change]:
    entries = [(e, e.stat(follow_symlinks=False)) for e in _sorted_entries(directory)]
    for entry, st in entries:  # deletions first (image-spec: whiteouts before siblings)
        if is_whiteout(st):
            yield Change(ChangeKind.DELETE, prefix + entry.name, None)
    for entry, st in entries:
        if is_whiteout(st):
            continue
        rel = prefix + entry.name
        host = Path(entry.path)
        if stat.S_ISDIR(st.st_mode):
            yield Change(ChangeKind.ADD, rel, host, opaque=is_opaque(host))
            yield from _walk_upper(host, rel + "/")
        else:
            yield Change(ChangeKind.ADD, rel, host)


def tree_changes(lower: Path | None, upper: Path) -> Iterator[Change]:
    """Changes turning `lower` (None: empty) into `upper` (ordered as the module docstring says)."""
    if lower is None:
        yield from _all_added(Path(upper), "")
    else:
        broken = _changed_link_groups(Path(lower), Path(upper))
        yield from _compare_dirs(Path(lower), Path(upper), "", broken)


def _link_groups(root: Path) -> dict[tuple[int, int], set[str]]:
    """(dev, inode) -> relative paths, for regular files with more than one link."""
    groups: dict[tuple[int, int], set[str]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                groups.setdefault((st.st_dev, st.st_ino), set()).add(
                    os.path.relpath(path, root))
    return groups


def _changed_link_groups(lower: Path, upper: Path) -> AbstractSet[tuple[int, int]]:
    """Hard-link groups of `upper` that differ from `lower`'s at the same paths.

    Every name of such a group goes into the layer, even a name whose own file looks
    unchanged: otherwise `b`, still linked to a moved `a`, would keep its old inode when
    the layer is applied and the group would come apart."""
    if not any(os.lstat(os.path.join(d, f)).st_nlink > 1
               for d, _, files in os.walk(upper) for f in files):
        return set()
    low_groups = {frozenset(paths) for paths in _link_groups(lower).values()}
    return {ino for ino, paths in _link_groups(upper).items()
            if frozenset(paths) not in low_groups}


def _all_added(directory: Path, prefix: str) -> Iterator[Change]:
    for entry in _sorted_entries(directory):
        rel = prefix + entry.name
        host = Path(entry.path)
        yield Change(ChangeKind.ADD, rel, host)
        if entry.is_dir(follow_symlinks=False):
            yield from _all_added(host, rel + "/")


def _compare_dirs(lower: Path, upper: Path, prefix: str,
                  broken: AbstractSet[tuple[int, int]] = frozenset()) -> Iterator[Change]:
    lows = {e.name: e for e in _sorted_entries(lower)}
    ups = {e.name: e for e in _sorted_entries(upper)}
    for name in sorted(lows.keys() - ups.keys()):  # deletions first, as overlay_changes
        yield Change(ChangeKind.DELETE, prefix + name, None)
    for name in sorted(ups.keys()):
        rel = prefix + name
        low, up = lows.get(name), ups[name]
        up_path = Path(up.path)
        up_is_dir = up.is_dir(follow_symlinks=False)
        if low is None:
            yield Change(ChangeKind.ADD, rel, up_path)
            if up_is_dir:
                yield from _all_added(up_path, rel + "/")
            continue
        low_path = Path(low.path)
        low_is_dir = low.is_dir(follow_symlinks=False)
        up_st = up.stat(follow_symlinks=False)
        if (up_st.st_dev, up_st.st_ino) in broken or not _same_entry(
                low_path, low.stat(follow_symlinks=False), up_path, up_st):
            yield Change(ChangeKind.MODIFY, rel, up_path)
        if up_is_dir:
            if low_is_dir:
                yield from _compare_dirs(low_path, up_path, rel + "/", broken)
            else:
                yield from _all_added(up_path, rel + "/")


def _same_entry(lp: Path, ls: os.stat_result, up: Path, us: os.stat_result) -> bool:
    if (ls.st_dev, ls.st_ino) == (us.st_dev, us.st_ino):
        return True  # the same inode (a hard-linked copy): nothing changed
    if (
        stat.S_IFMT(ls.st_mode) != stat.S_IFMT(us.st_mode)
        or stat.S_IMODE(ls.st_mode) != stat.S_IMODE(us.st_mode)
        # a new hard link to an old file: overlayfs copies the old name up too, so the layer
        # carries both names as one hard-link group (docker does the same)
        or (stat.S_ISREG(us.st_mode) and ls.st_nlink != us.st_nlink)
        or ls.st_uid != us.st_uid
        or ls.st_gid != us.st_gid
    ):
        return False
    if (stat.S_ISCHR(us.st_mode) or stat.S_ISBLK(us.st_mode)) and ls.st_rdev != us.st_rdev:
        return False
    if stat.S_ISLNK(us.st_mode):
        if os.readlink(lp) != os.readlink(up):
            return False
    elif not stat.S_ISDIR(us.st_mode) and ls.st_mtime_ns != us.st_mtime_ns:
        return False
    if stat.S_ISDIR(us.st_mode) and ls.st_mtime_ns != us.st_mtime_ns:
        return False
    if read_xattrs(lp) != read_xattrs(up):
        return False
    if stat.S_ISREG(us.st_mode):
        if ls.st_size != us.st_size:
            return False
        if us.st_mtime_ns % 1_000_000_000 == 0:
            return _same_content(lp, up)
    return True


def _same_content(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(_CHUNK), fb.read(_CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True
