"""Typed Dockerfile instructions: one frozen, slotted dataclass per keyword.

Values are stored *unexpanded*: ``$VAR`` references, quotes and escape characters stay
as written, and are resolved at build time by :mod:`dockerfile_grammar.expand`. The
parser only splits words and flags the way Docker (BuildKit) does.

Equality ignores ``location`` and ``original`` (and the locations of flags), so an
instruction rendered with :func:`dockerfile_grammar.serialize.to_text` and parsed again
compares equal to the original one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

__all__ = [
    "Add",
    "Arg",
    "ArgDecl",
    "Cmd",
    "Command",
    "Copy",
    "Directives",
    "Dockerfile",
    "Entrypoint",
    "Env",
    "ExecCommand",
    "Expose",
    "Flag",
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
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "INSTRUCTION_CLASSES",
]


@dataclass(frozen=True, slots=True)
class Location:
    """Where an instruction (or flag) sits in its file; lines and column are 1-based.

    ``line``..``end_line`` covers continuation lines and heredoc bodies.
    """

    filename: str
    line: int
    end_line: int
    column: int = 1


@dataclass(frozen=True, slots=True)
class Flag:
    """One ``--name[=value]`` flag, quotes removed as Docker does; ``value`` None if no ``=``."""

    name: str
    value: str | None
    location: Location | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"--{self.name}" if self.value is None else f"--{self.name}={self.value}"


@dataclass(frozen=True, slots=True)
class ShellCommand:
    """Shell form: the text is run by the stage's SHELL (``/bin/sh -c`` by default)."""

    text: str


@dataclass(frozen=True, slots=True)
class ExecCommand:
    """Exec (JSON array) form: argv is executed directly, no shell."""

    argv: tuple[str, ...]


Command = ShellCommand | ExecCommand


@dataclass(frozen=True, slots=True)
class Heredoc:
    """An inline document (``<<EOF`` ... ``EOF``).

    ``content`` is the raw body, every line with its newline, without the terminator line.
    ``expand`` is False when the delimiter was quoted (``<<'EOF'``/``<<"EOF"``).
    ``chomp`` is True for ``<<-EOF``: leading tabs are stripped from each body line
    (see :attr:`body`). ``fd`` is the file descriptor written before ``<<`` (``3<<EOF``),
    0 when none. ``position`` is the index of the ``<<`` word among the instruction's
    shell words (for COPY/ADD, the source position).
    """

    name: str
    content: str
    expand: bool = True
    chomp: bool = False
    fd: int = 0
    position: int = 0

    @property
    def body(self) -> str:
        """The content with leading tabs removed from each line when ``chomp`` is set."""
        if not self.chomp:
            return self.content
        return "".join(line.lstrip("\t") for line in self.content.splitlines(keepends=True))


@dataclass(frozen=True, slots=True)
class Mount:
    """One ``RUN --mount=...`` (values unexpanded; defaults applied as BuildKit does).

    ``readonly`` defaults to False for cache and tmpfs mounts, True for bind, secret and
    ssh mounts. ``required`` applies to secret and ssh, ``size`` to tmpfs, ``sharing``
    to cache; ``mode``/``uid``/``gid`` to cache, secret and ssh; ``env`` to secret.
    """

    type: str = "bind"
    target: str | None = None
    source: str | None = None
    from_: str | None = None
    readonly: bool = True
    id: str | None = None
    sharing: str | None = None
    mode: str | None = None
    uid: str | None = None
    gid: str | None = None
    size: str | None = None
    env: str | None = None
    required: bool = False


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A ``key=value`` pair of ENV or LABEL (both sides unexpanded)."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class ArgDecl:
    """One ARG name with its optional default (``None`` when no ``=`` was given)."""

    name: str
    default: str | None = None


@dataclass(frozen=True, slots=True)
class Directives:
    """Parser directives found before the first instruction or comment."""

    syntax: str | None = None
    escape: str = "\\"
    check: str | None = None
    raw: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class _Instruction:
    """Fields every instruction has. ``original`` is the source text of the instruction
    (continuations joined as Docker joins them, heredoc bodies not included)."""

    KEYWORD: ClassVar[str] = ""

    location: Location = field(compare=False)
    original: str = field(compare=False)
    flags: tuple[Flag, ...]


@dataclass(frozen=True, slots=True)
class From(_Instruction):
    KEYWORD: ClassVar[str] = "FROM"
    image: str
    platform: str | None
    stage_name: str | None


@dataclass(frozen=True, slots=True)
class Run(_Instruction):
    KEYWORD: ClassVar[str] = "RUN"
    command: Command
    mounts: tuple[Mount, ...]
    network: str | None
    security: str | None
    heredocs: tuple[Heredoc, ...]


@dataclass(frozen=True, slots=True)
class Cmd(_Instruction):
    KEYWORD: ClassVar[str] = "CMD"
    command: Command


@dataclass(frozen=True, slots=True)
class Entrypoint(_Instruction):
    KEYWORD: ClassVar[str] = "ENTRYPOINT"
    command: Command


@dataclass(frozen=True, slots=True)
class Shell(_Instruction):
    KEYWORD: ClassVar[str] = "SHELL"
    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Label(_Instruction):
    """``legacy`` marks the old ``LABEL key value`` form (one pair, value = rest of line)."""

    KEYWORD: ClassVar[str] = "LABEL"
    pairs: tuple[KeyValue, ...]
    legacy: bool = False


@dataclass(frozen=True, slots=True)
class Maintainer(_Instruction):
    KEYWORD: ClassVar[str] = "MAINTAINER"
    name: str


@dataclass(frozen=True, slots=True)
class Expose(_Instruction):
    """Raw port words (``80``, ``80/tcp``, ``7000-7010/udp``, ``$PORT``); checked at build."""

    KEYWORD: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Env(_Instruction):
    """``legacy`` marks the old ``ENV key value`` form (one pair, value = rest of line)."""

    KEYWORD: ClassVar[str] = "ENV"
    pairs: tuple[KeyValue, ...]
    legacy: bool = False


@dataclass(frozen=True, slots=True)
class _CopyLike(_Instruction):
    """Shared by COPY and ADD. ``sources`` are the path words (heredoc sources are in
    ``heredocs``); ``exclude`` collects every ``--exclude``."""

    sources: tuple[str, ...]
    dest: str
    chown: str | None
    chmod: str | None
    link: bool
    exclude: tuple[str, ...]
    parents: bool
    heredocs: tuple[Heredoc, ...]


@dataclass(frozen=True, slots=True)
class Copy(_CopyLike):
    KEYWORD: ClassVar[str] = "COPY"
    from_: str | None = None

    # ADD-only options, so code handling COPY and ADD alike can read them from both
    @property
    def checksum(self) -> str | None:
        return None

    @property
    def keep_git_dir(self) -> bool:
        return False

    @property
    def unpack(self) -> bool | None:
        return None


@dataclass(frozen=True, slots=True)
class Add(_CopyLike):
    KEYWORD: ClassVar[str] = "ADD"
    checksum: str | None = None
    keep_git_dir: bool = False
    unpack: bool | None = None

    @property
    def from_(self) -> str | None:
        """Always None: ADD takes no --from (COPY only), as in BuildKit."""
        return None


@dataclass(frozen=True, slots=True)
class Arg(_Instruction):
    KEYWORD: ClassVar[str] = "ARG"
    args: tuple[ArgDecl, ...]


@dataclass(frozen=True, slots=True)
class StopSignal(_Instruction):
    KEYWORD: ClassVar[str] = "STOPSIGNAL"
    signal: str


@dataclass(frozen=True, slots=True)
class Healthcheck(_Instruction):
    """``HEALTHCHECK NONE`` (``none`` True, no command) or options plus ``CMD``.

    Durations are kept as written (Go duration syntax, checked at parse time).
    """

    KEYWORD: ClassVar[str] = "HEALTHCHECK"
    none: bool
    command: Command | None
    interval: str | None = None
    timeout: str | None = None
    start_period: str | None = None
    start_interval: str | None = None
    retries: int | None = None


@dataclass(frozen=True, slots=True)
class User(_Instruction):
    KEYWORD: ClassVar[str] = "USER"
    user: str


@dataclass(frozen=True, slots=True)
class Workdir(_Instruction):
    KEYWORD: ClassVar[str] = "WORKDIR"
    path: str


@dataclass(frozen=True, slots=True)
class Volume(_Instruction):
    KEYWORD: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OnBuild(_Instruction):
    """A trigger run when the image is used as a base; ``instruction`` is parsed now
    (never ONBUILD, FROM or MAINTAINER) but expanded only when triggered."""

    KEYWORD: ClassVar[str] = "ONBUILD"
    instruction: Instruction

    @property
    def expression(self) -> str:
        """The trigger as BuildKit records it in the image config's OnBuild list: the
        wrapped instruction's text, then each heredoc body followed by its delimiter."""
        text = self.instruction.original
        for heredoc in getattr(self.instruction, "heredocs", ()):
            text += "\n" + heredoc.content + heredoc.name
        return text


Instruction = (
    From | Run | Cmd | Entrypoint | Shell | Label | Maintainer | Expose | Env | Add | Copy
    | Arg | OnBuild | StopSignal | Healthcheck | User | Workdir | Volume
)


INSTRUCTION_CLASSES: dict[str, type[_Instruction]] = {
    cls.KEYWORD: cls
    for cls in (
        From, Run, Cmd, Entrypoint, Shell, Label, Maintainer, Expose, Env, Add, Copy, Arg,
        OnBuild, StopSignal, Healthcheck, User, Workdir, Volume,
    )
}


@dataclass(frozen=True, slots=True)
class Stage:
    """One build stage: its FROM and the instructions after it, up to the next FROM."""

    index: int
    name: str | None
    base: From
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """A parsed Dockerfile: directives, every instruction in file order, the global
    ARGs (those before the first FROM) and the stages."""

    directives: Directives
    instructions: tuple[Instruction, ...]
    global_args: tuple[Arg, ...]
    stages: tuple[Stage, ...]

    def stage(self, name_or_index: str | int) -> Stage:
        """The stage with that name (case-insensitive) or index; KeyError if none."""
        for st in self.stages:
            if isinstance(name_or_index, int):
                if st.index == name_or_index:
                    return st
            elif st.name is not None and st.name == name_or_index.lower():
                return st
        raise KeyError(name_or_index)
