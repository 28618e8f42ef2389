"""Search endpoints: docker's v1 `_ping` and `search`, and the richer /strata/v1/search.

`docker search 127.0.0.1:5000/TERM` makes the daemon call GET /v1/_ping, then
GET /v1/search?q=TERM&n=N; it reads `query`, `num_results` and `results[]` (name,
description, star_count, is_official, is_automated).
"""

from __future__ import annotations

from aiohttp import web

from registry.oci.errors import Unsupported
from registry.search import SearchIndex
from registry.server import keys
from registry.server.params import query_int

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


def _int_param(request: web.Request, key: str, default: int) -> int:
    """A whole number, negative ones included (the callers clamp them)."""
    value = query_int(request, key, signed=True)
    return default if value is None else value


def _index(request: web.Request) -> SearchIndex:
    index = request.app[keys.SEARCH]
    if index is None:
        raise Unsupported("search is disabled on this registry")
    return index


async def v1_ping(request: web.Request) -> web.Response:
    """The daemon's v1 probe: a standalone registry (no index server, no auth)."""
    return web.json_response({"standalone": True}, headers={
        "X-Docker-Registry-Standalone": "true",
        "X-Docker-Registry-Version": "2.0",
    })


def _page_args(request: web.Request) -> tuple[str, int, int]:
    query = request.query.get("q", "")
    size = min(max(_int_param(request, "n", DEFAULT_PAGE_SIZE), 1), MAX_PAGE_SIZE)
    page = max(_int_param(request, "page", 1), 1)
    return query, size, page


async def v1_search(request: web.Request) -> web.Response:
    """docker's search response shape; `n` is clamped to 1..100 (default 25)."""
    text, size, page = _page_args(request)
    result = await _index(request).search(text, page, size)
    return web.json_response({
        "query": text,
        "num_results": result.total,
        "num_pages": result.num_pages,
        "page": result.page,
        "page_size": result.page_size,
        "results": [
            {"name": hit.name, "description": hit.description, "star_count": 0,
             "is_official": False, "is_automated": False, "is_trusted": False}
            for hit in result.hits
        ],
    })


async def strata_search(request: web.Request) -> web.Response:
    """Ranked, paginated search over names, tags, labels and annotations (README: Search API)."""
    text, size, page = _page_args(request)
    result = await _index(request).search(text, page, size)
    return web.json_response({
        "query": text,
        "total": result.total,
        "page": result.page,
        "page_size": result.page_size,
        "num_pages": result.num_pages,
        "results": [hit.to_json() for hit in result.hits],
    })
