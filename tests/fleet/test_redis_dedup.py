"""RedisDedupStore (issue 17) against a real Redis: the atomic multi-key claim, the TTL, the
release, the body binding, the wait for another replica's outcome, and Redis down (503, never
500, never a callback without a claim), including a private redis-server stopped mid-test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from receiver_process import UNPAID_PATH, request_id, signed_headers, unpaid_body
from redis.asyncio import Redis
from redis_fixtures import PrivateRedis, free_port

from doku_async import ConfigurationError
from doku_async.fleet import RedisDedupStore
from doku_async.webhooks import WEBHOOK_CONFIG, UnpaidNotification, create_webhook_app

pytestmark = pytest.mark.timeout(60)

AGENT = "A41418"
KEY = "627054fevj1sutvs"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisDedupStore]:
    s = RedisDedupStore.from_url(redis_url, prefix=redis_prefix, wait=5.0, poll=0.01)
    try:
        yield s
    finally:
        await s.aclose()


@pytest.fixture
async def other(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisDedupStore]:
    """A second store on the same prefix: another replica."""
    s = RedisDedupStore.from_url(redis_url, prefix=redis_prefix, wait=5.0, poll=0.01)
    try:
        yield s
    finally:
        await s.aclose()


# --------------------------------------------------------------------------- the store itself


async def test_a_claim_is_all_or_nothing(store: RedisDedupStore, other: RedisDedupStore) -> None:
    assert await store.claim(["a", "b"], ttl=60)
    assert not await other.claim(["b", "c"], ttl=60)
    assert await store.redis.exists(store.prefix + "dedup:c") == 0
    assert await other.claim(["c"], ttl=60)


async def test_a_completed_claim_keeps_the_ttl_and_a_pending_one_its_lease(
    store: RedisDedupStore,
) -> None:
    assert await store.claim(["k"], ttl=3600)
    pending = await store.redis.pttl(store.prefix + "dedup:k")
    assert 0 < pending <= store.lease * 1000
    await store.complete(["k"], ttl=3600)
    key = store.prefix + "dedup:k"
    assert await store.redis.get(key) == b"done"
    assert store.lease * 1000 < await store.redis.pttl(key) <= 3600 * 1000


async def test_release_forgets_only_its_own_claim(
    store: RedisDedupStore, other: RedisDedupStore
) -> None:
    assert await store.claim(["k"], ttl=60)
    await other.release(["k"])  # not other's claim: left alone
    assert not await other.claim(["k"], ttl=60)
    await store.release(["k"])
    assert await other.claim(["k"], ttl=60)


async def test_a_request_id_is_bound_to_its_first_body(store: RedisDedupStore) -> None:
    assert await store.bind("body:r1", "digest-1", ttl=60)
    assert await store.bind("body:r1", "digest-1", ttl=60)
    assert not await store.bind("body:r1", "digest-2", ttl=60)
    assert await store.bind("body:r2", "digest-2", ttl=60)


async def test_waiting_for_another_replica_sees_done_released_or_still_pending(
    redis_url: str, redis_prefix: str, store: RedisDedupStore
) -> None:
    waiter = RedisDedupStore.from_url(redis_url, prefix=redis_prefix, wait=0.3, poll=0.01)
    try:
        assert await store.claim(["a"], ttl=60)
        assert await waiter.wait_outcome(["a"]) is None  # still pending after its wait
        later = asyncio.create_task(waiter.wait_outcome(["a"]))
        await store.complete(["a"], ttl=60)
        assert await later is True
        assert await store.claim(["b"], ttl=60)
        later = asyncio.create_task(waiter.wait_outcome(["b"]))
        await store.release(["b"])
        assert await later is False
    finally:
        await waiter.aclose()


async def test_a_pending_claim_is_renewed_while_held_and_lapses_when_its_owner_dies(
    redis_url: str, redis_prefix: str
) -> None:
    owner = RedisDedupStore.from_url(redis_url, prefix=redis_prefix, lease=0.3)
    probe = RedisDedupStore.from_url(redis_url, prefix=redis_prefix)
    try:
        assert await owner.claim(["k"], ttl=60)
        await asyncio.sleep(0.75)  # more than two leases: only renewal keeps it
        assert not await probe.claim(["k"], ttl=60)
        await owner.aclose()  # the owner "dies": no more renewals
        for _ in range(100):  # bounded: the lease lapses within 0.3 s
            if await probe.claim(["k"], ttl=60):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the dead owner's claim never lapsed")
    finally:
        await probe.aclose()


def test_bad_settings_fail_before_any_io() -> None:
    with pytest.raises(ConfigurationError, match="url"):
        RedisDedupStore.from_url("http://127.0.0.1:6379")
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisDedupStore.from_url("redis://127.0.0.1:6379/0", prefix="")
    with pytest.raises(ConfigurationError, match="lease"):
        RedisDedupStore.from_url("redis://127.0.0.1:6379/0", lease=0)


def test_the_url_password_stays_out_of_the_repr() -> None:
    store = RedisDedupStore.from_url("redis://user:s3cret-pw@127.0.0.1:1/0")
    assert "s3cret-pw" not in repr(store)


# --------------------------------------------------------------------------- two replicas


class Calls:
    """An on_unpaid callback recording calls; each waits for ``gate`` when one is set."""

    def __init__(self) -> None:
        self.calls: list[UnpaidNotification] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.fail = False

    async def __call__(self, notification: UnpaidNotification) -> None:
        self.calls.append(notification)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("user code failed")


@asynccontextmanager
async def replica(
    store: Any, on_unpaid: Callable[[UnpaidNotification], Awaitable[None]], **options: Any
) -> AsyncIterator[tuple[Client, web.Application]]:
    sub = create_webhook_app(
        agent_key=AGENT, encryption_keys=KEY, on_unpaid=on_unpaid, dedup_store=store, **options
    )
    outer = web.Application()
    outer.add_subapp("/doku/", sub)
    client: Client = TestClient(TestServer(outer, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, sub
    finally:
        await client.close()


async def deliver(client: Client, n: int, status: str = "50") -> tuple[int, dict[str, Any]]:
    body = unpaid_body(f"DK{n:07d}", status)
    async with client.post(UNPAID_PATH, data=body, headers=signed_headers(request_id(n))) as r:
        payload = json.loads(await r.read())
        assert isinstance(payload, dict)
        return r.status, payload


async def test_a_copy_at_another_replica_waits_for_the_first_outcome(
    store: RedisDedupStore, other: RedisDedupStore
) -> None:
    first, second = Calls(), Calls()
    first.gate = asyncio.Event()
    async with replica(store, first) as (a, _), replica(other, second) as (b, _):
        running = asyncio.create_task(deliver(a, 1))
        await asyncio.wait_for(first.entered.wait(), 10)
        copy = asyncio.create_task(deliver(b, 1))
        await asyncio.sleep(0.1)
        assert not copy.done()  # waiting, not acknowledged before the outcome is known
        first.gate.set()
        (s1, p1), (s2, p2) = await running, await copy
    assert (s1, p1["responseCode"], s2, p2["responseCode"]) == (200, "00", 200, "01")
    assert len(first.calls) == 1
    assert second.calls == []


async def test_when_the_first_replica_fails_the_waiting_copy_is_handled(
    store: RedisDedupStore, other: RedisDedupStore
) -> None:
    first, second = Calls(), Calls()
    first.gate, first.fail = asyncio.Event(), True
    async with replica(store, first) as (a, _), replica(other, second) as (b, _):
        running = asyncio.create_task(deliver(a, 2))
        await asyncio.wait_for(first.entered.wait(), 10)
        copy = asyncio.create_task(deliver(b, 2))
        await asyncio.sleep(0.1)
        first.gate.set()
        (s1, _), (s2, p2) = await running, await copy
        s3, p3 = await deliver(a, 2)  # DOKU's retry: already processed by b
    assert (s1, s2, p2["responseCode"], s3, p3["responseCode"]) == (500, 200, "00", 200, "01")
    assert [n.transaction_id for n in second.calls] == ["DK0000002"]


async def test_a_replay_with_another_body_is_refused_at_every_replica(
    store: RedisDedupStore, other: RedisDedupStore
) -> None:
    first, second = Calls(), Calls()
    async with replica(store, first) as (a, _), replica(other, second) as (b, sub_b):
        s1, _ = await deliver(a, 3, "35")
        s2, p2 = await deliver(b, 3, "50")  # captured headers, status changed
        s3, p3 = await deliver(b, 3, "35")  # DOKU's own retry
    assert (s1, s2, p2["responseCode"], s3, p3["responseCode"]) == (200, 409, "409", 200, "01")
    assert [n.status for n in first.calls] == ["35"]
    assert second.calls == []
    assert sub_b[WEBHOOK_CONFIG].rejected == 1


# --------------------------------------------------------------------------- Redis down


async def test_redis_unreachable_answers_503_and_calls_nothing() -> None:
    store = RedisDedupStore.from_url(f"redis://127.0.0.1:{free_port()}/0", prefix="down:")
    calls = Calls()
    try:
        async with replica(store, calls) as (client, sub):
            status, payload = await deliver(client, 4)
    finally:
        await store.aclose()
    assert (status, payload["responseCode"]) == (503, "503")
    assert calls.calls == []
    assert sub[WEBHOOK_CONFIG].processed == 0


async def test_a_private_redis_stopped_and_restarted_mid_test(
    private_redis: PrivateRedis,
) -> None:
    """Before: handled. Stopped (also while a callback runs): only 503, never 500, no callback
    without a claim. Restarted: handled again."""
    store = RedisDedupStore.from_url(private_redis.url, prefix="outage:", wait=1.0)
    probe = Redis.from_url(private_redis.url)
    calls = Calls()
    claimed_at_callback: list[bool] = []

    async def checked(notification: UnpaidNotification) -> None:
        key = f"outage:dedup:request:{AGENT}:{notification.request_id}"
        try:
            value = await probe.get(key)
            claimed_at_callback.append(isinstance(value, bytes) and value.startswith(b"pending:"))
        except Exception:
            claimed_at_callback.append(False)
        if notification.transaction_id == "DK0000012":
            private_redis.stop()  # Redis dies while this callback runs
        await calls(notification)

    answers: dict[str, list[int]] = {"before": [], "down": [], "after": []}
    try:
        async with replica(store, checked) as (client, _):
            for n in (10, 11):
                answers["before"].append((await deliver(client, n))[0])
            answers["before"].append((await deliver(client, 12))[0])  # stops Redis inside
            for n in range(13, 23):
                answers["down"].append((await deliver(client, n))[0])
            answers["down"].append((await deliver(client, 10))[0])  # a copy, while down
            private_redis.start()
            await probe.aclose()
            probe = Redis.from_url(private_redis.url)
            for n in range(13, 18):
                answers["after"].append((await deliver(client, n))[0])
    finally:
        await store.aclose()
        await probe.aclose()
    assert answers == {"before": [200, 200, 200], "down": [503] * 11, "after": [200] * 5}
    assert [n.transaction_id for n in calls.calls] == [
        *(f"DK{n:07d}" for n in (10, 11, 12)),
        *(f"DK{n:07d}" for n in range(13, 18)),
    ]
    assert claimed_at_callback == [True] * 8


async def test_a_copy_still_pending_elsewhere_after_the_wait_gets_503(
    redis_url: str, redis_prefix: str, store: RedisDedupStore
) -> None:
    impatient = RedisDedupStore.from_url(redis_url, prefix=redis_prefix, wait=0.2, poll=0.01)
    first, second = Calls(), Calls()
    first.gate = asyncio.Event()
    try:
        async with replica(store, first) as (a, _), replica(impatient, second) as (b, _):
            running = asyncio.create_task(deliver(a, 5))
            await asyncio.wait_for(first.entered.wait(), 10)
            s2, p2 = await deliver(b, 5)  # A is still in its callback: DOKU must retry
            first.gate.set()
            s1, _ = await running
            s3, p3 = await deliver(b, 5)  # DOKU's retry, after A succeeded
    finally:
        await impatient.aclose()
    assert (s1, s2, p2["responseCode"], s3, p3["responseCode"]) == (200, 503, "503", 200, "01")
    assert len(first.calls) == 1
    assert second.calls == []
