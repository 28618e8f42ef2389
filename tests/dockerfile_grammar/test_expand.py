"""Word expansion follows BuildKit's shell lexer: a case table plus properties."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockerfile_grammar.expand import (
    ExpansionError,
    expand,
    expand_words,
    process_word,
    referenced_names,
)

CASES_FILE = Path(__file__).with_name("expand_cases.txt")
START_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


@dataclass(frozen=True)
class Case:
    line: int
    kind: str
    source: str
    expected: str | list[str]
    env: dict[str, str]
    escape: str

    @property
    def id(self) -> str:
        return f"L{self.line}:{self.kind}:{self.source}"


def _field(rest: str) -> tuple[object, str]:
    """Read one field: `json:<JSON value>` or text up to the next "|"."""
    stripped = rest.lstrip()
    if stripped.startswith("json:"):
        value, end = json.JSONDecoder().raw_decode(stripped[5:])
        return value, stripped[5 + end :].lstrip()
    head, _, tail = rest.partition("|")
    return head.strip(), ("|" + tail) if _ else ""


def _load_cases() -> list[Case]:
    env = dict(START_ENV)
    escape = "\\"
    cases: list[Case] = []
    for number, raw in enumerate(CASES_FILE.read_text(encoding="utf-8").splitlines(), 1):
        if raw.startswith("#") or not raw.strip():
            continue
        if raw.startswith("ENV "):
            name, _, value = raw[4:].lstrip(" ").partition("=")
            env[name] = value
            continue
        if raw.startswith("UNSET "):
            env.pop(raw[6:].strip(), None)
            continue
        if raw.startswith("ESCAPE "):
            escape = raw[7:].strip()
            continue
        kind, sep, rest = raw.partition("|")
        assert sep and kind in ("A", "S", "U"), f"line {number}: bad row {raw!r}"
        source, rest = _field(rest)
        assert rest.startswith("|"), f"line {number}: expected two fields in {raw!r}"
        expected, rest = _field(rest[1:])
        assert rest == "", f"line {number}: trailing text in {raw!r}"
        if kind == "S" and isinstance(expected, str) and not expected.startswith("error"):
            expected = expected.split(",") if expected else []
        assert isinstance(source, str)
        assert isinstance(expected, (str, list))
        cases.append(Case(number, kind, source, expected, dict(env), escape))
    return cases


CASES = _load_cases()


def test_case_table_is_substantial() -> None:
    assert len(CASES) >= 250


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_expansion_matches_case_table(case: Case) -> None:
    def run() -> object:
        if case.kind == "S":
            return expand_words(case.source, case.env, escape=case.escape)
        return expand(case.source, case.env, escape=case.escape, skip_unset=case.kind == "U")

    if isinstance(case.expected, str) and case.expected.startswith("error"):
        with pytest.raises(ExpansionError) as caught:
            run()
        wanted = case.expected.partition(":")[2]
        assert wanted in str(caught.value)
        return
    assert run() == case.expected


# --- specific behaviours ---------------------------------------------------------------


def test_error_message_names_the_word_like_buildkit() -> None:
    with pytest.raises(ExpansionError) as caught:
        expand("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"})
    assert str(caught.value) == 'failed to process "${VAR:?message here$ARG}": VAR: message herex'
    assert caught.value.reason == "VAR: message herex"
    assert isinstance(caught.value, ValueError)


def test_unset_check_allows_empty_but_not_unset() -> None:
    assert expand("${VAR?no}", {"VAR": ""}) == ""
    with pytest.raises(ExpansionError, match="no"):
        expand("${VAR?no}", {})


def test_process_word_reports_matched_and_unmatched_names() -> None:
    result = process_word("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""})
    assert result.value == "xxx  ccc"
    assert result.words == ("xxx", "ccc")
    assert result.matched == {"FOO", "BAR"}
    assert result.unmatched == {"BAZ"}


def test_release_name_pattern_with_optional_variant() -> None:
    word = "pkg-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tgz"
    env = {"VERSION": "v1", "TARGETOS": "linux", "TARGETARCH": "arm"}
    assert expand(word, {**env, "TARGETVARIANT": "v7"}) == "pkg-v1.linux-arm-v7.tgz"
    assert expand(word, {**env, "TARGETVARIANT": ""}) == "pkg-v1.linux-arm.tgz"
    assert expand(word, env) == "pkg-v1.linux-arm.tgz"


def test_referenced_names_include_nested_and_modifier_words() -> None:
    word = "${A:-$B}/${C#$D}/${E/$F/$G}/$H${I?$J}/'$NOT'\\$NOPE"
    assert referenced_names(word) == frozenset("ABCDEFGHIJ")


def test_referenced_names_does_not_enforce_required_checks() -> None:
    assert referenced_names("${REQUIRED:?must be set}") == {"REQUIRED"}


def test_referenced_names_rejects_bad_syntax() -> None:
    with pytest.raises(ExpansionError):
        referenced_names("${A")


def test_referenced_names_respects_the_escape_character() -> None:
    assert referenced_names("`$A$B", escape="`") == {"B"}
    assert referenced_names("\\$A", escape="`") == {"A"}


def test_raw_quotes_and_escapes_keep_the_source_characters() -> None:
    result = process_word("'a b' \"$X\" c\\ d", {"X": "x"}, raw_quotes=True, raw_escapes=True)
    assert result.value == "'a b' \"x\" c\\ d"


def test_heredoc_mode_leaves_quotes_alone() -> None:
    body = "echo '$HOME' \"$HOME\"\n"
    assert expand(body, {"HOME": "/root"}, process_quotes=False) == "echo '/root' \"/root\"\n"


def test_escape_must_be_one_character() -> None:
    with pytest.raises(ValueError):
        expand("$A", {}, escape="ab")


def test_words_split_on_unicode_spaces_like_go() -> None:
    assert expand_words("a\u3000b\xa0c", {}) == ["a", "b", "c"]
    # U+001C is whitespace for Python's str.split but not for Go's unicode.IsSpace.
    assert expand_words("a\x1cb", {}) == ["a\x1cb"]


# --- properties --------------------------------------------------------------------------

SAFE_TEXT = st.text(
    alphabet=st.characters(exclude_characters="$'\"\\`", codec="utf-8"),
    max_size=40,
)
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
# Values that are inert when spliced into a modifier word: no "}" or special characters.
PLAIN_VALUES = st.text(alphabet=string.ascii_letters + string.digits + " ./:-_", max_size=20)


@given(SAFE_TEXT)
def test_text_without_specials_expands_to_itself(text: str) -> None:
    assert expand(text, {"A": "x"}) == text
    assert process_word(text, {}).value == text


@given(NAMES, PLAIN_VALUES)
def test_braced_and_bare_references_agree(name: str, value: str) -> None:
    env = {name: value}
    assert expand("${" + name + "}", env) == value
    assert expand("$" + name, env) == value


@given(NAMES, st.one_of(st.none(), PLAIN_VALUES), PLAIN_VALUES)
def test_default_modifiers(name: str, value: str | None, default: str) -> None:
    env = {} if value is None else {name: value}
    colon = expand("${" + name + ":-" + default + "}", env)
    plain = expand("${" + name + "-" + default + "}", env)
    assert colon == (value if value else default)
    assert plain == (default if value is None else value)


@given(NAMES, st.one_of(st.none(), PLAIN_VALUES), PLAIN_VALUES)
def test_alternate_modifiers(name: str, value: str | None, alternate: str) -> None:
    env = {} if value is None else {name: value}
    assert expand("${" + name + ":+" + alternate + "}", env) == (alternate if value else "")
    assert expand("${" + name + "+" + alternate + "}", env) == ("" if value is None else alternate)


def _escape_for_word(text: str, escape: str) -> str:
    return "".join(escape + ch if ch in f"$'\"{escape}" or ch.isspace() else ch for ch in text)


@given(st.text(max_size=40), st.sampled_from(["\\", "`"]))
def test_escaping_every_special_character_round_trips(text: str, escape: str) -> None:
    word = _escape_for_word(text, escape)
    assert expand(word, {"A": "x"}, escape=escape) == text
    assert expand_words(word, {}, escape=escape) == ([text] if text else [])


@given(st.text(alphabet=st.characters(exclude_characters="'", codec="utf-8")))
def test_single_quotes_keep_everything_literally(text: str) -> None:
    assert expand("'" + text + "'", {"A": "x"}) == text


@given(NAMES, PLAIN_VALUES, PLAIN_VALUES)
def test_prefix_and_suffix_removal_of_literals(name: str, head: str, tail: str) -> None:
    env = {name: head + tail}
    assert expand("${" + name + "#" + head + "}", env) == tail
    assert expand("${" + name + "%" + tail + "}", env) == head


@given(st.lists(st.text(alphabet=string.ascii_letters + "/.-_", min_size=1), max_size=6))
def test_words_of_space_joined_tokens(tokens: list[str]) -> None:
    assert expand_words(" ".join(tokens), {}) == tokens
    assert expand_words("$V", {"V": "  ".join(tokens)}) == tokens


FRAGMENTS = st.sampled_from(
    [
        "$A", "${B}", "${C:-$D}", "${E:+x${F}}", "${G#$H}", "${I%%*}", "${J/$K/$L}",
        "${M//a/b}", "'$N'", '"$O"', "\\$P", "x", "/", " ", "${Q-${R}}", "${S+y}",
    ]
)  # fmt: skip


@given(
    st.lists(FRAGMENTS, max_size=6).map("".join), st.sets(st.sampled_from("ABCDEFGHIJKLMNOPQRS"))
)
def test_referenced_names_do_not_depend_on_the_environment(word: str, present: set[str]) -> None:
    env = {name: "a*" for name in present}
    result = process_word(word, env)
    assert result.matched | result.unmatched == referenced_names(word)
    assert result.matched == referenced_names(word) & present
