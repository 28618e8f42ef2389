"""instruction -> to_text -> parse gives an equal instruction (locations ignored)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dockerfile_grammar import Dockerfile, parse, to_text
from dockerfile_grammar.serialize import dockerfile_to_text

CASES = Path(__file__).parent / "cases"

_plain = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:-@+%"),
    min_size=1,
    max_size=12,
).filter(lambda w: not w.startswith("-"))
_var = st.sampled_from(["$A", "${B}", "${C:-x}", "${D:+y}", "${E#p}", "${F%%s}", "${G/a/b}"])
_word = st.one_of(_plain, _var, st.builds(lambda a, b: a + b, _plain, _var))
_quoted = st.one_of(
    st.builds(lambda w: f'"{w} {w}"', _plain), st.builds(lambda w: f"'{w} $x'", _plain)
)
_value = st.one_of(_word, _quoted, st.just(""))
_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_words = st.lists(_word, min_size=1, max_size=5)
_shell = st.builds(" ".join, st.lists(st.one_of(_word, _quoted), min_size=1, max_size=6))
_argv = st.lists(st.text(max_size=10), max_size=4)
_heredoc_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20
).filter(lambda s: s.strip() != "EOF")
_duration = st.sampled_from(["1s", "30s", "5m", "1m30s", "250ms", "2h"])


def _exec(argv: list[str]) -> str:
    return json.dumps(argv)


def _command(min_size: int = 0) -> st.SearchStrategy[str]:
    argv = st.lists(st.text(max_size=10), min_size=min_size, max_size=4)
    return st.one_of(_shell, st.builds(_exec, argv))


def _heredoc_body() -> st.SearchStrategy[str]:
    return st.builds(lambda ls: "".join(f"{x}\n" for x in ls), st.lists(_heredoc_line, max_size=4))


_mount = st.one_of(
    st.builds(lambda t: f"--mount=type=cache,target=/{t},sharing=locked", _plain),
    st.builds(lambda t, s: f"--mount=type=bind,source={s},target=/{t},rw", _plain, _plain),
    st.builds(lambda t: f"--mount=type=tmpfs,target=/{t},size=10m", _plain),
    st.builds(lambda i: f"--mount=type=secret,id={i},required", _plain),
    st.builds(lambda i: f"--mount=type=ssh,id={i},mode=0600", _plain),
)

_stage_name = st.from_regex(r"[a-z][a-z0-9_.-]{0,6}", fullmatch=True)

INSTRUCTIONS = st.one_of(
    st.builds(lambda img, n: f"FROM {img}" + (f" AS {n}" if n else ""),
              _plain, st.one_of(st.none(), _stage_name)),
    st.builds(lambda ms, net, cmd: " ".join(["RUN", *ms, *net, cmd]),
              st.lists(_mount, max_size=2),
              st.lists(st.sampled_from(["--network=none", "--network=host"]), max_size=1),
              _command()),
    st.builds(lambda body: f"RUN <<EOF\n{body}EOF", _heredoc_body()),
    st.builds(lambda body, dest: f"COPY <<-'EOF' /{dest}\n{body}EOF", _heredoc_body(), _plain),
    st.builds(lambda c: f"CMD {c}", _command()),
    st.builds(lambda c: f"ENTRYPOINT {c}", _command()),
    st.builds(lambda a: f"SHELL {_exec(a)}", st.lists(st.text(max_size=8), min_size=1, max_size=3)),
    st.builds(lambda ps: "ENV " + " ".join(f"{k}={v}" for k, v in ps),
              st.lists(st.tuples(_name, _value), min_size=1, max_size=4)),
    st.builds(lambda k, ws: f"ENV {k} {' '.join(ws)}", _name, _words),
    st.builds(lambda ps: "LABEL " + " ".join(f"{k}={v}" for k, v in ps),
              st.lists(st.tuples(_name, _value), min_size=1, max_size=4)),
    st.builds(lambda ps: "ARG " + " ".join(k if v is None else f"{k}={v}" for k, v in ps),
              st.lists(st.tuples(_name, st.one_of(st.none(), _value)), min_size=1, max_size=3)),
    st.builds(lambda ws: "EXPOSE " + " ".join(ws), _words),
    st.builds(lambda ws: "VOLUME " + " ".join(ws), _words),
    st.builds(lambda ps: "VOLUME " + json.dumps(ps),
              st.lists(st.text(min_size=1, max_size=8).filter(str.strip), min_size=1, max_size=3)),
    st.builds(lambda w: f"USER {w}", _word),
    st.builds(lambda w: f"WORKDIR /{w}", _word),
    st.builds(lambda w: f"STOPSIGNAL {w}", _word),
    st.builds(lambda w: f"MAINTAINER {w}", _shell),
    st.builds(lambda fl, srcs, dest: " ".join(["COPY", *fl, *srcs, dest]),
              st.lists(st.sampled_from(["--from=build", "--chown=1:2", "--chmod=644", "--link",
                                        "--parents", "--exclude=*.md"]), max_size=3, unique=True),
              _words, _word),
    st.builds(lambda fl, srcs, dest: " ".join(["ADD", *fl, json.dumps([*srcs, dest])]),
              st.lists(st.sampled_from(["--checksum=sha256:00", "--keep-git-dir", "--unpack",
                                        "--chown=x", "--link=false"]), max_size=3, unique=True),
              st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3),
              st.text(min_size=1, max_size=6)),
    st.builds(lambda i, t, r, c: f"HEALTHCHECK --interval={i} --timeout={t} --retries={r} CMD {c}",
              _duration, _duration, st.integers(0, 10), _command(1)),
    st.just("HEALTHCHECK NONE"),
    st.builds(lambda c: f"ONBUILD RUN {c}", _command()),
    st.builds(lambda ws: "ONBUILD COPY --chown=1 " + " ".join(ws),
              st.lists(_word, min_size=2, max_size=3)),
)


def _last(text: str):
    df = parse("FROM base\n" + text + "\n")
    return df.instructions[-1]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(INSTRUCTIONS)
@example('ADD ["0", "0", "\\\\"]')  # a destination ending in the escape character
@example('COPY ["a", "b\\\\"]')
@example('VOLUME ["/data\\\\"]')
def test_instruction_text_round_trip(text: str) -> None:
    first = _last(text)
    again = _last(to_text(first))
    assert again == first


def _valid_cases() -> list[str]:
    return sorted(
        p.name for p in CASES.iterdir()
        if (p / "Dockerfile").is_file() and not p.name.startswith("err-")
    )


def _same(a: Dockerfile, b: Dockerfile) -> None:
    assert a.directives.escape == b.directives.escape
    assert a.instructions == b.instructions


@pytest.mark.parametrize("name", _valid_cases())
def test_corpus_file_round_trips_through_text(name: str) -> None:
    df = parse((CASES / name / "Dockerfile").read_bytes().decode("utf-8"))
    _same(parse(dockerfile_to_text(df)), df)
