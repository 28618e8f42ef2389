"""Probe results remembered for the life of the running kernel.

Some facts cost a trial every time a process asks: can overlayfs mount under this store, can
this OCI runtime start a container here. They only change with a reboot, a different
filesystem or a new binary, so a probe keyed by the boot ID plus what the caller names (a
device number, a binary's size and mtime) is run once and its JSON result kept in a small
file beside the state it concerns. A missing, torn or foreign file only means probing again.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def boot_id() -> str:
    try:
        with open(_BOOT_ID) as f:
            return f.read().strip()
    except OSError:
        return ""


def remembered(file: Path, key: str, probe: Callable[[], T],
               encode: Callable[[T], Any] = lambda v: v,
               decode: Callable[[Any], T] = lambda v: v) -> T:
    """`probe()`'s result for `key` in this boot, from `file` when an earlier process
    already ran it. Without a boot ID (no /proc) nothing is remembered."""
    boot = boot_id()
    if not boot:
        return probe()
    entries: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(file.read_text())
        if isinstance(data, dict) and data.get("boot") == boot:
            entries = dict(data.get("probes") or {})
    if key in entries:
        with contextlib.suppress(ValueError, TypeError, KeyError, IndexError):
            return decode(entries[key])
    value = probe()
    entries[key] = encode(value)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"boot": boot, "probes": entries}))
        os.replace(tmp, file)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return value
