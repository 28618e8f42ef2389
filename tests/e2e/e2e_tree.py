"""Read a docker-archive (from `docker save` or `strata save`) into an image config and the
file tree its layers produce, and describe the differences between two such images.

The tree is built by applying the layers in order, the way a snapshotter would: whiteouts
(`.wh.<name>`) and opaque markers (`.wh..wh..opq`) in a layer remove entries of the layers
below it, a non-directory replacing a directory removes that directory's subtree, and hard
links are kept as groups so a lost link shows up as a difference.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import stat
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import zstandard

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"

# The image config fields the issue names, in docker's spelling.
CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
                 "Labels", "StopSignal", "Healthcheck", "OnBuild", "Shell")

_KINDS = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "chardev",
    tarfile.BLKTYPE: "blockdev", tarfile.FIFOTYPE: "fifo",
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One path of a flattened image: what `docker export` would show, minus mtimes."""

    kind: str
    mode: int
    uid: int
    gid: int
    size: int = 0
    digest: str | None = None  # sha256 of a regular file's bytes
    link: str | None = None  # symlink target
    device: tuple[int, int] | None = None
    hardlink_group: str | None = None  # smallest path sharing this inode, None when alone

    def describe(self) -> str:
        parts = [self.kind, f"mode={self.mode:04o}", f"owner={self.uid}:{self.gid}"]
        if self.kind == "file":
            parts.append(f"size={self.size} sha256={(self.digest or '')[:12]}")
        if self.link is not None:
            parts.append(f"-> {self.link}")
        if self.device is not None:
            parts.append(f"dev={self.device[0]}:{self.device[1]}")
        if self.hardlink_group is not None:
            parts.append(f"hardlink-group={self.hardlink_group}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Image:
    """A saved image: its full config JSON and its flattened file tree."""

    config: dict[str, Any]
    tree: dict[str, Entry]
    layer_count: int

    @property
    def container_config(self) -> dict[str, Any]:
        value = self.config.get("config") or {}
        assert isinstance(value, dict)
        return value


def clean_name(name: str) -> str:
    """Normalize a tar member name to a relative path ('' for the root)."""
    norm = posixpath.normpath("/" + name).lstrip("/")
    return "" if norm == "." else norm


def _open_layer(raw: IO[bytes]) -> tarfile.TarFile:
    head = raw.read(4)
    raw.seek(0)
    if head == b"\x28\xb5\x2f\xfd":
        stream = zstandard.ZstdDecompressor().stream_reader(raw)
        return tarfile.open(fileobj=stream, mode="r|")
    return tarfile.open(fileobj=raw, mode="r|*")


def _hash_member(tf: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    src = tf.extractfile(member)
    assert src is not None
    digest = hashlib.sha256()
    while chunk := src.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _remove_subtree(tree: dict[str, Entry], path: str, *, keep_self: bool = False) -> None:
    prefix = path + "/" if path else ""
    for name in [n for n in tree if n.startswith(prefix) or (n == path and not keep_self)]:
        del tree[name]


def apply_layer(tree: dict[str, Entry], links: dict[str, str], layer: tarfile.TarFile) -> None:
    """Apply one layer tar (streamed) to `tree`; `links` maps path -> hard-link group key."""
    whiteouts: list[str] = []
    opaque: list[str] = []
    additions: list[tuple[str, Entry, str | None]] = []
    for member in layer:
        name = clean_name(member.name)
        if not name:
            continue
        base = posixpath.basename(name)
        parent = posixpath.dirname(name)
        if base == OPAQUE_MARKER:
            opaque.append(parent)
            continue
        if base.startswith(WHITEOUT_PREFIX):
            whiteouts.append(posixpath.join(parent, base[len(WHITEOUT_PREFIX):]))
            continue
        hard_target = clean_name(member.linkname) if member.type == tarfile.LNKTYPE else None
        kind = _KINDS.get(member.type, f"type-{member.type!r}")
        digest = _hash_member(tf=layer, member=member) if kind == "file" else None
        entry = Entry(
            kind="file" if hard_target is not None else kind,
            mode=stat.S_IMODE(member.mode), uid=member.uid, gid=member.gid,
            size=member.size if kind == "file" else 0, digest=digest,
            link=member.linkname if member.type == tarfile.SYMTYPE else None,
            device=(member.devmajor, member.devminor) if kind in ("chardev", "blockdev") else None,
        )
        additions.append((name, entry, hard_target))
    # Whiteouts and opaque markers only hide what the layers below hold.
    for path in opaque:
        _remove_subtree(tree, path, keep_self=True)
    for path in whiteouts:
        _remove_subtree(tree, path)
    for name, entry, hard_target in additions:
        old = tree.get(name)
        if old is not None and old.kind == "dir" and entry.kind != "dir":
            _remove_subtree(tree, name)
        links.pop(name, None)
        if hard_target is not None:
            target = tree.get(hard_target)
            if target is None:
                raise ValueError(f"hard link {name} -> {hard_target}: target missing")
            entry = replace(target, hardlink_group=None)
            group = links.setdefault(hard_target, hard_target)
            links[name] = group
        tree[name] = entry
    for name in [n for n in links if n not in tree]:
        del links[name]


def _finish_links(tree: dict[str, Entry], links: Mapping[str, str]) -> dict[str, Entry]:
    members: dict[str, list[str]] = {}
    for path, group in links.items():
        members.setdefault(group, []).append(path)
    for paths in members.values():
        if len(paths) < 2:
            continue
        first = min(paths)
        for path in paths:
            tree[path] = replace(tree[path], hardlink_group=first)
    return tree


def read_docker_archive(path: Path, *, ref: str | None = None) -> Image:
    """Load the image named `ref` (or the only image) from a docker-archive tar."""
    with tarfile.open(path, "r:") as outer:
        manifest_file = outer.extractfile("manifest.json")
        assert manifest_file is not None
        manifest = json.load(manifest_file)
        chosen = manifest[0]
        if ref is not None:
            for item in manifest:
                if ref in (item.get("RepoTags") or []):
                    chosen = item
        config_file = outer.extractfile(chosen["Config"])
        assert config_file is not None
        config = json.load(config_file)
        tree: dict[str, Entry] = {}
        links: dict[str, str] = {}
        for layer_path in chosen["Layers"]:
            raw = outer.extractfile(layer_path)
            assert raw is not None
            with _open_layer(raw) as layer:
                apply_layer(tree, links, layer)
    return Image(config=config, tree=_finish_links(tree, links),
                 layer_count=len(chosen["Layers"]))


def normalized_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The compared config fields; a null and a missing field are the same thing."""
    return {k: config.get(k) for k in CONFIG_FIELDS if config.get(k) is not None}


def config_differences(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    a, b = normalized_config(ours), normalized_config(theirs)
    return [f"config {key}: strata={a.get(key)!r} docker={b.get(key)!r}"
            for key in CONFIG_FIELDS if a.get(key) != b.get(key)]


def tree_differences(ours: Mapping[str, Entry], theirs: Mapping[str, Entry],
                     ignore: Iterable[str] = ()) -> list[str]:
    """Human-readable differences, one line per path, sorted."""
    ignored = set(ignore)
    out: list[str] = []
    for path in sorted(set(ours) | set(theirs)):
        if path in ignored or any(path.startswith(i + "/") for i in ignored):
            continue
        a, b = ours.get(path), theirs.get(path)
        if a == b:
            continue
        if a is None:
            assert b is not None
            out.append(f"/{path}: only in docker ({b.describe()})")
        elif b is None:
            out.append(f"/{path}: only in strata ({a.describe()})")
        else:
            out.append(f"/{path}: strata {a.describe()} | docker {b.describe()}")
    return out


def iter_files(tree: Mapping[str, Entry], under: str) -> Iterator[tuple[str, Entry]]:
    prefix = clean_name(under)
    for path in sorted(tree):
        if path == prefix or path.startswith(prefix + "/"):
            yield path, tree[path]
