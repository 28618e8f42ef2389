"""GET /v2/<name>/referrers/<digest>: an OCI index of the manifests whose subject is digest."""

from __future__ import annotations

import json

from aiohttp import web

from registry.oci import mediatypes as mt
from registry.oci.api import OCI_FILTERS_APPLIED_HEADER, referrers_path
from registry.oci.errors import NameUnknown
from registry.server import keys
from registry.server.params import parse_digest, repo_name
from registry.server.tags import next_link
from registry.storage import ReferrersPage

PAGE_COUNT = 1000
PAGE_BYTES = 4 * 1024 * 1024
"""A page's descriptors weigh at most this much as JSON (one descriptor at least): the
limit clients put on the response (oras-go reads 4 MiB of it), and what one request may make
the server build and hold for a client that reads slowly."""


async def list_referrers(request: web.Request) -> web.Response:
    """200 always (an empty index for an unknown subject or repository), spec v1.1. Pages of
    at most PAGE_COUNT descriptors and PAGE_BYTES, in digest order; a `Link: <...?last=D>;
    rel="next"` header names the next one, as the spec allows. A pull-through cache answers
    with the upstream's list in one page (404 where the upstream has no referrers API)."""
    name = repo_name(request)
    subject = parse_digest(request.match_info["digest"])
    artifact_type = request.query.get("artifactType") or None
    last = request.query.get("last")
    after = None if last is None else parse_digest(last, "last")
    proxy = request.app.get(keys.PROXY)
    upstream = None
    if proxy is not None and after is None:  # a pull-through cache: the upstream's, one page
        upstream = await proxy.referrers(name, subject, artifact_type)
    if upstream is not None:
        page = ReferrersPage([d for d in upstream
                              if artifact_type is None or d.artifact_type == artifact_type])
    else:
        try:
            page = await request.app[keys.STORE].manifests.referrers(
                name, subject, artifact_type, after, PAGE_COUNT, PAGE_BYTES)
        except NameUnknown:
            page = ReferrersPage([])
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [d.to_json() for d in page.descriptors],
    }
    headers = {"Content-Type": mt.OCI_INDEX}
    if artifact_type:
        headers[OCI_FILTERS_APPLIED_HEADER] = "artifactType"
    if page.more:
        headers["Link"] = next_link(referrers_path(
            name, str(subject), artifact_type, str(page.descriptors[-1].digest)))
    return web.Response(body=json.dumps(body).encode(), headers=headers)
