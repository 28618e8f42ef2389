"""Typed application state (aiohttp AppKey): what the handlers may reach."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from registry.server.config import RegistryConfig

if TYPE_CHECKING:
    from registry.auth import Authenticator
    from registry.search import SearchIndex
    from registry.server.proxy import PullThrough
    from registry.storage import RegistryStore

CONFIG = web.AppKey("config", RegistryConfig)
STORE: web.AppKey[RegistryStore] = web.AppKey("store")
SEARCH: web.AppKey[SearchIndex | None] = web.AppKey("search")
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
"""Set where requests must authenticate (auth_htpasswd)."""
PROXY: web.AppKey[PullThrough] = web.AppKey("proxy")
"""Set where the registry is a pull-through cache (proxy_remote_url)."""
USER = web.RequestKey("user", str)
"""The authenticated user of a request (access log)."""
