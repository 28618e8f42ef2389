"""Resolve an untrusted path inside a root directory, the way a chroot would.

The rules follow containerd's `fs.RootPath` / Go's securejoin:

- the path is split into components; empty and `.` components are skipped;
- `..` removes the last resolved component but never climbs above `root`;
- a symlink met on the way is read and its target spliced in front of the remaining components:
  an absolute target restarts at `root`, a relative one continues from the link's directory;
- at most MAX_LINK_HOPS symlinks are followed (InvalidArgument beyond: a loop or a bomb);
- components that do not exist are kept lexically (the caller may be about to create them).

The result is an absolute host path that is `root` or below it *at the time of the call*.
Callers that then create files must still refuse to follow a final symlink (O_NOFOLLOW / lstat),
since a later entry may be a symlink; `builder.layers.archive.apply_tar` does.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from builder.errors import InvalidArgument

MAX_LINK_HOPS = 255


def resolve_in_root(
    root: Path, path: str | PurePosixPath, *, follow_final: bool = True
) -> Path:
    """Host path of `path` interpreted inside `root` (see module docstring).

    With follow_final=False a symlink as the last component is returned as is (lstat semantics),
    which is what an extractor wants for the entry it is about to create or replace.
    """
    return resolve_with_links(root, path, follow_final=follow_final)


def resolve_with_links(
    root: Path,
    path: str | PurePosixPath,
    *,
    follow_final: bool = True,
    on_link: Callable[[str], None] | None = None,
) -> Path:
    """resolve_in_root, calling `on_link(rel)` with the root-relative path of each symlink followed.

    `on_link` may raise to refuse traversing a particular link (the applier refuses links that
    the same layer created earlier).
    """
    base = Path(os.path.abspath(root))
    pending: deque[str] = deque(str(path).split("/"))
    resolved: list[str] = []
    hops = 0
    while pending:
        comp = pending.popleft()
        if comp in ("", "."):
            continue
        if comp == "..":
            if resolved:
                resolved.pop()
            continue
        is_last = not any(c not in ("", ".") for c in pending)
        if is_last and not follow_final:
            resolved.append(comp)
            break
        candidate = base.joinpath(*resolved, comp)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(comp)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(comp)
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            raise InvalidArgument(
                f"too many levels of symbolic links resolving {str(path)!r} inside the root"
            )
        if on_link is not None:
            on_link("/".join([*resolved, comp]))
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved.clear()
        pending.extendleft(reversed(target.split("/")))
    return base.joinpath(*resolved)


def clean_relative(name: str) -> str | None:
    """Lexically clean a relative posix path; None when it is absolute or has a `..` component.

    Returns "" for the root itself ("." or "./").
    """
    if name.startswith("/"):
        return None
    parts = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            return None
        parts.append(comp)
    return "/".join(parts)
