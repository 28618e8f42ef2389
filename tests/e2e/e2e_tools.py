"""Drive the two builders the differential tests compare: docker (a private dockerd, BuildKit)
and strata (the CLI in this checkout, its own store root).

A `Case` is a Dockerfile plus its build context, written to a directory on demand. Both
builders get the same context directory, the same Dockerfile, build args and target, and the
same base image: the busybox rootfs tar imported under `BASE_IMAGE` into each store.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tooling import DOCKER_CLIENT

REPO = Path(__file__).resolve().parents[2]
STRATA = str(Path(sys.executable).parent / "strata")
BASE_IMAGE = "e2e-busybox:1"
BUILD_TIMEOUT = 300


@dataclass(frozen=True, slots=True)
class File:
    data: bytes | str
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class Dir:
    mode: int = 0o755


@dataclass(frozen=True, slots=True)
class Symlink:
    target: str


@dataclass(frozen=True, slots=True)
class TarGz:
    """A tarball made at write time; entries are (name, data or None for a dir, mode, uid,
    gid); `compression` is gz, xz, bz2 or "" (plain tar)."""

    entries: tuple[tuple[str, bytes | None, int, int, int], ...]
    compression: str = "gz"


@dataclass(frozen=True, slots=True)
class HardLink:
    """A second name for an earlier context file."""

    target: str


ContextItem = File | Dir | Symlink | TarGz | HardLink | str


@dataclass(frozen=True, slots=True)
class Run:
    """`docker run --rm IMAGE *args` must print `expected` (stdout, stripped) for both images."""

    args: tuple[str, ...] = ()
    expected: str | None = None


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    dockerfile: str
    context: Mapping[str, ContextItem] = field(default_factory=dict)
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    runs: tuple[Run, ...] = ()
    dockerfile_name: str = "Dockerfile"
    also_tag: str | None = None  # a second name, the same in both stores (a later FROM uses it)
    needs: tuple[str, ...] = ()  # cases to build first (their also_tag is this case's base)
    # Empty RUN --mount target dirs that docker 20.10 (BuildKit 0.8) leaves in the layer and
    # BuildKit >= 0.9 removes (executor/stubs.go): strata must follow current BuildKit.
    mount_stubs: tuple[str, ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict)  # id -> content, via --secret

    def __str__(self) -> str:
        return self.name


def _targz(spec: TarGz) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode, uid, gid in spec.entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, 1_600_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    data = raw.getvalue()
    if spec.compression == "gz":
        return gzip.compress(data, mtime=0)
    if spec.compression == "xz":
        return lzma.compress(data)
    if spec.compression == "bz2":
        return bz2.compress(data)
    return data


def write_context(case: Case, dest: Path) -> Path:
    """Write the case's context (and Dockerfile) below `dest`; return the context dir."""
    dest.mkdir(parents=True, exist_ok=True)
    items: dict[str, ContextItem] = {case.dockerfile_name: case.dockerfile, **case.context}
    for rel, item in sorted(items.items()):
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(item, Dir):
            path.mkdir(exist_ok=True)
            os.chmod(path, item.mode)
        elif isinstance(item, Symlink):
            os.symlink(item.target, path)
        elif isinstance(item, HardLink):
            os.link(dest / item.target, path)
        elif isinstance(item, TarGz):
            path.write_bytes(_targz(item))
            os.chmod(path, 0o644)
        else:
            spec = item if isinstance(item, File) else File(item)
            data = spec.data.encode() if isinstance(spec.data, str) else spec.data
            path.write_bytes(data)
            os.chmod(path, spec.mode)
    return dest


def _build_flags(case: Case, context: Path) -> list[str]:
    flags = ["-f", str(context / case.dockerfile_name)]
    for key, value in sorted(case.build_args.items()):
        flags += ["--build-arg", f"{key}={value}"]
    if case.target:
        flags += ["--target", case.target]
    for secret_id in sorted(case.secrets):
        path = context.parent / f"secret-{secret_id}"
        path.write_text(case.secrets[secret_id])
        flags += ["--secret", f"id={secret_id},src={path}"]
    return flags


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        timeout: float = BUILD_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), env=dict(env) if env is not None else None,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


@dataclass(frozen=True, slots=True)
class Docker:
    """The docker client bound to one private daemon."""

    env: Mapping[str, str]

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = BUILD_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return run([DOCKER_CLIENT, *args], env=self.env, check=check, timeout=timeout)

    def build(self, case: Case, context: Path, tag: str) -> subprocess.CompletedProcess[str]:
        return self("build", "--network=host", "--progress=plain", "-t", tag,
                    *_build_flags(case, context), str(context), check=False)


@dataclass(frozen=True, slots=True)
class Strata:
    """The strata CLI of this checkout on one store root (`build_flags` go to every build)."""

    root: Path
    build_flags: tuple[str, ...] = ()

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = BUILD_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return run([STRATA, "--root", str(self.root), *args], check=check, timeout=timeout)

    def build(self, case: Case, context: Path, tag: str) -> subprocess.CompletedProcess[str]:
        return self("build", "--progress", "plain", *self.build_flags, "-t", tag,
                    *_build_flags(case, context), str(context), check=False)
