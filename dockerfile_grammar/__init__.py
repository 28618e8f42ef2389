"""Dockerfile front end: a Lark grammar that parses Dockerfiles into typed instructions.

Public surface (pinned by ``tests/dockerfile_grammar/test_public_surface.py``):

* :func:`parse` / :func:`parse_file` -> :class:`Dockerfile` (directives, instructions,
  global ARGs, stages); any problem raises :class:`DockerfileError`.
* one frozen dataclass per instruction (:class:`From`, :class:`Run`, ...), values
  unexpanded; :func:`expand` / :func:`expand_words` resolve variables at build time.
* :func:`to_json` / :func:`to_text` render parsed instructions.
"""

from .errors import (
    ArgumentError,
    DockerfileError,
    DockerfileSyntaxError,
    FlagError,
    StageError,
    UnknownInstructionError,
)
from .expand import ExpansionError, ExpansionResult, expand, expand_words, process_word
from .instructions import (
    Add,
    Arg,
    ArgDecl,
    Cmd,
    Command,
    Copy,
    Directives,
    Dockerfile,
    Entrypoint,
    Env,
    ExecCommand,
    Expose,
    Flag,
    From,
    Healthcheck,
    Heredoc,
    Instruction,
    KeyValue,
    Label,
    Location,
    Maintainer,
    Mount,
    OnBuild,
    Run,
    Shell,
    ShellCommand,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from .parser import parse, parse_file
from .serialize import to_json, to_text

__all__ = [
    "Add",
    "Arg",
    "ArgDecl",
    "ArgumentError",
    "Cmd",
    "Command",
    "Copy",
    "Directives",
    "Dockerfile",
    "DockerfileError",
    "DockerfileSyntaxError",
    "Entrypoint",
    "Env",
    "ExecCommand",
    "ExpansionError",
    "ExpansionResult",
    "Expose",
    "Flag",
    "FlagError",
    "From",
    "Healthcheck",
    "Heredoc",
    "Instruction",
    "KeyValue",
    "Label",
    "Location",
    "Maintainer",
    "Mount",
    "OnBuild",
    "Run",
    "Shell",
    "ShellCommand",
    "Stage",
    "StageError",
    "StopSignal",
    "UnknownInstructionError",
    "User",
    "Volume",
    "Workdir",
    "expand",
    "expand_words",
    "parse",
    "parse_file",
    "process_word",
    "to_json",
    "to_text",
]
