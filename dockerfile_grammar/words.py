"""Docker's word-level splitting rules, applied after the Lark parse.

Each instruction splits its argument text its own way (BuildKit
``frontend/dockerfile/parser/line_parsers.go``):

* :func:`parse_words` - ARG, ENV, LABEL: whitespace-separated words that keep their
  quotes and escape characters (those are removed later, at expansion time).
* :func:`split_whitespace` - FROM, EXPOSE and the non-JSON form of COPY/ADD/VOLUME:
  plain split on ASCII blanks, no quoting at all.
* :func:`parse_json_array` - the exec form: a JSON array of strings, else ``None`` so the
  caller falls back to the shell form (a non-string element is an error).
* :func:`unquote_flag` - a ``--flag`` word with quotes and backslashes removed.
* :func:`shell_words_raw` - the heredoc scanner's view of a line: words split on
  unquoted blanks, quotes and escapes kept.
"""

from __future__ import annotations

import json
import re

__all__ = [
    "GO_SPACES",
    "NotStringArrayError",
    "parse_json_array",
    "parse_words",
    "shell_words_raw",
    "split_whitespace",
    "unquote_flag",
    "unquote_shell_word",
]

# Go's unicode.IsSpace
GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_GO_SPACE_CHARS = "".join(sorted(GO_SPACES))
_GO_SPACE_CLASS = "[" + "".join(sorted(GO_SPACES)).replace("\\", "\\\\") + "]+"
_GO_SPACE_RE = re.compile(_GO_SPACE_CLASS)
_BLANKS_RE = re.compile(r"[\t\v\f\r ]+")


def go_trim(text: str) -> str:
    """strings.TrimSpace."""
    return text.strip(_GO_SPACE_CHARS)


def split_whitespace(rest: str) -> list[str]:
    """reWhitespace.Split(rest, -1) on already trimmed text; [] for empty text."""
    if not rest:
        return []
    return _BLANKS_RE.split(rest)


def parse_words(rest: str, escape: str) -> list[str]:
    """Split on unquoted, unescaped whitespace, keeping quotes and escape characters.

    Inside single quotes the escape character is literal; a trailing escape character
    is dropped; an unterminated quote runs to the end of the text.
    """
    if '"' not in rest and "'" not in rest and escape not in rest:
        return [w for w in _GO_SPACE_RE.split(rest) if w]
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    blank_ok = False
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    i += 1
                    continue
                word.append(ch)
                i += 1
                ch = rest[i]
            word.append(ch)
            i += 1
            continue
        if not in_word:
            if ch in GO_SPACES:
                i += 1
                continue
            in_word = True
        if ch in GO_SPACES:
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            blank_ok = True
        elif ch == escape:
            if i + 1 == n:
                i += 1
                continue
            word.append(ch)
            i += 1
            ch = rest[i]
        word.append(ch)
        i += 1
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


class NotStringArrayError(ValueError):
    """A JSON array with a non-string element (Docker refuses it, no shell fallback)."""


def _not_json(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # Python accepts NaN/Infinity, Go does not


def parse_json_array(rest: str) -> list[str] | None:
    """The strings of a JSON array, or None when ``rest`` is not a JSON array."""
    rest = rest.lstrip(_GO_SPACE_CHARS)
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_not_json)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise NotStringArrayError(
            "when using JSON array syntax, arrays must be comprised of strings only"
        )
    return value


def unquote_flag(word: str) -> str:
    """A flag word as BuildKit's extractBuilderFlags keeps it: quotes removed, a
    backslash makes the next character literal (inside quotes too)."""
    if '"' not in word and "'" not in word and "\\" not in word:
        return word
    out: list[str] = []
    quote = ""
    i, n = 0, len(word)
    while i < n:
        ch = word[i]
        if not quote and ch in "'\"":
            quote = ch
        elif quote and ch == quote:
            quote = ""
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                out.append(word[i])
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def split_flags(rest: str) -> tuple[list[str], str]:
    """Leading ``--flag`` words of ``rest`` (raw) and the remaining text; ``--`` alone
    ends the flags and is dropped."""
    flags: list[str] = []
    pos = 0
    n = len(rest)
    while True:
        while pos < n and rest[pos] in GO_SPACES:
            pos += 1
        if not rest.startswith("--", pos):
            return flags, rest[pos:]
        start = pos
        quote = ""
        while pos < n:
            ch = rest[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == "\\":
                    pos += 1
            elif ch in GO_SPACES:
                break
            elif ch in "'\"":
                quote = ch
            elif ch == "\\":
                pos += 1
            pos += 1
        word = rest[start:pos]
        if word == "--":
            return flags, rest[pos:].lstrip(_GO_SPACE_CHARS)
        flags.append(word)


def shell_words_raw(line: str) -> list[str]:
    """Words of ``line`` split on unquoted, unescaped blanks; quotes and backslashes kept
    (BuildKit's shell lexer with RawQuotes and RawEscapes, as used to find heredocs)."""
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if quote:
            word.append(ch)
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"' and i + 1 < n:
                i += 1
                word.append(line[i])
            i += 1
            continue
        if ch in " \t\r\n\v\f":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            i += 1
            continue
        in_word = True
        if ch == "<" and line.startswith("<", i + 1):
            # like BuildKit's lexer: "<<" keeps the blanks after it in the same word
            word.append("<<")
            i += 2
            while i < n and line[i] in " \t\r\n":
                word.append(line[i])
                i += 1
            continue
        word.append(ch)
        if ch in "'\"":
            quote = ch
        elif ch == "\\" and i + 1 < n:
            i += 1
            word.append(line[i])
        i += 1
    if in_word:
        words.append("".join(word))
    return words


def unquote_shell_word(word: str) -> str:
    """Quotes and backslash escapes removed, as the shell lexer does without RawQuotes
    (no variable expansion)."""
    out: list[str] = []
    quote = ""
    i, n = 0, len(word)
    while i < n:
        ch = word[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                out.append(ch)
        elif quote == '"':
            if ch == '"':
                quote = ""
            elif ch == "\\" and i + 1 < n and word[i + 1] in '"\\$`':
                i += 1
                out.append(word[i])
            else:
                out.append(ch)
        elif ch in "'\"":
            quote = ch
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                out.append(word[i])
        else:
            out.append(ch)
        i += 1
    return "".join(out)
