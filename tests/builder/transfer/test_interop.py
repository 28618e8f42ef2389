"""strata pull of images other tools pushed: skopeo with zstd layers, a multi-arch index."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from oci_layouts import OciLayout
from transfer_registries import RunningRegistry, strata

from registry.oci import Platform


def _skopeo(*args: str) -> None:
    proc = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", *args],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr


def test_pull_of_zstd_layers_pushed_by_skopeo(tmp_path: Path,
                                              docker_registry: RunningRegistry) -> None:
    layout = OciLayout(tmp_path / "layout")
    layout.tag(layout.image(Platform.host().architecture, {"etc/hello": b"zstd world\n"}), "v1")
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
    layout = OciLayout(tmp_path / "layout")
    layout.tag(layout.multi_arch(("amd64", "arm64")), "multi")
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
