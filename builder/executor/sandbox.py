"""The inside of ChrootExecutor: runs as pid 1 of fresh namespaces made by unshare.

Usage: python -m builder.executor.sandbox SPEC.json (written by ChrootExecutor).
Setup errors are written to SPEC.json's sibling `sandbox.error` (prefix "setup:" or
"exec:") so the parent can tell a broken sandbox from the process's own exit code.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import struct
import sys
from pathlib import Path
from typing import Any

from builder.mounts import Mount, mount, pivot_root_into

DEVICES = (  # name, major, minor
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7),
    ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
)
LINKS = (
    ("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
)
# docker's default capability set (builder.executor.runtime.DEFAULT_CAPABILITIES)
DEFAULT_CAPABILITY_NUMBERS = frozenset({0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31})
PR_CAPBSET_DROP = 24
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def _under(root: Path, target: str) -> Path:
    # run_root() already created every target symlink-safely; refuse '..' anyway.
    parts = [p for p in target.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"bad mount target {target!r}")
    return root.joinpath(*parts)


def setup_dev(root: Path) -> None:
    dev = root / "dev"
    mount(Mount("tmpfs", "tmpfs", options=("nosuid", "strictatime", "mode=755",
                                           "size=65536k")), dev)
    for name, major, minor in DEVICES:
        os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(dev / name, 0o666)
    for name, target in LINKS:
        os.symlink(target, dev / name)
    for d in ("pts", "shm", "mqueue"):
        (dev / d).mkdir()
    mount(Mount("devpts", "devpts", options=("nosuid", "noexec", "newinstance",
                                             "ptmxmode=0666", "mode=0620", "gid=5")),
          dev / "pts")
    mount(Mount("tmpfs", "shm", options=("nosuid", "noexec", "nodev", "mode=1777",
                                         "size=65536k")), dev / "shm")
    mount(Mount("mqueue", "mqueue", options=("nosuid", "noexec", "nodev")), dev / "mqueue")


def drop_capabilities(last_cap: int) -> None:
    """Shrink the bounding set to docker's defaults; the exec'd process (root or not)
    can then hold no other capability."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(last_cap + 1):
        if cap not in DEFAULT_CAPABILITY_NUMBERS and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0):
            err = ctypes.get_errno()
            raise OSError(err, f"dropping capability {cap}: {os.strerror(err)}")


def setup(spec: dict[str, Any]) -> None:
    root = Path(spec["rootfs"])
    # make the rootfs a mount point of its own in this namespace (pivot_root needs one)
    mount(Mount("bind", str(root), options=("rbind",)), root)
    mount(Mount("proc", "proc", options=("nosuid", "noexec", "nodev")), root / "proc")
    setup_dev(root)
    if spec["network"] == "none":
        mount(Mount("sysfs", "sysfs", options=("nosuid", "noexec", "nodev", "ro")),
              root / "sys")
    else:  # sysfs of the host netns can't be mounted fresh here; bind it read-only
        mount(Mount("bind", "/sys", options=("rbind", "ro")), root / "sys")
    mount(Mount("bind", spec["hosts"], options=("bind",)), root / "etc/hosts")
    mount(Mount("bind", spec["resolv_conf"], options=("bind",)), root / "etc/resolv.conf")
    for m in spec["mounts"]:
        mount(Mount(m["type"], m["source"], m["target"], tuple(m["options"])),
              _under(root, m["target"]))
    if spec["readonly_rootfs"]:
        mount(Mount("bind", str(root), options=("remount", "bind", "ro")), root)
    if spec["network"] == "none":
        loopback_up()
    socket.sethostname(spec["hostname"])
    last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    try:
        pivot_root_into(root)
    except OSError:
        os.chroot(root)
        os.chdir("/")
    drop_capabilities(last_cap)


def main(argv: list[str]) -> int:
    spec_file = Path(argv[1])
    spec = json.loads(spec_file.read_text())
    # opened before pivot_root so that late failures can still be reported
    error_file = open(spec_file.with_name("sandbox.error"), "w")  # noqa: SIM115
    try:
        setup(spec)
    except Exception as exc:  # report, then fail like a runtime would
        _report(error_file, f"setup: {exc}")
        return 125
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in spec["env"])
    try:
        os.setgroups(spec["groups"])
        os.setgid(spec["gid"])
        os.setuid(spec["uid"])
        os.chdir(spec["cwd"])
    except OSError as exc:
        _report(error_file, f"setup: {exc}")
        return 125
    try:
        os.execvpe(spec["argv"][0], spec["argv"], env)
    except OSError as exc:
        sys.stderr.write(f"exec {spec['argv'][0]!r}: {exc.strerror}\n")
        _report(error_file, f"exec: {spec['argv'][0]}: {exc.strerror}")
        return 127
    return 0  # not reached


def _report(error_file: Any, text: str) -> None:
    error_file.write(text)
    error_file.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
