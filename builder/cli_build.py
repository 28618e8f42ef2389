"""`strata build` and `strata run`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import InvalidArgument

if TYPE_CHECKING:
    from builder.build import BuildResult
    from builder.buildmemo import InputScan, Invocation, MemoHit
    from builder.progress import Progress


def _pairs(values: list[str] | None, what: str, *, allow_bare: bool = False) -> dict[str, str]:
    import os

    out: dict[str, str] = {}
    for item in values or []:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what} {item!r}: expected KEY=VALUE")
        if not eq:
            if not allow_bare:
                raise InvalidArgument(f"invalid {what} {item!r}: expected KEY=VALUE")
            if key not in os.environ:
                continue  # docker: a bare build arg takes the client's env, if set
            value = os.environ[key]
        out[key] = value
    return out


_TEMP_SECRETS: list[Path] = []  # files made for `--secret env=VAR`, removed after the build


def parse_secret(text: str) -> tuple[str, Path]:
    """`id=NAME,src=FILE` (also `source=`, `type=file`; `env=VAR` reads a variable)."""
    import os
    import tempfile

    fields: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid --secret {text!r}: expected id=NAME,src=FILE")
        fields[key.strip().lower()] = value
    sid = fields.get("id")
    if not sid:
        raise InvalidArgument(f"invalid --secret {text!r}: missing id=")
    src = fields.get("src") or fields.get("source")
    if src is None and "env" in fields:
        env_value = os.environ.get(fields["env"])
        if env_value is None:
            raise InvalidArgument(f"--secret {sid}: environment variable {fields['env']} unset")
        fd, name = tempfile.mkstemp(prefix="strata-secret-")
        os.write(fd, env_value.encode())
        os.close(fd)
        _TEMP_SECRETS.append(Path(name))
        return sid, Path(name)
    if src is None:
        raise InvalidArgument(f"invalid --secret {text!r}: missing src=")
    path = Path(src)
    if not path.is_file():
        raise InvalidArgument(f"--secret {sid}: {src} is not a file")
    return sid, path


def _cmd_build(args: argparse.Namespace) -> int:
    """Build; secrets copied from the environment into temp files never outlive the command,
    whatever fails (flag checks included)."""
    try:
        return _build(args)
    finally:
        while _TEMP_SECRETS:
            _TEMP_SECRETS.pop().unlink(missing_ok=True)


def _build(args: argparse.Namespace) -> int:
    from builder.progress import open_progress

    root = Path(args.root)
    context = Path(args.context)
    dockerfile = None
    if args.file:
        dockerfile = Path(args.file) if args.file != "-" else None
        if args.file == "-":
            raise InvalidArgument("-f - (Dockerfile from stdin) is not supported")
    from dockerfile_grammar.network import RUN_NETWORK_MODES

    if args.network not in RUN_NETWORK_MODES:
        raise InvalidArgument(f"unsupported --network {args.network!r} "
                              f"({', '.join(RUN_NETWORK_MODES)})")
    secrets = dict(parse_secret(s) for s in args.secret or [])
    build_args = _pairs(args.build_arg, "--build-arg", allow_bare=True)
    labels = _pairs(args.label, "--label")
    remote = bool(args.cache_from or args.cache_to or args.push)
    memo = None if remote else _memo_invocation(args, context, dockerfile, build_args, labels,
                                                 secrets)
    scan = memo.scan() if memo is not None else None
    progress = open_progress(args.progress, sys.stderr, quiet=args.quiet)
    if memo is not None and scan is not None and not (args.no_cache or args.no_cache_filter):
        from builder.buildmemo import lookup

        hit = lookup(root, memo, scan)
        if hit is not None:
            _replay(progress, hit)
            return _built(args, hit.image_id)

    from builder.build import BuildOptions, build, source_date_epoch_from_env

    options = BuildOptions(
        context_dir=context, dockerfile=dockerfile, tags=tuple(args.tag or ()),
        target=args.target, build_args=build_args, labels=labels, platform=args.platform,
        no_cache=args.no_cache, no_cache_filter=tuple(args.no_cache_filter or ()),
        secrets=secrets, network=args.network, snapshotter=args.snapshotter,
        isolation=args.isolation, source_date_epoch=source_date_epoch_from_env(),
        insecure_registries=tuple(args.insecure_registry or ()))
    cache = None
    if remote:
        from builder.remotecache import parse_cache_from, parse_cache_to
        from builder.remotecache.engine import CacheOptions

        if args.push and not args.tag:
            raise InvalidArgument("--push needs at least one -t NAME:TAG to push to")
        cache = CacheOptions(tuple(parse_cache_from(c) for c in args.cache_from or ()),
                             tuple(parse_cache_to(c) for c in args.cache_to or ()),
                             bool(args.push))
    try:
        if cache is not None:
            from builder.remotecache.engine import build_with_cache

            result, _ = build_with_cache(root, options, progress, cache)
        else:
            result = build(root, options, progress)
    except BaseException:
        progress.close(None)
        raise
    if memo is not None and scan is not None and not result.fetched_urls:
        _remember(root, memo, scan, result, [view.name for view in progress.steps.values()])
    return _built(args, result.image_id)


def _built(args: argparse.Namespace, image_id: str) -> int:
    if args.iidfile:
        Path(args.iidfile).write_text(image_id)
    if args.quiet:
        print(image_id)
    return 0


def _memo_invocation(args: argparse.Namespace, context: Path, dockerfile: Path | None,
                     build_args: dict[str, str], labels: dict[str, str],
                     secrets: dict[str, Path]) -> Invocation:
    """The build memo's view of this command line: every option that can change the image
    (not --snapshotter, --isolation or --insecure-registry: a fully cached build, the only
    kind the memo answers, is the same image whatever they are)."""
    import os

    from builder.buildmemo import Invocation

    return Invocation(context, dockerfile, args.tag or (), {
        "target": args.target, "build_args": build_args, "labels": labels,
        "platform": args.platform, "secrets": sorted(secrets), "network": args.network,
        "source_date_epoch": os.environ.get("SOURCE_DATE_EPOCH")})


def _replay(progress: Progress, hit: MemoHit) -> None:
    """Show a memoized build as the fully cached build it stands for."""
    import time

    from builder.progress import Summary

    started = time.monotonic()
    for line in hit.steps:
        progress.finish(progress.start(line), "cached")
    progress.close(Summary(hit.image_id, hit.names, hit.size, len(hit.steps), 0,
                           time.monotonic() - started))


def _remember(root: Path, memo: Invocation, scan: InputScan, result: BuildResult,
              steps: list[str]) -> None:
    """Record the build in the memo when every image it read has a name in the store (a
    base given by ID or digest is not re-checked by name, so such builds are not memoized)."""
    from builder.build import racy_window
    from builder.buildmemo import record
    from builder.images import names_an_id, normalize_name

    try:
        bases = []
        for ref, digest in result.bases:
            if names_an_id(ref):
                return
            bases.append((normalize_name(ref), digest))
        tags = [normalize_name(t) for t in memo.tags]
    except InvalidArgument:
        return
    record(root, memo, scan, image=str(result.image.manifest.digest), bases=bases, tags=tags,
           steps=steps, racy_window_ns=racy_window(memo.context_dir))


def _cmd_run(args: argparse.Namespace) -> int:
    from builder.runcmd import RunRequest, run_container

    env = {}
    for item in args.env or []:
        key, eq, value = item.partition("=")
        if not eq:
            import os

            if key not in os.environ:
                continue
            value = os.environ[key]
        env[key] = value
    request = RunRequest(image=args.image, command=tuple(args.command), env=env,
                         volumes=tuple(args.volume or ()), workdir=args.workdir,
                         user=args.user, network=args.network, remove=args.rm,
                         entrypoint=args.entrypoint, snapshotter=args.snapshotter,
                         isolation=args.isolation)
    return run_container(Path(args.root), request)


def _cmd_builder_prune(args: argparse.Namespace) -> int:
    from builder.buildmemo import forget_all
    from builder.cache import prune_build_cache
    from builder.images import ImageStore

    root = Path(args.root)
    with ImageStore(root) as store, store.gc_guard(exclusive=True):
        records, snapshots = prune_build_cache(root, cache_mounts=args.all)
        forget_all(root)
    print(f"removed {records} build cache records and {snapshots} snapshots"
          + (" and the cache mounts" if args.all else "")
          + "; run `strata prune` to delete the blobs no image needs")
    return 0


def register(sub: Any) -> None:
    """Add the build and run subcommands to the `strata` parser."""
    p = sub.add_parser(
        "build", help="build an image from a Dockerfile",
        description="Build an image from a Dockerfile and a context directory. Every step is "
        "cached by content; a rebuild whose inputs (Dockerfile, context files, build args, "
        "base images) are all unchanged is answered from the build memo without running "
        "anything.")
    p.add_argument("context", metavar="CONTEXT", help="build context directory")
    p.add_argument("-f", "--file", metavar="DOCKERFILE",
                   help="Dockerfile (default: CONTEXT/Dockerfile)")
    p.add_argument("-t", "--tag", action="append", metavar="NAME:TAG",
                   help="name the image (repeatable)")
    p.add_argument("--target", metavar="STAGE",
                   help="build this stage (default: the last); stages it does not need are skipped")
    p.add_argument("--build-arg", action="append", metavar="K=V",
                   help="set a build-time ARG (K alone takes the value from the environment)")
    p.add_argument("--label", action="append", metavar="K=V", help="add an image label")
    p.add_argument("--platform", metavar="OS/ARCH",
                   help="target platform; only the host's is supported (clear error otherwise)")
    p.add_argument("--no-cache", action="store_true",
                   help="run every step; ignore the step cache and the build memo")
    p.add_argument("--no-cache-filter", action="append", metavar="STAGE",
                   help="ignore the cache for this stage only (repeatable)")
    p.add_argument("--secret", action="append", metavar="id=NAME,src=FILE",
                   help="a secret for RUN --mount=type=secret (src=FILE or env=VAR); never "
                   "stored in a layer, log or cache key")
    p.add_argument("--network", default="default", metavar="default|none|host",
                   help="network for RUN steps (default: the host's; RUN --network overrides)")
    p.add_argument("--progress", default="auto", choices=["auto", "tty", "plain", "rawjson"],
                   help="auto: live view on a terminal, plain lines otherwise; rawjson: events")
    p.add_argument("--iidfile", metavar="FILE", help="write the image ID to FILE")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the image ID on stdout")
    p.add_argument("--snapshotter", default="auto", choices=["auto", "overlay", "native"],
                   help="overlay (kernel overlayfs) or native (copies); auto probes overlay")
    p.add_argument("--isolation", default="auto", choices=["auto", "runtime", "chroot"],
                   help="RUN sandbox: an OCI runtime (crun/runc) or the built-in namespaces")
    p.add_argument("--insecure-registry", action="append", metavar="HOST",
                   help="plain-http registry for pulling missing base images (loopback is)")
    p.add_argument("--cache-from", action="append", metavar="type=registry,ref=REF",
                   help="import build cache: type=registry,ref=REF (repeatable; an image "
                   "pushed with inline cache works too) or type=local,src=DIR")
    p.add_argument("--cache-to", action="append", metavar="type=registry,ref=REF",
                   help="export build cache: type=registry,ref=REF[,mode=min|max]"
                   "[,cache-mounts=true], type=inline or type=local,dest=DIR")
    p.add_argument("--push", action="store_true",
                   help="push every -t tag to its registry after the build")
    p.set_defaults(func=_cmd_build)

    b = sub.add_parser("builder", help="manage the build cache")
    bsub = b.add_subparsers(dest="builder_command", metavar="COMMAND", required=True)
    bp = bsub.add_parser("prune", help="forget the build cache and remove build snapshots")
    bp.add_argument("--all", action="store_true", help="also remove RUN cache mounts")
    bp.set_defaults(func=_cmd_builder_prune)

    r = sub.add_parser("run", help="run a command in a container from an image")
    r.add_argument("--rm", action="store_true", help="discard the container's changes")
    r.add_argument("-e", "--env", action="append", metavar="K=V",
                   help="set an environment variable (K alone copies it from here)")
    r.add_argument("-v", "--volume", action="append", metavar="HOST:CTR[:ro]",
                   help="bind-mount a host path into the container")
    r.add_argument("-w", "--workdir", metavar="DIR", help="working directory in the container")
    r.add_argument("-u", "--user", metavar="USER",
                   help="user[:group], names resolved in the image's /etc/passwd")
    r.add_argument("--network", default="default", metavar="default|none|host",
                   help="the host's network (default) or none")
    r.add_argument("--entrypoint", help="override the image's ENTRYPOINT")
    r.add_argument("--snapshotter", default="auto", choices=["auto", "overlay", "native"],
                   help="how the container's root is prepared (see strata build)")
    r.add_argument("--isolation", default="auto", choices=["auto", "runtime", "chroot"],
                   help="sandbox: an OCI runtime (crun/runc) or the built-in namespaces")
    r.add_argument("image", metavar="IMAGE", help="local image name or ID")
    r.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD",
                   help="command and arguments (default: the image's ENTRYPOINT and CMD)")
    r.set_defaults(func=_cmd_run)
