"""The simulator's Kirim DOKU notifications: what follows a magic-value transfer.

It owns the delivery settings (where Unpaid and Refund notifications go, how long after the
transfer, the retry schedule), the record of every notification sent, and the HTTP session that
sends them. A delivery is signed as DOKU signs it, retried until the receiver acknowledges it
(HTTP 200 with ``responseCode`` ``00`` or ``01``), and settles the transfer in the ledger first.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

import aiohttp

from ..webhooks import sign_kirim_notification
from ._ledger import Ledger
from ._records import (
    FAILING_BANK,
    REFUND_ACCOUNT,
    WIB,
    DeliveredNotification,
    SimulatedTransfer,
    SimulatorCredentials,
)

__all__ = ["Notifier"]

log = logging.getLogger("doku_async.testing")

Spawn = Callable[
    [Coroutine[Any, Any, DeliveredNotification | None]],
    "asyncio.Task[DeliveredNotification | None]",
]
"""Runs a coroutine as a task its owner waits for on drain and cancels on close."""


class Notifier:
    """Sends the notifications that follow magic-value transfers."""

    def __init__(
        self,
        credentials: SimulatorCredentials,
        ledger: Ledger,
        spawn: Spawn,
        *,
        unpaid_url: str | None,
        refund_url: str | None,
        notification_delay: float,
        retry_schedule: tuple[float, ...],
    ) -> None:
        self._credentials = credentials
        self._ledger = ledger
        self._spawn = spawn
        self.unpaid_url = unpaid_url
        self.refund_url = refund_url
        self.notification_delay = notification_delay
        self.retry_schedule = retry_schedule
        self.notifications: list[DeliveredNotification] = []
        self._acked = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    def follow_up(self, transfer: SimulatedTransfer) -> None:
        """Schedule what follows a committed transfer: an UNPAID one turns FAILED (bank
        ``002``) or SUCCESS, the refund account's is refunded; each with its notification."""
        if transfer.status == "03":
            failed = transfer.beneficiary_bank_code == FAILING_BANK
            self._spawn(self._settle_unpaid(transfer, failed, self.notification_delay))
        elif transfer.beneficiary_account_number == REFUND_ACCOUNT:
            self._spawn(self._refund(transfer, self.notification_delay))
        # Delayed (automatic): skipped when notify() settled the transfer meanwhile.

    async def wait_for(self, count: int, timeout: float) -> None:
        """Wait until ``count`` notifications were acknowledged (or raise ``TimeoutError``)."""
        async with asyncio.timeout(timeout):
            while sum(1 for n in self.notifications if n.acknowledged) < count:
                self._acked.clear()
                await self._acked.wait()

    async def close(self) -> None:
        """Close the HTTP session (after the deliveries were cancelled)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def trigger(
        self, transfer: SimulatedTransfer, kind: str, *, failed: bool = False
    ) -> asyncio.Task[DeliveredNotification | None]:
        """Send ``kind``'s notification for ``transfer`` now (no ``notification_delay``), the
        ledger moved first as DOKU would: an Unpaid one settles a pending transfer (FAILED when
        ``failed``, else SUCCESS) or repeats a settled one's outcome; a Refund one refunds a
        paid transfer or repeats a refund. The task ends with the delivery (its record).

        Raises:
            ValueError: unknown ``kind``, no URL for it, or a notification the transfer's
                state does not allow (states only move forward).
        """
        if kind not in ("unpaid", "refund"):
            raise ValueError(f"kind must be 'unpaid' or 'refund', not {kind!r}")
        if (self.unpaid_url if kind == "unpaid" else self.refund_url) is None:
            raise ValueError(f"no {kind}_url is set: nowhere to send the notification")
        allowed = {"03", "06" if failed else "00"} if kind == "unpaid" else {"00", "04"}
        if transfer.status not in allowed:
            raise ValueError(
                f"transfer {transfer.partner_reference_no} has status {transfer.status}: "
                f"no {'failed ' if failed and kind == 'unpaid' else ''}{kind} notification "
                "can follow"
            )
        if kind == "unpaid":
            return self._spawn(self._settle_unpaid(transfer, failed, 0.0))
        return self._spawn(self._refund(transfer, 0.0))

    async def _settle_unpaid(
        self, transfer: SimulatedTransfer, failed: bool, delay: float
    ) -> DeliveredNotification | None:
        if delay:
            await asyncio.sleep(delay)
            if transfer.status != "03":
                return None
        if transfer.status == "03":
            self._ledger.settle_unpaid(transfer, failed=failed)
        failed = transfer.status == "06"  # what the ledger says, if it was settled meanwhile
        body = {
            "sendTrxId": transfer.partner_reference_no,
            "transactionId": transfer.reference_no,
            "invoiceNumber": transfer.partner_reference_no,
            "transactionStatus": "35" if failed else "50",
            "activityCode": "200",
            "message": "Transaction is Failed" if failed else "Transaction is Success",
            "processDate": self._process_date(),
            "createdTime": str(int(transfer.created_at * 1000)),
        }
        return await self._deliver("unpaid", self.unpaid_url, body)

    async def _refund(
        self, transfer: SimulatedTransfer, delay: float
    ) -> DeliveredNotification | None:
        if delay:
            await asyncio.sleep(delay)
            if transfer.status != "00":
                return None
        if transfer.status == "00":
            self._ledger.refund(transfer)
        body = {
            "transactionId": transfer.reference_no,
            "activityCode": "200",
            "message": "Transaction is Refunded",
            "processDate": self._process_date(),
        }
        return await self._deliver("refund", self.refund_url, body)

    def _process_date(self) -> str:
        # DOKU's own format, quotes around the T included.
        return datetime.fromtimestamp(self._ledger.clock.now(), WIB).strftime("%Y-%m-%d'T'%H:%M:%S")

    async def _deliver(
        self, kind: str, url: str | None, body: dict[str, Any]
    ) -> DeliveredNotification | None:
        if url is None:
            return None
        record = DeliveredNotification(kind, url, body)
        self.notifications.append(record)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        payload = json.dumps(body, separators=(",", ":")).encode()
        for wait in (0.0, *self.retry_schedule):
            if wait:
                await asyncio.sleep(wait)
            record.attempts += 1
            if await self._attempt(self._session, record, payload):
                record.acknowledged = True
                self._acked.set()
                return record
        log.info("%s notification for %s was never acknowledged", kind, body["transactionId"])
        return record

    async def _attempt(
        self, session: aiohttp.ClientSession, record: DeliveredNotification, payload: bytes
    ) -> bool:
        """One signed delivery; whether the receiver acknowledged it."""
        creds = self._credentials
        headers = sign_kirim_notification(
            agent_key=creds.agent_key, encryption_key=creds.encryption_key
        )
        try:
            async with session.post(
                record.url, data=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=5)
            ) as resp:
                record.responses.append(resp.status)
                answer = await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            record.responses.append(0)
            return False
        return resp.status == 200 and _acknowledged(answer)


def _acknowledged(answer: bytes) -> bool:
    try:
        body = json.loads(answer)
    except ValueError:
        return False
    return isinstance(body, dict) and str(body.get("responseCode")) in ("00", "01")
