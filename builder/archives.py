"""Image archives in and out of the store, streamed member by member.

- `import_rootfs`: a rootfs tar (plain or compressed) becomes a one-layer image, like
  `docker import`: the tar is the layer as given (diff_id = sha256 of its uncompressed bytes),
  stored gzip-compressed.
- `load_archive`: a docker-archive (`docker save`: manifest.json + repositories + <id>.json +
  <id>/layer.tar, or the OCI layout inside that docker 25+ writes) or an OCI archive (a tar of an
  OCI image layout). One streaming pass commits every blob-like member to the content store
  (verified against its name when the name is a digest); the JSON is interpreted afterwards.
- `save_archive`: writes the docker-archive format that docker 25+ writes (an OCI layout plus
  manifest.json and repositories, which every docker load reads), or a plain OCI archive.
Tar member names are only ever used as dictionary keys here, never as filesystem paths.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import posixpath
import shlex
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from builder.content import CHUNK, LocalContentStore, write_bytes
from builder.errors import DigestMismatch, InvalidArgument, NotFound
from builder.images import (
    CONTAINERD_NAME,
    REF_NAME,
    Image,
    ImageStore,
    convert_manifest,
    normalize_name,
)
from builder.layers.compression import open_compressor, open_decompressed
from registry.oci import (
    Descriptor,
    Digest,
    Digester,
    ImageManifest,
    Platform,
    RegistryError,
    canonical_bytes,
    mediatypes,
    parse_reference,
)

MAX_JSON = 8 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _layer_media_type(compression: str) -> str:
    return {"gzip": mediatypes.OCI_LAYER_GZIP, "zstd": mediatypes.OCI_LAYER_ZSTD,
            "none": mediatypes.OCI_LAYER}[compression]


# ----------------------------------------------------------------------------- import


def rfc3339(epoch: float) -> str:
    stamp = dt.datetime.fromtimestamp(epoch, dt.UTC)
    if epoch == int(epoch):
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def source_date_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"SOURCE_DATE_EPOCH={value!r} is not an integer") from None


def apply_change(config: dict[str, Any], line: str) -> None:
    """One `--change` Dockerfile instruction (CMD ENTRYPOINT ENV LABEL WORKDIR USER EXPOSE
    VOLUME STOPSIGNAL) applied to the execution config, as `docker import --change` does."""
    keyword, _, rest = line.strip().partition(" ")
    keyword, rest = keyword.upper(), rest.strip()

    def argv() -> list[str]:
        if rest.startswith("["):
            try:
                value = json.loads(rest)
            except json.JSONDecodeError:
                raise InvalidArgument(f"--change {line!r}: bad JSON array") from None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidArgument(f"--change {line!r}: expected a JSON array of strings")
            return value
        return ["/bin/sh", "-c", rest]

    def pairs() -> list[tuple[str, str]]:
        words = shlex.split(rest)
        if len(words) == 2 and "=" not in words[0]:
            return [(words[0], words[1])]
        out = []
        for word in words:
            key, eq, value = word.partition("=")
            if not eq:
                raise InvalidArgument(f"--change {line!r}: expected KEY=VALUE")
            out.append((key, value))
        return out

    if keyword == "CMD":
        config["Cmd"] = argv()
    elif keyword == "ENTRYPOINT":
        config["Entrypoint"] = argv()
    elif keyword == "ENV":
        env = [e for e in config.get("Env") or []]
        for key, value in pairs():
            env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
        config["Env"] = env
    elif keyword == "LABEL":
        config["Labels"] = {**(config.get("Labels") or {}), **dict(pairs())}
    elif keyword == "WORKDIR":
        config["WorkingDir"] = rest
    elif keyword == "USER":
        config["User"] = rest
    elif keyword == "STOPSIGNAL":
        config["StopSignal"] = rest
    elif keyword in ("EXPOSE", "VOLUME"):
        field = "ExposedPorts" if keyword == "EXPOSE" else "Volumes"
        items = json.loads(rest) if rest.startswith("[") else rest.split()
        found = dict(config.get(field) or {})
        for item in items:
            if keyword == "EXPOSE" and "/" not in item:
                item += "/tcp"
            found[item] = {}
        config[field] = found
    else:
        raise InvalidArgument(f"--change {keyword or line!r} is not supported")


def import_rootfs(store: ImageStore, source: BinaryIO, name: str | None, *,
                  source_label: str = "-", changes: Sequence[str] = (), message: str | None = None,
                  compression: str = "gzip", level: int | None = None,
                  platform: Platform | None = None, epoch: int | None = None) -> Image:
    """docker import: one layer from a rootfs tar, plus a config built from `changes`."""
    exec_config: dict[str, Any] = {}
    for change in changes:
        apply_change(exec_config, change)
    epoch = epoch if epoch is not None else source_date_epoch()
    created = rfc3339(epoch if epoch is not None else round(time.time(), 6))
    platform = platform or Platform.host()
    with store.gc_guard():
        raw = open_decompressed(source)
        diff = Digester()
        with store.content.writer("import-layer") as w:
            comp = open_compressor(w, compression, level)
            while chunk := raw.read(CHUNK):
                diff.update(chunk)
                comp.write(chunk)
            comp.close()
            layer_size = w.size
            layer_digest = w.commit()
        history: dict[str, Any] = {"created": created, "created_by": "strata import",
                                   "comment": message or f"Imported from {source_label}"}
        config: dict[str, Any] = {
            "architecture": platform.architecture, "os": platform.os, "created": created,
            "config": exec_config,
            "rootfs": {"type": "layers", "diff_ids": [str(diff.digest())]},
            "history": [history],
        }
        if platform.variant:
            config["variant"] = platform.variant
        config_info = write_bytes(store.content, canonical_bytes(config))
        manifest = ImageManifest(
            mediatypes.OCI_MANIFEST,
            Descriptor(mediatypes.OCI_CONFIG, config_info.digest, config_info.size),
            (Descriptor(_layer_media_type(compression), layer_digest, layer_size),))
        return store.add_manifest(manifest, [name] if name else [])


# ----------------------------------------------------------------------------- load


@dataclass(frozen=True, slots=True)
class _Member:
    digest: Digest
    size: int
    head: bytes


@dataclass(frozen=True, slots=True)
class Loaded:
    image: Image
    names: tuple[str, ...]


def _norm(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


class _HeadWriter:
    """Wraps a content writer and keeps the first bytes (for magic detection)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.head = b""

    def write(self, data: bytes) -> int:
        if len(self.head) < 4:
            self.head += data[: 4 - len(self.head)]
        return int(self.inner.write(data))


def _wanted_blob(name: str) -> bool:
    """Members that may be blobs: everything but the legacy per-layer `json`/`VERSION` files."""
    return posixpath.basename(name) not in ("json", "VERSION")


def load_archive(store: ImageStore, stream: BinaryIO) -> list[Loaded]:
    """Load a docker-archive or OCI archive (optionally compressed) from a stream."""
    members: dict[str, _Member] = {}
    links: dict[str, str] = {}
    small: dict[str, bytes] = {}
    with store.gc_guard():
        try:
            tar = tarfile.open(fileobj=stream, mode="r|*")  # noqa: SIM115
        except tarfile.TarError as exc:
            raise InvalidArgument(f"not a tar archive: {exc}") from None
        with tar:
            for member in tar:
                name = _norm(member.name)
                if member.issym():
                    links[name] = _norm(posixpath.join(posixpath.dirname(name), member.linkname))
                    continue
                if member.islnk():
                    links[name] = _norm(member.linkname)
                    continue
                if not member.isfile():
                    continue
                fileobj = tar.extractfile(member)
                assert fileobj is not None
                if name in ("manifest.json", "index.json", "repositories", "oci-layout"):
                    if member.size > MAX_JSON:
                        raise InvalidArgument(f"{name} in the archive is too large")
                    small[name] = fileobj.read()
                    continue
                if not _wanted_blob(name):
                    continue
                members[name] = _commit_member(store.content, name, fileobj, member.size)
        return _register(store, members, links, small)


def _commit_member(content: LocalContentStore, name: str, fileobj: IO[bytes],
                   size: int) -> _Member:
    expected: Digest | None = None
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        try:
            expected = Digest.parse(f"{parts[1]}:{parts[2]}")
        except RegistryError:
            expected = None
    if expected is not None and content.exists(expected) \
            and content.info(expected).size == size:
        with content.open(expected) as f:
            head = f.read(4)
        return _Member(expected, size, head)
    with content.writer("load", expected, size) as w:
        hw = _HeadWriter(w)
        while chunk := fileobj.read(CHUNK):
            hw.write(chunk)
        digest = w.commit(size, expected)
    return _Member(digest, size, hw.head)


def _lookup(members: dict[str, _Member], links: dict[str, str], name: str) -> _Member:
    name = _norm(name)
    for _ in range(16):
        if name in members:
            return members[name]
        if name not in links:
            break
        name = links[name]
    raise NotFound(f"archive member {name!r} is missing")


def _names_from_annotations(annotations: dict[str, str] | None) -> list[str]:
    annotations = annotations or {}
    full = annotations.get(CONTAINERD_NAME)
    ref_name = annotations.get(REF_NAME)
    for candidate in (full, ref_name):
        if not candidate or (candidate is ref_name and ":" not in candidate
                             and "/" not in candidate):
            continue
        try:
            parsed = parse_reference(candidate, default_registry="docker.io")
        except RegistryError:
            continue
        if parsed.digest is None:
            return [parsed.familiar()]
    return []


def _register(store: ImageStore, members: dict[str, _Member], links: dict[str, str],
              small: dict[str, bytes]) -> list[Loaded]:
    loaded: list[Loaded] = []
    repo_tags: dict[str, list[str]] = {}
    manifest_json: list[dict[str, Any]] = []
    if "manifest.json" in small:
        manifest_json = json.loads(small["manifest.json"])
        if not isinstance(manifest_json, list):
            raise InvalidArgument("manifest.json must be a JSON array")
        for entry in manifest_json:
            cfg = _lookup(members, links, entry["Config"])
            repo_tags.setdefault(str(cfg.digest), []).extend(entry.get("RepoTags") or [])
    if "index.json" in small:
        index = json.loads(small["index.json"])
        for desc_obj in index.get("manifests") or []:
            desc = Descriptor.from_json(desc_obj)
            image = store.add_image(desc.digest, [], desc.media_type)
            names = _names_from_annotations(desc.annotations) + repo_tags.get(image.id, [])
            names = list(dict.fromkeys(normalize_name(n) for n in names))
            for name in names:
                image = store.tag(str(image.manifest.digest), name)
            loaded.append(Loaded(image, tuple(names)))
        if loaded:
            return loaded
    if not manifest_json:
        raise InvalidArgument("archive has neither an OCI index.json nor a docker manifest.json")
    for entry in manifest_json:
        cfg = _lookup(members, links, entry["Config"])
        config = json.loads(_read_blob(store, cfg.digest))
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        layers = []
        for i, path in enumerate(entry.get("Layers") or []):
            m = _lookup(members, links, path)
            if m.head[:2] == GZIP_MAGIC:
                media = mediatypes.OCI_LAYER_GZIP
            elif m.head[:4] == ZSTD_MAGIC:
                media = mediatypes.OCI_LAYER_ZSTD
            else:
                media = mediatypes.OCI_LAYER
                if i < len(diff_ids) and diff_ids[i] != str(m.digest):
                    raise DigestMismatch(diff_ids[i], str(m.digest), f"layer {path} diff_id")
            layers.append(Descriptor(media, m.digest, m.size))
        manifest = ImageManifest(mediatypes.OCI_MANIFEST,
                                 Descriptor(mediatypes.OCI_CONFIG, cfg.digest, cfg.size),
                                 tuple(layers))
        names = list(dict.fromkeys(normalize_name(n) for n in entry.get("RepoTags") or []))
        loaded.append(Loaded(store.add_manifest(manifest, names), tuple(names)))
    return loaded


def _read_blob(store: ImageStore, digest: Digest) -> bytes:
    with store.content.open(digest) as f:
        data = f.read(MAX_JSON + 1)
    if len(data) > MAX_JSON:
        raise InvalidArgument(f"config {digest} is too large")
    return data


# ----------------------------------------------------------------------------- save


def _docker_full_name(name: str) -> str:
    return str(parse_reference(name, default_registry="docker.io"))


def save_archive(store: ImageStore, refs: Iterable[str], out: BinaryIO,
                 fmt: str = "docker", media_types: str | None = None) -> None:
    """Stream images as a docker-archive (`fmt="docker"`) or an OCI archive (`fmt="oci"`).

    `media_types="docker"|"oci"` rewrites the manifests written into the archive to that
    family (Docker schema2 or OCI); None keeps each manifest's bytes as stored.
    """
    if fmt not in ("docker", "oci"):
        raise InvalidArgument(f"unknown archive format {fmt!r} (docker or oci)")
    chosen: list[tuple[str | None, Image]] = []
    for text in refs:
        image = store.resolve(text)
        named = None
        with contextlib.suppress(InvalidArgument):
            candidate = normalize_name(text)
            if candidate in image.names:
                named = candidate
        chosen.append((named, image))
    if not chosen:
        raise InvalidArgument("nothing to save")
    written: set[Digest] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for dirname in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(dirname)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)

        def add_blob(digest: Digest) -> str:
            path = f"blobs/{digest.algorithm}/{digest.encoded}"
            if digest not in written:
                written.add(digest)
                info = tarfile.TarInfo(path)
                info.size, info.mode, info.mtime = store.content.info(digest).size, 0o444, 0
                with store.content.open(digest) as f:
                    tar.addfile(info, f)
            return path

        def add_bytes(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))

        index_entries: list[dict[str, Any]] = []
        docker_manifest: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        for named, image in chosen:
            manifest = store.manifest(image)
            desc = image.manifest.to_json()
            converted = convert_manifest(manifest, media_types) if media_types else manifest
            if converted.to_json() != manifest.to_json():
                data = canonical_bytes(converted.to_json())
                digest = Digest.from_bytes(data)
                if digest not in written:
                    written.add(digest)
                    add_bytes(f"blobs/sha256/{digest.encoded}", data)
                desc = {"mediaType": converted.media_type, "digest": str(digest),
                        "size": len(data)}
            else:
                add_blob(image.manifest.digest)
            config_path = add_blob(manifest.config.digest)
            layer_paths = [add_blob(layer.digest) for layer in manifest.layers]
            if named:
                if fmt == "oci":
                    desc["annotations"] = {REF_NAME: named}
                else:
                    full = _docker_full_name(named)
                    desc["annotations"] = {CONTAINERD_NAME: full,
                                           REF_NAME: full.rpartition(":")[2]}
            index_entries.append(desc)
            existing = next((e for e in docker_manifest if e["Config"] == config_path), None)
            if existing is None:
                existing = {"Config": config_path, "RepoTags": [], "Layers": layer_paths}
                docker_manifest.append(existing)
            if named:
                existing["RepoTags"].append(named)
                repo, _, tag = named.rpartition(":")
                top = manifest.layers[-1].digest.encoded if manifest.layers else ""
                repositories.setdefault(repo, {})[tag] = top
        add_bytes("oci-layout", json.dumps(
            {"imageLayoutVersion": mediatypes.OCI_LAYOUT_VERSION}).encode())
        add_bytes("index.json", json.dumps(
            {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
             "manifests": index_entries}).encode())
        if fmt == "docker":
            add_bytes("manifest.json", json.dumps(docker_manifest).encode())
            if repositories:
                add_bytes("repositories", json.dumps(repositories).encode())


def save_to_path(store: ImageStore, refs: Sequence[str], path: Path, fmt: str,
                 media_types: str | None = None) -> None:
    """Save into `path` atomically (temp file in the same directory, then rename)."""
    from builder.fsutil import atomic_writer

    with atomic_writer(path, sync_dir=False) as f:
        save_archive(store, refs, f, fmt, media_types)


__all__ = ["Loaded", "apply_change", "import_rootfs", "load_archive", "rfc3339",
           "save_archive", "save_to_path", "source_date_epoch"]
