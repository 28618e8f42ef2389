"""Errors raised by the Dockerfile front end.

Every problem found while reading a Dockerfile is a :class:`DockerfileError` carrying the
file name, a 1-based line and column, a one-line message and the offending source line.
``str(err)`` reads ``Dockerfile:12:5: unknown instruction "RUNN" (did you mean RUN?)``.
No exception of the underlying parser library (lark) ever escapes this package.

Hierarchy::

    DockerfileError
     +-- DockerfileSyntaxError     lexical problems: directives, heredocs, JSON arrays
     +-- UnknownInstructionError   a keyword that is not a Dockerfile instruction
     +-- FlagError                 unknown, misplaced, duplicated or malformed --flags
     +-- ArgumentError             missing / extra / malformed instruction arguments
     +-- StageError                instructions before FROM, duplicate stage names
"""

from __future__ import annotations

from .instructions import Location

__all__ = [
    "ArgumentError",
    "DockerfileError",
    "DockerfileSyntaxError",
    "FlagError",
    "StageError",
    "UnknownInstructionError",
]


class DockerfileError(Exception):
    """A Dockerfile could not be parsed; points at ``filename:line:column``."""

    def __init__(
        self,
        message: str,
        *,
        filename: str = "Dockerfile",
        line: int = 1,
        column: int = 1,
        source_line: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.line = line
        self.column = column
        self.source_line = source_line

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.column}: {self.message}"

    @property
    def location(self) -> Location:
        """Where the error points, as the Location type instructions use."""
        return Location(self.filename, self.line, self.line, self.column)

    def excerpt(self) -> str:
        """The offending line with a caret under the column (empty if unknown)."""
        if not self.source_line:
            return ""
        pad = "".join(c if c == "\t" else " " for c in self.source_line[: self.column - 1])
        return f"{self.source_line}\n{pad}^"


class DockerfileSyntaxError(DockerfileError):
    """Lexical problem: bad directive, unterminated heredoc, non-string JSON array."""


class UnknownInstructionError(DockerfileError):
    """The first word of an instruction is not a Dockerfile keyword."""


class FlagError(DockerfileError):
    """A ``--flag`` is unknown for its instruction, duplicated or has a bad value."""


class ArgumentError(DockerfileError):
    """An instruction's arguments are missing, too many or malformed."""


class StageError(DockerfileError):
    """Stage structure is wrong: instruction before FROM, duplicate stage name."""
