"""Failures: a clear message, a non-zero exit, and a store that is unchanged and usable."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from build_util import Strata

Ctx = Callable[..., Path]


def images(strata: Strata) -> str:
    res = strata("images", "-q", "--no-trunc")
    assert res.rc == 0
    return res.out


def assert_store_fine(strata: Strata, context: Ctx, before: str) -> None:
    assert images(strata) == before
    check = strata("system", "check")
    assert check.rc == 0, check.out + check.err
    ok = strata.build(context("FROM busybox\nRUN echo fine > /fine\n"), "-t", "after:1")
    assert ok.rc == 0, ok.err


def test_failing_run_names_step_command_exit_code_and_output(strata: Strata,
                                                             context: Ctx) -> None:
    before = images(strata)
    ctx = context("FROM busybox\nRUN echo ok\n"
                  "RUN echo first-line; echo to-stderr >&2; exit 3\n")
    res = strata.build(ctx, "-t", "bad:1")
    assert res.rc == 1
    assert "[stage-0 2/2]" in res.err
    assert "echo first-line; echo to-stderr >&2; exit 3" in res.err
    assert "exit code 3" in res.err
    assert "to-stderr" in res.err.split("strata: error:")[1]
    assert_store_fine(strata, context, before)


@pytest.mark.parametrize("dockerfile,files,words", [
    ("FROM busybox\nCOPY missing.txt /\n", {}, ['"/missing.txt": not found']),
    ("FROM busybox\nCOPY ../outside /x\n", {}, ["outside the build context"]),
    ("FROM busybox\nCOPY link /x\n", {"SYMLINK link": "/etc/passwd"}, ["not found"]),
    ("FROM busybox\nCOPY escape /x\n", {"SYMLINK escape": "../../../../etc/shadow"},
     ["not found"]),
    ("FROM busybox\nCOPY --from=nosuchstage /a /b\n", {}, ["nosuchstage", "not found"]),
    ("FROM nosuchimage\nRUN true\n", {}, ["nosuchimage", "not found"]),
    ("FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n", {},
     ["circular dependency"]),
    ("FROM busybox\nRUNN true\n", {}, ["unknown instruction"]),
    ("FROM busybox\nCOPY a b /notadir\n", {"a": "", "b": ""}, ["must be a directory"]),
    ("FROM busybox\nUSER nobody-here\nRUN true\n", {}, ["unable to find user nobody-here"]),
    ("FROM busybox\nRUN --security=insecure true\n", {}, ["--security=insecure",
                                                            "not supported"]),
])
def test_bad_builds_fail_clearly_and_leave_the_store_alone(
        strata: Strata, context: Ctx, tmp_path: Path, dockerfile: str,
        files: dict[str, str], words: list[str]) -> None:
    before = images(strata)
    plain = {k: v for k, v in files.items() if not k.startswith("SYMLINK ")}
    ctx = context(dockerfile, plain)
    for name, target in files.items():
        if name.startswith("SYMLINK "):
            os.symlink(target, ctx / name.split()[1])
    (tmp_path / "secret-outside").write_text("secret")
    res = strata.build(ctx, "-t", "bad:1")
    assert res.rc != 0
    for word in words:
        assert word in res.err, res.err
    assert "Traceback" not in res.err
    assert_store_fine(strata, context, before)


def test_unknown_target_is_an_error(strata: Strata, context: Ctx) -> None:
    before = images(strata)
    res = strata.build(context("FROM busybox AS one\n"), "--target", "two")
    assert res.rc == 3 and 'target stage "two" could not be found' in res.err
    assert_store_fine(strata, context, before)
