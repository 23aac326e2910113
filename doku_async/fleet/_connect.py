"""Connecting to Redis: the ``redis`` extra imported lazily, with an error naming the extra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["EXTRA_HINT", "redis_from_url", "require"]

EXTRA_HINT = "install the redis extra: pip install 'doku-async[redis]'"

DEFAULT_SOCKET_TIMEOUT = 2.0
"""Seconds a Redis command or connection may take: a stuck Redis answers 503, not a hang."""


def require(module: str) -> Any:
    """Import ``module`` (``redis.asyncio``, ``limits.aio.storage``...) or say which extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigurationError(f"{module} is not installed; {EXTRA_HINT}") from exc


def redis_from_url(url: str, **options: Any) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url`` with bounded timeouts (``options`` override)."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError("url: give a redis://, rediss:// or unix:// URL")
    asyncio_redis = require("redis.asyncio")
    options.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    options.setdefault("socket_connect_timeout", DEFAULT_SOCKET_TIMEOUT)
    client: Redis = asyncio_redis.Redis.from_url(url, **options)
    return client


def check_prefix(prefix: str) -> str:
    """A key prefix: non-empty text without whitespace."""
    if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
        raise ConfigurationError("prefix: give non-empty text without spaces, e.g. 'doku:'")
    return prefix
