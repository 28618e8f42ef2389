#!/usr/bin/env python3
"""Layer creation / application throughput next to this machine's limits, measured in one run.

usage: python benchmarks/layer_bench.py [--size-mib 1024] [--reps 3] [--shared-mib 100]
                                        [--corpus-mib 128] [--dir TMPDIR]

1. Generates a tree of --size-mib MiB: log-normal file sizes (median ~8 KiB, a tail of multi-MiB
   files), half random bytes, half compressible text, some dirs / symlinks / hard links.
2. Limits (python-level loops over the same corpus, as ../shared/bench/limits.sh measures them):
   single-core sha256, gzip -6 with stdlib zlib (and zlib-ng / isal when importable), zstd -3.
   The corpus is the first --corpus-mib of the tree's uncompressed layer tar, so it has the
   tree's compressibility.
3. References: `tar -c | gzip -6` and `tar -c | zstd -3` (GNU tar + CLI compressors, 1 core each).
4. strata: write_tree_layer (gzip with the backend strata picked, zstd, none) and apply_layer of
   each blob into a fresh directory. MB/s are of uncompressed tar bytes.
5. File index: two images sharing --shared-mib MiB of identical files in *different* layers;
   each layer unpacked into its own directory, then deduplicated; prints the disk bytes saved.
Prints every sample, then a table of medians with the fraction of the relevant limit.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import zstandard  # noqa: E402

from builder.layers import apply_layer, compression, write_tree_layer  # noqa: E402
from builder.layers.fileindex import FileIndex, disk_usage  # noqa: E402

MiB = 1 << 20
WORDS = [
    "layer", "overlay", "whiteout", "digest", "manifest", "index", "config", "blob", "tar",
    "gzip", "zstd", "registry", "image", "container", "runtime", "namespace", "mount",
    "snapshot", "chain", "diff", "apply", "build", "cache", "stage", "copy", "run", "env",
    "label", "user", "workdir", "entrypoint", "cmd", "volume", "expose", "healthcheck",
    "shell", "arg", "from", "the", "of", "and",
]


class NullSink:
    def __init__(self) -> None:
        self.n = 0

    def write(self, data: bytes) -> None:
        self.n += len(data)


def text_block(rng: random.Random, size: int) -> bytes:
    lines = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + "\n"
        lines.append(line)
        n += len(line)
    return "".join(lines).encode()[:size]


def generate_tree(root: Path, size_mib: int, seed: int = 1, prefix: str = "") -> int:
    """Mixed tree of about size_mib MiB; returns the bytes of regular file content."""
    rng = random.Random(seed)
    text_pool = text_block(rng, 4 * MiB)
    target = size_mib * MiB
    total = 0
    i = 0
    while total < target:
        d = root / f"{prefix}d{(i // 24) % 61:02d}" / f"s{i // (24 * 61):03d}"
        d.mkdir(parents=True, exist_ok=True)
        size = min(int(rng.lognormvariate(9.0, 2.0)), 64 * MiB, target - total) or 1
        path = d / f"f{i:06d}.{'bin' if i % 2 else 'txt'}"
        if i % 2:
            data = rng.randbytes(size)
        else:
            off = rng.randrange(0, len(text_pool) - 1)
            data = (text_pool[off:] + text_pool)[:size] if size <= len(text_pool) else (
                text_pool * (size // len(text_pool) + 1)
            )[:size]
        path.write_bytes(data)
        if i % 50 == 0:
            os.symlink(path.name, d / f"link{i:06d}")
        if i % 211 == 0:
            os.link(path, d / f"hard{i:06d}")
        total += size
        i += 1
    return total


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Bench:
    def __init__(self) -> None:
        self.rows: dict[str, list[float]] = {}
        self.order: list[str] = []

    def record(self, name: str, mbps: float) -> None:
        if name not in self.rows:
            self.rows[name] = []
            self.order.append(name)
        self.rows[name].append(mbps)
        print(f"  {name:<46} {mbps:9.1f} MB/s", flush=True)

    def med(self, name: str) -> float:
        return statistics.median(self.rows[name]) if name in self.rows else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--shared-mib", type=int, default=100)
    ap.add_argument("--corpus-mib", type=int, default=128)
    ap.add_argument("--dir", default=None, help="work directory parent (default TMPDIR)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="layer_bench.", dir=args.dir))
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    print(f"layer_bench: {os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"gzip backend {compression.GZIP_BACKEND}, tree {args.size_mib} MiB, reps {args.reps}")
    tree = work / "tree"
    tree.mkdir()
    t = timed(lambda: generate_tree(tree, args.size_mib))
    nfiles = sum(len(f) for _, _, f in os.walk(tree))
    print(f"generated {nfiles} files in {t:.1f}s")
    os.sync()

    # the plain layer tar: its size is the unit for every MB/s below; its head is the corpus
    plain = work / "layer.tar"
    with open(plain, "wb") as f:
        info_plain = write_tree_layer(tree, f, compression="none")
    tar_bytes = info_plain.size
    with open(plain, "rb") as f:
        corpus = f.read(args.corpus_mib * MiB)
    ratio = len(corpus) / len(zlib.compress(corpus, 6))
    print(f"layer tar {tar_bytes / MiB:.0f} MiB; corpus {len(corpus) >> 20} MiB, "
          f"gzip -6 ratio {ratio:.2f}x")

    b = Bench()
    blobs: dict[str, Path] = {}
    for rep in range(args.reps):
        print(f"rep {rep + 1}/{args.reps}")
        # ---- limits (single core, whole-buffer calls like limits.sh)
        b.record("limit sha256 hashlib (1 core)",
                 len(corpus) / timed(lambda: hashlib.sha256(corpus).digest()) / 1e6)

        def gz(mod: object, level: int) -> Callable[[], object]:
            def go() -> object:
                c = mod.compressobj(level, mod.DEFLATED, 31)  # type: ignore[attr-defined]
                return c.compress(corpus) + c.flush()
            return go

        b.record("limit gzip -6 stdlib zlib (1 core)", len(corpus) / timed(gz(zlib, 6)) / 1e6)
        try:
            from zlib_ng import zlib_ng  # type: ignore[import-not-found]
            b.record("limit gzip -6 zlib-ng (1 core)", len(corpus) / timed(gz(zlib_ng, 6)) / 1e6)
        except ImportError:
            pass
        try:
            from isal import isal_zlib  # type: ignore[import-not-found]
            b.record("limit gzip isal -2 (1 core)", len(corpus) / timed(gz(isal_zlib, 2)) / 1e6)
        except ImportError:
            pass
        zc = zstandard.ZstdCompressor(level=3)
        b.record("limit zstd -3 zstandard (1 core)",
                 len(corpus) / timed(lambda zc=zc: zc.compress(corpus)) / 1e6)

        # ---- references
        def pipe(cmd: str) -> Callable[[], object]:
            return lambda: subprocess.run(
                ["bash", "-o", "pipefail", "-c", cmd], check=True, stdout=subprocess.DEVNULL
            )

        b.record("ref tar -c | gzip -6", tar_bytes / timed(
            pipe(f"tar -cf - -C {tree} . | gzip -6")) / 1e6)
        if shutil.which("zstd"):
            b.record("ref tar -c | zstd -3 -T1", tar_bytes / timed(
                pipe(f"tar -cf - -C {tree} . | zstd -3 -T1 -q -c")) / 1e6)

        extract = work / "extracted"
        extract.mkdir()
        b.record("ref tar -x (GNU tar, plain layer)", tar_bytes / timed(
            pipe(f"tar -xf {plain} -C {extract} --xattrs --xattrs-include='*'")) / 1e6)
        shutil.rmtree(extract)

        # ---- strata create
        for comp in ("gzip", "zstd", "none"):
            blob = work / f"layer.{comp}"

            def create(comp: str = comp, blob: Path = blob) -> None:
                with open(blob, "wb") as f:
                    write_tree_layer(tree, f, compression=comp)

            b.record(f"strata create {comp}", tar_bytes / timed(create) / 1e6)
            blobs[comp] = blob
        b.record("strata create gzip -> null sink", tar_bytes / timed(
            lambda: write_tree_layer(tree, NullSink(), compression="gzip")) / 1e6)

        # ---- strata apply
        for comp in ("gzip", "zstd", "none"):
            dest = work / f"applied.{comp}"
            dest.mkdir()

            def apply(comp: str = comp, dest: Path = dest) -> None:
                with open(blobs[comp], "rb") as f:
                    apply_layer(f, dest)

            b.record(f"strata apply {comp}", tar_bytes / timed(apply) / 1e6)
            shutil.rmtree(dest)

    print()
    print(f"{f'measure (median of {args.reps})':<46} {'MB/s':>9}  vs limit")
    gzip_limit_name = "limit gzip -6 stdlib zlib (1 core)"
    backend_limit = {"zlib": gzip_limit_name, "isal": "limit gzip isal -2 (1 core)"}[
        compression.GZIP_BACKEND]
    limits_for = {
        "strata create gzip": gzip_limit_name,
        "strata create gzip -> null sink": gzip_limit_name,
        "ref tar -c | gzip -6": gzip_limit_name,
        "strata create zstd": "limit zstd -3 zstandard (1 core)",
        "ref tar -c | zstd -3 -T1": "limit zstd -3 zstandard (1 core)",
        "strata create none": "limit sha256 hashlib (1 core)",
        "strata apply none": "ref tar -x (GNU tar, plain layer)",
        "strata apply gzip": "ref tar -x (GNU tar, plain layer)",
        "strata apply zstd": "ref tar -x (GNU tar, plain layer)",
    }
    for name in b.order:
        lim = limits_for.get(name)
        frac = f"{b.med(name) / b.med(lim):6.0%} of {lim}" if lim else ""
        print(f"{name:<46} {b.med(name):9.1f}  {frac}")
    if backend_limit != gzip_limit_name:
        print(f"(strata gzip uses {compression.GZIP_BACKEND}: "
              f"{b.med('strata create gzip') / b.med(backend_limit):.0%} of {backend_limit})")

    dedupe(args, work)
    print(f"RESULT create_gzip={b.med('strata create gzip'):.0f} "
          f"create_zstd={b.med('strata create zstd'):.0f} "
          f"create_none={b.med('strata create none'):.0f} "
          f"apply_gzip={b.med('strata apply gzip'):.0f} "
          f"gzip6_limit={b.med(gzip_limit_name):.0f} sha256_limit="
          f"{b.med('limit sha256 hashlib (1 core)'):.0f} "
          f"gzip_fraction={b.med('strata create gzip') / b.med(gzip_limit_name):.2f}")


def dedupe(args: argparse.Namespace, work: Path) -> None:
    """Two images, each with its own layers; the shared files sit in different layers."""
    src = work / "dedupe-src"
    shared = src / "shared"
    generate_tree(shared, args.shared_mib, seed=7, prefix="opt/")
    layers = {  # image A: [shared + a-own], image B: [b-base, shared]
        "a1": [shared, src / "a-own"],
        "b1": [src / "b-base"],
        "b2": [shared],
    }
    generate_tree(src / "a-own", 8, seed=8, prefix="a/")
    generate_tree(src / "b-base", 8, seed=9, prefix="b/")
    store = work / "dedupe-store"
    unpacked = []
    for name, parts in layers.items():
        staging = work / f"stage-{name}"
        for part in parts:
            shutil.copytree(part, staging, symlinks=True, dirs_exist_ok=True)
        blob = work / f"{name}.tar.gz"
        with open(blob, "wb") as f:
            write_tree_layer(staging, f)
        dest = store / "layers" / name
        dest.mkdir(parents=True)
        with open(blob, "rb") as f:
            apply_layer(f, dest)
        unpacked.append(dest)
    before = disk_usage(unpacked)
    index = FileIndex(store / "pool")
    t0 = time.perf_counter()
    stats = [index.dedupe_tree(p) for p in unpacked]
    dt = time.perf_counter() - t0
    after = disk_usage([*unpacked, store / "pool"])
    saved = before.disk_bytes - after.disk_bytes
    print(f"file index: two images sharing {args.shared_mib} MiB in different layers: "
          f"logical {after.logical_bytes / MiB:.1f} MiB, disk before {before.disk_bytes / MiB:.1f}"
          f" MiB, after {after.disk_bytes / MiB:.1f} MiB, saved {saved / MiB:.1f} MiB "
          f"({saved / (args.shared_mib * MiB):.0%} of the shared bytes); "
          f"linked {sum(s.linked for s in stats)} files in {dt:.1f}s "
          f"({before.logical_bytes / dt / 1e6:.0f} MB/s hashed)")


if __name__ == "__main__":
    main()
