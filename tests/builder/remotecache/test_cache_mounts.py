"""--cache-to ...,cache-mounts=true carries RUN --mount=type=cache directories to a fresh
runner, which restores them before a RUN that uses them has to run."""

from __future__ import annotations

from pathlib import Path

from ci_util import run_build, seed_base
from transfer_registries import RunningRegistry

from builder.remotecache.mounts import mount_dir_name

DOCKERFILE = """\
FROM {base}
COPY app.txt /app.txt
RUN --mount=type=cache,target=/var/cache/pkg,id=pkg \\
    sh -c 'cat /app.txt >> /var/cache/pkg/history && cp /var/cache/pkg/history /seen'
"""


def _ctx(dest: Path, base: str, app: str) -> Path:
    dest.mkdir(parents=True)
    (dest / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    (dest / "app.txt").write_text(app)
    return dest


def test_cache_mount_contents_reach_a_fresh_runner(tmp_path: Path,
                                                   strata_registry: RunningRegistry,
                                                   busybox_rootfs_tar: Path) -> None:
    base = seed_base(tmp_path, strata_registry, busybox_rootfs_tar)
    ref = f"{strata_registry.host}/app/cache:mounts"
    run_build(tmp_path / "a", _ctx(tmp_path / "ctx-a", base, "v1\n"), tags=("m:a",),
              cache_to=(f"type=registry,ref={ref},mode=max,cache-mounts=true",))
    b = run_build(tmp_path / "b", _ctx(tmp_path / "ctx-b", base, "v2\n"), tags=("m:b",),
                  cache_from=(f"type=registry,ref={ref}",))
    assert b.result.run == 2  # COPY and RUN changed
    history = tmp_path / "b" / "cache-mounts" / mount_dir_name("pkg") / "data" / "history"
    assert history.read_text() == "v1\nv2\n"
    assert "restored cache mounts" in b.log


def test_without_cache_mounts_export_a_fresh_runner_starts_empty(
        tmp_path: Path, strata_registry: RunningRegistry, busybox_rootfs_tar: Path) -> None:
    base = seed_base(tmp_path, strata_registry, busybox_rootfs_tar)
    dest = tmp_path / "cachedir"
    run_build(tmp_path / "a", _ctx(tmp_path / "ctx-a", base, "v1\n"), tags=("m:a",),
              cache_to=(f"type=local,dest={dest},mode=max",))
    run_build(tmp_path / "b", _ctx(tmp_path / "ctx-b", base, "v2\n"), tags=("m:b",),
              cache_from=(f"type=local,src={dest}",))
    history = tmp_path / "b" / "cache-mounts" / mount_dir_name("pkg") / "data" / "history"
    assert history.read_text() == "v2\n"
