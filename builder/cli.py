"""`strata` command line: the one place that turns errors into messages and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version


def strata_version() -> str:
    try:
        return version("strata")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"strata {strata_version()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strata",
        description="strata: build OCI images from Dockerfiles and move them to and from registries.",
    )
    parser.add_argument("--version", action="version", version=f"strata {strata_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("version", help="print the strata version")
    p.set_defaults(func=_cmd_version)

    from builder import cli_parse

    cli_parse.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        rc: int = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return rc


if __name__ == "__main__":
    sys.exit(main())
