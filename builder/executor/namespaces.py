"""ChrootExecutor: the built-in sandbox, for machines without crun or runc.

`unshare --mount --propagation private --pid --fork --ipc --uts [--net] --kill-child`
starts `python -m builder.executor.sandbox SPEC.json` as pid 1 of a new pid namespace.
The sandbox mounts /proc, a tmpfs /dev with the usual device nodes, devpts, /dev/shm,
a read-only /sys, the generated /etc/hosts and /etc/resolv.conf and the extra mounts,
brings `lo` up in a new network namespace, sets the hostname, pivot_roots into the
rootfs (chroot if pivot_root is refused), switches to the user and execs the process,
which therefore becomes pid 1 itself, with the bounding capability set cut down to
docker's defaults as under the runtime.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from builder.executor import (
    ExecutorUnavailable,
    ExitStatus,
    ProcessSpec,
    ProcessStartFailed,
    Sink,
)
from builder.executor.pump import run_pumped
from builder.executor.rootfs import run_root
from builder.mounts import Mount


class ChrootExecutor:
    """Executor over util-linux unshare; see the module docstring."""

    name = "chroot"

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        unshare = shutil.which("unshare")
        if unshare is None:
            raise ExecutorUnavailable("util-linux unshare is not installed")
        self.unshare = unshare

    def run(
        self,
        mounts: list[Mount],
        process: ProcessSpec,
        *,
        stdout: Sink | None = None,
        stderr: Sink | None = None,
    ) -> ExitStatus:
        with run_root(mounts, process) as run:
            spec = {
                "rootfs": str(run.rootfs),
                "hosts": str(run.hosts),
                "resolv_conf": str(run.resolv_conf),
                "argv": list(process.argv),
                "env": list(process.env),
                "cwd": process.cwd,
                "uid": process.user.uid,
                "gid": process.user.gid,
                "groups": list(process.user.additional_gids),
                "hostname": process.hostname,
                "network": process.network,
                "readonly_rootfs": process.readonly_rootfs,
                "mounts": [
                    {"type": m.type, "source": m.source, "target": m.target,
                     "options": list(m.options)}
                    for m in process.mounts
                ],
            }
            spec_file = run.scratch / "sandbox.json"
            spec_file.write_text(json.dumps(spec))
            argv = [self.unshare, "--mount", "--propagation", "private", "--pid", "--fork",
                    "--ipc", "--uts", "--kill-child"]
            if process.network == "none":
                argv.append("--net")
            argv += ["--", self.python, "-S", "-m", "builder.executor.sandbox", str(spec_file)]
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                   "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
            status = run_pumped(argv, stdout=stdout, stderr=stderr, env=env)
            error = run.scratch / "sandbox.error"
            text = error.read_text().strip() if error.exists() else ""
            if text.startswith("exec:"):
                raise ProcessStartFailed(f"cannot start {process.argv[0]!r}: {text[5:].strip()}")
            if text:
                raise ExecutorUnavailable(f"sandbox setup failed: {text}")
            return status
