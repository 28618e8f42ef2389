"""`strata` command line: the one place that turns errors into messages and exit codes."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence

from builder.errors import StrataError
from registry.oci.errors import RegistryError


def strata_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # slow import: only when asked

    try:
        return version("strata")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


class _VersionAction(argparse.Action):
    """--version, reading the installed version only when asked (importlib.metadata is slow)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"strata {strata_version()}")
        parser.exit()


def default_root() -> str:
    """STRATA_ROOT, else /var/lib/strata as root, else ~/.local/share/strata."""
    if env := os.environ.get("STRATA_ROOT"):
        return env
    if os.geteuid() == 0:
        return "/var/lib/strata"
    return os.path.join(os.path.expanduser("~"), ".local", "share", "strata")


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"strata {strata_version()}")
    return 0


_COMMAND_MODULES = {
    "parse": "cli_parse",
    "build": "cli_build", "builder": "cli_build", "run": "cli_build",
    "pull": "cli_transfer", "push": "cli_transfer", "search": "cli_transfer",
    "login": "cli_transfer", "logout": "cli_transfer",
    "images": "cli_images", "inspect": "cli_images", "history": "cli_images",
    "tag": "cli_images", "rmi": "cli_images", "prune": "cli_images", "import": "cli_images",
    "save": "cli_images", "load": "cli_images", "unpack": "cli_images", "system": "cli_images",
}
"""Which module registers each command: a command line names one, and only that module's
parser is built (argparse set-up of every command costs more than a cached rebuild)."""


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word of `argv` (after the global options), if any."""
    args = iter(argv)
    for arg in args:
        if arg == "--root":
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The `strata` parser; with `argv`, only the subcommand it names (if known)."""
    parser = argparse.ArgumentParser(
        prog="strata",
        description="strata: build OCI images from Dockerfiles and move them to and from "
        "registries.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="show the version and exit")
    parser.add_argument(
        "--root", default=default_root(), metavar="DIR",
        help="store directory (default: $STRATA_ROOT, /var/lib/strata as root, "
        "else ~/.local/share/strata)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("version", help="print the strata version")
    p.set_defaults(func=_cmd_version)

    import importlib

    wanted = _COMMAND_MODULES.get(_command_of(argv) or "") if argv is not None else None
    for module in ("cli_parse", "cli_build", "cli_transfer", "cli_images"):
        if wanted is None or module == wanted:
            importlib.import_module(f"builder.{module}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The `strata` command (argv None: this process's arguments) or one call of it."""
    if argv is None:
        # a short-lived process that allocates much and frees little (class creation at
        # import, build plans): collect young objects less often, as mypy does
        gc.set_threshold(100_000, 50, 100)
    try:
        return _run(argv)
    finally:
        if argv is None:
            # the process ends next: keep its final garbage collection from walking every
            # object it made (about 20 ms after a build; nothing is left to collect)
            gc.freeze()


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        rc: int = args.func(args)
    except StrataError as exc:
        print(f"strata: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except RegistryError as exc:  # a registry answer no lower layer translated: no traceback
        print(f"strata: error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return rc


if __name__ == "__main__":
    sys.exit(main())
