"""Preparing a mounted rootfs for one run, the same way for every executor.

`run_root(mounts, process)` mounts the snapshot, writes the generated /etc/hosts and
/etc/resolv.conf into a private temp dir, creates `cwd` (it stays, like docker's
WORKDIR) and the mount-point stubs, and yields a `RunRoot`. On exit it removes every stub
it created (files or empty directories, deepest first), restores the mtime of each
parent directory it touched, and unmounts. Stubs therefore never reach a layer: in an
overlay upper they vanish without a whiteout because the lower never had them, and a
parent directory that was only copied up keeps its lower metadata, which
OverlaySnapshotter.changes() recognises as unchanged (buildkit's MountStubsCleaner works
the same way).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.executor import ProcessSpec
from builder.layers.resolve import resolve_in_root
from builder.mounts import Mount, temp_mount

# container path -> is it a directory mount
BASE_TARGETS: tuple[tuple[str, bool], ...] = (
    ("/proc", True),
    ("/dev", True),
    ("/sys", True),
    ("/etc/hosts", False),
    ("/etc/resolv.conf", False),
)


@dataclass(frozen=True, slots=True)
class RunRoot:
    rootfs: Path  # the mounted root filesystem
    hosts: Path  # generated /etc/hosts
    resolv_conf: Path  # generated /etc/resolv.conf
    scratch: Path  # private temp dir for the executor's own files (bundle, logs)


def hosts_content(hostname: str) -> str:
    return (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        f"127.0.1.1\t{hostname}\n"
    )


def resolv_conf_content(network: str) -> str:
    """The host's resolv.conf for host networking; without a network, nothing resolves."""
    if network == "none":
        return ""
    try:
        return Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""


def _is_dir_mount(m: Mount) -> bool:
    if m.type != "bind":
        return True
    try:
        return stat.S_ISDIR(os.stat(m.source).st_mode)
    except OSError:
        return True


class _Stubs:
    """Creates missing mount points and undoes exactly what it created."""

    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs
        self.created: list[Path] = []  # in creation order
        self.parent_times: dict[Path, tuple[int, int]] = {}

    def _remember_parent(self, path: Path) -> None:
        parent = path.parent
        if parent not in self.parent_times and parent not in self.created:
            st = os.lstat(parent)
            self.parent_times[parent] = (st.st_atime_ns, st.st_mtime_ns)

    def ensure(self, target: str, is_dir: bool) -> None:
        host = resolve_in_root(self.rootfs, target)
        if os.path.lexists(host):
            return
        missing: list[Path] = []
        p = host
        while not os.path.lexists(p) and p != self.rootfs:
            missing.append(p)
            p = p.parent
        for i, path in enumerate(reversed(missing)):
            self._remember_parent(path)
            last = i == len(missing) - 1
            if last and not is_dir:
                path.touch(mode=0o644)
            else:
                path.mkdir(mode=0o755)
            self.created.append(path)

    def cleanup(self) -> None:
        kept: set[Path] = set()
        for path in reversed(self.created):
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()  # only when empty: never delete what the process wrote
                elif os.lstat(path).st_size == 0:
                    path.unlink()
                else:
                    kept.add(path.parent)
            except OSError:
                kept.add(path.parent)
        for parent, (atime, mtime) in self.parent_times.items():
            if parent in kept:
                continue  # the process really changed this directory
            with contextlib.suppress(OSError):
                os.utime(parent, ns=(atime, mtime), follow_symlinks=False)


def make_cwd(rootfs: Path, cwd: str) -> None:
    """Create the working directory (and parents) inside the rootfs, symlink-safely."""
    host = resolve_in_root(rootfs, cwd)
    host.mkdir(parents=True, exist_ok=True, mode=0o755)


@contextlib.contextmanager
def run_root(mounts: list[Mount], process: ProcessSpec) -> Iterator[RunRoot]:
    scratch = Path(tempfile.mkdtemp(prefix="strata-run-"))
    try:
        hosts = scratch / "hosts"
        hosts.write_text(hosts_content(process.hostname))
        resolv = scratch / "resolv.conf"
        resolv.write_text(resolv_conf_content(process.network))
        with temp_mount(mounts) as rootfs:
            stubs = _Stubs(rootfs)
            try:
                if not process.readonly_rootfs:
                    make_cwd(rootfs, process.cwd)
                for target, is_dir in BASE_TARGETS:
                    stubs.ensure(target, is_dir)
                for m in process.mounts:
                    stubs.ensure(m.target, _is_dir_mount(m))
                yield RunRoot(rootfs, hosts, resolv, scratch)
            finally:
                stubs.cleanup()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
