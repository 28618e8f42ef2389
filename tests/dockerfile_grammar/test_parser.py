"""Behaviour of the Dockerfile parser on focused snippets (the corpus covers whole files)."""

from __future__ import annotations

import pytest

from dockerfile_grammar import (
    Copy,
    DockerfileError,
    Env,
    ExecCommand,
    FlagError,
    From,
    OnBuild,
    Run,
    ShellCommand,
    StageError,
    UnknownInstructionError,
    parse,
)


def only(text: str):  # the last instruction of a one-stage file
    return parse(text).instructions[-1]


def test_keywords_are_case_insensitive() -> None:
    df = parse("from busybox\nrun echo hi\nCoPy a b\n")
    assert [i.KEYWORD for i in df.instructions] == ["FROM", "RUN", "COPY"]


def test_continuation_joins_pieces_without_separator_and_skips_comments_and_blanks() -> None:
    run = only("FROM x\nRUN a \\\n# note\n\n   b \\\n  c\n")
    assert isinstance(run, Run)
    assert run.command == ShellCommand("a    b   c")
    assert (run.location.line, run.location.end_line) == (2, 6)


def test_trailing_continuation_at_end_of_file_ends_the_instruction() -> None:
    run = only("FROM x\nRUN echo hi \\")
    assert run.command == ShellCommand("echo hi")


def test_backtick_escape_directive_changes_continuation() -> None:
    df = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  /s\n")
    assert df.directives.escape == "`"
    assert df.instructions[-1].command == ShellCommand("dir c:\\   /s")


def test_directive_after_comment_is_a_plain_comment() -> None:
    df = parse("# hello\n# escape=`\nFROM x\n")
    assert df.directives.escape == "\\"


def test_invalid_json_falls_back_to_shell_form() -> None:
    assert only("FROM x\nCMD [\"a\", 'b']\n").command == ShellCommand("[\"a\", 'b']")
    assert only('FROM x\nCMD ["a", "b"]\n').command == ExecCommand(("a", "b"))


def test_json_array_with_non_string_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="strings only"):
        parse('FROM x\nCMD ["a", 1]\n')


def test_unknown_instruction_suggests_the_closest_keyword() -> None:
    with pytest.raises(UnknownInstructionError) as info:
        parse("FROM x\n  RUNN make\n")
    assert str(info.value) == 'Dockerfile:2:3: unknown instruction "RUNN" (did you mean RUN?)'
    assert info.value.source_line == "  RUNN make"


def test_flag_of_another_instruction_is_named_as_such() -> None:
    with pytest.raises(FlagError, match=r"--chown is not valid for RUN"):
        parse("FROM x\nRUN --chown=1 true\n")


def test_flag_error_points_at_the_flag_on_a_continuation_line() -> None:
    with pytest.raises(FlagError) as info:
        parse("FROM x\nCOPY --from=a \\\n  --chwon=1 a b\n")
    assert (info.value.line, info.value.column) == (3, 3)
    assert "did you mean --chown?" in info.value.message


def test_instruction_before_from_is_rejected_but_arg_is_global() -> None:
    df = parse("ARG V=1\nFROM x:$V\n")
    assert len(df.global_args) == 1 and df.stages[0].base.image == "x:$V"
    with pytest.raises(StageError, match="before the first FROM"):
        parse("RUN x\nFROM y\n")


def test_heredocs_several_in_one_run() -> None:
    run = only("FROM x\nRUN <<A cat - && 3<<-'B' cat\none\nA\n\ttwo\n\tB\nRUN true\n")
    assert isinstance(run, Run) and run.command == ShellCommand("true")
    df = parse("FROM x\nRUN <<A cat - && 3<<-'B' cat\none\nA\n\ttwo\n\tB\n")
    run = df.instructions[-1]
    assert [(h.name, h.content, h.expand, h.chomp, h.fd) for h in run.heredocs] == [
        ("A", "one\n", True, False, 0),
        ("B", "\ttwo\n", False, True, 3),
    ]
    assert run.heredocs[1].body == "two\n"
    assert run.location.end_line == 6


def test_copy_heredoc_source_and_unterminated_heredoc() -> None:
    copy = only('FROM x\nCOPY <<"EOF" /etc/motd\nhi $USER\nEOF\n')
    assert isinstance(copy, Copy) and copy.sources == () and copy.dest == "/etc/motd"
    assert copy.heredocs[0].expand is False
    with pytest.raises(DockerfileError, match="unterminated heredoc") as info:
        parse("FROM x\nRUN cat <<EOF\nno end\n")
    assert (info.value.line, info.value.column) == (2, 9)


def test_env_legacy_and_pairs_keep_values_unexpanded() -> None:
    env = only('FROM x\nENV A="$B c" D=e\\ f\n')
    assert isinstance(env, Env) and not env.legacy
    assert [(p.key, p.value) for p in env.pairs] == [("A", '"$B c"'), ("D", "e\\ f")]
    legacy = only("FROM x\nENV PATH /usr/bin:$PATH  more\n")
    assert legacy.legacy and legacy.pairs[0].value == "/usr/bin:$PATH  more"


def test_onbuild_wraps_an_instruction_and_rejects_chaining() -> None:
    ob = only("FROM x\nONBUILD COPY --chown=1 . /app\n")
    assert isinstance(ob, OnBuild) and isinstance(ob.instruction, Copy)
    for bad in ("ONBUILD ONBUILD RUN x", "ONBUILD FROM y", "onbuild maintainer me"):
        with pytest.raises(DockerfileError, match="ONBUILD"):
            parse(f"FROM x\n{bad}\n")


def test_stage_names_are_lower_cased_and_unique() -> None:
    df = parse("FROM a AS Build\nFROM b as run\n")
    assert [s.name for s in df.stages] == ["build", "run"]
    assert isinstance(df.stage("BUILD").base, From)
    with pytest.raises(StageError, match="duplicate stage name"):
        parse("FROM a AS x\nFROM b AS X\n")


def test_empty_file_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="no instructions"):
        parse("# only a comment\n\n")


def test_python_only_json_constants_fall_back_to_shell_form() -> None:
    # Go's encoding/json rejects NaN, so Docker treats the line as shell form
    assert only('FROM x\nCMD ["a", NaN]\n').command == ShellCommand('["a", NaN]')


def test_mount_defaults_follow_buildkit() -> None:
    run = only("FROM x\nRUN --mount=type=cache,target=/c --mount=target=/b --mount=type=ssh true\n")
    cache, bind, ssh = run.mounts
    assert (cache.type, cache.readonly) == ("cache", False)
    assert (bind.type, bind.readonly, bind.target) == ("bind", True, "/b")
    assert (ssh.type, ssh.readonly, ssh.required) == ("ssh", True, False)


def test_end_of_flags_marker_keeps_dash_words_as_arguments() -> None:
    copy = only("FROM x\nCOPY --link -- --odd /dst\n")
    assert isinstance(copy, Copy) and copy.link and copy.sources == ("--odd",)


def test_invisible_characters_are_escaped_in_unknown_instruction() -> None:
    with pytest.raises(UnknownInstructionError, match=r'"FROM\\u00a0x"'):
        parse("FROM\xa0x\n")


def test_error_carries_a_location() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM x\nCOPY a\n", filename="app.Dockerfile")
    loc = info.value.location
    assert (loc.filename, loc.line, loc.column) == ("app.Dockerfile", 2, 6)


def test_onbuild_expression_is_what_the_image_config_records() -> None:
    ob = only("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\n")
    assert ob.expression == "RUN <<EOF\necho hi\nEOF"
    assert only("FROM x\n  onbuild   COPY . /app\n").expression == "COPY . /app"
