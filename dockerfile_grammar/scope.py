"""ARG and ENV scoping: which variables each instruction is expanded with. Pure.

The rules follow BuildKit's Dockerfile frontend (``dockerfile2llb/convert.go``):

* **Global ARGs** (before the first FROM) are processed in order. A build arg replaces a
  default (and is not expanded); a default is expanded with the global ARGs before it and
  the automatic platform ARGs; a global ARG with neither stays unset. The result, plus
  the platform ARGs, is :attr:`BuildScope.global_env`: it expands FROM lines (image and
  ``--platform``) and ``--from`` values, and nothing else.
* **Inside a stage** nothing global is visible until re-declared: ``ARG NAME`` takes the
  build arg if one was given, else its own default (expanded with the stage environment
  so far), else the global value (this is how ``ARG TARGETARCH`` picks up the platform).
  Each declaration of one ARG instruction sees the previous ones.
* ARG and ENV take effect in file order on one environment, a later definition replacing
  an earlier one. So an ENV after an ARG of the same name wins, as the Dockerfile
  reference says; BuildKit also lets a later ARG override an earlier ENV (or base image
  ENV) in the build-time environment. ARG values never reach the image config.
* All pairs of one ENV instruction are expanded with the environment *before* it
  (``ENV a=1 b=$a`` gives b the old ``a``).
* A stage based on another stage inherits that stage's whole environment, ARGs included
  (BuildKit behaviour); a stage based on an image starts from the image config's Env.
* Instructions whose words are expanded here: ADD, COPY, ENV, EXPOSE, LABEL, STOPSIGNAL,
  USER, VOLUME, WORKDIR, ARG defaults, RUN ``--mount`` options, and FROM (with the
  global environment). RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK leave ``$`` to the
  shell at run time. ONBUILD is not expanded; its trigger is, when a child stage runs
  it (pass the parsed triggers to :meth:`BuildScope.stage`).
"""

from __future__ import annotations

import platform as _host
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from .errors import DockerfileError
from .expand import ExpansionError, expand, expand_words
from .instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Heredoc,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Mount,
    OnBuild,
    Run,
    Shell,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
)

__all__ = [
    "BuildScope",
    "EXPANDING_KEYWORDS",
    "PLATFORM_ARG_NAMES",
    "PROXY_ARG_NAMES",
    "Platform",
    "ScopedInstruction",
    "SHELL_KEYWORDS",
    "StageScope",
    "expand_instruction",
    "expands_variables",
    "host_platform",
    "normalize_machine",
    "platform_args",
]

# The automatic ARGs BuildKit defines (values "" when not applicable, e.g. OSVERSION).
PLATFORM_ARG_NAMES = (
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDOSVERSION",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETOSVERSION",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
)
# Predefined build args usable without an ARG line; they reach RUN only (never the cache).
PROXY_ARG_NAMES = frozenset(
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (base, base.lower())
)
EXPANDING_KEYWORDS = frozenset(
    {"ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME"}
    | {"WORKDIR"}
)
SHELL_KEYWORDS = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "HEALTHCHECK"})

# uname -m -> (GOARCH, variant), normalized as containerd's platforms package does.
_MACHINE_ARCH: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "i386": ("386", ""),
    "i486": ("386", ""),
    "i586": ("386", ""),
    "i686": ("386", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armv8l": ("arm64", ""),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "ppc64le": ("ppc64le", ""),
    "ppc64": ("ppc64", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64": ("mips64", ""),
    "loongarch64": ("loong64", ""),
}


@dataclass(frozen=True, slots=True)
class Platform:
    """An OCI platform, written ``os/arch[/variant]``."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``linux/arm64``, ``linux/arm/v7`` or a bare ``arm64`` (os linux)."""
        parts = text.strip().lower().split("/")
        if not all(parts) or len(parts) > 3:
            raise ValueError(f"invalid platform {text!r}: want os/arch[/variant]")
        if len(parts) == 1:
            parts = ["linux", *parts]
        arch, variant = _MACHINE_ARCH.get(parts[1], (parts[1], ""))
        if len(parts) == 3:
            variant = parts[2]
        if arch == "arm64" and variant == "v8":
            variant = ""  # the default arm64 variant is left out, as containerd does
        return cls(parts[0], arch, variant)

    def __str__(self) -> str:
        tail = f"/{self.variant}" if self.variant else ""
        return f"{self.os}/{self.architecture}{tail}"


def normalize_machine(machine: str) -> tuple[str, str]:
    """Map ``uname -m`` names to Go (architecture, variant): x86_64 -> amd64, aarch64 ->
    arm64, armv7l -> arm/v7; unknown names pass through lowercased."""
    lowered = machine.lower()
    return _MACHINE_ARCH.get(lowered, (lowered, ""))


def host_platform() -> Platform:
    """The platform of this machine (``platform.machine()`` mapped to Go names)."""
    arch, variant = normalize_machine(_host.machine())
    os_name = {"win32": "windows", "cygwin": "windows"}.get(sys.platform, sys.platform)
    return Platform("linux" if os_name.startswith("linux") else os_name, arch, variant)


def platform_args(
    target: Platform | None = None, build: Platform | None = None, *, target_stage: str = ""
) -> dict[str, str]:
    """The automatic platform ARGs; both platforms default to :func:`host_platform`."""
    build = build or host_platform()
    target = target or build
    return {
        "BUILDPLATFORM": str(build),
        "BUILDOS": build.os,
        "BUILDOSVERSION": "",
        "BUILDARCH": build.architecture,
        "BUILDVARIANT": build.variant,
        "TARGETPLATFORM": str(target),
        "TARGETOS": target.os,
        "TARGETOSVERSION": "",
        "TARGETARCH": target.architecture,
        "TARGETVARIANT": target.variant,
        "TARGETSTAGE": target_stage,
    }


def expands_variables(instruction: Instruction) -> bool:
    """Whether the builder expands this instruction's words (False: the shell does).

    RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK and ONBUILD answer False. (RUN's
    ``--mount`` options are still expanded by :func:`expand_instruction`.)
    """
    return instruction.KEYWORD in EXPANDING_KEYWORDS


@dataclass(frozen=True, slots=True)
class ScopedInstruction:
    """One instruction of a stage with the environment it is expanded with.

    ``env`` is the build-time environment in effect *before* the instruction (base
    Env, ENVs and ARG values so far); RUN steps run with it. ``arg_names`` lists the ARGs
    with a value in that environment, in declaration order (BuildKit shows them in RUN
    history and they key the build cache). ``expanded`` is the instruction with its
    words expanded (the same object for instructions that expand nothing).
    """

    instruction: Instruction
    expanded: Instruction
    env: Mapping[str, str]
    arg_names: tuple[str, ...]

    @property
    def expands(self) -> bool:
        return expands_variables(self.instruction)


@dataclass(frozen=True, slots=True)
class StageScope:
    """The scoped instructions of one stage and the environment it ends with.

    ``image_env`` is the Env the image config gets (base Env plus ENV instructions, never
    ARG values); ``env`` is the final build-time environment (ARGs included), which a
    stage built ``FROM`` this one inherits.
    """

    stage: Stage | None
    instructions: tuple[ScopedInstruction, ...]
    env: Mapping[str, str]
    arg_names: tuple[str, ...]
    image_env: Mapping[str, str]
    declared_args: frozenset[str] = field(default=frozenset())


class BuildScope:
    """Variable scoping for one build of ``dockerfile``.

    ``build_args`` are the ``--build-arg`` values. ``platform_values`` are the automatic
    platform ARGs (default: :func:`platform_args` for this host); build args of the same
    names override them.
    """

    def __init__(
        self,
        dockerfile: Dockerfile,
        build_args: Mapping[str, str] | None = None,
        *,
        platform_values: Mapping[str, str] | None = None,
    ) -> None:
        self.dockerfile = dockerfile
        self.escape = dockerfile.directives.escape
        self.build_args: Mapping[str, str] = MappingProxyType(dict(build_args or {}))
        automatic = dict(platform_args() if platform_values is None else platform_values)
        for name in automatic:
            if name in self.build_args:
                automatic[name] = self.build_args[name]
        env = dict(automatic)
        for instruction in dockerfile.global_args:
            for decl in instruction.args:
                if decl.name in self.build_args:
                    env[decl.name] = self.build_args[decl.name]
                elif decl.default is not None:
                    with _located(instruction):
                        env[decl.name] = expand(decl.default, env, escape=self.escape)
        self.global_env: Mapping[str, str] = MappingProxyType(env)

    @property
    def proxy_env(self) -> Mapping[str, str]:
        """Predefined proxy build args: added to RUN's environment, kept out of cache keys."""
        return {k: v for k, v in self.build_args.items() if k in PROXY_ARG_NAMES}

    def base_image(self, stage: Stage) -> str:
        """The stage's FROM image expanded with the global environment."""
        with _located(stage.base):
            return expand(stage.base.image, self.global_env, escape=self.escape)

    def base_platform(self, stage: Stage) -> str | None:
        """The stage's ``FROM --platform`` expanded with the global environment."""
        raw = stage.base.platform
        if raw is None:
            return None
        with _located(stage.base):
            return expand(raw, self.global_env, escape=self.escape)

    def stage(
        self,
        stage: Stage | int | str,
        *,
        base_env: Mapping[str, str] | None = None,
        parent: StageScope | None = None,
        triggers: Sequence[Instruction] = (),
    ) -> StageScope:
        """Scope every instruction of ``stage``.

        Give ``parent`` (the scope of the stage this one is built FROM) or ``base_env``
        (the base image's config Env as a mapping). ``triggers`` are the base image's
        ONBUILD instructions, run first. Raises :class:`DockerfileError` (with the
        instruction's location) when a word cannot be expanded.
        """
        if not isinstance(stage, Stage):
            stage = self.dockerfile.stage(stage)
        if parent is not None:
            env = dict(parent.env)
            image_env = dict(parent.image_env)
            arg_names = list(parent.arg_names)
        else:
            env = dict(base_env or {})
            image_env = dict(env)
            arg_names = []
        declared: set[str] = set()
        scoped: list[ScopedInstruction] = []
        for instruction in (*triggers, *stage.instructions):
            before = MappingProxyType(dict(env))
            names = tuple(arg_names)
            expanded: Instruction
            if isinstance(instruction, Arg):
                expanded = self._declare(instruction, env, arg_names, declared)
            else:
                with _located(instruction):
                    expanded = expand_instruction(
                        instruction, before, escape=self.escape, global_env=self.global_env
                    )
                if isinstance(expanded, Env):
                    for pair in expanded.pairs:
                        env[pair.key] = pair.value
                        image_env[pair.key] = pair.value
            scoped.append(ScopedInstruction(instruction, expanded, before, names))
        return StageScope(
            stage,
            tuple(scoped),
            MappingProxyType(env),
            tuple(arg_names),
            MappingProxyType(image_env),
            frozenset(declared),
        )

    def stages(
        self,
        base_envs: Mapping[int, Mapping[str, str]] | None = None,
        *,
        only: Iterable[int] | None = None,
    ) -> Iterator[StageScope]:
        """Scope stages in file order; a stage FROM an earlier stage inherits its scope.

        ``base_envs`` maps a stage index to its base image Env (default: empty). ``only``
        limits the result to those stage indexes (the ones a build needs: like BuildKit,
        stages that are not built are not expanded, so their errors do not count); a
        parent stage outside ``only`` is still scoped for its children to inherit.
        """
        envs = base_envs or {}
        done: dict[int, StageScope] = {}

        def scope_of(stage: Stage) -> StageScope:
            if stage.index not in done:
                parent_index = self._parent_stage(stage)
                parent = None
                if parent_index is not None:
                    parent = scope_of(self.dockerfile.stages[parent_index])
                env = envs.get(stage.index)
                done[stage.index] = self.stage(stage, base_env=env, parent=parent)
            return done[stage.index]

        wanted = None if only is None else set(only)
        for stage in self.dockerfile.stages:
            if wanted is None or stage.index in wanted:
                yield scope_of(stage)

    def unused_build_args(self, stages: Iterable[int] | None = None) -> tuple[str, ...]:
        """Build args no ARG consumes (BuildKit warns about these), sorted.

        A build arg counts as used when a global ARG or an ARG in one of ``stages``
        (default: all) declares it, or when it is predefined (proxy, platform, BUILDKIT_*).
        """
        wanted = None if stages is None else set(stages)
        declared = {d.name for a in self.dockerfile.global_args for d in a.args}
        for stage in self.dockerfile.stages:
            if wanted is None or stage.index in wanted:
                declared.update(_declared_in(stage.instructions))
        return tuple(
            sorted(
                name
                for name in self.build_args
                if name not in declared
                and name not in PROXY_ARG_NAMES
                and name not in PLATFORM_ARG_NAMES
                and not name.startswith("BUILDKIT_")
            )
        )

    # -- internals ------------------------------------------------------------------------
    def _declare(
        self, instruction: Arg, env: dict[str, str], arg_names: list[str], declared: set[str]
    ) -> Arg:
        decls = []
        for decl in instruction.args:
            declared.add(decl.name)
            if decl.name in self.build_args:
                value: str | None = self.build_args[decl.name]
            elif decl.default is not None:
                with _located(instruction):
                    value = expand(decl.default, env, escape=self.escape)
            else:
                value = self.global_env.get(decl.name)
            if value is not None:
                env[decl.name] = value
                if decl.name in arg_names:
                    arg_names.remove(decl.name)
                arg_names.append(decl.name)
            decls.append(replace(decl, default=value))
        return replace(instruction, args=tuple(decls))

    def _parent_stage(self, stage: Stage) -> int | None:
        name = self.base_image(stage).lower()
        for earlier in self.dockerfile.stages[: stage.index]:
            if earlier.name is not None and earlier.name == name:
                return earlier.index
        return None


def expand_instruction(
    instruction: Instruction,
    env: Mapping[str, str],
    *,
    escape: str = "\\",
    global_env: Mapping[str, str] | None = None,
) -> Instruction:
    """Return ``instruction`` with the words Docker expands replaced by their expansion.

    ARG is returned unchanged (its defaults are sequential; see :meth:`BuildScope.stage`).
    FROM and ``--from`` values use ``global_env`` (default: ``env``). Raises
    :class:`~dockerfile_grammar.expand.ExpansionError`.
    """
    glob = env if global_env is None else global_env

    def word(text: str) -> str:
        return expand(text, env, escape=escape)

    def maybe(text: str | None) -> str | None:
        return None if text is None else word(text)

    if isinstance(instruction, Env | Label):
        pairs = tuple(KeyValue(word(p.key), word(p.value)) for p in instruction.pairs)
        return replace(instruction, pairs=pairs)
    if isinstance(instruction, Copy):
        return replace(
            instruction,
            sources=tuple(word(s) for s in instruction.sources),
            dest=word(instruction.dest),
            chown=maybe(instruction.chown),
            chmod=maybe(instruction.chmod),
            heredocs=_expand_heredocs(instruction.heredocs, env),
            from_=None
            if instruction.from_ is None
            else expand(instruction.from_, glob, escape=escape),
        )
    if isinstance(instruction, Add):
        return replace(
            instruction,
            sources=tuple(word(s) for s in instruction.sources),
            dest=word(instruction.dest),
            chown=maybe(instruction.chown),
            chmod=maybe(instruction.chmod),
            checksum=maybe(instruction.checksum),
            heredocs=_expand_heredocs(instruction.heredocs, env),
        )
    if isinstance(instruction, Workdir):
        return replace(instruction, path=word(instruction.path))
    if isinstance(instruction, User):
        return replace(instruction, user=word(instruction.user))
    if isinstance(instruction, StopSignal):
        return replace(instruction, signal=word(instruction.signal))
    if isinstance(instruction, Volume):
        return replace(instruction, paths=tuple(word(p) for p in instruction.paths))
    if isinstance(instruction, Expose):
        ports = tuple(
            port for raw in instruction.ports for port in expand_words(raw, env, escape=escape)
        )
        return replace(instruction, ports=ports)
    if isinstance(instruction, Run):
        mounts = tuple(_expand_mount(m, env, glob, escape) for m in instruction.mounts)
        return replace(instruction, mounts=mounts) if instruction.mounts else instruction
    if isinstance(instruction, From):
        return replace(
            instruction,
            image=expand(instruction.image, glob, escape=escape),
            platform=None
            if instruction.platform is None
            else expand(instruction.platform, glob, escape=escape),
        )
    if isinstance(instruction, Arg | Cmd | Entrypoint | Shell | Healthcheck | Maintainer | OnBuild):
        return instruction
    raise TypeError(f"unknown instruction {type(instruction).__name__}")


def _expand_heredocs(heredocs: tuple[Heredoc, ...], env: Mapping[str, str]) -> tuple[Heredoc, ...]:
    # BuildKit expands unquoted COPY/ADD heredocs with a quote-blind backslash lexer.
    return tuple(
        replace(doc, content=expand(doc.content, env, process_quotes=False)) if doc.expand else doc
        for doc in heredocs
    )


_MOUNT_WORD_FIELDS = ("target", "source", "id", "sharing", "mode", "uid", "gid", "size", "env")


def _expand_mount(
    mount: Mount, env: Mapping[str, str], glob: Mapping[str, str], escape: str
) -> Mount:
    changes: dict[str, str | None] = {}
    for name in _MOUNT_WORD_FIELDS:
        value = getattr(mount, name)
        if value is not None:
            changes[name] = expand(value, env, escape=escape)
    if mount.from_ is not None:
        changes["from_"] = expand(mount.from_, glob, escape=escape)
    return replace(mount, **changes)  # type: ignore[arg-type]


def _declared_in(instructions: Iterable[Instruction]) -> Iterator[str]:
    for instruction in instructions:
        if isinstance(instruction, Arg):
            yield from (d.name for d in instruction.args)


@contextmanager
def _located(instruction: Instruction) -> Iterator[None]:
    """Turn an ExpansionError raised inside into a DockerfileError at ``instruction``."""
    try:
        yield
    except ExpansionError as exc:
        loc = instruction.location
        raise DockerfileError(
            f"{instruction.KEYWORD}: {exc}",
            filename=loc.filename,
            line=loc.line,
            column=loc.column,
            source_line=instruction.original.splitlines()[0] if instruction.original else "",
        ) from exc
