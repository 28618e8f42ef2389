"""Round trips through the real tools: docker, podman, skopeo and umoci read what strata writes,
and images they write unpack in strata to the same tree as docker's own export."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_util import tar_listing, tree_listing
from tooling import DOCKER_CLIENT

from builder.images import ImageStore

# cap_net_bind_service=ep as a VFS_CAP_REVISION_2 security.capability value
CAP_NET_BIND = bytes.fromhex("0100000200040000000000000000000000000000")
# paths docker's init layer or runtime owns, not part of the image
IGNORE = {".dockerenv", "dev", "proc", "sys", "etc/hosts", "etc/hostname", "etc/resolv.conf",
          "etc/mtab", "run"}
MODIFY = (
    "set -e; mkdir -p /srv/data; echo hi > /srv/data/f; chown 1000:1000 /srv/data/f; "
    "chmod 4755 /srv/data/f; ln /srv/data/f /srv/data/hard; ln -s ../data/f /srv/data/rel; "
    "ln -s /etc/passwd /srv/abs; mkfifo /srv/fifo; rm /etc/group; rm -rf /opt/tree; "
    "mkdir -p /opt/tree/new; echo x > /opt/tree/new/y; chmod 700 /opt/tree; "
    "rm /opt/cap.bin"
)


def _rich_rootfs(busybox_tar: Path, dest: Path) -> Path:
    """busybox plus entries that exercise owners, modes, xattrs and special files."""
    with tarfile.open(busybox_tar) as src, tarfile.open(dest, "w",
                                                      format=tarfile.PAX_FORMAT) as out:
        for m in src:
            out.addfile(m, src.extractfile(m) if m.isfile() else None)

        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
                uid: int = 0, gid: int = 0, pax: dict[str, str] | None = None) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, 0
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            if pax:
                info.pax_headers = pax
            if kind == tarfile.CHRTYPE:
                info.devmajor, info.devminor = 1, 3
            out.addfile(info, io.BytesIO(data) if data else None)

        add("opt", tarfile.DIRTYPE, mode=0o755)
        add("opt/tree", tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000)
        add("opt/tree/old", data=b"old contents\n", mode=0o600, uid=1000, gid=1000)
        add("opt/ping", data=b"#!/bin/sh\necho ping\n", mode=0o755, pax={
            "SCHILY.xattr.security.capability": CAP_NET_BIND.decode("utf-8", "surrogateescape")})
        add("opt/cap.bin", data=b"gone later\n")
        add("opt/null", tarfile.CHRTYPE, mode=0o666)
        add("opt/sgid", tarfile.DIRTYPE, mode=0o2775, gid=1000)
    return dest


class Docker:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str) -> str:
        proc = subprocess.run([DOCKER_CLIENT, *args], env=self.env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
        return proc.stdout


@pytest.fixture(scope="module")
def docker_image(docker_daemon: dict[str, str], busybox_rootfs_tar: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[Docker, Path, Path]:
    """A two-layer docker image `e1-rich:v1` saved with docker save, plus docker's export."""
    docker = Docker(docker_daemon)
    work = tmp_path_factory.mktemp("e1docker")
    rootfs = _rich_rootfs(busybox_rootfs_tar, work / "rich-rootfs.tar")
    docker("import", "--change", 'CMD ["sh"]', str(rootfs), "e1-rich-base:v1")
    docker("rm", "-f", "e1-rich-build")
    docker("run", "--network=host", "--name", "e1-rich-build", "e1-rich-base:v1", "sh", "-c",
           MODIFY)
    docker("commit", "e1-rich-build", "e1-rich:v1")
    docker("rm", "-f", "e1-rich-build")
    saved = work / "docker-save.tar"
    docker("save", "-o", str(saved), "e1-rich:v1")
    docker("create", "--name", "e1-rich-export", "e1-rich:v1")
    exported = work / "docker-export.tar"
    docker("export", "-o", str(exported), "e1-rich-export")
    docker("rm", "-f", "e1-rich-export")
    return docker, saved, exported


@contextlib.contextmanager
def overlay_view(layers: list[Path], target: Path) -> Iterator[Path]:
    """Mount the unpacked layers (lowest first) as a read-only overlay."""
    target.mkdir()
    lower = ":".join(str(p) for p in reversed(layers))
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}",
                    str(target)], check=True, capture_output=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def _assert_same_tree_as_export(store: ImageStore, name: str, exported: Path,
                                mountpoint: Path) -> None:
    layers = store.unpack(store.resolve(name))
    assert len(layers) >= 2
    with overlay_view(layers, mountpoint) as view:
        ours = tree_listing(view, IGNORE)
    theirs = tar_listing(exported, IGNORE)
    assert ours.keys() == theirs.keys(), sorted(ours.keys() ^ theirs.keys())
    diffs = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
    assert diffs == {}
    assert ours["opt/ping"]["xattrs"] == {"security.capability": CAP_NET_BIND.hex()}
    assert ours["srv/data/f"]["mode"] == "0o4755" and ours["srv/data/f"]["uid"] == 1000
    assert "etc/group" not in ours and "opt/tree/old" not in ours


def test_docker_save_loads_and_unpacks_to_the_same_tree_as_docker_export(
        docker_image: tuple[Docker, Path, Path], strata: Callable[..., object], root: Path,
        tmp_path: Path) -> None:
    _, saved, exported = docker_image
    out = strata("load", "-i", str(saved))
    assert "Loaded image: e1-rich:v1" in out.stdout  # type: ignore[attr-defined]
    with ImageStore(root) as store:
        _assert_same_tree_as_export(store, "e1-rich:v1", exported, tmp_path / "mnt")
    deep = strata("system", "check", "--deep")  # whiteouts, opaque dirs, xattrs re-derived
    assert "ok:" in deep.stdout  # type: ignore[attr-defined]


def test_strata_save_is_loaded_by_docker_and_runs(
        docker_image: tuple[Docker, Path, Path], strata: Callable[..., object], root: Path,
        tmp_path: Path) -> None:
    docker, saved, _ = docker_image
    strata("load", "-i", str(saved))
    strata("tag", "e1-rich:v1", "e1-back:v2")
    archive = tmp_path / "strata-save.tar"
    strata("save", "-o", str(archive), "e1-back:v2")
    docker("rmi", "-f", "e1-back:v2") if "e1-back" in docker("images") else None
    assert "Loaded image: e1-back:v2" in docker("load", "-i", str(archive))
    out = docker("run", "--rm", "--network=host", "e1-back:v2", "sh", "-c",
                 "cat /srv/data/f; test ! -e /etc/group && echo whiteout-ok")
    assert out.split() == ["hi", "whiteout-ok"]
    strata_id = strata("inspect", "--id", "e1-back:v2").stdout.strip()  # type: ignore
    assert docker("inspect", "--format", "{{.Id}}", "e1-back:v2").strip() == strata_id


def test_save_with_docker_media_types_is_loaded_by_docker_and_strata(
        docker_image: tuple[Docker, Path, Path], strata: Callable[..., object], root: Path,
        tmp_path: Path) -> None:
    docker, saved, _ = docker_image
    strata("load", "-i", str(saved))
    strata("import", "--change", 'CMD ["sh"]', str(saved.parent / "rich-rootfs.tar"),
           "e1-gz:v1")  # a gzip layer, so every media type has a Docker schema2 name
    archive = tmp_path / "schema2.tar"
    strata("save", "--media-types", "docker", "-o", str(archive), "e1-gz:v1")
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        [desc] = index["manifests"]
        manifest = json.load(tar.extractfile(  # type: ignore[arg-type]
            "blobs/sha256/" + desc["digest"][7:]))
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert docker("load", "-i", str(archive)).strip() == "Loaded image: e1-gz:v1"
    assert docker("run", "--rm", "--network=host", "e1-gz:v1", "cat", "/opt/tree/old") == \
        "old contents\n"
    strata("rmi", "e1-gz:v1")
    strata("load", "-i", str(archive))
    [obj] = json.loads(strata("inspect", "e1-gz:v1").stdout)  # type: ignore[attr-defined]
    assert obj["Descriptor"]["mediaType"] == manifest["mediaType"]


def test_oci_archive_round_trips_through_skopeo_and_strata(
        docker_image: tuple[Docker, Path, Path], strata: Callable[..., object], root: Path,
        tmp_path: Path) -> None:
    _, saved, _ = docker_image
    strata("load", "-i", str(saved))
    archive = tmp_path / "oci.tar"
    strata("save", "--format", "oci", "-o", str(archive), "e1-rich:v1")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "manifest.json" not in names and "index.json" in names and "oci-layout" in names
    subprocess.run(["skopeo", "copy", f"oci-archive:{archive}:e1-rich:v1",
                    f"oci-archive:{tmp_path / 'copy.tar'}:again:v1"], check=True,
                   capture_output=True)
    out = strata("load", "-i", str(tmp_path / "copy.tar"))
    assert "Loaded image: again:v1" in out.stdout  # type: ignore[attr-defined]
    first = strata("inspect", "--id", "e1-rich:v1").stdout  # type: ignore[attr-defined]
    assert strata("inspect", "--id", "again:v1").stdout == first  # type: ignore[attr-defined]


def test_skopeo_and_umoci_read_the_store_layout_directly(
        docker_image: tuple[Docker, Path, Path], strata: Callable[..., object], root: Path,
        tmp_path: Path) -> None:
    _, saved, exported = docker_image
    strata("load", "-i", str(saved))
    dest = tmp_path / "dir"
    subprocess.run(["skopeo", "copy", f"oci:{root}/oci:e1-rich:v1", f"dir:{dest}"], check=True,
                   capture_output=True)
    manifest = json.loads((dest / "manifest.json").read_text())
    assert len(manifest["layers"]) == 2
    bundle = tmp_path / "bundle"
    proc = subprocess.run(["umoci", "unpack", "--image", f"{root}/oci:e1-rich:v1", str(bundle)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ours = tree_listing(bundle / "rootfs", IGNORE)
    theirs = tar_listing(exported, IGNORE)
    assert ours == theirs
    assert strata("system", "check").returncode == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_saved_images_unpack_to_docker_export_tree(
        docker_image: tuple[Docker, Path, Path], strata: Callable[..., object], root: Path,
        tmp_path: Path, fmt: str) -> None:
    _, saved, exported = docker_image
    runroot = tempfile.mkdtemp(prefix="e1prun-", dir="/tmp")  # podman wants < 50 chars
    podman = ["podman", "--root", str(tmp_path / "proot"), "--runroot", runroot,
              "--storage-driver", "vfs"]

    def run(*args: str) -> str:
        proc = subprocess.run([*podman, *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    try:
        run("load", "-i", str(saved))
        out_tar = tmp_path / f"podman-{fmt}.tar"
        run("save", "--format", fmt, "-o", str(out_tar), "e1-rich:v1")
    finally:  # vfs storage has no mounts: removing the dirs is enough ("system reset"
        # would also touch host-wide podman state such as networks)
        shutil.rmtree(runroot, ignore_errors=True)
        shutil.rmtree(tmp_path / "proot", ignore_errors=True)
    loaded = strata("load", "-i", str(out_tar)).stdout  # type: ignore[attr-defined]
    name = "e1-rich:v1"
    strata("tag", loaded.split()[-1], name)  # podman names it localhost/e1-rich:v1
    with ImageStore(root) as store:
        _assert_same_tree_as_export(store, name, exported, tmp_path / "mnt")
