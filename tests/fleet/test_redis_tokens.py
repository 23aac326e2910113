"""RedisTokenStore (issue 17) against a real Redis and the simulator: one B2B token for a
fleet of clients, a single-flight refresh across stores (processes), a rejected token dropped
for everyone, and a Redis outage falling back to each client's own token."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from redis_fixtures import free_port

from doku_async import ConfigurationError, DokuClient, DokuTimeoutError
from doku_async.fleet import RedisTokenStore
from doku_async.testing import DokuSimulator

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def stores(redis_url: str, redis_prefix: str) -> AsyncIterator[list[RedisTokenStore]]:
    """Three stores on one prefix, each with its own connections: three processes' worth."""
    made = [RedisTokenStore.from_url(redis_url, prefix=redis_prefix, poll=0.01) for _ in range(3)]
    try:
        yield made
    finally:
        for store in made:
            await store.aclose()


async def balance(client: DokuClient, sim: DokuSimulator) -> None:
    await client.kirim.balance_inquiry(account_no=sim.credentials.agent_key)


async def test_clients_sharing_the_store_make_one_token_request(
    sim: DokuSimulator, stores: list[RedisTokenStore]
) -> None:
    clients = [sim.client() for _ in stores]
    try:
        for client, store in zip(clients, stores, strict=True):
            client.share_token(store)
        await asyncio.gather(*(balance(c, sim) for c in clients for _ in range(5)))
    finally:
        for client in clients:
            await client.aclose()
    assert sim.token_requests == 1
    assert sum(store.requests for store in stores) == 1
    tokens = {r.headers["Authorization"] for r in sim.requests_for("balance_inquiry")}
    assert len(tokens) == 1


async def test_the_refresh_is_single_flight_across_stores(
    stores: list[RedisTokenStore],
) -> None:
    fetched = 0

    async def fetch() -> tuple[str, float]:
        nonlocal fetched
        fetched += 1
        await asyncio.sleep(0.2)  # slow: the others must wait for it, not fetch too
        return f"token-{fetched}", 900.0

    got = await asyncio.gather(*(s.fetch("scope", fetch, None) for s in stores * 3))
    assert fetched == 1
    assert {value for value, _ in got} == {"token-1"}
    assert all(0 < lifetime <= stores[0].local_ttl for _, lifetime in got)


async def test_a_rejected_token_is_dropped_for_everyone(
    sim: DokuSimulator, stores: list[RedisTokenStore]
) -> None:
    first, second, third = (sim.client() for _ in stores)
    try:
        for client, store in zip((first, second, third), stores, strict=True):
            client.share_token(store)
        await balance(first, sim)
        await balance(second, sim)
        assert sim.token_requests == 1
        sim.expire_tokens()  # DOKU now answers 401xx01 to the shared token
        await balance(first, sim)  # rejected: dropped from Redis, one new token for the fleet
        await balance(second, sim)  # its copy is rejected too: it takes the fleet's new one
        await balance(third, sim)
    finally:
        for client in (first, second, third):
            await client.aclose()
    assert sim.token_requests == 2
    codes = [r.response_code for r in sim.requests_for("balance_inquiry")]
    assert codes.count("4011101") == 2  # one rejection per client that held the old token
    assert sum(store.requests for store in stores) == 2


async def test_redis_down_each_client_fetches_its_own_and_nothing_leaks(
    sim: DokuSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisTokenStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    caplog.set_level(logging.DEBUG)
    try:
        async with sim.client() as client:
            client.share_token(store)
            await balance(client, sim)
            await balance(client, sim)
    finally:
        await store.aclose()
    assert sim.token_requests == 1
    assert "token store unreachable" in caplog.text
    issued = next(iter(sim.requests_for("balance_inquiry"))).headers["Authorization"]
    assert issued.removeprefix("Bearer ") not in caplog.text
    assert issued.removeprefix("Bearer ") not in repr(store)


def test_bad_settings_fail_before_any_io() -> None:
    with pytest.raises(ConfigurationError, match="local_ttl"):
        RedisTokenStore.from_url("redis://127.0.0.1:6379/0", local_ttl=0)
    with pytest.raises(ConfigurationError, match="lock_timeout"):
        RedisTokenStore.from_url("redis://127.0.0.1:6379/0", lock_timeout=-1)


async def test_waiting_for_another_process_s_refresh_is_bounded(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisTokenStore.from_url(redis_url, prefix=redis_prefix, wait=0.2, poll=0.01)
    fetched = 0

    async def fetch() -> tuple[str, float]:
        nonlocal fetched
        fetched += 1
        return "token", 900.0

    try:
        # Another process holds the refresh lock and no token is shared yet.
        await store.redis.set(f"{redis_prefix}token-lock:scope", "someone", px=10_000)
        with pytest.raises(DokuTimeoutError, match="another process"):
            await store.fetch("scope", fetch, None)
    finally:
        await store.aclose()
    assert fetched == 0
