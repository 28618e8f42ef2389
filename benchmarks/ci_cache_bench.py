"""The CI cache scenario timed side by side: strata vs `buildah bud --layers --cache-to/
--cache-from`, against the same strata-registry on loopback.

    .venv/bin/python benchmarks/ci_cache_bench.py [--mib 32] [--skip-buildah]

Context: a busybox base (pushed to the registry first), a builder stage that RUNs and COPYs a
--mib MiB incompressible file, and a final stage that copies its result. For each tool:
  seed:     runner A (empty root) builds, exports the cache (mode=max) and pushes the image;
  fresh:    runner B (empty root) builds the same context with the cache and pushes;
  changed:  runner C (empty root) builds after one small source file changed, and pushes.
Reported per scenario: wall time, bytes the registry sent (GET blob responses, from its
access log) and blob uploads. strata's targets: a fully cached fresh build downloads no layer
it does not export, and both rebuilds are faster than buildah's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tooling import write_busybox_rootfs  # type: ignore[import-not-found]  # noqa: E402
from transfer_registries import start_strata_registry  # type: ignore[import-not-found]  # noqa: E402

STRATA = str(Path(sys.executable).parent / "strata")

DOCKERFILE = """\
FROM {base} AS builder
COPY big.bin /src/big.bin
RUN sha256sum /src/big.bin > /src/sum && cp /src/big.bin /src/copy.bin
COPY lib.txt /src/lib.txt
RUN cat /src/lib.txt /src/sum > /src/out

FROM {base}
WORKDIR /app
COPY --from=builder /src/copy.bin /app/data.bin
COPY --from=builder /src/out /app/out
COPY app.txt /app/app.txt
RUN cat /app/app.txt /app/out > /app/report
CMD ["cat", "/app/report"]
"""


def _sh(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def _log_marks(log: Path) -> int:
    time.sleep(0.7)  # strata-registry flushes its access log every 0.5 s
    return len(log.read_text(errors="replace").splitlines())


def _traffic(log: Path, since: int) -> tuple[int, int]:
    """(bytes sent for GET blob requests, blob uploads committed) after line `since`."""
    time.sleep(0.7)
    sent = uploads = 0
    for line in log.read_text(errors="replace").splitlines()[since:]:
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        path = str(rec.get("path", ""))
        if rec.get("method") == "GET" and "/blobs/sha256:" in path:
            sent += int(rec.get("bytes", 0))
        if rec.get("method") == "PUT" and "/blobs/uploads/" in path and rec.get("status") == 201:
            uploads += 1
    return sent, uploads


def _context(dest: Path, base: str, mib: int, app: str) -> Path:
    dest.mkdir(parents=True)
    (dest / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    (dest / "big.bin").write_bytes(_BIG[: mib << 20])
    (dest / "lib.txt").write_text("lib v1\n")
    (dest / "app.txt").write_text(app)
    return dest


_BIG = b""


def strata_runner(work: Path, host: str, name: str, ctx: Path, tag: str) -> list[str]:
    cache = f"{host}/strata/cache:main"
    return [STRATA, "--root", str(work / name), "build", "-q",
            "--cache-from", f"type=registry,ref={cache}",
            "--cache-to", f"type=registry,ref={cache},mode=max",
            "--push", "-t", f"{host}/strata/app:{tag}", str(ctx)]


def buildah_runner(work: Path, host: str, name: str, ctx: Path, tag: str) -> list[list[str]]:
    root = ["buildah", "--root", str(work / name / "storage"),
            "--runroot", str(work / name / "run")]
    image = f"{host}/buildah/app:{tag}"
    return [[*root, "bud", "--layers", "--isolation", "chroot", "--tls-verify=false",
             "--cache-from", f"{host}/buildah/cache", "--cache-to", f"{host}/buildah/cache",
             "-t", image, str(ctx)],
            [*root, "push", "--tls-verify=false", image]]


def main() -> None:
    global _BIG
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=32)
    ap.add_argument("--skip-buildah", action="store_true")
    args = ap.parse_args()
    _BIG = os.urandom(args.mib << 20)
    work = Path(tempfile.mkdtemp(prefix="ci-cache-bench-"))
    reg_dir = work / "registry"
    reg_dir.mkdir()
    reg = start_strata_registry(reg_dir)
    try:
        host = reg.host
        rootfs = work / "busybox.tar"
        write_busybox_rootfs(rootfs)
        base = f"{host}/library/busybox:1"
        _sh([STRATA, "--root", str(work / "seed"), "import", str(rootfs), "busybox:latest"])
        _sh([STRATA, "--root", str(work / "seed"), "push", "-q", base, "busybox:latest"])
        rows: list[tuple[str, str, float, int, int]] = []
        tools = ["strata"] + ([] if args.skip_buildah or not shutil.which("buildah")
                              else ["buildah"])
        for tool in tools:
            for scenario, app in (("seed", "app v1\n"), ("fresh", "app v1\n"),
                                  ("changed", "app v2\n")):
                ctx = _context(work / f"{tool}-{scenario}-ctx", base, args.mib, app)
                mark = _log_marks(reg.log)
                if tool == "strata":
                    seconds = _sh(strata_runner(work, host, f"{tool}-{scenario}", ctx,
                                                scenario))
                else:
                    seconds = sum(_sh(cmd) for cmd in buildah_runner(
                        work, host, f"{tool}-{scenario}", ctx, scenario))
                sent, uploads = _traffic(reg.log, mark)
                rows.append((tool, scenario, seconds, sent, uploads))
        print(f"context: {args.mib} MiB incompressible file, 2 stages, 10 steps; "
              "registry: strata-registry on loopback; every runner starts with an empty root")
        print(f"{'tool':8} {'scenario':8} {'wall s':>8} {'downloaded':>12} {'uploads':>8}")
        for tool, scenario, seconds, sent, uploads in rows:
            print(f"{tool:8} {scenario:8} {seconds:8.2f} {sent:12d} {uploads:8d}")
        by = {(t, s): (sec, sent) for t, s, sec, sent, _ in rows}
        if ("buildah", "fresh") in by:
            for scenario in ("fresh", "changed"):
                ratio = by[("strata", scenario)][0] / by[("buildah", scenario)][0]
                print(f"{scenario}: strata/buildah wall time = {ratio:.2f}")
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
