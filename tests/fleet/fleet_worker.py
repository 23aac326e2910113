"""A client process of a fleet, for the fleet tests: ``python fleet_worker.py CONFIG.json``.

Prints ``ready``, waits for a line on stdin, then for ``duration`` seconds calls balance
inquiry against the simulator (``client``: DokuClient keyword arguments):

* ``mode == "token"``: one caller every ``pace`` seconds, the B2B token shared through a
  :class:`RedisTokenStore`;
* ``mode == "rate"``: ``workers`` callers paced by one :class:`FleetRateLimiter` (``rate``
  requests/s for the whole fleet), the client's 429s feeding its back-off.

Prints a JSON summary line and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from doku_async import DokuClient, DokuError, RetryPolicy
from doku_async.fleet import FleetRateLimiter, RedisTokenStore


async def token_mode(config: dict[str, Any], client: DokuClient, agent: str) -> dict[str, Any]:
    store = RedisTokenStore.from_url(
        config["redis_url"], prefix=config["prefix"], refresh_margin=config["margin"]
    )
    client.share_token(store)
    calls = errors = 0
    deadline = time.monotonic() + config["duration"]
    try:
        while time.monotonic() < deadline:
            try:
                await client.kirim.balance_inquiry(account_no=agent)
                calls += 1
            except DokuError:
                errors += 1
            await asyncio.sleep(config["pace"])
    finally:
        await store.aclose()
    return {"calls": calls, "errors": errors, "token_requests": store.requests}


async def rate_mode(config: dict[str, Any], client: DokuClient, agent: str) -> dict[str, Any]:
    limiter = FleetRateLimiter.from_url(
        config["redis_url"], name="fleet-test", rate=config["rate"], prefix=config["prefix"]
    )
    client.rate_limit_listeners.append(limiter.throttle)
    deadline = time.monotonic() + config["duration"]
    done: dict[str, int] = {"calls": 0, "errors": 0}

    async def caller() -> None:
        while True:
            await limiter.acquire()
            if time.monotonic() >= deadline:
                return
            try:
                await client.kirim.balance_inquiry(account_no=agent)
                done["calls"] += 1
            except DokuError:
                done["errors"] += 1

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(config["workers"]):
                group.create_task(caller())
    finally:
        await limiter.aclose()
    return {**done, "throttled": limiter.throttled}


async def main(config: dict[str, Any]) -> None:
    kwargs = config["client"]
    client = DokuClient(
        **kwargs,
        token_refresh_margin=config.get("margin", 60.0),
        retry=RetryPolicy(max_attempts=1),  # every request goes through the limiter
    )
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    mode = token_mode if config["mode"] == "token" else rate_mode
    async with client:
        summary = await mode(config, client, config["agent"])
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        settings = json.load(f)
    asyncio.run(main(settings))
