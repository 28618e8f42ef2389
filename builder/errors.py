"""Builder error categories (after containerd's errdefs) and the concrete errors below them.

    StrataError
     ├── NotFound              (exit 3)  missing image, blob, stage, file
     ├── AlreadyExists         (exit 4)
     ├── InvalidArgument       (exit 2)  bad flags, bad references, hostile archives
     │    └── LayerRejected             a layer tar that breaks a safety rule
     ├── FailedPrecondition    (exit 5)
     │    ├── DigestMismatch            content did not hash to what it claimed
     │    └── CacheCorrupt
     ├── StepFailed            (exit 1)  a RUN exited non-zero (carries step and output tail)
     └── Unavailable           (exit 6)  a registry or runtime could not be reached
Callers catch the category; only builder/cli.py turns errors into messages and exit codes.
"""

from __future__ import annotations


class StrataError(Exception):
    exit_code: int = 1


class NotFound(StrataError):
    exit_code = 3


class AlreadyExists(StrataError):
    exit_code = 4


class InvalidArgument(StrataError):
    exit_code = 2


class LayerRejected(InvalidArgument):
    """A layer archive broke a safety rule (escape, bad whiteout, over a limit)."""


class FailedPrecondition(StrataError):
    exit_code = 5


class DigestMismatch(FailedPrecondition):
    def __init__(self, expected: str, actual: str, what: str = "content") -> None:
        super().__init__(f"{what} digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class CacheCorrupt(FailedPrecondition):
    pass


class StepFailed(StrataError):
    exit_code = 1


class Unavailable(StrataError):
    exit_code = 6
