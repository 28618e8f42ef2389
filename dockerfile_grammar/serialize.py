"""Stable renderings of parsed Dockerfiles: JSON for scripts, Dockerfile text back.

JSON shape (``strata parse --json``; keep stable, scripts read it). A list whose first
object is ``{"directives": {"syntax": str|null, "escape": "\\\\" or "`", "check": str|null}}``
followed by one object per instruction, in file order::

    {"instruction": "COPY",          # keyword, upper case
     "line": 7, "end_line": 8,       # 1-based, end_line covers continuations/heredocs
     "original": "COPY --from=build app /app",
     "flags": ["--from=build"],      # as written, quotes removed ("--link" if no value)
     ...typed fields...}

Typed fields per instruction (values unexpanded, exactly as written):

* FROM: ``image``, ``platform`` (str|null), ``stage_name`` (lower case, str|null)
* RUN: ``command``, ``mounts`` (list of mount objects), ``network``, ``security``,
  ``heredocs``
* CMD, ENTRYPOINT: ``command``; SHELL: ``argv`` (list of str)
* ENV, LABEL: ``pairs`` (list of ``{"key", "value"}``), ``legacy`` (old ``KEY value`` form)
* ARG: ``args`` (list of ``{"name", "default"}``, default null when absent)
* COPY, ADD: ``sources``, ``dest``, ``chown``, ``chmod``, ``link``, ``exclude`` (list),
  ``parents``, ``heredocs``; COPY also ``from``; ADD also ``checksum``,
  ``keep_git_dir``, ``unpack`` (bool|null)
* EXPOSE: ``ports``; VOLUME: ``paths``; USER: ``user``; WORKDIR: ``path``;
  STOPSIGNAL: ``signal``; MAINTAINER: ``name``
* HEALTHCHECK: ``none`` (bool), ``command`` (null for NONE), ``interval``, ``timeout``,
  ``start_period``, ``start_interval`` (duration strings or null), ``retries`` (int|null)
* ONBUILD: ``instruction`` (a nested instruction object)

A ``command`` is ``{"form": "shell", "text": str}`` or ``{"form": "exec", "argv": [str]}``.
A heredoc is ``{"name", "content", "expand", "chomp", "fd", "position"}``.
A mount is ``{"type", "target", "source", "from", "readonly", "id", "sharing", "mode",
"uid", "gid", "size", "env", "required"}`` (absent options are null).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from .instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
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
    Label,
    Maintainer,
    OnBuild,
    Run,
    Shell,
    ShellCommand,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from .words import GO_SPACES

__all__ = ["to_json", "instruction_to_json", "to_text", "dockerfile_to_text"]

_SKIP = frozenset(("location", "original", "flags"))


def _value(obj: Any) -> Any:
    if isinstance(obj, ShellCommand):
        return {"form": "shell", "text": obj.text}
    if isinstance(obj, ExecCommand):
        return {"form": "exec", "argv": list(obj.argv)}
    if isinstance(obj, tuple):
        return [_value(v) for v in obj]
    if hasattr(obj, "KEYWORD"):
        return instruction_to_json(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name.rstrip("_"): _value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    return obj


def instruction_to_json(inst: Instruction) -> dict[str, Any]:
    """One instruction as a JSON-ready dict (shape in the module docstring)."""
    out: dict[str, Any] = {
        "instruction": inst.KEYWORD,
        "line": inst.location.line,
        "end_line": inst.location.end_line,
        "original": inst.original,
        "flags": [str(f) for f in inst.flags],
    }
    for f in dataclasses.fields(inst):
        if f.name not in _SKIP:
            out[f.name.rstrip("_")] = _value(getattr(inst, f.name))
    return out


def to_json(df: Dockerfile) -> list[dict[str, Any]]:
    """The whole file: a directives object, then one object per instruction."""
    d = df.directives
    head = {"directives": {"syntax": d.syntax, "escape": d.escape, "check": d.check}}
    return [head, *(instruction_to_json(i) for i in df.instructions)]


# -- text ----------------------------------------------------------------------------------

def _needs_quotes(value: str) -> bool:
    return not value or any(c in GO_SPACES or c in "\"'\\" for c in value)


def _flag_text(flag: Flag) -> str:
    if flag.value is None:
        return f"--{flag.name}"
    value = flag.value
    if _needs_quotes(value):
        value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"--{flag.name}={value}"


def _head(keyword: str, flags: tuple[Flag, ...]) -> str:
    return " ".join([keyword, *(_flag_text(f) for f in flags)])


def _command_text(command: ShellCommand | ExecCommand) -> str:
    if isinstance(command, ExecCommand):
        return json.dumps(list(command.argv), ensure_ascii=False)
    text = command.text
    if text.startswith("--"):
        return "-- " + text
    return text


def _heredoc_marker(h: Heredoc) -> str:
    if h.expand:  # no quotes allowed: escape what the shell lexer would interpret
        name = "".join("\\" + c if c in "'\"\\ \t$" else c for c in h.name)
    else:
        name = '"' + "".join("\\" + c if c in '"\\$`' else c for c in h.name) + '"'
    return f"{h.fd or ''}<<{'-' if h.chomp else ''}{name}"


def _heredoc_bodies(heredocs: tuple[Heredoc, ...]) -> str:
    return "".join(f"\n{h.content}{h.name}" for h in heredocs)


def _plain_word(word: str) -> bool:
    return bool(word) and not any(c in GO_SPACES for c in word)


def _words_or_json(words: list[str]) -> str:
    """Shell form when it reads back as the same words, else JSON. A last word ending in an
    escape character (backslash, or backtick under `# escape=`) would turn the end of the
    line into a continuation, so that one is written as JSON too."""
    if (all(_plain_word(w) for w in words) and not words[0].startswith(("[", "--"))
            and not words[-1].endswith(("\\", "`"))):
        return " ".join(words)
    return json.dumps(words, ensure_ascii=False)


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def to_text(inst: Instruction) -> str:
    """Dockerfile text (no trailing newline; heredoc bodies included) that parses back to
    an instruction equal to ``inst`` (equality ignores locations and original text)."""
    head = _head(inst.KEYWORD, inst.flags)
    body = ""
    if isinstance(inst, From):
        body = inst.image + (f" AS {inst.stage_name}" if inst.stage_name else "")
    elif isinstance(inst, Run):
        return _join(head, _command_text(inst.command)) + _heredoc_bodies(inst.heredocs)
    elif isinstance(inst, Cmd | Entrypoint):
        body = _command_text(inst.command)
    elif isinstance(inst, Shell):
        body = json.dumps(list(inst.argv), ensure_ascii=False)
    elif isinstance(inst, Env | Label):
        if inst.legacy:
            body = f"{inst.pairs[0].key} {inst.pairs[0].value}"
        else:
            body = " ".join(f"{p.key}={p.value}" for p in inst.pairs)
    elif isinstance(inst, Maintainer):
        body = inst.name
    elif isinstance(inst, User):
        body = inst.user
    elif isinstance(inst, Workdir):
        body = inst.path
    elif isinstance(inst, StopSignal):
        body = inst.signal
    elif isinstance(inst, Expose):
        body = " ".join(inst.ports)
    elif isinstance(inst, Volume):
        body = _words_or_json(list(inst.paths))
    elif isinstance(inst, Arg):
        body = " ".join(a.name if a.default is None else f"{a.name}={a.default}" for a in inst.args)
    elif isinstance(inst, Copy | Add):
        if inst.heredocs:
            args: list[str] = []
            sources = iter(inst.sources)
            by_position = {h.position: h for h in inst.heredocs}
            for index in range(len(inst.sources) + len(inst.heredocs)):
                h = by_position.get(index)
                args.append(_heredoc_marker(h) if h is not None else next(sources, ""))
            args.append(inst.dest)
            return _join(head, " ".join(args)) + _heredoc_bodies(inst.heredocs)
        body = _words_or_json([*inst.sources, inst.dest])
    elif isinstance(inst, Healthcheck):
        if inst.none:
            body = "NONE"
        else:
            assert inst.command is not None
            body = "CMD " + _command_text(inst.command)
    elif isinstance(inst, OnBuild):
        return _join(head, to_text(inst.instruction))
    return _join(head, body)


def dockerfile_to_text(df: Dockerfile) -> str:
    """The whole file as canonical Dockerfile text (directives first)."""
    lines = [f"# {k}={v}" for k, v in df.directives.raw]
    lines.extend(to_text(i) for i in df.instructions)
    return "\n".join(lines) + "\n"
