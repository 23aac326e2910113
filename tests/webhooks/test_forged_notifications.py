"""Issue 12, item 2: "Forged notifications are accepted."

The legacy signature is AES-ECB over ``agentKey + requestId``: ECB blocks of captured
signatures can be cut and pasted into valid signatures for new ``requestId`` values, and the
body is not covered at all. These tests show the forgery, then the three defences:

* ``requestId`` validation: a minted id outside the shape DOKU sends is a 401 before any
  signature comparison;
* confirm mode: user code only ever sees DOKU's check-status answer (run against the
  simulator on 127.0.0.1), 503 when check status cannot be reached, 404 when DOKU does not know
  the transaction, 409 when DOKU's answer names another transaction;
* the source allow-list, with a proxy header trusted only from trusted proxies.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from fakedoku import serve
from helpers import client_for, no_sleep

from doku_async import (
    BusinessRejectionError,
    Clocks,
    ConfigurationError,
    DokuClient,
    RetryPolicy,
    Timeouts,
)
from doku_async.models.kirim import CheckStatusResponse
from doku_async.testing import DokuSimulator, SimulatorCredentials
from doku_async.webhooks import (
    KIRIM_REQUEST_ID_PATTERN,
    WEBHOOK_CONFIG,
    AesSignatureVerifier,
    ConfirmedNotification,
    NetworkAllowList,
    Notification,
    WebhookVerificationError,
    create_webhook_app,
    sign_kirim_notification,
    verify_and_parse,
)

pytestmark = pytest.mark.timeout(60)

KAT_AGENT = "A41418"
KAT_KEY = "627054fevj1sutvs"
KAT_REQUEST_ID = "fd53b1e3-9c35-4dfa-a95ca8dbc5695485"  # DOKU's example: 8-4-4-16 hex
KAT_SIGNATURE = "c7gWWl1UEDpkO42/Ikqjd/GNGzFQSZONqvwFhbcXtUVdqgq+gliUBQCOUqsFjAtX"
UNPAID = "/doku/kirim/unpaid"
REFUND = "/doku/kirim/refund"
CUSTOMER = "628115678890"
AMOUNT = Decimal("150000.00")
CLIENT_OPTIONS: dict[str, Any] = {
    "retry": RetryPolicy(jitter=False, max_attempts=2),
    "timeouts": Timeouts(connect=2.0, attempt=2.0, total=5.0),
}


# ----------------------------------------------------------------------------- ECB splicing


def blocks(signature: str) -> list[bytes]:
    raw = base64.b64decode(signature)
    return [raw[i : i + 16] for i in range(0, len(raw), 16)]


def splice(*parts: bytes) -> str:
    return base64.b64encode(b"".join(parts)).decode()


def headers(request_id: str, signature: str, agent: str = KAT_AGENT) -> dict[str, str]:
    return {
        "requestId": request_id,
        "agentKey": agent,
        "signature": signature,
        "Content-Type": "application/json",
    }


def minted_from_one_capture() -> list[tuple[str, str]]:
    """(requestId, signature) pairs minted from DOKU's single captured example, without the key.

    ``A41418`` + the 35-character requestId is 41 bytes: three AES blocks, ``B1`` =
    ``A41418fd53b1e3-9``, ``B2`` = ``c35-4dfa-a95ca8d``, ``B3`` = ``bc5695485`` + padding. Any
    ``B1 B2* B3`` is a valid signature for the requestId its plaintext spells.
    """
    b1, b2, b3 = blocks(KAT_SIGNATURE)
    text = KAT_AGENT + KAT_REQUEST_ID
    head, middle, tail = text[6:16], text[16:32], text[32:]
    return [
        (head + tail, splice(b1, b3)),
        (head + middle * 2 + tail, splice(b1, b2, b2, b3)),
        (head + middle * 5 + tail, splice(b1, b2, b2, b2, b2, b2, b3)),
    ]


def test_forged_notification_block_splicing_mints_valid_signatures() -> None:
    """The weakness itself: every minted pair is exactly the signature the key would make,
    and the legacy verifier without a requestId shape accepts them all."""
    permissive = AesSignatureVerifier.single(KAT_AGENT, KAT_KEY, request_id_pattern=None)
    for request_id, signature in minted_from_one_capture():
        genuine = sign_kirim_notification(
            agent_key=KAT_AGENT, encryption_key=KAT_KEY, request_id=request_id
        )["signature"]
        assert signature == genuine
        assert permissive.verify(headers(request_id, signature), b"") == (request_id, KAT_AGENT)


def test_forged_notification_minted_request_ids_are_refused_by_shape() -> None:
    verifier = AesSignatureVerifier.single(KAT_AGENT, KAT_KEY)
    assert verifier.verify(headers(KAT_REQUEST_ID, KAT_SIGNATURE), b"") == (
        KAT_REQUEST_ID,
        KAT_AGENT,
    )
    for request_id, signature in minted_from_one_capture():
        with pytest.raises(WebhookVerificationError, match="shape"):
            verifier.verify(headers(request_id, signature), b"")


def test_forged_notification_shape_is_checked_before_any_signature_comparison(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    verifier = AesSignatureVerifier.single(KAT_AGENT, KAT_KEY)
    request_id, signature = minted_from_one_capture()[1]
    with pytest.raises(WebhookVerificationError):
        verifier.verify(headers(request_id, signature), b"")
    assert compared == []
    verifier.verify(headers(KAT_REQUEST_ID, KAT_SIGNATURE), b"")
    assert len(compared) == 1


def test_forged_notification_splicing_several_captures_stays_in_shape() -> None:
    """What the shape check cannot stop: with several captured header sets, blocks at the same
    positions recombine into requestIds of the right shape. Only confirm mode makes such a
    notification harmless."""
    captured = [
        (rid, sign_kirim_notification(agent_key=KAT_AGENT, encryption_key=KAT_KEY, request_id=rid))
        for rid in (
            "11111111-2222-4333-8444-555555555555",
            "66666666-7777-4888-9999-aaaaaaaaaaaa",
        )
    ]
    (rid_a, sig_a), (rid_b, sig_b) = ((rid, h["signature"]) for rid, h in captured)
    a1, _, a3 = blocks(sig_a)
    _, b2, _ = blocks(sig_b)
    text_a, text_b = KAT_AGENT + rid_a, KAT_AGENT + rid_b
    minted = text_a[6:16] + text_b[16:32] + text_a[32:]
    assert minted not in (rid_a, rid_b)
    assert re.fullmatch(KIRIM_REQUEST_ID_PATTERN, minted)
    verifier = AesSignatureVerifier.single(KAT_AGENT, KAT_KEY)
    assert verifier.verify(headers(minted, splice(a1, b2, a3)), b"") == (minted, KAT_AGENT)


@pytest.mark.parametrize(
    "request_id",
    [
        KAT_REQUEST_ID,  # DOKU's example, 8-4-4-16
        "3f2c9a4e-1b7d-4c21-9e0f-5a6b7c8d9e0f",  # a UUID, 8-4-4-4-12
        "3F2C9A4E-1B7D-4C21-9E0F-5A6B7C8D9E0F",
    ],
)
def test_request_id_shapes_doku_sends_are_accepted(request_id: str) -> None:
    assert re.fullmatch(KIRIM_REQUEST_ID_PATTERN, request_id)
    verifier = AesSignatureVerifier.single(KAT_AGENT, KAT_KEY)
    signed = sign_kirim_notification(
        agent_key=KAT_AGENT, encryption_key=KAT_KEY, request_id=request_id
    )
    assert verifier.verify(signed, b"")[0] == request_id


@pytest.mark.parametrize(
    "request_id",
    [
        "fd53b1e3-9c35-4dfa-a95ca8dbc569548",  # one digit short
        "fd53b1e3-9c35-4dfa-a95ca8dbc56954850",  # one too many
        "fd53b1e39c354dfaa95ca8dbc5695485",  # no dashes
        "fd53b1e3-9c35-4dfa-a95c-a8dbc569-5485",  # a dash too many
        "{3f2c9a4e-1b7d-4c21-9e0f-5a6b7c8d9e0f}",
        "gd53b1e3-9c35-4dfa-a95ca8dbc5695485",  # not hex
        "fd53b1e3-9c35-4dfa-a95ca8dbc5695485\u00a0",
        "req-1",
    ],
)
def test_request_ids_outside_the_shape_are_refused(request_id: str) -> None:
    verifier = AesSignatureVerifier.single(KAT_AGENT, KAT_KEY)
    signed = sign_kirim_notification(
        agent_key=KAT_AGENT, encryption_key=KAT_KEY, request_id=request_id
    )
    with pytest.raises(WebhookVerificationError):
        verify_and_parse(signed, b'{"transactionId":"DK1"}', verifier=verifier)


def test_request_id_pattern_is_configurable() -> None:
    custom = AesSignatureVerifier.single(KAT_AGENT, KAT_KEY, request_id_pattern=r"REQ-\d{6}")
    ok = sign_kirim_notification(agent_key=KAT_AGENT, encryption_key=KAT_KEY, request_id="REQ-1")
    good = sign_kirim_notification(
        agent_key=KAT_AGENT, encryption_key=KAT_KEY, request_id="REQ-123456"
    )
    assert custom.verify(good, b"")[0] == "REQ-123456"
    with pytest.raises(WebhookVerificationError):
        custom.verify(ok, b"")
    with pytest.raises(WebhookVerificationError):  # the default shape is replaced, not added
        custom.verify(headers(KAT_REQUEST_ID, KAT_SIGNATURE), b"")
    compiled = AesSignatureVerifier.single(
        KAT_AGENT, KAT_KEY, request_id_pattern=re.compile("[a-z]+")
    )
    abc = sign_kirim_notification(agent_key=KAT_AGENT, encryption_key=KAT_KEY, request_id="abc")
    assert compiled.verify(abc, b"")[0] == "abc"
    with pytest.raises(ConfigurationError, match="regular expression"):
        AesSignatureVerifier.single(KAT_AGENT, KAT_KEY, request_id_pattern="(")


# ----------------------------------------------------------------------------- the app


def mounted(sub: web.Application) -> web.Application:
    outer = web.Application()
    outer.add_subapp("/doku/", sub)
    return outer


async def post(
    url: str, body: Mapping[str, object] | bytes, hdrs: Mapping[str, str]
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=data, headers=dict(hdrs)) as resp,
    ):
        raw = await resp.read()
        assert resp.content_type == "application/json", (resp.status, raw)
        payload = json.loads(raw)
        assert isinstance(payload, dict)
        return resp.status, payload


def unpaid_body(transaction_id: str, status: str, send_trx_id: str = "text") -> dict[str, object]:
    return {
        "sendTrxId": send_trx_id,
        "transactionId": transaction_id,
        "invoiceNumber": "I088787987870912",
        "transactionStatus": status,
        "activityCode": "200",
        "message": "Transaction is Success",
        "processDate": "2024-01-12'T'07:30:12",
        "createdTime": "1699520040340",
    }


def refund_body(transaction_id: str) -> dict[str, object]:
    return {
        "transactionId": transaction_id,
        "activityCode": "200",
        "message": "Transaction is Refunded",
        "processDate": "2024-01-12'T'07:30:12",
    }


class Confirmed:
    """``on_confirmed``: records what reached user code."""

    def __init__(self) -> None:
        self.calls: list[ConfirmedNotification] = []

    async def __call__(self, confirmed: ConfirmedNotification) -> None:
        self.calls.append(confirmed)


class Ledger:
    """The merchant's records: DOKU referenceNo -> partnerReferenceNo."""

    def __init__(self) -> None:
        self.refs: dict[str, str] = {}
        self.asked: list[str] = []

    async def lookup(self, reference_no: str) -> str | None:
        self.asked.append(reference_no)
        return self.refs.get(reference_no)


async def pay(doku: DokuClient, ledger: Ledger, ref: str, *, bank: str, account: str) -> str:
    """Make a transfer and record its referenceNo; return the referenceNo."""
    result = await doku.kirim.transfer_bank(
        partner_reference_no=ref,
        customer_number=CUSTOMER,
        beneficiary_account_number=account,
        beneficiary_bank_code=bank,
        amount=AMOUNT,
    )
    assert result.reference_no is not None
    ledger.refs[result.reference_no] = ref
    return result.reference_no


async def settled(doku: DokuClient, ref: str, status: str) -> None:
    """Wait until check status reports ``status`` for ``ref``."""
    async with asyncio.timeout(10):
        while True:
            answer = await doku.kirim.check_status(original_partner_reference_no=ref)
            if answer.transaction_status == status:
                return
            await asyncio.sleep(0.02)


@asynccontextmanager
async def confirm_app(
    creds: SimulatorCredentials, **app_options: Any
) -> AsyncIterator[tuple[DokuSimulator, DokuClient, str, web.Application]]:
    """A simulator, a client, and a confirm-mode webhook app on 127.0.0.1 (its base URL)."""
    async with (
        asyncio.timeout(30),
        DokuSimulator(credentials=creds, notification_delay=0.05) as sim,
        client_for(sim, **CLIENT_OPTIONS) as doku,
    ):
        options: dict[str, Any] = {
            "agent_key": creds.agent_key,
            "encryption_keys": creds.encryption_key,
            "confirm_with": doku,
        }
        options.update(app_options)
        sub = create_webhook_app(**options)
        async with serve(mounted(sub)) as url:
            yield sim, doku, url, sub


def captured(creds: SimulatorCredentials) -> dict[str, str]:
    """A genuine header set, as a forger who captured one delivery would replay it."""
    return sign_kirim_notification(agent_key=creds.agent_key, encryption_key=creds.encryption_key)


async def test_forged_notification_gets_dokus_confirmed_status_not_the_body_claim(
    creds: SimulatorCredentials, caplog: pytest.LogCaptureFixture
) -> None:
    """A body saying ``50`` for a payout DOKU reports failed reaches user code only as failed;
    a body saying ``35`` for a paid payout is handed over as confirmed success."""
    ledger, received = Ledger(), Confirmed()
    async with confirm_app(creds, reference_lookup=ledger.lookup, on_confirmed=received) as (
        _sim,
        doku,
        url,
        sub,
    ):
        failed = await pay(doku, ledger, "PAY-FAILS", bank="002", account="5512345")
        paid = await pay(doku, ledger, "PAY-PAID", bank="014", account="8377388292")
        await settled(doku, "PAY-FAILS", "06")

        caplog.set_level(logging.WARNING, logger="doku_async.webhooks")
        status, payload = await post(url + UNPAID, unpaid_body(failed, "50"), captured(creds))
        assert (status, payload["responseCode"]) == (200, "00")
        status, payload = await post(url + UNPAID, unpaid_body(paid, "35"), captured(creds))
        assert (status, payload["responseCode"]) == (200, "00")

    first, second = received.calls
    assert first.transaction_id == failed
    assert first.partner_reference_no == "PAY-FAILS"
    assert first.claimed_status == "50"
    assert first.confirmed_status == "06"
    assert not first.succeeded
    assert first.is_final
    assert first.description == "failed"
    assert first.disagrees
    assert isinstance(first.status_response, CheckStatusResponse)
    assert first.status_response.original_reference_no == failed

    assert second.transaction_id == paid
    assert second.claimed_status == "35"
    assert second.confirmed_status == "00"
    assert second.succeeded
    assert second.disagrees

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(failed in m and "claims 50" in m and "says 06" in m for m in warnings), warnings
    assert any(paid in m and "claims 35" in m and "says 00" in m for m in warnings), warnings
    assert sub[WEBHOOK_CONFIG].disagreements == 2
    assert sub[WEBHOOK_CONFIG].processed == 2
    assert creds.encryption_key not in caplog.text


async def test_forged_notification_for_an_unknown_transaction_never_reaches_user_code(
    creds: SimulatorCredentials,
) -> None:
    ledger, received = Ledger(), Confirmed()
    async with confirm_app(creds, reference_lookup=ledger.lookup, on_confirmed=received) as (
        sim,
        _doku,
        url,
        sub,
    ):
        # unknown to the merchant's records
        status, payload = await post(url + UNPAID, unpaid_body("DK9999999", "50"), captured(creds))
        assert status == 404
        assert payload == {
            "status": False,
            "responseCode": "404",
            "responseMessage": "transaction not found at DOKU",
        }
        # known to the records, unknown to DOKU: check status says 07
        ledger.refs["DK8888888"] = "NEVER-SENT"
        status, _ = await post(url + REFUND, refund_body("DK8888888"), captured(creds))
        assert status == 404
        # a transactionId that cannot be a reference is not even looked up
        status, _ = await post(url + UNPAID, unpaid_body("DK 1\u00e9", "50"), captured(creds))
        assert status == 404
        assert len(sim.requests_for("check_status")) == 1
    assert received.calls == []
    assert ledger.asked == ["DK9999999", "DK8888888"]
    assert sub[WEBHOOK_CONFIG].unconfirmed == 3
    assert sub[WEBHOOK_CONFIG].processed == 0


async def test_forged_notification_pointing_at_another_payout_is_409(
    creds: SimulatorCredentials,
) -> None:
    """DOKU's answer must name the notification's transaction: a body reference (or a wrong
    mapping) that leads to another payout is refused."""
    received = Confirmed()
    ledger = Ledger()
    async with confirm_app(
        creds,
        reference_lookup=ledger.lookup,
        partner_reference_field="sendTrxId",
        on_confirmed=received,
    ) as (_sim, doku, url, sub):
        failed = await pay(doku, ledger, "PAY-A-FAILS", bank="002", account="5512345")
        await pay(doku, ledger, "PAY-B-PAID", bank="014", account="8377388292")
        await settled(doku, "PAY-A-FAILS", "06")
        del ledger.refs[failed]  # so the body's sendTrxId is what names the partner reference
        body = unpaid_body(failed, "50", send_trx_id="PAY-B-PAID")
        status, payload = await post(url + UNPAID, body, captured(creds))
        assert status == 409
        assert payload["responseMessage"] == "notification does not match DOKU's record"
        # the genuine reference in the body is bound by DOKU's answer: handed over
        body = unpaid_body(failed, "35", send_trx_id="PAY-A-FAILS")
        status, _ = await post(url + UNPAID, body, captured(creds))
        assert status == 200
    [confirmed] = received.calls
    assert confirmed.partner_reference_no == "PAY-A-FAILS"
    assert confirmed.confirmed_status == "06"
    assert not confirmed.disagrees
    assert sub[WEBHOOK_CONFIG].unconfirmed == 1


async def test_genuine_deliveries_in_confirm_mode_unpaid_and_refund(
    creds: SimulatorCredentials,
) -> None:
    """The simulator delivers its own signed notifications: each is confirmed once."""
    ledger, received = Ledger(), Confirmed()
    async with confirm_app(creds, reference_lookup=ledger.lookup, on_confirmed=received) as (
        sim,
        doku,
        url,
        sub,
    ):
        sim.unpaid_url = url + UNPAID
        sim.refund_url = url + REFUND
        failed = await pay(doku, ledger, "PAY-G-FAILS", bank="002", account="5512345")
        succeeds = await pay(doku, ledger, "PAY-G-OK", bank="014", account="9912345678")
        refunded = await pay(doku, ledger, "PAY-G-REFUND", bank="014", account="7746555134")
        await sim.wait_for_notifications(3, timeout=10)
        await sim.drain()
        assert all(n.attempts == 1 for n in sim.notifications)
    got = {c.transaction_id: c for c in received.calls}
    assert len(received.calls) == 3
    assert (got[failed].kind, got[failed].confirmed_status) == ("unpaid", "06")
    assert (got[succeeds].kind, got[succeeds].confirmed_status) == ("unpaid", "00")
    assert (got[refunded].kind, got[refunded].confirmed_status) == ("refund", "04")
    assert not any(c.disagrees for c in received.calls)
    assert got[refunded].partner_reference_no == "PAY-G-REFUND"
    assert sub[WEBHOOK_CONFIG].processed == 3


async def test_forged_early_claim_does_not_swallow_the_genuine_notification(
    creds: SimulatorCredentials,
) -> None:
    """A forger claiming ``50`` while the payout is still pending gets the pending status handed
    over; DOKU's real ``50`` afterwards is still handed over, once."""
    ledger, received = Ledger(), Confirmed()
    async with confirm_app(creds, reference_lookup=ledger.lookup, on_confirmed=received) as (
        sim,
        doku,
        url,
        _sub,
    ):
        sim.notification_delay = 0.5
        trx = await pay(doku, ledger, "PAY-LATER", bank="014", account="9912345678")
        status, _ = await post(url + UNPAID, unpaid_body(trx, "50"), captured(creds))
        assert status == 200
        await settled(doku, "PAY-LATER", "00")
        genuine = captured(creds)
        status, payload = await post(url + UNPAID, unpaid_body(trx, "50"), genuine)
        assert (status, payload["responseCode"]) == (200, "00")
        # DOKU's retry with a fresh requestId: the same confirmed outcome, not handed over again
        status, payload = await post(url + UNPAID, unpaid_body(trx, "50"), captured(creds))
        assert (status, payload["responseCode"]) == (200, "01")
        await sim.drain()
    assert [(c.confirmed_status, c.disagrees) for c in received.calls] == [
        ("03", True),
        ("00", False),
    ]


# ----------------------------------------------------------------------------- 503


async def test_check_status_unreachable_is_503_and_user_code_is_not_called(
    creds: SimulatorCredentials,
) -> None:
    ledger, received = Ledger(), Confirmed()
    async with DokuSimulator(credentials=creds) as sim, client_for(sim, **CLIENT_OPTIONS) as doku:
        trx = await pay(doku, ledger, "PAY-DOWN", bank="014", account="8377388292")
    # The simulator is gone: its address now refuses connections.
    dead = DokuClient(
        **sim.client_kwargs(),
        clocks=Clocks(sleep=no_sleep),
        retry=RetryPolicy(jitter=False, max_attempts=2),
        timeouts=Timeouts(connect=1.0, attempt=1.0, total=3.0),
    )
    async with dead:
        sub = create_webhook_app(
            agent_key=creds.agent_key,
            encryption_keys=creds.encryption_key,
            confirm_with=dead,
            reference_lookup=ledger.lookup,
            on_confirmed=received,
        )
        async with serve(mounted(sub)) as url:
            status, payload = await post(url + UNPAID, unpaid_body(trx, "50"), captured(creds))
    assert status == 503
    assert payload == {
        "status": False,
        "responseCode": "503",
        "responseMessage": "could not confirm with DOKU; please retry",
    }
    assert received.calls == []
    assert sub[WEBHOOK_CONFIG].unconfirmed == 1


async def test_check_status_5xx_is_503_and_dokus_retry_is_then_handled(
    creds: SimulatorCredentials,
) -> None:
    ledger, received = Ledger(), Confirmed()
    async with confirm_app(creds, reference_lookup=ledger.lookup, on_confirmed=received) as (
        sim,
        doku,
        url,
        _sub,
    ):
        trx = await pay(doku, ledger, "PAY-5XX", bank="014", account="8377388292")
        sim.inject("check_status", "error", status=500, times=2)  # both attempts of one call
        delivery = captured(creds)
        status, _ = await post(url + UNPAID, unpaid_body(trx, "50"), delivery)
        assert status == 503
        assert received.calls == []
        # DOKU retries the same delivery: nothing was remembered, so it is handled now.
        status, payload = await post(url + UNPAID, unpaid_body(trx, "50"), delivery)
        assert (status, payload["responseCode"]) == (200, "00")
    [confirmed] = received.calls
    assert confirmed.confirmed_status == "00"
    assert not confirmed.disagrees


async def test_confirm_callable_failures_and_timeouts_are_503() -> None:
    received = Confirmed()
    gate = asyncio.Event()

    async def confirm(transaction_id: str) -> CheckStatusResponse | None:
        if transaction_id == "DK-SLOW":
            await gate.wait()
        if transaction_id == "DK-BOOM":
            raise RuntimeError("database down")
        if transaction_id == "DK-404":
            raise BusinessRejectionError("not found", http_status=404, response_code="4045301")
        if transaction_id == "DK-NONE":
            return None
        return CheckStatusResponse(
            raw_response_code="2005300",
            original_reference_no=transaction_id,
            original_partner_reference_no="P-1",
            latest_transaction_status="06",
        )

    sub = create_webhook_app(
        agent_key=KAT_AGENT,
        encryption_keys=KAT_KEY,
        confirm_with=confirm,
        on_confirmed=received,
        confirm_timeout=0.2,
    )
    async with serve(mounted(sub)) as url, asyncio.timeout(20):

        async def deliver(trx: str) -> int:
            hdrs = sign_kirim_notification(agent_key=KAT_AGENT, encryption_key=KAT_KEY)
            status, _ = await post(url + UNPAID, unpaid_body(trx, "35"), hdrs)
            return status

        assert await deliver("DK-SLOW") == 503
        assert await deliver("DK-BOOM") == 503
        assert await deliver("DK-404") == 404
        assert await deliver("DK-NONE") == 404
        assert received.calls == []
        assert await deliver("DK-OK") == 200
        gate.set()
    [confirmed] = received.calls
    assert (confirmed.transaction_id, confirmed.confirmed_status) == ("DK-OK", "06")
    assert confirmed.partner_reference_no == "P-1"
    assert not confirmed.disagrees


async def test_confirm_mode_with_ack_first_still_confirms_before_acknowledging(
    creds: SimulatorCredentials,
) -> None:
    ledger, received = Ledger(), Confirmed()
    async with confirm_app(
        creds, reference_lookup=ledger.lookup, on_confirmed=received, ack_first=True
    ) as (sim, doku, url, _sub):
        trx = await pay(doku, ledger, "PAY-ACK-FIRST", bank="014", account="8377388292")
        sim.inject("check_status", "error", status=503, times=2)
        status, _ = await post(url + UNPAID, unpaid_body(trx, "50"), captured(creds))
        assert status == 503
        status, _ = await post(url + UNPAID, unpaid_body(trx, "50"), captured(creds))
        assert status == 200
    [confirmed] = received.calls  # the app drained the background callback on shutdown
    assert confirmed.confirmed_status == "00"


# ----------------------------------------------------------------------------- configuration


async def test_confirm_mode_configuration_errors(creds: SimulatorCredentials) -> None:
    received = Confirmed()

    async def legacy(n: Notification) -> None:
        return None

    async def confirm(_: str) -> CheckStatusResponse | None:
        return None

    async def lookup(_: str) -> str | None:
        return None

    base: dict[str, Any] = {"agent_key": KAT_AGENT, "encryption_keys": KAT_KEY}
    async with DokuSimulator(credentials=creds) as sim, client_for(sim, **CLIENT_OPTIONS) as doku:
        bad: list[dict[str, Any]] = [
            {"on_confirmed": received},  # no confirm_with
            {"confirm_with": confirm},  # no on_confirmed
            {"confirm_with": confirm, "on_confirmed": received, "on_unpaid": legacy},
            {"confirm_with": doku, "on_confirmed": received},  # no way to map references
            {"confirm_with": confirm, "on_confirmed": received, "reference_lookup": lookup},
            {
                "confirm_with": doku,
                "on_confirmed": received,
                "partner_reference_field": "transactionId",
            },
            {"confirm_with": confirm, "on_confirmed": received, "confirm_timeout": 0},
            {"confirm_with": "nope", "on_confirmed": received},
            {"on_notification": legacy, "reference_lookup": lookup},
            {
                "on_notification": legacy,
                "verifier": AesSignatureVerifier.single(KAT_AGENT, KAT_KEY),
                "request_id_pattern": None,
            },
        ]
        for options in bad:
            with pytest.raises(ConfigurationError):
                create_webhook_app(**{**base, **options})
        create_webhook_app(
            **base, confirm_with=doku, on_confirmed=received, reference_lookup=lookup
        )
        create_webhook_app(
            **base, confirm_with=doku, on_confirmed=received, partner_reference_field="sendTrxId"
        )


def test_legacy_mode_still_works_but_warns(caplog: pytest.LogCaptureFixture) -> None:
    async def legacy(n: Notification) -> None:
        return None

    caplog.set_level(logging.WARNING, logger="doku_async.webhooks")
    create_webhook_app(agent_key=KAT_AGENT, encryption_keys=KAT_KEY, on_notification=legacy)
    assert any("legacy mode" in r.getMessage() for r in caplog.records)
    assert KAT_KEY not in caplog.text


# ----------------------------------------------------------------------------- allow-list


def legacy_app(received: list[Notification], **options: Any) -> web.Application:
    return mounted(legacy_sub(received, **options))


def legacy_sub(received: list[Notification], **options: Any) -> web.Application:
    async def on_notification(n: Notification) -> None:
        received.append(n)

    return create_webhook_app(
        agent_key=KAT_AGENT,
        encryption_keys=KAT_KEY,
        on_notification=on_notification,
        **options,
    )


def kat_signed(**extra: str) -> dict[str, str]:
    return {**sign_kirim_notification(agent_key=KAT_AGENT, encryption_key=KAT_KEY), **extra}


async def test_allowed_networks_admit_the_allowed_source() -> None:
    received: list[Notification] = []
    app = legacy_app(received, allowed_networks=["127.0.0.0/8", "::1/128"])
    async with serve(app) as url:
        status, _ = await post(url + UNPAID, unpaid_body("DK1", "50"), kat_signed())
    assert status == 200
    assert len(received) == 1


async def test_allowed_networks_refuse_other_sources_with_403() -> None:
    received: list[Notification] = []
    sub = legacy_sub(received, allowed_networks=["103.10.128.0/22"])
    async with serve(mounted(sub)) as url:
        status, payload = await post(url + UNPAID, unpaid_body("DK1", "50"), kat_signed())
        assert status == 403
        assert payload == {
            "status": False,
            "responseCode": "403",
            "responseMessage": "source not allowed",
        }
        # Checked before anything else: even a wrong method gets 403, not 405.
        async with aiohttp.ClientSession() as http, http.get(url + UNPAID) as resp:
            assert resp.status == 403
        # The proxy header means nothing from a peer that is not a trusted proxy.
        spoofed = kat_signed(**{"X-Forwarded-For": "103.10.128.9"})
        status, _ = await post(url + UNPAID, unpaid_body("DK2", "50"), spoofed)
        assert status == 403
    assert received == []
    assert sub[WEBHOOK_CONFIG].rejected == 3


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("103.10.128.9", 200),
        ("103.10.128.9, 127.0.0.1", 200),  # our own proxy hop is skipped
        ("198.51.100.1", 403),
        ("103.10.128.9, 198.51.100.1", 403),  # the leftmost entry is the sender's own claim
        ("not-an-address", 403),
        ("", 403),
        (None, 403),  # no header: the source is the proxy itself
    ],
)
async def test_proxy_header_is_trusted_only_from_trusted_proxies(
    forwarded: str | None, expected: int
) -> None:
    received: list[Notification] = []
    app = legacy_app(
        received, allowed_networks=["103.10.128.0/22"], trusted_proxies=["127.0.0.1/32"]
    )
    hdrs = kat_signed() if forwarded is None else kat_signed(**{"X-Forwarded-For": forwarded})
    async with serve(app) as url:
        status, _ = await post(url + UNPAID, unpaid_body("DK1", "50"), hdrs)
    assert status == expected
    assert len(received) == (1 if expected == 200 else 0)


async def test_proxy_header_from_an_untrusted_peer_is_ignored() -> None:
    received: list[Notification] = []
    app = legacy_app(
        received, allowed_networks=["103.10.128.0/22"], trusted_proxies=["192.0.2.0/24"]
    )
    async with serve(app) as url:
        hdrs = kat_signed(**{"X-Forwarded-For": "103.10.128.9"})
        status, _ = await post(url + UNPAID, unpaid_body("DK1", "50"), hdrs)
    assert status == 403
    assert received == []


def test_network_allow_list_rules() -> None:
    guard = NetworkAllowList(
        ["10.0.0.0/8", "2001:db8::/32"],
        trusted_proxies=["192.0.2.1", "192.0.2.2"],
        header="X-Real-Client",
    )
    assert guard.header == "X-Real-Client"
    assert guard.allows("10.1.2.3", [])
    assert guard.allows("::ffff:10.1.2.3", [])  # IPv4-mapped IPv6
    assert guard.allows("2001:db8::7", [])
    assert not guard.allows("11.0.0.1", [])
    assert not guard.allows(None, [])
    assert not guard.allows("not an ip", [])
    assert guard.allows("192.0.2.1", ["10.9.9.9"])
    assert guard.allows("192.0.2.1", ["10.9.9.9, 192.0.2.2"])  # two trusted hops
    assert guard.allows("192.0.2.1", ["10.9.9.9", "192.0.2.2"])  # two header lines
    assert not guard.allows("192.0.2.1", ["10.9.9.9, 11.0.0.1"])
    assert not guard.allows("192.0.2.1", ["10.9.9.9," * 40])  # overlong chain
    assert not guard.allows("192.0.2.1", [])  # the proxy itself is not allowed
    assert not guard.allows("11.0.0.1", ["10.9.9.9"])  # untrusted peer: header ignored
    assert "10.0.0.0/8" in repr(guard)
    bad_options: list[dict[str, Any]] = [
        {"allowed": []},
        {"allowed": "10.0.0.0/8"},
        {"allowed": ["10.0.0.0/33"]},
        {"allowed": ["10.0.0.1/8"]},  # host bits set: say what you mean
        {"allowed": ["10.0.0.0/8"], "trusted_proxies": ["proxy.local"]},
        {"allowed": ["10.0.0.0/8"], "header": " "},
    ]
    for bad in bad_options:
        with pytest.raises(ConfigurationError):
            NetworkAllowList(**bad)
