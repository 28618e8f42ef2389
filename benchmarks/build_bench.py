#!/usr/bin/env python3
"""strata build vs docker build (BuildKit) vs buildah bud, on the shared build benchmark.

    python benchmarks/build_bench.py [--rounds 3] [--contexts a-copy200,b-multistage]
                                     [--against docker,buildah] [--json OUT] [-- HARNESS ARGS...]

Drives ../shared/bench/build_bench.sh (next to the clone; $STRATA_BENCH_DIR overrides) once per
comparison: strata (A) against each builder in --against (B), interleaved inside each run as
the harness does. strata runs on a fresh store root (mktemp) with the harness's base image
imported through `strata import`, content checks through `strata run` and cleanup through
`strata rmi`. For docker the script starts a private dockerd (own data-root and socket, removed
at the end), so no system daemon is needed or touched. buildah uses its normal storage; the
harness removes exactly what it built.

Prints the harness output, then one table: per context and scenario (cold, cached = no-op
rebuild, onefile = one file changed) the median seconds of each builder and the ratios
strata/B (<1: strata is faster), then

    RESULT build_bench strata/docker: a.cold=.. ... geomean=..
    RESULT build_bench strata/buildah: ...
    RESULT build_bench targets: a.cached<=1.0:ok ... -> PASS|MISS

Targets (issue 4): no-op and one-file-changed rebuilds no slower than BuildKit, cold within
1.2x of BuildKit, every scenario faster than buildah. Only ratios are meaningful on a shared
2-core VM (see ../shared/bench/README.md: differences under ~10% are noise). Run by hand; never
part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from dockerd import DockerdStartError, private_dockerd, unmount_under  # noqa: E402
from tooling import DOCKER_CLIENT  # noqa: E402

BENCH_DIR = Path(os.environ.get("STRATA_BENCH_DIR", REPO.parent / "shared" / "bench"))
STRATA = REPO / ".venv" / "bin" / "strata"
SCENARIOS = ("cold", "cached", "onefile")


def strata_args(root: Path) -> list[str]:
    """Harness options that plug strata in as builder A on store `root`."""
    cli = f"{shlex.quote(str(STRATA))} --root {shlex.quote(str(root))}"
    return [f"{cli} build -t {{tag}} -f {{dockerfile}} {{context}}", "--name-a", "strata",
            "--import-a", f"{cli} import {{tar}} {{image}}",
            "--run-a", f"{cli} run --rm {{tag}} {{cmd}}",
            "--rmi-a", f"{cli} rmi {{ref}}",
            "--id-a", f"{cli} inspect --id {{tag}}"]


def run_harness(other: str, root: Path, opts: argparse.Namespace, out_json: Path,
                env: dict[str, str]) -> dict[str, object]:
    argv = ["bash", str(BENCH_DIR / "build_bench.sh"), *strata_args(root)[:1], other,
            *strata_args(root)[1:], "--rounds", str(opts.rounds), "--contexts", opts.contexts,
            "--json", str(out_json), *opts.harness_args]
    print(f"$ {' '.join(shlex.quote(a) for a in argv)}", flush=True)
    rc = subprocess.run(argv, env=env).returncode
    if not out_json.exists():
        raise SystemExit(f"the harness failed (exit {rc}) against {other}")
    data: dict[str, object] = json.loads(out_json.read_text())
    data["exit"] = rc
    return data


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    if not xs:
        return math.nan
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def summarize(results: dict[str, dict[str, object]], contexts: list[str]) -> int:
    """Print the combined table and the RESULT lines; return the exit status.

    Each ratio pairs strata with the builder it was interleaved with in the same harness run.
    """
    medians: dict[str, dict[str, float]] = {}  # "strata@docker" / "docker" -> key -> seconds
    for other, data in results.items():
        samples = data["samples"]
        assert isinstance(samples, dict)
        for key, values in samples.items():
            ctx, scen, label = key.split("|")
            column = f"strata@{other}" if label == "strata" else other
            medians.setdefault(column, {})[f"{ctx}|{scen}"] = median(values)
    others = list(results)
    columns = [c for o in others for c in (f"strata@{o}", o)]
    head = f"{'context':13} {'scenario':8}" + "".join(f" {c:>15}" for c in columns)
    head += "".join(f" {'strata/' + o:>15}" for o in others)
    print("\n" + head + "   (median seconds)")
    ratios: dict[str, dict[str, float]] = {o: {} for o in others}
    for ctx in contexts:
        for scen in SCENARIOS:
            key = f"{ctx}|{scen}"
            line = f"{ctx:13} {scen:8}"
            for c in columns:
                line += f" {medians.get(c, {}).get(key, math.nan):15.2f}"
            for o in others:
                ratio = (medians.get(f"strata@{o}", {}).get(key, math.nan)
                         / medians.get(o, {}).get(key, math.nan))
                ratios[o][f"{ctx[0]}.{scen}"] = ratio
                line += f" {ratio:15.2f}"
            print(line)
    status = 0
    for o in others:
        values = [v for v in ratios[o].values() if v > 0 and not math.isnan(v)]
        gm = math.exp(sum(map(math.log, values)) / len(values)) if values else math.nan
        print(f"RESULT build_bench strata/{o}: "
              + " ".join(f"{k}={v:.2f}" for k, v in ratios[o].items()) + f" geomean={gm:.2f}")
        if results[o].get("checks_failed") or results[o].get("exit"):
            print(f"RESULT build_bench strata/{o}: harness exit {results[o].get('exit')}, "
                  f"content checks failed: {results[o].get('checks_failed')}")
            status = 1
    verdicts = []
    for name, value in ratios.get("docker", {}).items():
        limit = 1.2 if name.endswith("cold") else 1.0
        verdicts.append((f"{name}<={limit}xdocker", value <= limit))
    for name, value in ratios.get("buildah", {}).items():
        verdicts.append((f"{name}<1xbuildah", value < 1.0))
    ok = all(v for _, v in verdicts)
    print("RESULT build_bench targets: "
          + " ".join(f"{n}:{'ok' if v else 'MISS'}" for n, v in verdicts)
          + f" -> {'PASS' if ok else 'MISS'}")
    return status


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--contexts", default="a-copy200,b-multistage")
    ap.add_argument("--against", default="docker,buildah",
                    help="comma-separated harness presets (docker, buildah, podman)")
    ap.add_argument("--json", help="write every harness result to this file")
    ap.add_argument("harness_args", nargs="*", help="after --: passed to build_bench.py as is")
    opts = ap.parse_args()
    if not (BENCH_DIR / "build_bench.sh").exists():
        raise SystemExit(f"no harness at {BENCH_DIR} (set STRATA_BENCH_DIR)")
    others = [o for o in opts.against.split(",") if o]
    work = Path(tempfile.mkdtemp(prefix="strata-build-bench."))
    # An installed strata has bytecode; a shell with PYTHONDONTWRITEBYTECODE=1 would make
    # every strata command recompile ~50 modules (~0.1 s). Bytecode goes to the work dir.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    results: dict[str, dict[str, object]] = {}
    try:
        for other in others:
            root = work / f"strata-root-{other}"  # a fresh store per comparison: cold is cold
            root.mkdir()
            if other == "docker":
                dockerd = work / "dockerd"
                dockerd.mkdir()
                try:
                    with private_dockerd(dockerd) as env:
                        env = {**env, "DOCKER": DOCKER_CLIENT}
                        results[other] = run_harness(other, root, opts,
                                                     work / f"{other}.json", env)
                except DockerdStartError as e:
                    raise SystemExit(str(e)) from None
            else:
                results[other] = run_harness(other, root, opts, work / f"{other}.json",
                                             dict(os.environ))
            subprocess.run([str(STRATA), "--root", str(root), "prune"], capture_output=True)
    finally:
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=1))
    return summarize(results, [c for c in opts.contexts.split(",") if c])


if __name__ == "__main__":
    sys.exit(main())
