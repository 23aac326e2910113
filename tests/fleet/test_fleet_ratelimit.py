"""FleetRateLimiter (issue 17) against a real Redis: the fleet's rate and its 429 halving are
shared by every limiter of one name, one halving per second for the fleet, Redis down paces
locally, and the bulk runner takes it. The three-process proof is in test_fleet_processes.py."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from redis_fixtures import free_port

from doku_async import ConfigurationError
from doku_async.bulk import BulkRunner
from doku_async.fleet import FleetRateLimiter
from doku_async.testing import DokuSimulator

pytestmark = pytest.mark.timeout(60)

RATE = 40.0


@pytest.fixture
async def pair(redis_url: str, redis_prefix: str) -> AsyncIterator[list[FleetRateLimiter]]:
    """Two limiters of one fleet limit: two processes' worth."""
    made = [
        FleetRateLimiter.from_url(redis_url, name="run-1", rate=RATE, prefix=redis_prefix)
        for _ in range(2)
    ]
    try:
        yield made
    finally:
        for limiter in made:
            await limiter.aclose()


async def test_a_429_seen_by_one_limiter_halves_the_rate_for_the_other(
    pair: list[FleetRateLimiter],
) -> None:
    first, second = pair
    await second.acquire()
    assert second.rate == RATE
    first.throttle()
    first.throttle()  # the same burst: one halving for the fleet, not two
    await first.aclose()  # waits for its pending halvings
    second._read_at = float("-inf")  # read the fleet's state now rather than 0.1 s later
    await second.acquire()
    assert second.rate is not None
    assert 0.5 * RATE <= second.rate < 0.55 * RATE  # halved, plus a few ms of recovery
    assert first.throttled == 2


async def test_limiters_of_another_name_are_not_slowed(
    redis_url: str, redis_prefix: str, pair: list[FleetRateLimiter]
) -> None:
    other = FleetRateLimiter.from_url(redis_url, name="run-2", rate=RATE, prefix=redis_prefix)
    try:
        pair[0].throttle()
        await pair[0].aclose()
        await other.acquire()
        assert other.rate == RATE
    finally:
        await other.aclose()


async def test_redis_down_paces_locally(caplog: pytest.LogCaptureFixture) -> None:
    limiter = FleetRateLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0", name="run", rate=RATE)
    caplog.set_level(logging.WARNING)
    try:
        await limiter.acquire()
        await limiter.acquire()
    finally:
        await limiter.aclose()
    assert "fleet rate limit unreachable" in caplog.text


def test_bad_settings_fail_before_any_io() -> None:
    url = "redis://127.0.0.1:6379/0"
    with pytest.raises(ConfigurationError, match="rate"):
        FleetRateLimiter.from_url(url, name="run", rate=0.5)
    with pytest.raises(ConfigurationError, match="min_rate"):
        FleetRateLimiter.from_url(url, name="run", rate=10, min_rate=0.1)
    with pytest.raises(ConfigurationError, match="name"):
        FleetRateLimiter.from_url(url, name="", rate=10)


async def test_the_bulk_runner_takes_it_as_its_rate(
    sim: DokuSimulator, pair: list[FleetRateLimiter]
) -> None:
    async with sim.client() as client:
        runner = BulkRunner(client, customer_number="628115678890", rate=pair[0])
        assert runner.limiter is pair[0]
