from __future__ import annotations

import pytest

from builder.errors import InvalidArgument
from builder.imageconfig import (
    DEFAULT_PATH,
    ConfigState,
    expand_ports,
    history_text,
    parse_duration,
)
from registry.oci import ImageConfig


def base(**config: object) -> ConfigState:
    return ConfigState.from_base(ImageConfig("amd64", "linux", config=dict(config)))


def test_scratch_has_docker_default_path() -> None:
    assert ConfigState.scratch("linux", "amd64").env == {"PATH": DEFAULT_PATH}


def test_env_replaces_existing_key_in_place_and_appends_new() -> None:
    st = base(Env=["A=1", "B=2"]).set_env([("A", "x"), ("C", "3")])
    assert st.values["Env"] == ["A=x", "B=2", "C=3"]


def test_shell_form_cmd_is_wrapped_in_the_stage_shell() -> None:
    st = base().set_shell(["/bin/bash", "-ec"])
    assert st.command_argv(None, "echo hi") == ["/bin/bash", "-ec", "echo hi"]
    assert st.command_argv(["a", "b"], None) == ["a", "b"]


def test_entrypoint_resets_inherited_cmd() -> None:
    st = base(Cmd=["sh"]).set_entrypoint(["/app"])
    assert "Cmd" not in st.values and st.values["Entrypoint"] == ["/app"]


def test_entrypoint_keeps_cmd_set_in_same_stage() -> None:
    st = base(Cmd=["sh"]).set_cmd(["--help"]).set_entrypoint(["/app"])
    assert st.values["Cmd"] == ["--help"]


def test_relative_workdir_resolves_against_previous() -> None:
    st = base().set_workdir("/app").set_workdir("src/../lib").set_workdir("x")
    assert st.workdir == "/app/lib/x"


def test_expose_ranges_expand_to_each_port_with_default_tcp() -> None:
    assert expand_ports(["80", "53/udp", "7000-7002/TCP"]) == [
        "80/tcp", "53/udp", "7000/tcp", "7001/tcp", "7002/tcp"]
    with pytest.raises(InvalidArgument):
        expand_ports(["http"])


def test_healthcheck_durations_are_nanoseconds() -> None:
    st = base().set_healthcheck(["CMD-SHELL", "true"], interval="1m30s", timeout="500ms",
                                retries=3)
    assert st.values["Healthcheck"] == {"Test": ["CMD-SHELL", "true"],
                                        "Interval": 90_000_000_000, "Timeout": 500_000_000,
                                        "Retries": 3}
    with pytest.raises(InvalidArgument):
        parse_duration("10 seconds")


def test_labels_volumes_onbuild_user_stopsignal() -> None:
    st = (base(Labels={"a": "1"}).set_labels([("b", "2"), ("a", "3")]).add_volumes(["/data"])
          .add_onbuild("RUN make").set_user("app").set_stop_signal("SIGINT"))
    assert st.values["Labels"] == {"a": "3", "b": "2"}
    assert st.values["Volumes"] == {"/data": {}}
    assert st.values["OnBuild"] == ["RUN make"]
    assert (st.user, st.values["StopSignal"]) == ("app", "SIGINT")
    assert "OnBuild" not in st.clear_onbuild().values


def test_history_accumulates_without_mutating() -> None:
    first = base()
    second = first.with_history(
        history_text("RUN", ["/bin/sh", "-c", "make"], buildkit_suffix=True), empty_layer=False)
    assert first.config.history == () and len(second.config.history) == 1
    assert second.config.history[0].created_by == "RUN /bin/sh -c make # buildkit"
    assert history_text("CMD", ["sh"]) == 'CMD ["sh"]'
