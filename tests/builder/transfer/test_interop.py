"""strata pull of images other tools pushed: skopeo with zstd layers, a multi-arch index."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from transfer_registries import RunningRegistry, strata

from registry.oci import Platform


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Layout:
    """An OCI image layout written by hand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        hexd = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / hexd).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{hexd}", "size": len(data)}

    def image(self, arch: str, files: dict[str, bytes]) -> dict[str, Any]:
        raw = _tar(files)
        layer = self.blob(gzip.compress(raw, mtime=0),
                          "application/vnd.oci.image.layer.v1.tar+gzip")
        config = self.blob(json.dumps({
            "architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers",
                       "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
        }).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = json.dumps({"schemaVersion": 2,
                               "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": config, "layers": [layer]}).encode()
        desc = self.blob(manifest, "application/vnd.oci.image.manifest.v1+json")
        desc["platform"] = {"architecture": arch, "os": "linux"}
        return desc

    def save_index(self, top: dict[str, Any], tag: str) -> None:
        entry = dict(top)
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        (self.root / "index.json").write_text(json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [entry]}))


def _skopeo(*args: str) -> None:
    proc = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", *args],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr


def test_pull_of_zstd_layers_pushed_by_skopeo(tmp_path: Path,
                                              docker_registry: RunningRegistry) -> None:
    layout = Layout(tmp_path / "layout")
    layout.save_index(layout.image(Platform.host().architecture,
                                   {"etc/hello": b"zstd world\n"}), "v1")
    ref = f"{docker_registry.host}/zstd/app:1"
    _skopeo("--dest-compress-format", "zstd", f"oci:{layout.root}:v1", f"docker://{ref}")
    root = tmp_path / "store"
    strata(root, "pull", ref)
    inspect = json.loads(strata(root, "inspect", ref).stdout)[0]
    assert "zstd" in json.dumps(inspect["Layers"]) or "zstd" in json.dumps(inspect)
    layers = strata(root, "unpack", ref).stdout.split()
    assert Path(layers[-1], "etc", "hello").read_bytes() == b"zstd world\n"
    strata(root, "system", "check")


def test_pull_of_a_multi_arch_index_picks_the_platform(tmp_path: Path,
                                                       strata_registry: RunningRegistry) -> None:
    layout = Layout(tmp_path / "layout")
    children = [layout.image(arch, {"etc/arch": arch.encode()}) for arch in ("amd64", "arm64")]
    index = layout.blob(json.dumps({"schemaVersion": 2,
                                    "mediaType": "application/vnd.oci.image.index.v1+json",
                                    "manifests": children}).encode(),
                        "application/vnd.oci.image.index.v1+json")
    layout.save_index(index, "multi")
    ref = f"{strata_registry.host}/multi/app:1"
    _skopeo("--all", f"oci:{layout.root}:multi", f"docker://{ref}")
    host = Platform.host().architecture
    for platform, arch in ((None, host), ("linux/arm64", "arm64"), ("linux/amd64", "amd64")):
        root = tmp_path / f"store-{arch}-{platform is None}"
        strata(root, "pull", *(["--platform", platform] if platform else []), ref)
        layers = strata(root, "unpack", ref).stdout.split()
        assert Path(layers[-1], "etc", "arch").read_text() == arch
    missing = strata(tmp_path / "s390x", "pull", "--platform", "linux/s390x", ref, check=False)
    assert missing.returncode == 3
    assert "no image for platform linux/s390x" in missing.stderr
    assert "linux/amd64" in missing.stderr


def _containers_tool(tool: str, base: Path, runroot: Path, *args: str) -> None:
    proc = subprocess.run([tool, "--root", str(base / "storage"), "--runroot", str(runroot),
                           "--storage-driver", "vfs", *args],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{tool} {args}: {proc.stderr}"


def _push_with_podman_and_buildah(tools: Path, runroot: Path, rootfs: Path, host: str) -> None:
    _containers_tool("podman", tools, runroot, "import", str(rootfs), "localhost/bb:1")
    _containers_tool("podman", tools, runroot, "push", "--tls-verify=false", "--format", "v2s2",
                     "localhost/bb:1", f"docker://{host}/bypodman/bb:1")
    _containers_tool("buildah", tools, runroot, "push", "--tls-verify=false", "--format", "oci",
                     "localhost/bb:1", f"docker://{host}/bybuildah/bb:1")


def test_pull_of_images_pushed_by_podman_and_buildah(tmp_path: Path, busybox_rootfs_tar: Path,
                                                     docker_registry: RunningRegistry) -> None:
    host = docker_registry.host
    tools = tmp_path / "containers"
    runroot = Path(tempfile.mkdtemp(prefix="strata-run-"))  # podman wants a short runroot
    try:
        _push_with_podman_and_buildah(tools, runroot, busybox_rootfs_tar, host)
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
    expected = {"bypodman": "application/vnd.docker.distribution.manifest.v2+json",
                "bybuildah": "application/vnd.oci.image.manifest.v1+json"}
    for repo, media_type in expected.items():
        root = tmp_path / repo
        ref = f"{host}/{repo}/bb:1"
        strata(root, "pull", ref)
        inspect = json.loads(strata(root, "inspect", ref).stdout)[0]
        assert inspect["Descriptor"]["mediaType"] == media_type
        layers = strata(root, "unpack", ref).stdout.split()
        assert Path(layers[-1], "bin", "busybox").exists()
        strata(root, "system", "check")
