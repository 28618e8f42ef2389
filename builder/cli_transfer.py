"""`strata pull`, `push`, `search`, `login`, `logout`: the registry client commands."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from builder.errors import InvalidArgument


def _options(args: argparse.Namespace) -> Any:
    from builder.transfer import DEFAULT_CONCURRENCY, RemoteOptions

    return RemoteOptions(insecure=tuple(args.insecure_registry or ()), ca_cert=args.ca_cert,
                         concurrency=getattr(args, "concurrency", DEFAULT_CONCURRENCY))


def _progress(args: argparse.Namespace) -> Any:
    from builder.transfer_progress import open_transfer_progress

    return open_transfer_progress(args.progress, sys.stderr, quiet=args.quiet)


def _cmd_pull(args: argparse.Namespace) -> int:
    from builder.images import ImageStore
    from builder.transfer import pull_image

    platform = args.platform
    if platform:
        from registry.oci import Platform
        try:
            Platform.parse(platform)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
    with ImageStore(Path(args.root)) as store:
        image = pull_image(store, args.reference, platform, options=_options(args),
                           progress=_progress(args))
    print(image.names[0] if image.names else str(image.manifest.digest))
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from builder.images import ImageStore
    from builder.transfer import push_image

    with ImageStore(Path(args.root)) as store:
        digest, _stats = push_image(store, args.reference, args.source, options=_options(args),
                                    progress=_progress(args), media_types=args.media_types)
    print(digest)
    return 0


def _registry_arg(text: str) -> tuple[str, tuple[str, ...]]:
    """`http://host:port` -> (host:port, insecure), `https://h` or `h` -> (h, ())."""
    if text.startswith("http://"):
        host = text.removeprefix("http://").rstrip("/")
        return host, (host,)
    return text.removeprefix("https://").rstrip("/"), ()


def _cmd_search(args: argparse.Namespace) -> int:
    from builder.transfer import RemoteOptions, search

    registry, insecure = _registry_arg(args.registry)
    base = _options(args)
    options = RemoteOptions(base.insecure + insecure, base.ca_cert)
    body = search(registry, args.term, args.limit, options)
    if args.format == "json":
        print(json.dumps(body, indent=2, sort_keys=True))
        return 0
    results = body.get("results") or []
    rows = [("NAME", "DESCRIPTION", "TAGS")]
    for r in results:
        if not isinstance(r, dict):
            continue
        tags = r.get("tags") or []
        rows.append((str(r.get("name", "")), str(r.get("description") or "")[:50],
                     ",".join(map(str, tags[:5])) if isinstance(tags, list) else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _cmd_login(args: argparse.Namespace) -> int:
    from builder import credentials
    from builder.transfer import check_login

    registry, _ = _registry_arg(args.registry)
    user = args.username or (input("Username: ") if sys.stdin.isatty() else "")
    if not user:
        raise InvalidArgument("login needs a user name (-u USER)")
    if args.password_stdin:
        password = sys.stdin.read().rstrip("\n")
    elif args.password is not None:
        password = args.password
    else:
        password = getpass.getpass("Password: ")
    if not password:
        raise InvalidArgument("login needs a password (--password-stdin)")
    check_login(registry, user, password, _options(args))
    path = credentials.store(registry, user, password)
    print(f"Login Succeeded (credentials saved in {path})")
    return 0


def _cmd_logout(args: argparse.Namespace) -> int:
    from builder import credentials

    registry, _ = _registry_arg(args.registry)
    if credentials.remove(registry):
        print(f"Removing login credentials for {registry}")
    else:
        print(f"Not logged in to {registry}")
    return 0


def _remote_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure-registry", action="append", metavar="HOST",
                   help="use plain http for HOST (loopback hosts always use http); repeatable")
    p.add_argument("--ca-cert", metavar="FILE", help="extra CA certificate(s) to trust (PEM)")


# builder.transfer.DEFAULT_CONCURRENCY; not imported here because builder.transfer pulls in
# aiohttp, which would cost every `strata` command ~150 ms of start-up (a test pins equality).
DEFAULT_CONCURRENCY = 4


def _progress_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", default="auto", choices=["auto", "tty", "plain", "json"],
                   help="progress view (auto: tty on a terminal, else plain)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the result")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                   help=f"parallel layer transfers (default {DEFAULT_CONCURRENCY})")


def register(sub: Any) -> None:
    """Add the registry client subcommands to the `strata` parser."""
    p = sub.add_parser("pull", help="pull an image from a registry")
    p.add_argument("reference", metavar="REF", help="[HOST/]NAME[:TAG|@DIGEST]")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                   help="platform to pick from a multi-platform index (default: this host)")
    _remote_flags(p)
    _progress_flags(p)
    p.set_defaults(func=_cmd_pull)

    p = sub.add_parser("push", help="push an image to a registry")
    p.add_argument("reference", metavar="REF", help="HOST/NAME[:TAG] (tag the image first)")
    p.add_argument("source", nargs="?", metavar="IMAGE",
                   help="local image to push under REF (default: REF itself)")
    p.add_argument("--media-types", choices=["oci", "docker"],
                   help="rewrite the manifest to OCI or Docker schema2 media types before "
                   "pushing (default: as stored; strata's own images are OCI)")
    _remote_flags(p)
    _progress_flags(p)
    p.set_defaults(func=_cmd_push)

    p = sub.add_parser("search", help="search a registry for images")
    p.add_argument("term", metavar="TERM")
    p.add_argument("--registry", default="docker.io", metavar="URL",
                   help="registry to ask (http://HOST:PORT for plain http; default docker.io)")
    p.add_argument("--limit", type=int, default=25, metavar="N", help="at most N results")
    p.add_argument("--format", default="table", choices=["table", "json"])
    _remote_flags(p)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("login", help="log in to a registry (saves credentials, mode 0600)")
    p.add_argument("registry", metavar="REGISTRY")
    p.add_argument("-u", "--username", metavar="USER")
    p.add_argument("-p", "--password", metavar="PASSWORD",
                   help="password (prefer --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    _remote_flags(p)
    p.set_defaults(func=_cmd_login)

    p = sub.add_parser("logout", help="forget the credentials saved for a registry")
    p.add_argument("registry", metavar="REGISTRY")
    p.set_defaults(func=_cmd_logout)
