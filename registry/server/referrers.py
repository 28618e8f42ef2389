"""GET /v2/<name>/referrers/<digest>: an OCI index of the manifests whose subject is digest."""

from __future__ import annotations

import json

from aiohttp import web

from registry.oci import mediatypes as mt
from registry.oci.api import OCI_FILTERS_APPLIED_HEADER
from registry.oci.errors import NameUnknown
from registry.server import keys
from registry.server.params import parse_digest, repo_name


async def list_referrers(request: web.Request) -> web.Response:
    """200 always (an empty index for an unknown subject or repository), spec v1.1."""
    name = repo_name(request)
    subject = parse_digest(request.match_info["digest"])
    artifact_type = request.query.get("artifactType") or None
    try:
        found = await request.app[keys.STORE].manifests.referrers(name, subject, artifact_type)
    except NameUnknown:
        found = []
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [d.to_json() for d in found],
    }
    headers = {"Content-Type": mt.OCI_INDEX}
    if artifact_type:
        headers[OCI_FILTERS_APPLIED_HEADER] = "artifactType"
    return web.Response(body=json.dumps(body).encode(), headers=headers)
