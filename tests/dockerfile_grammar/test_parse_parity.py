"""Differential: the parser against docker's own (BuildKit) Dockerfile front end.

Valid scenarios are ``FROM scratch`` files made only of instructions that land in the
image config (ENV, LABEL, CMD, ENTRYPOINT, SHELL, EXPOSE, VOLUME, WORKDIR, USER,
STOPSIGNAL, HEALTHCHECK, ONBUILD); the config docker builds must equal what our parse
predicts. Invalid files must make ``docker build`` fail with a parse error on the line
we report. The dockerd here is 20.10, whose built-in frontend predates heredocs and the
newest flags, so those stay in the golden corpus only.
"""

from __future__ import annotations

import json
import posixpath
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tooling import DOCKER_CLIENT

from dockerfile_grammar import (
    Cmd,
    DockerfileError,
    Entrypoint,
    Env,
    ExecCommand,
    Expose,
    Healthcheck,
    Label,
    OnBuild,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    expand,
    expand_words,
    parse,
)

pytestmark = pytest.mark.slow

VALID: dict[str, str] = {
    "continuations_comments_and_blank_lines": (
        "FROM scratch\nENV A=1 \\\n# a comment inside\n    B=two \\\n\n    C=\"three  spaces\"\n"
        "LABEL description=\"spans \\\n  two lines\" \\\n      other=x\n"
    ),
    "backtick_escape_file": (
        "# escape=`\nFROM scratch\nENV WIN=C:\\tools\\bin `\n    Q=\"a `\"quoted`\" word\"\n"
        "LABEL path=C:\\x two=\"2 `\n  lines\"\nCMD dir C:\\ `\n  /s\n"
    ),
    "exec_form_and_invalid_json_fallback": (
        "FROM scratch\nENTRYPOINT [\"/bin/echo\", \"a b\"]\nCMD ['single', 'quotes']\n"
    ),
    "shell_changes_shell_form_commands": (
        "FROM scratch\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n"
        "CMD echo \"$HOME\" | cat\n"
    ),
    "legacy_env_and_label_forms": (
        "FROM scratch\nENV LEGACY value with   spaces\nLABEL legacy label value\n"
        "ENV NEXT=$LEGACY-x\n"
    ),
    "expose_volume_workdir_user_stopsignal": (
        "FROM scratch\nEXPOSE 80 53/udp 7000-7001/tcp\nVOLUME [\"/a\", \"/b c\"]\nVOLUME /d /e\n"
        "WORKDIR /srv\nWORKDIR app\nUSER 1000:1000\nSTOPSIGNAL SIGQUIT\n"
    ),
    "healthcheck_shell_and_exec": (
        "FROM scratch\nHEALTHCHECK --interval=5s --timeout=2s --retries=4 "
        "CMD curl -f http://x/ || exit 1\n"
    ),
    "healthcheck_exec_form": (
        "FROM scratch\nHEALTHCHECK --start-period=1m30s CMD [\"/bin/check\", \"--fast\"]\n"
    ),
    "onbuild_triggers_keep_their_text": (
        "FROM scratch\nONBUILD RUN echo hi\nonbuild COPY --chown=1 . /x\n"
        "ONBUILD ENV A=1 \\\n  B=2\n"
    ),
    "quoted_label_keys_and_escaped_dollars": (
        "FROM scratch\nLABEL \"com.example.vendor\"=\"ACME Inc\" 'single'='q v'\n"
        "ENV LIT=\\$HOME MIX=\"a \\\"b\\\" c\" SQ='$HOME x'\n"
    ),
    "directive_after_comment_is_a_comment": (
        "# a comment\n# escape=`\nFROM scratch\nENV A=one \\\n  B=two\n"
    ),
    "keywords_any_case_indentation_and_crlf": (
        "from scratch\r\n  env   A=1\r\n\tLabel k=v\r\ncmd [\"x\"]\r\n"
    ),
}

INVALID = [
    "err-unknown-instruction-suggestion",
    "err-unknown-flag",
    "err-flag-on-wrong-instruction",
    "err-flag-missing-value",
    "err-flag-duplicate",
    "err-env-missing-equals",
    "err-env-legacy-without-value",
    "err-arg-empty",
    "err-onbuild-onbuild",
    "err-onbuild-from",
    "err-copy-missing-destination",
    "err-json-non-string",
    "err-shell-not-json",
    "err-healthcheck-bad-type",
    "err-invalid-stage-name",
    "err-from-two-arguments",
    "err-instruction-before-from",
    "err-duplicate-escape-directive",
]
CASES = Path(__file__).parent / "cases"


def _predict(text: str) -> dict[str, Any]:
    df = parse(text)
    esc = df.directives.escape
    env: dict[str, str] = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    cfg: dict[str, Any] = {"Env": None, "Labels": None, "Cmd": None, "Entrypoint": None,
                           "ExposedPorts": None, "Volumes": None, "WorkingDir": "/", "User": "",
                           "StopSignal": None, "OnBuild": None, "Shell": None, "Healthcheck": None}
    shell = ["/bin/sh", "-c"]

    def command(cmd: Any) -> list[str]:
        return list(cmd.argv) if isinstance(cmd, ExecCommand) else [*shell, cmd.text]

    for inst in df.stages[-1].instructions:
        if isinstance(inst, Env):
            for pair in inst.pairs:
                env[expand(pair.key, env, escape=esc)] = expand(pair.value, env, escape=esc)
            cfg["Env"] = [f"{k}={v}" for k, v in env.items()]
        elif isinstance(inst, Label):
            labels = cfg["Labels"] or {}
            for pair in inst.pairs:
                labels[expand(pair.key, env, escape=esc)] = expand(pair.value, env, escape=esc)
            cfg["Labels"] = labels
        elif isinstance(inst, Shell):
            shell = list(inst.argv)
            cfg["Shell"] = shell
        elif isinstance(inst, Cmd):
            cfg["Cmd"] = command(inst.command)
        elif isinstance(inst, Entrypoint):
            cfg["Entrypoint"] = command(inst.command)
        elif isinstance(inst, Expose):
            ports = cfg["ExposedPorts"] or {}
            for word in inst.ports:
                for port in expand_words(word, env, escape=esc):
                    number, _, proto = port.partition("/")
                    low, _, high = number.partition("-")
                    for n in range(int(low), int(high or low) + 1):
                        ports[f"{n}/{proto or 'tcp'}"] = {}
            cfg["ExposedPorts"] = ports
        elif isinstance(inst, Volume):
            vols = cfg["Volumes"] or {}
            vols.update({expand(p, env, escape=esc): {} for p in inst.paths})
            cfg["Volumes"] = vols
        elif isinstance(inst, Workdir):
            cfg["WorkingDir"] = posixpath.join(cfg["WorkingDir"], inst.path)
        elif isinstance(inst, User):
            cfg["User"] = expand(inst.user, env, escape=esc)
        elif isinstance(inst, StopSignal):
            cfg["StopSignal"] = inst.signal
        elif isinstance(inst, OnBuild):
            cfg["OnBuild"] = [*(cfg["OnBuild"] or []), inst.expression]
        elif isinstance(inst, Healthcheck):
            assert inst.command is not None
            test = (["CMD", *inst.command.argv] if isinstance(inst.command, ExecCommand)
                    else ["CMD-SHELL", inst.command.text])
            cfg["Healthcheck"] = {"Test": test, "Retries": inst.retries or 0}
    return cfg


def _build(env: dict[str, str], work: Path, text: str) -> subprocess.CompletedProcess[str]:
    (work / "Dockerfile").write_bytes(text.encode())
    return subprocess.run(
        [DOCKER_CLIENT, "build", "-q", "--iidfile", str(work / "iid"), str(work)],
        env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("name", sorted(VALID))
def test_image_config_matches_docker(docker_daemon: dict[str, str], tmp_path: Path,
                                     name: str) -> None:
    text = VALID[name]
    build = _build(docker_daemon, tmp_path, text)
    assert build.returncode == 0, build.stderr
    inspect = subprocess.run(
        [DOCKER_CLIENT, "image", "inspect", "--format", "{{json .Config}}",
         (tmp_path / "iid").read_text().strip()],
        env=docker_daemon, capture_output=True, text=True, timeout=60,
    )
    assert inspect.returncode == 0, inspect.stderr
    config = json.loads(inspect.stdout)
    predicted = _predict(text)
    got = {key: config.get(key) for key in predicted}
    if got["Healthcheck"] is not None:
        got["Healthcheck"] = {"Test": got["Healthcheck"]["Test"],
                              "Retries": got["Healthcheck"].get("Retries", 0)}
    if predicted["Env"] is None and got["Env"] is not None:
        got["Env"] = [e for e in got["Env"] if not e.startswith("PATH=")] or None
    assert got == predicted


@pytest.mark.parametrize("name", INVALID)
def test_docker_rejects_what_we_reject(docker_daemon: dict[str, str], tmp_path: Path,
                                       name: str) -> None:
    text = (CASES / name / "Dockerfile").read_text().replace("busybox", "scratch")
    with pytest.raises(DockerfileError) as ours:
        parse(text)
    build = _build(docker_daemon, tmp_path, text)
    assert build.returncode != 0
    # rejected while reading the Dockerfile, not later while building
    assert "failed to create LLB definition" in build.stderr, build.stderr
    lines = {int(n) for n in re.findall(r"line (\d+)", build.stderr)}
    lines |= {int(n) for n in re.findall(r"Dockerfile:(\d+)", build.stderr)}
    assert ours.value.line in lines or not lines, build.stderr
