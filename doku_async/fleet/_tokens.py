"""One B2B access token for a fleet of clients, on Redis."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError, DokuTimeoutError
from .._tokens import Fetch
from ._connect import check_prefix, redis_from_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisTokenStore"]

log = logging.getLogger("doku_async")

# Stored as "<lifetime in ms>:<token>"; a rejected token is deleted instead of returned.
_READ = """
local value = redis.call('GET', KEYS[1])
if not value then return {false, 0} end
local sep = string.find(value, ':', 1, true)
if string.sub(value, sep + 1) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {false, 0}
end
return {value, redis.call('PTTL', KEYS[1])}
"""
MIN_HANDED = 1.0
"""Seconds a shared token must have left to be handed to a client: its cache keeps any token
at least a second (serving it for three quarters of that), so one closer to expiry would be
sent expired; the client waits for the refresh instead."""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class _StoreDown(Exception):
    """Redis failed (not DOKU): the caller fetches its own token."""


class RedisTokenStore:
    """A B2B token shared on Redis: give it to each client with ``client.share_token(store)``.

    * The token is kept under ``{prefix}token:{scope}`` (scope: a hash of the client id and
      base URL) for its lifetime; a client reads it instead of asking DOKU.
    * Refresh is single-flight across processes: the one that wins ``SET lock NX PX`` fetches
      (``refresh_margin`` seconds before expiry); the others poll, bounded by ``wait``.
    * A token DOKU rejects (``401xx01``/``401xx03``) is deleted at the rejecting client's next
      fetch, so no client is handed it again; a client holding it in memory keeps it at most
      ``local_ttl`` seconds (or until DOKU rejects it for it too).
    * Redis unreachable: each client fetches its own token (logged), as without the store.

    The token is stored as it came (readable to whoever can read that Redis) and never logged.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "doku:",
        refresh_margin: float = 60.0,
        lock_timeout: float = 30.0,
        wait: float = 35.0,
        poll: float = 0.05,
        local_ttl: float = 5.0,
    ) -> None:
        if not (refresh_margin >= 0 and lock_timeout > 0 and wait > 0 and poll > 0):
            raise ConfigurationError("refresh_margin >= 0; lock_timeout, wait, poll > 0")
        if not local_ttl > 0:
            raise ConfigurationError("local_ttl: must be positive")
        self.redis = redis
        self.prefix = check_prefix(prefix)
        self.refresh_margin = refresh_margin
        self.lock_timeout = lock_timeout
        self.wait = wait
        self.poll = poll
        self.local_ttl = local_ttl
        self.requests = 0
        """How many times this process asked DOKU for a token through the store."""
        self._read_script = redis.register_script(_READ)
        self._unlock = redis.register_script(_UNLOCK)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "doku:", **options: Any) -> RedisTokenStore:
        """A store on the Redis at ``url``; ``options`` go to the constructor."""
        return cls(redis_from_url(url), prefix=prefix, **options)

    def __repr__(self) -> str:
        return f"RedisTokenStore(prefix={self.prefix!r})"

    async def _read(self, key: str, rejected: str | None) -> tuple[str, float, float] | None:
        """The shared token, its remaining and its whole lifetime in seconds (``rejected`` is
        deleted instead)."""
        try:
            value, pttl = await self._read_script(keys=[key], args=[rejected or ""])
        except Exception as exc:
            raise _StoreDown(type(exc).__name__) from None
        if not value:
            return None
        text = value.decode() if isinstance(value, bytes) else str(value)
        lifetime, _, token = text.partition(":")
        return token, max(int(pttl), 0) / 1000, int(lifetime) / 1000

    def _fresh(self, token: tuple[str, float, float] | None) -> bool:
        """Usable without a refresh: more than the margin left (half the lifetime for a
        lifetime under twice the margin, as the client's own cache does)."""
        if token is None:
            return False
        _, remaining, lifetime = token
        margin = self.refresh_margin if lifetime > 2 * self.refresh_margin else lifetime / 2
        return remaining > max(margin, MIN_HANDED)

    def _handed(self, token: tuple[str, float, float]) -> tuple[str, float]:
        return token[0], min(token[1], self.local_ttl)

    async def fetch(self, scope: str, fetch: Fetch, rejected: str | None) -> tuple[str, float]:
        """The fleet's token (see the class); DOKU's errors from ``fetch`` propagate."""
        try:
            return await self._shared(scope, fetch, rejected)
        except _StoreDown as exc:
            log.warning("token store unreachable (%s); fetching this client's own token", exc)
            self.requests += 1
            return await fetch()

    async def _shared(self, scope: str, fetch: Fetch, rejected: str | None) -> tuple[str, float]:
        key, lock = f"{self.prefix}token:{scope}", f"{self.prefix}token-lock:{scope}"
        deadline = time.monotonic() + self.wait
        while True:
            current = await self._read(key, rejected)
            if current is not None and self._fresh(current):
                return self._handed(current)
            owner = secrets.token_hex(16)
            try:
                locked = await self.redis.set(lock, owner, nx=True, px=int(self.lock_timeout * 1e3))
            except Exception as exc:
                raise _StoreDown(type(exc).__name__) from None
            if locked:
                try:
                    return await self._refresh(key, fetch, rejected)
                finally:
                    try:
                        await self._unlock(keys=[lock], args=[owner])
                    except Exception as exc:  # the lock expires by itself
                        log.warning("could not release the token lock: %s", type(exc).__name__)
            if current is not None and current[1] >= MIN_HANDED:
                return self._handed(current)  # still valid: use it while another refreshes
            if time.monotonic() >= deadline:
                raise DokuTimeoutError(
                    "timed out waiting for another process's token refresh", request_sent=False
                )
            await asyncio.sleep(self.poll)

    async def _refresh(self, key: str, fetch: Fetch, rejected: str | None) -> tuple[str, float]:
        current = await self._read(key, rejected)  # another process may have just refreshed
        if current is not None and self._fresh(current):
            return self._handed(current)
        self.requests += 1
        value, lifetime = await fetch()
        millis = max(1, int(lifetime * 1000))
        try:
            await self.redis.set(key, f"{millis}:{value}", px=millis)
        except Exception as exc:
            log.warning("could not share the new token: %s", type(exc).__name__)
        return self._handed((value, lifetime, lifetime))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()
