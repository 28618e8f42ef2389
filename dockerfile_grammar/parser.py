"""Dockerfile text -> :class:`~dockerfile_grammar.instructions.Dockerfile`.

Three steps, no I/O except in :func:`parse_file`:

1. :func:`~dockerfile_grammar.prepass.prepass` turns physical lines into logical lines
   (directives, continuations, comments, heredoc bodies).
2. One call to the cached Lark LALR parser (contextual lexer) over all logical lines,
   one per text line, splits each into keyword, flags and arguments.
3. :class:`~dockerfile_grammar.build.Builder` applies each instruction's own rules and
   builds the typed dataclasses; then the stages are assembled.

A single Lark instance serves both escape characters: the escape character only matters
for continuations (handled in the pre-pass) and for word splitting (done in Python after
the parse); flags always use the backslash, as in BuildKit.

Every lark exception is translated into :class:`DockerfileError` here; none escapes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import lark
from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, UnexpectedInput

from .build import Builder, FlagWord, RawInstruction, RawOnBuild
from .cache import private_cache_dir
from .errors import DockerfileSyntaxError, StageError
from .instructions import Arg, Dockerfile, From, Instruction, Stage
from .prepass import prepass

__all__ = ["parse", "parse_file"]


_GO_BLANKS = "\t\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_FLAG_WORD_RE = re.compile(
    rf"""--(?:[^\n{_GO_BLANKS}"'\\]|\\[^\n]|"(?:[^"\\\n]|\\[^\n])*"?|'(?:[^'\\\n]|\\[^\n])*'?)+"""
)


def _split_flags(token: Token) -> list[FlagWord]:
    """The FLAGS token cut into one word per flag, each with its own column."""
    column = token.column or 1
    words = []
    for m in _FLAG_WORD_RE.finditer(token):
        word = FlagWord(m.group())
        word.column = column + m.start()
        words.append(word)
    return words


class _ToRaw(Transformer[Token, object]):
    """Builds the raw pieces while the LALR parser reduces (no tree is kept)."""

    def start(self, children: list[object]) -> list[object]:
        return children

    def instruction(self, children: list[Any]) -> RawInstruction:
        # children: KEYWORD [FLAGS] [END_OF_FLAGS] [(kind, argument token)]
        flags: list[FlagWord] = []
        kind, args = "", None
        for child in children[1:]:
            if type(child) is tuple:
                kind, args = child
            elif child.type == "FLAGS":
                flags = _split_flags(child)
        return RawInstruction(children[0], flags, kind, args)

    def onbuild(self, children: list[object]) -> RawOnBuild:
        keyword = children[0]
        assert isinstance(keyword, Token)
        flags = next(
            (_split_flags(c) for c in children[1:] if isinstance(c, Token) and c.type == "FLAGS"),
            [],
        )
        inner = next((c for c in children if isinstance(c, RawInstruction)), None)
        return RawOnBuild(keyword, flags, inner)

    def json_arguments(self, children: list[Token]) -> tuple[str, Token]:
        return ("json", children[0])

    def text_arguments(self, children: list[Token]) -> tuple[str, Token]:
        return ("text", children[0])


def _table_cache() -> str | bool:
    """Where Lark keeps the LALR tables between runs: a private per-user directory.

    Building the tables costs 35-70 ms on every `strata` start; Lark stores them with the
    grammar's sha256 and rebuilds on any mismatch. The file is a pickle, so it lives in a
    0700 directory of our own (cache.private_cache_dir), never in a shared /tmp. No cache
    when that is impossible.
    """
    directory = private_cache_dir()
    if directory is None:
        return False
    return os.path.join(directory, f"dockerfile-grammar-lark-{lark.__version__}.cache")


_LARK = Lark.open_from_package(
    "dockerfile_grammar",
    "dockerfile.lark",
    parser="lalr",
    lexer="contextual",
    # positions come from the tokens (mapped back through the pre-pass); propagating
    # them to tree nodes would cost about a quarter of the parse time for nothing
    propagate_positions=False,
    maybe_placeholders=False,
    transformer=_ToRaw(),
    cache=_table_cache(),
)


def parse(text: str, *, filename: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile ``text``; raise :class:`DockerfileError` on any problem."""
    pre = prepass(text, filename)
    if not pre.lines:
        last = max(len(pre.source_lines), 1)
        raise DockerfileSyntaxError("file with no instructions", filename=filename, line=last)
    joined = "\n".join(ll.text for ll in pre.lines) + "\n"
    try:
        raws = _LARK.parse(joined)
    except UnexpectedInput as exc:
        ll = pre.lines[max(exc.line, 1) - 1]
        line, column = ll.position(max(exc.column, 1) - 1)
        src = pre.source_lines[line - 1].rstrip("\r") if line <= len(pre.source_lines) else ""
        raise DockerfileSyntaxError(
            "syntax error: unexpected input", filename=filename, line=line, column=column,
            source_line=src,
        ) from None
    except LarkError as exc:  # pragma: no cover - any other lark failure
        raise DockerfileSyntaxError(f"syntax error: {exc}", filename=filename) from None
    assert isinstance(raws, list)
    builder = Builder(filename, pre.directives.escape, pre.source_lines)
    instructions: list[Instruction] = []
    for raw in raws:
        assert isinstance(raw, RawInstruction | RawOnBuild)
        ll = pre.lines[(raw.keyword.line or 1) - 1]
        instructions.append(builder.build(raw, ll))
    global_args, stages = _stages(instructions, filename, pre.source_lines)
    return Dockerfile(pre.directives, tuple(instructions), global_args, stages)


def _stages(
    instructions: list[Instruction], filename: str, source_lines: list[str]
) -> tuple[tuple[Arg, ...], tuple[Stage, ...]]:
    global_args: list[Arg] = []
    stages: list[Stage] = []
    current: list[Instruction] = []
    base: From | None = None
    names: set[str] = set()

    def error(message: str, inst: Instruction) -> StageError:
        loc = inst.location
        src = source_lines[loc.line - 1].rstrip("\r") if loc.line <= len(source_lines) else ""
        return StageError(
            message, filename=filename, line=loc.line, column=loc.column, source_line=src
        )

    def close() -> None:
        if base is not None:
            stages.append(Stage(len(stages), base.stage_name, base, tuple(current)))

    for inst in instructions:
        if isinstance(inst, From):
            close()
            base, current = inst, []
            if inst.stage_name is not None:
                if inst.stage_name in names:
                    raise error(f'duplicate stage name "{inst.stage_name}"', inst)
                names.add(inst.stage_name)
        elif base is None:
            if not isinstance(inst, Arg):
                raise error(
                    f"no build stage in current context: {inst.KEYWORD} comes before the "
                    "first FROM (only ARG may precede FROM)",
                    inst,
                )
            global_args.append(inst)
        else:
            current.append(inst)
    close()
    if not stages:
        raise error(
            "dockerfile contains no stages to build (no FROM instruction)", instructions[-1]
        )
    return tuple(global_args), tuple(stages)


def parse_file(path: str | os.PathLike[str]) -> Dockerfile:
    """Read and parse a Dockerfile; the error file name is the path as given."""
    p = Path(path)
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DockerfileSyntaxError(
            f"file is not valid UTF-8 (byte {exc.start})", filename=str(path)
        ) from None
    return parse(text, filename=str(path))
