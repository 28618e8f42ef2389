"""Real clients against a real registry process (CI runs as root with the tools installed).

Session fixtures: the registry process on a free loopback port, a busybox rootfs tarball,
OCI image layouts written by hand (one image, and a two-platform index), and a private dockerd
(its own data-root, exec-root and socket; 127.0.0.0/8 is an insecure registry by default).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ls", "cat", "echo", "true", "uname")
DOCKER = "/usr/bin/docker"  # docker.io 20.10; /usr/local/bin/docker may be a newer CLI


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RegistryProcess:
    host: str  # 127.0.0.1:PORT
    root: Path
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def get_json(self, path: str, accept: str | None = None) -> Any:
        req = urllib.request.Request(self.url + path)
        if accept:
            req.add_header("Accept", accept)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def access_lines(self) -> list[dict[str, Any]]:
        time.sleep(0.7)  # the server flushes its access log every 0.5 s
        lines = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if "method" in record:
                    lines.append(record)
        return lines


def _run(*argv: str, env: dict[str, str] | None = None, timeout: float = 120,
        check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run a client command; on failure the assertion shows its output."""
    proc = subprocess.run(list(argv), capture_output=True, text=input is None, timeout=timeout,
                          env={**os.environ, **(env or {})}, input=input)
    if check:
        assert proc.returncode == 0, f"{argv} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="session")
def run() -> Any:
    """The command runner (`run(*argv, env=..., check=...)`) for tests."""
    return _run


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    base = tmp_path_factory.mktemp("registry")
    port = _free_port()
    log = base / "registry.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "registry.server", "serve", "--addr", f"127.0.0.1:{port}",
             "--root", str(base / "root"), "--delete-enabled", "--log-format", "json"],
            stdout=log_file, stderr=subprocess.STDOUT)
    reg = RegistryProcess(f"127.0.0.1:{port}", base / "root", log, proc)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"registry exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(reg.url + "/v2/", timeout=1):
                break
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise AssertionError("registry did not start") from None
            time.sleep(0.1)
    yield reg
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- images on disk


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.mtime = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


Members = list[tuple[tarfile.TarInfo, bytes | None]]


def busybox_members(extra: dict[str, bytes] | None = None) -> Members:
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
    for name, content in (extra or {}).items():
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(content), 0o644
        members.append((info, content))
    return members


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rootfs tarball: /bin/busybox-static plus a few applet symlinks."""
    path = tmp_path_factory.mktemp("rootfs") / "busybox.tar"
    path.write_bytes(_tar_bytes(busybox_members()))
    return path


class OciLayout:
    """Writes an OCI image layout (oci-layout, index.json, blobs/sha256/...) by hand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.index: list[dict[str, Any]] = []

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        hexd = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / hexd).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{hexd}", "size": len(data)}

    def image(self, arch: str, extra: dict[str, bytes] | None = None,
              labels: dict[str, str] | None = None) -> dict[str, Any]:
        layer_tar = _tar_bytes(busybox_members(extra))
        layer = self.blob(gzip.compress(layer_tar, mtime=0),
                          "application/vnd.oci.image.layer.v1.tar+gzip")
        config = self.blob(json.dumps({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Labels": labels or {}},
            "rootfs": {"type": "layers",
                       "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
        }).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = json.dumps({"schemaVersion": 2,
                               "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": config, "layers": [layer]}).encode()
        desc = self.blob(manifest, "application/vnd.oci.image.manifest.v1+json")
        desc["platform"] = {"architecture": arch, "os": "linux"}
        return desc

    def multi_arch(self, archs: tuple[str, ...] = ("amd64", "arm64")) -> dict[str, Any]:
        children = [self.image(arch, {"etc/arch": arch.encode()}) for arch in archs]
        index = json.dumps({"schemaVersion": 2,
                            "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": children}).encode()
        return self.blob(index, "application/vnd.oci.image.index.v1+json")

    def tag(self, desc: dict[str, Any], tag: str) -> None:
        entry = {k: v for k, v in desc.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index.append(entry)
        (self.root / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": self.index}))


@pytest.fixture
def oci_layout(tmp_path: Path) -> OciLayout:
    return OciLayout(tmp_path / "layout")


# --------------------------------------------------------------------------- dockerd


def _unmount_below(base: Path) -> None:
    """Lazily unmount what dockerd may leave mounted (exec-root/netns/default) under base."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    targets = [line.split()[1] for line in mounts if len(line.split()) > 1]
    for target in sorted((t for t in targets if t.startswith(str(base) + "/")), reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[dict[str, str]]:
    """A private docker daemon; yields the env (DOCKER_HOST) for /usr/bin/docker.

    Its directories live outside pytest's tmp tree so nothing dockerd mounts there can break
    pytest's cleanup; they are unmounted and removed at teardown.
    """
    base = Path(tempfile.mkdtemp(prefix="strata-dockerd-"))
    sock = base / "docker.sock"
    log_path = base / "dockerd.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
         "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "docker.pid"), "--host", f"unix://{sock}"],
        stdout=log, stderr=subprocess.STDOUT)
    env = {"DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(base / "client")}
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(log_path.read_text())
            if sock.exists() and _run(DOCKER, "version", env=env, check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError("dockerd did not start: " + log_path.read_text())
            time.sleep(0.3)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _unmount_below(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def containers_storage(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Global flags giving podman and buildah a private vfs store."""
    base = tmp_path_factory.mktemp("cstorage")
    return ["--root", str(base / "root"), "--runroot", str(base / "run"),
            "--storage-driver", "vfs"]
