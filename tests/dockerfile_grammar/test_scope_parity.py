"""Differential: ARG/ENV scoping against docker's BuildKit.

Each scenario is a ``FROM scratch`` Dockerfile that records variables at chosen points
with ``ENV OBS_*=...`` (ENV values are expanded with the same environment RUN would get).
The image config Env docker produces must equal the ``image_env`` :class:`BuildScope`
predicts for the last stage (BuildKit adds a default PATH, which is left out).

The dockerd here is 20.10, whose frontend predates two behaviours scope.py follows from
current BuildKit, so the scenarios avoid them: ``${v-w}`` without a colon, and the
declarations of one ``ARG A=1 B=$A`` seeing each other (20.10 expands the whole ARG line
with the environment before it; current BuildKit declares them one by one).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tooling import DOCKER_CLIENT

from dockerfile_grammar import parse
from dockerfile_grammar.scope import BuildScope

pytestmark = pytest.mark.slow

SCENARIOS: dict[str, tuple[str, dict[str, str]]] = {
    "global_args_only_in_from_until_redeclared": (
        "ARG G=global\nARG B=cli-default\nFROM scratch\nENV OBS_1=${G:-unset}\nARG G\nARG B\n"
        "ENV OBS_2=$G OBS_3=$B\n",
        {"B": "from-cli"},
    ),
    "arg_defaults_and_precedence": (
        "FROM scratch\nENV HOME=/root\nARG A=1\nARG B=$A DIR=$HOME/x\nARG C=dflt\nARG U\n"
        "ENV OBS_A=$A OBS_B=$B OBS_DIR=$DIR OBS_C=$C OBS_U=${U:-unset}\n",
        {"C": "cli"},
    ),
    "env_and_arg_order": (
        "FROM scratch\nARG VER\nENV VER=v1\nENV OBS_1=$VER\nENV MODE=env\nARG MODE=arg\n"
        "ENV OBS_2=$MODE\nENV abc=hello\nENV abc=bye def=$abc\n",
        {"VER": "v2"},
    ),
    "child_stage_inherits_parent_args": (
        "FROM scratch AS base\nARG P=parent\nENV E=env\nFROM base\nENV OBS_P=${P:-none}\n"
        "FROM scratch AS other\nARG Q=q\nFROM base AS last\nENV OBS_Q=${Q:-none} OBS_P2=$P\n",
        {},
    ),
    "platform_args": (
        "FROM scratch\nENV OBS_1=${TARGETARCH:-undeclared}\nARG TARGETARCH\nARG BUILDPLATFORM\n"
        "ENV OBS_2=$TARGETARCH OBS_3=$BUILDPLATFORM\n",
        {},
    ),
    "undeclared_build_arg_is_invisible": (
        "FROM scratch\nENV OBS_1=${NOT_DECLARED:-invisible}\n",
        {"NOT_DECLARED": "x"},
    ),
}


def docker_env(
    env: dict[str, str], dockerfile: str, args: dict[str, str], work: Path
) -> dict[str, str]:
    (work / "Dockerfile").write_text(dockerfile)
    iidfile = work / "iid"
    command = [DOCKER_CLIENT, "build", "-q", "--iidfile", str(iidfile)]
    for key, value in args.items():
        command += ["--build-arg", f"{key}={value}"]
    build = subprocess.run(
        [*command, str(work)], env=env, capture_output=True, text=True, timeout=120
    )
    assert build.returncode == 0, build.stderr
    inspect = subprocess.run(
        [DOCKER_CLIENT, "image", "inspect", "--format", "{{json .Config.Env}}",
         iidfile.read_text().strip()],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert inspect.returncode == 0, inspect.stderr
    pairs = dict(item.partition("=")[::2] for item in json.loads(inspect.stdout) or [])
    pairs.pop("PATH", None)
    return pairs


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scope_matches_docker(docker_daemon: dict[str, str], tmp_path: Path, scenario: str) -> None:
    text, build_args = SCENARIOS[scenario]
    scopes = list(BuildScope(parse(text), build_args).stages())
    predicted = dict(scopes[-1].image_env)
    assert docker_env(docker_daemon, text, build_args, tmp_path) == predicted
