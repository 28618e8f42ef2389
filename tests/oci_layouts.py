"""OCI image layouts written by hand for clients that read `oci:<dir>:<tag>` (skopeo, oras).

`OciLayout(root, base=...)` writes oci-layout, blobs/sha256/... and index.json; every image it
makes has one gzip layer: the `base` members (e.g. `busybox_members()`) plus the given files.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ls", "cat", "echo", "true", "uname")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

Members = list[tuple[tarfile.TarInfo, bytes | None]]


def tar_bytes(members: Members) -> bytes:
    """A PAX tar of `members` with mtime 0 and no user/group names."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.mtime = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file_members(files: dict[str, bytes]) -> Members:
    """Regular files (mode 0644) named by their path in the tar."""
    members: Members = []
    for name, content in files.items():
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(content), 0o644
        members.append((info, content))
    return members


def busybox_members() -> Members:
    """/bin, /tmp, /etc, bin/busybox (Debian's static one) and a few applet symlinks."""
    members: Members = []
    for d in ("bin", "tmp", "etc"):
        info = tarfile.TarInfo(d)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        members.append((info, None))
    data = BUSYBOX.read_bytes()
    info = tarfile.TarInfo("bin/busybox")
    info.size, info.mode = len(data), 0o755
    members.append((info, data))
    for applet in APPLETS:
        link = tarfile.TarInfo(f"bin/{applet}")
        link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
        members.append((link, None))
    return members


class OciLayout:
    """Writes an OCI image layout (oci-layout, index.json, blobs/sha256/...) by hand."""

    def __init__(self, root: Path, base: Members | None = None) -> None:
        self.root = root
        self.base = base or []
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.index: list[dict[str, Any]] = []

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        hexd = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / hexd).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{hexd}", "size": len(data)}

    def image(self, arch: str, extra: dict[str, bytes] | None = None,
              labels: dict[str, str] | None = None) -> dict[str, Any]:
        """A one-layer linux/`arch` image (base members plus `extra` files); its descriptor
        carries the platform, ready to go into an index."""
        layer_tar = tar_bytes([*self.base, *file_members(extra or {})])
        layer = self.blob(gzip.compress(layer_tar, mtime=0),
                          "application/vnd.oci.image.layer.v1.tar+gzip")
        config = self.blob(json.dumps({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Labels": labels or {}},
            "rootfs": {"type": "layers",
                       "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
        }).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": config, "layers": [layer]}).encode()
        desc = self.blob(manifest, OCI_MANIFEST)
        desc["platform"] = {"architecture": arch, "os": "linux"}
        return desc

    def multi_arch(self, archs: tuple[str, ...] = ("amd64", "arm64")) -> dict[str, Any]:
        """An index of one image per arch, each holding etc/arch with the arch name."""
        children = [self.image(arch, {"etc/arch": arch.encode()}) for arch in archs]
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                            "manifests": children}).encode()
        return self.blob(index, OCI_INDEX)

    def tag(self, desc: dict[str, Any], tag: str) -> None:
        """Add `desc` to index.json under the ref name `tag`."""
        entry = {k: v for k, v in desc.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index.append(entry)
        (self.root / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.index}))
