"""Simple builds end to end: RUN, COPY, metadata instructions, and `strata run` of the result."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from build_util import Strata

Ctx = Callable[..., Path]


def test_run_copy_cmd_build_an_image_that_runs(strata: Strata, context: Ctx,
                                              tmp_path: Path) -> None:
    ctx = context("FROM busybox\nARG GREETING=hi\nENV FOO=bar\n"
                  "RUN echo \"$GREETING $FOO\" > /greeting\n"
                  "COPY hello.txt /app/\nCOPY dir /app/dir\nWORKDIR /app\n"
                  "RUN test -f /app/dir/sub/b && pwd > /pwd\nCMD [\"cat\", \"/greeting\"]\n",
                  {"hello.txt": "hello\n", "dir/a": "a", "dir/sub/b": "b"})
    res = strata.build(ctx, "-t", "app:1")
    assert res.rc == 0, res.err
    assert "Successfully built" in res.err and "0 steps cached" in res.err
    cfg = strata.config("app:1")
    assert cfg["Cmd"] == ["cat", "/greeting"]
    assert cfg["WorkingDir"] == "/app"
    assert "FOO=bar" in cfg["Env"] and not any(e.startswith("GREETING") for e in cfg["Env"])
    tree = strata.files("app:1", tmp_path / "tree")
    assert (tree / "greeting").read_text() == "hi bar\n"
    assert (tree / "pwd").read_text() == "/app\n"
    assert (tree / "app/hello.txt").read_text() == "hello\n"
    assert (tree / "app/dir/sub/b").read_text() == "b"
    st = os.lstat(tree / "app/hello.txt")
    assert (st.st_uid, st.st_gid) == (0, 0)
    run = strata.run("app:1")
    assert (run.returncode, run.stdout) == (0, "hi bar\n")


def test_strata_run_propagates_the_exit_code_and_takes_env(strata: Strata, context: Ctx) -> None:
    assert strata.build(context("FROM busybox\nCMD [\"true\"]\n"), "-t", "t:1").rc == 0
    res = strata.run("t:1", "sh", "-c", "exit 7")
    assert res.returncode == 7
    import subprocess
    import sys
    out = subprocess.run([str(Path(sys.executable).parent / "strata"), "--root",
                          str(strata.root), "run", "-e", "X=42", "-w", "/tmp", "-u", "app",
                          "t:1", "sh", "-c", "echo $X $(pwd) $(id -u)"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout == "42 /tmp 1000\n", out.stderr


def test_metadata_instructions_set_the_config_like_docker(strata: Strata, context: Ctx) -> None:
    ctx = context(
        "FROM busybox\nLABEL a=1 b=\"two words\"\nEXPOSE 80 53/udp\nVOLUME /data\n"
        "STOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s CMD true\nSHELL [\"/bin/sh\", \"-ec\"]\n"
        "ENTRYPOINT echo hi\nUSER app\nENV A=1 B=$A\nMAINTAINER someone\n"
        "ONBUILD RUN echo triggered\n")
    assert strata.build(ctx, "-t", "meta:1", "--label", "extra=yes").rc == 0
    info = strata.inspect("meta:1")
    cfg = info["Config"]
    assert cfg["Labels"] == {"a": "1", "b": "two words", "extra": "yes"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    assert cfg["Healthcheck"]["Interval"] == 5_000_000_000
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-ec", "echo hi"]
    assert "Cmd" not in cfg or cfg["Cmd"] is None
    assert cfg["User"] == "app"
    assert "A=1" in cfg["Env"] and "B=" in cfg["Env"]
    assert cfg["OnBuild"] == ["RUN echo triggered"]


def test_run_uses_user_workdir_and_arg_environment(strata: Strata, context: Ctx,
                                                   tmp_path: Path) -> None:
    ctx = context("FROM busybox\nARG V=from-arg\nUSER app\nWORKDIR /w/x\n"
                  "RUN id -u > /tmp/uid; pwd > /tmp/pwd; echo $V $HOME > /tmp/env\n")
    assert strata.build(ctx, "-t", "u:1").rc == 0
    tree = strata.files("u:1", tmp_path / "t")
    assert (tree / "tmp/uid").read_text() == "1000\n"
    assert (tree / "tmp/pwd").read_text() == "/w/x\n"
    assert (tree / "tmp/env").read_text() == "from-arg /home/app\n"
    assert os.lstat(tree / "w/x").st_uid == 1000


def test_heredoc_run_and_copy(strata: Strata, context: Ctx, tmp_path: Path) -> None:
    ctx = context("FROM busybox\nARG N=7\nRUN <<EOF\necho one > /one\necho $N >> /one\nEOF\n"
                  "RUN cat > /two <<EOT\nline\nEOT\n"
                  "COPY <<CONF /etc/app.conf\nvalue=$N\nCONF\n")
    assert strata.build(ctx, "-t", "h:1").rc == 0
    tree = strata.files("h:1", tmp_path / "t")
    assert (tree / "one").read_text() == "one\n7\n"
    assert (tree / "two").read_text() == "line\n"
    assert (tree / "etc/app.conf").read_text() == "value=7\n"


def test_quiet_build_prints_only_the_image_id_and_iidfile(strata: Strata, context: Ctx,
                                                          tmp_path: Path) -> None:
    iid = tmp_path / "iid"
    res = strata.build(context("FROM busybox\nRUN true\n"), "-q", "--iidfile", str(iid))
    assert res.rc == 0
    assert res.out.strip() == iid.read_text()
    assert res.out.startswith("sha256:")


def test_rawjson_progress_emits_events(strata: Strata, context: Ctx) -> None:
    import json

    res = strata.build(context("FROM busybox\nRUN echo hi\n"), progress="rawjson")
    events = [json.loads(line) for line in res.err.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert "start" in kinds and "done" in kinds and kinds[-1] == "summary"
    assert any(e["event"] == "log" and "hi" in e["data"] for e in events)


def test_platform_other_than_the_host_is_refused(strata: Strata, context: Ctx) -> None:
    res = strata.build(context("FROM busybox\n"), "--platform", "linux/s390x")
    assert res.rc == 2 and "not supported" in res.err


def test_tty_progress_shows_steps_status_and_summary(strata: Strata, context: Ctx) -> None:
    ctx = context("FROM busybox\nRUN echo hi > /x\n")
    assert strata.build(ctx, progress="tty").rc == 0
    res = strata.build(ctx, progress="tty")
    assert "RUN echo hi > /x" in res.err and "CACHED" in res.err
    assert "1 steps cached, 0 run" in res.err and "\x1b[" in res.err


def test_empty_cmd_clears_it_and_absolute_workdir_is_kept_verbatim(
        strata: Strata, context: Ctx, tmp_path: Path) -> None:
    ctx = context("FROM busybox\nCMD [\"sh\"]\nCMD []\nWORKDIR /a/../b/./c\nRUN pwd > /pwd\n")
    assert strata.build(ctx, "-t", "e:1").rc == 0
    cfg = strata.config("e:1")
    assert cfg.get("Cmd") is None
    assert cfg["WorkingDir"] == "/a/../b/./c"
    tree = strata.files("e:1", tmp_path / "t")
    assert (tree / "pwd").read_text() == "/b/c\n" and not (tree / "a").exists()
