"""The values of RUN --network (BuildKit's dockerfile frontend: default, none, host).

A leaf module with no imports, so the builder's executor and `strata run` can validate a
network mode without loading the Lark parser. Matching is case-sensitive here; the Dockerfile
parser lowercases a flag value before checking it, and leaves a value with `$` for expansion.
"""

from __future__ import annotations

__all__ = ["RUN_NETWORK_MODES"]

# "default" is the builder's default network; strata gives RUN the host's network for it
RUN_NETWORK_MODES: tuple[str, ...] = ("default", "none", "host")
