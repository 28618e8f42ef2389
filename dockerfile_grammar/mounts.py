"""``RUN --mount=...`` option parsing (BuildKit ``instructions/commands_runmount.go``).

Values stay unexpanded; syntax is checked here so a bad mount fails at parse time.
Errors are :class:`MountProblem` with BuildKit's wording; the parser adds the location.
"""

from __future__ import annotations

import csv
import difflib
import re
from typing import Any

from .instructions import Mount

__all__ = ["MountProblem", "parse_mount"]

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_KEYS = (
    "type", "from", "source", "target", "readonly", "id", "sharing", "required", "mode",
    "uid", "gid", "size", "env", "src", "dst", "destination", "ro", "rw", "readwrite",
)
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[iI]?[bB]?$")


class MountProblem(ValueError):
    """A --mount value is invalid; the message is BuildKit's."""


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _bool(key: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise MountProblem(f"invalid value for {key}: {value}")


def _is_var(value: str) -> bool:
    return "$" in value


def parse_mount(spec: str) -> Mount:
    """Parse one --mount value (CSV of key=value fields) into a :class:`Mount`."""
    try:
        fields = next(csv.reader([spec]), [])
    except csv.Error as exc:
        raise MountProblem(f"failed to parse csv mounts: {exc}") from None
    # BuildKit applies fields in order; reading type first keeps the result independent
    # of field order (type-specific keys before type= are accepted).
    mtype = "bind"
    for item in fields:
        key, sep, value = item.partition("=")
        if sep and key.lower() == "type":
            if value.lower() not in MOUNT_TYPES and not _is_var(value):
                raise MountProblem(
                    f'unsupported mount type "{value}"' + _suggest(value.lower(), MOUNT_TYPES)
                )
            mtype = value.lower()
    opts: dict[str, Any] = {"type": mtype}
    ro_auto = True
    for item in fields:
        key, sep, value = item.partition("=")
        key = key.lower()
        if not sep:
            if key in ("readonly", "ro"):
                opts["readonly"], ro_auto = True, False
            elif key in ("readwrite", "rw"):
                opts["readonly"], ro_auto = False, False
            elif key == "required":
                if mtype not in ("secret", "ssh"):
                    raise MountProblem(f"unexpected key '{key}' for mount type '{mtype}'")
                opts["required"] = True
            else:
                raise MountProblem(f"invalid field '{item}' must be a key=value pair")
            continue
        if key == "type":
            continue
        if key == "from":
            opts["from_"] = value
        elif key in ("source", "src"):
            opts["source"] = value
        elif key in ("target", "dst", "destination"):
            opts["target"] = value
        elif key in ("readonly", "ro"):
            opts["readonly"], ro_auto = _bool(key, value), False
        elif key in ("readwrite", "rw"):
            opts["readonly"], ro_auto = not _bool(key, value), False
        elif key == "required":
            if mtype not in ("secret", "ssh"):
                raise MountProblem(f"unexpected key '{key}' for mount type '{mtype}'")
            opts["required"] = _bool(key, value)
        elif key == "size":
            if mtype != "tmpfs":
                raise MountProblem(f"unexpected key '{key}' for mount type '{mtype}'")
            if not _is_var(value) and not _SIZE_RE.match(value):
                raise MountProblem(f"invalid value for {key}: {value}")
            opts["size"] = value
        elif key == "id":
            opts["id"] = value
        elif key == "sharing":
            if value.lower() not in SHARING_MODES and not _is_var(value):
                raise MountProblem(
                    f'unsupported sharing value "{value}"'
                    + _suggest(value.lower(), SHARING_MODES)
                )
            opts["sharing"] = value.lower()
        elif key == "mode":
            if not _is_var(value) and not re.fullmatch(r"[0-7]+", value):
                raise MountProblem(f"invalid value {value} for mode")
            opts["mode"] = value
        elif key in ("uid", "gid"):
            if not _is_var(value) and not re.fullmatch(r"\d+", value):
                raise MountProblem(f"invalid value {value} for {key}")
            opts[key] = value
        elif key == "env":
            if mtype != "secret":
                raise MountProblem(f"unexpected key '{key}' for mount type '{mtype}'")
            opts["env"] = value
        else:
            raise MountProblem(f"unexpected key '{key}' in '{item}'" + _suggest(key, _KEYS))
    if mtype not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if key in opts:
                raise MountProblem(f'{key} not allowed for "{mtype}" type mounts')
    if ro_auto:
        opts["readonly"] = mtype not in ("cache", "tmpfs")
    if mtype == "secret":
        if "from_" in opts:
            raise MountProblem("secret mount should not have a from")
        if "sharing" in opts:
            raise MountProblem("secret mount should not define sharing")
        if not (opts.get("source") or opts.get("target") or opts.get("id") or opts.get("env")):
            raise MountProblem("invalid secret mount. one of source, target required")
        if opts.get("source") and opts.get("id"):
            raise MountProblem("both source and id can't be set")
    if "sharing" in opts and mtype != "cache":
        raise MountProblem(f"invalid cache sharing set for {mtype} mount")
    return Mount(**opts)
