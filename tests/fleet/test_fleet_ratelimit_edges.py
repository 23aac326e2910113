"""FleetRateLimiter edge cases found in review (issue 17): Redis down or hung must not cost
every request a Redis timeout."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis_fixtures import PrivateRedis, free_port

from doku_async.fleet import FleetRateLimiter, _ratelimit

pytestmark = pytest.mark.timeout(60)


async def test_redis_down_is_probed_once_in_a_while_not_before_every_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each attempt on a Redis that stopped answering costs a socket timeout (2 s): tried
    before every request, a runner crawls at one request per timeout. Down, the limiter paces
    locally and asks Redis again only after a pause."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = FleetRateLimiter.from_url(
        f"redis://127.0.0.1:{free_port()}/0", name="run", rate=40.0, sleep=sleep
    )
    caplog.set_level(logging.WARNING, logger="doku_async")
    try:
        for _ in range(20):  # paced locally with no real sleep: well inside the pause
            await limiter.acquire()
    finally:
        await limiter.aclose()
    attempts = [r for r in caplog.records if "fleet rate limit unreachable" in r.message]
    assert len(attempts) == 1
    assert len([s for s in slept if s > 0]) >= 18  # still paced, at the last known rate


async def test_back_on_redis_after_the_pause_it_follows_the_fleet_again(
    private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_ratelimit, "DOWN_RETRY", 0.05)
    mine = FleetRateLimiter.from_url(private_redis.url, name="run", rate=40.0, prefix="r:")
    private_redis.stop()
    try:
        await mine.acquire()  # down: paced locally
        private_redis.start()
        other = FleetRateLimiter.from_url(private_redis.url, name="run", rate=40.0, prefix="r:")
        try:
            other.throttle()  # a 429 elsewhere halves the fleet's rate
        finally:
            await other.aclose()
        await asyncio.sleep(0.1)  # past the pause
        await mine.acquire()
    finally:
        await mine.aclose()
    assert mine.rate is not None
    assert 20.0 <= mine.rate < 22.0  # the fleet's halved rate, read from Redis


async def test_limiters_of_one_name_share_one_window_whatever_rate_each_was_given(
    redis_url: str, redis_prefix: str
) -> None:
    """Two runners of one fleet limit started with different rates (40 and 20): one shared
    window, so the fleet never exceeds the larger rate. Each window was keyed by its own rate,
    so they did not see each other at all and the fleet took 40 + 20 requests per second."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    fast = FleetRateLimiter.from_url(redis_url, name="run", rate=40.0, prefix=redis_prefix)
    slow = FleetRateLimiter.from_url(
        redis_url, name="run", rate=20.0, prefix=redis_prefix, sleep=sleep
    )
    try:
        for _ in range(40):  # the first second's whole budget
            await fast.acquire()
        await slow.acquire()
    finally:
        await fast.aclose()
        await slow.aclose()
    assert slept  # the other runner had to wait for the shared window
