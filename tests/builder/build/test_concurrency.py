"""Two strata processes building at once on one store, and `strata run -v`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from build_util import Strata

Ctx = Callable[..., Path]


def _strata_cmd(strata: Strata) -> list[str]:
    return [str(Path(sys.executable).parent / "strata"), "--root", str(strata.root)]


def test_two_builds_of_the_same_steps_at_once_both_succeed(strata: Strata, context: Ctx) -> None:
    ctx = context("FROM busybox\nRUN echo same > /same\nCOPY f /f\nRUN cat /f /same > /both\n",
                  {"f": "data\n"})
    procs = [subprocess.Popen([*_strata_cmd(strata), "build", "-q", "--progress", "plain",
                               "--snapshotter", strata.snapshotter, "-t", f"par:{i}", str(ctx)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    check = strata("system", "check")
    assert check.rc == 0, check.out + check.err
    run = strata.run("par:1", "cat", "/both")
    assert run.stdout == "data\nsame\n"


def test_identical_layers_built_at_once_end_in_one_snapshot_each(strata: Strata,
                                                                 context: Ctx) -> None:
    """Three reproducible --no-cache builds at once: each layer is committed by whichever
    build finishes it first; the others fold their copies into that snapshot."""
    ctx = context("FROM busybox\nRUN echo x > /x\nCOPY a /a\nRUN cat /a > /b\n",
                  {"a": "a\n" * 100_000})
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    procs = [subprocess.Popen([*_strata_cmd(strata), "build", "-q", "--no-cache",
                               "--snapshotter", strata.snapshotter, "-t", f"twin:{i}", str(ctx)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert len({out.strip() for out, _ in outs}) == 1  # one image ID
    meta = strata.root / "snapshots" / strata.snapshotter / "metadata.json"
    names = list(json.loads(meta.read_text())["snapshots"])
    assert all(n.startswith("sha256:") for n in names) and len(names) == 4  # base + 3 layers
    assert strata("system", "check").rc == 0
    assert strata.run("twin:2", "cat", "/x", "/b").stdout == "x\n" + "a\n" * 100_000


def test_run_with_a_volume_sees_and_writes_host_files(strata: Strata, context: Ctx,
                                                      tmp_path: Path) -> None:
    assert strata.build(context("FROM busybox\n"), "-t", "v:1").rc == 0
    host = tmp_path / "vol"
    host.mkdir()
    (host / "in").write_text("from host\n")
    res = subprocess.run([*_strata_cmd(strata), "run", "--rm", "-v", f"{host}:/data",
                          "--snapshotter", strata.snapshotter, "v:1", "sh", "-c",
                          "cat /data/in; echo back > /data/out"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "from host\n"
    assert (host / "out").read_text() == "back\n"
    ro = subprocess.run([*_strata_cmd(strata), "run", "-v", f"{host}:/data:ro",
                         "--snapshotter", strata.snapshotter, "v:1", "touch", "/data/x"],
                        capture_output=True, text=True, timeout=120)
    assert ro.returncode != 0 and not (host / "x").exists()
