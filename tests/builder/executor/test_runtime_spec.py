"""The OCI runtime config strata generates (pure: no runtime is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import InvalidArgument
from builder.executor import ProcessSpec, User, process_network
from builder.executor.rootfs import RunRoot
from builder.executor.runtime import DEFAULT_CAPABILITIES, runtime_spec
from builder.mounts import Mount
from dockerfile_grammar.network import RUN_NETWORK_MODES

RUN = RunRoot(Path("/r/rootfs"), Path("/r/hosts"), Path("/r/resolv.conf"), Path("/r"))


def test_spec_sets_no_rlimits_and_no_user_namespace() -> None:
    spec = runtime_spec(ProcessSpec(argv=("true",)), RUN)
    assert "rlimits" not in spec["process"]
    kinds = {n["type"] for n in spec["linux"]["namespaces"]}
    assert kinds == {"pid", "ipc", "uts", "mount"}
    assert "uidMappings" not in spec["linux"]


def test_network_none_adds_a_network_namespace() -> None:
    spec = runtime_spec(ProcessSpec(argv=("true",), network="none"), RUN)
    assert {"type": "network"} in spec["linux"]["namespaces"]


def test_process_fields_come_from_the_spec() -> None:
    spec = runtime_spec(ProcessSpec(argv=("/bin/sh", "-c", "x"), env=("A=1",), cwd="/w",
                                    user=User(5, 6, (7,)), hostname="h"), RUN)
    proc = spec["process"]
    assert (proc["args"], proc["env"], proc["cwd"]) == (["/bin/sh", "-c", "x"], ["A=1"], "/w")
    assert proc["user"] == {"uid": 5, "gid": 6, "additionalGids": [7]}
    assert proc["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert spec["hostname"] == "h"
    assert spec["root"] == {"path": "/r/rootfs", "readonly": False}


def test_mounts_cover_proc_dev_sys_and_generated_etc_files_then_extras() -> None:
    extra = Mount("bind", "/host/cache", "/root/.cache", ("rw",))
    spec = runtime_spec(ProcessSpec(argv=("true",), mounts=(extra,)), RUN)
    by_dest = {m["destination"]: m for m in spec["mounts"]}
    assert by_dest["/proc"]["type"] == "proc"
    assert by_dest["/dev"]["type"] == "tmpfs"
    assert "ro" in by_dest["/sys"]["options"]
    assert by_dest["/etc/hosts"]["source"] == "/r/hosts"
    assert by_dest["/etc/resolv.conf"]["source"] == "/r/resolv.conf"
    assert by_dest["/root/.cache"] == {"destination": "/root/.cache", "type": "bind",
                                       "source": "/host/cache", "options": ["rbind", "rw"]}
    assert spec["mounts"][-1]["destination"] == "/root/.cache"  # extras after the defaults


@pytest.mark.parametrize(("mode", "network"), [("default", "host"), ("host", "host"),
                                                ("none", "none")])
def test_each_run_network_mode_maps_to_a_sandbox_network(mode: str, network: str) -> None:
    assert set(RUN_NETWORK_MODES) == {"default", "host", "none"}
    assert process_network(mode) == network


@pytest.mark.parametrize("mode", ["bridge", "HOST", "", "container:x"])
def test_unknown_network_mode_is_invalid(mode: str) -> None:
    with pytest.raises(InvalidArgument,
                       match=r"unsupported network mode .* \(default, none, host\)"):
        process_network(mode)


def test_process_spec_accepts_only_sandbox_networks() -> None:
    with pytest.raises(InvalidArgument, match="network must be 'host' or 'none'"):
        ProcessSpec(argv=("true",), network="default")  # type: ignore[arg-type]
