"""`--cache-to` / `--cache-from` option values, parsed into typed specs (pure, no I/O).

Grammar (BuildKit's CSV form): ``type=registry,ref=REF[,mode=min|max][,compression=gzip|zstd|none]
[,cache-mounts=true]``, ``type=inline``, ``type=local,dest=DIR`` (export) and
``type=registry,ref=REF`` / ``type=local,src=DIR`` (import). A bare value without ``type=`` is
a registry reference, as docker accepts ``--cache-from REF``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from builder.errors import InvalidArgument

CacheType = Literal["registry", "inline", "local"]
Mode = Literal["min", "max"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True, slots=True)
class CacheExport:
    """Where and how to export the build cache."""

    type: CacheType
    ref: str | None = None  # registry
    dest: Path | None = None  # local
    mode: Mode = "min"
    compression: str | None = None  # recorded only: layers are exported as built
    cache_mounts: bool = False


@dataclass(frozen=True, slots=True)
class CacheImport:
    """Where to import build cache records from."""

    type: Literal["registry", "local"]
    ref: str | None = None
    src: Path | None = None
    cache_mounts: bool = True  # restore exported cache mounts when the source has them


def _fields(text: str, flag: str) -> dict[str, str]:
    if "=" not in text:
        return {"type": "registry", "ref": text}
    out: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise InvalidArgument(f"invalid {flag} {text!r}: expected KEY=VALUE[,KEY=VALUE...]")
        out[key] = value.strip()
    out.setdefault("type", "registry" if "ref" in out else "")
    return out


def _bool(fields: dict[str, str], name: str, flag: str, default: bool) -> bool:
    value = fields.get(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidArgument(f"invalid {flag}: {name}={value!r} is not true or false")


def _known(fields: dict[str, str], allowed: set[str], flag: str) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise InvalidArgument(f"{flag} type={fields['type']}: unknown option(s) "
                              + ", ".join(unknown))


def parse_cache_to(text: str) -> CacheExport:
    """Parse one ``--cache-to`` value (InvalidArgument on anything unknown)."""
    flag = "--cache-to"
    f = _fields(text, flag)
    kind = f["type"]
    mode = f.get("mode", "min")
    if mode not in ("min", "max"):
        raise InvalidArgument(f"invalid {flag}: mode={mode!r} (min or max)")
    compression = f.get("compression")
    if compression is not None and compression not in ("gzip", "zstd", "none",
                                                       "uncompressed"):
        raise InvalidArgument(f"invalid {flag}: compression={compression!r} "
                              "(gzip, zstd or none)")
    mounts = _bool(f, "cache-mounts", flag, False)
    common = {"type", "mode", "compression", "cache-mounts", "ignore-error",
              "compression-level", "force-compression", "oci-mediatypes", "image-manifest"}
    if kind == "registry":
        _known(f, common | {"ref"}, flag)
        if not f.get("ref"):
            raise InvalidArgument(f"{flag} type=registry needs ref=REF")
        return CacheExport("registry", ref=f["ref"], mode=mode,  # type: ignore[arg-type]
                           compression=compression, cache_mounts=mounts)
    if kind == "local":
        _known(f, common | {"dest"}, flag)
        if not f.get("dest"):
            raise InvalidArgument(f"{flag} type=local needs dest=DIR")
        return CacheExport("local", dest=Path(f["dest"]), mode=mode,  # type: ignore[arg-type]
                           compression=compression, cache_mounts=mounts)
    if kind == "inline":
        _known(f, common, flag)
        if mode == "max":
            raise InvalidArgument(f"{flag} type=inline supports only mode=min (the image "
                                  "carries only its own layers)")
        return CacheExport("inline", mode="min", cache_mounts=False)
    raise InvalidArgument(f"invalid {flag} {text!r}: type must be registry, inline or local")


def parse_cache_from(text: str) -> CacheImport:
    """Parse one ``--cache-from`` value."""
    flag = "--cache-from"
    f = _fields(text, flag)
    kind = f["type"]
    mounts = _bool(f, "cache-mounts", flag, True)
    if kind == "registry":
        _known(f, {"type", "ref", "cache-mounts"}, flag)
        if not f.get("ref"):
            raise InvalidArgument(f"{flag} type=registry needs ref=REF")
        return CacheImport("registry", ref=f["ref"], cache_mounts=mounts)
    if kind == "local":
        _known(f, {"type", "src", "cache-mounts", "digest", "tag"}, flag)
        if not f.get("src"):
            raise InvalidArgument(f"{flag} type=local needs src=DIR")
        return CacheImport("local", src=Path(f["src"]), cache_mounts=mounts)
    raise InvalidArgument(f"invalid {flag} {text!r}: type must be registry or local")
