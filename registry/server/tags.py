"""GET /v2/<name>/tags/list with n/last pagination and an RFC 5988 Link header."""

from __future__ import annotations

from aiohttp import web

from registry.oci.api import tags_path
from registry.server import keys
from registry.server.params import MAX_PAGE, pagination, repo_name


def next_link(url: str) -> str:
    return f'<{url}>; rel="next"'


async def list_tags(request: web.Request) -> web.Response:
    """{"name", "tags"}: at most `n` (MAX_PAGE without it) tags after `last`, and a Link
    when more remain."""
    name = repo_name(request)
    n, last = pagination(request)
    store = request.app[keys.STORE]
    if n == 0:
        await store.manifests.tags(name, 1, last)  # still 404 NAME_UNKNOWN for unknown repos
        return web.json_response({"name": name, "tags": []})
    limit = MAX_PAGE if n is None else n
    found = await store.manifests.tags(name, limit + 1, last)
    headers = {}
    if len(found) > limit:
        found = found[:limit]
        headers["Link"] = next_link(tags_path(name, n, found[-1]))
    return web.json_response({"name": name, "tags": found}, headers=headers)
