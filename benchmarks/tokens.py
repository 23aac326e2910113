"""3. Token behaviour: how many B2B token requests the SDK makes.

A cold client makes 10,000 balance inquiries at concurrency 1, 64 and 256 against the minimal
server, which counts token requests itself (``/__stats``): the target is exactly one. Then the
server advertises a 2-second lifetime and a client with ``token_refresh_margin=0.5`` calls for
a bounded ~6 seconds: it should fetch one token per refresh interval (lifetime - margin = 1.5
s), i.e. about ``duration / 1.5`` token requests, whatever the concurrency.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from typing import Any

from ._common import AGENT_KEY, Deadline, Row, Settings, measured
from ._result import Result
from ._server import ServerProcess
from .bulk import new_client

NAME = "tokens"
TITLE = "Token requests"
CONCURRENCIES = (1, 64, 256)
LIFETIME = 2
MARGIN = 0.5
RUN_SECONDS = 60.0


async def calls(
    url: str, n: int, concurrency: int, seconds: float, **kwargs: Any
) -> dict[str, Any]:
    """``n`` balance inquiries (or as many as fit in ``seconds``) on a cold client."""
    deadline = Deadline(seconds)
    counter = itertools.count()
    stats = {"ok": 0, "errors": 0}
    async with new_client(url, **kwargs) as client:

        async def worker() -> None:
            while next(counter) < n and not deadline.passed():
                try:
                    await client.kirim.balance_inquiry(account_no=AGENT_KEY)
                except Exception:
                    stats["errors"] += 1
                else:
                    stats["ok"] += 1

        with measured() as m:
            async with asyncio.timeout(seconds + 30):
                await asyncio.gather(*(worker() for _ in range(concurrency)))
        fetches = client.token_fetches
    return stats | {"wall": m[0], "cpu": m[1], "client_token_fetches": fetches}


def run(settings: Settings) -> Result:
    result = Result(NAME, TITLE)
    started = time.perf_counter()
    n = settings.scale(10_000, 1_000)
    with ServerProcess("minimal", expires_in=900) as server:
        for concurrency in CONCURRENCIES:
            server.reset()
            out = asyncio.run(calls(server.url, n, concurrency, RUN_SECONDS))
            tokens = server.stats()["counts"].get("token", 0)
            out["server_token_requests"] = tokens
            result.data[f"c{concurrency}"] = out
            per_10k = tokens / max(out["ok"], 1) * 10_000
            complete = out["ok"] == n and not out["errors"]
            result.rows.append(
                Row(
                    "3",
                    f"token requests for {n:,} calls on a cold client, concurrency {concurrency}",
                    f"{tokens}",
                    target="1 (one per token lifetime)",
                    met=tokens == 1 and complete,
                    note=f"{per_10k:.1f} per 10,000 calls; {out['ok']:,} calls ok, "
                    f"{out['errors']} errors, {out['ok'] / out['wall']:,.0f} calls/s",
                )
            )
        # Short lifetime: tokens expire during the run.
        seconds = settings.scale(6, 3)
        server.configure(expires_in=LIFETIME)
        server.reset()
        out = asyncio.run(
            calls(server.url, 10_000_000, 64, float(seconds), token_refresh_margin=MARGIN)
        )
        tokens = server.stats()["counts"].get("token", 0)
        interval = LIFETIME - MARGIN
        expected = math.ceil(out["wall"] / interval)
        out |= {"server_token_requests": tokens, "expected": expected, "interval": interval}
        result.data["short_lifetime"] = out
        result.rows.append(
            Row(
                "3",
                f"token requests in {out['wall']:.1f} s with a {LIFETIME} s lifetime "
                f"(refresh margin {MARGIN} s), concurrency 64",
                f"{tokens}",
                f"expected {expected}",
                target=f"one per {interval:g} s refresh interval (±1)",
                met=abs(tokens - expected) <= 1 and not out["errors"],
                note=f"{out['ok']:,} calls ok, {out['errors']} errors",
            )
        )
    result.seconds = time.perf_counter() - started
    return result
