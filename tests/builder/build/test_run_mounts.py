"""RUN --mount: cache, bind, tmpfs and secret (the secret never lands in a layer, log or key)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from build_util import Strata, blob_texts

Ctx = Callable[..., Path]


def test_cache_mount_persists_across_builds_and_stays_out_of_layers(
        strata: Strata, context: Ctx, tmp_path: Path) -> None:
    text = ("FROM busybox\nARG N\n"
            "RUN --mount=type=cache,target=/var/cache/app,id=appcache "
            "echo run-$N >> /var/cache/app/log && cat /var/cache/app/log > /seen\n")
    assert strata.build(context(text), "--build-arg", "N=1").rc == 0
    assert strata.build(context(text), "--build-arg", "N=2", "-t", "c:1").rc == 0
    tree = strata.files("c:1", tmp_path / "t")
    assert (tree / "seen").read_text() == "run-1\nrun-2\n"
    assert not (tree / "var/cache/app/log").exists()


def test_bind_mount_reads_the_context_and_discards_writes(strata: Strata, context: Ctx,
                                                          tmp_path: Path) -> None:
    ctx = context("FROM busybox\nRUN --mount=type=bind,source=src,target=/src "
                  "cat /src/input > /out && ! touch /src/x 2>/dev/null\n"
                  "RUN --mount=type=bind,source=src,target=/rw,rw "
                  "echo changed > /rw/input && cat /rw/input > /out2\n",
                  {"src/input": "from context\n"})
    res = strata.build(ctx, "-t", "b:1")
    assert res.rc == 0, res.err
    tree = strata.files("b:1", tmp_path / "t")
    assert (tree / "out").read_text() == "from context\n"
    assert (tree / "out2").read_text() == "changed\n"
    assert (ctx / "src/input").read_text() == "from context\n"
    assert not (tree / "src").exists() and not (tree / "rw").exists()
    # the bound content is part of the key
    (ctx / "src/input").write_text("new\n")
    res = strata.build(ctx)
    assert "0 steps cached" in res.err


def test_bind_mount_from_a_stage(strata: Strata, context: Ctx, tmp_path: Path) -> None:
    ctx = context("FROM busybox AS tools\nRUN echo tool > /tool.txt\n"
                  "FROM busybox\nRUN --mount=type=bind,from=tools,source=/tool.txt,"
                  "target=/mnt/tool.txt cp /mnt/tool.txt /copied\n")
    assert strata.build(ctx, "-t", "bs:1").rc == 0
    assert (strata.files("bs:1", tmp_path / "t") / "copied").read_text() == "tool\n"


def test_tmpfs_mount_is_empty_and_leaves_nothing(strata: Strata, context: Ctx,
                                                 tmp_path: Path) -> None:
    ctx = context("FROM busybox\nRUN --mount=type=tmpfs,target=/scratch "
                  "echo x > /scratch/f && grep -q ' /scratch tmpfs' /proc/mounts && "
                  "ls /scratch > /listing\n")
    assert strata.build(ctx, "-t", "tm:1").rc == 0
    tree = strata.files("tm:1", tmp_path / "t")
    assert (tree / "listing").read_text() == "f\n"
    assert not (tree / "scratch").exists()


def test_secret_is_readable_but_never_in_layers_logs_or_keys(strata: Strata, context: Ctx,
                                                             tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("S3CR3T-VALUE-42")
    ctx = context("FROM busybox\n"
                  "RUN --mount=type=secret,id=token md5sum /run/secrets/token "
                  "| cut -d' ' -f1 > /used\n"
                  "RUN --mount=type=secret,id=token,target=/etc/tok "
                  "wc -c < /etc/tok > /size\n")
    res = strata.build(ctx, "-t", "s:1", "--secret", f"id=token,src={secret}")
    assert res.rc == 0, res.err
    assert "S3CR3T" not in res.err + res.out
    tree = strata.files("s:1", tmp_path / "t")
    import hashlib
    assert (tree / "used").read_text() == hashlib.md5(b"S3CR3T-VALUE-42").hexdigest() + "\n"
    assert (tree / "size").read_text().strip() == "15"
    assert not (tree / "run/secrets").exists() and not (tree / "etc/tok").exists()
    assert not any(b"S3CR3T" in data for data in blob_texts(strata.root))
    assert b"S3CR3T" not in (strata.root / "strata.db").read_bytes()
    # a different secret value does not change the key
    secret.write_text("OTHER-VALUE")
    again = strata.build(ctx, "--secret", f"id=token,src={secret}")
    assert "2 steps cached" in again.err


def test_missing_required_secret_fails(strata: Strata, context: Ctx) -> None:
    ctx = context("FROM busybox\nRUN --mount=type=secret,id=x,required=true true\n")
    res = strata.build(ctx)
    assert res.rc != 0 and "secret x not provided" in res.err


def test_run_network_none_has_only_loopback(strata: Strata, context: Ctx,
                                            tmp_path: Path) -> None:
    ctx = context("FROM busybox\nRUN --network=none ls /sys/class/net > /nets\n")
    assert strata.build(ctx, "-t", "n:1").rc == 0
    assert (strata.files("n:1", tmp_path / "t") / "nets").read_text() == "lo\n"


def test_cache_mount_keyed_by_its_target_persists_too(strata: Strata, context: Ctx,
                                                      tmp_path: Path) -> None:
    text = ("FROM busybox\nARG N\nRUN --mount=type=cache,target=/c,sharing=locked "
            "echo $N >> /c/log && cat /c/log > /out\n")
    assert strata.build(context(text), "--build-arg", "N=1").rc == 0
    assert strata.build(context(text), "--build-arg", "N=2", "-t", "ct:1").rc == 0
    assert (strata.files("ct:1", tmp_path / "t") / "out").read_text() == "1\n2\n"


def test_secret_from_an_environment_variable_leaves_no_file_behind(
        strata: Strata, context: Ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import glob
    import tempfile

    monkeypatch.setenv("MY_TOKEN", "ENV-SECRET-9")
    ctx = context("FROM busybox\nRUN --mount=type=secret,id=tok "
                  "md5sum /run/secrets/tok | cut -d' ' -f1 > /sum\n")
    before = set(glob.glob(f"{tempfile.gettempdir()}/strata-secret-*"))
    res = strata.build(ctx, "-t", "se:1", "--secret", "id=tok,env=MY_TOKEN")
    assert res.rc == 0, res.err
    import hashlib
    sums = (strata.files("se:1", tmp_path / "t") / "sum").read_text()
    assert sums == hashlib.md5(b"ENV-SECRET-9").hexdigest() + "\n"
    assert set(glob.glob(f"{tempfile.gettempdir()}/strata-secret-*")) == before


def test_env_secret_file_is_removed_when_a_later_flag_is_refused(
        strata: Strata, context: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    import glob
    import tempfile

    monkeypatch.setenv("MY_TOKEN", "ENV-SECRET-10")
    ctx = context("FROM busybox\nRUN true\n")
    before = set(glob.glob(f"{tempfile.gettempdir()}/strata-secret-*"))
    res = strata.build(ctx, "--secret", "id=tok,env=MY_TOKEN", "--network", "bogus")
    assert res.rc != 0 and "--network" in res.err
    assert set(glob.glob(f"{tempfile.gettempdir()}/strata-secret-*")) == before


def test_bind_mount_of_the_context_hides_dockerignored_files(strata: Strata, context: Ctx,
                                                             tmp_path: Path) -> None:
    ctx = context("FROM busybox\nRUN --mount=type=bind,target=/ctx ls -A /ctx > /listing\n",
                  {".dockerignore": "secret.env\n", "secret.env": "x", "app.py": "y"})
    assert strata.build(ctx, "-t", "ig:1").rc == 0
    listing = (strata.files("ig:1", tmp_path / "t") / "listing").read_text().split()
    assert "app.py" in listing and "secret.env" not in listing


def test_cache_mount_mode_and_owner_let_a_user_write(strata: Strata, context: Ctx,
                                                      tmp_path: Path) -> None:
    ctx = context("FROM busybox\nUSER app\nRUN --mount=type=cache,target=/home/app/.cache,"
                  "uid=1000,gid=1000,sharing=private touch /home/app/.cache/ok && "
                  "stat -c '%u %a' /home/app/.cache > /tmp/st\n")
    assert strata.build(ctx, "-t", "cu:1").rc == 0
    assert (strata.files("cu:1", tmp_path / "t") / "tmp/st").read_text() == "1000 755\n"
