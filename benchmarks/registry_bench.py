#!/usr/bin/env python3
"""strata-registry vs the CNCF registry (Debian's docker-registry 2.8), side by side.

    python benchmarks/registry_bench.py [--workers 2] [--rounds 5] [--size-mib 256]
                                         [--rps-seconds 5] [--json OUT] [-- HARNESS ARGS...]

Starts strata-registry (A, `--workers N`, access log on, written to a file) and one
docker-registry anchor (B, via ../shared/bench/anchor_registry.sh) on free loopback ports,
runs ../shared/bench/registry_throughput.py against both in one interleaved run, samples the
resident memory of every strata process (parent and workers, summed) and of the anchor, then
stops both and removes their storage. With --workers 1 the harness also reads strata's CPU
time, and the server CPU per pushed GB is checked against 1.5x one core's sha256 time.
Prints the harness output, then:

    RESULT registry_bench ratios A/B: push_mono=.. push_chunked=.. pull=.. head_rps=.. get_rps=..
    RESULT registry_bench strata: ... peak_rss_mib=..
    RESULT registry_bench server cpu per pushed GB (workers=1): push_mono=..s push_chunked=..s
    RESULT registry_bench targets: push_mono>=2.0x:ok ... rss<150MiB:ok -> PASS|MISS

and writes everything (medians, ratios, per-round samples, RSS) to --json (default
$TMPDIR/registry_bench.json). Run by hand (`make bench`-style); never part of the test suite.
Only ratios are meaningful on a shared machine (../shared/bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(os.environ.get("STRATA_BENCH_DIR", REPO.parent / "shared" / "bench"))
METRICS = ("push_mono", "push_chunked", "pull", "head_rps", "get_rps")
TARGETS = {"push_mono": 2.0, "push_chunked": 2.0, "pull": 1.2, "head_rps": 3.5, "get_rps": 3.5}
RSS_LIMIT_MIB = 150
CPU_PER_GB_FACTOR = 1.5  # server CPU per pushed GB <= this x one core's sha256 time per GB
PUSH_METRICS = ("push_mono", "push_chunked")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/v2/", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (strata's workers are children of the supervisor)."""
    found = [pid]
    for p in found:
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                found.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return list(dict.fromkeys(found))


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Samples the summed RSS of a process tree every `interval` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kib = 0
        self.hwm_kib = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            pids = process_tree(self.pid)
            self.peak_kib = max(self.peak_kib, sum(rss_kib(p) for p in pids))
            self.hwm_kib = max(self.hwm_kib, sum(rss_kib(p, "VmHWM") for p in pids))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def sha256_seconds_per_gb(mib: int = 256, reps: int = 3) -> float:
    """Seconds one core's sha256 takes per GB, measured as ../shared/bench/limits.sh does
    (wall clock of one hashlib update over `mib` MiB, median of `reps`): the issue's yardstick
    for server CPU per pushed GB."""
    import hashlib

    data = os.urandom(mib << 20)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        hashlib.sha256(data).digest()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / (len(data) / 1e9)


def server_cpu_per_gb(data: dict, metric: str) -> float | None:  # type: ignore[type-arg]
    """Median server CPU seconds per pushed GB of strata (A) in the harness samples."""
    rows = [x for x in data.get("extra", {}).get(f"{metric}|A", [])
            if x[1] is not None and x[2] > 0]
    return statistics.median(x[1] / x[2] * 1e9 for x in rows) if rows else None


def start_strata(port: int, root: Path, workers: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "registry.server", "serve", "--addr", f"127.0.0.1:{port}",
             "--root", str(root), "--workers", str(workers), "--delete-enabled"],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def start_anchor(port: int) -> tuple[str, int]:
    out = subprocess.run([str(BENCH_DIR / "anchor_registry.sh"), "start", str(port)],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"anchor did not start:\n{out.stdout}\n{out.stderr}")
    state = re.search(r"^STATE=(.+)$", out.stdout, re.M)
    pid = re.search(rf"^PID_{port}=(\d+)$", out.stdout, re.M)
    if not state or not pid:
        raise SystemExit(f"unexpected anchor output:\n{out.stdout}")
    return state.group(1), int(pid.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="strata worker processes (default 2)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--rps-seconds", type=int, default=5)
    ap.add_argument("--json", type=Path,
                    default=Path(tempfile.gettempdir()) / "registry_bench.json")
    ap.add_argument("harness_args", nargs="*", help="extra registry_throughput.py arguments")
    args = ap.parse_args(argv)
    if not shutil.which("docker-registry"):
        raise SystemExit("docker-registry (Debian package) is needed for the anchor")

    work = Path(tempfile.mkdtemp(prefix="strata-registry-bench-"))
    port_a, port_b = free_port(), free_port()
    strata = start_strata(port_a, work / "root", args.workers, work / "strata.log")
    anchor_state: str | None = None
    try:
        wait_ready(f"http://127.0.0.1:{port_a}", strata)
        time.sleep(0.5)  # let every worker bind
        anchor_state, anchor_pid = start_anchor(port_b)
        samplers = [RssSampler(strata.pid), RssSampler(anchor_pid)]
        for s in samplers:
            s.start()
        harness_json = work / "harness.json"
        cmd = [sys.executable, str(BENCH_DIR / "registry_throughput.py"),
               "--rounds", str(args.rounds), "--size-mib", str(args.size_mib),
               "--rps-seconds", str(args.rps_seconds), "--pid-b", str(anchor_pid),
               "--json", str(harness_json), *args.harness_args]
        if args.workers == 1:
            cmd += ["--pid-a", str(strata.pid)]
        cmd += [f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"]
        print("+", " ".join(cmd), flush=True)
        code = subprocess.run(cmd).returncode
        for s in samplers:
            s.stop()
        if code != 0 or not harness_json.exists():
            print("RESULT registry_bench FAILED: the harness exited with", code)
            return 1
        data = json.loads(harness_json.read_text())
    finally:
        strata.terminate()
        try:
            strata.wait(timeout=20)
        except subprocess.TimeoutExpired:
            strata.kill()
        if anchor_state:
            subprocess.run([str(BENCH_DIR / "anchor_registry.sh"), "stop", anchor_state],
                           capture_output=True, timeout=60)
    return report(args, data, samplers, work)


def report(args: argparse.Namespace, data: dict, samplers: list[RssSampler],  # type: ignore[type-arg]
           work: Path) -> int:
    samples = data["samples"]
    medians = {label: {m: statistics.median(samples[f"{m}|{label}"]) for m in METRICS}
               for label in ("A", "B")}
    ratios = {m: medians["A"][m] / medians["B"][m] for m in METRICS}
    # the sum of per-process high-water marks: an upper bound of the tree's peak
    peak_mib = max(samplers[0].peak_kib, samplers[0].hwm_kib) / 1024
    anchor_mib = samplers[1].peak_kib / 1024
    checks = {m: ratios[m] >= TARGETS[m] for m in METRICS}
    checks["rss"] = peak_mib < RSS_LIMIT_MIB
    cpu_per_gb = {m: server_cpu_per_gb(data, m) for m in PUSH_METRICS}
    sha_per_gb = sha256_seconds_per_gb() if None not in cpu_per_gb.values() else None
    if sha_per_gb is not None:  # measured with --workers 1 (the harness sees one process)
        checks["cpu_per_gb"] = all(
            v is not None and v <= CPU_PER_GB_FACTOR * sha_per_gb for v in cpu_per_gb.values())
    result = {
        "workers": args.workers, "rounds": args.rounds, "size_mib": args.size_mib,
        "medians": {"strata": medians["A"], "docker-registry": medians["B"]},
        "ratios": ratios, "targets": TARGETS, "rss_limit_mib": RSS_LIMIT_MIB,
        "peak_rss_mib": {"strata": round(peak_mib, 1), "docker-registry": round(anchor_mib, 1)},
        "server_cpu_s_per_gb": cpu_per_gb, "sha256_s_per_gb": sha_per_gb,
        "checks": checks, "harness": data,
    }
    args.json.write_text(json.dumps(result, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    units = {"push_mono": "MB/s", "push_chunked": "MB/s", "pull": "MB/s",
             "head_rps": "rps", "get_rps": "rps"}
    print()
    print("RESULT registry_bench ratios A/B (strata/docker-registry): " +
          " ".join(f"{m}={ratios[m]:.2f}" for m in METRICS))
    print(f"RESULT registry_bench strata (workers={args.workers}): " +
          " ".join(f"{m}={medians['A'][m]:.0f}{units[m]}" for m in METRICS) +
          f" peak_rss_mib={peak_mib:.0f}")
    print("RESULT registry_bench docker-registry: " +
          " ".join(f"{m}={medians['B'][m]:.0f}{units[m]}" for m in METRICS) +
          f" peak_rss_mib={anchor_mib:.0f}")
    if sha_per_gb is not None:
        print("RESULT registry_bench server cpu per pushed GB (workers=1): " +
              " ".join(f"{m}={v:.2f}s" for m, v in cpu_per_gb.items() if v is not None) +
              f" sha256={sha_per_gb:.2f}s/GB limit={CPU_PER_GB_FACTOR * sha_per_gb:.2f}s")
    verdict = "PASS" if all(checks.values()) else "MISS"
    print("RESULT registry_bench targets: " +
          " ".join(f"{m}>={TARGETS[m]}x:{'ok' if checks[m] else 'miss'}" for m in METRICS) +
          f" rss<{RSS_LIMIT_MIB}MiB:{'ok' if checks['rss'] else 'miss'}" +
          ("" if "cpu_per_gb" not in checks else
           f" cpu/GB<={CPU_PER_GB_FACTOR}x_sha256:{'ok' if checks['cpu_per_gb'] else 'miss'}") +
          f" -> {verdict}"
          f"  (json: {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
