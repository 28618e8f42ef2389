"""Helpers for tests that drive real tools (importable as `tooling`: tests/ is on pythonpath)."""

from __future__ import annotations

import datetime
import io
import ipaddress
import socket
import subprocess
import tarfile
from dataclasses import dataclass
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


@dataclass(frozen=True)
class LoopbackPki:
    """PEM files of a throwaway CA, a server certificate for 127.0.0.1 and a client
    certificate, both signed by the CA."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def write_test_pki(base: Path) -> LoopbackPki:
    """Make a LoopbackPki under `base` (cryptography; valid for a day)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "strata test CA")])

    def issue(key: ec.EllipticCurvePrivateKey, name: str,
              *extensions: tuple[x509.ExtensionType, bool]) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(ca_name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(ca_key, hashes.SHA256())

    def write(path: Path, cert: x509.Certificate,
              key: ec.EllipticCurvePrivateKey | None = None) -> None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            path.with_suffix(".key").write_bytes(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))

    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), \
        ec.generate_private_key(ec.SECP256R1())
    server = issue(server_key, "127.0.0.1", (x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), False))
    client = issue(client_key, "strata test client", (x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]), False))
    pki = LoopbackPki(base / "ca.pem", base / "server.pem", base / "server.key",
                  base / "client.pem", base / "client.key")
    write(pki.ca, ca)
    write(pki.cert, server, server_key)
    write(pki.client_cert, client, client_key)
    return pki
