"""Executors: run one process in a sandbox rooted at a snapshot's mounts.

The only place with namespaces and child processes (DESIGN.md section 4). Two
implementations share this contract:

- `RuntimeExecutor` (`--isolation=runtime`): an OCI runtime bundle run by crun or runc;
- `ChrootExecutor` (`--isolation=chroot`): util-linux `unshare` plus pivot_root.

Both give the process new mount, pid, ipc and uts namespaces (and a network namespace with
only `lo` when `network="none"`), `/proc`, a minimal `/dev`, a read-only `/sys`, and
generated `/etc/hosts` and `/etc/resolv.conf` bind-mounted over the rootfs. Mount points
that the rootfs lacks are created as empty stubs before the run and removed afterwards
(with the parent directory's mtime restored), so they never show up in the snapshot's
changes; see builder.executor.rootfs. `cwd` is created when missing and stays (as docker's
WORKDIR does).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, get_args, runtime_checkable

from builder.errors import InvalidArgument, NotFound
from builder.mounts import Mount
from dockerfile_grammar.network import RUN_NETWORK_MODES

__all__ = [
    "ExecutorUnavailable",
    "ExitStatus",
    "Executor",
    "ProcessSpec",
    "ProcessStartFailed",
    "Sink",
    "User",
    "UserNotFound",
    "open_executor",
    "process_network",
    "resolve_user",
]

Network = Literal["host", "none"]  # what the sandbox gets: the host's network or only `lo`


def process_network(mode: str) -> Network:
    """The sandbox network for a RUN --network / `--network` mode (RUN_NETWORK_MODES of
    dockerfile_grammar): "none" gives only `lo`, "default" and "host" the host's network.
    Raises InvalidArgument for any other mode."""
    if mode not in RUN_NETWORK_MODES:
        raise InvalidArgument(
            f"unsupported network mode {mode!r} ({', '.join(RUN_NETWORK_MODES)})")
    return "none" if mode == "none" else "host"


class ExecutorUnavailable(NotFound):
    """No runtime for the requested isolation is installed, or the runtime itself failed."""


class ProcessStartFailed(InvalidArgument):
    """The sandbox was fine but the process could not start (no such executable, bad cwd)."""


class UserNotFound(NotFound):
    """USER names a user or group that the image's /etc/passwd or /etc/group lacks."""


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True, slots=True)
class User:
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    home: str | None = None  # from passwd when the user was found there


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """What to run. `env` holds "KEY=value" strings, used as is (nothing is added).
    `mounts` are extra mounts with container targets (bind, tmpfs, cache dirs)."""

    argv: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: User = field(default_factory=User)
    network: Network = "host"
    hostname: str = "strata"
    mounts: tuple[Mount, ...] = ()
    readonly_rootfs: bool = False
    tty: bool = False

    def __post_init__(self) -> None:
        if not self.argv:
            raise InvalidArgument("process argv must not be empty")
        if not self.cwd.startswith("/"):
            raise InvalidArgument(f"process cwd must be absolute: {self.cwd!r}")
        if self.network not in get_args(Network):
            raise InvalidArgument(f"network must be 'host' or 'none', not {self.network!r}")
        if self.tty:
            raise InvalidArgument("tty processes are not supported")


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """`code` is the exit code, or 128 + signal number when the process was killed."""

    code: int
    signal: int | None = None

    @property
    def ok(self) -> bool:
        return self.code == 0


@runtime_checkable
class Executor(Protocol):
    """Runs `process` with the root filesystem given by `mounts` (mounted by the executor
    for the duration of the call and unmounted afterwards). Output goes to the sinks in
    chunks as it is produced (discarded when None). A non-zero exit is an ExitStatus, not
    an error; ExecutorUnavailable means the sandbox itself could not be set up."""

    name: str

    def run(
        self,
        mounts: list[Mount],
        process: ProcessSpec,
        *,
        stdout: Sink | None = None,
        stderr: Sink | None = None,
    ) -> ExitStatus: ...


def _read_db(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def resolve_user(rootfs: Path, user_spec: str) -> User:
    """Resolve a Dockerfile USER value ("name", "uid", "name:group", "uid:gid") against the
    image's own /etc/passwd and /etc/group (runc's GetExecUser rules): numeric ids need
    no entry, names must exist; supplementary groups come from /etc/group membership only
    when no group was given."""
    from builder.layers.resolve import resolve_in_root

    rootfs = Path(rootfs)
    spec = user_spec.strip()
    user_part, _, group_part = spec.partition(":")
    user_part = user_part or "0"  # no USER (or ":group"): root, even without a passwd file
    passwd = _read_db(resolve_in_root(rootfs, "/etc/passwd"))
    entry = None
    for row in passwd:
        if len(row) >= 4 and (row[0] == user_part or (user_part.isdigit() and row[2] == user_part)):
            entry = row
            break
    if entry is None:
        if not user_part.isdigit():
            raise UserNotFound(
                f"unable to find user {user_part}: no matching entries in passwd file"
            )
        uid, gid, name, home = int(user_part), 0, None, None
    else:
        name = entry[0]
        uid = int(entry[2]) if entry[2].isdigit() else 0
        gid = int(entry[3]) if entry[3].isdigit() else 0
        home = entry[5] if len(entry) > 5 and entry[5] else None
    groups = _read_db(resolve_in_root(rootfs, "/etc/group"))
    extra: list[int] = []
    if group_part:
        match = None
        for row in groups:
            if len(row) >= 3 and (row[0] == group_part
                                  or (group_part.isdigit() and row[2] == group_part)):
                match = row
                break
        if match is not None and match[2].isdigit():
            gid = int(match[2])
        elif group_part.isdigit():
            gid = int(group_part)
        else:
            raise UserNotFound(
                f"unable to find group {group_part}: no matching entries in group file"
            )
    elif name is not None:
        for row in groups:
            members = row[3].split(",") if len(row) >= 4 else []
            if name in members and row[2].isdigit() and int(row[2]) not in extra:
                extra.append(int(row[2]))
    return User(uid, gid, tuple(extra), home)


def open_executor(kind: str = "auto", *, state_dir: Path | None = None) -> Executor:
    """"runtime" (crun, else runc), "chroot", or "auto" (runtime when one is installed)."""
    from builder.executor.namespaces import ChrootExecutor
    from builder.executor.runtime import RuntimeExecutor, find_runtimes

    if kind not in ("auto", "runtime", "chroot"):
        raise InvalidArgument(f"unknown isolation {kind!r} (auto, runtime, chroot)")
    if kind in ("auto", "runtime"):
        runtimes = find_runtimes()
        if runtimes:
            return RuntimeExecutor(runtimes, state_dir=state_dir)
        if kind == "runtime":
            raise ExecutorUnavailable("no OCI runtime (crun or runc) found in PATH")
    if shutil.which("unshare") is None:
        raise ExecutorUnavailable("util-linux unshare is not installed")
    return ChrootExecutor()
