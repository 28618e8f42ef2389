"""Both executors, for real, on a busybox rootfs held by the overlay and native snapshotters."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from builder.executor import (
    ExecutorUnavailable,
    ProcessSpec,
    ProcessStartFailed,
    User,
    open_executor,
    resolve_user,
)
from builder.executor.namespaces import ChrootExecutor
from builder.executor.runtime import RuntimeExecutor
from builder.mounts import Mount
from builder.snapshots import Snapshotter

Runner = Any


def changed_paths(sn: Snapshotter, key: str) -> set[str]:
    return {c.path for c in sn.changes(key)}


def test_exit_code_and_output_streams_are_reported(run: Runner) -> None:
    res = run("echo out; echo err >&2; exit 3")
    assert (res.status.code, res.status.ok) == (3, False)
    assert (res.out, res.err) == ("out\n", "err\n")


def test_a_successful_command_is_ok(run: Runner) -> None:
    res = run("true")
    assert res.status.ok and res.status.code == 0


def test_environment_is_exactly_what_was_given(run: Runner) -> None:
    res = run("env | sort", env=("PATH=/bin", "A=1", "B=two words"))
    lines = set(res.out.splitlines())
    assert {"PATH=/bin", "A=1", "B=two words"} <= lines
    assert not any(line.startswith("STRATA") for line in lines)


def test_missing_working_directory_is_created_and_kept(
        run: Runner, snapshotter: Snapshotter) -> None:
    res = run("pwd", key="wd", cwd="/work/dir")
    assert res.out == "/work/dir\n"
    assert {"work", "work/dir"} <= changed_paths(snapshotter, "wd")


def test_user_is_resolved_from_the_images_passwd(run: Runner, busybox: str,
                                                 snapshotter: Snapshotter) -> None:
    with_view = snapshotter.view("passwd-view", busybox)
    from builder.mounts import temp_mount

    with temp_mount(with_view) as root:
        user = resolve_user(root, "app")
    res = run("id -u; id -g", user=user)
    assert res.out.split() == ["1000", "1000"]


def test_numeric_user_and_group_need_no_entry(run: Runner) -> None:
    res = run("id -u; id -g; id -G", user=User(4242, 4343, (7, 8)))
    assert res.out.split() == ["4242", "4343", "4343", "7", "8"]


def test_network_none_has_only_loopback_and_it_is_up(run: Runner) -> None:
    res = run("ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags",
              network="none")
    lines = res.out.split()
    assert lines[0] == "lo" and len(lines) == 3
    assert int(lines[2], 16) & 0x1  # IFF_UP


def test_host_network_sees_the_host_interfaces(run: Runner) -> None:
    res = run("ls /sys/class/net", network="host")
    assert sorted(res.out.split()) == sorted(os.listdir("/sys/class/net"))


def test_hosts_and_resolv_conf_exist_at_run_time_but_never_in_the_changes(
        run: Runner, snapshotter: Snapshotter) -> None:
    res = run("cat /etc/hosts; test -f /etc/resolv.conf && echo has-resolv; "
              "echo 10.0.0.1 extra >> /etc/hosts; echo data > /newfile",
              key="net", hostname="builder-host")
    assert "127.0.0.1\tlocalhost" in res.out and "builder-host" in res.out
    assert "has-resolv" in res.out
    assert changed_paths(snapshotter, "net") == {"newfile"}


def test_mount_points_missing_from_the_rootfs_leave_no_trace(
        snapshotter: Snapshotter, executor: Any, busybox_rootfs_tar: Path,
        tmp_path: Path, unpack: Any) -> None:
    bare = unpack(snapshotter, busybox_rootfs_tar, "bare",
                  drop=("etc", "proc", "dev", "sys", "tmp"))
    mounts = snapshotter.prepare("bare-run", bare)
    shared = tmp_path / "shared"
    shared.mkdir()
    spec = ProcessSpec(
        argv=("/bin/sh", "-c", "cat /etc/hosts >/dev/null && ls /proc/self >/dev/null && "
                               "echo hi > /dev/null && ls /data/host/dir && touch /made"),
        env=("PATH=/bin",),
        mounts=(Mount("bind", str(shared), "/data/host/dir", ("rbind", "ro")),),
    )
    status = executor.run(mounts, spec)
    assert status.ok
    assert changed_paths(snapshotter, "bare-run") == {"made"}


def test_the_process_is_pid_1_of_its_own_pid_namespace(run: Runner) -> None:
    res = run("echo $$; ps -o pid,comm | awk 'NR>1 {print $1}'")
    lines = res.out.split()
    assert lines[0] == "1"
    assert "1" in lines[1:] and len(lines[1:]) <= 3  # sh, ps and maybe awk: nothing else


def test_capabilities_are_dockers_default_set(run: Runner) -> None:
    res = run("grep -E '^Cap(Bnd|Eff)' /proc/self/status")
    caps = dict(line.split(":\t") for line in res.out.splitlines())
    docker_default = sum(1 << n for n in (0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31))
    assert int(caps["CapBnd"], 16) == docker_default
    assert int(caps["CapEff"], 16) == docker_default


def test_hostname_is_set(run: Runner) -> None:
    assert run("hostname", hostname="step-7").out == "step-7\n"


def test_extra_bind_and_tmpfs_mounts_are_available_but_not_committed(
        run: Runner, snapshotter: Snapshotter, tmp_path: Path) -> None:
    host_dir = tmp_path / "ctx"
    host_dir.mkdir()
    (host_dir / "input.txt").write_text("from host\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    res = run(
        "cat /ctx/input.txt; echo cached > /root/.cache/c; echo t > /scratch/t; "
        "touch /ctx/nope 2>/dev/null || echo ro; echo done > /out",
        key="mnt",
        mounts=(
            Mount("bind", str(host_dir), "/ctx", ("rbind", "ro")),
            Mount("bind", str(cache), "/root/.cache", ("rbind", "rw")),
            Mount("tmpfs", "tmpfs", "/scratch", ("size=1m",)),
        ),
    )
    assert res.out.split("\n")[:2] == ["from host", "ro"]
    assert (cache / "c").read_text() == "cached\n"
    assert not (host_dir / "nope").exists()
    assert changed_paths(snapshotter, "mnt") == {"out"}


def test_a_missing_executable_is_a_start_failure(run: Runner) -> None:
    with pytest.raises(ProcessStartFailed):
        run(("/no/such/binary",))


def test_open_executor_kinds() -> None:
    assert isinstance(open_executor("runtime"), RuntimeExecutor)
    assert isinstance(open_executor("chroot"), ChrootExecutor)
    assert isinstance(open_executor("auto"), RuntimeExecutor)
    with pytest.raises(Exception, match="unknown isolation"):
        open_executor("vm")


def test_a_runtime_that_cannot_start_containers_is_reported(tmp_path: Path) -> None:
    fake = tmp_path / "fake-runtime"
    fake.write_text("#!/bin/sh\necho 'cannot do anything' >&2\nexit 1\n")
    fake.chmod(0o755)
    ex = RuntimeExecutor([str(fake)])
    with pytest.raises(ExecutorUnavailable, match="cannot do anything"):
        ex.run([Mount("bind", str(tmp_path), "/", ("rbind",))], _spec())


def _spec() -> ProcessSpec:
    return ProcessSpec(argv=("/bin/true",))


def test_a_steps_changes_become_a_layer_with_whiteouts_and_no_stubs(
        run: Runner, snapshotter: Snapshotter) -> None:
    import io
    import tarfile

    from builder.layers.differ import write_layer

    res = run("rm -rf /usr && mkdir -p /usr/x && echo a > /usr/x/f && rm /bin/ls", key="layer")
    assert res.status.ok, res.err
    buf = io.BytesIO()
    write_layer(snapshotter.changes("layer"), buf, compression="none")
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        names = {m.name for m in tar}
    assert {"bin/.wh.ls", "usr/x/f"} <= names
    assert ("usr/.wh..wh..opq" in names) or ("usr/.wh.bin" in names)
    assert not {n for n in names if n.split("/")[0] in ("etc", "proc", "dev", "sys")}
