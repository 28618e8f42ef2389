"""The names other packages may import from dockerfile_grammar (pinned)."""

from __future__ import annotations

import dataclasses

import dockerfile_grammar
from dockerfile_grammar.instructions import INSTRUCTION_CLASSES


def test_public_names_are_pinned() -> None:
    expected = {
        "parse", "parse_file", "to_json", "to_text", "expand", "expand_words", "process_word",
        "Dockerfile", "Directives", "Stage", "Location", "Flag", "Heredoc", "Mount",
        "KeyValue", "ArgDecl", "ShellCommand", "ExecCommand", "Command", "Instruction",
        "From", "Run", "Cmd", "Entrypoint", "Shell", "Label", "Maintainer", "Expose", "Env",
        "Add", "Copy", "Arg", "OnBuild", "StopSignal", "Healthcheck", "User", "Workdir",
        "Volume", "DockerfileError", "DockerfileSyntaxError", "UnknownInstructionError",
        "FlagError", "ArgumentError", "StageError", "ExpansionError", "ExpansionResult",
        "DockerIgnore", "BuildScope", "StageScope", "walk_context", "find_ignore_file",
    }
    assert expected <= set(dockerfile_grammar.__all__)
    for name in dockerfile_grammar.__all__:
        assert hasattr(dockerfile_grammar, name), name


def test_every_instruction_is_a_frozen_slotted_dataclass_with_location() -> None:
    assert len(INSTRUCTION_CLASSES) == 18
    for keyword, cls in INSTRUCTION_CLASSES.items():
        assert keyword == cls.KEYWORD
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen
        assert "__slots__" in cls.__dict__
        names = {f.name for f in dataclasses.fields(cls)}
        assert {"location", "original", "flags"} <= names


def test_errors_share_one_base() -> None:
    for name in ("DockerfileSyntaxError", "UnknownInstructionError", "FlagError",
                 "ArgumentError", "StageError"):
        assert issubclass(getattr(dockerfile_grammar, name), dockerfile_grammar.DockerfileError)
