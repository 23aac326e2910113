"""The money rule, end to end: every unclear transfer is settled through check status, a resend
only ever reuses the original references, and the fake's ledger never shows a double payment.

Every test ends with :func:`assert_ledger_sane`: no partnerReferenceNo the SDK ever sent was
committed more than once.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
from fakedoku import FakeDoku, RecordedCall, serve
from helpers import CLIENT_ID, CLIENT_SECRET, SleepRecorder, header, make_client

from doku_async import (
    BadRequestError,
    Clocks,
    DokuClient,
    DokuConnectionError,
    DokuError,
    DokuTransportError,
    InsufficientFundsError,
    RetryPolicy,
    Timeouts,
    TransferOutcomeUnknownError,
    TransferResult,
)

CUSTOMER = "628115678890"
ACCOUNT = "8377388292"
PENDING_ACCOUNT = "9912345001"  # contains "12345": the fake keeps it pending ("03")
BANK = "014"
AMOUNT = "200000.00"


# ----------------------------------------------------------------------------- helpers


def body_ref(call: RecordedCall) -> str:
    ref = json.loads(call.body)["partnerReferenceNo"]
    assert isinstance(ref, str)
    return ref


def new_fake(keypair: tuple[bytes, bytes], **kwargs: Any) -> FakeDoku:
    return FakeDoku(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, public_key_pem=keypair[1], **kwargs
    )


@asynccontextmanager
async def running(
    fake: FakeDoku, keypair: tuple[bytes, bytes], **kwargs: Any
) -> AsyncIterator[DokuClient]:
    """A client against the fake. These tests pin the money rule's own sequence of calls, so
    the confirming check status after an accepted answer is off unless a test asks for it
    (``tests/core/test_payout_states.py`` covers it)."""
    kwargs.setdefault("confirm_transfers", False)
    async with (
        asyncio.timeout(20),
        serve(fake.app) as url,
        make_client(url, keypair, **kwargs) as client,
    ):
        yield client


async def pay(
    client: DokuClient,
    ref: str,
    *,
    account: str = ACCOUNT,
    amount: str = AMOUNT,
    session_id: str | None = None,
) -> TransferResult:
    return await client.kirim.transfer_bank(
        partner_reference_no=ref,
        customer_number=CUSTOMER,
        beneficiary_account_number=account,
        beneficiary_bank_code=BANK,
        amount=amount,
        session_id=session_id,
        beneficiary_account_name="FHILEA HERMANUS",
        remark="money rule",
    )


def assert_ledger_sane(fake: FakeDoku) -> None:
    """No reference the SDK sent was ever committed twice; the ledger matches the counts."""
    sent = {body_ref(call) for call in fake.calls_for("transfer_bank") if call.body}
    for ref in sent | set(fake.transfers):
        assert fake.transfers_count(ref) <= 1, ref
    for ref in fake.transfers:
        assert fake.transfers_count(ref) == 1, ref
    assert fake.errors == []


def assert_same_references(calls: list[RecordedCall]) -> None:
    """Every send of one transfer carried identical body bytes (so the same
    partnerReferenceNo, DOKU's idempotency key), each under its own X-EXTERNAL-ID: DOKU
    refuses a reused one with 409xx00 (issue 12, finding 9)."""
    assert len(calls) >= 2
    assert len({call.body for call in calls}) == 1
    assert len({header(call, "X-EXTERNAL-ID") for call in calls}) == len(calls)


# ----------------------------------------------------------------------------- unclear outcomes


async def test_drop_after_commit_settles_via_check_status(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    fake.inject("transfer_bank", "drop_after_commit")
    async with running(fake, keypair) as client:
        result = await pay(client, "drop-after")
    assert result.status == "succeeded"
    assert result.resent is False
    assert result.response is None  # the transfer's own answer never arrived
    assert result.status_response is not None
    assert result.transaction_status == "00"
    assert result.reference_no == fake.transfers["drop-after"].reference_no
    (sent,) = fake.calls_for("transfer_bank")
    assert sent.status == 0  # dropped
    (check,) = fake.calls_for("check_status")
    check_body = json.loads(check.body)
    assert check_body["originalPartnerReferenceNo"] == "drop-after"
    assert check_body["originalExternalId"] == header(sent, "X-EXTERNAL-ID")
    assert check_body["serviceCode"] == "43"
    assert fake.transfers_count("drop-after") == 1
    assert_ledger_sane(fake)


async def test_drop_before_commit_resends_with_same_references(
    keypair: tuple[bytes, bytes],
) -> None:
    fake = new_fake(keypair)
    fake.inject("transfer_bank", "drop_before_commit")
    async with running(fake, keypair) as client:
        result = await pay(client, "drop-before")
    assert result.status == "accepted"  # 2004300, confirmation off here
    assert result.resent is True
    assert result.response is not None
    assert result.response.response_code == "2004300"
    calls = fake.calls_for("transfer_bank")
    assert [c.status for c in calls] == [0, 200]
    assert_same_references(calls)
    assert body_ref(calls[0]) == "drop-before"
    assert result.external_id == header(calls[1], "X-EXTERNAL-ID")
    checks = fake.calls_for("check_status")
    assert len(checks) == 1
    assert checks[0].status == 200
    # Check status said "not found" before the resend.
    assert fake.calls.index(checks[0]) < fake.calls.index(calls[1])
    assert fake.transfers_count("drop-before") == 1
    assert_ledger_sane(fake)


@pytest.mark.parametrize(
    ("http_status", "code"),
    [(500, "5004300"), (504, "5044300"), (202, "2024300")],
)
@pytest.mark.parametrize(
    ("account", "expected"), [(ACCOUNT, ("succeeded", "00")), (PENDING_ACCOUNT, ("pending", "03"))]
)
async def test_http_after_commit_settles_via_check_status(
    keypair: tuple[bytes, bytes],
    http_status: int,
    code: str,
    account: str,
    expected: tuple[str, str],
) -> None:
    fake = new_fake(keypair)
    fake.inject("transfer_bank", "http_after_commit", http_status=http_status, response_code=code)
    ref = f"after-commit-{http_status}-{account}"
    async with running(fake, keypair) as client:
        result = await pay(client, ref, account=account)
    assert (result.status, result.transaction_status) == expected
    assert result.status_response is not None
    assert result.status_response.transaction_status == expected[1]
    assert result.resent is False
    assert [c.response_code for c in fake.calls_for("transfer_bank")] == [code]
    assert len(fake.calls_for("check_status")) == 1
    assert fake.transfers_count(ref) == 1
    assert_ledger_sane(fake)


async def test_attempt_timeout_then_late_commit_never_pays_twice(
    keypair: tuple[bytes, bytes],
) -> None:
    """The first send outlives the attempt timeout; check status does not find it yet, so the
    SDK resends with the same references. Whichever of the two commits first, the other one is
    a duplicate (same X-EXTERNAL-ID / partnerReferenceNo) and the ledger shows one payment."""
    fake = new_fake(keypair)
    fake.inject("transfer_bank", "delay", delay=0.6)
    outcome: TransferResult | TransferOutcomeUnknownError
    async with running(fake, keypair, timeouts=Timeouts(connect=1, attempt=0.3, total=5)) as client:
        try:
            outcome = await pay(client, "slow-1")
        except TransferOutcomeUnknownError as exc:
            outcome = exc
        await fake.settle()
    if isinstance(outcome, TransferResult):
        assert outcome.status == "accepted"  # the resend's 2004300
    else:
        assert outcome.partner_reference_no == "slow-1"
    calls = fake.calls_for("transfer_bank")
    assert len(calls) == 2
    assert_same_references(calls)
    assert fake.calls_for("check_status")[0].status == 200
    assert fake.transfers_count("slow-1") == 1
    assert fake.balance == Decimal("100000000.00") - Decimal(AMOUNT)
    assert_ledger_sane(fake)


async def test_late_commit_after_not_found_is_settled_as_duplicate(
    keypair: tuple[bytes, bytes],
) -> None:
    """The other order: check status does not find the slow first send, which then commits
    before the resend arrives. The resend is refused as a duplicate, and a second check status
    finds the original payment."""
    fake = new_fake(keypair)
    # Three orderings, each with a 0.4 s margin (a stall of the shared event loop must not
    # flip them): the first send times out (attempt 1.2 s) before it commits (1.6 s); check
    # status, asked at ~1.2 s, looks the transfer up at once ("07") and answers 0.8 s later,
    # after the commit (1.6 s) and well within its own attempt timeout (1.2 s). With the old
    # 0.45 s hold against a 0.5 s attempt, a 50 ms stall timed the check out: its retry found
    # the committed transfer and nothing was resent.
    fake.inject("transfer_bank", "delay", delay=1.6)
    fake.inject("check_status", "delay_after_commit", delay=0.8)
    async with running(fake, keypair, timeouts=Timeouts(connect=1, attempt=1.2, total=8)) as client:
        result = await pay(client, "late-1")
        await fake.settle()
    assert result.status == "succeeded"
    assert result.resent is True
    assert result.transaction_status == "00"
    calls = fake.calls_for("transfer_bank")
    assert len(calls) == 2
    assert_same_references(calls)
    assert calls[1].response_code.startswith("409")
    checks = fake.calls_for("check_status")
    assert len(checks) == 2
    assert fake.transfers_count("late-1") == 1
    assert_ledger_sane(fake)


async def test_deadline_before_resend_is_outcome_unknown(keypair: tuple[bytes, bytes]) -> None:
    """The first send times out (it is still in flight at DOKU), check status does not find it
    yet, and the operation's deadline is gone before the resend. The first send then commits.
    The SDK must not tell the caller the request was certainly not sent."""
    fake = new_fake(keypair)
    fake.inject("transfer_bank", "delay", delay=0.6)

    def clock() -> float:
        # Once check status has been asked, the operation's total deadline has passed.
        return time.monotonic() + (100.0 if fake.calls_for("check_status") else 0.0)

    outcome: BaseException | None = None
    async with running(
        fake,
        keypair,
        timeouts=Timeouts(connect=1, attempt=0.3, total=10),
        clocks=Clocks(monotonic=clock),
    ) as client:
        try:
            await pay(client, "deadline-1")
        except DokuError as exc:
            outcome = exc
        await fake.settle()
    assert fake.transfers_count("deadline-1") == 1  # the money moved
    assert_ledger_sane(fake)
    assert outcome is not None
    claims_not_sent = isinstance(outcome, DokuTransportError) and not outcome.request_sent
    assert not claims_not_sent, f"money moved but the SDK raised {outcome!r} ({outcome})"
    assert isinstance(outcome, TransferOutcomeUnknownError)


async def test_duplicate_partner_reference_is_idempotent(keypair: tuple[bytes, bytes]) -> None:
    """Paying an already-paid partnerReferenceNo again: DOKU answers 4094301, the SDK asks
    check status, finds the original payment ("00") and returns success for it. This is the
    SDK's idempotent behaviour: the reference is the idempotency key, so no second payment."""
    fake = new_fake(keypair)
    async with running(fake, keypair) as client:
        first = await pay(client, "A")
        again = await pay(client, "A")
    assert first.status == "accepted"  # 2004300, confirmation off here
    assert first.status_response is None
    assert again.status == "succeeded"
    assert again.status_response is not None
    assert again.transaction_status == "00"
    assert again.reference_no == first.reference_no
    assert again.resent is False
    assert [c.response_code for c in fake.calls_for("transfer_bank")] == ["2004300", "4094301"]
    assert len(fake.calls_for("check_status")) == 1
    assert fake.transfers_count("A") == 1
    assert_ledger_sane(fake)


async def test_reused_reference_for_a_different_transfer_is_reported_as_doku_records_it(
    keypair: tuple[bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12, finding 1: a reference DOKU reports paid is paid. Reusing it for another
    amount pays nothing new, and the SDK reports the reference as DOKU records it (paid, for
    200000.00) with the difference flagged: never "failed, nothing paid", which would invite
    an operator to pay again."""
    fake = new_fake(keypair)
    async with running(fake, keypair) as client:
        await pay(client, "reuse-1", amount="200000.00")
        outcome = await pay(client, "reuse-1", amount="500.00", account="1111111111")
    # Nothing new was paid: account 1111111111 never received 500.00.
    assert fake.transfers_count("reuse-1") == 1
    assert fake.transfers["reuse-1"].amount == "200000.00"
    assert fake.transfers["reuse-1"].beneficiary_account_number == ACCOUNT
    assert_ledger_sane(fake)
    assert outcome.transaction_status == "00"
    assert outcome.reported_amount == Decimal("200000.00")
    assert outcome.status_response is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("200000.00" in w and "500.00" in w and "reuse-1" in w for w in warnings)
    assert not any("nothing was paid" in w for w in warnings)


async def test_paid_reference_reported_with_the_fee_is_paid_and_flagged(
    keypair: tuple[bytes, bytes],
) -> None:
    """Issue 12, finding 1: check status may report the amount with DOKU's 4,500 fee. The
    transfer is paid; the difference is flagged, and the call is never an error."""
    fake = new_fake(keypair)
    async with running(fake, keypair) as client:
        first = await pay(client, "fee-1", amount="200000.00")
        fake.transfers["fee-1"].amount = "204500.00"  # as DOKU might report it, fee included
        again = await pay(client, "fee-1", amount="200000.00")
    assert first.reported_amount is None
    assert again.succeeded
    assert again.reported_amount == Decimal("204500.00")
    assert fake.transfers_count("fee-1") == 1


async def test_check_status_unavailable_gives_outcome_unknown(
    keypair: tuple[bytes, bytes],
) -> None:
    fake = new_fake(keypair)
    status_checks = RetryPolicy().status_checks
    fake.inject("transfer_bank", "drop_after_commit")
    fake.inject("check_status", "http", times=status_checks, http_status=500)
    async with running(fake, keypair) as client:
        with pytest.raises(TransferOutcomeUnknownError) as info:
            await pay(client, "unknown-1")
        err = info.value
        assert fake.pending_faults("check_status") == 0
        # Later, with check status healthy again, the original reference settles it.
        later = await client.kirim.check_status(
            original_partner_reference_no=err.partner_reference_no,
            original_external_id=err.external_id,
        )
    (sent,) = fake.calls_for("transfer_bank")
    assert err.partner_reference_no == "unknown-1"
    assert err.external_id == header(sent, "X-EXTERNAL-ID")
    assert err.references["partnerReferenceNo"] == "unknown-1"
    assert err.references["X-EXTERNAL-ID"] == err.external_id
    assert isinstance(err.last_error, DokuConnectionError)
    assert err.last_error.request_sent is True
    checks = fake.calls_for("check_status")
    assert [c.response_code for c in checks] == ["5005300"] * status_checks + ["2005300"]
    assert later.transaction_status == "00"
    assert fake.transfers_count("unknown-1") == 1
    assert_ledger_sane(fake)


async def test_rate_limited_transfer_resent_with_same_references(
    keypair: tuple[bytes, bytes],
) -> None:
    fake = new_fake(keypair)
    sleeps = SleepRecorder()
    fake.inject("transfer_bank", "http", times=2, http_status=429, response_code="4294300")
    async with running(fake, keypair, clocks=Clocks(sleep=sleeps)) as client:
        result = await pay(client, "limited-1")
    assert result.status == "accepted"  # 2004300, confirmation off here
    assert result.resent is False
    calls = fake.calls_for("transfer_bank")
    assert [c.response_code for c in calls] == ["4294300", "4294300", "2004300"]
    assert_same_references(calls)
    assert result.external_id == header(calls[-1], "X-EXTERNAL-ID")
    assert sleeps.calls == [0.5, 1.0]
    assert fake.calls_for("check_status") == []  # a 429 is a definite "not processed"
    assert fake.transfers_count("limited-1") == 1
    assert_ledger_sane(fake)


async def test_connection_refused_before_anything(keypair: tuple[bytes, bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = SleepRecorder()
    async with asyncio.timeout(20):
        async with make_client(
            f"http://127.0.0.1:{port}", keypair, clocks=Clocks(sleep=sleeps)
        ) as client:
            with pytest.raises(DokuConnectionError) as info:
                await pay(client, "refused-1")
            fetches = client.token_fetches
    err = info.value
    assert err.request_sent is False
    assert "access token" in err.message  # the token fetch failed; the transfer never left
    assert err.references["partnerReferenceNo"] == "refused-1"
    assert 1 <= fetches <= RetryPolicy().max_attempts
    # Every wait was a plain backoff; nothing hung on a settlement loop.
    assert all(0 < delay <= RetryPolicy().max_backoff for delay in sleeps.calls)


# ----------------------------------------------------------------------------- final rejections


async def test_insufficient_funds_is_final(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair, balance="100.00")
    async with running(fake, keypair) as client:
        with pytest.raises(InsufficientFundsError) as info:
            await pay(client, "poor-1", amount="200.00")
    assert info.value.case_code == "14"
    assert info.value.response_code == "4034314"
    assert info.value.references["partnerReferenceNo"] == "poor-1"
    assert len(fake.calls_for("transfer_bank")) == 1
    assert fake.calls_for("check_status") == []
    assert fake.transfers_count("poor-1") == 0
    assert fake.balance == Decimal("100.00")
    assert_ledger_sane(fake)


async def test_bad_request_is_final(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    fake.inject("transfer_bank", "http", http_status=400, response_code="4004302")
    async with running(fake, keypair) as client:
        with pytest.raises(BadRequestError) as info:
            await pay(client, "bad-1")
    assert (info.value.service_code, info.value.case_code) == ("43", "02")
    assert len(fake.calls_for("transfer_bank")) == 1
    assert fake.calls_for("check_status") == []
    assert fake.transfers_count("bad-1") == 0
    assert_ledger_sane(fake)


async def test_session_reuse_never_pays_the_second_transfer(keypair: tuple[bytes, bytes]) -> None:
    """4094302: the inquiry's sessionId already paid transfer A. Transfer B (a new reference)
    with the same session is refused; check status does not find B; the one allowed resend (same
    references) is refused again; the SDK gives up with TransferOutcomeUnknownError."""
    fake = new_fake(keypair)
    async with running(fake, keypair) as client:
        inquiry = await client.kirim.account_inquiry(
            partner_reference_no="inq-s",
            customer_number=CUSTOMER,
            beneficiary_account_number=ACCOUNT,
            beneficiary_bank_code=BANK,
            beneficiary_account_name="FHILEA HERMANUS",
            amount=AMOUNT,
        )
        assert inquiry.session_id
        first = await pay(client, "sess-A", session_id=inquiry.session_id)
        with pytest.raises(TransferOutcomeUnknownError) as info:
            await pay(client, "sess-B", session_id=inquiry.session_id)
    assert first.status == "accepted"  # 2004300, confirmation off here
    err = info.value
    assert err.partner_reference_no == "sess-B"
    b_calls = [c for c in fake.calls_for("transfer_bank") if body_ref(c) == "sess-B"]
    assert len(b_calls) == 2
    assert_same_references(b_calls)
    assert b_calls[0].response_code == "4094302"
    # The resend, under a fresh X-EXTERNAL-ID, still reuses the spent inquiry session: 4094302.
    assert b_calls[1].response_code.startswith("409")
    checks = fake.calls_for("check_status")
    assert len(checks) == 2
    assert all(json.loads(c.body)["originalPartnerReferenceNo"] == "sess-B" for c in checks)
    assert fake.transfers_count("sess-A") == 1
    assert fake.transfers_count("sess-B") == 0
    assert_ledger_sane(fake)


async def test_many_concurrent_transfers_each_paid_once(keypair: tuple[bytes, bytes]) -> None:
    """A mix of faults under concurrency: every reference ends up paid exactly once."""
    fake = new_fake(keypair)
    fake.inject("transfer_bank", "drop_after_commit", times=3)
    fake.inject("transfer_bank", "drop_before_commit", times=3)
    fake.inject("transfer_bank", "http_after_commit", times=3, http_status=504)
    refs = [f"batch-{n}" for n in range(20)]
    async with running(fake, keypair) as client:
        results = await asyncio.gather(*(pay(client, ref, amount="1000.00") for ref in refs))
    assert [r.status for r in results] == [
        "succeeded" if r.status_response is not None else "accepted" for r in results
    ]
    assert [r.partner_reference_no for r in results] == refs
    for ref in refs:
        assert fake.transfers_count(ref) == 1
    assert fake.balance == Decimal("100000000.00") - 20 * Decimal("1000.00")
    assert_ledger_sane(fake)


async def test_external_id_already_used_is_never_resent(keypair: tuple[bytes, bytes]) -> None:
    """409xx00 (X-EXTERNAL-ID used today) is never answered by resending that X-EXTERNAL-ID:
    when check status does not find the transfer, the outcome is reported unknown."""
    fake = new_fake(keypair)
    fake.inject("transfer_bank", "http", http_status=409, response_code="4094300")
    async with running(fake, keypair) as client:
        with pytest.raises(TransferOutcomeUnknownError) as info:
            await pay(client, "EXT-SPENT")
    assert len(fake.calls_for("transfer_bank")) == 1
    assert len(fake.calls_for("check_status")) == 1
    sent = fake.calls_for("transfer_bank")[0]
    assert info.value.external_id == header(sent, "X-EXTERNAL-ID")
    assert info.value.partner_reference_no == "EXT-SPENT"
    assert "X-EXTERNAL-ID" in info.value.message
    assert fake.transfers_count("EXT-SPENT") == 0
    assert_ledger_sane(fake)
