"""Any text either parses or raises DockerfileError: no other exception ever escapes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockerfile_grammar import Dockerfile, DockerfileError, parse

FRAGMENTS = st.sampled_from([
    "FROM ", "RUN ", "COPY ", "ADD ", "ENV ", "ARG ", "LABEL ", "ONBUILD ", "HEALTHCHECK ",
    "CMD ", "SHELL ", "EXPOSE ", "VOLUME ", "--mount=", "type=cache,", "target=/x", "--from=",
    "--", "<<EOF", "<<-'E'", "EOF", "\tE", "[", "]", "\"", "'", "\\", "`", "\n", "\r\n", " ",
    "\t", "# escape=`\n", "# syntax=x\n", "=", "$", "${", "}", "AS ", "NONE", "\x00", "\ufeff",
    "\x1c", "\xa0", "é", ",", "ro", "{", "1",
])
DOCKERISH = st.lists(st.one_of(FRAGMENTS, st.text(max_size=3)), max_size=30).map("".join)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(DOCKERISH, st.text(max_size=60)))
def test_parse_returns_or_raises_dockerfile_error(text: str) -> None:
    try:
        result = parse(text)
    except DockerfileError as err:
        assert err.line >= 1 and err.column >= 1
        assert str(err).startswith(f"Dockerfile:{err.line}:{err.column}: ")
        assert "\n" not in err.message
    else:
        assert isinstance(result, Dockerfile)
