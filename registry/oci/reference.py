"""Image references (`host/repo:tag@digest`): docker normalization, the spec's name rules."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from registry.oci.digest import Digest
from registry.oci.errors import NameInvalid, TagInvalid

# distribution-spec <name>: path components joined by "/", each [a-z0-9]+ with . _ __ -+ separators
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
MAX_NAME_LENGTH = 255

DOCKER_HUB = "docker.io"
DEFAULT_TAG = "latest"


def split_registry_url(url: str) -> tuple[str, str]:
    """(scheme, HOST[:PORT]) of a registry's base URL, `http[s]://HOST[:PORT]` (a trailing
    slash is allowed); ValueError for anything else: a path, a query, credentials, a port
    that is no number in 1..65535."""
    split = urllib.parse.urlsplit(url)
    try:
        port = split.port
    except ValueError:  # a port that is no number, or over 65535
        port = 0
    if (split.scheme not in ("http", "https") or not split.hostname or port == 0
            or split.path.strip("/") or split.query or split.fragment or split.username):
        raise ValueError(f"{url!r} is no http[s]://HOST[:PORT] URL")
    return split.scheme, split.netloc


def validate_name(name: str) -> str:
    """Return `name` if it is a valid repository name, else raise NameInvalid."""
    if len(name) > MAX_NAME_LENGTH:
        raise NameInvalid(f"repository name longer than {MAX_NAME_LENGTH} characters",
                          detail={"name": name[:300]})
    if not NAME_RE.fullmatch(name):
        raise NameInvalid(f"invalid repository name {name!r}", detail={"name": name})
    return name


def validate_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise TagInvalid(f"invalid tag {tag!r}", detail={"tag": tag})
    return tag


def _is_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed image reference. `registry` is None for local names (no host part)."""

    registry: str | None
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def name(self) -> str:
        """host/repository (or just repository for local names)."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when pinned, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, validate_tag(tag), None)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def familiar(self) -> str:
        """docker's short form: `busybox:latest` for `docker.io/library/busybox:latest`."""
        repo = self.repository
        if self.registry == DOCKER_HUB:
            repo = repo.removeprefix("library/")
            out = repo
        else:
            out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str, *, default_registry: str | None = DOCKER_HUB,
                    default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse `[host[:port]/]path[:tag][@digest]` the way docker normalizes names.

    A first component with a dot or a colon, or `localhost`, is a registry host. Without one the
    reference belongs to `default_registry` (docker.io, where one-component names get
    `library/`), or is a local name when `default_registry` is None. A tag defaults to
    `default_tag` unless a digest pins the reference.
    """
    if not text or text != text.strip():
        raise NameInvalid(f"invalid reference format {text!r}")
    rest, at, digest_text = text.partition("@")
    digest = Digest.parse(digest_text) if at else None
    host: str | None = None
    first, slash, remainder = rest.partition("/")
    if slash and _is_host(first):
        host, rest = first, remainder
    tag: str | None = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], validate_tag(rest[colon + 1:])
    if rest != rest.lower():
        raise NameInvalid(f"invalid reference format: repository name {rest!r} must be lowercase")
    if host is None:
        host = default_registry
        if host == DOCKER_HUB and "/" not in rest:
            rest = f"library/{rest}"
    elif host in ("index.docker.io", "registry-1.docker.io"):
        host = DOCKER_HUB
        if "/" not in rest:
            rest = f"library/{rest}"
    validate_name(rest)
    if tag is None and digest is None:
        tag = default_tag
    return Reference(host, rest, tag, digest)
