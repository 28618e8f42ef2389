"""`strata build --cache-to/--cache-from/--push` end to end through the CLI (subprocesses with
their own --root), counting executed RUN steps in the rawjson progress."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ci_util import STEPS, make_context, seed_base
from transfer_registries import RunningRegistry, strata


def _events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _runs_executed(events: list[dict[str, object]]) -> int:
    return sum(1 for e in events
               if e.get("event") == "done" and re.search(r"\] RUN ", str(e["name"])))


def _summary(events: list[dict[str, object]]) -> dict[str, object]:
    return next(e for e in events if e.get("event") == "summary")


def _downloaded(events: list[dict[str, object]]) -> int:
    for e in events:
        m = re.search(r"(\d+) bytes of layers downloaded lazily", str(e.get("message") or ""))
        if m:
            return int(m[1])
    raise AssertionError("no cache download report")


def test_cli_registry_cache_mode_max_with_push(tmp_path: Path,
                                               strata_registry: RunningRegistry,
                                               busybox_rootfs_tar: Path) -> None:
    host = strata_registry.host
    base = seed_base(tmp_path, strata_registry, busybox_rootfs_tar)
    cache = f"{host}/ci/cache:main"
    a = strata(tmp_path / "runner-a", "build", "--progress", "rawjson",
               "--cache-to", f"type=registry,ref={cache},mode=max", "--push",
               "-t", f"{host}/ci/app:1", str(make_context(tmp_path / "ctx-a", base)))
    ev_a = _events(a.stderr)
    assert _runs_executed(ev_a) == 4 and _summary(ev_a)["run"] == STEPS
    b = strata(tmp_path / "runner-b", "build", "--progress", "rawjson",
               "--cache-from", f"type=registry,ref={cache}", "--push",
               "-t", f"{host}/ci/app:2", str(make_context(tmp_path / "ctx-b", base)))
    ev_b = _events(b.stderr)
    assert _runs_executed(ev_b) == 0, b.stderr
    assert _summary(ev_b)["run"] == 0 and _summary(ev_b)["cached"] == STEPS
    assert _summary(ev_b)["image_id"] == _summary(ev_a)["image_id"]
    assert _downloaded(ev_b) == 0
    app1 = strata_registry.get_json("/v2/ci/app/manifests/1")
    app2 = strata_registry.get_json("/v2/ci/app/manifests/2")
    assert app1 == app2


def test_cli_inline_and_local_caches(tmp_path: Path, strata_registry: RunningRegistry,
                                     busybox_rootfs_tar: Path) -> None:
    host = strata_registry.host
    base = seed_base(tmp_path, strata_registry, busybox_rootfs_tar)
    cachedir = tmp_path / "cachedir"
    strata(tmp_path / "runner-a", "build", "-q", "--cache-to", "type=inline",
           "--cache-to", f"type=local,dest={cachedir},mode=max", "--push",
           "-t", f"{host}/ci/app:inline", str(make_context(tmp_path / "ctx-a", base)))
    b = strata(tmp_path / "runner-b", "build", "--progress", "rawjson",
               "--cache-from", f"type=local,src={cachedir}", "-t", "app:b",
               str(make_context(tmp_path / "ctx-b", base, app="app v2\n")))
    ev = _events(b.stderr)
    assert (_summary(ev)["cached"], _summary(ev)["run"]) == (5, 3)
    assert _runs_executed(ev) == 2
    c = strata(tmp_path / "runner-c", "build", "--progress", "rawjson",
               "--cache-from", f"{host}/ci/app:inline", "-t", "app:c",
               str(make_context(tmp_path / "ctx-c", base)))
    ev = _events(c.stderr)
    assert (_summary(ev)["cached"], _summary(ev)["run"]) == (5, 3)  # deps stage not inline


def test_cli_refuses_bad_cache_options(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    res = strata(tmp_path / "r", "build", "--cache-to", "type=s3", str(ctx), check=False)
    assert res.returncode != 0 and "type must be" in res.stderr
    res = strata(tmp_path / "r", "build", "--push", str(ctx), check=False)
    assert res.returncode != 0 and "--push needs" in res.stderr
