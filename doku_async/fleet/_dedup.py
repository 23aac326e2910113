"""The webhook de-duplication store on Redis, shared by every replica of a receiver."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError
from ._connect import check_prefix, redis_from_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisDedupStore"]

log = logging.getLogger("doku_async.webhooks")

DONE = "done"
COMPLETE_RETRIES = (0.05, 0.25)
"""Pauses before trying again to mark a notification done (idempotent), after a failure."""

# Every script touches only its KEYS, so it runs atomically on one Redis (and on a cluster
# when the keys share a hash tag: give the prefix one, e.g. "{doku}:").
_CLAIM = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then return 0 end
end
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
end
return 1
"""
# Done also where the pending claim lapsed unclaimed (the loop was blocked past the lease, or
# renewals stopped at max_hold): the callback did succeed, so its copies must not run it again.
_COMPLETE = """
for _, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  if value == ARGV[1] or not value then redis.call('SET', key, ARGV[2], 'PX', ARGV[3]) end
end
return 1
"""
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 1
"""
_RENEW = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2]) end
end
return 1
"""
_BIND = """
local bound = redis.call('GET', KEYS[1])
if not bound then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if bound == ARGV[1] then return 1 end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisDedupStore:
    """De-duplication for ``create_webhook_app(dedup_store=...)`` on Redis, shared by replicas.

    * A claim is one Lua script over all of a delivery's keys: all or none. It is *pending*
      (a random owner token, kept for ``lease`` seconds and renewed while the callback runs)
      until the app marks it done after success (kept ``dedup_ttl``, 48 hours by default), or
      releases it after a failure so DOKU's retry is handled.
    * A copy arriving at another replica while the first is pending waits (up to ``wait``
      seconds, polling) for the outcome: done, answered "already processed"; released,
      claimed and handled; still pending, answered 503 so DOKU retries. User code never runs
      twice for one claim, and never without one.
    * Each ``requestId`` is bound to its first body's digest for ``dedup_ttl``: a replay of
      captured headers with another body is refused (409).
    * Redis unreachable: the app answers 503 (DOKU retries), never 500.

    A replica that dies mid-callback leaves its claim pending until ``lease`` runs out; DOKU's
    next retry is then handled. A callback that outlives a Redis outage longer than ``lease``
    could meet a second claim elsewhere; keep ``lease`` above your outages' length. So could a
    callback still running after ``max_hold`` (renewals stop there), or one that blocks the event
    loop longer than ``lease``. Its success is still recorded as done when it ends.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "doku:",
        lease: float = 30.0,
        wait: float = 10.0,
        poll: float = 0.05,
        max_hold: float = 900.0,
    ) -> None:
        if not lease > 0 or not wait >= 0 or not poll > 0 or not max_hold >= lease:
            raise ConfigurationError("lease, poll > 0; wait >= 0; max_hold >= lease")
        self.redis = redis
        self.prefix = check_prefix(prefix)
        self.lease = lease
        self.wait = wait
        self.poll = poll
        self.max_hold = max_hold
        self.waits = 0
        """Deliveries that waited for another process's outcome (for tests and benchmarks)."""
        self._owned: dict[str, str] = {}
        self._renewals: dict[str, asyncio.Task[None]] = {}
        register = redis.register_script
        self._claim, self._complete = register(_CLAIM), register(_COMPLETE)
        self._release, self._renew = register(_RELEASE), register(_RENEW)
        self._bind = register(_BIND)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "doku:", **options: Any) -> RedisDedupStore:
        """A store on the Redis at ``url`` (``redis://host:6379/0``); ``options`` go to the
        constructor (``lease``, ``wait``, ``poll``, ``max_hold``)."""
        return cls(redis_from_url(url), prefix=prefix, **options)

    def __repr__(self) -> str:
        return f"RedisDedupStore(prefix={self.prefix!r}, pending={len(self._renewals)})"

    def _keys(self, keys: Sequence[str]) -> list[str]:
        return [self.prefix + "dedup:" + key for key in keys]

    async def claim(self, keys: Sequence[str], ttl: float) -> bool:
        """Claim all ``keys`` as pending for this process, or none if one is present.

        Pending lasts ``lease`` (renewed), whatever ``ttl``: that is how long a *done*
        notification is remembered (:meth:`complete`), and a shorter one must not end a claim
        while its callback runs."""
        token = "pending:" + secrets.token_hex(16)
        full = self._keys(keys)
        claimed = await self._claim(keys=full, args=[token, _ms(self.lease)])
        if not claimed:
            return False
        for key in keys:
            self._owned[key] = token
        self._renewals[token] = asyncio.create_task(self._keep(full, token))
        return True

    async def _keep(self, full: list[str], token: str) -> None:
        """Renew a pending claim's lease while its callback runs, at most ``max_hold``; the
        claim stays this process's, so the outcome is still recorded when it ends."""
        deadline = time.monotonic() + self.max_hold
        try:
            while time.monotonic() + self.lease / 3 < deadline:
                await asyncio.sleep(self.lease / 3)
                try:
                    await self._renew(keys=full, args=[token, _ms(self.lease)])
                except Exception as exc:
                    log.warning("could not renew a notification claim: %s", type(exc).__name__)
        finally:
            self._renewals.pop(token, None)

    def _forget(self, keys: Sequence[str], token: str) -> None:
        for key in keys:
            if self._owned.get(key) == token:
                del self._owned[key]
        task = self._renewals.pop(token, None)
        if task is not None:
            task.cancel()

    def _by_token(self, keys: Sequence[str]) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for key in keys:
            token = self._owned.get(key)
            if token is not None:
                groups.setdefault(token, []).append(key)
        return groups

    async def complete(self, keys: Sequence[str], ttl: float) -> None:
        """Mark this process's pending claims of ``keys`` done, kept ``ttl`` seconds.

        Tried again after a failure (a connection reset loses nothing then): a lost marker
        would let the claim lapse and DOKU's next copy run the callback again. The claim is
        renewed until then; the last error is raised.
        """
        for token, owned in self._by_token(keys).items():
            try:
                await self._mark_done(self._keys(owned), token, ttl)
            finally:
                self._forget(owned, token)

    async def _mark_done(self, full: list[str], token: str, ttl: float) -> None:
        for delay in COMPLETE_RETRIES:
            try:
                await self._complete(keys=full, args=[token, DONE, _ms(ttl)])
                return
            except Exception as exc:
                log.warning("could not mark a notification done: %s", type(exc).__name__)
            await asyncio.sleep(delay)
        await self._complete(keys=full, args=[token, DONE, _ms(ttl)])

    async def release(self, keys: Sequence[str]) -> None:
        """Forget this process's claims of ``keys`` (another process's are left alone)."""
        for token, owned in self._by_token(keys).items():
            self._forget(owned, token)
            await self._release(keys=self._keys(owned), args=[token])

    async def wait_outcome(self, keys: Sequence[str]) -> bool | None:
        """Poll while another process holds ``keys``: ``True`` done, ``False`` released,
        ``None`` still pending after ``wait`` seconds."""
        full = self._keys(keys)
        deadline = time.monotonic() + self.wait
        waited = False
        while True:
            values = await self.redis.mget(full)
            texts = [v.decode() if isinstance(v, bytes) else v for v in values]
            if DONE in texts:
                return True
            if all(v is None for v in texts):
                return False
            if time.monotonic() >= deadline:
                return None
            if not waited:
                waited = True
                self.waits += 1
            await asyncio.sleep(self.poll)

    async def bind(self, key: str, digest: str, ttl: float) -> bool:
        """Bind ``key`` to ``digest`` for ``ttl`` seconds; ``False`` if bound to another."""
        bound = await self._bind(keys=[self.prefix + "dedup:" + key], args=[digest, _ms(ttl)])
        return bool(bound)

    async def aclose(self) -> None:
        """Stop lease renewals and close the connection pool."""
        tasks = list(self._renewals.values())
        self._renewals.clear()
        self._owned.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.redis.aclose()
