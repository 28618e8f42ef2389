"""Dockerfile front end: a Lark grammar that parses Dockerfiles into typed instructions.

Public surface (pinned by ``tests/dockerfile_grammar/test_public_surface.py``):

* :func:`parse` / :func:`parse_file` -> :class:`Dockerfile` (directives, instructions,
  global ARGs, stages); any problem raises :class:`DockerfileError`.
* one frozen dataclass per instruction (:class:`From`, :class:`Run`, ...), values
  unexpanded; :func:`expand` / :func:`expand_words` resolve variables at build time and
  :class:`BuildScope` applies ARG/ENV scoping per stage.
* :class:`DockerIgnore` matches ``.dockerignore`` patterns; :func:`walk_context` prunes.
* :func:`to_json` / :func:`to_text` render parsed instructions.
"""

from .dockerignore import DockerIgnore, DockerIgnoreError, find_ignore_file, walk_context
from .errors import (
    ArgumentError,
    DockerfileError,
    DockerfileSyntaxError,
    FlagError,
    StageError,
    UnknownInstructionError,
)
from .expand import (
    ExpansionError,
    ExpansionResult,
    expand,
    expand_words,
    process_word,
    referenced_names,
)
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
from .scope import (
    BuildScope,
    Platform,
    ScopedInstruction,
    StageScope,
    expand_instruction,
    expands_variables,
)
from .serialize import to_json, to_text

__all__ = [
    "Add",
    "Arg",
    "ArgDecl",
    "ArgumentError",
    "BuildScope",
    "Cmd",
    "Command",
    "Copy",
    "Directives",
    "Dockerfile",
    "DockerIgnore",
    "DockerIgnoreError",
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
    "Platform",
    "Run",
    "ScopedInstruction",
    "Shell",
    "ShellCommand",
    "Stage",
    "StageError",
    "StageScope",
    "StopSignal",
    "UnknownInstructionError",
    "User",
    "Volume",
    "Workdir",
    "expand",
    "expand_instruction",
    "expand_words",
    "expands_variables",
    "find_ignore_file",
    "parse",
    "parse_file",
    "process_word",
    "referenced_names",
    "to_json",
    "to_text",
    "walk_context",
]
