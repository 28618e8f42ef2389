"""Manifest handlers: GET/HEAD (the store caches lookups), PUT (?tag=, OCI-Subject), DELETE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from registry.oci.api import (
    CONTENT_DIGEST_HEADER,
    OCI_SUBJECT_HEADER,
    OCI_TAG_HEADER,
    manifest_path,
)
from registry.oci.digest import is_digest
from registry.oci.errors import ManifestTooLarge, ManifestUnknown, TagInvalid
from registry.oci.manifest import ImageIndex, parse_manifest_off_loop
from registry.oci.reference import TAG_RE, validate_tag
from registry.server import keys
from registry.server.negotiation import DEFAULT_PLATFORM, accepts, wants_an_image_from
from registry.server.params import TooLarge, parse_digest, read_limited, repo_name
from registry.server.ranges import precondition, write_condition
from registry.storage import ManifestInfo, ManifestStore, StoredManifest

if TYPE_CHECKING:
    from registry.server.proxy import PullThrough

MAX_TAGS_PER_PUT = 64


def _reference(text: str) -> str:
    """A digest (validated) or a tag (validated): the canonical reference string."""
    if is_digest(text) or ":" in text:
        return str(parse_digest(text))
    return validate_tag(text)


def _existing_reference(text: str) -> str:
    """The reference of a read or a delete: a digest is validated, while a string that is no
    valid tag names no manifest, so the store answers 404 MANIFEST_UNKNOWN (as the spec's
    conformance tests ask of `.INVALID_MANIFEST_NAME`), not 400."""
    return str(parse_digest(text)) if is_digest(text) or ":" in text else text


async def get_manifest(request: web.Request) -> web.Response:
    """200 with the exact stored bytes; Content-Type is the stored media type. `Accept` is
    negotiated (registry/server/negotiation.py). The digest is the ETag: If-None-Match
    naming it is 304, If-Match not naming it 412."""
    match = request.match_info
    name = repo_name(request)
    reference = _existing_reference(match["reference"])
    manifests = request.app[keys.STORE].manifests
    accept = ", ".join(request.headers.getall("Accept", ())) or None  # docker sends several
    proxy = request.app.get(keys.PROXY)
    if proxy is not None and (is_digest(reference) or TAG_RE.fullmatch(reference)):
        await proxy.refresh_manifest(name, reference)
    stored = None
    if request.method == "HEAD":
        info = await manifests.stat(name, reference)
    else:
        stored = await manifests.get(name, reference)
        info = stored.info
    if not accepts(accept, info.media_type):
        stored = await _negotiated(manifests, name, reference, info, accept, proxy)
        info = stored.info
    digest = str(info.digest)
    headers = {
        "Content-Type": info.media_type,
        CONTENT_DIGEST_HEADER: digest,
        "ETag": f'"{digest}"',
    }
    status = precondition(request.headers, digest)
    if status is not None:  # 304 Not Modified (a client's cached copy holds) or 412
        del headers["Content-Type"]
        return web.Response(status=status, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(info.size)
        return web.Response(headers=headers)
    assert stored is not None
    return web.Response(body=stored.data, headers=headers)


async def _negotiated(manifests: ManifestStore, name: str, reference: str, info: ManifestInfo,
                      accept: str | None, proxy: PullThrough | None) -> StoredManifest:
    """What to send a client whose Accept does not list the stored type: by tag, an
    index's linux/amd64 image if the client takes that (fetched by a pull-through cache
    that lacks it); else ManifestUnknown."""
    if not is_digest(reference) and wants_an_image_from(accept, info.media_type):
        index = await parse_manifest_off_loop((await manifests.get(name, reference)).data,
                                              info.media_type)
        assert isinstance(index, ImageIndex)
        child = index.select(DEFAULT_PLATFORM)
        if child is not None and accepts(accept, child.media_type):
            if proxy is not None:
                await proxy.refresh_manifest(name, str(child.digest))
            return await manifests.get(name, str(child.digest))
    raise ManifestUnknown(
        f"{name}:{reference} is {info.media_type}, which the Accept header does not list",
        detail={"mediaType": info.media_type, "accept": accept})


async def put_manifest(request: web.Request) -> web.Response:
    """201 + Location + Docker-Content-Digest (+ OCI-Subject, one OCI-Tag per distinct ?tag=,
    at most MAX_TAGS_PER_PUT of them). With
    If-Match / If-None-Match, 412 unless the condition holds for what the reference names
    when the write happens (`If-None-Match: *` never overwrites a tag)."""
    name = repo_name(request)
    reference = _reference(request.match_info["reference"])
    tags = list(dict.fromkeys(validate_tag(t) for t in request.query.getall("tag", [])))
    if len(tags) > MAX_TAGS_PER_PUT:  # each is a response header; clients take about 100
        raise TagInvalid(f"{len(tags)} tags in one PUT; the limit is {MAX_TAGS_PER_PUT}",
                         detail={"tags": len(tags), "limit": MAX_TAGS_PER_PUT})
    config = request.app[keys.CONFIG]
    try:
        data = await read_limited(request, config.max_manifest_bytes)
    except TooLarge as exc:
        raise ManifestTooLarge(
            f"manifest is larger than {config.max_manifest_bytes} bytes",
            detail={"size": exc.size, "limit": config.max_manifest_bytes}) from None
    content_type = request.headers.get("Content-Type")
    info = await request.app[keys.STORE].manifests.put(
        name, reference, content_type, data, tags, write_condition(request.headers, reference))
    digest = str(info.digest)
    response = web.Response(status=201, headers={
        "Location": manifest_path(name, digest),
        CONTENT_DIGEST_HEADER: digest,
        "Content-Length": "0",
    })
    if info.subject is not None:
        response.headers[OCI_SUBJECT_HEADER] = str(info.subject)
    for tag in tags:
        response.headers.add(OCI_TAG_HEADER, tag)
    return response


async def delete_manifest(request: web.Request) -> web.Response:
    """202: by digest removes the manifest and its tags; by tag removes only the tag. With
    If-Match / If-None-Match, 412 (nothing removed) unless the condition holds."""
    name = repo_name(request)
    reference = _existing_reference(request.match_info["reference"])
    await request.app[keys.STORE].manifests.delete(
        name, reference, write_condition(request.headers, reference))
    return web.Response(status=202)
