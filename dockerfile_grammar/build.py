"""Per-keyword construction of typed instructions from the grammar's raw pieces.

The grammar (``dockerfile.lark``) yields, per logical line, the keyword token, the flag
tokens and the argument token (JSON-looking or text). This module applies Docker's
per-instruction rules (BuildKit ``parser/line_parsers.go`` and ``instructions/parse.go``):
which flags an instruction takes, how its arguments split, and what is an error.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from lark import Token

from .errors import ArgumentError, DockerfileError, DockerfileSyntaxError, FlagError
from .instructions import (
    Add,
    Arg,
    ArgDecl,
    Cmd,
    Command,
    Copy,
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
    OnBuild,
    Run,
    Shell,
    ShellCommand,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from .mounts import MountProblem, parse_mount
from .network import RUN_NETWORK_MODES
from .prepass import LogicalLine
from .words import (
    GO_SPACES,
    NotStringArrayError,
    go_trim,
    parse_json_array,
    parse_words,
    split_whitespace,
    unquote_flag,
)

__all__ = ["Builder", "FLAG_KINDS", "FlagWord", "KEYWORDS", "RawInstruction", "RawOnBuild"]

STRING, BOOL, MULTI = "string", "bool", "strings"

# flags each instruction accepts, with their kind
FLAG_KINDS: dict[str, dict[str, str]] = {
    "FROM": {"platform": STRING},
    "RUN": {"mount": MULTI, "network": STRING, "security": STRING},
    "COPY": {
        "from": STRING, "chown": STRING, "chmod": STRING, "link": BOOL, "parents": BOOL,
        "exclude": MULTI,
    },
    "ADD": {
        "chown": STRING, "chmod": STRING, "link": BOOL, "keep-git-dir": BOOL,
        "checksum": STRING, "exclude": MULTI, "parents": BOOL, "unpack": BOOL,
    },
    "HEALTHCHECK": {
        "interval": STRING, "timeout": STRING, "start-period": STRING,
        "start-interval": STRING, "retries": STRING,
    },
}
KEYWORDS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
)
_SECURITY = ("sandbox", "insecure")
_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_DURATION_RE = re.compile(r"^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
    "h": 3600.0,
}


class FlagWord(str):
    """One ``--flag`` word as written, with its 1-based ``column`` in the logical line
    (a light stand-in for a lark Token)."""

    column: int


@dataclass(slots=True)
class RawInstruction:
    keyword: Token
    flags: list[FlagWord]
    args_kind: str  # "json", "text" or "" (no arguments)
    args: Token | None


@dataclass(slots=True)
class RawOnBuild:
    keyword: Token
    flags: list[FlagWord]
    inner: RawInstruction | None


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else ""


class Builder:
    """Turns raw grammar pieces of one file into typed instructions."""

    def __init__(self, filename: str, escape: str, source_lines: list[str]) -> None:
        self.filename = filename
        self.escape = escape
        self.source_lines = source_lines

    # -- errors ------------------------------------------------------------------------
    def error(
        self,
        cls: type[DockerfileError],
        message: str,
        logical: LogicalLine,
        token: Token | FlagWord | None = None,
    ) -> DockerfileError:
        if token is not None and token.column is not None:
            line, column = logical.position(token.column - 1)
        else:
            line, column = logical.start_line, logical.column
        src = self.source_lines[line - 1].rstrip("\r") if 0 < line <= len(self.source_lines) else ""
        return cls(message, filename=self.filename, line=line, column=column, source_line=src)

    # -- entry points ------------------------------------------------------------------
    def build(self, raw: RawInstruction | RawOnBuild, logical: LogicalLine) -> Instruction:
        if isinstance(raw, RawOnBuild):
            return self._onbuild(raw, logical)
        return self._instruction(raw, logical, logical.text)

    def _location(self, logical: LogicalLine, token: Token) -> Location:
        line, column = logical.position((token.column or 1) - 1)
        return Location(self.filename, line, logical.end_line, column)

    def _onbuild(self, raw: RawOnBuild, logical: LogicalLine) -> OnBuild:
        flags = self._flags("ONBUILD", raw.flags, logical)
        if raw.inner is None:
            raise self.error(
                ArgumentError, "ONBUILD requires at least one argument", logical, raw.keyword
            )
        trigger = str(raw.inner.keyword).upper()
        if trigger == "ONBUILD":
            raise self.error(
                ArgumentError, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                logical, raw.inner.keyword,
            )
        if trigger in ("FROM", "MAINTAINER"):
            raise self.error(
                ArgumentError, f"{trigger} isn't allowed as an ONBUILD trigger",
                logical, raw.inner.keyword,
            )
        original = logical.text[(raw.inner.keyword.start_pos or 0) - (raw.keyword.start_pos or 0):]
        inner = self._instruction(raw.inner, logical, original)
        return OnBuild(self._location(logical, raw.keyword), logical.text, flags, inner)

    def _instruction(self, raw: RawInstruction, logical: LogicalLine, original: str) -> Instruction:
        keyword = str(raw.keyword).upper()
        handler = _HANDLERS.get(keyword)
        if handler is None:
            hint = _suggest(keyword, KEYWORDS)
            shown = str(raw.keyword)
            if not shown.isprintable() or any(c in GO_SPACES for c in shown):
                shown = json.dumps(shown)[1:-1]  # make invisible characters visible
            message = f'unknown instruction "{shown}"'
            if hint:
                message += f" (did you mean {hint}?)"
            from .errors import UnknownInstructionError

            raise self.error(UnknownInstructionError, message, logical, raw.keyword)
        return handler(self, raw, logical, original)

    # -- shared pieces -----------------------------------------------------------------
    def _flags(
        self, keyword: str, tokens: list[FlagWord], logical: LogicalLine
    ) -> tuple[Flag, ...]:
        if not tokens:
            return ()
        kinds = FLAG_KINDS.get(keyword, {})
        seen: set[str] = set()
        out: list[Flag] = []
        for tok in tokens:
            text = unquote_flag(str(tok))[2:]
            name, sep, value = text.partition("=")
            kind = kinds.get(name)
            if kind is None:
                owners = sorted(k for k, v in FLAG_KINDS.items() if name in v)
                if owners:
                    message = (
                        f"flag --{name} is not valid for {keyword} "
                        f"(it is a flag of {', '.join(owners)})"
                    )
                else:
                    message = f"unknown flag --{name} for {keyword}"
                    hint = _suggest(name, list(kinds))
                    if hint:
                        message += f" (did you mean --{hint}?)"
                raise self.error(FlagError, message, logical, tok)
            if name in seen and kind != MULTI:
                raise self.error(FlagError, f"duplicate flag specified: --{name}", logical, tok)
            seen.add(name)
            if kind == BOOL:
                if sep and value == "":
                    raise self.error(FlagError, f"missing a value on flag: --{name}", logical, tok)
                if value.lower() not in ("", "true", "false"):
                    raise self.error(
                        FlagError, f"expecting boolean value for flag --{name}, not: {value}",
                        logical, tok,
                    )
            elif not sep:
                raise self.error(FlagError, f"missing a value on flag: --{name}", logical, tok)
            line, column = logical.position((tok.column or 1) - 1)
            where = Location(self.filename, line, line, column)
            out.append(Flag(name, value if sep else None, where))
        return tuple(out)

    def _text(self, raw: RawInstruction) -> str:
        return go_trim(str(raw.args)) if raw.args is not None else ""

    def _maybe_json(self, raw: RawInstruction, logical: LogicalLine) -> list[str] | None:
        if raw.args_kind != "json" or raw.args is None:
            return None
        try:
            return parse_json_array(str(raw.args))
        except NotStringArrayError as exc:
            raise self.error(DockerfileSyntaxError, str(exc), logical, raw.args) from None

    def _command(self, raw: RawInstruction, logical: LogicalLine) -> Command:
        argv = self._maybe_json(raw, logical)
        if argv is not None:
            return ExecCommand(tuple(argv))
        return ShellCommand(self._text(raw))

    def _one(self, raw: RawInstruction, logical: LogicalLine, keyword: str) -> str:
        text = self._text(raw)
        if not text:
            raise self.error(
                ArgumentError, f"{keyword} requires exactly one argument", logical, raw.keyword
            )
        return text

    def _pairs(
        self, raw: RawInstruction, logical: LogicalLine, keyword: str
    ) -> tuple[tuple[KeyValue, ...], bool]:
        rest = self._text(raw)
        words = parse_words(rest, self.escape)
        if not words:
            raise self.error(
                ArgumentError, f"{keyword} requires at least one argument", logical, raw.keyword
            )
        if "=" not in words[0]:
            parts = re.split(r"[\t\v\f\r ]+", rest, maxsplit=1)
            if len(parts) < 2:
                raise self.error(
                    ArgumentError,
                    f"{keyword} must have two arguments (use {keyword} {parts[0]}=value)",
                    logical, raw.args,
                )
            return (KeyValue(parts[0], parts[1]),), True
        pairs = []
        for word in words:
            key, sep, value = word.partition("=")
            if not sep:
                raise self.error(
                    ArgumentError,
                    f"Syntax error - can't find = in \"{word}\". Must be of the form: name=value",
                    logical, raw.args,
                )
            if not key:
                raise self.error(
                    ArgumentError, f"{keyword} names can not be blank", logical, raw.args
                )
            pairs.append(KeyValue(key, value))
        return tuple(pairs), False

    def _flag_value(self, flags: tuple[Flag, ...], name: str) -> str | None:
        for flag in flags:
            if flag.name == name:
                return flag.value
        return None

    def _flag_bool(self, flags: tuple[Flag, ...], name: str) -> bool:
        for flag in flags:
            if flag.name == name:
                return flag.value is None or flag.value.lower() == "true"
        return False


Handler = Callable[[Builder, RawInstruction, LogicalLine, str], Instruction]
_HANDLERS: dict[str, Handler] = {}


def _handles(keyword: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[keyword] = fn
        return fn

    return register


def _loc(b: Builder, raw: RawInstruction, logical: LogicalLine) -> Location:
    return b._location(logical, raw.keyword)


@_handles("FROM")
def _from(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("FROM", raw.flags, ll)
    args = split_whitespace(b._text(raw))
    name: str | None = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME_RE.match(name):
            raise b.error(
                ArgumentError,
                f"invalid name for build stage: \"{args[2]}\", name can't start with a "
                "number or contain symbols",
                ll, raw.args,
            )
    elif len(args) != 1:
        raise b.error(
            ArgumentError, "FROM requires either one or three arguments", ll,
            raw.args or raw.keyword,
        )
    return From(_loc(b, raw, ll), original, flags, args[0], b._flag_value(flags, "platform"), name)


@_handles("RUN")
def _run(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("RUN", raw.flags, ll)
    mounts = []
    network = security = None
    for flag in flags:
        value = flag.value or ""
        if flag.name == "mount":
            try:
                mounts.append(parse_mount(value))
            except MountProblem as exc:
                tok = raw.flags[flags.index(flag)]
                raise b.error(FlagError, f"invalid --mount: {exc}", ll, tok) from None
        elif flag.name == "network":
            if value.lower() not in RUN_NETWORK_MODES and "$" not in value:
                tok = raw.flags[flags.index(flag)]
                raise b.error(
                    FlagError, f'unsupported network mode "{value}" (use default, none or host)',
                    ll, tok,
                )
            network = value
        elif flag.name == "security":
            if value.lower() not in _SECURITY and "$" not in value:
                tok = raw.flags[flags.index(flag)]
                raise b.error(
                    FlagError, f'unsupported security mode "{value}" (use sandbox or insecure)',
                    ll, tok,
                )
            security = value
    command = b._command(raw, ll)
    if isinstance(command, ShellCommand) and not command.text:
        raise b.error(ArgumentError, "RUN requires at least one argument", ll, raw.keyword)
    heredocs = tuple(ll.heredocs) if isinstance(command, ShellCommand) else ()
    return Run(_loc(b, raw, ll), original, flags, command, tuple(mounts), network, security,
               heredocs)


@_handles("CMD")
def _cmd(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    return Cmd(_loc(b, raw, ll), original, b._flags("CMD", raw.flags, ll), b._command(raw, ll))


@_handles("ENTRYPOINT")
def _entrypoint(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("ENTRYPOINT", raw.flags, ll)
    return Entrypoint(_loc(b, raw, ll), original, flags, b._command(raw, ll))


@_handles("SHELL")
def _shell(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("SHELL", raw.flags, ll)
    argv = b._maybe_json(raw, ll)
    if argv is None:
        if not b._text(raw):
            raise b.error(ArgumentError, "SHELL requires at least one argument", ll, raw.keyword)
        raise b.error(
            ArgumentError, "SHELL requires the arguments to be in JSON form", ll, raw.args
        )
    if not argv:
        raise b.error(ArgumentError, "SHELL requires at least one argument", ll, raw.args)
    return Shell(_loc(b, raw, ll), original, flags, tuple(argv))


@_handles("LABEL")
def _label(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("LABEL", raw.flags, ll)
    pairs, legacy = b._pairs(raw, ll, "LABEL")
    return Label(_loc(b, raw, ll), original, flags, pairs, legacy)


@_handles("ENV")
def _env(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("ENV", raw.flags, ll)
    pairs, legacy = b._pairs(raw, ll, "ENV")
    return Env(_loc(b, raw, ll), original, flags, pairs, legacy)


@_handles("MAINTAINER")
def _maintainer(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("MAINTAINER", raw.flags, ll)
    return Maintainer(_loc(b, raw, ll), original, flags, b._one(raw, ll, "MAINTAINER"))


@_handles("USER")
def _user(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("USER", raw.flags, ll)
    return User(_loc(b, raw, ll), original, flags, b._one(raw, ll, "USER"))


@_handles("WORKDIR")
def _workdir(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("WORKDIR", raw.flags, ll)
    return Workdir(_loc(b, raw, ll), original, flags, b._one(raw, ll, "WORKDIR"))


@_handles("STOPSIGNAL")
def _stopsignal(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("STOPSIGNAL", raw.flags, ll)
    return StopSignal(_loc(b, raw, ll), original, flags, b._one(raw, ll, "STOPSIGNAL"))


@_handles("EXPOSE")
def _expose(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("EXPOSE", raw.flags, ll)
    ports = split_whitespace(b._text(raw))
    if not ports:
        raise b.error(ArgumentError, "EXPOSE requires at least one argument", ll, raw.keyword)
    return Expose(_loc(b, raw, ll), original, flags, tuple(ports))


def _list_args(b: Builder, raw: RawInstruction, ll: LogicalLine) -> tuple[list[str], bool]:
    argv = b._maybe_json(raw, ll)
    if argv is not None:
        return argv, True
    return split_whitespace(b._text(raw)), False


@_handles("VOLUME")
def _volume(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("VOLUME", raw.flags, ll)
    paths, _ = _list_args(b, raw, ll)
    if not paths:
        raise b.error(ArgumentError, "VOLUME requires at least one argument", ll, raw.keyword)
    cleaned = tuple(go_trim(p) for p in paths)
    if not all(cleaned):
        raise b.error(
            ArgumentError, "VOLUME specified can not be an empty string", ll, raw.args
        )
    return Volume(_loc(b, raw, ll), original, flags, cleaned)


@_handles("ARG")
def _arg(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("ARG", raw.flags, ll)
    words = parse_words(b._text(raw), b.escape)
    if not words:
        raise b.error(ArgumentError, "ARG requires at least one argument", ll, raw.keyword)
    decls = []
    for word in words:
        name, sep, value = word.partition("=")
        if not name:
            raise b.error(ArgumentError, "ARG names can not be blank", ll, raw.args)
        decls.append(ArgDecl(name, value if sep else None))
    return Arg(_loc(b, raw, ll), original, flags, tuple(decls))


def _copy_parts(
    b: Builder, raw: RawInstruction, ll: LogicalLine, keyword: str
) -> tuple[tuple[Flag, ...], tuple[str, ...], str, tuple[Heredoc, ...]]:
    from .prepass import parse_heredoc_word

    flags = b._flags(keyword, raw.flags, ll)
    args, is_json = _list_args(b, raw, ll)
    if len(args) < 2:
        raise b.error(
            ArgumentError,
            f"{keyword} requires at least two arguments, but only one was provided. "
            "Destination could not be determined",
            ll, raw.args or raw.keyword,
        )
    dest = args[-1]
    if "<<" in dest and parse_heredoc_word(dest) is not None:
        raise b.error(
            ArgumentError, f"{keyword} cannot accept a heredoc as a destination", ll, raw.args
        )
    by_name = {h.name: h for h in ll.heredocs} if ll.heredocs else {}
    sources: list[str] = []
    heredocs: list[Heredoc] = []
    for position, src in enumerate(args[:-1]):
        marker = parse_heredoc_word(src) if "<<" in src else None
        if marker is None:
            sources.append(src)
            continue
        name, expand, chomp, fd = marker
        found = by_name.get(name)
        content = found.content if found is not None and not is_json else ""
        heredocs.append(Heredoc(name, content, expand, chomp, fd, position))
    return flags, tuple(sources), dest, tuple(heredocs)


@_handles("COPY")
def _copy(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags, sources, dest, heredocs = _copy_parts(b, raw, ll, "COPY")
    return Copy(
        _loc(b, raw, ll), original, flags, sources, dest,
        b._flag_value(flags, "chown"), b._flag_value(flags, "chmod"),
        b._flag_bool(flags, "link"),
        tuple(f.value or "" for f in flags if f.name == "exclude"),
        b._flag_bool(flags, "parents"), heredocs, b._flag_value(flags, "from"),
    )


@_handles("ADD")
def _add(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags, sources, dest, heredocs = _copy_parts(b, raw, ll, "ADD")
    unpack = None
    if any(f.name == "unpack" for f in flags):
        unpack = b._flag_bool(flags, "unpack")
    return Add(
        _loc(b, raw, ll), original, flags, sources, dest,
        b._flag_value(flags, "chown"), b._flag_value(flags, "chmod"),
        b._flag_bool(flags, "link"),
        tuple(f.value or "" for f in flags if f.name == "exclude"),
        b._flag_bool(flags, "parents"), heredocs, b._flag_value(flags, "checksum"),
        b._flag_bool(flags, "keep-git-dir"), unpack,
    )


def _duration(b: Builder, raw: RawInstruction, ll: LogicalLine, flags: tuple[Flag, ...],
              name: str) -> str | None:
    value = b._flag_value(flags, name)
    if value is None or value == "":
        return None
    tok = next(t for t, f in zip(raw.flags, flags, strict=True) if f.name == name)
    if not _DURATION_RE.match(value) and value != "0":
        raise b.error(FlagError, f'invalid duration "{value}" for --{name}', ll, tok)
    seconds = sum(
        float(num) * _UNIT_SECONDS[unit] for num, unit in _DURATION_PART_RE.findall(value)
    )
    if value.startswith("-"):
        seconds = -seconds
    if seconds != 0 and seconds < 1e-3:
        raise b.error(FlagError, f'Interval "{name}" cannot be less than 1ms', ll, tok)
    return value


@_handles("HEALTHCHECK")
def _healthcheck(b: Builder, raw: RawInstruction, ll: LogicalLine, original: str) -> Instruction:
    flags = b._flags("HEALTHCHECK", raw.flags, ll)
    text = str(raw.args) if raw.args is not None else ""
    text = go_trim(text)
    if not text:
        raise b.error(
            ArgumentError, "HEALTHCHECK requires at least one argument", ll, raw.keyword
        )
    parts = re.split(r"(\s+)", text, maxsplit=1)
    typ = parts[0].upper()
    rest = parts[2] if len(parts) > 2 else ""
    loc = _loc(b, raw, ll)
    if typ == "NONE":
        if rest:
            raise b.error(ArgumentError, "HEALTHCHECK NONE takes no arguments", ll, raw.args)
        if flags:
            raise b.error(FlagError, "HEALTHCHECK NONE takes no flags", ll, raw.flags[0])
        return Healthcheck(loc, original, flags, True, None)
    if typ != "CMD":
        raise b.error(
            ArgumentError, f'Unknown type "{parts[0]}" in HEALTHCHECK (try CMD)', ll, raw.args
        )
    command: Command
    try:
        argv = parse_json_array(rest)
    except NotStringArrayError as exc:
        raise b.error(DockerfileSyntaxError, str(exc), ll, raw.args) from None
    command = ExecCommand(tuple(argv)) if argv is not None else ShellCommand(rest)
    if (isinstance(command, ExecCommand) and not command.argv) or (
        isinstance(command, ShellCommand) and not command.text
    ):
        raise b.error(ArgumentError, "Missing command after HEALTHCHECK CMD", ll, raw.args)
    retries: int | None = None
    retries_text = b._flag_value(flags, "retries")
    if retries_text:
        tok = next(t for t, f in zip(raw.flags, flags, strict=True) if f.name == "retries")
        try:
            retries = int(retries_text, 10)
        except ValueError:
            raise b.error(
                FlagError, f'invalid value "{retries_text}" for --retries', ll, tok
            ) from None
        if retries < 0:
            raise b.error(FlagError, f"--retries cannot be negative ({retries})", ll, tok)
    return Healthcheck(
        loc, original, flags, False, command,
        _duration(b, raw, ll, flags, "interval"), _duration(b, raw, ll, flags, "timeout"),
        _duration(b, raw, ll, flags, "start-period"),
        _duration(b, raw, ll, flags, "start-interval"), retries,
    )
