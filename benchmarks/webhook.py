"""5. Webhook receiver: the SDK's sub-app vs a bare aiohttp handler, same server, same load.

One aiohttp server in the server process (the other core) serves both: the SDK's
``create_webhook_app`` mounted under ``/doku/`` (verifies the AES signature, parses, dedups,
awaits an ``async`` no-op callback, acknowledges) and a bare handler at ``/bare/kirim/unpaid``
that reads the body and returns the same acknowledgement (with the notification's
``transactionId``), verifying nothing. The load generator in this process is the same for both:
raw keep-alive HTTP/1.1 connections replaying precomputed requests, each notification with its
own ``requestId`` and ``transactionId`` (duplicates would be acknowledged "01" without the
callback), signed with ``sign_kirim_notification`` before timing. The server is the bottleneck,
so notifications per second and the server's CPU per notification are the numbers.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from doku_async.webhooks import sign_kirim_notification

from ._common import (
    AGENT_KEY,
    ENCRYPTION_KEY,
    Deadline,
    Paired,
    Row,
    Sample,
    Settings,
    alternate,
    loop_factories,
    measured,
    ratio_text,
)
from ._result import Result
from ._server import ServerProcess

NAME = "webhook"
TITLE = "Webhook receiver: SDK sub-app vs bare aiohttp handler"
TARGET = 0.8
CONNECTIONS = 32
RUN_SECONDS = 20.0
ACK_OK = b'"responseCode":"00"'


def notifications(port: int, path: str, start: int, n: int) -> list[bytes]:
    """``n`` complete HTTP requests, each a distinct signed Unpaid notification."""
    out = []
    for i in range(start, start + n):
        body = json.dumps(
            {
                "sendTrxId": f"DRV-2024-10-{i:08d}",
                "transactionId": f"DK{i:010d}",
                "invoiceNumber": f"DRV-2024-10-{i:08d}",
                "transactionStatus": "50",
                "activityCode": "200",
                "message": "Transaction is Success",
                "processDate": "2024-10-31'T'10:00:00",
                "createdTime": "1730343600000",
            },
            separators=(",", ":"),
        ).encode()
        headers = sign_kirim_notification(
            agent_key=AGENT_KEY,
            encryption_key=ENCRYPTION_KEY,
            request_id=f"00000000-0000-4000-8000-{i:012x}",
        )
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        out.append(head.encode() + body)
    return out


async def load(port: int, requests: list[bytes], connections: int, seconds: float) -> Sample:
    """Send ``requests`` over ``connections`` keep-alive connections; count good answers."""
    deadline = Deadline(seconds)
    queue = iter(requests)
    stats = {"ok": 0, "errors": 0}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in queue:
                if deadline.passed():
                    return
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                if head.startswith(b"HTTP/1.1 200") and ACK_OK in body:
                    stats["ok"] += 1
                else:
                    stats["errors"] += 1
        finally:
            writer.close()

    with measured() as m:
        async with asyncio.timeout(seconds + 30):
            await asyncio.gather(*(connection() for _ in range(connections)))
    done = stats["ok"] + stats["errors"]
    return Sample(done, m[0], m[1], errors=stats["errors"], capped=done < len(requests))


def run(settings: Settings) -> Result:
    result = Result(NAME, TITLE)
    started = time.perf_counter()
    n = settings.scale(4000, 600)
    factory = loop_factories()[-1][1]  # the load generator on uvloop when available
    with ServerProcess("webhook") as server, asyncio.Runner(loop_factory=factory) as loop:
        result.data["server"] = server.info
        port = server.port
        serial = 0
        batches: dict[str, list[list[bytes]]] = {"sdk": [], "base": []}
        for side, path in (("sdk", "/doku/kirim/unpaid"), ("base", "/bare/kirim/unpaid")):
            for _ in range(settings.rounds + 1):  # one warm-up batch each
                batches[side].append(notifications(port, path, serial, n))
                serial += n
        for side in ("sdk", "base"):
            loop.run(load(port, batches[side].pop(), CONNECTIONS, RUN_SECONDS))
        paired = Paired([], [])
        server_cpu: dict[str, list[float]] = {"sdk": [], "base": []}
        counters: list[dict[str, Any]] = []
        for _, order in alternate(settings.rounds):
            for side in order:
                server.reset()
                sample = loop.run(load(port, batches[side].pop(), CONNECTIONS, RUN_SECONDS))
                stats = server.stats()
                counters.append({"side": side} | stats)
                handled = stats["processed"] if side == "sdk" else stats["bare"]
                if handled != sample.ops - sample.errors:
                    sample.errors += abs(handled - (sample.ops - sample.errors))
                server_cpu[side].append(stats["cpu"] / max(sample.ops, 1) * 1e6)
                (paired.sdk if side == "sdk" else paired.base).append(sample)
    ratio, spread = paired.ratio("rate")
    cpu = Paired(
        [Sample(1, 0.0, v / 1e6) for v in server_cpu["sdk"]],
        [Sample(1, 0.0, v / 1e6) for v in server_cpu["base"]],
    )
    cpu_ratio, cpu_spread = cpu.ratio("cpu_us")
    note = f"{paired.errors()} bad answers" if paired.errors() else ""
    result.rows.append(
        Row(
            "5",
            f"webhook notifications/s ({CONNECTIONS} keep-alive connections)",
            paired.stat("sdk", "rate").fmt(),
            paired.stat("base", "rate").fmt(),
            ratio_text(ratio, spread),
            f"≥ {TARGET}x bare",
            ratio >= TARGET and not paired.errors(),
            note,
        )
    )
    result.rows.append(
        Row(
            "5",
            "webhook server CPU µs per notification",
            cpu.stat("sdk", "cpu_us").fmt(1),
            cpu.stat("base", "cpu_us").fmt(1),
            ratio_text(cpu_ratio, cpu_spread),
        )
    )
    result.data["rate"] = paired.to_json()
    result.data["server_cpu_us"] = server_cpu
    result.data["server_counters"] = counters
    result.data["notifications_per_round"] = n
    result.seconds = time.perf_counter() - started
    return result


def main() -> None:
    """One side alone, for a profiler: ``python -m benchmarks.webhook --side sdk``."""
    import argparse

    from ._common import CLIENT_CPU, pin

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--side", choices=("sdk", "bare"), default="sdk")
    parser.add_argument("--notifications", type=int, default=40_000)
    args = parser.parse_args()
    pin(CLIENT_CPU)
    path = "/doku/kirim/unpaid" if args.side == "sdk" else "/bare/kirim/unpaid"
    factory = loop_factories()[-1][1]
    with ServerProcess("webhook") as server, asyncio.Runner(loop_factory=factory) as loop:
        requests = notifications(server.port, path, 0, args.notifications)
        sample = loop.run(load(server.port, requests, CONNECTIONS, RUN_SECONDS * 3))
        stats = server.stats()
    cpu = stats["cpu"] / max(sample.ops, 1) * 1e6
    print(f"{args.side}: {sample.rate:,.0f} notifications/s, server {cpu:.1f} µs CPU each")


if __name__ == "__main__":
    main()
