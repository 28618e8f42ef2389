"""Dockerfile front end: a Lark grammar that parses Dockerfiles into typed instructions.

Public surface (pinned by ``tests/dockerfile_grammar/test_public_surface.py``):

* :func:`parse` / :func:`parse_file` -> :class:`Dockerfile` (directives, instructions,
  global ARGs, stages); any problem raises :class:`DockerfileError`.
* one frozen dataclass per instruction (:class:`From`, :class:`Run`, ...), values
  unexpanded; :func:`expand` / :func:`expand_words` resolve variables at build time and
  :class:`BuildScope` applies ARG/ENV scoping per stage.
* :class:`DockerIgnore` matches ``.dockerignore`` patterns; :func:`walk_context` prunes.
* :func:`to_json` / :func:`to_text` render parsed instructions.

Names are loaded on first use (PEP 562): `import dockerfile_grammar.dockerignore` or the
CLI's start-up does not pay for the Lark parser and the instruction dataclasses.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dockerignore import (
        DockerIgnore,
        DockerIgnoreError,
        find_ignore_file,
        walk_context,
    )
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
    from .parser import (
        parse,
        parse_file,
    )
    from .scope import (
        BuildScope,
        Platform,
        ScopedInstruction,
        StageScope,
        expand_instruction,
        expands_variables,
    )
    from .serialize import (
        to_json,
        to_text,
    )

_HOME = {
    "DockerIgnore": "dockerignore",
    "DockerIgnoreError": "dockerignore",
    "find_ignore_file": "dockerignore",
    "walk_context": "dockerignore",
    "ArgumentError": "errors",
    "DockerfileError": "errors",
    "DockerfileSyntaxError": "errors",
    "FlagError": "errors",
    "StageError": "errors",
    "UnknownInstructionError": "errors",
    "ExpansionError": "expand",
    "ExpansionResult": "expand",
    "expand": "expand",
    "expand_words": "expand",
    "process_word": "expand",
    "referenced_names": "expand",
    "Add": "instructions",
    "Arg": "instructions",
    "ArgDecl": "instructions",
    "Cmd": "instructions",
    "Command": "instructions",
    "Copy": "instructions",
    "Directives": "instructions",
    "Dockerfile": "instructions",
    "Entrypoint": "instructions",
    "Env": "instructions",
    "ExecCommand": "instructions",
    "Expose": "instructions",
    "Flag": "instructions",
    "From": "instructions",
    "Healthcheck": "instructions",
    "Heredoc": "instructions",
    "Instruction": "instructions",
    "KeyValue": "instructions",
    "Label": "instructions",
    "Location": "instructions",
    "Maintainer": "instructions",
    "Mount": "instructions",
    "OnBuild": "instructions",
    "Run": "instructions",
    "Shell": "instructions",
    "ShellCommand": "instructions",
    "Stage": "instructions",
    "StopSignal": "instructions",
    "User": "instructions",
    "Volume": "instructions",
    "Workdir": "instructions",
    "parse": "parser",
    "parse_file": "parser",
    "BuildScope": "scope",
    "Platform": "scope",
    "ScopedInstruction": "scope",
    "StageScope": "scope",
    "expand_instruction": "scope",
    "expands_variables": "scope",
    "to_json": "serialize",
    "to_text": "serialize",
}

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
    "DockerIgnore",
    "DockerIgnoreError",
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


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


class _Surface(types.ModuleType):
    """Importing a submodule binds it as an attribute of the package; for `expand`, whose
    module and exported function share a name, keep the function (as the eager imports did)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (isinstance(value, types.ModuleType) and _HOME.get(name) == name
                and value.__name__ == f"{__name__}.{name}"):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Surface
