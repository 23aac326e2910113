"""The B2B token cache: one fetch however many callers wait, refresh ahead of expiry on an
injected clock, fall back to a still-valid token, and clean cancellation. Then the same
guarantees seen through a DokuClient talking to the fake DOKU."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import warnings
from decimal import Decimal
from typing import Any

import pytest
from fakedoku import FakeDoku
from helpers import AGENT_KEY, make_client

from doku_async import DokuClient
from doku_async._tokens import TokenCache

MARGIN = 60.0


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Fetcher:
    """A fake token endpoint: ``tok-<n>`` for the n-th call, optionally gated or failing."""

    def __init__(self, clock: FakeClock, lifetime: float = 900.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.fail = False
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.cancelled = False
        self.duration = 0.0  # fake seconds the fetch takes

    async def __call__(self) -> tuple[str, float]:
        self.calls += 1
        n = self.calls
        self.started.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.clock.advance(self.duration)
        if self.fail:
            raise RuntimeError(f"token fetch {n} failed")
        return f"tok-{n}", self.lifetime


def _cache(lifetime: float = 900.0) -> tuple[TokenCache, Fetcher, FakeClock]:
    clock = FakeClock()
    fetch = Fetcher(clock, lifetime)
    return TokenCache(fetch, clock=clock, refresh_margin=MARGIN), fetch, clock


# --- TokenCache, directly ---------------------------------------------------------------------


async def test_cold_cache_thousand_concurrent_gets_fetch_once() -> None:
    cache, fetch, _ = _cache()
    fetch.gate = asyncio.Event()
    tasks = [asyncio.create_task(cache.get()) for _ in range(1000)]
    async with asyncio.timeout(10):
        await fetch.started.wait()
    assert not any(task.done() for task in tasks)
    fetch.gate.set()
    async with asyncio.timeout(10):
        results = await asyncio.gather(*tasks)
    assert results == ["tok-1"] * 1000
    assert fetch.calls == 1
    assert cache.fetches == 1


async def test_cold_cache_concurrent_gets_with_instant_fetch() -> None:
    cache, fetch, _ = _cache()
    async with asyncio.timeout(10):
        results = await asyncio.gather(*(cache.get() for _ in range(1000)))
    assert set(results) == {"tok-1"}
    assert fetch.calls == 1
    assert cache.fetches == 1


async def test_cached_token_reused_before_refresh_time() -> None:
    cache, fetch, clock = _cache()
    assert await cache.get() == "tok-1"
    for _ in range(5):
        clock.advance(100.0)
        assert await cache.get() == "tok-1"
    clock.advance(339.75)  # 839.75 s after the fetch
    assert await cache.get() == "tok-1"
    assert fetch.calls == 1
    assert cache.fetches == 1


async def settle() -> None:
    """Let a background refresh run to its end (the fake fetch never really waits)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_refresh_starts_at_lifetime_minus_margin_in_the_background() -> None:
    cache, fetch, clock = _cache()
    assert await cache.get() == "tok-1"
    clock.advance(900.0 - MARGIN - 0.25)
    assert await cache.get() == "tok-1"
    await settle()
    assert fetch.calls == 1
    clock.advance(0.25)  # due: still served at once, while the refresh runs
    assert await cache.get() == "tok-1"
    await settle()
    assert fetch.calls == 2
    assert await cache.get() == "tok-2"
    clock.advance(900.0 - MARGIN - 0.25)
    assert await cache.get() == "tok-2"
    await settle()
    clock.advance(0.25)
    assert cache.peek() == "tok-2"  # the requester's fast path starts the refresh too
    await settle()
    assert cache.peek() == "tok-3"
    assert cache.fetches == 3


async def test_refresh_time_counts_from_the_end_of_the_fetch() -> None:
    cache, fetch, clock = _cache()
    fetch.duration = 10.0  # a slow token endpoint
    assert await cache.get() == "tok-1"
    clock.advance(900.0 - MARGIN - 0.25)
    assert await cache.get() == "tok-1"
    await settle()
    assert fetch.calls == 1
    clock.advance(0.25)
    assert await cache.get() == "tok-1"
    await settle()
    assert await cache.get() == "tok-2"


@pytest.mark.parametrize(
    ("lifetime", "refresh_after"),
    [(100.0, 50.0), (120.0, 60.0), (121.0, 61.0), (0.0, 0.5), (-5.0, 0.5)],
)
async def test_short_lifetimes_refresh_at_half_life(lifetime: float, refresh_after: float) -> None:
    cache, fetch, clock = _cache(lifetime)
    assert await cache.get() == "tok-1"
    clock.advance(refresh_after - 0.25)
    assert await cache.get() == "tok-1"
    await settle()
    assert fetch.calls == 1
    clock.advance(0.25)
    assert await cache.get() == "tok-1"
    await settle()
    assert await cache.get() == "tok-2"
    assert fetch.calls == 2


async def test_during_a_background_refresh_every_caller_gets_the_token_at_once() -> None:
    cache, fetch, clock = _cache()
    assert await cache.get() == "tok-1"
    fetch.gate = asyncio.Event()  # the refresh hangs until released
    fetch.started.clear()
    clock.advance(850.0)  # due, in the first half of the margin
    assert [await cache.get() for _ in range(100)] == ["tok-1"] * 100
    assert [cache.peek() for _ in range(100)] == ["tok-1"] * 100
    async with asyncio.timeout(10):
        await fetch.started.wait()
    assert fetch.calls == 2  # one refresh for all of them
    fetch.gate.set()
    await settle()
    assert await cache.get() == "tok-2"
    assert cache.fetches == 2


async def test_late_in_the_margin_callers_wait_for_the_refresh() -> None:
    cache, fetch, clock = _cache()
    assert await cache.get() == "tok-1"
    fetch.gate = asyncio.Event()
    fetch.started.clear()
    clock.advance(900.0 - MARGIN / 2)  # the second half of the margin
    assert cache.peek() is None
    waiters = [asyncio.create_task(cache.get()) for _ in range(10)]
    async with asyncio.timeout(10):
        await fetch.started.wait()
    await settle()
    assert not any(w.done() for w in waiters)
    fetch.gate.set()
    async with asyncio.timeout(10):
        assert await asyncio.gather(*waiters) == ["tok-2"] * 10
    assert fetch.calls == 2


async def test_failed_refresh_keeps_serving_the_valid_token() -> None:
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    try:
        cache, fetch, clock = _cache()
        assert await cache.get() == "tok-1"
        fetch.fail = True
        clock.advance(850.0)  # due for refresh, not yet expired
        assert await cache.get() == "tok-1"
        await settle()
        assert fetch.calls == 2  # a background refresh was attempted and failed quietly
        for _ in range(50):
            assert await cache.get() == "tok-1"
        await settle()
        assert fetch.calls == 2  # no storm: retried at most once a second
        clock.advance(TokenCache.RETRY_AFTER_FAILURE)
        assert await cache.get() == "tok-1"
        await settle()
        assert fetch.calls == 3
        clock.advance(29.5)  # late in the margin: callers wait, the refresh fails again
        assert await cache.get() == "tok-1"  # still valid: still served
        assert fetch.calls == 4
        clock.advance(19.5)  # now expired: the failure surfaces
        with pytest.raises(RuntimeError, match="failed"):
            await cache.get()
        fetch.fail = False
        assert await cache.get() == "tok-6"
        gc.collect()
        await settle()
        assert loop_errors == []  # no "exception was never retrieved"
    finally:
        loop.set_exception_handler(previous)


async def test_failed_fetch_without_token_raises_to_every_waiter() -> None:
    cache, fetch, _ = _cache()
    fetch.gate = asyncio.Event()
    fetch.fail = True
    tasks = [asyncio.create_task(cache.get()) for _ in range(200)]
    async with asyncio.timeout(10):
        await fetch.started.wait()
    fetch.gate.set()
    async with asyncio.timeout(10):
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert {str(r) for r in results} == {"token fetch 1 failed"}
    assert fetch.calls == 1
    assert cache.fetches == 1

    # The failure is not cached: a later call fetches again.
    fetch.fail = False
    fetch.gate = None
    assert await cache.get() == "tok-2"
    assert fetch.calls == 2
    assert cache.fetches == 2


async def test_invalidate_old_token_keeps_the_new_one() -> None:
    cache, fetch, clock = _cache()
    assert await cache.get() == "tok-1"
    clock.advance(900.0 - MARGIN)
    assert await cache.get() == "tok-1"
    await settle()
    assert await cache.get() == "tok-2"
    cache.invalidate("tok-1")  # a late 401 for the old token
    assert await cache.get() == "tok-2"
    assert fetch.calls == 2
    cache.invalidate("tok-2")  # DOKU rejected the current one
    assert await cache.get() == "tok-3"
    assert fetch.calls == 3


async def test_invalidate_on_empty_cache_is_harmless() -> None:
    cache, fetch, _ = _cache()
    cache.invalidate("tok-unknown")
    assert await cache.get() == "tok-1"
    cache.invalidate("tok-unknown")
    assert await cache.get() == "tok-1"
    assert fetch.calls == 1


async def test_invalidated_token_waiters_share_one_refresh() -> None:
    cache, fetch, _ = _cache()
    assert await cache.get() == "tok-1"
    cache.invalidate("tok-1")
    fetch.gate = asyncio.Event()
    tasks = [asyncio.create_task(cache.get()) for _ in range(100)]
    async with asyncio.timeout(10):
        await fetch.started.wait()
    # Stale invalidations arriving while the refresh runs must not start another one.
    cache.invalidate("tok-1")
    fetch.gate.set()
    async with asyncio.timeout(10):
        results = await asyncio.gather(*tasks)
    assert set(results) == {"tok-2"}
    assert fetch.calls == 2


async def test_aclose_cancels_inflight_fetch_cleanly() -> None:
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    try:
        cache, fetch, _ = _cache()
        fetch.gate = asyncio.Event()  # never set: the fetch hangs
        waiter = asyncio.create_task(cache.get())
        async with asyncio.timeout(10):
            await fetch.started.wait()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with asyncio.timeout(10):
                await cache.aclose()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            del waiter
            gc.collect()
            await asyncio.sleep(0)
        assert fetch.cancelled
        assert [str(w.message) for w in caught] == []
        assert loop_errors == []
        # Closing twice, or with nothing in flight, is a no-op.
        await cache.aclose()
        assert cache.fetches == 1
    finally:
        loop.set_exception_handler(previous)


async def test_aclose_cancels_a_background_refresh() -> None:
    cache, fetch, clock = _cache()
    assert await cache.get() == "tok-1"
    fetch.gate = asyncio.Event()  # never set
    fetch.started.clear()
    clock.advance(850.0)
    assert await cache.get() == "tok-1"
    async with asyncio.timeout(10):
        await fetch.started.wait()
        await cache.aclose()
    assert fetch.cancelled


async def test_no_background_refresh_starts_after_aclose() -> None:
    cache, fetch, clock = _cache()
    assert await cache.get() == "tok-1"
    await cache.aclose()
    clock.advance(850.0)  # due: a call still in flight may peek
    assert cache.peek() == "tok-1"
    await settle()
    assert fetch.calls == 1
    assert cache.fetches == 1


async def test_a_failed_background_refresh_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    cache, fetch, clock = _cache()
    assert await cache.get() == "tok-1"
    fetch.fail = True
    clock.advance(850.0)
    with caplog.at_level(logging.WARNING, logger="doku_async"):
        assert await cache.get() == "tok-1"
        await settle()
    assert [r.getMessage() for r in caplog.records] == [
        "access token refresh failed: token fetch 2 failed"
    ]


async def test_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    cache, fetch, _ = _cache()
    fetch.gate = asyncio.Event()
    impatient = asyncio.create_task(cache.get())
    patient = asyncio.create_task(cache.get())
    async with asyncio.timeout(10):
        await fetch.started.wait()
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    fetch.gate.set()
    async with asyncio.timeout(10):
        assert await patient == "tok-1"
    assert not fetch.cancelled
    assert fetch.calls == 1


async def test_repr_hides_the_token() -> None:
    cache, _, _ = _cache()
    assert repr(cache) == "TokenCache(empty)"
    assert await cache.get() == "tok-1"
    assert repr(cache) == "TokenCache(cached)"
    assert "tok-1" not in repr(cache)


# --- through DokuClient and the fake DOKU -----------------------------------------------------


async def test_thousand_concurrent_calls_on_a_cold_client_fetch_one_token(
    fake: FakeDoku, client: DokuClient
) -> None:
    async with asyncio.timeout(60):
        results = await asyncio.gather(
            *(client.kirim.balance_inquiry(account_no=AGENT_KEY) for _ in range(1000))
        )
    assert fake.token_requests == 1
    assert client.token_fetches == 1
    assert len(fake.calls_for("token")) == 1
    assert all(r.available_balance == Decimal("100000000.00") for r in results)
    balance_calls = fake.calls_for("balance_inquiry")
    assert len(balance_calls) == 1000
    assert {c.status for c in balance_calls} == {200}
    assert len({c.headers["Authorization"] for c in balance_calls}) == 1
    assert fake.errors == []


async def test_expired_token_is_refreshed_once_and_the_call_succeeds(
    fake: FakeDoku, client: DokuClient
) -> None:
    first = await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert first.response_code == "2001100"
    assert fake.token_requests == 1
    fake.expire_tokens()
    async with asyncio.timeout(60):
        second = await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert second.response_code == "2001100"
    assert second.available_balance == Decimal("100000000.00")
    assert fake.token_requests == 2
    assert client.token_fetches == 2
    assert [c.op for c in fake.calls] == [
        "token",
        "balance_inquiry",
        "balance_inquiry",
        "token",
        "balance_inquiry",
    ]
    calls = fake.calls_for("balance_inquiry")
    assert [(c.status, c.response_code) for c in calls] == [
        (200, "2001100"),
        (401, "4011101"),
        (200, "2001100"),
    ]
    # The rejected attempt used the old token; the retry was re-signed with the new one.
    assert calls[1].headers["Authorization"] == calls[0].headers["Authorization"]
    assert calls[2].headers["Authorization"] != calls[1].headers["Authorization"]
    assert calls[2].headers["X-SIGNATURE"] != calls[1].headers["X-SIGNATURE"]


async def test_expired_token_under_concurrency_costs_one_more_fetch(
    fake: FakeDoku, client: DokuClient
) -> None:
    await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    fake.expire_tokens()
    async with asyncio.timeout(60):
        results = await asyncio.gather(
            *(client.kirim.balance_inquiry(account_no=AGENT_KEY) for _ in range(200))
        )
    assert all(r.response_code == "2001100" for r in results)
    assert fake.token_requests == 2
    assert client.token_fetches == 2
    calls = fake.calls_for("balance_inquiry")
    assert sum(1 for c in calls if c.status == 200) == 201
    assert all(c.response_code == "4011101" for c in calls if c.status == 401)


async def test_invalidate_token_forces_one_new_fetch(fake: FakeDoku, client: DokuClient) -> None:
    await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    client.invalidate_token()
    await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert fake.token_requests == 2
    assert client.token_fetches == 2
    assert {c.status for c in fake.calls_for("balance_inquiry")} == {200}


# --- DOKU's documented token answers (issue 11) -------------------------------------------


_MISSING = object()


@pytest.mark.parametrize(
    "fields",
    [
        # DOKU's Go, PHP, Java and Python SDKs type additionalInfo as a string: "" in practice.
        {"tokenType": "Bearer", "expiresIn": 900, "additionalInfo": ""},
        {"tokenType": "Bearer", "expiresIn": 900, "additionalInfo": None},
        {"tokenType": "Bearer", "expiresIn": 900},
        {"tokenType": "Bearer", "expiresIn": "900", "additionalInfo": ""},
        # The fixtures of DOKU's SDKs send "Bearer " with a trailing space.
        {"tokenType": "Bearer ", "expiresIn": 900, "additionalInfo": ""},
        {"tokenType": "Bearer ", "expiresIn": "900", "additionalInfo": {}},
    ],
    ids=["info-empty-text", "info-null", "info-absent", "expires-text", "bearer-space", "mixed"],
)
async def test_each_documented_token_shape_authenticates(
    fake: FakeDoku, fake_url: str, keypair: tuple[bytes, bytes], fields: dict[str, object]
) -> None:
    """A client built as the README says gets its token and sends a clean
    ``Authorization: Bearer <token>`` (the fake refuses anything else with 401xx01)."""
    fake.token_answer_fields = fields
    async with make_client(fake_url, keypair) as client:
        balance = await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert balance.response_code == "2001100"
    assert fake.token_requests == 1
    authorizations = [c.headers.get("Authorization", "") for c in fake.calls if c.op != "token"]
    assert authorizations
    assert all(re.fullmatch(r"Bearer eyJ[A-Za-z0-9_-]+", a) for a in authorizations)
