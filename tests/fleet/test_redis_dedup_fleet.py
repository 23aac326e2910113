"""The proof of issue 17 for webhooks: three receiver OS processes sharing one Redis.

1,000 deliveries of 100 valid notifications, spread at random (seeded) over the three and sent
concurrently, plus 50 replays of captured headers with a changed body (sent once the genuine
notification was seen, as a replay must be): exactly 100 callbacks, none for a replay, no 5xx.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from receiver_process import UNPAID_PATH, request_id, signed_headers, unpaid_body

pytestmark = pytest.mark.timeout(120)

SEED = 17
NOTIFICATIONS = 100
DELIVERIES = 1_000
REPLAYS = 50
REPLICAS = 3
CONCURRENCY = 60
RECEIVER = Path(__file__).with_name("receiver_process.py")


async def start_replica(
    redis_url: str, prefix: str, calls: Path
) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(RECEIVER),
        redis_url,
        prefix,
        str(calls),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    return process, int(line)


async def stop_replica(process: asyncio.subprocess.Process) -> int:
    """Close its stdin (a clean stop), kill it if it overruns; how many of its deliveries
    waited for another replica's outcome (0 if it had to be killed)."""
    if process.returncode is not None:
        return 0
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.close()
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 15)
        await asyncio.wait_for(process.wait(), 15)
    except TimeoutError:
        process.kill()
        await process.wait()
        return 0
    waits: int = json.loads(line)["waits"]
    return waits


async def test_three_replicas_call_back_once_per_notification_and_never_for_a_replay(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    genuine = {n: rng.choice(["50", "35"]) for n in range(NOTIFICATIONS)}
    # Every notification at least once, then DOKU's retries and copies at random.
    order = list(range(NOTIFICATIONS)) + [
        rng.randrange(NOTIFICATIONS) for _ in range(DELIVERIES - NOTIFICATIONS)
    ]
    rng.shuffle(order)
    plan = [(n, rng.randrange(REPLICAS)) for n in order]  # which replica gets each copy
    replays = [(n, rng.randrange(REPLICAS)) for n in rng.sample(range(NOTIFICATIONS), REPLAYS)]
    seen = {n: asyncio.Event() for n in range(NOTIFICATIONS)}
    calls = tmp_path / "calls.jsonl"
    replicas: list[tuple[asyncio.subprocess.Process, int]] = []
    answers: Counter[tuple[str, int, str]] = Counter()
    gate = asyncio.Semaphore(CONCURRENCY)
    try:
        for _ in range(REPLICAS):
            replicas.append(await start_replica(redis_url, redis_prefix, calls))
        ports = [port for _, port in replicas]

        async def send(
            session: aiohttp.ClientSession, n: int, status: str, what: str, replica: int
        ) -> None:
            if what == "replay":  # a capture exists only once the genuine one went out
                await asyncio.wait_for(seen[n].wait(), 60)
            body = unpaid_body(f"DK{n:07d}", status)
            url = f"http://127.0.0.1:{ports[replica]}{UNPAID_PATH}"
            async with (
                gate,
                session.post(url, data=body, headers=signed_headers(request_id(n))) as resp,
            ):
                payload = await resp.json()
            answers[what, resp.status, payload["responseCode"]] += 1
            seen[n].set()

        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session, asyncio.TaskGroup() as group:
            for n, replica in plan:
                group.create_task(send(session, n, genuine[n], "genuine", replica))
            for n, replica in replays:
                flipped = "35" if genuine[n] == "50" else "50"
                group.create_task(send(session, n, flipped, "replay", replica))
    finally:
        waits = [await stop_replica(process) for process, _ in replicas]
    print(f"\ndeliveries that waited for another replica's outcome: {sum(waits)}")
    lines = [json.loads(line) for line in calls.read_text(encoding="utf-8").splitlines()]
    assert answers == {
        ("genuine", 200, "00"): NOTIFICATIONS,
        ("genuine", 200, "01"): DELIVERIES - NOTIFICATIONS,
        ("replay", 409, "409"): REPLAYS,
    }
    assert len(lines) == NOTIFICATIONS
    handled = {line["request_id"]: line["status"] for line in lines}
    assert handled == {request_id(n): status for n, status in genuine.items()}
    # The three replicas all took part (the spread was random, not all on one).
    assert len({line["pid"] for line in lines}) == REPLICAS
