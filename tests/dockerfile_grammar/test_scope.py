"""ARG/ENV scoping follows BuildKit: global ARGs, stage ARGs, ENV order, inheritance."""

from __future__ import annotations

import platform

import pytest

from dockerfile_grammar import parse
from dockerfile_grammar.errors import DockerfileError
from dockerfile_grammar.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Label,
    OnBuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from dockerfile_grammar.scope import (
    BuildScope,
    Platform,
    ScopedInstruction,
    StageScope,
    expand_instruction,
    expands_variables,
    host_platform,
    normalize_machine,
    platform_args,
)

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
FIXED_PLATFORMS = platform_args(ARM64, AMD64)


def scope_of(text: str, build_args: dict[str, str] | None = None) -> BuildScope:
    return BuildScope(parse(text), build_args, platform_values=FIXED_PLATFORMS)


def stage_scope(text: str, build_args: dict[str, str] | None = None, index: int = 0) -> StageScope:
    return list(scope_of(text, build_args).stages())[index]


def step(scope: StageScope, keyword: str, nth: int = 0) -> ScopedInstruction:
    found = [s for s in scope.instructions if keyword == s.instruction.KEYWORD]
    return found[nth]


# --- global ARGs ------------------------------------------------------------------------


def test_global_arg_expands_from_line() -> None:
    bs = scope_of("ARG BASE=alpine\nARG TAG=3.19\nFROM $BASE:${TAG}\n")
    assert bs.base_image(bs.dockerfile.stages[0]) == "alpine:3.19"


def test_build_arg_overrides_global_default_without_expansion() -> None:
    bs = scope_of("ARG TAG=3.19\nFROM alpine:$TAG\n", {"TAG": "$edge"})
    assert bs.base_image(bs.dockerfile.stages[0]) == "alpine:$edge"


def test_global_default_sees_earlier_globals_and_platform_args_only() -> None:
    bs = scope_of(
        "ARG A=x\nARG B=${A}-${TARGETARCH}-${UNDECLARED}\nFROM b:$B\n", {"UNDECLARED": "u"}
    )
    assert bs.global_env["B"] == "x-arm64-"


def test_global_arg_without_value_is_unset() -> None:
    bs = scope_of("ARG V\nFROM img:${V-none}\n")
    assert "V" not in bs.global_env
    assert bs.base_image(bs.dockerfile.stages[0]) == "img:none"


def test_global_arg_is_invisible_in_stage_until_redeclared() -> None:
    scope = stage_scope("ARG V=1\nFROM scratch\nWORKDIR /a$V\nARG V\nWORKDIR /b$V\n")
    workdirs = [s.expanded for s in scope.instructions if isinstance(s.expanded, Workdir)]
    assert [w.path for w in workdirs] == ["/a", "/b1"]


def test_redeclared_global_takes_the_build_arg_over_the_global_default() -> None:
    scope = stage_scope("ARG V=1\nFROM scratch\nARG V\n", {"V": "2"})
    assert scope.env["V"] == "2"


def test_platform_args_work_in_from_without_declaration() -> None:
    bs = scope_of("FROM --platform=$BUILDPLATFORM img:$TARGETOS-$TARGETARCH\n")
    stage = bs.dockerfile.stages[0]
    assert bs.base_platform(stage) == "linux/amd64"
    assert bs.base_image(stage) == "img:linux-arm64"


def test_platform_args_need_declaration_inside_a_stage() -> None:
    scope = stage_scope(
        "FROM scratch\nWORKDIR /$TARGETARCH\nARG TARGETARCH\nWORKDIR /$TARGETARCH\n"
    )
    paths = [s.expanded.path for s in scope.instructions if isinstance(s.expanded, Workdir)]
    assert paths == ["/", "/arm64"]


def test_build_arg_overrides_an_automatic_platform_arg() -> None:
    bs = scope_of("FROM img:$TARGETPLATFORM\n", {"TARGETPLATFORM": "linux/s390x"})
    assert bs.base_image(bs.dockerfile.stages[0]) == "img:linux/s390x"


# --- stage ARG and ENV ------------------------------------------------------------------


def test_stage_arg_precedence_build_arg_then_default_then_global() -> None:
    text = "ARG G=global\nFROM scratch\nARG A=default\nARG G\nARG N\n"
    scope = stage_scope(text, {"A": "cli"})
    assert scope.env["A"] == "cli"
    assert scope.env["G"] == "global"
    assert "N" not in scope.env
    scope = stage_scope(text)
    assert scope.env["A"] == "default"


def test_arg_default_is_expanded_with_the_stage_environment() -> None:
    scope = stage_scope("FROM scratch\nENV HOME=/root\nARG DIR=$HOME/app\n")
    assert scope.env["DIR"] == "/root/app"
    arg = step(scope, "ARG").expanded
    assert isinstance(arg, Arg) and arg.args[0].default == "/root/app"


def test_declarations_in_one_arg_see_each_other() -> None:
    scope = stage_scope("FROM scratch\nARG A=1 B=$A\n")
    assert (scope.env["A"], scope.env["B"]) == ("1", "1")


def test_env_pairs_are_expanded_with_the_environment_before_the_instruction() -> None:
    scope = stage_scope("FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    assert (scope.env["def"], scope.env["ghi"]) == ("hello", "bye")


def test_env_after_arg_of_same_name_wins() -> None:
    text = "FROM scratch\nARG VER\nENV VER=v1.0.0\nRUN echo $VER\n"
    scope = stage_scope(text, {"VER": "v2.0.0"})
    assert step(scope, "RUN").env["VER"] == "v1.0.0"
    assert scope.image_env["VER"] == "v1.0.0"


def test_env_default_from_arg_idiom() -> None:
    text = "FROM scratch\nARG VER\nENV VER=${VER:-v1.0.0}\n"
    assert stage_scope(text).image_env["VER"] == "v1.0.0"
    assert stage_scope(text, {"VER": "v2"}).image_env["VER"] == "v2"


def test_later_arg_overrides_env_at_build_time_but_not_in_the_image() -> None:
    scope = stage_scope("FROM scratch\nENV MODE=env\nARG MODE=arg\nRUN x\n")
    assert step(scope, "RUN").env["MODE"] == "arg"
    assert scope.image_env["MODE"] == "env"


def test_base_image_env_is_the_starting_environment() -> None:
    bs = scope_of("FROM img\nENV PATH=$PATH:/opt/bin\n")
    scope = bs.stage(0, base_env={"PATH": "/usr/bin"})
    assert scope.image_env["PATH"] == "/usr/bin:/opt/bin"


def test_run_steps_list_the_args_in_scope_in_declaration_order() -> None:
    scope = stage_scope("FROM scratch\nARG B=1\nARG A=2\nARG EMPTY\nRUN x\nARG B=3\nRUN y\n")
    assert step(scope, "RUN", 0).arg_names == ("B", "A")
    assert step(scope, "RUN", 1).arg_names == ("A", "B")


def test_arg_values_are_not_part_of_image_env() -> None:
    scope = stage_scope("FROM scratch\nARG SECRETISH=1\n")
    assert "SECRETISH" in scope.env
    assert "SECRETISH" not in scope.image_env


def test_stage_built_from_a_stage_inherits_its_args_and_env() -> None:
    text = "FROM scratch AS base\nARG A=1\nENV E=2\nFROM base\nRUN x\nFROM scratch\nRUN y\n"
    scopes = list(scope_of(text).stages())
    assert dict(step(scopes[1], "RUN").env) == {"A": "1", "E": "2"}
    assert step(scopes[1], "RUN").arg_names == ("A",)
    assert dict(scopes[1].image_env) == {"E": "2"}
    assert dict(step(scopes[2], "RUN").env) == {}


def test_only_the_requested_stages_are_expanded() -> None:
    text = "FROM scratch AS base\nARG A=1\nFROM scratch AS broken\nWORKDIR ${X:?}\nFROM base\n"
    bs = scope_of(text)
    scopes = list(bs.stages(only=[2]))
    assert [s.stage.index for s in scopes if s.stage] == [2]
    assert scopes[0].env == {"A": "1"}
    with pytest.raises(DockerfileError):
        list(bs.stages())


def test_stages_are_scoped_independently() -> None:
    scopes = list(scope_of("FROM scratch\nARG A=1\nFROM scratch\nWORKDIR /$A\n").stages())
    assert step(scopes[1], "WORKDIR").expanded == Workdir(
        location=step(scopes[1], "WORKDIR").instruction.location,
        original="",
        flags=(),
        path="/",
    )


# --- which instructions expand ---------------------------------------------------------

EXPANDING_TEXT = """\
FROM scratch
ARG P=80 U=app SUM MODE
ENV D=/data
ADD --chown=$U --checksum=$SUM http://x/$U.tgz $D/
COPY --chown=$U:$U --chmod=$MODE a/$U $D/
LABEL "k.$U"="v $D"
EXPOSE $P ${P}/udp
STOPSIGNAL SIG$U
USER $U
VOLUME $D/v1 $D/v2
WORKDIR $D
RUN --mount=type=cache,id=$U,target=$D/cache echo $D
CMD echo $D
ENTRYPOINT ["echo", "$D"]
SHELL ["/bin/sh", "-c$D"]
HEALTHCHECK CMD curl $D
ONBUILD RUN echo $D
"""


def test_expanding_instructions_get_their_words_expanded() -> None:
    scope = stage_scope(EXPANDING_TEXT, {"SUM": "sha256:ab", "MODE": "0755"})
    by_kind = {type(s.expanded): s.expanded for s in scope.instructions}
    add = by_kind[Add]
    assert isinstance(add, Add)
    assert (add.chown, add.checksum, add.sources, add.dest) == (
        "app", "sha256:ab", ("http://x/app.tgz",), "/data/",
    )  # fmt: skip
    copy = by_kind[Copy]
    assert isinstance(copy, Copy)
    assert (copy.chown, copy.chmod, copy.sources, copy.dest) == (
        "app:app",
        "0755",
        ("a/app",),
        "/data/",
    )
    label = by_kind[Label]
    assert isinstance(label, Label) and (label.pairs[0].key, label.pairs[0].value) == (
        "k.app",
        "v /data",
    )
    expose = by_kind[Expose]
    assert isinstance(expose, Expose) and expose.ports == ("80", "80/udp")
    stopsignal = by_kind[StopSignal]
    assert isinstance(stopsignal, StopSignal) and stopsignal.signal == "SIGapp"
    user = by_kind[User]
    assert isinstance(user, User) and user.user == "app"
    volume = by_kind[Volume]
    assert isinstance(volume, Volume)
    assert volume.paths == ("/data/v1", "/data/v2")
    workdir = by_kind[Workdir]
    assert isinstance(workdir, Workdir) and workdir.path == "/data"
    run = by_kind[Run]
    assert isinstance(run, Run)
    assert (run.mounts[0].id, run.mounts[0].target) == ("app", "/data/cache")


@pytest.mark.parametrize("kind", [Run, Cmd, Entrypoint, Shell, Healthcheck, OnBuild])
def test_shell_instructions_keep_their_dollars(kind: type) -> None:
    scope = stage_scope(EXPANDING_TEXT, {"SUM": "x", "MODE": "1"})
    scoped = next(s for s in scope.instructions if isinstance(s.instruction, kind))
    text = scoped.expanded.original
    assert "$D" in text
    if isinstance(scoped.expanded, Run) and isinstance(scoped.instruction, Run):
        assert scoped.expanded.command == scoped.instruction.command
    else:
        assert scoped.expanded is scoped.instruction


def test_expands_variables_classification() -> None:
    df = parse(EXPANDING_TEXT)
    kinds = {i.KEYWORD: expands_variables(i) for i in df.stages[0].instructions}
    assert kinds == {
        "ARG": True, "ENV": True, "ADD": True, "COPY": True, "LABEL": True, "EXPOSE": True,
        "STOPSIGNAL": True, "USER": True, "VOLUME": True, "WORKDIR": True, "RUN": False,
        "CMD": False, "ENTRYPOINT": False, "SHELL": False, "HEALTHCHECK": False,
        "ONBUILD": False,
    }  # fmt: skip


def test_onbuild_trigger_is_expanded_only_when_run_in_a_child() -> None:
    parent = parse("FROM scratch\nONBUILD WORKDIR /$DIR\n")
    trigger = parent.stages[0].instructions[0]
    assert isinstance(trigger, OnBuild)
    child = BuildScope(parse("FROM parent\nARG DIR=x\n"), platform_values=FIXED_PLATFORMS)
    scope = child.stage(0, base_env={"DIR": "from-image"}, triggers=[trigger.instruction])
    first = scope.instructions[0].expanded
    assert isinstance(first, Workdir) and first.path == "/from-image"


def test_copy_from_is_expanded_with_global_args_only() -> None:
    text = "ARG SRC=builder\nFROM scratch\nARG SRC=local\nCOPY --from=$SRC /a /b\n"
    copy = step(stage_scope(text), "COPY").expanded
    assert isinstance(copy, Copy) and copy.from_ == "builder"


def test_copy_heredoc_expands_unless_delimiter_is_quoted() -> None:
    text = "FROM scratch\nENV N=v\nCOPY <<A <<'B' /dst/\n$N \"$N\"\nA\n$N\nB\n"
    copy = step(stage_scope(text), "COPY").expanded
    assert isinstance(copy, Copy)
    assert [h.content for h in copy.heredocs] == ['v "v"\n', "$N\n"]


def test_backtick_escape_directive_is_used() -> None:
    scope = stage_scope("# escape=`\nFROM scratch\nENV A=1\nWORKDIR C:\\x`$A\\$A\n")
    workdir = step(scope, "WORKDIR").expanded
    assert isinstance(workdir, Workdir) and workdir.path == "C:\\x$A\\1"


def test_env_keys_are_expanded_too() -> None:
    scope = stage_scope("FROM scratch\nARG K=name\nENV $K=v\n")
    env = step(scope, "ENV").expanded
    assert isinstance(env, Env) and env.pairs[0].key == "name"


def test_expand_instruction_is_usable_alone() -> None:
    workdir = parse("FROM scratch\nWORKDIR /$X\n").stages[0].instructions[0]
    assert expand_instruction(workdir, {"X": "y"}) == Workdir(
        location=workdir.location, original="", flags=(), path="/y"
    )


# --- errors and reporting ---------------------------------------------------------------


def test_expansion_failure_is_a_located_dockerfile_error() -> None:
    with pytest.raises(DockerfileError) as caught:
        stage_scope("FROM scratch\n\nWORKDIR ${DIR:?DIR must be set}\n")
    error = caught.value
    assert error.line == 3
    assert "DIR: DIR must be set" in error.message
    assert error.source_line.startswith("WORKDIR")


def test_bad_global_default_reports_its_line() -> None:
    with pytest.raises(DockerfileError) as caught:
        scope_of("ARG OK=1\nARG BAD=${\nFROM scratch\n")
    assert caught.value.line == 2


def test_unused_build_args_are_reported() -> None:
    text = "ARG G\nFROM scratch AS a\nARG A\nFROM scratch AS b\nARG B\n"
    bs = scope_of(
        text,
        {
            "G": "1", "A": "1", "B": "1", "NOPE": "1", "http_proxy": "p", "NO_PROXY": "n",
            "TARGETARCH": "arm64", "BUILDKIT_INLINE_CACHE": "1",
        },
    )  # fmt: skip
    assert bs.unused_build_args() == ("NOPE",)
    assert bs.unused_build_args(stages=[1]) == ("A", "NOPE")
    assert dict(bs.proxy_env) == {"http_proxy": "p", "NO_PROXY": "n"}


def test_proxy_build_args_are_not_in_the_stage_environment() -> None:
    scope = stage_scope("FROM scratch\nRUN x\n", {"https_proxy": "p"})
    assert "https_proxy" not in step(scope, "RUN").env


# --- platforms ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", ("amd64", "")),
        ("aarch64", ("arm64", "")),
        ("armv7l", ("arm", "v7")),
        ("armv6l", ("arm", "v6")),
        ("i686", ("386", "")),
        ("ppc64le", ("ppc64le", "")),
        ("s390x", ("s390x", "")),
        ("riscv64", ("riscv64", "")),
        ("Weird", ("weird", "")),
    ],
)
def test_machine_names_map_to_go_architectures(machine: str, expected: tuple[str, str]) -> None:
    assert normalize_machine(machine) == expected


def test_host_platform_matches_this_machine() -> None:
    host = host_platform()
    assert host.os == "linux"
    assert (host.architecture, host.variant) == normalize_machine(platform.machine())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/arm/v7", "linux/arm/v7"),
        ("linux/arm64/v8", "linux/arm64"),
        ("arm64", "linux/arm64"),
        ("LINUX/AMD64", "linux/amd64"),
        ("linux/aarch64", "linux/arm64"),
    ],
)
def test_platform_parse_normalizes(text: str, expected: str) -> None:
    assert str(Platform.parse(text)) == expected


@pytest.mark.parametrize("text", ["", "linux/", "a/b/c/d", "/amd64"])
def test_platform_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        Platform.parse(text)


def test_platform_args_describe_both_platforms() -> None:
    args = platform_args(Platform("linux", "arm", "v7"), AMD64, target_stage="final")
    assert args["TARGETPLATFORM"] == "linux/arm/v7"
    assert (args["TARGETOS"], args["TARGETARCH"], args["TARGETVARIANT"]) == ("linux", "arm", "v7")
    assert (args["BUILDPLATFORM"], args["BUILDARCH"], args["BUILDVARIANT"]) == (
        "linux/amd64",
        "amd64",
        "",
    )
    assert args["TARGETSTAGE"] == "final"


def test_default_platform_args_use_the_host() -> None:
    bs = BuildScope(parse("FROM scratch\n"))
    assert bs.global_env["TARGETPLATFORM"] == str(host_platform())
    assert bs.global_env["BUILDPLATFORM"] == str(host_platform())
