"""`strata system df` and `strata system check`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _cmd_df(args: argparse.Namespace) -> int:
    from builder.cli_images import human_size
    from builder.images import ImageStore
    from builder.storecheck import disk_usage

    with ImageStore(Path(args.root)) as store:
        usage = disk_usage(store)
    if args.format == "json":
        print(json.dumps(usage.to_json(), indent=2))
        return 0
    t = usage.trees
    rows = [
        ["TYPE", "COUNT", "LOGICAL", "ON DISK", "SAVED BY SHARING"],
        ["Images", str(usage.images), "", "", ""],
        ["Blobs", str(usage.blobs), human_size(usage.blob_bytes), human_size(usage.blob_bytes),
         ""],
        ["Unpacked layers", str(usage.layers), human_size(t.logical), human_size(t.on_disk),
         human_size(t.logical - t.unique)],
        ["File index", str(usage.pool_entries), "", "", ""],
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"Logical bytes: {t.logical + usage.blob_bytes}  bytes on disk: "
          f"{t.on_disk + usage.blob_bytes}  bytes saved by sharing: {t.logical - t.unique}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from builder.images import ImageStore
    from builder.storecheck import check_store

    with ImageStore(Path(args.root)) as store:
        report = check_store(store, verify_blobs=not args.quick, deep=args.deep)
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"problem: {problem}")
    status = "ok" if report.ok else f"{len(report.problems)} problems"
    print(f"{status}: {report.blobs_verified} blobs verified, {report.images_checked} images, "
          f"{report.layers_checked} unpacked layers")
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    p = sub.add_parser("system", help="store-wide commands (df, check)")
    ssub = p.add_subparsers(dest="system_command", metavar="COMMAND", required=True)
    q = ssub.add_parser("df", help="logical bytes, bytes on disk and bytes saved by sharing")
    q.add_argument("--format", choices=["table", "json"], default="table")
    q.set_defaults(func=_cmd_df)
    q = ssub.add_parser("check", help="verify blob digests, index.json, metadata and layers")
    q.add_argument("--quick", action="store_true", help="skip re-hashing every blob")
    q.add_argument("--deep", action="store_true",
                   help="also re-apply each unpacked layer and compare it with its blob")
    q.set_defaults(func=_cmd_check)
