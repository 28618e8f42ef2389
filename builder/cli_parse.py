"""`strata parse`: print a Dockerfile's instructions (text or --json).

Exit status 0 on success, 1 when the Dockerfile is invalid or unreadable (the error goes
to stderr as ``FILE:LINE:COLUMN: message`` followed by the offending line), 2 on usage
errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockerfile_grammar import Dockerfile, Instruction


def register(sub: Any) -> None:
    """Add the `parse` subcommand to the `strata` parser."""
    p = sub.add_parser(
        "parse",
        help="parse a Dockerfile and print its instructions",
        description="Parse a Dockerfile and print its instructions, or the first error.",
    )
    p.add_argument("path", nargs="?", help="Dockerfile to parse ('-' reads stdin)")
    p.add_argument("-f", "--file", dest="file", help="Dockerfile to parse (same as PATH)")
    p.add_argument("--json", action="store_true", help="print a JSON list (stable shape)")
    p.set_defaults(func=run)


def _read(path: str) -> tuple[str, str]:
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    with open(path, encoding="utf-8") as fh:
        return fh.read(), path


def run(args: argparse.Namespace) -> int:
    from dockerfile_grammar import DockerfileError, parse, to_json

    path = args.file or args.path
    if args.file and args.path:
        print("strata parse: give the Dockerfile either as PATH or with -f, not both",
              file=sys.stderr)
        return 2
    if not path:
        path = "Dockerfile"
    try:
        text, name = _read(path)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"strata parse: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    try:
        df = parse(text, filename=name)
    except DockerfileError as err:
        print(str(err), file=sys.stderr)
        excerpt = err.excerpt()
        if excerpt:
            print(excerpt, file=sys.stderr)
        return 1
    if args.json:
        json.dump(to_json(df), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(df))
    return 0


def _lines(inst: Instruction) -> str:
    loc = inst.location
    return f"{loc.line}" if loc.line == loc.end_line else f"{loc.line}-{loc.end_line}"


def _describe(inst: Instruction, indent: str) -> list[str]:
    text = inst.original
    if inst.location.line != inst.location.end_line:
        text = " ".join(text.split())  # joined continuations: squeeze the indentation
    out = [f"{indent}{_lines(inst):>7}  {text}"]
    heredocs = getattr(inst, "heredocs", ())
    if hasattr(inst, "instruction"):  # ONBUILD
        heredocs = getattr(inst.instruction, "heredocs", ())
    for h in heredocs:
        count = h.content.count("\n")
        out.append(f"{indent}{'':>7}    <<{h.name}: {count} line{'s' if count != 1 else ''}"
                   f"{'' if h.expand else ' (no expansion)'}")
    return out


def render(df: Dockerfile) -> str:
    """Human-readable listing: directives, global ARGs, then each stage's instructions."""
    out: list[str] = []
    d = df.directives
    if d.raw:
        out.append("directives: " + ", ".join(f"{k}={v}" for k, v in d.raw))
    for arg in df.global_args:
        out.extend(_describe(arg, "global "))
    for st in df.stages:
        title = f"stage {st.index}" + (f" ({st.name})" if st.name else "")
        out.append(title)
        out.extend(_describe(st.base, "  "))
        for inst in st.instructions:
            out.extend(_describe(inst, "  "))
    count = len(df.instructions)
    out.append(f"{count} instruction{'s' if count != 1 else ''}, {len(df.stages)} "
               f"stage{'s' if len(df.stages) != 1 else ''}")
    return "\n".join(out) + "\n"
