#!/usr/bin/env python3
"""What the first pull of a freshly pushed blob costs, next to later pulls (strata only).

    python benchmarks/registry_first_pull.py [--workers 2] [--rounds 5] [--size-mib 256]

registry_bench.py pulls, in each round, the blob it has just pushed. This measures why that
pull is slower than pulling the same blob again: it starts strata-registry, and in each round
pushes fresh blobs and pulls them (16 GETs by 8 sha256-verifying clients, the harness's own
pull) in five ways:

    first             the first pull after the push (the pull fills the page cache)
    filled-sendfile   the blob's page cache emptied, then filled by sendfile to /dev/null
                      (no CPU reads the bytes), then the first pull
    filled-read       emptied, then filled by read(2) (a CPU reads every byte), then the pull
    second            the same blob as `first`, pulled again
    old               a blob pulled before, right after another push

and prints, per way, the median MB/s and the client's CPU seconds per pulled GB. Run by hand,
as root or as the owner of the storage root; never part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from registry_bench import BENCH_DIR, REPO, free_port, wait_ready

sys.path.insert(0, str(BENCH_DIR))
import registry_throughput as rt  # type: ignore[import-not-found]  # noqa: E402  (shared)

WAYS = ("first", "filled-sendfile", "filled-read", "second", "old")
MiB = 1 << 20


def blob_file(root: Path, digest: str) -> Path:
    """The stored file of `digest` (the store's layout is not this script's business)."""
    hexdigest = digest.split(":", 1)[1]
    for path in root.rglob("*"):
        if hexdigest in str(path) and path.is_file():
            return path
    raise SystemExit(f"no stored file for {digest} under {root}")


def refill(path: Path, how: str) -> None:
    """Drop the file's page cache, then fill it again by sendfile to /dev/null or read(2)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if how == "sendfile":
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                offset = 0
                while sent := os.sendfile(null, fd, offset, 1 << 30):
                    offset += sent
            finally:
                os.close(null)
        else:
            buf = bytearray(8 * MiB)
            while os.readv(fd, [buf]):
                pass
    finally:
        os.close(fd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=256)
    a = ap.parse_args()
    size = a.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="strata-first-pull-"))
    port = free_port()
    with open(work / "server.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "registry.server", "serve", "--addr", f"127.0.0.1:{port}",
             "--root", str(work / "root"), "--workers", str(a.workers)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    results: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        target = rt.Target("strata", f"http://127.0.0.1:{port}", server.pid)
        base = os.urandom(size)

        def push() -> str:
            data, digest = rt.fresh_blob(base)
            rt.push_monolithic(target, data, digest)
            return str(digest)

        def pull(way: str, digest: str) -> None:
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.monotonic()
            pulled = rt.pull_threads(target, digest, size, 16, 8, True)
            seconds = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            results[way].append((pulled / seconds / 1e6, cpu / (pulled / 1e9)))

        old = push()
        pull("old", old)
        results["old"].clear()  # that one was a first pull
        for rnd in range(a.rounds):
            fresh = push()
            pull("first", fresh)
            pull("second", fresh)
            for how in ("sendfile", "read"):
                digest = push()
                refill(blob_file(work / "root", digest), how)
                pull(f"filled-{how}", digest)
            push()
            pull("old", old)
            print(f"round {rnd}: " + "  ".join(
                f"{way} {results[way][-1][0]:.0f} MB/s {results[way][-1][1]:.2f} s/GB"
                for way in WAYS), flush=True)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    for way in WAYS:
        print(f"RESULT registry_first_pull {way}: "
              f"{statistics.median(v[0] for v in results[way]):.0f} MB/s, client "
              f"{statistics.median(v[1] for v in results[way]):.2f} s/GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
