"""RedisTokenStore edge cases found in review (issue 17): a shared token about to expire must
not be kept by a client past its expiry."""

from __future__ import annotations

import asyncio

import pytest

from doku_async._tokens import TokenCache
from doku_async.fleet import RedisTokenStore

pytestmark = pytest.mark.timeout(60)


async def test_a_token_about_to_expire_is_not_served_past_its_expiry(
    redis_url: str, redis_prefix: str
) -> None:
    """Another process holds the refresh lock; the shared token has 0.3 s left. A client must
    not take it (its cache keeps any token at least a second, so it would send it expired):
    it waits for the other process's new token instead."""
    store = RedisTokenStore.from_url(redis_url, prefix=redis_prefix, poll=0.01)
    now = [1000.0]
    fetched: list[str] = []

    async def fetch() -> tuple[str, float]:
        fetched.append("doku")
        return "own", 900.0

    cache = TokenCache(fetch, clock=lambda: now[0], refresh_margin=60.0)
    cache.share(store, "scope")
    key, lock = f"{redis_prefix}token:scope", f"{redis_prefix}token-lock:scope"

    async def other_process_refreshes() -> None:
        await asyncio.sleep(0.2)
        await store.redis.set(key, "900000:new", px=900_000)
        await store.redis.delete(lock)

    try:
        await store.redis.set(key, "900000:old", px=300)
        await store.redis.set(lock, "other-process", px=10_000)
        refresher = asyncio.create_task(other_process_refreshes())
        got = await cache.get()
        await refresher
        now[0] += 0.5  # past the old token's expiry (0.3 s)
        served = cache.peek()
    finally:
        await cache.aclose()
        await store.aclose()
    assert (got, served) == ("new", "new")
    assert fetched == []
