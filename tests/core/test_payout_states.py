"""Issue 13: states that never overstate. ``2004300`` is *accepted*; a payout is *succeeded*
only once DOKU confirms it; the states are named once (:class:`PayoutState`) and only move
forward."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from helpers import no_sleep

from doku_async import (
    Clocks,
    DokuClient,
    PayoutState,
    RetryPolicy,
    TransferFailedError,
    TransferResult,
)
from doku_async.testing import DokuSimulator, SimulatorCredentials

CUSTOMER = "628115678890"


@asynccontextmanager
async def running(
    creds: SimulatorCredentials, **client: Any
) -> AsyncIterator[tuple[DokuSimulator, DokuClient]]:
    async with (
        asyncio.timeout(20),
        DokuSimulator(credentials=creds, notification_delay=0.2) as sim,
        sim.client(
            retry=RetryPolicy(jitter=False), clocks=Clocks(sleep=no_sleep), **client
        ) as doku,
    ):
        yield sim, doku


async def pay(
    doku: DokuClient, ref: str, *, account: str = "8377388292", bank: str = "014", **kw: Any
) -> TransferResult:
    return await doku.kirim.transfer_bank(
        partner_reference_no=ref,
        customer_number=CUSTOMER,
        beneficiary_account_number=account,
        beneficiary_bank_code=bank,
        amount="150000.00",
        **kw,
    )


# --- the words, once ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "state"),
    [
        ("00", "succeeded"),
        ("01", "pending"),
        ("02", "pending"),
        ("03", "pending"),
        ("04", "refunded"),
        ("05", "failed"),
        ("06", "failed"),
        ("07", None),
        ("99", None),
    ],
)
def test_check_status_codes_map_to_one_state_each(code: str, state: str | None) -> None:
    assert PayoutState.from_check_status(code) == state


@pytest.mark.parametrize(
    ("status", "state"),
    [("50", "succeeded"), ("20", "pending"), ("35", "failed"), ("40", "refunded"), ("1", None)],
)
def test_notification_statuses_map_to_one_state_each(status: str, state: str | None) -> None:
    assert PayoutState.from_notification(status) == state


@pytest.mark.parametrize(
    ("current", "new", "advances"),
    [
        (None, "accepted", True),
        ("unknown", "accepted", True),
        ("accepted", "pending", True),
        ("accepted", "succeeded", True),
        ("pending", "failed", True),
        ("succeeded", "refunded", True),
        ("failed", "refunded", True),
        # An older or weaker piece of news never overwrites a newer one.
        ("pending", "accepted", False),
        ("succeeded", "pending", False),
        ("succeeded", "accepted", False),
        ("refunded", "succeeded", False),
        ("succeeded", "failed", False),
        ("failed", "succeeded", False),
        ("succeeded", "succeeded", False),
        ("accepted", "unknown", False),
    ],
)
def test_states_only_move_forward(current: str | None, new: str, advances: bool) -> None:
    assert PayoutState.advances(current, new) is advances


def test_the_open_and_settled_sets_cover_every_state() -> None:
    assert PayoutState.OPEN | PayoutState.SETTLED == PayoutState.ALL
    assert not PayoutState.OPEN & PayoutState.SETTLED


# --- transfer_bank confirms ----------------------------------------------------------------


async def test_an_ordinary_transfer_is_confirmed_succeeded(creds: SimulatorCredentials) -> None:
    async with running(creds) as (sim, doku):
        result = await pay(doku, "ST-OK")
        checks = sim.requests_for("check_status")
    assert result.status == PayoutState.SUCCEEDED
    assert result.succeeded
    assert result.response is not None  # DOKU's 2004300 answer is kept
    assert result.status_response is not None
    assert result.transaction_status == "00"
    assert len(checks) == 1  # what confirmation costs: one check status


async def test_the_failing_magic_account_is_never_reported_succeeded(
    creds: SimulatorCredentials,
) -> None:
    """Bank 002 and an account containing 12345: DOKU accepts, shows UNPAID, then fails."""
    async with running(creds) as (sim, doku):
        result = await pay(doku, "ST-FAIL", account="9912345001", bank="002")
        assert result.status == PayoutState.PENDING
        assert not result.succeeded
        await sim.drain()
        with pytest.raises(TransferFailedError) as info:
            await pay(doku, "ST-FAIL", account="9912345001", bank="002")
    assert info.value.transaction_status == "06"
    assert sim.transfer_count("ST-FAIL") == 1


async def test_without_confirmation_an_accepted_transfer_says_accepted(
    creds: SimulatorCredentials,
) -> None:
    async with running(creds, confirm_transfers=False) as (sim, doku):
        result = await pay(doku, "ST-ACC")
        per_call = await pay(doku, "ST-ACC-2", confirm=True)
        checks = sim.requests_for("check_status")
    assert result.status == PayoutState.ACCEPTED
    assert not result.succeeded
    assert result.status_response is None
    assert per_call.status == PayoutState.SUCCEEDED
    assert len(checks) == 1


async def test_an_unreachable_confirmation_leaves_it_accepted(creds: SimulatorCredentials) -> None:
    async with running(creds) as (sim, doku):
        sim.inject("check_status", "error", status=503, times=20)
        result = await pay(doku, "ST-NOCONF")
    assert result.status == PayoutState.ACCEPTED
    assert not result.succeeded
    assert sim.transfer_count("ST-NOCONF") == 1


async def test_a_refunded_reference_is_reported_refunded(creds: SimulatorCredentials) -> None:
    """The refund magic account: paid, then refunded; asking again about the reference (the
    same call repeated) reports it refunded: money moved and came back, not "nothing paid"."""
    async with running(creds) as (sim, doku):
        first = await pay(doku, "ST-REF", account="7746555134")
        assert first.status == PayoutState.SUCCEEDED
        await sim.drain()
        again = await pay(doku, "ST-REF", account="7746555134")
    assert again.status == PayoutState.REFUNDED
    assert not again.succeeded
    assert sim.transfer_count("ST-REF") == 1
