"""Two strata processes building at once on one store, and `strata run -v`."""

from __future__ import annotations

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
