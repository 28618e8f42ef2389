"""Mount descriptions and the one place that mounts and unmounts them.

A `Mount` is a value: snapshotters return lists of them and never mount anything
themselves (containerd `core/mount`). `mount_all()` and `temp_mount()` are the only
functions in strata that call mount(8)/umount(8); they always unmount in reverse order,
also when the body raises.

Overlay lower directories: the kernel copies all mount options into one page (4096
bytes), so an image with 100+ layers does not fit when every lowerdir is a long absolute
path. Snapshotters give each lower directory a short symlink (`<root>/l/<id>`), and
`mount()` runs mount(8) with its working directory set to the lowerdirs' common parent
and passes them relative (as containerd's `compactLowerdirOption` and docker's overlay2
`l/` links do). The kernel resolves relative lowerdirs against the caller's cwd.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import FailedPrecondition, InvalidArgument

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class MountError(FailedPrecondition):
    """mount(8) or umount(8) failed; the message carries the tool's stderr."""


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount: `type` ("overlay", "bind", "tmpfs", "proc", ...), `source`, `target`
    (absolute path inside the container, "/" for the root filesystem) and mount(8)
    `options` (e.g. ("rbind", "ro") or ("lowerdir=...", "upperdir=...", "workdir=...")).
    A bind mount must carry "bind" or "rbind" in its options."""

    type: str
    source: str
    target: str = "/"
    options: tuple[str, ...] = field(default_factory=tuple)

    @property
    def readonly(self) -> bool:
        return "ro" in self.options

    def with_target(self, target: str) -> Mount:
        return Mount(self.type, self.source, target, self.options)


def _compact_overlay(options: Sequence[str]) -> tuple[list[str], str | None]:
    """Rewrite lowerdir=... with paths relative to their common parent; return (options, cwd).

    Only absolute lowerdirs are rewritten; upperdir/workdir stay absolute."""
    opts = list(options)
    idx = next((i for i, o in enumerate(opts) if o.startswith("lowerdir=")), None)
    if idx is None:
        return opts, None
    lowers = opts[idx][len("lowerdir="):].split(":")
    if len(lowers) < 2 or not all(p.startswith("/") for p in lowers):
        return opts, None
    common = os.path.commonpath([os.path.dirname(p) for p in lowers])
    if common == "/":
        return opts, None
    opts[idx] = "lowerdir=" + ":".join(os.path.relpath(p, common) for p in lowers)
    return opts, common


def _run(argv: list[str], cwd: str | None = None) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MountError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")


def mount(m: Mount, where: Path) -> None:
    """Mount `m` on the host path `where` (which must exist)."""
    where = Path(where)
    if not where.is_absolute():
        raise InvalidArgument(f"mount point must be absolute: {where}")
    cwd: str | None = None
    options = list(m.options)
    if m.type == "bind":
        if not ({"bind", "rbind"} & set(options)):
            options.insert(0, "rbind")
        argv = ["mount", "--no-mtab", "-o", ",".join(options), m.source, str(where)]
        _run(argv)
        return
    if m.type == "overlay":
        options, cwd = _compact_overlay(options)
        if len(",".join(options)) >= PAGE_SIZE:
            raise InvalidArgument(
                f"overlay mount options are {len(','.join(options))} bytes, over one page"
            )
    argv = ["mount", "--no-mtab", "-t", m.type]
    if options:
        argv += ["-o", ",".join(options)]
    argv += [m.source, str(where)]
    _run(argv, cwd=cwd)


def unmount(where: Path, *, lazy_on_busy: bool = True) -> None:
    """Unmount `where`; a busy mount is detached lazily rather than leaked."""
    proc = subprocess.run(["umount", str(where)], capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return
    if lazy_on_busy and "busy" in proc.stderr:
        _run(["umount", "--lazy", str(where)])
        return
    raise MountError(f"umount {where}: {proc.stderr.strip() or proc.returncode}")


def pivot_root_into(new_root: Path) -> None:
    """Make `new_root` (a mount point) the process's root and detach the old root
    (pivot_root(".", ".") then umount2(".", MNT_DETACH), as runc does). Only for a
    process in its own mount namespace; raises OSError when the kernel refuses."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    os.chdir(new_root)
    sys_pivot_root = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)
    if sys_pivot_root is None:
        raise OSError(f"pivot_root: unknown syscall number on {os.uname().machine}")
    if libc.syscall(sys_pivot_root, b".", b".") != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"pivot_root: {os.strerror(err)}")
    mnt_detach = 2
    if libc.umount2(b".", mnt_detach) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount2 old root: {os.strerror(err)}")
    os.chdir("/")


def is_mounted(path: Path) -> bool:
    """True when `path` is a mount point in this mount namespace (bind mounts included,
    which os.path.ismount misses on the same filesystem)."""
    want = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                fields = line.split(" ")
                point = fields[4].encode().decode("unicode_escape")
                if point == want:
                    return True
    except OSError:
        return os.path.ismount(path)
    return False


def _host_path(root: Path, target: str) -> Path:
    """Join a container path onto root without letting '..' climb out."""
    parts = [p for p in target.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"mount target must not contain '..': {target}")
    return root.joinpath(*parts)


@contextlib.contextmanager
def mount_all(mounts: Sequence[Mount], root: Path) -> Iterator[Path]:
    """Mount every mount at `root` + its target, in order; unmount all in reverse on exit.

    Targets other than "/" must already exist under the previous mounts (callers create
    them); this function never writes into the mounted trees."""
    root = Path(root).absolute()
    done: list[Path] = []
    try:
        for m in mounts:
            where = _host_path(root, m.target)
            mount(m, where)
            done.append(where)
        yield root
    finally:
        errors: list[MountError] = []
        for where in reversed(done):
            try:
                unmount(where)
            except MountError as exc:  # keep unmounting the rest
                errors.append(exc)
        if errors:
            raise errors[0]


@contextlib.contextmanager
def temp_mount(mounts: Sequence[Mount], *, parent: Path | None = None) -> Iterator[Path]:
    """Mount `mounts` on a fresh temporary directory (under `parent` if given) and yield it;
    unmount and remove the directory afterwards."""
    if not mounts:
        raise InvalidArgument("temp_mount needs at least one mount")
    tmp = Path(tempfile.mkdtemp(prefix="strata-mnt-", dir=parent))
    try:
        with mount_all(mounts, tmp) as root:
            yield root
    finally:
        with contextlib.suppress(OSError):
            tmp.rmdir()
        if tmp.exists() and not is_mounted(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
