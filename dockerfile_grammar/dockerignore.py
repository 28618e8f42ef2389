""".dockerignore parsing and matching with the semantics of moby/patternmatcher.

Reading (``ignorefile.ReadAll``): a UTF-8 BOM is dropped; a line whose *first* character
is ``#`` is a comment; other lines are trimmed of surrounding whitespace, blank ones
skipped; a leading ``!`` marks an exception; the rest is cleaned like Go's
``filepath.Clean`` and a leading ``/`` is removed (the context root is ``/``).

Matching (``PatternMatcher.MatchesOrParentMatches``): a path is excluded when the last
pattern that matches it, or matches one of its parent directories, is not an exception.
Patterns are Go ``filepath.Match`` globs (``*`` and ``?`` never cross ``/``, ``[...]``
classes with ``^`` negation, ``\\`` escapes) plus ``**``, which matches any number of
directories including none. Like patternmatcher, ``[!x]`` is a class holding ``!`` and
``x`` (Go has no ``!`` negation), and a pattern without wildcards must equal the path.

Matching and parsing are pure; :func:`find_ignore_file`, :func:`walk_context` and
:func:`walk_entries` touch the filesystem. :meth:`DockerIgnore.can_skip_dir` lets the walker
prune a directory without listing it when no exception could re-include anything inside.
:func:`compile_glob` is the same Go ``filepath.Match`` syntax for one path component, without
the ``**`` extension (what COPY source wildcards use).
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DockerIgnore",
    "DockerIgnoreError",
    "IgnorePattern",
    "MatchKind",
    "clean_path",
    "compile_glob",
    "find_ignore_file",
    "read_ignore_lines",
    "walk_context",
    "walk_entries",
]

_GO_SPACES = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"  # noqa: E501
_UTF8_BOM = "\ufeff"


class DockerIgnoreError(ValueError):
    """A .dockerignore pattern is malformed (bad glob syntax, or a lone ``!``)."""


class MatchKind(enum.Enum):
    """How a compiled pattern is tested, as patternmatcher classifies it."""

    EXACT = "exact"  # no wildcards: the path equals the pattern
    PREFIX = "prefix"  # "<literal>**": the path starts with <literal>
    SUFFIX = "suffix"  # "**<literal>": the path ends with <literal>
    REGEX = "regex"


def clean_path(path: str) -> str:
    """Go's ``path.Clean`` for slash-separated paths ("" becomes ".")."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def read_ignore_lines(text: str) -> list[str]:
    """Turn .dockerignore text into patterns as ``ignorefile.ReadAll`` does.

    Exceptions keep their ``!`` prefix. No validation happens here.
    """
    patterns: list[str] = []
    for number, raw in enumerate(text.split("\n")):
        line = raw[:-1] if raw.endswith("\r") else raw
        if number == 0 and line.startswith(_UTF8_BOM):
            line = line[1:]
        if line.startswith("#"):
            continue
        line = line.strip(_GO_SPACES)
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip(_GO_SPACES)
        if line:
            line = clean_path(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append("!" + line if invert else line)
    return patterns


@dataclass(frozen=True, slots=True)
class IgnorePattern:
    """One compiled pattern. ``text`` is cleaned and has no ``!``; ``exclusion`` marks
    an exception (a ``!`` line) that re-includes what it matches."""

    text: str
    exclusion: bool
    kind: MatchKind
    regex: re.Pattern[str] | None
    # True when a character class may match "/" or "/" is escaped, so the pattern's
    # components cannot be compared one by one with a path's.
    spans_separator: bool

    @classmethod
    def compile(cls, raw: str) -> IgnorePattern:
        """Compile one pattern line (as patternmatcher.New does); raises DockerIgnoreError."""
        text = raw.strip(_GO_SPACES)
        text = clean_path(text)
        exclusion = text.startswith("!")
        if exclusion:
            if len(text) == 1:
                raise DockerIgnoreError('illegal exclusion pattern: "!"')
            text = text[1:]
        _check_go_glob(text)
        kind, regex_source, spans = _translate(text)
        regex = re.compile(regex_source) if kind is MatchKind.REGEX else None
        return cls(text, exclusion, kind, regex, spans)

    def match(self, path: str) -> bool:
        """Whether this pattern alone matches ``path`` (no parent-directory matching)."""
        if self.kind is MatchKind.EXACT:
            return path == self.text
        if self.kind is MatchKind.PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind is MatchKind.SUFFIX:
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.fullmatch(path) is not None

    def could_match_below(self, directory: str) -> bool:
        """Conservatively: could this pattern match some path strictly inside ``directory``?"""
        below = directory + "/"
        if self.kind is MatchKind.EXACT:
            return self.text.startswith(below)
        if self.kind is MatchKind.PREFIX:
            literal = self.text[:-2]
            return literal.startswith(below) or below.startswith(literal)
        if self.kind is MatchKind.SUFFIX or self.spans_separator:
            return True
        dir_parts = directory.split("/")
        for index, component in enumerate(self.text.split("/")):
            if "**" in component or index >= len(dir_parts):
                return True
            if not _component_matches(component, dir_parts[index]):
                return False
        return False


@dataclass(frozen=True, slots=True)
class DockerIgnore:
    """An ordered list of patterns; the last one matching a path (or a parent) decides."""

    patterns: tuple[IgnorePattern, ...] = ()

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        """Parse .dockerignore file contents; raises DockerIgnoreError on a bad pattern."""
        return cls.from_patterns(read_ignore_lines(text))

    @classmethod
    def from_patterns(cls, patterns: Iterable[str]) -> DockerIgnore:
        """Compile already-read pattern lines (``!`` prefix for exceptions)."""
        compiled = [IgnorePattern.compile(p) for p in patterns if p.strip(_GO_SPACES)]
        return cls(tuple(compiled))

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def matches(self, relpath: str) -> bool:
        """True when ``relpath`` (slash-separated, relative to the context) is excluded.

        The context root itself ("", ".", "/") is never excluded.
        """
        path = _normalize(relpath)
        if path == ".":
            return False
        return self.excluded(self.state_for(path))

    def can_skip_dir(self, relpath: str) -> bool:
        """True when directory ``relpath`` is excluded and nothing inside it can be
        re-included by a later exception, so a walker may skip it unread."""
        path = _normalize(relpath)
        if path == ".":
            return False
        return self.can_skip_dir_state(path, self.state_for(path))

    def state_for(self, path: str, parent_state: Sequence[bool] | None = None) -> tuple[bool, ...]:
        """Per pattern: does it match ``path`` or one of its parent directories?

        ``parent_state`` (the state of the parent directory) avoids re-testing parents.
        ``path`` must already be clean and relative.
        """
        if parent_state is None:
            parents = _parents(path)
            return tuple(
                p.match(path) or any(p.match(parent) for parent in parents) for p in self.patterns
            )
        return tuple(
            inherited or p.match(path)
            for inherited, p in zip(parent_state, self.patterns, strict=True)
        )

    def excluded(self, state: Sequence[bool]) -> bool:
        """Decide from a :meth:`state_for` result: is the path excluded?"""
        for pattern, matched in zip(reversed(self.patterns), reversed(state), strict=True):
            if matched:
                return not pattern.exclusion
        return False

    def can_skip_dir_state(self, path: str, state: Sequence[bool]) -> bool:
        """:meth:`can_skip_dir` for a clean relative ``path`` whose :meth:`state_for`
        result is already known (as during a walk)."""
        last = _last_true(state)
        if last is None or self.patterns[last].exclusion:
            return False
        return not any(p.exclusion and p.could_match_below(path) for p in self.patterns[last + 1 :])


def find_ignore_file(context_dir: Path, dockerfile_path: Path | None = None) -> Path | None:
    """The ignore file BuildKit would use: ``<Dockerfile>.dockerignore`` next to the
    Dockerfile when it exists, else ``<context>/.dockerignore``, else None.

    A relative ``dockerfile_path`` is taken relative to the current directory, as
    ``-f`` is.
    """
    if dockerfile_path is not None:
        dockerfile = Path(dockerfile_path)
        specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
        if specific.is_file():
            return specific
    shared = Path(context_dir) / ".dockerignore"
    return shared if shared.is_file() else None


def walk_context(root: Path, ignore: DockerIgnore) -> Iterator[str]:
    """Yield the included entries under ``root`` as slash-separated relative paths.

    Files, directories and symlinks are yielded (symlinks are never followed), parents
    before children, siblings sorted by name. An excluded directory is listed only when
    an exception might re-include something inside it; it is then yielded just before
    its first included descendant, so every yielded path has its parents yielded too.
    """
    for relpath, _ in walk_entries(root, ignore):
        yield relpath


def walk_entries(
    root: Path | str, ignore: DockerIgnore, below: str = ""
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """:func:`walk_context` strictly below the directory ``below`` (a clean relative path,
    "" for the root), yielding ``(relpath, DirEntry)`` pairs in the same order, so a caller
    that needs each entry's lstat (``DirEntry.stat(follow_symlinks=False)``) gets it without
    a second lookup. ``relpath`` is relative to ``root``, not to ``below``.
    """
    top = os.fspath(root)
    if below:
        state = ignore.state_for(below)
        top, prefix = f"{top}/{below}", below + "/"
    else:
        state, prefix = tuple(False for _ in ignore.patterns), ""
    yield from _walk(top, prefix, state, ignore, [])


def _walk(
    directory: str,
    prefix: str,
    state: tuple[bool, ...],
    ignore: DockerIgnore,
    pending: list[tuple[str, os.DirEntry[str]]],
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    with os.scandir(directory) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        relpath = prefix + entry.name
        # no patterns: the state is () and stays so
        entry_state = ignore.state_for(relpath, state) if state else state
        is_dir = entry.is_dir(follow_symlinks=False)
        if not ignore.excluded(entry_state):
            yield from pending
            pending.clear()
            yield relpath, entry
            if is_dir:
                yield from _walk(entry.path, relpath + "/", entry_state, ignore, pending)
        elif is_dir and not ignore.can_skip_dir_state(relpath, entry_state):
            pending.append((relpath, entry))
            yield from _walk(entry.path, relpath + "/", entry_state, ignore, pending)
            if pending and pending[-1][0] == relpath:
                pending.pop()


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Go's ``filepath.Match`` for one path component, as a regex for ``fullmatch``.

    ``*`` and ``?`` never match ``/``, ``[...]`` / ``[^...]`` are classes, ``\\`` escapes,
    and ``**`` is just two ``*`` (no directory meaning). Raises DockerIgnoreError for what Go
    reports as ErrBadPattern.
    """
    _check_go_glob(pattern)
    _, source, _ = _translate(pattern, double_star=False)
    return re.compile(source, re.DOTALL)


# -- helpers -------------------------------------------------------------------------------


def _normalize(relpath: str) -> str:
    path = clean_path(relpath.replace(os.sep, "/") if os.sep != "/" else relpath)
    while path.startswith("/"):
        path = path[1:] or "."
    return path


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _last_true(state: Sequence[bool]) -> int | None:
    for index in range(len(state) - 1, -1, -1):
        if state[index]:
            return index
    return None


def _component_matches(component: str, name: str) -> bool:
    kind, source, _ = _translate(component)
    if kind is MatchKind.EXACT:
        return component == name
    return re.fullmatch(source, name) is not None


def _check_go_glob(pattern: str) -> None:
    """Reject what Go's filepath.Match reports as ErrBadPattern."""
    i, n = 0, len(pattern)

    def bad() -> DockerIgnoreError:
        return DockerIgnoreError(f"syntax error in pattern: {pattern!r}")

    def class_char(at: int) -> tuple[str, int]:
        if at >= n or pattern[at] in "-]":
            raise bad()
        if pattern[at] == "\\":
            at += 1
            if at >= n:
                raise bad()
        return pattern[at], at + 1

    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise bad()
            i += 2
        elif ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and pattern[i] == "]" and ranges > 0:
                    i += 1
                    break
                low, i = class_char(i)
                if i < n and pattern[i] == "-":
                    high, i = class_char(i + 1)
                    if high < low:
                        raise bad()
                ranges += 1
        else:
            i += 1


def _translate(pattern: str, double_star: bool = True) -> tuple[MatchKind, str, bool]:
    """Classify ``pattern`` like patternmatcher's compile and build a Python regex
    (for fullmatch) with the same meaning; also report whether it may span a "/".
    Without ``double_star``, ``**`` is two plain ``*`` (Go's filepath.Match)."""
    out: list[str] = []
    kind = MatchKind.EXACT
    spans = False
    i, n, step = 0, len(pattern), 0
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if double_star and i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    if kind is MatchKind.EXACT:
                        kind = MatchKind.PREFIX
                    else:
                        out.append(".*")
                        kind = MatchKind.REGEX
                else:
                    out.append("(?:.*/)?")
                    kind = MatchKind.REGEX
                if step == 0:
                    kind = MatchKind.SUFFIX
            else:
                out.append("[^/]*")
                kind = MatchKind.REGEX
        elif ch == "?":
            out.append("[^/]")
            kind = MatchKind.REGEX
        elif ch == "\\":
            if i < n:
                if pattern[i] == "/":
                    spans = True
                out.append(re.escape(pattern[i]))
                i += 1
                kind = MatchKind.REGEX
            else:
                out.append(re.escape("\\"))
        elif ch == "[":
            class_source, i, class_spans = _translate_class(pattern, i)
            out.append(class_source)
            spans = spans or class_spans
            kind = MatchKind.REGEX
        elif ch == "]":
            out.append(re.escape(ch))
            kind = MatchKind.REGEX
        else:
            out.append(re.escape(ch))
        step += 1
    return kind, "".join(out), spans


def _translate_class(pattern: str, i: int) -> tuple[str, int, bool]:
    """Translate the class starting after ``[`` at ``i``; returns (regex, next index,
    may match "/"). The pattern has already passed :func:`_check_go_glob`."""
    n = len(pattern)
    negated = i < n and pattern[i] == "^"
    if negated:
        i += 1
    items: list[str] = []
    spans = negated
    first = True
    while i < n and not (pattern[i] == "]" and not first):
        first = False
        low = pattern[i + 1] if pattern[i] == "\\" else pattern[i]
        i += 2 if pattern[i] == "\\" else 1
        high = low
        if i + 1 < n and pattern[i] == "-" and pattern[i + 1] != "]":
            i += 1
            high = pattern[i + 1] if pattern[i] == "\\" else pattern[i]
            i += 2 if pattern[i] == "\\" else 1
        spans = spans or low <= "/" <= high
        items.append(re.escape(low) if low == high else f"{re.escape(low)}-{re.escape(high)}")
    return "[" + ("^" if negated else "") + "".join(items) + "]", i + 1, spans
