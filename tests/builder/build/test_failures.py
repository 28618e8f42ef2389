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


def _truncated_tar_gz(size: int = 300_000) -> bytes:
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("payload")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    packed = gzip.compress(raw.getvalue())
    return packed[: len(packed) // 2]


def test_add_of_a_damaged_archive_names_it(strata: Strata, context: Ctx) -> None:
    before = images(strata)
    ctx = context("FROM busybox\nADD broken.tar.gz /x/\n", {"broken.tar.gz": _truncated_tar_gz()})
    res = strata.build(ctx, "-t", "bad:1")
    assert res.rc == 2, res.err
    assert "ADD broken.tar.gz: cannot extract the archive" in res.err
    assert "[stage-0 1/1]" in res.err and "Traceback" not in res.err
    assert_store_fine(strata, context, before)


def test_a_binary_secret_cannot_be_an_env_variable(strata: Strata, context: Ctx,
                                                    tmp_path: Path) -> None:
    secret = tmp_path / "token.bin"
    secret.write_bytes(b"\xff\xfe\x00TOPSECRET-42")
    ctx = context("FROM busybox\nRUN --mount=type=secret,id=tok,env=TOK true\n")
    res = strata.build(ctx, "--secret", f"id=tok,src={secret}", "-t", "bad:1")
    assert res.rc == 2, res.err
    assert "secret tok" in res.err and "not UTF-8" in res.err
    assert "TOPSECRET-42" not in res.err + res.out
    assert "Traceback" not in res.err


class _FailingStepCache:
    """Fault injection through the StepCache seam: every miss fails before its step runs."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def lookup(self, step: object) -> None:
        return None

    def prepare(self, step: object) -> None:
        raise self.error

    def record(self, step: object, record: object) -> None:
        raise AssertionError("never reached")


def _build_failing(strata: Strata, context: Ctx, error: Exception) -> None:
    import io

    from builder.build import Builder, BuildOptions
    from builder.progress import open_progress

    ctx = context("FROM busybox\nCOPY a /a\n", {"a": "a"})
    Builder(strata.root, BuildOptions(context_dir=ctx, snapshotter=strata.snapshotter),
            open_progress("plain", io.StringIO()),
            step_cache=_FailingStepCache(error)).build()


def test_an_unforeseen_os_error_fails_the_step_with_its_label(strata: Strata,
                                                              context: Ctx) -> None:
    from builder.errors import StepFailed

    with pytest.raises(StepFailed) as failed:
        _build_failing(strata, context, OSError(28, "No space left on device"))
    assert str(failed.value).startswith("[stage-0 1/1] COPY a /a: unexpected OSError:")
    assert "No space left on device" in str(failed.value)


def test_a_programming_error_is_not_dressed_up_as_a_failed_step(strata: Strata,
                                                                context: Ctx) -> None:
    with pytest.raises(KeyError, match="missing-key"):
        _build_failing(strata, context, KeyError("missing-key"))
    with pytest.raises(TypeError):
        _build_failing(strata, context, TypeError("bad call"))
