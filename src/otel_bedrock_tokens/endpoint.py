"""``server.address`` / ``server.port`` from a client's endpoint URL, parsed once per URL."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"https": 443, "http": 80}


@lru_cache(maxsize=64)
def server_of(endpoint_url: str) -> tuple[str | None, int | None]:
    try:
        parts = urlsplit(endpoint_url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None, None
    return parts.hostname, port
