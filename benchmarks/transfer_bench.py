"""Pull/push throughput: strata vs skopeo copy, same image, same registry on loopback.

    .venv/bin/python benchmarks/transfer_bench.py [--mib 256] [--runs 3]
        [--registry strata|distribution]

One image with a single incompressible gzip layer of --mib MiB is imported into a scratch
strata store. Each run starts a fresh registry (so nothing is skipped or mounted) and times:
  push:  `strata push`  vs  `skopeo copy oci:<store>/oci:NAME docker://...`
  pull:  `strata pull` without unpacking (transfer.pull_image(unpack=False)) and with it
         (`strata pull`, which also unpacks)  vs  `skopeo copy docker://... dir:DIR`
Prints the median wall time and MiB/s of each.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transfer_registries import (  # type: ignore[import-not-found]  # noqa: E402
    start_docker_registry,
    start_strata_registry,
)

from builder.images import ImageStore  # noqa: E402
from builder.transfer import pull_image  # noqa: E402

STRATA = str(Path(sys.executable).parent / "strata")


def _run(*argv: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed:\n{proc.stderr}")
    return elapsed


def _make_rootfs(path: Path, mib: int) -> None:
    with tarfile.open(path, "w") as tar:
        for i in range(max(1, mib // 64)):
            size = min(64, mib - 64 * i) << 20
            info = tarfile.TarInfo(f"data/blob{i}.bin")
            info.size = size
            tar.addfile(info, io.BytesIO(os.urandom(size)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--registry", choices=["strata", "distribution"], default="strata")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="transfer-bench-"))
    try:
        src = work / "src"
        rootfs = work / "rootfs.tar"
        _make_rootfs(rootfs, args.mib)
        subprocess.run([STRATA, "--root", str(src), "import", str(rootfs), "bench:1"],
                       check=True, capture_output=True)
        rootfs.unlink()
        times: dict[str, list[float]] = {k: [] for k in (
            "strata push", "skopeo push", "strata pull (no unpack)", "strata pull + unpack",
            "skopeo pull (dir:)")}
        for run in range(args.runs):
            base = work / f"reg{run}"
            base.mkdir()
            start = start_strata_registry if args.registry == "strata" else start_docker_registry
            reg = start(base)
            try:
                ref = f"{reg.host}/bench/strata:1"
                subprocess.run([STRATA, "--root", str(src), "tag", "bench:1", ref], check=True)
                times["strata push"].append(
                    _run(STRATA, "--root", str(src), "push", "-q", ref))
                times["skopeo push"].append(_run(
                    "skopeo", "copy", "-q", "--dest-tls-verify=false",
                    f"oci:{src / 'oci'}:bench:1", f"docker://{reg.host}/bench/skopeo:1"))
                dest = work / f"pull{run}"
                with ImageStore(dest) as store:
                    t0 = time.perf_counter()
                    pull_image(store, ref, unpack=False)
                    times["strata pull (no unpack)"].append(time.perf_counter() - t0)
                times["strata pull + unpack"].append(
                    _run(STRATA, "--root", str(work / f"pullu{run}"), "pull", "-q", ref))
                times["skopeo pull (dir:)"].append(_run(
                    "skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                    f"dir:{work / f'skopeo{run}'}"))
            finally:
                reg.stop()
            for p in (dest, work / f"pullu{run}", work / f"skopeo{run}", base):
                shutil.rmtree(p, ignore_errors=True)
        print(f"{args.mib} MiB incompressible layer, {args.runs} runs, {args.registry} registry")
        for name, values in times.items():
            med = statistics.median(values)
            print(f"  {name:<26} median {med:7.2f} s  {args.mib / med:8.1f} MiB/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
