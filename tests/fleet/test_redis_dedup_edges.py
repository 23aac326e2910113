"""RedisDedupStore edge cases found in review (issue 17): a claim whose lease lapsed while its
callback still ran, Redis failures of every kind answered 503, and the TTL settings."""

from __future__ import annotations

import asyncio
import math
import signal
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis_fixtures import PrivateRedis, free_port
from test_redis_dedup import Calls, deliver, replica

from doku_async import ConfigurationError
from doku_async.fleet import RedisDedupStore
from doku_async.webhooks import UnpaidNotification, create_webhook_app

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def short_lease(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisDedupStore]:
    """A store whose lease (0.3 s) and renewal bound (0.3 s) a test can outlast."""
    s = RedisDedupStore.from_url(
        redis_url, prefix=redis_prefix, lease=0.3, max_hold=0.3, wait=1.0, poll=0.01
    )
    try:
        yield s
    finally:
        await s.aclose()


async def test_a_success_is_marked_done_even_after_the_lease_lapsed_unclaimed(
    short_lease: RedisDedupStore,
) -> None:
    """The event loop was blocked past the lease (synchronous user code): nobody took the
    claim over, the callback succeeded, so the notification must be remembered as done;
    DOKU's next copy is "already processed", not handed over a second time."""
    calls = Calls()

    async def blocking(notification: UnpaidNotification) -> None:
        await calls(notification)
        time.sleep(0.5)  # noqa: ASYNC251 (the point: no renewal can run meanwhile)

    async with replica(short_lease, blocking) as (client, _):
        first, _ = await deliver(client, 40)
        again, payload = await deliver(client, 40)
    assert (first, again, payload["responseCode"]) == (200, 200, "01")
    assert len(calls.calls) == 1


async def test_a_success_is_marked_done_after_renewals_stopped_at_max_hold(
    short_lease: RedisDedupStore,
) -> None:
    """A callback outlasting ``max_hold``: once it succeeds its notification is done."""
    calls = Calls()

    async def slow(notification: UnpaidNotification) -> None:
        await calls(notification)
        await asyncio.sleep(0.9)  # past max_hold and its lease

    async with replica(short_lease, slow) as (client, _):
        first, _ = await deliver(client, 41)
        again, payload = await deliver(client, 41)
    assert (first, again, payload["responseCode"]) == (200, 200, "01")
    assert len(calls.calls) == 1
    key = short_lease.prefix + "dedup:" + f"trx:A41418:unpaid:DK{41:07d}:50"
    assert await short_lease.redis.get(key) == b"done"


async def test_every_redis_failure_is_a_503_and_never_a_callback_without_a_claim(
    private_redis: PrivateRedis,
) -> None:
    """Scripts flushed (NOSCRIPT: reloaded, handled), a read-only replica (READONLY), a Redis
    that stopped answering (timeout), connections killed: 503 or handled, never 500."""
    store = RedisDedupStore.from_url(private_redis.url, prefix="fail:", wait=0.5, poll=0.01)
    admin = Redis.from_url(private_redis.url)
    calls = Calls()
    answers: list[tuple[str, int]] = []
    try:
        async with replica(store, calls) as (client, _):
            answers.append(("before", (await deliver(client, 50))[0]))
            await admin.script_flush()
            answers.append(("noscript", (await deliver(client, 51))[0]))
            await admin.client_kill_filter(_type="normal", skipme=True)
            answers.append(("killed", (await deliver(client, 52))[0]))
            await admin.replicaof("127.0.0.1", free_port())
            answers.append(("readonly", (await deliver(client, 53))[0]))
            await admin.replicaof("NO", "ONE")
            assert private_redis.process is not None
            private_redis.process.send_signal(signal.SIGSTOP)
            try:
                answers.append(("hung", (await deliver(client, 54))[0]))
            finally:
                private_redis.process.send_signal(signal.SIGCONT)
            answers.append(("after", (await deliver(client, 55))[0]))
    finally:
        await store.aclose()
        await admin.aclose()
    assert answers == [
        ("before", 200),
        ("noscript", 200),
        ("killed", 200),
        ("readonly", 503),
        ("hung", 503),
        ("after", 200),
    ]
    assert [n.transaction_id for n in calls.calls] == [f"DK{n:07d}" for n in (50, 51, 52, 55)]


@pytest.mark.parametrize("ttl", [0.0, -1.0, math.inf, math.nan])
def test_a_dedup_ttl_no_store_can_keep_is_refused_when_the_app_is_created(ttl: float) -> None:
    """0 or less: nothing is remembered, so every copy is handed over again; infinite or NaN:
    Redis cannot take it, so every notification was answered 503, blamed on the store."""
    store = RedisDedupStore.from_url("redis://127.0.0.1:6379/0", prefix="unused:")
    with pytest.raises(ConfigurationError, match="dedup_ttl"):
        create_webhook_app(
            agent_key="A41418",
            encryption_keys="627054fevj1sutvs",
            on_unpaid=Calls(),
            dedup_store=store,
            dedup_ttl=ttl,
        )


async def test_a_connection_reset_while_marking_done_does_not_lose_the_done_marker(
    private_redis: PrivateRedis,
) -> None:
    """The connection carrying "done" is reset (writes paused, then the store's connections
    killed): the marker must still be written, or the claim lapses with its lease and DOKU's
    next copy runs user code a second time."""
    store = RedisDedupStore.from_url(private_redis.url, prefix="reset:", lease=0.5, wait=1.0)
    admin = Redis.from_url(private_redis.url)
    calls = Calls()
    cuts: list[asyncio.Task[None]] = []

    async def cut_while_completing() -> None:
        await asyncio.sleep(0.2)  # "done" is on its way, held by the pause
        await admin.client_kill_filter(_type="normal", skipme=True)
        await admin.client_unpause()

    async def on_unpaid(notification: UnpaidNotification) -> None:
        await calls(notification)
        if len(calls.calls) == 1:
            await admin.client_pause(5000, all=False)  # writes wait from here
            cuts.append(asyncio.create_task(cut_while_completing()))

    try:
        async with replica(store, on_unpaid) as (client, _):
            first, _ = await deliver(client, 60)
            await asyncio.gather(*cuts)
            await asyncio.sleep(0.8)  # past the lease
            again, payload = await deliver(client, 60)
    finally:
        await store.aclose()
        await admin.aclose()
    assert (first, again, payload["responseCode"]) == (200, 200, "01")
    assert len(calls.calls) == 1


async def test_a_replay_with_another_body_never_reaches_user_code_after_a_failed_first(
    redis_url: str, redis_prefix: str
) -> None:
    """The first delivery failed (500, released for DOKU's retry); captured headers replayed
    at another replica with the status changed get 409; DOKU's own retry is handled. Then the
    original and a replay racing at two replicas: exactly one body reaches user code."""
    a_store = RedisDedupStore.from_url(redis_url, prefix=redis_prefix, wait=1.0, poll=0.01)
    b_store = RedisDedupStore.from_url(redis_url, prefix=redis_prefix, wait=1.0, poll=0.01)
    first, second = Calls(), Calls()
    first.fail = True
    try:
        async with replica(a_store, first) as (a, _), replica(b_store, second) as (b, _):
            failed, _ = await deliver(a, 70, "35")
            replayed, _ = await deliver(b, 70, "50")
            retried, _ = await deliver(b, 70, "35")
            first.fail = False
            raced = await asyncio.gather(deliver(a, 71, "35"), deliver(b, 71, "50"))
    finally:
        await a_store.aclose()
        await b_store.aclose()
    assert (failed, replayed, retried) == (500, 409, 200)
    assert sorted(status for status, _ in raced) == [200, 409]
    handed = [(n.transaction_id, n.status) for n in [*first.calls, *second.calls]]
    assert handed.count(("DK0000070", "35")) == 2  # the failed try, then DOKU's retry
    assert ("DK0000070", "50") not in handed
    assert len([t for t, _ in handed if t == "DK0000071"]) == 1


async def test_a_pending_claim_is_kept_while_its_callback_runs_even_with_a_short_dedup_ttl(
    redis_url: str, redis_prefix: str
) -> None:
    """``dedup_ttl`` (how long a *done* notification is remembered) shorter than the lease: the
    pending claim must still last until the first renewal, not lapse mid-callback."""
    a_store = RedisDedupStore.from_url(redis_url, prefix=redis_prefix, lease=3.0, poll=0.01)
    b_store = RedisDedupStore.from_url(redis_url, prefix=redis_prefix, wait=0.1, poll=0.01)
    first, second = Calls(), Calls()
    first.gate = asyncio.Event()
    try:
        async with (
            replica(a_store, first, dedup_ttl=0.3) as (a, _),
            replica(b_store, second, dedup_ttl=0.3) as (b, _),
        ):
            running = asyncio.create_task(deliver(a, 80))
            await asyncio.wait_for(first.entered.wait(), 10)
            await asyncio.sleep(0.5)  # past dedup_ttl, before the first renewal (1 s)
            copy, _ = await deliver(b, 80)
            first.gate.set()
            done, _ = await running
    finally:
        await a_store.aclose()
        await b_store.aclose()
    assert (done, copy) == (200, 503)  # the copy waits for DOKU's retry
    assert second.calls == []
