"""Helpers for tests that drive real tools (importable as `tooling`: tests/ is on pythonpath)."""

from __future__ import annotations

import io
import socket
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
DOCKER_CLIENT = "/usr/bin/docker"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _busybox_applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    return sorted({a for a in out.stdout.split() if a and "/" not in a})


def write_busybox_rootfs(dest: Path) -> Path:
    """Write a deterministic busybox rootfs tar to `dest` and return it."""
    def add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
        tar.addfile(info)

    def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, 0
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "dev", "etc", "proc", "root", "sys", "usr", "usr/bin", "var"):
            add_dir(tar, d)
        add_dir(tar, "tmp", 0o1777)
        info = tar.gettarinfo(str(BUSYBOX), arcname="bin/busybox")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        with BUSYBOX.open("rb") as fh:
            tar.addfile(info, fh)
        for applet in _busybox_applets():
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode, link.mtime = tarfile.SYMTYPE, "busybox", 0o777, 0
            tar.addfile(link)
        add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                 b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                 b"app:x:1000:1000:app:/home/app:/bin/sh\n")
        add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\napp:x:1000:\n")
    return dest

REPO = Path(__file__).resolve().parent.parent  # the repository root
