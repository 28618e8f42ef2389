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
    proxy = request.app.get(keys.PROXY)
    upstream = await proxy.tags(name) if proxy is not None else None
    if upstream is not None:  # a pull-through cache: the upstream's tags, paged here
        after = [t for t in upstream if last is None or (t.lower(), t) > (last.lower(), last)]
        return _page(name, after, n)
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


def _page(name: str, tags: list[str], n: int | None) -> web.Response:
    """The first `n` (MAX_PAGE without it) of `tags`, with a Link when more remain."""
    limit = MAX_PAGE if n is None else n
    headers = {}
    if len(tags) > limit:
        tags = tags[:limit]
        if tags:
            headers["Link"] = next_link(tags_path(name, n, tags[-1]))
    return web.json_response({"name": name, "tags": tags}, headers=headers)
