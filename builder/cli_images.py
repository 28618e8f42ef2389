"""Local image commands: images, inspect, history, tag, rmi, prune, import, save, load, system."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import InvalidArgument

if TYPE_CHECKING:
    from builder.images import Image, ImageStore


def open_store(args: argparse.Namespace) -> ImageStore:
    from builder.images import ImageStore

    return ImageStore(Path(args.root))


def human_size(size: float) -> str:
    """docker's units.HumanSize: decimal units, 3 significant digits ("4.26MB")."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{units[i]}"


def human_ago(created: str | None, now: float | None = None) -> str:
    """'5 minutes ago' for an RFC 3339 timestamp (docker's HumanDuration + ' ago')."""
    if not created:
        return "N/A"
    epoch = parse_time(created)
    if epoch is None:
        return "N/A"
    seconds = int((now or time.time()) - epoch)
    if seconds < 1:
        return "Less than a second ago"
    if seconds < 60:
        return f"{seconds} seconds ago"
    minutes = seconds // 60
    if minutes < 60:
        return "About a minute ago" if minutes == 1 else f"{minutes} minutes ago"
    hours = round(seconds / 3600)
    if hours < 48:
        return "About an hour ago" if hours == 1 else f"{hours} hours ago"
    days = seconds // 86400
    if days < 14:
        return f"{days} days ago"
    if days < 60:
        return f"{days // 7} weeks ago"
    if days < 730:
        return f"{days // 30} months ago"
    return f"{days // 365} years ago"


def parse_time(created: str) -> float | None:
    import datetime as dt
    text = created.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python 3.11 accepts at most 6 fractional digits
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits):]
        text = f"{head}.{digits[:6]}{tz}"
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    return "\n".join(lines)


def _split_name(name: str) -> tuple[str, str]:
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, "<none>"
    return repo, tag


# ----------------------------------------------------------------------------- images


def _cmd_images(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        images = store.images()
        entries: list[dict[str, Any]] = []
        for image in images:
            names = image.names or ("<none>:<none>",)
            for name in names:
                repo, tag = ("<none>", "<none>") if name == "<none>:<none>" else _split_name(name)
                if args.repository and repo != args.repository:
                    continue
                entries.append({"Repository": repo, "Tag": tag, "ID": image.id,
                                "Digest": str(image.manifest.digest),
                                "CreatedAt": image.created or "", "Size": image.size})
        if args.quiet:
            seen: list[str] = []
            for e in entries:
                short = e["ID"][7:19] if not args.no_trunc else e["ID"]
                if short not in seen:
                    seen.append(short)
            print("\n".join(seen))
        elif args.format == "json":
            print(json.dumps(entries, indent=2))
        else:
            rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
            for e in entries:
                image_id = e["ID"] if args.no_trunc else e["ID"][7:19]
                rows.append([e["Repository"], e["Tag"], image_id, human_ago(e["CreatedAt"]),
                             human_size(e["Size"])])
            print(_table(rows))
    return 0


# ----------------------------------------------------------------------------- inspect


def inspect_image(store: ImageStore, image: Image) -> dict[str, Any]:
    """docker inspect's image object, with the OCI descriptor added."""
    config = store.config_json(image)
    exec_config = config.get("config") or {}
    repo_digests = sorted({f"{n.rpartition(':')[0] or n}@{image.manifest.digest}"
                           for n in image.names})
    layers = store.layers(image)
    return {
        "Id": image.id,
        "RepoTags": list(image.names),
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": next((h.get("comment", "") for h in reversed(config.get("history") or [])
                         if isinstance(h, dict)), ""),
        "Created": config.get("created", ""),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": exec_config,
        "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""),
        **({"Variant": config["variant"]} if config.get("variant") else {}),
        "Size": image.size,
        "RootFS": {"Type": "layers", "Layers": [la.diff_id for la in layers]},
        "Metadata": {"LastTagTime": ""},
        "Descriptor": image.manifest.to_json(),
        "Layers": [{"Digest": la.blob_digest, "MediaType": la.media_type, "Size": la.size,
                    "DiffID": la.diff_id, "ChainID": la.chain_id} for la in layers],
    }


def _cmd_inspect(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        images = [store.resolve(name) for name in args.images]
        if args.id:
            for image in images:
                print(image.id)
            return 0
        out = [inspect_image(store, image) for image in images]
        if args.format:
            for obj in out:
                print(_render_format(args.format, obj))
        else:
            print(json.dumps(out, indent=4))
    return 0


def _render_format(fmt: str, obj: dict[str, Any]) -> str:
    """A tiny subset of Go templates: `{{.Id}}`, `{{.Config.Cmd}}`, `{{json .Config}}`."""
    import re

    def value(expr: str) -> str:
        expr = expr.strip()
        as_json = expr.startswith("json ")
        path = expr.removeprefix("json ").strip().lstrip(".")
        cur: Any = obj
        for part in filter(None, path.split(".")):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if as_json or isinstance(cur, dict | list):
            return json.dumps(cur)
        return "" if cur is None else str(cur)

    return re.sub(r"\{\{(.*?)\}\}", lambda m: value(m.group(1)), fmt)


# ----------------------------------------------------------------------------- history


def _cmd_history(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        image = store.resolve(args.image)
        config = store.config_json(image)
        layers = store.layers(image)
        history = [h for h in config.get("history") or [] if isinstance(h, dict)]
        rows_data: list[dict[str, Any]] = []
        li = 0
        for h in history:
            size = 0
            if not h.get("empty_layer") and li < len(layers):
                size = layers[li].size
                li += 1
            rows_data.append({"CreatedAt": h.get("created", ""), "CreatedBy": h.get(
                "created_by", ""), "Size": size, "Comment": h.get("comment", "")})
        rows_data.reverse()
        for i, row in enumerate(rows_data):
            row["ID"] = image.id if i == 0 else "<missing>"
        if args.format == "json":
            print(json.dumps(rows_data, indent=2))
            return 0
        rows = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
        for row in rows_data:
            created_by = row["CreatedBy"]
            if not args.no_trunc and len(created_by) > 45:
                created_by = created_by[:44] + "…"
            image_id = row["ID"] if args.no_trunc or row["ID"] == "<missing>" else row["ID"][7:19]
            rows.append([image_id, human_ago(row["CreatedAt"]), created_by,
                         human_size(row["Size"]), row["Comment"]])
        print(_table(rows))
    return 0


# ----------------------------------------------------------------------------- tag / rmi / prune


def _cmd_tag(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.tag(args.source, args.target)
    return 0


def _cmd_rmi(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        for name in args.images:
            report = store.remove(name, force=args.force)
            for untagged in report.untagged:
                print(f"Untagged: {untagged}")
            for deleted in report.deleted:
                print(f"Deleted: {deleted}")
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        report = store.prune()
    for image_id in report.images:
        print(f"Deleted image: {image_id}")
    print(f"Deleted {report.blobs} blobs ({human_size(report.blob_bytes)}), "
          f"{report.layers} unpacked layers, {report.pool_files} file-index entries, "
          f"{report.temp_entries} temp entries")
    print(f"Total reclaimed space: {human_size(report.blob_bytes)}")
    return 0


# ----------------------------------------------------------------------------- import/save/load


def _cmd_import(args: argparse.Namespace) -> int:
    from builder.archives import import_rootfs
    from registry.oci import Platform

    platform = Platform.parse(args.platform) if args.platform else None
    with open_store(args) as store:
        if args.file == "-":
            image = import_rootfs(store, sys.stdin.buffer, args.name, source_label="-",
                                  changes=args.change, message=args.message,
                                  compression=args.compression, level=args.compression_level,
                                  platform=platform)
        else:
            with open(args.file, "rb") as f:
                image = import_rootfs(store, f, args.name, source_label=args.file,
                                      changes=args.change, message=args.message,
                                      compression=args.compression,
                                      level=args.compression_level, platform=platform)
    print(image.id)
    return 0


def _cmd_save(args: argparse.Namespace) -> int:
    from builder.archives import save_archive, save_to_path

    with open_store(args) as store:
        if args.output and args.output != "-":
            save_to_path(store, args.images, Path(args.output), args.format, args.media_types)
        else:
            if sys.stdout.isatty():
                raise InvalidArgument("refusing to write an archive to a terminal; use -o FILE")
            save_archive(store, args.images, sys.stdout.buffer, args.format, args.media_types)
            sys.stdout.buffer.flush()
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    from builder.archives import load_archive

    with open_store(args) as store:
        if args.input and args.input != "-":
            with open(args.input, "rb") as f:
                loaded = load_archive(store, f)
        else:
            loaded = load_archive(store, sys.stdin.buffer)
    if not args.quiet:
        for item in loaded:
            if item.names:
                for name in item.names:
                    print(f"Loaded image: {name}")
            else:
                print(f"Loaded image ID: {item.image.id}")
    return 0


def _cmd_unpack(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        for name in args.images:
            for path in store.unpack(store.resolve(name)):
                print(path)
    return 0


def register(sub: Any) -> None:
    """Add the image-management subcommands to the `strata` parser."""
    p = sub.add_parser("images", help="list local images")
    p.add_argument("repository", nargs="?", help="only this repository")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
    p.add_argument("--no-trunc", action="store_true")
    p.set_defaults(func=_cmd_images)

    p = sub.add_parser("inspect", help="show image details as JSON (like docker inspect)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--id", action="store_true", help="print only the image ID")
    p.add_argument("-f", "--format", help="template such as '{{.Id}}' or '{{json .Config}}'")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("history", help="show the history of an image")
    p.add_argument("image")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--no-trunc", action="store_true")
    p.set_defaults(func=_cmd_history)

    p = sub.add_parser("tag", help="create a tag TARGET that refers to SOURCE")
    p.add_argument("source")
    p.add_argument("target")
    p.set_defaults(func=_cmd_tag)

    p = sub.add_parser("rmi", help="remove images (shared layers stay while referenced)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true",
                   help="remove an image referenced by several names when given by ID")
    p.set_defaults(func=_cmd_rmi)

    p = sub.add_parser("prune", help="remove untagged images, unreferenced blobs and layers")
    p.add_argument("-f", "--force", action="store_true", help="accepted for docker parity")
    p.set_defaults(func=_cmd_prune)

    p = sub.add_parser("import", help="create an image from a rootfs tarball")
    p.add_argument("file", metavar="FILE", help="rootfs tar (plain or compressed), or -")
    p.add_argument("name", nargs="?", metavar="NAME[:TAG]")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="Dockerfile instruction to apply (CMD, ENV, ...)")
    p.add_argument("-m", "--message", help="history comment")
    p.add_argument("--platform", help="os/arch[/variant] (default: host)")
    p.add_argument("--compression", choices=["gzip", "zstd", "none"], default="gzip")
    p.add_argument("--compression-level", type=int)
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("save", help="save images to a tar archive")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="write to FILE instead of stdout")
    p.add_argument("--format", choices=["docker", "oci"], default="docker")
    p.add_argument("--media-types", choices=["docker", "oci"],
                   help="rewrite manifests in the archive to Docker schema2 or OCI media types "
                   "(default: as stored)")
    p.set_defaults(func=_cmd_save)

    p = sub.add_parser("load", help="load images from a docker or OCI archive")
    p.add_argument("-i", "--input", help="read from FILE instead of stdin")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_load)

    p = sub.add_parser("unpack", help="unpack image layers into the store (once per chain ID) "
                       "and print their directories, lowest first")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=_cmd_unpack)

    from builder import cli_system

    cli_system.register(sub)
