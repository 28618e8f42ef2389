"""Probe results are kept per running kernel; anything unexpected means probing again."""

from __future__ import annotations

import json
from pathlib import Path

from builder.probecache import boot_id, remembered
from builder.snapshots import select


def test_a_probe_runs_once_per_boot(tmp_path: Path) -> None:
    runs: list[int] = []
    file = tmp_path / "probes.json"

    def probe() -> str:
        runs.append(1)
        return "result"

    assert remembered(file, "k", probe) == "result"
    assert remembered(file, "k", probe) == "result"
    assert len(runs) == 1
    assert remembered(file, "other", probe) == "result"
    assert len(runs) == 2
    assert json.loads(file.read_text())["boot"] == boot_id()


def test_another_boot_or_a_torn_file_probes_again(tmp_path: Path) -> None:
    file = tmp_path / "probes.json"
    file.write_text(json.dumps({"boot": "not-this-one", "probes": {"k": "stale"}}))
    assert remembered(file, "k", lambda: "fresh") == "fresh"
    file.write_text('{"boot": "')
    assert remembered(file, "k", lambda: "again") == "again"
    assert remembered(file, "k", lambda: "never") == "again"


def test_the_overlay_probe_is_remembered_for_the_store(tmp_path: Path) -> None:
    root = tmp_path / "snapshots"
    select._probe_cache.clear()
    assert select.probe_overlay(root) == (True, "")  # CI runs as root on overlay-capable ext4
    data = json.loads((root / "probes.json").read_text())
    (key,) = data["probes"]
    assert key.startswith(f"overlay:{root}:")
    data["probes"][key] = [False, "remembered reason"]
    (root / "probes.json").write_text(json.dumps(data))
    select._probe_cache.clear()  # a new process: only the file remembers
    assert select.probe_overlay(root) == (False, "remembered reason")
    select._probe_cache.clear()


def test_the_runtime_probe_is_remembered_in_the_state_dir(tmp_path: Path) -> None:
    import shutil

    from builder.executor import runtime

    runc = shutil.which("runc")
    assert runc is not None  # CI installs runc
    runtime._probe_ok.discard(runc)
    runtime._broken.pop(runc, None)
    assert runtime.probe_runtime(runc, tmp_path) is None
    data = json.loads((tmp_path / "probes.json").read_text())
    (key,) = data["probes"]
    assert key.startswith(f"runtime:{runc}:")
    data["probes"][key] = "remembered failure"
    (tmp_path / "probes.json").write_text(json.dumps(data))
    runtime._probe_ok.discard(runc)  # a new process: only the file remembers
    try:
        assert runtime.probe_runtime(runc, tmp_path) == "remembered failure"
    finally:
        runtime._broken.pop(runc, None)
