"""Dockerfile word expansion: variables, quotes and escapes, as BuildKit's shell lexer does.

This module is pure (no I/O). It follows the semantics of BuildKit's
``frontend/dockerfile/shell/lex.go`` (ProcessWord / ProcessWords):

* ``$name`` and ``${name}``; a name is letters, digits and ``_`` (Unicode letters and
  decimal digits count), or a run of digits (``$12``), or one special parameter
  character out of ``@*#?-$!0``. ``$`` followed by anything else stays a literal ``$``.
  Unset variables expand to the empty string (unless ``skip_unset``).
* ``${v:-w}`` / ``${v-w}``: ``w`` when ``v`` is unset (``:`` also when empty).
* ``${v:+w}`` / ``${v+w}``: ``w`` when ``v`` is set (``:`` and non-empty), else empty.
* ``${v:?m}`` / ``${v?m}``: ``v``'s value, or :class:`ExpansionError` carrying ``m``.
* ``${v#p}`` ``${v##p}`` ``${v%p}`` ``${v%%p}``: remove the shortest/longest prefix/suffix
  matching the shell pattern ``p`` (``*`` and ``?`` wildcards, ``\\`` escapes; no
  bracket classes).
* ``${v/p/r}`` and ``${v//p/r}``: replace the first / every (greedy) match of ``p``.
* The word parts of a modifier are expanded recursively before use.
* Single quotes keep everything literally (no escapes inside). Double quotes keep
  everything but ``$`` expansions; inside them the escape character only escapes ``"``,
  ``$`` and itself. Outside quotes the escape character makes the next character
  literal; a trailing escape character is dropped.
* Unterminated quotes and braces, ``${}``, ``${:...}``, unknown modifiers (``${v=x}``):
  :class:`ExpansionError`.

Word splitting (:func:`expand_words`) happens after expansion, on unquoted and unescaped
whitespace, with whitespace coming from expanded variables also splitting; empty words
are dropped.

A deliberate difference from BuildKit: in ``skip_unset`` mode an unset ``${v//p/r}`` is
kept as ``${v//p/r}`` (BuildKit drops one ``/``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "ExpansionError",
    "ExpansionResult",
    "expand",
    "expand_words",
    "process_word",
    "referenced_names",
]

_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# Go's unicode.IsSpace: Latin-1 spaces plus the Unicode White_Space property.
_GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class ExpansionError(ValueError):
    """A word could not be expanded: bad syntax, or a ``${v?msg}`` check failed.

    ``word`` is the whole input and ``reason`` the one-line cause; ``str()`` reads like
    BuildKit's message: ``failed to process "<word>": <reason>``.
    """

    def __init__(self, word: str, reason: str) -> None:
        self.word = word
        self.reason = reason
        super().__init__(f"failed to process {_go_quote(word)}: {reason}")


@dataclass(frozen=True, slots=True)
class ExpansionResult:
    """The outcome of expanding one piece of text.

    ``value`` is the single-word result (ProcessWord), ``words`` the whitespace-split
    result (ProcessWords), ``matched`` the variable names that were looked up and found,
    ``unmatched`` those looked up and not found.
    """

    value: str
    words: tuple[str, ...]
    matched: frozenset[str]
    unmatched: frozenset[str]


def process_word(
    text: str,
    env: Mapping[str, str],
    *,
    escape: str = "\\",
    skip_unset: bool = False,
    raw_quotes: bool = False,
    raw_escapes: bool = False,
    process_quotes: bool = True,
) -> ExpansionResult:
    """Expand ``text`` against ``env`` and report value, words and the names looked up.

    Options mirror BuildKit's Lex fields: ``skip_unset`` leaves references to unset
    variables as written; ``raw_quotes`` keeps quote characters in the output;
    ``raw_escapes`` keeps escape characters; ``process_quotes=False`` treats quotes as
    ordinary characters (used for heredoc bodies). Raises :class:`ExpansionError`.
    """
    if len(escape) != 1:
        raise ValueError(f"escape must be one character, got {escape!r}")
    lexer = _Lexer(text, env, escape, skip_unset, raw_quotes, raw_escapes, process_quotes)
    try:
        value, words = lexer.process_until(None, raw_escapes)
    except _Failure as failure:
        raise ExpansionError(text, failure.reason) from None
    return ExpansionResult(
        value, tuple(words), frozenset(lexer.matched), frozenset(lexer.unmatched)
    )


def expand(
    word: str,
    env: Mapping[str, str],
    *,
    escape: str = "\\",
    skip_unset: bool = False,
    process_quotes: bool = True,
) -> str:
    """Expand one word (BuildKit ProcessWord): variables substituted, quotes removed.

    Whitespace is kept. Raises :class:`ExpansionError` on bad syntax or a failed
    ``${v?msg}`` check.
    """
    if not _needs_work(word, escape, process_quotes):
        return word
    return process_word(
        word, env, escape=escape, skip_unset=skip_unset, process_quotes=process_quotes
    ).value


def expand_words(
    text: str,
    env: Mapping[str, str],
    *,
    escape: str = "\\",
    skip_unset: bool = False,
) -> list[str]:
    """Expand and split on unquoted whitespace (BuildKit ProcessWords, e.g. for EXPOSE).

    Whitespace produced by a variable expansion splits too; quoted or escaped whitespace
    does not. Empty words are dropped, so ``""`` yields no word.
    """
    return list(process_word(text, env, escape=escape, skip_unset=skip_unset).words)


def referenced_names(word: str, escape: str = "\\") -> frozenset[str]:
    """Every variable name ``word`` looks up when expanded, whatever the environment.

    Nested modifier words are always expanded by the lexer, so the set does not depend
    on the values. ``${v?msg}`` checks are not enforced here. Raises
    :class:`ExpansionError` only for syntax errors.
    """
    if "$" not in word:
        return frozenset()
    lexer = _Lexer(word, {}, escape, False, False, False, True)
    lexer.collect_only = True
    try:
        lexer.process_until(None, False)
    except _Failure as failure:
        raise ExpansionError(word, failure.reason) from None
    return frozenset(lexer.unmatched | lexer.matched)


def _needs_work(text: str, escape: str, process_quotes: bool) -> bool:
    if "$" in text or escape in text:
        return True
    return process_quotes and ("'" in text or '"' in text)


def _is_name_char(ch: str) -> bool:
    return ch.isalpha() or ch.isdecimal() or ch == "_"


class _Failure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Words:
    """Accumulates ProcessWords output the way BuildKit's wordsStruct does."""

    __slots__ = ("word", "words", "in_word")

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in _GO_SPACES:
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def finish(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Lexer:
    """One expansion run over ``text``; ``pos`` is the scanner position."""

    def __init__(
        self,
        text: str,
        env: Mapping[str, str],
        escape: str,
        skip_unset: bool,
        raw_quotes: bool,
        raw_escapes: bool,
        process_quotes: bool,
    ) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.skip_unset = skip_unset
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.process_quotes = process_quotes
        self.collect_only = False
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    # -- scanner ---------------------------------------------------------------------
    def peek(self) -> str:
        """The next character, or "" at the end."""
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        """Consume and return the next character, or "" at the end."""
        if self.pos >= len(self.text):
            return ""
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    # -- grammar ---------------------------------------------------------------------
    def process_until(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        """Process up to (and consuming) ``stop``, or to the end when ``stop`` is None."""
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._process_until(stop)
        finally:
            self.raw_escapes = saved

    def _process_until(self, stop: str | None) -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words()
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if stop is not None and ch == stop:
                self.pos += 1
                return "".join(out), words.finish()
            if ch == "$":
                piece = self.dollar()
                out.append(piece)
                words.add_string(piece)
            elif self.process_quotes and ch == "'":
                piece = self.single_quoted()
                out.append(piece)
                words.add_raw(piece)
            elif self.process_quotes and ch == '"':
                piece = self.double_quoted()
                out.append(piece)
                words.add_raw(piece)
            else:
                self.pos += 1
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        out.append(ch)
                    ch = self.next()
                    if not ch:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                out.append(ch)
        if stop is not None:
            raise _Failure(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.finish()

    def single_quoted(self) -> str:
        quote = self.next()
        out = [quote] if self.raw_quotes else []
        while True:
            ch = self.next()
            if not ch:
                raise _Failure(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quoted(self) -> str:
        quote = self.next()
        out = [quote] if self.raw_quotes else []
        while True:
            ch = self.peek()
            if not ch:
                raise _Failure(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.pos += 1
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if not following:
                    continue  # a lone escape at the end of the word is dropped
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        start = self.pos
        text = self.text
        if start < len(text):
            first = text[start]
            if first.isdecimal():
                end = start
                while end < len(text) and text[end].isdecimal():
                    end += 1
                self.pos = end
                return text[start:end]
            if first in _SPECIAL_PARAMS:
                self.pos += 1
                return first
        end = start
        while end < len(text) and _is_name_char(text[end]):
            end += 1
        self.pos = end
        return text[start:end]

    def lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def dollar(self) -> str:
        self.pos += 1  # the "$"
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.lookup(name)
            if not found and self.skip_unset:
                return "$" + name
            return value

        self.pos += 1  # the "{"
        ch = self.peek()
        if not ch:
            raise _Failure("syntax error: missing '}'")
        if ch in "{}:":
            raise _Failure("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if not ch:
            raise _Failure("syntax error: missing '}'")
        if ch == "}":
            value, found = self.lookup(name)
            if not found and self.skip_unset:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self.replace(name)
        modifier = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            modifier += ch
        elif ch not in "+-?#%":
            raise _Failure(f"unsupported modifier ({modifier}) in substitution")
        word = self.modifier_word(ch)  # after ":" BuildKit scans the word first
        if not ch or ch not in "+-?#%":
            raise _Failure(f"unsupported modifier ({modifier}) in substitution")
        value, found = self.lookup(name)
        if self.skip_unset and not found:
            return "${" + name + modifier + word + "}"
        if self.collect_only:
            return ""
        unset = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if not found:
                raise _Failure(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _Failure(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = False
        if word.startswith(ch):
            greedy = True
            word = word[1:]
        if ch == "%":
            return _trim_suffix(word, value, greedy)
        return _trim_prefix(word, value, greedy)

    def modifier_word(self, modifier: str) -> str:
        try:
            word, _ = self.process_until("}", modifier in ("#", "%"))
        except _Failure:
            if not self.peek():
                raise _Failure("syntax error: missing '}'") from None
            raise
        return word

    def replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.pos += 1
        try:
            pattern, _ = self.process_until("/", True)
        except _Failure:
            if not self.peek():
                raise _Failure("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.process_until("}", True)
        except _Failure:
            if not self.peek():
                raise _Failure("syntax error: missing '}'") from None
            raise
        value, found = self.lookup(name)
        if self.collect_only:
            return ""
        if self.skip_unset and not found:
            slashes = "//" if replace_all else "/"
            return "${" + name + slashes + pattern + "/" + replacement + "}"
        regex = _shell_pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return _go_replace_all(regex, value, replacement)
        found_match = regex.search(value)
        if found_match is None:
            return value
        return value[: found_match.start()] + replacement + value[found_match.end() :]


# -- shell patterns (${v#p}, ${v%p}, ${v/p/r}) ------------------------------------------
_REGEX_META = frozenset("[]{}.+()|^$")


def _shell_pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """Compile a ``*``/``?`` shell pattern; ``\\`` escapes ``*``, ``?``, ``\\``, ``}``, ``/``."""
    star = ".*" if greedy else ".*?"
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue  # the escape belonged to the ${} syntax, not to the pattern
            i += 1
            if following not in ("*", "?", "\\"):
                raise _Failure(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{following}'"
                )
            out.append("\\" + following)
        elif ch in _REGEX_META:
            out.append("\\" + ch)
        else:
            out.append(re.escape(ch) if not ch.isalnum() else ch)
    return re.compile("".join(out))


def _pattern_units(pattern: str) -> Iterable[str]:
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            yield pattern[i : i + 2]
            i += 2
        else:
            yield pattern[i]
            i += 1


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    found = _shell_pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[found.end() :] if found else value


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # Regexes find leftmost matches, so reverse both (keeping escape pairs in order).
    reversed_pattern = "".join(reversed(list(_pattern_units(pattern))))
    return _trim_prefix(reversed_pattern, value[::-1], greedy)[::-1]


_GO_TEMPLATE = re.compile(r"\$(?:\$|\{(\w+)\}|(\w+))")


def _go_template(replacement: str, whole: str) -> str:
    """Go's Regexp.Expand for a pattern without groups: ``$0`` is the match, ``$$`` a ``$``."""
    if "$" not in replacement:
        return replacement

    def sub(found: re.Match[str]) -> str:
        if found.group(0) == "$$":
            return "$"
        ref = found.group(1) or found.group(2) or ""
        return whole if ref.isdigit() and int(ref) == 0 else ""

    return _GO_TEMPLATE.sub(sub, replacement)


def _go_replace_all(regex: re.Pattern[str], value: str, replacement: str) -> str:
    """Go's ReplaceAllString: empty matches right after a match are not replaced."""
    out: list[str] = []
    last_end = 0
    search_pos = 0
    while search_pos <= len(value):
        found = regex.search(value, search_pos)
        if found is None:
            break
        start, end = found.span()
        out.append(value[last_end:start])
        if end > last_end or start == 0:
            out.append(_go_template(replacement, found.group(0)))
        last_end = end
        search_pos = search_pos + 1 if search_pos + 1 > end else end
    out.append(value[last_end:])
    return "".join(out)


def _go_quote(text: str) -> str:
    """Approximate Go's %q: double quotes, backslash escapes for quotes and controls."""
    return '"' + "".join(_go_quote_char(ch) for ch in text) + '"'


_GO_QUOTE_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _go_quote_char(ch: str) -> str:
    if ch in _GO_QUOTE_ESCAPES:
        return _GO_QUOTE_ESCAPES[ch]
    if ch.isprintable():
        return ch
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
