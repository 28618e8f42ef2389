"""RuntimeExecutor: an OCI runtime bundle (config.json) run by crun or runc.

The bundle's root is the snapshot mounted by builder.executor.rootfs. The spec sets no
`process.rlimits` (raising rlimits is refused on the machines we target) and no user
namespace. Namespaces: mount, pid, ipc, uts, and network only for `network="none"`
(the runtime then gives the process a fresh namespace, where we bring `lo` up). Mounts
follow docker's defaults: /proc, a tmpfs /dev (the runtime adds null, zero, full,
random, urandom, tty and the /dev/ptmx link), devpts, /dev/shm, /dev/mqueue, a
read-only /sys, and the generated /etc/hosts and /etc/resolv.conf. Capabilities are
docker's default set; no seccomp profile.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from builder.executor import (
    ExecutorUnavailable,
    ExitStatus,
    ProcessSpec,
    ProcessStartFailed,
    Sink,
)
from builder.executor.pump import run_pumped
from builder.executor.rootfs import RunRoot, run_root
from builder.mounts import Mount
from builder.probecache import remembered

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)


def find_runtimes() -> list[str]:
    """Paths of the installed OCI runtimes, crun first, then runc."""
    found = []
    for name in ("crun", "runc"):
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
        if path:
            found.append(path)
    return found


# runtime path -> the error it gave before starting any process (e.g. crun refuses
# hybrid cgroup v1/v2 hosts); such a runtime is skipped for the rest of the process.
_broken: dict[str, str] = {}


def _mount_json(m: Mount) -> dict[str, Any]:
    return {"destination": m.target, "type": m.type, "source": m.source,
            "options": list(m.options)}


def runtime_spec(process: ProcessSpec, run: RunRoot) -> dict[str, Any]:
    """The config.json for one run (pure apart from the paths in `run`)."""
    caps = list(DEFAULT_CAPABILITIES)
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if process.network == "none":
        namespaces.append({"type": "network"})
    mounts = [
        Mount("proc", "proc", "/proc", ("nosuid", "noexec", "nodev")),
        Mount("tmpfs", "tmpfs", "/dev", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        Mount("devpts", "devpts", "/dev/pts",
              ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
        Mount("tmpfs", "shm", "/dev/shm",
              ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
        Mount("mqueue", "mqueue", "/dev/mqueue", ("nosuid", "noexec", "nodev")),
        Mount("sysfs", "sysfs", "/sys", ("nosuid", "noexec", "nodev", "ro")),
        Mount("bind", str(run.hosts), "/etc/hosts", ("rbind", "rprivate")),
        Mount("bind", str(run.resolv_conf), "/etc/resolv.conf", ("rbind", "rprivate")),
    ]
    mounts += [_oci_extra(m) for m in process.mounts]
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {
                "uid": process.user.uid,
                "gid": process.user.gid,
                "additionalGids": list(process.user.additional_gids),
            },
            "args": list(process.argv),
            "env": list(process.env),
            "cwd": process.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": False,
        },
        "root": {"path": str(run.rootfs), "readonly": process.readonly_rootfs},
        "hostname": process.hostname,
        "mounts": [_mount_json(m) for m in mounts],
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    return spec


def _oci_extra(m: Mount) -> Mount:
    """Extra mounts as the runtime wants them: binds typed "bind" with rbind."""
    if m.type == "bind":
        opts = tuple(m.options)
        if not ({"bind", "rbind"} & set(opts)):
            opts = ("rbind", *opts)
        return Mount("bind", m.source, m.target, opts)
    return m


class RuntimeExecutor:
    """Executor over OCI runtime binaries; see the module docstring.

    `runtimes` is an ordered preference (crun, then runc). Each is checked once per
    process by `probe_runtime`; one that cannot start containers here (e.g. crun on a
    hybrid cgroup v1/v2 host) is skipped for good. After that, a runtime error logged
    during a run means the process itself could not start (ProcessStartFailed)."""

    name = "runtime"

    def __init__(self, runtimes: Sequence[str] | str, *, state_dir: Path | None = None) -> None:
        self.runtimes = [runtimes] if isinstance(runtimes, str) else list(runtimes)
        if not self.runtimes:
            raise ExecutorUnavailable("no OCI runtime (crun or runc) found")
        self.state_dir = Path(state_dir) if state_dir is not None else None

    @property
    def runtime(self) -> str:
        """The runtime runs use: the first one that passes `probe_runtime`."""
        for r in self.runtimes:
            if r not in _broken and probe_runtime(r, self.state_dir) is None:
                return r
        raise ExecutorUnavailable(
            "no usable OCI runtime: "
            + "; ".join(f"{os.path.basename(r)}: {_broken.get(r)}" for r in self.runtimes)
        )

    def run(
        self,
        mounts: list[Mount],
        process: ProcessSpec,
        *,
        stdout: Sink | None = None,
        stderr: Sink | None = None,
    ) -> ExitStatus:
        with run_root(mounts, process) as run:
            bundle = run.scratch / "bundle"
            bundle.mkdir()
            spec = runtime_spec(process, run)
            (bundle / "config.json").write_text(json.dumps(spec, indent=1))
            runtime = self.runtime
            log = run.scratch / "runtime.log"
            status = run_pumped(
                _runtime_argv(runtime, self.state_dir, bundle, log),
                stdout=stdout, stderr=stderr, env=_runtime_env(),
            )
            failure = None if status.ok else _runtime_failure(log)
            if failure is not None:
                raise ProcessStartFailed(
                    f"{os.path.basename(runtime)} could not start {process.argv[0]!r}: {failure}"
                )
            return status


def _runtime_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}


def _runtime_argv(runtime: str, state_dir: Path | None, bundle: Path, log: Path) -> list[str]:
    argv = [runtime]
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        argv += ["--root", str(state_dir)]
    if os.path.basename(runtime) == "crun":
        argv.append("--cgroup-manager=disabled")
    return [*argv, "--log", str(log), "run", "--bundle", str(bundle),
            "strata-" + secrets.token_hex(8)]


PROBE_BINARY = "/strata-runtime-probe"


def probe_runtime(runtime: str, state_dir: Path | None = None) -> str | None:
    """None when `runtime` can start containers here, else its error. Cached per process,
    and per running kernel in `<state_dir>/probes.json` (keyed by the binary's path, size
    and mtime, so an upgraded runtime is probed again).

    Runs a bundle over an empty rootfs whose process does not exist: a working runtime
    gets as far as exec and complains about that binary; a broken one fails earlier
    (crun on a hybrid cgroup v1/v2 host: "cgroups in hybrid mode not supported")."""
    if runtime in _probe_ok:
        return None
    if runtime in _broken:
        return _broken[runtime]
    failure = _probe_remembered(runtime, state_dir)
    if failure is None:
        _probe_ok.add(runtime)
    else:
        _broken[runtime] = failure
    return failure


def _probe_remembered(runtime: str, state_dir: Path | None) -> str | None:
    """`_probe`, answered from `<state_dir>/probes.json` when this boot already ran it."""
    try:
        st = os.stat(runtime)
    except OSError:
        st = None
    if state_dir is None or st is None:
        return _probe(runtime, state_dir)
    key = f"runtime:{runtime}:{st.st_size}:{st.st_mtime_ns}"
    return remembered(Path(state_dir) / "probes.json", key, lambda: _probe(runtime, state_dir))


def _probe(runtime: str, state_dir: Path | None) -> str | None:
    """Run the probe bundle once; None when the runtime started it."""
    with tempfile.TemporaryDirectory(prefix="strata-probe-") as tmp:
        bundle = Path(tmp)
        (bundle / "rootfs" / "proc").mkdir(parents=True)
        spec = {
            "ociVersion": "1.0.2",
            "process": {"terminal": False, "user": {"uid": 0, "gid": 0},
                        "args": [PROBE_BINARY], "env": [], "cwd": "/"},
            "root": {"path": "rootfs", "readonly": False},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts")]},
        }
        (bundle / "config.json").write_text(json.dumps(spec))
        log = bundle / "runtime.log"
        proc = subprocess.run(
            _runtime_argv(runtime, state_dir, bundle, log),
            capture_output=True, text=True, env=_runtime_env(), check=False,
            stdin=subprocess.DEVNULL,
        )
        text = proc.stderr + (log.read_text(errors="replace") if log.exists() else "")
        if proc.returncode == 0 or PROBE_BINARY in text:
            return None
        return _runtime_failure(log) or text.strip() or f"exit {proc.returncode}"


_probe_ok: set[str] = set()


def _runtime_failure(log: Path) -> str | None:
    """The runtime's own error (as opposed to the process's exit code), if it logged one."""
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return None
    if not text:
        return None
    messages = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            messages.append(line)
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            messages.append(str(entry.get("msg", line)))
    return messages[-1] if messages else None
