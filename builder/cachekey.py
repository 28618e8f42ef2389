"""Build step cache keys: pure, canonical, versioned (DESIGN 5.2). No I/O.

A key is ``sha256:<hex>`` of the canonical JSON of

    {"v": KEY_VERSION, "parent": <parent key or null>, "op": {...}, "inputs": {...}}

canonical = sorted keys, separators ``(",", ":")``, UTF-8, ``ensure_ascii=False``. ``op`` is the
instruction after expansion (what it *is*); ``inputs`` are the values it reads from outside its own
text (effective environment, content checksums of the files it reads, the stage or image a
``--from`` names). Only JSON scalars (str, int, bool, None), lists/tuples and str-keyed mappings
are accepted: floats, bytes, sets and paths are refused so no accident (ordering, host paths,
timestamps) can leak into a key. Changing what any helper puts into a key means bumping
KEY_VERSION; golden tests pin the digests.

Vocabulary for the builder:

* ``from_key`` / ``scratch_key`` start a stage; FROM keys on the resolved *manifest digest*.
* ``run_key``, ``copy_key``, ``metadata_key`` chain on the previous step's key.
* ``COPY --link``: ``copy_key(..., link=True)`` ignores ``parent`` and gives the *layer key*; the
  layer cached under it is reusable on any base. The state after the step (the parent of the next
  step) is ``linked_key(parent, layer_key)``; the builder stores the image/config result under
  that key and the diff layer under the layer key, so a changed base re-runs nothing for the copy
  but still re-keys every later step.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dockerfile_grammar.expand import referenced_names
from registry.oci.digest import Digest

__all__ = [
    "KEY_VERSION",
    "PROXY_VARS",
    "BindMountKey",
    "CacheMountKey",
    "SecretMountKey",
    "SshMountKey",
    "TmpfsMountKey",
    "MountKey",
    "canonical_json",
    "copy_key",
    "from_key",
    "linked_key",
    "metadata_key",
    "referenced_env",
    "run_key",
    "scratch_key",
    "step_key",
    "without_proxy_vars",
]

KEY_VERSION = 1

#: Build args BuildKit never lets into a cache key (matched case-insensitively).
PROXY_VARS = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"})


def _normalize(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, Digest):
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"cache key {where}: mapping key {key!r} is not a str")
            out[key] = _normalize(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_normalize(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"cache key {where}: {type(value).__name__} is not allowed "
        "(use str, int, bool, None, list or a str-keyed mapping)"
    )


def canonical_json(value: Any) -> bytes:
    """The canonical encoding of `value` (after the type checks described above)."""
    return json.dumps(
        _normalize(value, "value"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def step_key(parent: str | None, op: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    """sha256 of the canonical ``{"v", "parent", "op", "inputs"}`` document."""
    doc = {"v": KEY_VERSION, "parent": parent, "op": op, "inputs": inputs}
    return "sha256:" + hashlib.sha256(canonical_json(doc)).hexdigest()


# ---------------------------------------------------------------- environment helpers


def without_proxy_vars(env: Mapping[str, str]) -> dict[str, str]:
    """`env` minus HTTP_PROXY, HTTPS_PROXY, FTP_PROXY, NO_PROXY, ALL_PROXY in any letter case."""
    return {k: v for k, v in env.items() if k.upper() not in PROXY_VARS}


def referenced_env(
    env: Mapping[str, str], words: Iterable[str], *, escape: str = "\\"
) -> dict[str, str]:
    """The part of `env` that expanding `words` can read (proxy variables excluded).

    For instructions other than RUN (COPY/ADD flags and sources, WORKDIR, ...) only the variables
    a word references can change the result, so only those belong in the key. Referenced names
    that are unset are simply absent; the expanded text in the op changes when they get set.
    """
    names: set[str] = set()
    for word in words:
        names |= referenced_names(word, escape)
    return without_proxy_vars({k: env[k] for k in sorted(names) if k in env})


def _platform(platform: str | Mapping[str, Any]) -> Any:
    return platform if isinstance(platform, str) else dict(platform)


# ---------------------------------------------------------------- FROM


def from_key(manifest_digest: Digest | str, platform: str | Mapping[str, Any]) -> str:
    """Key of ``FROM image``: the resolved manifest digest (never the tag) and the platform."""
    digest = manifest_digest if isinstance(manifest_digest, Digest) else Digest.parse(
        manifest_digest
    )
    return step_key(None, {"kind": "FROM", "manifest": str(digest),
                           "platform": _platform(platform)}, {})


def scratch_key(platform: str | Mapping[str, Any]) -> str:
    """Key of ``FROM scratch`` (an empty root filesystem)."""
    return step_key(None, {"kind": "FROM", "scratch": True, "platform": _platform(platform)}, {})


# ---------------------------------------------------------------- RUN mounts


@dataclass(frozen=True, slots=True)
class BindMountKey:
    """``--mount=type=bind``: keyed on the content checksum of what it exposes.

    `source_from` is "context", a stage key or an image digest; `checksum` is the content digest
    of the bound path (BuildContext.checksum for the context). For a stage, its key suffices.
    """

    target: str
    source: str = "/"
    source_from: str = "context"
    checksum: str | None = None
    readwrite: bool = False

    def to_op(self) -> dict[str, Any]:
        return {"type": "bind", "target": self.target, "source": self.source,
                "rw": self.readwrite}

    def to_input(self) -> dict[str, Any]:
        return {"from": self.source_from, "checksum": self.checksum}


@dataclass(frozen=True, slots=True)
class CacheMountKey:
    """``--mount=type=cache``: id, target, sharing, how the dir is made; never its contents."""

    id: str
    target: str
    sharing: Literal["shared", "private", "locked"] = "shared"
    readonly: bool = False
    source_from: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    def to_op(self) -> dict[str, Any]:
        return {"type": "cache", "id": self.id, "target": self.target, "sharing": self.sharing,
                "ro": self.readonly, "from": self.source_from, "mode": self.mode,
                "uid": self.uid, "gid": self.gid}

    def to_input(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class TmpfsMountKey:
    target: str
    size: int | None = None

    def to_op(self) -> dict[str, Any]:
        return {"type": "tmpfs", "target": self.target, "size": self.size}

    def to_input(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class SecretMountKey:
    """``--mount=type=secret``: id and where it appears. There is deliberately no field for the
    secret's value or host path: they must never reach a key."""

    id: str
    target: str | None = None
    env: str | None = None
    required: bool = False
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    def to_op(self) -> dict[str, Any]:
        return {"type": "secret", "id": self.id, "target": self.target, "env": self.env,
                "required": self.required, "mode": self.mode, "uid": self.uid, "gid": self.gid}

    def to_input(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class SshMountKey:
    id: str = "default"
    target: str | None = None
    required: bool = False

    def to_op(self) -> dict[str, Any]:
        return {"type": "ssh", "id": self.id, "target": self.target, "required": self.required}

    def to_input(self) -> dict[str, Any]:
        return {}


MountKey = BindMountKey | CacheMountKey | TmpfsMountKey | SecretMountKey | SshMountKey


# ---------------------------------------------------------------- RUN


def run_key(
    parent: str,
    *,
    command: str | Sequence[str],
    env: Mapping[str, str],
    shell: Sequence[str] = ("/bin/sh", "-c"),
    user: str = "",
    workdir: str = "/",
    platform: str | Mapping[str, Any] = "",
    network: str = "default",
    security: str = "sandbox",
    mounts: Sequence[MountKey] = (),
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Key of a RUN step.

    `command` is the shell form text (a str, run as ``[*shell, command]``) or the exec form argv
    (a sequence), after expansion and heredoc substitution. `env` is the effective environment:
    ENV plus the ARGs in scope; proxy variables are dropped here. Mount order is kept (a later
    mount can shadow an earlier one). `extra` carries future fields; it is left out when empty so
    existing keys do not move.
    """
    shell_form = isinstance(command, str)
    argv = [*shell, command] if isinstance(command, str) else list(command)
    op: dict[str, Any] = {
        "kind": "RUN",
        "argv": argv,
        "shell_form": shell_form,
        "user": user,
        "workdir": workdir,
        "platform": _platform(platform),
        "network": network,
        "security": security,
        "mounts": [m.to_op() for m in mounts],
    }
    if extra:
        op["extra"] = dict(extra)
    inputs = {
        "env": without_proxy_vars(env),
        "mounts": [m.to_input() for m in mounts],
    }
    return step_key(parent, op, inputs)


# ---------------------------------------------------------------- COPY / ADD


def copy_key(
    parent: str | None,
    *,
    kind: Literal["COPY", "ADD"] = "COPY",
    sources: Sequence[str],
    dest: str,
    sources_checksum: Digest | str | None,
    source_from: str | None = None,
    chown: str | None = None,
    chmod: str | None = None,
    link: bool = False,
    exclude: Sequence[str] = (),
    parents: bool = False,
    url_checksum: Digest | str | None = None,
    unpack: bool | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Key of a COPY/ADD step (or, with ``link=True``, of its parent-independent layer).

    `sources` are the source words after expansion, `dest` the destination resolved against
    WORKDIR (trailing ``/`` kept: it changes the result). `sources_checksum` is
    BuildContext.checksum(...) of the sources (computed with chmod/chown overrides matching the
    flags). `source_from` is None for the context, else a stage key or an image manifest digest
    (for a stage its key stands for the content, per DESIGN 5.2). `chown` should be the resolved
    ``uid:gid`` (names resolve in the target image, which a ``--link`` key cannot see).
    `url_checksum` is the digest of content an ADD fetched (or its ``--checksum``).
    """
    op: dict[str, Any] = {
        "kind": kind,
        "sources": list(sources),
        "dest": dest,
        "chown": chown,
        "chmod": chmod,
        "link": link,
        "exclude": list(exclude),
        "parents": parents,
    }
    if unpack is not None:
        op["unpack"] = unpack
    if extra:
        op["extra"] = dict(extra)
    inputs = {
        "from": source_from,
        "checksum": None if sources_checksum is None else str(sources_checksum),
        "url_checksum": None if url_checksum is None else str(url_checksum),
    }
    return step_key(None if link else parent, op, inputs)


def linked_key(parent: str, layer_key: str) -> str:
    """The state key after applying a ``--link`` layer (keyed by `layer_key`) on `parent`."""
    return step_key(parent, {"kind": "LINK", "layer": layer_key}, {})


# ---------------------------------------------------------------- metadata instructions


def metadata_key(parent: str, instruction: str, value: Any) -> str:
    """Key of a config-only step (ENV, LABEL, CMD, ENTRYPOINT, WORKDIR, USER, EXPOSE, ...).

    `value` is the expanded value in a JSON-able shape (e.g. a list of [key, value] pairs for
    ENV/LABEL so their order is kept).
    """
    return step_key(parent, {"kind": instruction.upper(), "value": value}, {})
