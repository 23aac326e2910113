"""``WebhookTarget`` (the ``doku_webhook_target`` fixture) and ``DokuSimulator.notify``
(issue 15): the SDK's own webhook sub-app as the receiver under test, notifications sent on
demand with the ledger moved first, and states that only move forward. The fixture in a fresh
pytest-asyncio STRICT project is run by ``test_readme_examples.py`` (the README's example)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from helpers import client_for

from doku_async import DokuClient, TransferResult
from doku_async.testing import DokuSimulator, SimulatorCredentials, WebhookTarget
from doku_async.webhooks import ConfirmedNotification, create_webhook_app

PENDING_ACCOUNT = "5512345678"  # contains 12345: UNPAID, settled later


class Receiver:
    """The SDK's webhook app in confirm mode, as a user's service mounts it."""

    def __init__(self, doku: DokuClient, target: WebhookTarget, **keys: Any) -> None:
        self.payouts: dict[str, str] = {}  # DOKU's referenceNo -> partnerReferenceNo
        self.confirmed: list[tuple[str, str, str]] = []
        self.app = web.Application()
        self.app.add_subapp(
            "/doku/",
            create_webhook_app(
                agent_key=keys.get("agent_key", target.agent_key),
                encryption_keys=keys.get("encryption_keys", target.encryption_keys),
                confirm_with=doku,
                reference_lookup=self.lookup,
                on_confirmed=self.on_confirmed,
            ),
        )

    async def lookup(self, reference_no: str) -> str | None:
        return self.payouts.get(reference_no)

    async def on_confirmed(self, c: ConfirmedNotification) -> None:
        self.confirmed.append((c.kind, c.partner_reference_no, c.confirmed_status))


@pytest.fixture
async def setup(
    creds: SimulatorCredentials,
) -> AsyncIterator[tuple[DokuSimulator, DokuClient, WebhookTarget]]:
    # A long notification_delay: the magic values' own notifications stay out of the way.
    async with (
        asyncio.timeout(30),
        DokuSimulator(credentials=creds, notification_delay=60, retry_schedule=(0.01,)) as sim,
        client_for(sim) as doku,
    ):
        target = WebhookTarget(sim)
        try:
            yield sim, doku, target
        finally:
            await target.close()


async def pay(doku: DokuClient, ref: str, account: str = "8377388292", bank: str = "014") -> Any:
    result: TransferResult = await doku.kirim.transfer_bank(
        partner_reference_no=ref,
        customer_number="628115678890",
        beneficiary_account_number=account,
        beneficiary_bank_code=bank,
        amount="1500.00",
    )
    return result


async def receiver_for(
    sim: DokuSimulator, doku: DokuClient, target: WebhookTarget, **keys: Any
) -> Receiver:
    receiver = Receiver(doku, target, **keys)
    url = await target.serve(receiver.app)
    target.send_to(unpaid_url=url + "/doku/kirim/unpaid", refund_url=url + "/doku/kirim/refund")
    assert sim.unpaid_url == url + "/doku/kirim/unpaid"
    return receiver


def test_target_exposes_the_keys_notifications_are_signed_with(
    creds: SimulatorCredentials,
) -> None:
    target = WebhookTarget(DokuSimulator(credentials=creds))
    assert target.agent_key == creds.agent_key
    assert target.encryption_keys == (creds.encryption_key,)
    assert target.environ == {
        "DOKU_AGENT_KEY": creds.agent_key,
        "DOKU_ENCRYPTION_KEYS": creds.encryption_key,
    }
    assert creds.encryption_key not in repr(target)
    with pytest.raises(ValueError, match="not an http"):
        target.send_to(unpaid_url="localhost:8080/hook")


async def test_failed_and_refund_notifications_are_confirmed_by_the_receiver(
    setup: tuple[DokuSimulator, DokuClient, WebhookTarget],
) -> None:
    sim, doku, target = setup
    receiver = await receiver_for(sim, doku, target)
    pending = await pay(doku, "WT-PENDING", account=PENDING_ACCOUNT)
    paid = await pay(doku, "WT-PAID")
    assert pending.status == "pending"
    receiver.payouts.update({pending.reference_no: "WT-PENDING", paid.reference_no: "WT-PAID"})
    before = sim.balance()

    delivery = await target.notify("WT-PENDING", failed=True)
    assert delivery.acknowledged
    assert delivery.responses == [200]
    assert delivery.body["transactionStatus"] == "35"
    delivery = await target.notify("WT-PAID", "refund")
    assert delivery.acknowledged

    # What the receiver handed over is check status's word, which the ledger moved to.
    assert receiver.confirmed == [
        ("unpaid", "WT-PENDING", "06"),
        ("refund", "WT-PAID", "04"),
    ]
    assert sim.balance() == before + 2 * Decimal("1500.00")  # both came back
    assert sim.transfer_count("WT-PENDING") == sim.transfer_count("WT-PAID") == 1

    # A repeat is a duplicate to the receiver: acknowledged, not handed over again.
    again = await target.notify("WT-PAID", "refund")
    assert again.acknowledged
    assert len(receiver.confirmed) == 2
    assert sim.balance() == before + 2 * Decimal("1500.00")


async def test_states_only_move_forward(
    setup: tuple[DokuSimulator, DokuClient, WebhookTarget],
) -> None:
    sim, doku, target = setup
    await receiver_for(sim, doku, target)
    await pay(doku, "WT-FAIL", account=PENDING_ACCOUNT)
    await pay(doku, "WT-OK")
    await target.notify("WT-FAIL", failed=True)
    with pytest.raises(ValueError, match="status 06"):
        await target.notify("WT-FAIL", "refund")  # nothing paid: nothing to refund
    with pytest.raises(ValueError, match="status 06"):
        await target.notify("WT-FAIL")  # failed never turns succeeded
    with pytest.raises(ValueError, match="status 00"):
        await target.notify("WT-OK", failed=True)  # paid never turns failed
    with pytest.raises(ValueError, match="no transfer"):
        await target.notify("WT-NEVER")
    with pytest.raises(ValueError, match="kind"):
        await target.notify("WT-OK", "paid")
    assert sim.transfers["WT-FAIL"].status == "06"
    assert sim.transfers["WT-OK"].status == "00"
    assert len(sim.notifications) == 1


async def test_a_receiver_with_the_wrong_keys_never_acknowledges(
    setup: tuple[DokuSimulator, DokuClient, WebhookTarget],
) -> None:
    sim, doku, target = setup
    await receiver_for(sim, doku, target, encryption_keys="0000000000000000")
    await pay(doku, "WT-WRONG")
    delivery = await target.notify("WT-WRONG", "refund")
    assert not delivery.acknowledged
    assert delivery.responses == [401, 401]  # the first attempt and one retry
    assert sim.transfers["WT-WRONG"].status == "04"  # DOKU refunded anyway


async def test_nowhere_to_send_is_refused(
    setup: tuple[DokuSimulator, DokuClient, WebhookTarget],
) -> None:
    sim, doku, target = setup
    await pay(doku, "WT-NOWHERE")
    with pytest.raises(ValueError, match="no refund_url"):
        await target.notify("WT-NOWHERE", "refund")
    assert sim.transfers["WT-NOWHERE"].status == "00"  # the ledger did not move


async def test_a_manual_notification_replaces_the_delayed_one(creds: SimulatorCredentials) -> None:
    async with (
        asyncio.timeout(30),
        DokuSimulator(credentials=creds, notification_delay=0.2) as sim,
        client_for(sim) as doku,
    ):
        target = WebhookTarget(sim)
        try:
            await receiver_for(sim, doku, target)
            await pay(doku, "WT-EARLY", account=PENDING_ACCOUNT, bank="002")  # would fail later
            delivery = await target.notify("WT-EARLY")  # succeeded, now
            await sim.drain()  # the delayed follow-up has run by now
        finally:
            await target.close()
    assert delivery.body["transactionStatus"] == "50"
    assert sim.transfers["WT-EARLY"].status == "00"
    assert len(sim.notifications) == 1
