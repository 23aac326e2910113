"""One request rate for a fleet of runners and clients, on Redis, with the ``limits`` library."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError
from ..bulk import RateLimiter
from ._connect import check_prefix, redis_from_url, require

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.aio.strategies import SlidingWindowCounterRateLimiter
    from redis.asyncio import Redis

__all__ = ["FleetRateLimiter"]

log = logging.getLogger("doku_async")

RECOVERY = 0.05
"""After a halving the fleet's rate climbs back by this share of the target per second."""

SLOTS = 1_000_000
"""Window slots per second of a fleet limit, whatever its rate (its key does not depend on it)."""

DOWN_RETRY = 1.0
"""Seconds a limiter that found Redis unreachable paces locally before asking Redis again (each
attempt on a Redis that stopped answering costs a socket timeout)."""

# The fleet's current rate, computed from Redis's own clock so every machine agrees: the rate
# left by the last halving plus the recovery since; THROTTLE halves it, at most once a second
# for the whole fleet (a burst of 429s is one signal).
_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local target, floor, recovery = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'rate', 'at', 'halved')
local rate = tonumber(h[1]) or target
local at = tonumber(h[2]) or now
local halved = tonumber(h[3]) or 0
rate = math.min(target, rate + target * recovery * math.max(0, now - at))
if ARGV[4] == '1' then
  if now - halved >= 1 then
    rate = math.max(floor, rate / 2)
    halved = now
  end
  redis.call('HSET', KEYS[1], 'rate', tostring(rate), 'at', tostring(now),
             'halved', tostring(halved))
  redis.call('EXPIRE', KEYS[1], 86400)
end
return tostring(rate)
"""


class FleetRateLimiter(RateLimiter):
    """At most ``rate`` requests per second for every process given the same ``name``.

    Pacing is the ``limits`` library's sliding window counter on Redis (the previous second's
    count weighted by how much of it is still in the window: requests spread evenly once the
    first second is past; that first second may take ``rate`` at once): one window of
    :data:`SLOTS` per second for the name, where a request takes ``SLOTS / current rate``
    slots, so one window counts every request whatever the current rate, and limiters given
    different rates for one name share it (the fleet never exceeds the largest). The fleet's
    rate never goes below one request per second (``min_rate``). A 429 anywhere halves the
    fleet's rate (once a second at most, kept in Redis, read by every process at most ``refresh``
    seconds later), and it climbs back by 5% of ``rate`` per second, as the in-process
    :class:`~doku_async.bulk.RateLimiter` does. A runner takes it as ``BulkRunner(rate=...)``;
    a client's own calls take ``await limiter.acquire()`` before each call and
    ``client.rate_limit_listeners.append(limiter.throttle)``. Redis unreachable: this process
    paces itself at its last known fleet rate (logged), so the fleet as a whole may exceed
    ``rate`` while Redis is down; it asks Redis again once a second (:data:`DOWN_RETRY`), one
    request probing while the others keep pacing locally.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        name: str,
        rate: float,
        url: str,
        prefix: str = "doku:",
        min_rate: float = 1.0,
        refresh: float = 0.1,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not isinstance(rate, int | float) or not rate >= 1:
            raise ConfigurationError("rate: give the fleet's requests per second (at least 1)")
        if not 1 <= min_rate <= rate:
            raise ConfigurationError("min_rate: at least 1 request per second, at most rate")
        if not isinstance(name, str) or not name or not refresh > 0:
            raise ConfigurationError("name: give the fleet limit's name; refresh > 0")
        super().__init__(float(rate), min_rate=min_rate, sleep=sleep)
        self.redis = redis
        self.name = name
        self.prefix = check_prefix(prefix)
        self.refresh = refresh
        storage_module = require("limits.aio.storage")
        strategies = require("limits.aio.strategies")
        self._item: RateLimitItem = require("limits").RateLimitItemPerSecond(SLOTS, 1)
        storage = storage_module.RedisStorage(  # on this limiter's connection pool
            "async+" + url,
            implementation="redispy",
            key_prefix=f"{self.prefix}limits",
            connection_pool=redis.connection_pool,
        )
        self._window: SlidingWindowCounterRateLimiter = strategies.SlidingWindowCounterRateLimiter(
            storage
        )
        self._rate_script = redis.register_script(_RATE)
        self._rate_key = f"{self.prefix}rate:{name}"
        self._read_at = -math.inf
        self._down_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_url(
        cls, url: str, *, name: str, rate: float, prefix: str = "doku:", **options: Any
    ) -> FleetRateLimiter:
        """A fleet limit ``name`` of ``rate`` requests/s on the Redis at ``url``."""
        return cls(redis_from_url(url), name=name, rate=rate, url=url, prefix=prefix, **options)

    def __repr__(self) -> str:
        return f"FleetRateLimiter(name={self.name!r}, rate={self.rate}, target={self.target})"

    def _cost(self, rate: float) -> int:
        """Window slots one request takes at the fleet's current ``rate``."""
        return max(1, min(SLOTS, round(SLOTS / rate)))

    async def _fleet_rate(self, *, halve: bool = False) -> float:
        assert self.target is not None
        args = [repr(self.target), repr(self.min_rate), repr(RECOVERY), "1" if halve else "0"]
        rate = float(await self._rate_script(keys=[self._rate_key], args=args))
        self.rate = rate
        self._read_at = time.monotonic()
        return rate

    async def acquire(self) -> None:
        """Wait for the fleet's next slot."""
        if self._next > time.monotonic():  # a Retry-After hint this process was given
            await self._sleep(self._next - time.monotonic())
        now = time.monotonic()
        if now < self._down_until:  # Redis failed a moment ago (or another call probes it)
            await super().acquire()
            return
        if self._down_until:  # this call probes Redis; the others keep pacing locally
            self._down_until = now + DOWN_RETRY
        try:
            rate = self.rate or 1.0
            if time.monotonic() - self._read_at >= self.refresh:
                rate = await self._fleet_rate()
            item, cost = self._item, self._cost(rate)
            while not await self._window.hit(item, self.name, cost=cost):
                stats = await self._window.get_window_stats(item, self.name)
                await self._sleep(min(max(stats.reset_time - time.time(), 0.002), 1.0))
                if time.monotonic() - self._read_at >= self.refresh:
                    cost = self._cost(await self._fleet_rate())
            self._down_until = 0.0
        except Exception as exc:
            self._down_until = time.monotonic() + DOWN_RETRY
            log.warning("fleet rate limit unreachable (%s); pacing locally", type(exc).__name__)
            await super().acquire()

    def throttle(self, retry_after: float | None = None) -> None:
        """DOKU answered 429: halve the fleet's rate (in Redis) and honour ``retry_after``."""
        self.throttled += 1
        if retry_after is not None:
            self._next = max(self._next, time.monotonic() + retry_after)
        task = asyncio.get_running_loop().create_task(self._halve())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _halve(self) -> None:
        try:
            await self._fleet_rate(halve=True)
        except Exception as exc:
            log.warning("fleet rate limit unreachable (%s); halving locally", type(exc).__name__)
            super().throttle()

    async def aclose(self) -> None:
        """Wait for pending halvings and close the connection pool."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.redis.aclose()
