"""Helpers shared by the layer tests: describe a tree, build tars by hand."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path


def describe(root: Path, *, mtimes: bool = True) -> dict[str, tuple[object, ...]]:
    """rel path -> (type, mode, uid, gid, size, link target / rdev, xattrs, sha256, link group)."""
    out: dict[str, tuple[object, ...]] = {}
    groups: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            extra: object = None
            digest = None
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            try:
                names = sorted(os.listxattr(p, follow_symlinks=False))
                xattrs = tuple((n, os.getxattr(p, n, follow_symlinks=False)) for n in names)
            except OSError:
                xattrs = ()
            group = None
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                group = groups.setdefault((st.st_dev, st.st_ino), rel)
            mtime = int(st.st_mtime) if mtimes and not stat.S_ISLNK(st.st_mode) else None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        st.st_size if stat.S_ISREG(st.st_mode) else None, extra, xattrs, digest,
                        group, mtime)
    return out


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, *, linkname: str = "", mode: int = 0o644,
          size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.size = size
    return info


def build_sample_tree(root: Path) -> None:
    """A tree with every kind of entry the layer format must keep."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("strata\n")
    (root / "bin").mkdir()
    tool = root / "bin" / "tool"
    tool.write_bytes(os.urandom(70_000))
    os.chmod(tool, 0o4755)
    os.link(tool, root / "bin" / "tool-hardlink")
    os.symlink("tool", root / "bin" / "tool-symlink")
    os.symlink("/etc/hostname", root / "abs-symlink")
    ping = root / "bin" / "ping"
    ping.write_bytes(b"\x7fELF fake ping")
    os.chmod(ping, 0o755)
    # security.capability v2: cap_net_raw (bit 13) permitted+effective
    cap = (0x02000001).to_bytes(4, "little") + (1 << 13).to_bytes(4, "little") + bytes(12)
    os.setxattr(ping, "security.capability", cap)
    os.setxattr(root / "etc" / "hostname", "user.comment", b"hello \xff binary")
    shared = root / "srv"
    shared.mkdir(mode=0o1777)
    os.chmod(shared, 0o1777)
    os.chmod(root / "etc", 0o2755)
    os.chown(root / "etc" / "hostname", 1000, 1001)
    os.mkfifo(root / "srv" / "fifo")
    os.mknod(root / "srv" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "srv" / "loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9))
    (root / "empty-dir").mkdir()
    (root / "unicodé ✓.txt").write_text("non-ascii name\n")
    (root / ("long-" + "x" * 150)).write_text("long name\n")
