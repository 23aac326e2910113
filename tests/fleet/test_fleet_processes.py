"""The proofs of issue 17 for clients: three OS processes against one simulator (in this test's
loop, so every request is stamped where it arrives) sharing one Redis.

* One B2B token for the fleet: one token request per token lifetime across all three.
* One fleet rate of R requests/s: the measured rate stays within 10% of R, and a 429 storm
  halves it fleet-wide within a second.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, SupportsIndex

import pytest

from doku_async.testing import DokuSimulator, SimulatorCredentials
from doku_async.testing._records import RecordedRequest

pytestmark = pytest.mark.timeout(120)

PROCESSES = 3
WORKER = Path(__file__).with_name("fleet_worker.py")


class Stamped(list[RecordedRequest]):
    """The simulator's request log, with the arrival time of each request."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: RecordedRequest) -> None:
        self.times.append(time.monotonic())
        super().append(item)

    def of(self, operation: str) -> list[tuple[float, RecordedRequest]]:
        return [(t, r) for t, r in zip(self.times, self, strict=True) if r.operation == operation]

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        return super().__getitem__(index)


@pytest.fixture
async def stamped(creds: SimulatorCredentials) -> AsyncIterator[tuple[DokuSimulator, Stamped]]:
    async with DokuSimulator(credentials=creds) as sim:
        log = Stamped()
        sim.requests = log
        yield sim, log


@asynccontextmanager
async def fleet(
    sim: DokuSimulator, tmp_path: Path, **config: Any
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Start the worker processes, wait until each is ready; stop (kill if need be) after."""
    creds = sim.credentials
    client = {
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "private_key": creds.private_key_pem.decode(),
        "base_url": sim.base_url,
    }
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({**config, "client": client, "agent": creds.agent_key}))
    processes: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(PROCESSES):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                str(path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            processes.append(process)
            assert process.stdout is not None
            ready = await asyncio.wait_for(process.stdout.readline(), 30)
            assert ready.strip() == b"ready"
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def go(processes: Iterable[asyncio.subprocess.Process]) -> float:
    """Start every worker at once; the start time."""
    started = time.monotonic()
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    return started


async def summaries(processes: list[asyncio.subprocess.Process]) -> list[dict[str, Any]]:
    out = []
    for process in processes:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        out.append(json.loads(line))
        await asyncio.wait_for(process.wait(), 30)
    return out


def rate_between(times: list[float], start: float, end: float) -> float:
    return sum(start <= t < end for t in times) / (end - start)


# --------------------------------------------------------------------------- the shared token

TOKEN_TTL = 3.0
MARGIN = 0.5


async def test_three_processes_make_one_token_request_per_token_lifetime(
    stamped: tuple[DokuSimulator, Stamped], redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    sim, log = stamped
    sim.token_ttl = TOKEN_TTL
    config: dict[str, Any] = {"mode": "token", "redis_url": redis_url, "prefix": redis_prefix}
    config |= {"margin": MARGIN, "duration": 8.0, "pace": 0.05}
    async with fleet(sim, tmp_path, **config) as processes:
        await go(processes)
        done = await summaries(processes)
    token_times = [t for t, _ in log.of("token")]
    gaps = [b - a for a, b in itertools.pairwise(token_times)]
    calls = sum(d["calls"] for d in done)
    print(
        f"\n{len(token_times)} token requests for {calls} calls; gaps {[round(g, 2) for g in gaps]}"
    )
    # Several lifetimes passed, and each token was fetched only once the last one was within
    # its margin: never two requests for one lifetime (three processes alone would make 3).
    assert len(token_times) >= 3
    assert min(gaps) >= TOKEN_TTL - MARGIN - 0.5, gaps
    assert sum(d["token_requests"] for d in done) == len(token_times) == sim.token_requests
    assert all(d["errors"] == 0 and d["calls"] > 20 for d in done), done
    used = {r.headers["Authorization"] for _, r in log.of("balance_inquiry")}
    assert len(used) == len(token_times)


# --------------------------------------------------------------------------- the fleet rate

RATE = 30.0
WARM_UP = 2.0
STORM_AT = 5.0
DURATION = 9.0


async def test_three_processes_keep_one_fleet_rate_and_halve_it_on_a_429_storm(
    stamped: tuple[DokuSimulator, Stamped], redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    sim, log = stamped
    config: dict[str, Any] = {"mode": "rate", "redis_url": redis_url, "prefix": redis_prefix}
    config |= {"rate": RATE, "workers": 4, "duration": DURATION}
    async with fleet(sim, tmp_path, **config) as processes:
        started = await go(processes)
        await asyncio.sleep(started + STORM_AT - time.monotonic())
        sim.inject("balance_inquiry", "error", times=6, status=429, response_code="4291100")
        done = await summaries(processes)
    calls = log.of("balance_inquiry")
    times = [t - started for t, _ in calls]
    # The window starts empty, so the first second may take R at once; from the second
    # window on the pace is steady. Never more than R per second over the run before the storm.
    steady = rate_between(times, WARM_UP, STORM_AT)
    before = rate_between(times, 0.0, STORM_AT)
    storm = min(t - started for t, r in calls if r.status == 429)
    after = rate_between(times, storm + 1.0, storm + 2.0)
    per = [round(rate_between(times, a / 2, a / 2 + 0.5)) for a in range(int(DURATION * 2))]
    print("\nrequests/s per half second:", per, "storm at", round(storm, 2))
    print(f"fleet rate: steady {steady:.1f}/s (R={RATE}), one second after the storm {after:.1f}")
    assert abs(steady - RATE) <= 0.1 * RATE, steady
    assert before <= 1.1 * RATE, before
    # Halved at the storm, then +5% of R per second: 0.575 R on average over that second.
    assert 0.4 * RATE <= after <= 0.65 * RATE, after
    assert sum(d["throttled"] for d in done) == 6
    assert sum(d["calls"] + d["errors"] for d in done) == len(calls)
