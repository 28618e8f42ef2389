"""Parser directives: ``# syntax=``, ``# escape=`` and ``# check=`` lines at the top.

As in BuildKit (``frontend/dockerfile/parser/directives.go``), directives are only looked
for before the first instruction, comment or empty line: the first line that is not a
known directive ends the search. Names are case-insensitive; each may appear once.
``escape`` must be a backslash or a backtick; it changes the line-continuation character
and the escape character used to split words.
"""

from __future__ import annotations

import re

__all__ = ["DirectiveScanner", "DirectiveProblem", "KNOWN_DIRECTIVES"]

KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_DIRECTIVE_RE = re.compile(
    r"^#[ \t\v\f\r]*([a-zA-Z][a-zA-Z0-9]*)[ \t\v\f\r]*=[ \t\v\f\r]*(.+?)\s*$"
)


class DirectiveProblem(ValueError):
    """A directive line is invalid (duplicate, bad escape token)."""


class DirectiveScanner:
    """Feed lines in order with :meth:`feed` until :attr:`done`; read :attr:`found`."""

    __slots__ = ("done", "found", "escape")

    def __init__(self) -> None:
        self.done = False
        self.found: dict[str, str] = {}
        self.escape = "\\"

    def feed(self, line: str) -> bool:
        """Look at one line (left-trimmed, no newline). True if it was a directive."""
        if self.done:
            return False
        m = _DIRECTIVE_RE.match(line)
        if m is None:
            self.done = True
            return False
        name = m.group(1).lower()
        if name not in KNOWN_DIRECTIVES:
            self.done = True
            return False
        if name in self.found:
            raise DirectiveProblem(f"only one {name} parser directive can be used")
        value = m.group(2)
        if name == "escape":
            if value not in ("`", "\\"):
                raise DirectiveProblem(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
        self.found[name] = value
        return True
