"""Run a child process and stream its stdout/stderr into sinks chunk by chunk."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import IO

from builder.executor import ExitStatus, Sink

CHUNK = 64 * 1024


def _copy(src: IO[bytes], sink: Sink | None) -> None:
    with src:
        while True:
            data = src.read1(CHUNK) if hasattr(src, "read1") else src.read(CHUNK)
            if not data:
                return
            if sink is not None:
                sink.write(data)


def run_pumped(
    argv: Sequence[str],
    *,
    stdout: Sink | None,
    stderr: Sink | None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> ExitStatus:
    """Run `argv` with stdin from /dev/null; a signal death maps to 128 + signal."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    threads = [
        threading.Thread(target=_copy, args=(proc.stdout, stdout), daemon=True),
        threading.Thread(target=_copy, args=(proc.stderr, stderr), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        for t in threads:
            t.join()
    if rc < 0:
        return ExitStatus(128 - rc, -rc)
    return ExitStatus(rc)
