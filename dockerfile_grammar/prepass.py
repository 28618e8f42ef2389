"""The pre-pass: what an LALR grammar cannot do on raw Dockerfile text.

It walks the physical lines once, as BuildKit's ``parser.Parse`` does, and hands the
grammar one *logical line* per instruction:

1. **Directives** (``# escape=`` ...) at the top of the file, via :mod:`.directives`.
   The escape character they pick drives steps 2 and the later word splitting.
2. **Continuations**: a line ending with the escape character (trailing blanks allowed)
   continues on the next line; the pieces are concatenated with nothing in between.
   Inside a continuation, comment lines are dropped and blank lines skipped. A
   continuation still open at end of file simply ends the instruction.
3. **Comments and blank lines** between instructions are dropped.
4. **Heredoc bodies**: when a RUN/COPY/ADD (also under ONBUILD) in non-JSON form has
   ``<<NAME`` words, the following lines up to a line equal to ``NAME`` (leading tabs
   ignored for ``<<-``) are that heredoc's content, in order of the words.

Each :class:`LogicalLine` keeps its first and last physical line, a column map back to the
source, and its heredocs, so every later error can point at the right line and column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .directives import DirectiveProblem, DirectiveScanner
from .errors import DockerfileSyntaxError
from .instructions import Directives, Heredoc
from .words import GO_SPACES, parse_json_array, shell_words_raw, split_flags, unquote_shell_word

__all__ = ["LogicalLine", "PrePassResult", "prepass"]

# BuildKit's reHeredoc; the blanks after "<<" come from the word splitter, which keeps
# "<<" and the blanks after it in one word ("<<  EOF" is a heredoc named EOF).
_HEREDOC_WORD_RE = re.compile(r"^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$")
_HEREDOC_KEYWORDS = frozenset(("run", "copy", "add"))
_SPACES = "".join(GO_SPACES)


@dataclass(slots=True)
class LogicalLine:
    """One instruction's text with continuations joined, plus where it came from."""

    text: str
    start_line: int
    end_line: int
    column: int  # 1-based column of the first character on start_line
    # (offset in text, physical line, 1-based column) for every joined piece
    pieces: list[tuple[int, int, int]]
    heredocs: list[Heredoc] = field(default_factory=list)

    def position(self, offset: int) -> tuple[int, int]:
        """Physical (line, column) of a 0-based offset in :attr:`text`."""
        if len(self.pieces) == 1:
            _, line, column = self.pieces[0]
            return line, column + offset
        best = self.pieces[0]
        for piece in self.pieces:
            if piece[0] <= offset:
                best = piece
            else:
                break
        return best[1], best[2] + (offset - best[0])


@dataclass(slots=True)
class PrePassResult:
    directives: Directives
    lines: list[LogicalLine]
    source_lines: list[str]


class HeredocProblem(ValueError):
    """A heredoc delimiter word cannot be read (an unterminated quote)."""


def _open_quote(text: str) -> str:
    """The quote character left open at the end of ``text`` ("" when balanced)."""
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = ""
        elif ch == "\\":
            i += 1
        elif quote == '"':
            if ch == '"':
                quote = ""
        elif ch in "'\"":
            quote = ch
        i += 1
    return quote


def parse_heredoc_word(word: str, strict: bool = False) -> tuple[str, bool, bool, int] | None:
    """(name, expand, chomp, fd) when ``word`` is a heredoc marker, else None.

    With ``strict``, a delimiter with an unterminated quote raises HeredocProblem (as
    BuildKit's parser does); otherwise such a word is simply not a heredoc.
    """
    m = _HEREDOC_WORD_RE.match(word)
    if m is None or not m.group(3):
        return None
    rest = m.group(3)
    quote = _open_quote(rest)
    if quote:
        if strict:
            kind = "single" if quote == "'" else "double"
            raise HeredocProblem(
                f"invalid heredoc delimiter {rest}: no matching {kind} quote"
            )
        return None
    if len(shell_words_raw(rest)) != 1:
        return None
    name = unquote_shell_word(rest)
    quotes_raw = rest.count("'") + rest.count('"')
    quotes_done = name.count("'") + name.count('"')
    fd = int(m.group(1)) if m.group(1) else 0
    return name, quotes_raw == quotes_done, m.group(2) == "-", fd


def heredoc_words(text: str) -> list[tuple[int, str, bool, bool, int]]:
    """Heredoc markers of a logical line: (argument position, name, expand, chomp, fd)."""
    found = []
    words = shell_words_raw(text)
    # position counts argument words only: skip the keyword(s) and leading flags
    skip = 1
    if words and words[0].lower() == "onbuild" and len(words) > 1:
        skip = 2
    while skip < len(words) and words[skip].startswith("--"):
        skip += 1
    for index, word in enumerate(words):
        parsed = parse_heredoc_word(word, strict=True)
        if parsed is not None:
            name, expand, chomp, fd = parsed
            found.append((max(index - skip, 0), name, expand, chomp, fd))
    return found


def may_contain_heredoc(text: str) -> bool:
    """BuildKit's canContainHeredoc: RUN/COPY/ADD (possibly under ONBUILD), not JSON form."""
    parts = text.split(None, 1)
    keyword = parts[0].lower()
    rest = parts[1] if len(parts) > 1 else ""
    if keyword == "onbuild":
        parts = rest.split(None, 1)
        if not parts:
            return False
        keyword = parts[0].lower()
        rest = parts[1] if len(parts) > 1 else ""
    if keyword not in _HEREDOC_KEYWORDS:
        return False
    _, args = split_flags(rest)
    try:
        return parse_json_array(args.strip(_SPACES)) is None
    except ValueError:
        return False


def prepass(text: str, filename: str) -> PrePassResult:
    """Split ``text`` into logical lines; raise DockerfileSyntaxError on lexical errors."""
    if text.startswith("\ufeff"):
        text = text[1:]
    physical = text.split("\n")
    ends_with_newline = physical[-1] == ""
    if ends_with_newline:
        physical.pop()
    count = len(physical)
    scanner = DirectiveScanner()
    lines: list[LogicalLine] = []

    def error(message: str, line: int, column: int = 1) -> DockerfileSyntaxError:
        src = physical[line - 1].rstrip("\r") if 0 < line <= count else ""
        return DockerfileSyntaxError(
            message, filename=filename, line=line, column=column, source_line=src
        )

    escape = "\\"
    cont_re = re.compile(r"^(.*)" + re.escape(escape) + r"[ \t]*$", re.S)
    i = 0
    while i < count:
        raw = physical[i].rstrip("\r\n")
        i += 1
        stripped = raw.lstrip(_SPACES)
        if not scanner.done:
            try:
                scanner.feed(stripped)
            except DirectiveProblem as exc:
                raise error(str(exc), i) from None
            if scanner.escape != escape:
                escape = scanner.escape
                cont_re = re.compile(r"^(.*)" + re.escape(escape) + r"[ \t]*$", re.S)
        if not stripped or stripped[0] == "#":
            continue
        start = i
        column = len(raw) - len(stripped) + 1
        pieces = [(0, start, column)]
        m = cont_re.match(stripped)
        if m is None:
            text = stripped
        else:
            chunks = [m.group(1)]
            size = len(chunks[0])
            while m is not None and i < count:
                raw = physical[i].rstrip("\r\n")
                i += 1
                lead = raw.lstrip(_SPACES)
                if not lead or lead[0] == "#":
                    continue
                m = cont_re.match(raw)
                piece = raw if m is None else m.group(1)
                pieces.append((size, i, 1))
                chunks.append(piece)
                size += len(piece)
            text = "".join(chunks)
        if not text.strip(_SPACES):
            continue
        logical = LogicalLine(text, start, i, column, pieces)
        if "<<" in text and may_contain_heredoc(text):
            i = _read_heredocs(physical, ends_with_newline, i, logical, error)
        lines.append(logical)
    directives = Directives(
        syntax=scanner.found.get("syntax"),
        escape=scanner.escape,
        check=scanner.found.get("check"),
        raw=tuple(scanner.found.items()),
    )
    return PrePassResult(directives, lines, physical)


def _read_heredocs(
    physical: list[str],
    ends_with_newline: bool,
    i: int,
    logical: LogicalLine,
    error: Callable[[str, int, int], DockerfileSyntaxError],
) -> int:
    """Consume the bodies of ``logical``'s heredocs from physical line index ``i`` on;
    return the index of the first line after the last terminator."""
    count = len(physical)
    text = logical.text
    markers = [k for k in range(len(text)) if text.startswith("<<", k)]
    try:
        words = heredoc_words(text)
    except HeredocProblem as exc:
        line_no, column_no = logical.position(markers[0] if markers else 0)
        raise error(str(exc), line_no, column_no) from None
    for number, (position, name, expand, chomp, fd) in enumerate(words):
        body: list[str] = []
        terminated = False
        while i < count:
            line = physical[i]
            i += 1
            candidate = line.rstrip("\r\n")
            if chomp:
                candidate = candidate.lstrip("\t")
            if candidate == name:
                terminated = True
                break
            newline = "\n" if (i < count or ends_with_newline) else ""
            body.append(line + newline)
        if not terminated:
            at = markers[number] if number < len(markers) else 0
            line_no, column_no = logical.position(at)
            raise error(
                f'unterminated heredoc "{name}": no line "{name}" before the end of the file',
                line_no,
                column_no,
            )
        logical.heredocs.append(Heredoc(name, "".join(body), expand, chomp, fd, position))
    logical.end_line = i
    return i
