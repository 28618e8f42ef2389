"""How metadata instructions change an image config, exactly as docker (BuildKit) does. Pure.

The build engine expands words first (dockerfile_grammar.expand with the step's scope) and then
calls these functions with final values. Each returns a new `ConfigState`; nothing mutates.
History `created_by` strings follow BuildKit's (`RUN /bin/sh -c make # buildkit`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from builder.errors import InvalidArgument
from registry.oci import HistoryEntry, ImageConfig

DEFAULT_SHELL: tuple[str, ...] = ("/bin/sh", "-c")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}
_PORT = re.compile(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?")


def parse_duration(text: str) -> int:
    """A Go duration (`1m30s`, `500ms`, `0`) in nanoseconds."""
    if text == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise InvalidArgument(f"invalid duration {text!r}")
    return int(total)


def expand_ports(words: Iterable[str]) -> list[str]:
    """EXPOSE words -> `port/proto` keys; ranges become one key per port, as docker's nat does."""
    keys: list[str] = []
    for word in words:
        m = _PORT.fullmatch(word.lower())
        if not m:
            raise InvalidArgument(f"invalid containerPort: {word}")
        first = int(m.group(1))
        last = int(m.group(2) or first)
        proto = m.group(3) or "tcp"
        if last < first or last > 65535:
            raise InvalidArgument(f"invalid port range: {word}")
        keys.extend(f"{p}/{proto}" for p in range(first, last + 1))
    return keys


@dataclass(frozen=True, slots=True)
class ConfigState:
    """An image config under construction, plus the stage-local facts docker tracks."""

    config: ImageConfig
    cmd_set: bool = False  # CMD seen in this stage: a later ENTRYPOINT keeps it
    pending_history: tuple[HistoryEntry, ...] = field(default=())

    @classmethod
    def from_base(cls, base: ImageConfig) -> ConfigState:
        return cls(base)

    @classmethod
    def scratch(cls, os: str, architecture: str, variant: str | None = None) -> ConfigState:
        cfg = ImageConfig(architecture=architecture, os=os, variant=variant,
                          config={"Env": [f"PATH={DEFAULT_PATH}"]})
        return cls(cfg)

    # -- views --------------------------------------------------------------------------
    @property
    def values(self) -> Mapping[str, Any]:
        return self.config.config

    @property
    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.values.get("Env") or ():
            key, _, value = item.partition("=")
            out[key] = value
        return out

    @property
    def shell(self) -> tuple[str, ...]:
        return tuple(self.values.get("Shell") or DEFAULT_SHELL)

    @property
    def workdir(self) -> str:
        return str(self.values.get("WorkingDir") or "/")

    @property
    def user(self) -> str:
        return str(self.values.get("User") or "")

    # -- updates ------------------------------------------------------------------------
    def _set(self, **changes: Any) -> ConfigState:
        values = dict(self.values)
        for key, value in changes.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        return replace(self, config=replace(self.config, config=values))

    def with_history(self, created_by: str, *, empty_layer: bool,
                     created: str | None = None) -> ConfigState:
        entry = HistoryEntry(created=created, created_by=created_by, empty_layer=empty_layer,
                             comment="buildkit.dockerfile.v0")
        return replace(self, config=replace(self.config,
                                            history=self.config.history + (entry,)))

    def set_env(self, pairs: Sequence[tuple[str, str]]) -> ConfigState:
        env = list(self.values.get("Env") or ())
        for key, value in pairs:
            entry = f"{key}={value}"
            for i, item in enumerate(env):
                if item.partition("=")[0] == key:
                    env[i] = entry
                    break
            else:
                env.append(entry)
        return self._set(Env=env)

    def set_labels(self, pairs: Sequence[tuple[str, str]]) -> ConfigState:
        labels = dict(self.values.get("Labels") or {})
        labels.update(pairs)
        return self._set(Labels=labels)

    def command_argv(self, exec_argv: Sequence[str] | None, shell_text: str | None) -> list[str]:
        """Exec form as is; shell form wrapped in the stage's SHELL."""
        if exec_argv is not None:
            return list(exec_argv)
        return [*self.shell, shell_text or ""]

    def set_cmd(self, argv: list[str]) -> ConfigState:
        return replace(self._set(Cmd=argv), cmd_set=True)

    def set_entrypoint(self, argv: list[str]) -> ConfigState:
        """ENTRYPOINT resets a CMD inherited from the base, but not one set in this stage."""
        state = self._set(Entrypoint=argv)
        if not self.cmd_set:
            state = state._set(Cmd=None)
        return state

    def set_workdir(self, path: str) -> ConfigState:
        """Relative paths resolve against the previous WORKDIR."""
        if not path.startswith("/"):
            path = self.workdir.rstrip("/") + "/" + path
        return self._set(WorkingDir=_clean(path))

    def set_user(self, user: str) -> ConfigState:
        return self._set(User=user)

    def expose(self, words: Iterable[str]) -> ConfigState:
        ports = dict(self.values.get("ExposedPorts") or {})
        for key in expand_ports(words):
            ports[key] = {}
        return self._set(ExposedPorts=ports)

    def add_volumes(self, paths: Iterable[str]) -> ConfigState:
        volumes = dict(self.values.get("Volumes") or {})
        for path in paths:
            if not path.strip():
                raise InvalidArgument("VOLUME specified can not be an empty string")
            volumes[path] = {}
        return self._set(Volumes=volumes)

    def set_stop_signal(self, signal: str) -> ConfigState:
        return self._set(StopSignal=signal)

    def set_shell(self, argv: Sequence[str]) -> ConfigState:
        return self._set(Shell=list(argv))

    def set_healthcheck(self, test: list[str] | None, *, interval: str | None = None,
                        timeout: str | None = None, start_period: str | None = None,
                        start_interval: str | None = None,
                        retries: int | None = None) -> ConfigState:
        """`test` is ["NONE"], ["CMD", ...] or ["CMD-SHELL", text]; durations in Go syntax."""
        check: dict[str, Any] = {"Test": test or ["NONE"]}
        for key, value in (("Interval", interval), ("Timeout", timeout),
                           ("StartPeriod", start_period), ("StartInterval", start_interval)):
            if value is not None:
                check[key] = parse_duration(value)
        if retries is not None:
            check["Retries"] = retries
        return self._set(Healthcheck=check)

    def add_onbuild(self, trigger: str) -> ConfigState:
        return self._set(OnBuild=[*(self.values.get("OnBuild") or ()), trigger])

    def clear_onbuild(self) -> ConfigState:
        """A derived image does not inherit its base's triggers (they ran)."""
        return self._set(OnBuild=None)

    def set_author(self, author: str) -> ConfigState:
        return replace(self, config=replace(self.config, author=author))


def _clean(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def history_text(keyword: str, value: Any, *, buildkit_suffix: bool = False) -> str:
    """BuildKit's created_by: `CMD ["sh"]`, `RUN /bin/sh -c make # buildkit`, `ENV A=b`."""
    if isinstance(value, (list, tuple)) and keyword in ("CMD", "ENTRYPOINT"):
        text = f"{keyword} {json.dumps(list(value))}"
    elif isinstance(value, (list, tuple)):
        text = f"{keyword} {' '.join(value)}"
    else:
        text = f"{keyword} {value}"
    return f"{text} # buildkit" if buildkit_suffix else text
