"""Config-only instructions (ENV, LABEL, CMD, ENTRYPOINT, EXPOSE, VOLUME, USER, STOPSIGNAL,
HEALTHCHECK, SHELL, ONBUILD, MAINTAINER) and WORKDIR, which also creates its directory.

Words arrive expanded (StageScope). The config semantics are builder.imageconfig's; this
module only maps instructions onto it, names the cache key and writes BuildKit's history text.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from builder import cachekey
from builder.errors import InvalidArgument
from builder.executor import resolve_user
from builder.imageconfig import ConfigState, history_text
from builder.mounts import temp_mount
from builder.steps import State
from builder.steps.fscopy import Ownership, Writer
from builder.steps.workspace import Workspace
from dockerfile_grammar.expand import ExpansionError, expand
from dockerfile_grammar.instructions import (
    Arg,
    Cmd,
    Entrypoint,
    Env,
    ExecCommand,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    OnBuild,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)

METADATA_TYPES = (Env, Label, Cmd, Entrypoint, Expose, Volume, User, StopSignal, Healthcheck,
                  Shell, OnBuild, Maintainer)


def _command(cfg: ConfigState, instr: Cmd | Entrypoint) -> list[str]:
    if isinstance(instr.command, ExecCommand):
        return list(instr.command.argv)
    return cfg.command_argv(None, instr.command.text)


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def _go_quote(text: str) -> str:
    """Go's strconv.Quote for ordinary text (JSON escaping, unicode kept)."""
    return json.dumps(text, ensure_ascii=False)


def _go_quoted_list(items: list[str]) -> str:
    """Go's %q of a []string: `["a" "b"]`."""
    return "[" + " ".join(_go_quote(i) for i in items) + "]"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String()."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _trim(rest / 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


_RUNE_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f",
                 13: "\\r", 39: "\\'", 92: "\\\\"}


def _go_rune(n: int) -> str:
    """Go's %q of an int (a rune literal): 'a', '\\x00', '\\a'."""
    if n in _RUNE_ESCAPES:
        return f"'{_RUNE_ESCAPES[n]}'"
    if 0x20 <= n < 0x7F:
        return f"'{chr(n)}'"
    if n < 0x80:
        return f"'\\x{n:02x}'"
    return f"'\\u{n:04x}'" if n <= 0xFFFF else f"'\\U{n:08x}'"


def apply(instr: Instruction, cfg: ConfigState) -> tuple[ConfigState, Any, str]:
    """(new config, the value for the cache key, BuildKit's history created_by)."""
    if isinstance(instr, Env):
        pairs = [(p.key, p.value) for p in instr.pairs]
        text = " ".join(f"{k}={v}" for k, v in pairs)
        return cfg.set_env(pairs), [list(p) for p in pairs], history_text("ENV", text)
    if isinstance(instr, Label):
        pairs = [(p.key, p.value) for p in instr.pairs]
        text = " ".join(f"{k}={v}" for k, v in pairs)
        return cfg.set_labels(pairs), [list(p) for p in pairs], history_text("LABEL", text)
    if isinstance(instr, Cmd):
        argv = _command(cfg, instr)
        # `CMD []` clears the value (docker stores null)
        return (_set(cfg.set_cmd(argv), "Cmd", argv or None), argv,
                "CMD " + _go_quoted_list(argv))
    if isinstance(instr, Entrypoint):
        argv = _command(cfg, instr)
        return (_set(cfg.set_entrypoint(argv), "Entrypoint", argv or None), argv,
                "ENTRYPOINT " + _go_quoted_list(argv))
    if isinstance(instr, Expose):
        new = cfg.expose(instr.ports)
        keys = sorted((new.values.get("ExposedPorts") or {}).keys())
        text = "map[" + " ".join(f"{k}:{{}}" for k in keys) + "]"
        return new, list(instr.ports), history_text("EXPOSE", text)
    if isinstance(instr, Volume):
        paths = list(instr.paths)
        return cfg.add_volumes(paths), paths, history_text("VOLUME", _go_list(paths))
    if isinstance(instr, User):
        return cfg.set_user(instr.user), instr.user, history_text("USER", instr.user)
    if isinstance(instr, StopSignal):
        sig = instr.signal
        return cfg.set_stop_signal(sig), sig, history_text("STOPSIGNAL", sig)
    if isinstance(instr, Shell):
        argv = list(instr.argv)
        if not argv:
            raise InvalidArgument("SHELL requires at least one argument")
        return cfg.set_shell(argv), argv, history_text("SHELL", _go_list(argv))
    if isinstance(instr, Healthcheck):
        return _healthcheck(instr, cfg)
    if isinstance(instr, OnBuild):
        trigger = instr.expression
        return cfg.add_onbuild(trigger), trigger, history_text("ONBUILD", trigger)
    if isinstance(instr, Maintainer):
        return cfg.set_author(instr.name), instr.name, history_text("MAINTAINER", instr.name)
    raise TypeError(f"not a metadata instruction: {type(instr).__name__}")


def _healthcheck(instr: Healthcheck, cfg: ConfigState) -> tuple[ConfigState, Any, str]:
    if instr.none or instr.command is None:
        test = ["NONE"]
    elif isinstance(instr.command, ExecCommand):
        test = ["CMD", *instr.command.argv]
    else:
        test = ["CMD-SHELL", instr.command.text]
    new = cfg.set_healthcheck(test, interval=instr.interval, timeout=instr.timeout,
                              start_period=instr.start_period,
                              start_interval=instr.start_interval, retries=instr.retries)
    value = {"test": test, "interval": instr.interval, "timeout": instr.timeout,
             "start_period": instr.start_period, "start_interval": instr.start_interval,
             "retries": instr.retries}
    # docker 20.10's `HEALTHCHECK %q` of its HealthConfig{Test, Interval, Timeout,
    # StartPeriod, Retries}
    check = new.values.get("Healthcheck") or {}
    text = "HEALTHCHECK &{{{} {} {} {} {}}}".format(
        _go_quoted_list(list(check.get("Test") or [])),
        *(_go_quote(go_duration(int(check.get(k) or 0)))
          for k in ("Interval", "Timeout", "StartPeriod")),
        _go_rune(int(check.get("Retries") or 0)))
    return new, value, text


def metadata_step(instr: Instruction, state: State) -> State:
    """Apply a config-only instruction (no cache lookup needed: it is pure and instant)."""
    cfg, value, text = apply(instr, state.config)
    key = cachekey.metadata_key(state.key, instr.KEYWORD, value)
    if isinstance(instr, OnBuild):  # BuildKit records no history entry for ONBUILD
        return state.advance(key, cfg)
    return state.advance(key, cfg.with_history(text, empty_layer=True))


def arg_step(instr: Instruction, env: Mapping[str, str], state: State, escape: str) -> State:
    """ARG changes no config but gets a history entry, `ARG NAME[=default]` with the
    Dockerfile's default (expanded), never the --build-arg value, as BuildKit writes it."""
    assert isinstance(instr, Arg)
    scope = dict(env)
    words: list[str] = []
    for decl in instr.args:
        if decl.default is None:
            words.append(decl.name)
            continue
        try:
            value = expand(decl.default, scope, escape=escape)
        except ExpansionError:
            value = decl.default
        scope[decl.name] = value
        words.append(f"{decl.name}={value}")
    text = "ARG " + " ".join(words)
    key = cachekey.metadata_key(state.key, "ARG", text)
    return state.advance(key, state.config.with_history(text, empty_layer=True))


# ----------------------------------------------------------------------------- WORKDIR


def _set(cfg: ConfigState, key: str, value: Any) -> ConfigState:
    """One config value set verbatim (None removes it)."""
    values = dict(cfg.values)
    if value is None:
        values.pop(key, None)
    else:
        values[key] = value
    return replace(cfg, config=replace(cfg.config, config=values))


def workdir_key(instr: Workdir, state: State) -> tuple[str, ConfigState]:
    """BuildKit joins a relative WORKDIR onto the previous one (cleaned) but keeps an
    absolute one verbatim (`/a/../b` stays so in the config; the directory made is /b)."""
    if instr.path.startswith("/"):
        cfg = _set(state.config, "WorkingDir", instr.path)
    else:
        cfg = state.config.set_workdir(instr.path)
    key = cachekey.metadata_key(state.key, "WORKDIR",
                                {"path": cfg.workdir, "user": state.config.user})
    return key, cfg


def workdir_execute(instr: Workdir, state: State, key: str, cfg: ConfigState, *,
                    ws: Workspace) -> State:
    """Create the directory (owned by USER when set, as BuildKit does); a layer only when
    it did not exist."""
    history = history_text("WORKDIR", cfg.workdir)
    path = posixpath.normpath(cfg.workdir)
    if path == "/":
        return state.advance(key, cfg.with_history(history, empty_layer=True))
    with ws.active(state.layers, state.base_image, "workdir") as active:
        with temp_mount(active.mounts) as rootfs:
            w = Writer(rootfs, Ownership())
            if not w.is_dir(path):
                owner = None
                if state.config.user:
                    user = resolve_user(rootfs, state.config.user)
                    owner = (user.uid, user.gid)
                w = Writer(rootfs, Ownership(chown=owner))
                host = w.mkdirs(path)
                if owner is not None:
                    os.lchown(host, *owner)
        layer = ws.commit(active, state.top)
    if layer is None:
        return state.advance(key, cfg.with_history(history, empty_layer=True))
    return state.advance(key, cfg.with_history(history, empty_layer=False),
                         (*state.layers, layer))
