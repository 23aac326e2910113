"""End-to-end tests of the Non-SNAP products (Payout Link, sub-account Transfers, RDL).

The SDK talks to ``FakeNonSnap``, an independent server that re-derives DOKU's Non-SNAP
signature, signs its answers, replays a repeated ``Request-Id`` with HTTP 409 and injects faults.
Every money test ends with the fake's count of committed effects for the business key: money
moved at most once, exactly once where it moved.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from fake_nonsnap import PAYOUT_STATES, FakeNonSnap, RecordedCall, non_snap_signature, serve
from helpers import CLIENT_ID, CLIENT_SECRET, make_client, no_sleep

from doku_async import (
    AuthenticationError,
    BadRequestError,
    BusinessRejectionError,
    Clocks,
    DokuClient,
    DokuError,
    DuplicateRequestError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    SignatureVerificationError,
    Timeouts,
    TransferOutcomeUnknownError,
)
from doku_async.models._nonsnap import NonSnapResponse
from doku_async.models.payout_link import PayoutLinkResponse, PayoutLinkStatus
from doku_async.models.rdl import RdlDisbursementResponse
from doku_async.models.transfers import TransferCreateResponse

KeyPair = tuple[bytes, bytes]

MONEY_OPS = ("transfer", "rdl", "payout_initiate")
MAX_ATTEMPTS = RetryPolicy().max_attempts  # 4; the Non-SNAP flow uses the client's policy
TIMESTAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")

# The known-answer vector of doku-protocol.md ("Known-answer vectors", Non-SNAP).
VECTOR_CLIENT_ID = "MCH-0001-10791114622547"
VECTOR_SECRET = "SK-TEST-SECRET"
VECTOR_REQUEST_ID = "b6a465ea-bb65-48b2-a22b-3e8fb51cf22e"
VECTOR_TIMESTAMP = "2020-08-11T08:45:42Z"
VECTOR_EPOCH = datetime(2020, 8, 11, 8, 45, 42, tzinfo=UTC).timestamp()
VECTOR_BODY = (
    b'{"transfer":{"origin":"SAC-0000-0000000000001","destination":"SAC-8014-1628130619289",'
    b'"amount":10000,"invoice_number":"INV/7274812"}}'
)
VECTOR_SIGNATURE = "HMACSHA256=Pu/GrPxA8o8FABcVqPrCHdJ5xgDXCzozfUxTTgiKdMQ="

# The request body of the RDL seed page, minified.
RDL_SEED_BODY = (
    b'{"transaction":{"id":"transaksi-sandbox-01","amount":300000000,"description":"testuat"},'
    b'"source_account":{"account_id":"2340211124151729152107164433893000196019"},'
    b'"account_destination":{"code":"BNINIDJA","account_bank_number":"0115471119",'
    b'"account_bank_name":"pk ROBERT NARO ROBERT NARO","address":"JAKARTA"}}'
)

KEYS = {"transfer": "INV/7274812", "rdl": "transaksi-sandbox-01", "payout_initiate": "REF-0001"}


# --------------------------------------------------------------------------- helpers


def payout_args(reference_id: str = "REF-0001", **over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "reference_id": reference_id,
        "amount": Decimal("150000.50"),
        "sender_name": "PT Maju Jaya",
        "receiver_name": "Budi Santoso",
        "receiver_phone_number": "6281234567890",
        "receiver_email": "budi@example.com",
        "description": "Bonus Q3",
        "currency": "IDR",
    }
    args.update(over)
    return args


def transfer_args(invoice_number: str = "INV/7274812", **over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "origin": "SAC-0000-0000000000001",
        "destination": "SAC-8014-1628130619289",
        "amount": 10000,
        "invoice_number": invoice_number,
    }
    args.update(over)
    return args


def rdl_args(transaction_id: str = "transaksi-sandbox-01", **over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "transaction_id": transaction_id,
        "amount": 300_000_000,
        "description": "testuat",
        "source_account_id": "2340211124151729152107164433893000196019",
        "destination_bank_code": "BNINIDJA",
        "destination_account_number": "0115471119",
        "destination_account_name": "pk ROBERT NARO ROBERT NARO",
        "destination_address": "JAKARTA",
    }
    args.update(over)
    return args


async def money_call(doku: DokuClient, op: str, key: str, **over: Any) -> NonSnapResponse:
    """Run one money-moving operation of ``op`` with business key ``key``."""
    if op == "transfer":
        return await doku.transfers.create(**transfer_args(key, **over))
    if op == "rdl":
        return await doku.rdl.disburse(**rdl_args(key, **over))
    assert op == "payout_initiate"
    return await doku.payout_links.initiate(**payout_args(key, **over))


def result_key(resp: NonSnapResponse) -> str | None:
    """The business key echoed in an answer."""
    if isinstance(resp, TransferCreateResponse):
        return resp.transfer.invoice_number if resp.transfer is not None else None
    if isinstance(resp, RdlDisbursementResponse):
        return resp.transaction.id if resp.transaction is not None else None
    assert isinstance(resp, PayoutLinkResponse)
    return resp.data.reference_id if resp.data is not None else None


def request_ids(calls: list[RecordedCall]) -> set[str]:
    return {call.headers["Request-Id"] for call in calls}


@asynccontextmanager
async def running(fake: FakeNonSnap, keypair: KeyPair, **kwargs: Any) -> AsyncIterator[DokuClient]:
    """Serve ``fake`` and yield a client for it (responses must be signed unless overridden)."""
    kwargs.setdefault("response_signatures", "required")
    async with serve(fake.app) as url, make_client(url, keypair, **kwargs) as doku:
        yield doku
    assert fake.errors == []


def new_fake(**kwargs: Any) -> FakeNonSnap:
    return FakeNonSnap(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, **kwargs)


def assert_headers(call: RecordedCall, *, algorithm: str = "SHA256") -> None:
    assert call.headers["Client-Id"] == CLIENT_ID
    assert TIMESTAMP_RE.fullmatch(call.headers["Request-Timestamp"])
    assert call.headers["Request-Timestamp"].endswith("Z")
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["Signature"].startswith(f"HMAC{algorithm}=")
    assert 1 <= len(call.headers["Request-Id"]) <= 128


# --------------------------------------------------------------------------- 1. end to end


async def test_payout_link_initiate_then_status(keypair: KeyPair) -> None:
    fake = new_fake()
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        created = await doku.payout_links.initiate(**payout_args("REF-0001"))
        status = await doku.payout_links.status(reference_id="REF-0001")

    initiate_calls = fake.calls_for("payout_initiate")
    status_calls = fake.calls_for("payout_status")
    assert len(initiate_calls) == 1
    assert len(status_calls) == 1
    for call in fake.calls:
        assert_headers(call)
    # One fresh Request-Id per operation, reported on the result.
    assert created.request_id == initiate_calls[0].headers["Request-Id"]
    assert status.request_id == status_calls[0].headers["Request-Id"]
    assert created.request_id != status.request_id

    # The amount is an exact JSON number with two decimals, in the raw bytes.
    raw = initiate_calls[0].body
    assert b'"amount":150000.50,' in raw
    sent = json.loads(raw, parse_float=Decimal)
    assert sent == {
        "amount": Decimal("150000.50"),
        "sender_name": "PT Maju Jaya",
        "receiver_name": "Budi Santoso",
        "receiver_phone_number": "6281234567890",
        "receiver_email": "budi@example.com",
        "reference_id": "REF-0001",
        "description": "Bonus Q3",
        "currency": "IDR",
    }
    assert status_calls[0].body == b'{"transaction_id":"REF-0001"}'

    assert created.replayed is False
    assert created.resolved_by_status is False
    assert created.data is not None
    assert created.data.reference_id == "REF-0001"
    assert created.data.transaction_id == fake.payout_links["REF-0001"]["transaction_id"]
    assert created.link_status == PayoutLinkStatus.PENDING
    assert created.data.amount == Decimal("150000.50")

    assert status.data is not None
    assert status.data.reference_id == "REF-0001"
    assert status.data.transaction_id == created.data.transaction_id
    assert status.link_status == "PENDING"
    assert status.data.state == PAYOUT_STATES["PENDING"]
    assert status.data.is_terminal is False
    assert status.replayed is False
    assert fake.effects_count("payout_initiate", "REF-0001") == 1


@pytest.mark.parametrize(
    ("amount", "wire"),
    [
        (Decimal("150000.50"), b"150000.50"),
        (150000, b"150000.00"),
        ("99.9", b"99.90"),
        (Decimal("1.000"), b"1.00"),
        (Decimal("0.01"), b"0.01"),
        (Decimal("9999999999999999.99"), b"9999999999999999.99"),
    ],
)
async def test_payout_amount_is_an_exact_json_number(
    keypair: KeyPair, amount: Decimal | int | str, wire: bytes
) -> None:
    fake = new_fake()
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        created = await doku.payout_links.initiate(**payout_args("REF-AMT", amount=amount))
    (call,) = fake.calls_for("payout_initiate")
    assert call.body.startswith(b'{"amount":' + wire + b",")
    assert created.data is not None
    assert created.data.amount == Decimal(wire.decode())
    assert fake.payout_links["REF-AMT"]["amount"] == Decimal(wire.decode())
    assert fake.effects_count("payout_initiate", "REF-AMT") == 1


async def test_transfer_end_to_end_with_caller_request_id(keypair: KeyPair) -> None:
    fake = new_fake(balance=50_000)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        result = await doku.transfers.create(**transfer_args(), request_id="my-request-0001")

    (call,) = fake.calls_for("transfer")
    assert_headers(call)
    assert call.headers["Request-Id"] == "my-request-0001"
    assert result.request_id == "my-request-0001"
    assert b'"amount":10000,' in call.body  # a JSON integer, no decimals, no quotes
    assert result.replayed is False
    assert result.transfer is not None
    assert result.transfer.invoice_number == "INV/7274812"
    assert result.transfer.status == "SUCCESS"
    assert result.transfer.amount == 10000
    assert result.transfer.origin == "SAC-0000-0000000000001"
    assert fake.balance == 40_000
    assert fake.effects_count("transfer", "INV/7274812") == 1


def vector_client(url: str) -> DokuClient:
    """A client with the vector's credentials and a clock frozen at the vector's time."""
    return DokuClient(
        VECTOR_CLIENT_ID,
        VECTOR_SECRET,
        base_url=url,
        response_signatures="required",
        timeouts=Timeouts(connect=2.0, attempt=2.0, total=10.0),
        retry=RetryPolicy(jitter=False),
        clocks=Clocks(sleep=no_sleep, wall=lambda: VECTOR_EPOCH),
    )


@pytest.mark.parametrize("amount", [10000, Decimal("10000"), "10000", Decimal("10000.00")])
async def test_transfer_body_is_byte_identical_to_the_protocol_vector(
    amount: int | Decimal | str,
) -> None:
    """With the vector's client, Request-Id and clock, body and Signature match the page."""
    fake = FakeNonSnap(client_id=VECTOR_CLIENT_ID, client_secret=VECTOR_SECRET)
    async with asyncio.timeout(20), serve(fake.app) as url, vector_client(url) as doku:
        result = await doku.transfers.create(
            **transfer_args(amount=amount), request_id=VECTOR_REQUEST_ID
        )
    (call,) = fake.calls_for("transfer")
    assert call.body == VECTOR_BODY
    assert call.headers["Request-Timestamp"] == VECTOR_TIMESTAMP
    assert call.headers["Request-Id"] == VECTOR_REQUEST_ID
    assert call.headers["Client-Id"] == VECTOR_CLIENT_ID
    assert call.headers["Signature"] == VECTOR_SIGNATURE
    assert call.status == 200
    assert result.transfer is not None
    assert result.transfer.amount == 10000
    assert fake.errors == []
    assert fake.effects_count("transfer", "INV/7274812") == 1


async def test_rdl_end_to_end(keypair: KeyPair) -> None:
    fake = new_fake()
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        result = await doku.rdl.disburse(**rdl_args())

    (call,) = fake.calls_for("rdl")
    assert_headers(call)
    assert call.body == RDL_SEED_BODY  # key order as documented, amount a JSON integer
    assert result.request_id == call.headers["Request-Id"]
    assert result.replayed is False
    assert result.transaction is not None
    assert result.transaction.id == "transaksi-sandbox-01"
    assert result.transaction.amount == 300_000_000
    assert result.transaction.status == "PENDING"
    assert result.source_account == {"account_id": "2340211124151729152107164433893000196019"}
    assert result.account_destination is not None
    assert result.account_destination["code"] == "BNINIDJA"
    assert fake.effects_count("rdl", "transaksi-sandbox-01") == 1


async def test_each_operation_gets_its_own_request_id(keypair: KeyPair) -> None:
    fake = new_fake()
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        await doku.transfers.create(**transfer_args("INV/1"))
        await doku.transfers.create(**transfer_args("INV/2"))
        await doku.rdl.disburse(**rdl_args("TRX-1"))
        await doku.payout_links.initiate(**payout_args("REF-1"))
        await doku.payout_links.status(reference_id="REF-1", request_id="status-rid-1")
    ids = [call.headers["Request-Id"] for call in fake.calls]
    assert len(ids) == 5
    assert len(set(ids)) == 5
    assert ids[-1] == "status-rid-1"
    assert fake.effects_count("transfer", "INV/1") == 1
    assert fake.effects_count("transfer", "INV/2") == 1
    assert fake.effects_count("rdl", "TRX-1") == 1
    assert fake.effects_count("payout_initiate", "REF-1") == 1


# --------------------------------------------------------------------------- 2. SHA-512 links


async def test_payout_link_sha512_scheme(keypair: KeyPair) -> None:
    fake = new_fake(payout_link_scheme="sha512")
    async with asyncio.timeout(20), running(fake, keypair, payout_link_signature="sha512") as doku:
        created = await doku.payout_links.initiate(**payout_args("REF-512"))
        status = await doku.payout_links.status(reference_id="REF-512")
        # The other products keep the SHA-256 scheme.
        await doku.transfers.create(**transfer_args("INV/512"))
    for call in fake.calls_for("payout_initiate") + fake.calls_for("payout_status"):
        assert_headers(call, algorithm="SHA512")
        assert call.status == 200
    assert_headers(fake.calls_for("transfer")[0], algorithm="SHA256")
    assert created.link_status == "PENDING"
    assert status.link_status == "PENDING"
    assert fake.effects_count("payout_initiate", "REF-512") == 1
    assert fake.effects_count("transfer", "INV/512") == 1


@pytest.mark.parametrize(
    ("client_scheme", "server_scheme"), [("sha256", "sha512"), ("sha512", "sha256")]
)
async def test_payout_link_scheme_mismatch_is_an_authentication_error(
    keypair: KeyPair, client_scheme: str, server_scheme: str
) -> None:
    fake = new_fake(payout_link_scheme=server_scheme)
    async with (
        asyncio.timeout(20),
        running(
            fake, keypair, payout_link_signature=client_scheme, response_signatures="off"
        ) as doku,
    ):
        with pytest.raises(AuthenticationError) as info:
            await doku.payout_links.initiate(**payout_args("REF-MIS"))
    assert info.value.http_status == 401
    assert len(fake.calls) == 1  # a definite rejection is not resent
    assert fake.calls[0].status == 401
    assert fake.payout_links == {}
    assert fake.effects_count("payout_initiate", "REF-MIS") == 0


async def test_payout_link_scheme_mismatch_with_verified_answers_still_fails(
    keypair: KeyPair,
) -> None:
    """With answers verified, DOKU's 401 signed under the other scheme cannot be trusted
    either: the call fails (never a success) and nothing moved."""
    fake = new_fake(payout_link_scheme="sha512")
    async with (
        asyncio.timeout(20),
        running(fake, keypair, response_signatures="if_present") as doku,
    ):
        with pytest.raises((AuthenticationError, SignatureVerificationError)):
            await doku.payout_links.initiate(**payout_args("REF-MIS"))
    assert len(fake.calls) == 1
    assert fake.effects_count("payout_initiate", "REF-MIS") == 0


# --------------------------------------------------------------------------- 3. replay


async def test_same_request_id_same_body_is_a_replay(keypair: KeyPair) -> None:
    fake = new_fake()
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        first = await doku.transfers.create(**transfer_args(), request_id="fixed-1")
        second = await doku.transfers.create(**transfer_args(), request_id="fixed-1")
    assert first.replayed is False
    assert second.replayed is True
    assert second.request_id == first.request_id == "fixed-1"
    assert second.transfer == first.transfer
    assert second.transfer is not None
    assert second.transfer.invoice_number == "INV/7274812"
    calls = fake.calls_for("transfer")
    assert [call.status for call in calls] == [200, 409]
    assert calls[0].body == calls[1].body
    assert fake.balance == 10_000_000_000 - 10000
    assert fake.effects_count("transfer", "INV/7274812") == 1


@pytest.mark.parametrize("op", ["rdl", "payout_initiate"])
async def test_replay_for_rdl_and_payout(keypair: KeyPair, op: str) -> None:
    fake = new_fake()
    key = KEYS[op]
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        first = await money_call(doku, op, key, request_id="fixed-2")
        second = await money_call(doku, op, key, request_id="fixed-2")
    assert (first.replayed, second.replayed) == (False, True)
    assert result_key(first) == result_key(second) == key
    assert [call.status for call in fake.calls_for(op)] == [200, 409]
    assert fake.effects_count(op, key) == 1


async def test_same_request_id_different_body_is_a_duplicate(keypair: KeyPair) -> None:
    fake = new_fake()
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        await doku.transfers.create(**transfer_args(), request_id="fixed-1")
        with pytest.raises(DuplicateRequestError) as info:
            await doku.transfers.create(**transfer_args(amount=20000), request_id="fixed-1")
    assert info.value.http_status == 409
    assert info.value.references["Request-Id"] == "fixed-1"
    assert info.value.references["invoice_number"] == "INV/7274812"
    assert len(fake.calls_for("transfer")) == 2  # not resent
    assert fake.balance == 10_000_000_000 - 10000
    assert fake.effects_count("transfer", "INV/7274812") == 1


async def test_same_invoice_under_new_request_id_is_a_duplicate(keypair: KeyPair) -> None:
    fake = new_fake()
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        await doku.transfers.create(**transfer_args())
        with pytest.raises(DuplicateRequestError) as info:
            await doku.transfers.create(**transfer_args())
    calls = fake.calls_for("transfer")
    assert len(calls) == 2
    assert len(request_ids(calls)) == 2
    assert info.value.references["Request-Id"] == calls[1].headers["Request-Id"]
    assert info.value.http_status == 409
    assert fake.effects_count("transfer", "INV/7274812") == 1


async def test_same_business_key_under_new_request_id_is_a_duplicate(keypair: KeyPair) -> None:
    """RDL has no status call to settle a 409 with: the duplicate is raised as such."""
    fake = new_fake()
    key = KEYS["rdl"]
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        await money_call(doku, "rdl", key)
        with pytest.raises(DuplicateRequestError):
            await money_call(doku, "rdl", key)
    assert len(fake.calls_for("rdl")) == 2
    assert fake.effects_count("rdl", key) == 1


async def test_finding6_payout_link_409_for_a_known_reference_settles_through_status(
    keypair: KeyPair,
) -> None:
    """Issue 12, finding 6: a Payout Link whose reference DOKU already holds with the same
    details (an earlier run, or an attempt whose answer was lost) is that payout link: the
    SDK settles the 409 through the status call instead of raising DuplicateRequestError."""
    fake = new_fake()
    key = KEYS["payout_initiate"]
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        first = await money_call(doku, "payout_initiate", key)
        again = await money_call(doku, "payout_initiate", key)
    assert isinstance(again, PayoutLinkResponse)
    assert again.resolved_by_status is True
    assert again.data is not None
    assert isinstance(first, PayoutLinkResponse)
    assert first.data is not None
    assert again.data.reference_id == first.data.reference_id
    assert fake.effects_count("payout_initiate", key) == 1
    assert len(fake.calls_for("payout_status")) == 1


async def test_finding6_payout_link_lost_answer_then_409_settles_through_status(
    keypair: KeyPair,
) -> None:
    """The answer of the first attempt is lost after DOKU created the link; the retry under a
    new Request-Id (a crash and a re-run) gets 409: settled as the link DOKU holds."""
    fake = new_fake()
    key = KEYS["payout_initiate"]
    fake.inject("payout_initiate", "drop_after_commit", times=MAX_ATTEMPTS)
    fake.inject("payout_status", "http", http_status=503, times=MAX_ATTEMPTS)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        with pytest.raises(TransferOutcomeUnknownError):
            await money_call(doku, "payout_initiate", key, request_id="lost-1")
        assert fake.pending_faults("payout_status") == 0
        again = await money_call(doku, "payout_initiate", key, request_id="rerun-2")
    assert isinstance(again, PayoutLinkResponse)
    assert again.resolved_by_status is True
    assert fake.effects_count("payout_initiate", key) == 1


async def test_replay_of_a_rejected_request_keeps_the_original_errors(keypair: KeyPair) -> None:
    """DOKU replays a stored 4xx answer with 409 too: the SDK cannot call it a result; it
    raises DuplicateRequestError carrying the original errors, and nothing moved."""
    fake = new_fake(balance=5000)
    fake.inject("transfer", "drop_after_commit")  # the 400 is stored, then the line drops
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        with pytest.raises(DuplicateRequestError) as info:
            await doku.transfers.create(**transfer_args())
    assert info.value.details == [{"field": "transfer.amount", "message": "insufficient balance"}]
    assert len(request_ids(fake.calls_for("transfer"))) == 1
    assert fake.balance == 5000
    assert fake.effects_count("transfer", "INV/7274812") == 0


# --------------------------------------------------------------------------- 4. unclear outcomes


@pytest.mark.parametrize("op", MONEY_OPS)
@pytest.mark.parametrize(
    ("fault", "http_status"),
    [
        ("drop_after_commit", None),
        ("http_after_commit", 500),
        ("http_after_commit", 408),
        ("http_after_commit", 503),
    ],
)
async def test_unclear_after_commit_is_resent_and_replayed(
    keypair: KeyPair, op: str, fault: str, http_status: int | None
) -> None:
    fake = new_fake()
    key = KEYS[op]
    fake.inject(op, fault, http_status=http_status)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        result = await money_call(doku, op, key)
    calls = fake.calls_for(op)
    assert len(calls) == 2
    assert request_ids(calls) == {result.request_id}
    assert calls[0].body == calls[1].body  # encoded once, sent identically
    assert calls[0].status == (http_status or 0)
    assert calls[1].status == 409
    assert result.replayed is True
    assert result.resolved_by_status is False
    assert result_key(result) == key
    assert fake.calls_for("payout_status") == []
    assert fake.effects_count(op, key) == 1


@pytest.mark.parametrize("op", MONEY_OPS)
async def test_drop_before_commit_is_resent_and_succeeds(keypair: KeyPair, op: str) -> None:
    fake = new_fake()
    key = KEYS[op]
    fake.inject(op, "drop_before_commit")
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        result = await money_call(doku, op, key)
    calls = fake.calls_for(op)
    assert [call.status for call in calls] == [0, 200]
    assert request_ids(calls) == {result.request_id}
    assert calls[0].body == calls[1].body
    assert result.replayed is False
    assert result_key(result) == key
    assert fake.effects_count(op, key) == 1


async def test_payout_initiate_lost_answers_are_resolved_by_status(keypair: KeyPair) -> None:
    fake = new_fake()
    fake.inject("payout_initiate", "http_after_commit")
    fake.inject("payout_initiate", "http", times=10)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        result = await doku.payout_links.initiate(**payout_args("REF-LOST"))
    initiate_calls = fake.calls_for("payout_initiate")
    status_calls = fake.calls_for("payout_status")
    assert len(initiate_calls) == MAX_ATTEMPTS
    assert all(call.status == 500 for call in initiate_calls)
    assert len(request_ids(initiate_calls)) == 1
    assert len({call.body for call in initiate_calls}) == 1
    assert len(status_calls) == 1
    assert status_calls[0].body == b'{"transaction_id":"REF-LOST"}'
    assert result.resolved_by_status is True
    assert result.replayed is False
    assert result.request_id == initiate_calls[0].headers["Request-Id"]
    assert result.data is not None
    assert result.data.reference_id == "REF-LOST"
    assert result.link_status == "PENDING"
    assert fake.pending_faults("payout_initiate") == 10 - (MAX_ATTEMPTS - 1)
    assert fake.effects_count("payout_initiate", "REF-LOST") == 1


async def test_payout_initiate_never_committed_and_unknown_to_status(keypair: KeyPair) -> None:
    """5xx on every attempt and the status call does not know the link: still unclear, so
    TransferOutcomeUnknownError (never a silent failure, never a new Request-Id)."""
    fake = new_fake()
    fake.inject("payout_initiate", "http", times=10)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        with pytest.raises(TransferOutcomeUnknownError) as info:
            await doku.payout_links.initiate(**payout_args("REF-NONE"))
    initiate_calls = fake.calls_for("payout_initiate")
    assert len(request_ids(initiate_calls)) == 1
    assert info.value.request_id == initiate_calls[0].headers["Request-Id"]
    assert info.value.references["reference_id"] == "REF-NONE"
    assert len(fake.calls_for("payout_status")) == 1
    assert fake.effects_count("payout_initiate", "REF-NONE") == 0


@pytest.mark.parametrize("op", ["transfer", "rdl"])
async def test_lost_answers_without_status_call_are_outcome_unknown(
    keypair: KeyPair, op: str
) -> None:
    fake = new_fake()
    key = KEYS[op]
    fake.inject(op, "http_after_commit")
    fake.inject(op, "http", times=10)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        with pytest.raises(TransferOutcomeUnknownError) as info:
            await money_call(doku, op, key)
    calls = fake.calls_for(op)
    assert len(calls) == MAX_ATTEMPTS
    assert len(request_ids(calls)) == 1
    assert len({call.body for call in calls}) == 1
    assert info.value.request_id == calls[0].headers["Request-Id"]
    assert info.value.references["Request-Id"] == calls[0].headers["Request-Id"]
    assert isinstance(info.value.last_error, ServerError)
    assert info.value.last_error.http_status == 500
    assert info.value.partner_reference_no == ""
    assert len(fake.calls) == MAX_ATTEMPTS  # no status call or anything else was tried
    assert fake.effects_count(op, key) == 1


@pytest.mark.parametrize("op", ["transfer", "rdl"])
async def test_outcome_unknown_settles_by_resending_the_same_request_id(
    keypair: KeyPair, op: str
) -> None:
    """The advice in TransferOutcomeUnknownError works: a later resend with its request_id
    gets DOKU's replay, not a second payout."""
    fake = new_fake()
    key = KEYS[op]
    fake.inject(op, "http_after_commit")
    fake.inject(op, "http", times=MAX_ATTEMPTS - 1)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        with pytest.raises(TransferOutcomeUnknownError) as info:
            await money_call(doku, op, key)
        assert fake.pending_faults(op) == 0
        later = await money_call(doku, op, key, request_id=info.value.request_id)
    assert later.replayed is True
    assert later.request_id == info.value.request_id
    assert result_key(later) == key
    assert len(request_ids(fake.calls_for(op))) == 1
    assert fake.effects_count(op, key) == 1


async def test_transfer_5xx_before_commit_is_still_outcome_unknown(keypair: KeyPair) -> None:
    fake = new_fake()
    fake.inject("transfer", "http", times=10)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        with pytest.raises(TransferOutcomeUnknownError) as info:
            await doku.transfers.create(**transfer_args())
    assert info.value.references["invoice_number"] == "INV/7274812"
    assert isinstance(info.value.last_error, ServerError)
    assert len(request_ids(fake.calls_for("transfer"))) == 1
    assert fake.effects_count("transfer", "INV/7274812") == 0


async def test_rate_limit_honours_retry_after_and_keeps_request_id(keypair: KeyPair) -> None:
    fake = new_fake()
    fake.inject("transfer", "http", http_status=429, retry_after="2")
    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with (
        asyncio.timeout(20),
        running(fake, keypair, clocks=Clocks(sleep=record_sleep)) as doku,
    ):
        result = await doku.transfers.create(**transfer_args())
    calls = fake.calls_for("transfer")
    assert [call.status for call in calls] == [429, 200]
    assert request_ids(calls) == {result.request_id}
    assert sleeps == [2.0]
    assert result.replayed is False
    assert fake.effects_count("transfer", "INV/7274812") == 1


async def test_rate_limit_exhausted_is_not_an_unknown_outcome(keypair: KeyPair) -> None:
    """429 means DOKU did not take the request: when it persists, RateLimitError (definite)."""
    fake = new_fake()
    fake.inject("transfer", "http", http_status=429, retry_after="1", times=10)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        with pytest.raises(RateLimitError) as info:
            await doku.transfers.create(**transfer_args())
    assert info.value.retry_after == 1.0
    assert len(fake.calls_for("transfer")) == MAX_ATTEMPTS
    assert fake.effects_count("transfer", "INV/7274812") == 0


@pytest.mark.parametrize("op", MONEY_OPS)
async def test_answer_slower_than_the_attempt_timeout(keypair: KeyPair, op: str) -> None:
    fake = new_fake()
    key = KEYS[op]
    fake.inject(op, "delay", delay=0.6)
    timeouts = Timeouts(connect=1, attempt=0.3, total=5)
    async with asyncio.timeout(20), running(fake, keypair, timeouts=timeouts) as doku:
        result = await money_call(doku, op, key)
        await fake.settle()
    calls = fake.calls_for(op)
    assert len(calls) >= 2
    assert request_ids(calls) == {result.request_id}
    assert len({call.body for call in calls}) == 1
    assert result_key(result) == key
    assert fake.effects_count(op, key) == 1


# --------------------------------------------------------------------------- 5. answer signatures


async def _forged_call(doku: DokuClient, fake: FakeNonSnap, op: str) -> NonSnapResponse:
    if op == "payout_status":
        await doku.payout_links.initiate(**payout_args("REF-ST"))
        fake.forge_next_response_signature()
        return await doku.payout_links.status(reference_id="REF-ST")
    fake.forge_next_response_signature()
    return await money_call(doku, op, KEYS[op])


@pytest.mark.parametrize("mode", ["required", "if_present"])
@pytest.mark.parametrize("op", [*MONEY_OPS, "payout_status"])
async def test_forged_answer_signature_is_rejected(keypair: KeyPair, mode: str, op: str) -> None:
    fake = new_fake()
    async with asyncio.timeout(20), running(fake, keypair, response_signatures=mode) as doku:
        with pytest.raises(SignatureVerificationError) as info:
            await _forged_call(doku, fake, op)
        calls = fake.calls_for(op)
        assert len(calls) == 1  # an untrusted answer is not silently retried
        sent = calls[0].headers["Request-Id"]
        assert info.value.references["Request-Id"] == sent
        if op == "payout_status":
            assert info.value.references["reference_id"] == "REF-ST"
            assert fake.effects_count("payout_initiate", "REF-ST") == 1
            return
        # The forged answer reported a committed effect; resending the same Request-Id
        # gets DOKU's (now genuine) replay instead of a second payout.
        again = await money_call(doku, op, KEYS[op], request_id=sent)
    assert again.replayed is True
    assert fake.effects_count(op, KEYS[op]) == 1


@pytest.mark.parametrize("op", [*MONEY_OPS, "payout_status"])
async def test_forged_answer_accepted_when_verification_is_off(keypair: KeyPair, op: str) -> None:
    fake = new_fake()
    async with asyncio.timeout(20), running(fake, keypair, response_signatures="off") as doku:
        result = await _forged_call(doku, fake, op)
    effect_op, key = ("payout_initiate", "REF-ST") if op == "payout_status" else (op, KEYS[op])
    assert result.replayed is False
    assert result_key(result) == key
    assert len(fake.calls_for(op)) == 1
    assert fake.effects_count(effect_op, key) == 1


@pytest.mark.parametrize(
    ("mode", "accepted"), [("required", False), ("if_present", True), ("off", True)]
)
@pytest.mark.parametrize("op", MONEY_OPS)
async def test_unsigned_answer(keypair: KeyPair, mode: str, accepted: bool, op: str) -> None:
    fake = new_fake()
    fake.inject(op, "unsigned")
    key = KEYS[op]
    async with asyncio.timeout(20), running(fake, keypair, response_signatures=mode) as doku:
        if accepted:
            result = await money_call(doku, op, key)
            assert result_key(result) == key
            assert result.replayed is False
        else:
            with pytest.raises(SignatureVerificationError) as info:
                await money_call(doku, op, key)
            assert info.value.references["Request-Id"] == fake.calls[0].headers["Request-Id"]
    assert len(fake.calls_for(op)) == 1
    assert fake.effects_count(op, key) == 1


async def test_server_that_never_signs(keypair: KeyPair) -> None:
    fake = new_fake(sign_responses=False)
    async with (
        asyncio.timeout(20),
        running(fake, keypair, response_signatures="if_present") as doku,
    ):
        result = await doku.transfers.create(**transfer_args("INV/U1"))
    assert result.transfer is not None
    fake2 = new_fake(sign_responses=False)
    async with asyncio.timeout(20), running(fake2, keypair, response_signatures="required") as doku:
        with pytest.raises(SignatureVerificationError):
            await doku.transfers.create(**transfer_args("INV/U2"))
    assert fake.effects_count("transfer", "INV/U1") == 1
    assert fake2.effects_count("transfer", "INV/U2") == 1  # committed, answer untrusted


TRANSFER_PATH = "/sac-merchant/v1/transfers"
ANSWER_BODY = (
    b'{"transfer":{"invoice_number":"INV/7274812","origin":"SAC-0000-0000000000001",'
    b'"destination":"SAC-8014-1628130619289","amount":10000,"status":"SUCCESS",'
    b'"created":"2021-08-06 15:18:06.820153+07:00"}}'
)


def signing_app(variant: str, hits: list[str]) -> web.Application:
    """A one-route server whose answer is signed correctly except for ``variant``."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        request_id = request.headers["Request-Id"]
        hits.append(request_id)
        client_id, echoed, target = CLIENT_ID, request_id, request.path
        timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        signed_body, algorithm, label = ANSWER_BODY, "sha256", "Response-Timestamp"
        secret = CLIENT_SECRET
        if variant == "request_id_echo":
            echoed = request_id + "-other"
        elif variant == "client_id_echo":
            client_id = "BRN-0001-9999999999999"
        elif variant == "target":
            target = "/sac-rdl/v1/rdl-disbursements"
        elif variant == "body":
            signed_body = ANSWER_BODY.replace(b"10000", b"90000")
        elif variant == "sha512":
            algorithm = "sha512"
        elif variant == "request_timestamp_label":
            label = "Request-Timestamp"
        elif variant == "secret":
            secret = CLIENT_SECRET + "x"
        signature = non_snap_signature(
            secret,
            client_id,
            echoed,
            timestamp,
            target,
            signed_body,
            algorithm=algorithm,
            timestamp_header=label,
        )
        headers = {
            "Client-Id": client_id,
            "Request-Id": echoed,
            "Response-Timestamp": timestamp,
            "Signature": signature,
        }
        if variant == "no_timestamp":
            del headers["Response-Timestamp"]
        if variant == "no_request_id":
            del headers["Request-Id"]
        return web.Response(
            status=200, body=ANSWER_BODY, content_type="application/json", headers=headers
        )

    app = web.Application()
    app.router.add_post(TRANSFER_PATH, handler)
    return app


async def test_correctly_signed_custom_answer_is_accepted(keypair: KeyPair) -> None:
    """Control for the next test: the hand-made signer is right, so its faults are the cause."""
    hits: list[str] = []
    async with (
        asyncio.timeout(20),
        serve(signing_app("ok", hits)) as url,
        make_client(url, keypair, response_signatures="required") as doku,
    ):
        result = await doku.transfers.create(**transfer_args(), request_id="rid-ok")
    assert hits == ["rid-ok"]
    assert result.transfer is not None
    assert result.transfer.status == "SUCCESS"


@pytest.mark.parametrize("mode", ["required", "if_present"])
@pytest.mark.parametrize(
    ("variant", "problem"),
    [
        ("request_id_echo", "Request-Id"),
        ("no_request_id", "Request-Id"),
        ("client_id_echo", "Client-Id"),
        ("target", "Signature"),
        ("body", "Signature"),
        ("sha512", "Signature"),
        ("request_timestamp_label", "Signature"),
        ("secret", "Signature"),
        ("no_timestamp", "Response-Timestamp"),
    ],
)
async def test_wrongly_signed_answer_is_rejected(
    keypair: KeyPair, mode: str, variant: str, problem: str
) -> None:
    hits: list[str] = []
    async with (
        asyncio.timeout(20),
        serve(signing_app(variant, hits)) as url,
        make_client(url, keypair, response_signatures=mode) as doku,
    ):
        with pytest.raises(SignatureVerificationError) as info:
            await doku.transfers.create(**transfer_args(), request_id="rid-echo")
    assert hits == ["rid-echo"]  # not resent, not accepted
    assert info.value.references["Request-Id"] == "rid-echo"
    assert problem in info.value.message


# --------------------------------------------------------------------------- 6. errors


async def test_bad_request_carries_errors_list(keypair: KeyPair) -> None:
    body = {
        "status": "FAILED",
        "message": "Bad Request",
        "errors": [{"field": "amount", "message": "bad"}],
    }
    fake = new_fake()
    fake.inject("payout_initiate", "http", http_status=400, body=body)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        with pytest.raises(BadRequestError) as info:
            await doku.payout_links.initiate(**payout_args("REF-400"))
    assert info.value.http_status == 400
    assert info.value.details == [{"field": "amount", "message": "bad"}]
    assert json.loads(info.value.raw_body) == body
    assert info.value.references["reference_id"] == "REF-400"
    assert info.value.references["Request-Id"] == fake.calls[0].headers["Request-Id"]
    assert "Bad Request" in info.value.message
    assert len(fake.calls) == 1  # definite: not resent, no status call
    assert fake.effects_count("payout_initiate", "REF-400") == 0


@pytest.mark.parametrize("op", ["transfer", "rdl"])
async def test_bad_request_on_transfers_and_rdl_is_definite(keypair: KeyPair, op: str) -> None:
    body = {
        "status": "FAILED",
        "message": "Bad Request",
        "errors": [{"field": "x", "message": "y"}],
    }
    fake = new_fake()
    fake.inject(op, "http", http_status=400, body=body)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        with pytest.raises(BadRequestError) as info:
            await money_call(doku, op, KEYS[op])
    assert info.value.details == [{"field": "x", "message": "y"}]
    assert len(fake.calls) == 1
    assert fake.effects_count(op, KEYS[op]) == 0


async def test_server_error_exhausted_on_status_read(keypair: KeyPair) -> None:
    fake = new_fake()
    fake.inject("payout_status", "http", http_status=500, times=10)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        await doku.payout_links.initiate(**payout_args("REF-500"))
        with pytest.raises(ServerError) as info:
            await doku.payout_links.status(reference_id="REF-500")
    calls = fake.calls_for("payout_status")
    assert len(calls) == MAX_ATTEMPTS  # a read is retried
    assert len(request_ids(calls)) == 1
    assert info.value.http_status == 500
    assert info.value.references["reference_id"] == "REF-500"
    assert info.value.references["Request-Id"] == calls[0].headers["Request-Id"]
    assert info.value.details == {"reference_id": "REF-500"}
    assert not isinstance(info.value, TransferOutcomeUnknownError)
    assert fake.effects_count("payout_initiate", "REF-500") == 1


async def test_server_error_reference_comes_from_the_answer(keypair: KeyPair) -> None:
    body = {"status": "FAILED", "message": "Internal Error", "data": {"reference_id": "DOKU-77"}}
    fake = new_fake()
    fake.inject("payout_status", "http", http_status=500, body=body, times=10)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        with pytest.raises(ServerError) as info:
            await doku.payout_links.status(reference_id="REF-X")
    assert info.value.references["reference_id"] == "REF-X"
    assert info.value.references["data.reference_id"] == "DOKU-77"
    assert info.value.details == {"reference_id": "DOKU-77"}


async def test_status_of_unknown_reference_is_a_business_rejection(keypair: KeyPair) -> None:
    fake = new_fake()
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        with pytest.raises(BusinessRejectionError) as info:
            await doku.payout_links.status(reference_id="NOPE-1")
    assert info.value.http_status == 404
    assert info.value.references["reference_id"] == "NOPE-1"
    assert "Transaction not found" in info.value.message
    assert len(fake.calls) == 1  # definite: not retried


async def test_errors_are_doku_errors_without_secrets(keypair: KeyPair) -> None:
    fake = new_fake()
    fake.inject("transfer", "http", times=10)
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        with pytest.raises(DokuError) as info:
            await doku.transfers.create(**transfer_args())
    text = str(info.value) + repr(info.value.references)
    assert CLIENT_SECRET not in text
    for call in fake.calls:
        assert call.headers["Signature"] not in text
    assert fake.effects_count("transfer", "INV/7274812") == 0


# --------------------------------------------------------------------------- 7. statuses


ALL_STATUSES = (
    "PENDING",
    "EMAIL_SENT",
    "EMAIL_LINK_OPENED",
    "PENDING_PROCESS",
    "CONFIRMED",
    "COMPLETED",
    "FAILED",
    "EXPIRED",
)


def test_payout_link_status_sets() -> None:
    assert frozenset(ALL_STATUSES) == PayoutLinkStatus.ALL
    assert len(PayoutLinkStatus.ALL) == 8
    assert frozenset({"COMPLETED", "FAILED", "EXPIRED"}) == PayoutLinkStatus.TERMINAL
    for status in ALL_STATUSES:
        assert PayoutLinkStatus.is_known(status)
        assert getattr(PayoutLinkStatus, status) == status
        assert PayoutLinkStatus.is_terminal(status) is (
            status in {"COMPLETED", "FAILED", "EXPIRED"}
        )
    for odd in ("SOMETHING_NEW", "completed", "", None):
        assert PayoutLinkStatus.is_known(odd) is False
        assert PayoutLinkStatus.is_terminal(odd) is False


async def test_every_status_round_trips_and_unknown_is_tolerated(keypair: KeyPair) -> None:
    fake = new_fake()
    async with asyncio.timeout(20), running(fake, keypair) as doku:
        await doku.payout_links.initiate(**payout_args("REF-S"))
        for status in (*ALL_STATUSES, "SOMETHING_NEW"):
            fake.set_payout_status("REF-S", status)
            got = await doku.payout_links.status(reference_id="REF-S")
            assert got.link_status == status
            assert got.data is not None
            assert got.data.is_terminal is PayoutLinkStatus.is_terminal(status)
            assert got.data.is_terminal is (status in {"COMPLETED", "FAILED", "EXPIRED"})
            assert got.data.state == PAYOUT_STATES.get(status, "UNKNOWN")
    assert PayoutLinkStatus.is_known("SOMETHING_NEW") is False
    assert fake.effects_count("payout_initiate", "REF-S") == 1


@pytest.mark.parametrize("op", MONEY_OPS)
async def test_rejection_after_an_unclear_attempt_is_not_reported_as_unpaid(
    keypair: KeyPair, op: str
) -> None:
    """Once an attempt may have reached DOKU, a later definite rejection (here a 401 on the
    resend) must not be read as "nothing was paid": the first attempt may still have landed."""
    fake = new_fake()
    key = KEYS[op]
    fake.inject(op, "drop_before_commit")
    fake.inject(op, "http", http_status=401, body={"error": {"code": "x", "message": "no"}})
    fake.inject("payout_status", "http", http_status=500, times=10)
    async with asyncio.timeout(20), running(fake, keypair, response_signatures="off") as doku:
        with pytest.raises(TransferOutcomeUnknownError) as info:
            await money_call(doku, op, key)
    assert info.value.request_id
    assert isinstance(info.value.last_error, AuthenticationError)
    assert fake.effects_count(op, key) == 0
