"""Helpers for store tests: build small rootfs tars and compare file trees."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import builder  # noqa: F401  (repo root on sys.path)


def make_rootfs_tar(dest: Path, files: dict[str, bytes], *, mtime: int = 0) -> Path:
    """A plain tar of regular files (parent dirs added) with fixed metadata."""
    dirs: set[str] = set()
    for name in files:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            tar.addfile(info, io.BytesIO(data))
    return dest


def make_docker_archive(dest: Path, layer_tars: list[Path], repo_tag: str) -> Path:
    """A legacy docker-archive (docker save < 25 layout) around the given uncompressed layers."""
    diff_ids = []
    for layer in layer_tars:
        h = hashlib.sha256()
        with layer.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        diff_ids.append("sha256:" + h.hexdigest())
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"layer {i}"} for i in range(len(diff_ids))]
                         }).encode()
    config_id = hashlib.sha256(config).hexdigest()
    layers = [f"{d[7:]}/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": f"{config_id}.json", "RepoTags": [repo_tag],
                            "Layers": layers}]).encode()
    with tarfile.open(dest, "w") as tar:
        for path, src in zip(layers, layer_tars, strict=True):
            tar.add(src, arcname=path)
        for name, data in ((f"{config_id}.json", config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dest


def _entry_from_stat(st: os.stat_result, link: str, digest: str,
                     xattrs: dict[str, str]) -> dict[str, Any]:
    kind = stat.S_IFMT(st.st_mode)
    return {"type": {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
                     stat.S_IFIFO: "fifo", stat.S_IFCHR: "char", stat.S_IFBLK: "block"}[kind],
            "mode": oct(stat.S_IMODE(st.st_mode)) if kind != stat.S_IFLNK else "-",
            "uid": st.st_uid, "gid": st.st_gid, "link": link, "sha256": digest,
            "xattrs": xattrs}


def tree_listing(root: Path, ignore: set[str]) -> dict[str, dict[str, Any]]:
    """path -> type, mode, owner, link target, content sha256 and user/security xattrs."""
    out: dict[str, dict[str, Any]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel in ignore or any(rel.startswith(i + "/") for i in ignore):
                continue
            st = os.lstat(full)
            link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
            digest = ""
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
            xattrs = {}
            if not stat.S_ISLNK(st.st_mode):
                for key in os.listxattr(full, follow_symlinks=False):
                    if key.startswith(("user.", "security.capability")):
                        xattrs[key] = os.getxattr(full, key, follow_symlinks=False).hex()
            out[rel] = _entry_from_stat(st, link, digest, xattrs)
    return out


def tar_listing(path: Path, ignore: set[str]) -> dict[str, dict[str, Any]]:
    """The same listing read from a (docker export) tar; hard links resolve to their target."""
    out: dict[str, dict[str, Any]] = {}
    with tarfile.open(path, "r") as tar:
        for m in tar:
            rel = m.name.removeprefix("./").strip("/")
            if not rel or rel in ignore or any(rel.startswith(i + "/") for i in ignore):
                continue
            if m.islnk():
                target = out[m.linkname.removeprefix("./").strip("/")]
                out[rel] = dict(target)
                continue
            kind = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
                    tarfile.SYMTYPE: "symlink", tarfile.FIFOTYPE: "fifo",
                    tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block"}[m.type]
            digest = ""
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            xattrs = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape").hex()
                      for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")
                      and k[len("SCHILY.xattr."):].startswith(("user.", "security.capability"))}
            out[rel] = {"type": kind, "mode": oct(m.mode & 0o7777) if kind != "symlink" else "-",
                        "uid": m.uid, "gid": m.gid, "link": m.linkname if m.issym() else "",
                        "sha256": digest, "xattrs": xattrs}
    return out
