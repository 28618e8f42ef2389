"""GET /v2/_catalog with n/last pagination and a Link header."""

from __future__ import annotations

from aiohttp import web

from registry.oci.api import catalog_path
from registry.server import keys
from registry.server.params import MAX_PAGE, pagination
from registry.server.tags import next_link


async def catalog(request: web.Request) -> web.Response:
    """{"repositories"}: repository names in lexical order, paginated like tags (a page
    holds MAX_PAGE names at most, also without `n`)."""
    n, last = pagination(request)
    if n == 0:
        return web.json_response({"repositories": []})
    store = request.app[keys.STORE]
    limit = MAX_PAGE if n is None else n
    found = await store.manifests.catalog(limit + 1, last)
    headers = {}
    if len(found) > limit:
        found = found[:limit]
        headers["Link"] = next_link(catalog_path(n, found[-1]))
    return web.json_response({"repositories": found}, headers=headers)
