"""A webhook receiver replica as its own OS process, for the fleet tests.

``python receiver_process.py REDIS_URL PREFIX CALLS_FILE``: serves ``create_webhook_app`` with a
:class:`RedisDedupStore` on a free loopback port, prints the port on one line, appends one JSON
line per callback to ``CALLS_FILE``, and stops when its stdin closes. Each callback holds the
delivery for a few milliseconds (seeded per process) so copies on other replicas overlap it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from typing import TextIO

from aiohttp import web

from doku_async.fleet import RedisDedupStore
from doku_async.webhooks import UnpaidNotification, create_webhook_app, sign_kirim_notification

AGENT = "A41418"
KEY = "627054fevj1sutvs"
UNPAID_PATH = "/doku/kirim/unpaid"


def request_id(n: int) -> str:
    """A requestId in the shape DOKU sends."""
    return f"0000f1ee-0000-4000-8000-{n:012d}"


def signed_headers(rid: str) -> dict[str, str]:
    """The headers DOKU sends with notification ``rid``."""
    return sign_kirim_notification(agent_key=AGENT, encryption_key=KEY, request_id=rid)


def unpaid_body(transaction_id: str, status: str) -> bytes:
    """An Unpaid notification body (fields as on DOKU's Kirim notification page)."""
    return json.dumps(
        {
            "transactionId": transaction_id,
            "invoiceNumber": "I088787987870912",
            "transactionStatus": status,
            "activityCode": "200",
            "message": "Transaction is Success" if status == "50" else "Transaction failed",
            "processDate": "2024-01-12'T'07:30:12",
            "createdTime": "1699520040340",
        }
    ).encode()


async def serve(redis_url: str, prefix: str, out: TextIO) -> None:
    rng = random.Random(os.getpid())
    store = RedisDedupStore.from_url(redis_url, prefix=prefix, wait=20.0)

    async def on_unpaid(notification: UnpaidNotification) -> None:
        await asyncio.sleep(rng.uniform(0.0, 0.02))
        line = {
            "pid": os.getpid(),
            "request_id": notification.request_id,
            "transaction_id": notification.transaction_id,
            "status": notification.status,
        }
        out.write(json.dumps(line) + "\n")
        out.flush()

    sub = create_webhook_app(
        agent_key=AGENT, encryption_keys=KEY, on_unpaid=on_unpaid, dedup_store=store
    )
    outer = web.Application()
    outer.add_subapp("/doku/", sub)
    runner = web.AppRunner(outer, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(port, flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    finally:
        await runner.cleanup()
        await store.aclose()
        print(json.dumps({"waits": store.waits}), flush=True)


if __name__ == "__main__":
    with open(sys.argv[3], "a", encoding="utf-8") as calls:
        asyncio.run(serve(sys.argv[1], sys.argv[2], calls))
