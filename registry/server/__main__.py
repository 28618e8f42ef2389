"""`strata-registry`: run the OCI registry server (python -m registry.server).

    strata-registry serve [--config FILE] [--addr HOST:PORT] [--root DIR] [--workers N]
                          [--delete-enabled] [--log-format text|json]
    strata-registry reindex [--config FILE] [--root DIR]
    strata-registry gc [--config FILE] [--root DIR] [--delete-untagged] [--dry-run] [--json]
    strata-registry --version

Options come from defaults, then the TOML file, then STRATA_REGISTRY_* variables, then flags
(see registry/server/config.py for the list).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from registry.server.config import ConfigError, RegistryConfig, load_config
from registry.server.tls import server_context, watch_certificate
from registry.storage import (
    CollectionConflict,
    CollectionReport,
    ManifestUnreadable,
    RegistryStore,
    RootBusy,
    RootLock,
    StoreConfig,
    paths,
)


def registry_version() -> str:
    try:
        return version("strata")
    except PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strata-registry",
        description="strata-registry: an OCI distribution v1.1 registry server.",
    )
    parser.add_argument(
        "--version", action="version", version=f"strata-registry {registry_version()}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser(
        "serve", help="run the registry HTTP server",
        description="Serve the OCI distribution API (and docker search) from --root until "
                    "SIGTERM or SIGINT. Every option below can be set in the TOML file, as "
                    "STRATA_REGISTRY_<NAME>, or (some) as a flag; flags win, then the "
                    "environment, then the file. https, Basic auth and the pull-through "
                    "cache mode are options (tls_*, auth_*, proxy_*).",
        epilog=_config_options(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(serve)
    serve.add_argument("--addr", help="HOST:PORT to listen on (default 127.0.0.1:5000)")
    serve.add_argument("--workers", type=int, help="worker processes sharing the port")
    serve.add_argument("--delete-enabled", action="store_const", const=True, default=None,
                       help="allow DELETE of blobs and manifests")
    serve.add_argument("--log-format", choices=("text", "json"), help="log line format")
    reindex = sub.add_parser("reindex", help="rebuild the search index from storage")
    _common(reindex)
    gc = sub.add_parser(
        "gc", help="remove the blobs no manifest needs (with the server stopped)",
        description="Remove what deletes left: repository links to blobs that no manifest of "
                    "the repository needs, then blobs that no repository links, and blob "
                    "files with no record. Stop the server first: gc refuses to run while "
                    "one serves the root, and a server refuses to start during gc.")
    _common(gc)
    gc.add_argument("--delete-untagged", action="store_true",
                    help="first remove the manifests no tag reaches (not tagged, not the child "
                         "of a kept index, not a referrer of a kept manifest): the images a "
                         "moved tag left behind, which are otherwise kept for pulls by digest")
    gc.add_argument("--dry-run", action="store_true",
                    help="report what would be removed; remove nothing")
    gc.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return parser


def _config_options() -> str:
    """The option table of registry/server/config.py's module doc."""
    import registry.server.config as config_module

    doc = config_module.__doc__ or ""
    return "options (TOML key, default, meaning):\n" + doc.split("\n\n", 2)[2].rstrip()


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path,
                        default=os.environ.get("STRATA_REGISTRY_CONFIG") or None,
                        help="TOML config file (or $STRATA_REGISTRY_CONFIG)")
    parser.add_argument("--root", type=Path, help="storage root directory")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    overrides: dict[str, Any] = {"root": args.root}
    if args.command == "serve":
        overrides.update(addr=args.addr, workers=args.workers,
                         delete_enabled=args.delete_enabled, log_format=args.log_format)
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"strata-registry: {exc}", file=sys.stderr)
        return 2
    setup_logging(config)
    if args.command == "reindex":
        count = asyncio.run(_reindex(config))
        print(f"reindexed {count} repositories")
        return 0
    if args.command == "gc":
        return _collect(config, args.dry_run, args.delete_untagged, args.json)
    try:  # a certificate or password file that cannot be used stops us before forking
        server_context(config)
        if config.auth_htpasswd is not None:
            from registry.auth import HtpasswdInvalid, load_htpasswd  # (bcrypt: not --version)

            try:
                load_htpasswd(config.auth_htpasswd)
            except HtpasswdInvalid as exc:
                raise ConfigError(str(exc)) from None
    except ConfigError as exc:
        print(f"strata-registry: {exc}", file=sys.stderr)
        return 2
    config.root.mkdir(parents=True, exist_ok=True)
    try:
        lock = RootLock(config.root, exclusive=False)  # forked workers inherit it
    except (RootBusy, OSError) as exc:
        print(f"strata-registry: {exc}", file=sys.stderr)
        return 2
    with lock:
        return serve(config)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.name == "registry.access":
            return record.getMessage()
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(),
               "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "registry.access":
            return f"{self.formatTime(record)} access {record.getMessage()}"
        return super().format(record)


class AcceptFailureReport:
    """The event loop's exception handler. asyncio reports every accept(2) that fails for
    want of descriptors (EMFILE: a flood of connections) with a traceback, up to a backlog's
    worth a second, and retries a second later: thousands of log lines. Such failures become
    one WARNING line per REPORT_SECONDS, counting them; everything else goes to asyncio's
    default handler."""

    REPORT_SECONDS = 10.0
    MESSAGE = "socket.accept() out of system resource"

    def __init__(self) -> None:
        self._unreported = 0
        self._last = -self.REPORT_SECONDS

    def handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self.MESSAGE:
            loop.default_exception_handler(context)
            return
        self._unreported += 1
        now = time.monotonic()
        if now - self._last >= self.REPORT_SECONDS:
            logging.getLogger("registry.server").warning(
                "new connections wait: %d accepts failed since the last report (%s); each "
                "connection is a descriptor, see the open-file limit and idle_timeout_seconds",
                self._unreported, context.get("exception"))
            self._unreported, self._last = 0, now


def setup_logging(config: RegistryConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if config.log_format == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())
    logging.getLogger("aiohttp.access").propagate = False


def _collect(config: RegistryConfig, dry_run: bool, delete_untagged: bool,
             as_json: bool) -> int:
    """`gc`: collect garbage holding the root alone; print the report."""
    if not (config.root / paths.METADATA_DB).is_file():
        print(f"strata-registry gc: no registry at {config.root}", file=sys.stderr)
        return 2
    try:
        lock = RootLock(config.root, exclusive=True)
    except (RootBusy, OSError) as exc:
        print(f"strata-registry gc: {exc}", file=sys.stderr)
        return 2
    with lock:
        try:
            report = asyncio.run(_collect_in(config, dry_run, delete_untagged))
        except (CollectionConflict, ManifestUnreadable) as exc:
            print(f"strata-registry gc: {exc}; nothing was removed", file=sys.stderr)
            return 1
    if as_json:
        print(json.dumps(report.as_dict()))
        return 0
    verb = "would remove" if dry_run else "removed"
    for manifest in report.untagged:
        print(f"{verb} untagged {manifest}")
    untagged = (f"{report.manifests_removed} untagged manifests, "
                if delete_untagged else "")
    print(f"kept {report.manifests} manifests in {report.repositories} repositories; "
          f"{verb} {untagged}{report.links_removed} repository links, "
          f"{report.blobs_removed} blobs "
          f"and {report.orphans_removed} unrecorded blob files "
          f"({report.bytes_freed:,} bytes)")
    return 0


async def _collect_in(config: RegistryConfig, dry_run: bool,
                      delete_untagged: bool) -> CollectionReport:
    store = await RegistryStore.open(StoreConfig(root=config.root))
    try:
        return await store.collect_garbage(dry_run, delete_untagged)
    finally:
        await store.close()


async def _reindex(config: RegistryConfig) -> int:
    from registry.search import SearchIndex

    store = await RegistryStore.open(StoreConfig(root=config.root))
    try:
        index = await SearchIndex.open(store.db_path, store)
        try:
            return await index.rebuild()
        finally:
            await index.close()
    finally:
        await store.close()


LISTEN_BACKLOG = 1024  # connections the kernel queues for a busy (or out of descriptors) worker


def listening_sockets(host: str, port: int, reuse_port: bool,
                      send_timeout: float) -> list[socket.socket]:
    """One listening socket per address `host` resolves to, as loop.create_server binds.

    Each carries TCP_USER_TIMEOUT, which the sockets it accepts inherit: a connection whose
    sent bytes wait unacknowledged for `send_timeout` is reset. A client that stops reading
    keeps a zero window, and Linux counts its probes against that time (since 5.11): aiohttp
    has no timeout of its own for a response that does not leave.
    """
    sockets: list[socket.socket] = []
    try:
        for family, _, _, _, address in dict.fromkeys(socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)):
            sock = socket.create_server(address, family=family, backlog=LISTEN_BACKLOG,
                                        reuse_port=reuse_port)
            sockets.append(sock)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                            int(send_timeout * 1000))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def _serve_until_signal(config: RegistryConfig, reuse_port: bool) -> None:
    """Serve until SIGTERM or SIGINT, then close connections and storage cleanly."""
    from aiohttp import web

    from registry.server.app import (
        REQUEST_HEAD_LIMITS,
        AccessLogger,
        AccessLogSink,
        JsonAccessLogger,
        access_log,
        create_app,
        hand_back_to,
    )
    from registry.server.params import BODY_READ_SIZE

    sink = AccessLogSink(sys.stderr)
    AccessLogger.sink = sink
    logger_class = JsonAccessLogger if config.log_format == "json" else AccessLogger
    app = create_app(config)
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=5,
        read_bufsize=BODY_READ_SIZE, access_log=access_log if config.access_log else None,
        access_log_class=logger_class, keepalive_timeout=config.idle_timeout_seconds,
        **REQUEST_HEAD_LIMITS)
    await runner.setup()
    hand_back_to(app, runner)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(AcceptFailureReport().handle)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watcher: asyncio.Task[None] | None = None
    try:
        ssl_context = server_context(config)
        if ssl_context is not None:
            watcher = loop.create_task(watch_certificate(config, ssl_context))
        for sock in listening_sockets(config.host, config.port, reuse_port,
                                      config.send_timeout_seconds):
            await web.SockSite(runner, sock, backlog=LISTEN_BACKLOG,
                               ssl_context=ssl_context).start()
        logging.getLogger("registry.server").info(
            "strata-registry %s listening on %s://%s (pid %d, root %s)",
            registry_version(), config.scheme, config.addr, os.getpid(), config.root)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            sink.flush()
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await runner.cleanup()
        sink.flush()


async def _prepare(config: RegistryConfig) -> None:
    """Open (creating) the store and search tables once, then close them."""
    from registry.search import SearchIndex

    store = await RegistryStore.open(StoreConfig(root=config.root))
    try:
        if config.search_enabled:
            index = await SearchIndex.open(store.db_path, store)
            await index.close()
    finally:
        await store.close()


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MALLOC_MMAP_THRESHOLD = 4 * 1024 * 1024
MALLOC_TRIM_THRESHOLD = 8 * 1024 * 1024


def tune_malloc() -> bool:
    """Let glibc malloc keep up to MALLOC_TRIM_THRESHOLD of freed heap for reuse.

    A streaming push allocates and frees a socket buffer (up to BODY_READ_SIZE) per read.
    With glibc's dynamic defaults the heap top is trimmed and regrown all the time, and every
    regrown page is a page fault plus a page clear: about 0.15 s of kernel CPU per pushed GB.
    Memory stays bounded (at most the trim threshold of idle heap). False where there is no
    mallopt (not glibc).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD))


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard one, as Go programs (distribution
    included) do at start: each connection is a descriptor, and Debian's soft default of
    1,024 is a few hundred idle clients away. Returns the limit in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _run_worker(config: RegistryConfig, reuse_port: bool) -> None:
    config.root.mkdir(parents=True, exist_ok=True)
    tune_malloc()
    raise_open_file_limit()
    asyncio.run(_serve_until_signal(config, reuse_port))


def serve(config: RegistryConfig) -> int:
    """Run in this process (workers=1), or fork N workers that share the port."""
    if config.workers == 1:
        _run_worker(config, reuse_port=False)
        return 0
    # Import the server and create the database schema before forking, so workers start at
    # once, share those pages, and never race each other through a schema migration.
    import registry.server.app  # noqa: F401

    config.root.mkdir(parents=True, exist_ok=True)
    asyncio.run(_prepare(config))
    children: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for _ in range(config.workers):
        pid = os.fork()
        if pid == 0:  # child: no event loop and no threads yet
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                _run_worker(config, reuse_port=True)
            except BaseException:
                logging.getLogger("registry.server").exception("worker failed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children.append(pid)
    status = 0
    remaining = set(children)
    while remaining:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        remaining.discard(pid)
        if os.waitstatus_to_exitcode(wait_status) not in (0, -signal.SIGTERM):
            status = 1
            forward(signal.SIGTERM, None)  # a worker died: stop all, let a supervisor restart
    return status


if __name__ == "__main__":
    sys.exit(main())
