"""DOKU's real answers, fed to the SDK's public client.

Every file under ``tests/corpus/<operation>/`` is one answer body as DOKU's docs or official SDKs
show it, with its provenance (``source``, ``note``) and what the SDK must make of it
(``expect``); see ``tests/corpus/README.md``. SNAP answers are served from a loopback aiohttp
server to ``DokuClient``; notifications are signed and posted to the webhook sub-app; Non-SNAP
answers are served to ``client.payout_links`` / ``client.transfers`` / ``client.rdl``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from helpers import AGENT_KEY, CLIENT_ID, CLIENT_SECRET, make_client

from doku_async import Clocks, DokuAPIError, DokuClient, DokuError, TransferOutcomeUnknownError
from doku_async.webhooks import (
    Notification,
    create_webhook_app,
    sign_kirim_notification,
)

pytestmark = pytest.mark.timeout(30)

KeyPair = tuple[bytes, bytes]
Sample = dict[str, Any]

CORPUS = Path(__file__).parent.parent / "corpus"
SAMPLES = sorted(CORPUS.rglob("*.json"))

TOKEN_PATH = "/authorization/v1/access-token/b2b"
SNAP_PATHS = {
    "account_inquiry": "/v1.0/emoney/bank-account-inquiry",
    "balance_inquiry": "/v1.0/balance-inquiry",
    "transfer_bank": "/v1.0/emoney/transfer-bank",
    "check_status": "/v1.0/qr/qr-mpm-status",
}
NON_SNAP_PATHS = {
    "payout_link_initiate": "/v1/payout/initiate",
    "payout_link_status": "/v1/payout/status",
    "transfers": "/sac-merchant/v1/transfers",
    "rdl_disbursement": "/sac-rdl/v1/rdl-disbursements",
}

# What the server answers for the operations a sample does not cover.
GOOD_TOKEN = {
    "responseCode": "2007300",
    "responseMessage": "Successful",
    "accessToken": "eyJhbGciOiJSUzI1NiJ9.corpus.token",
    "tokenType": "Bearer",
    "expiresIn": 900,
    "additionalInfo": "",
}
GOOD_BALANCE = {  # DOKU's docs' example, kept in the corpus too
    "responseCode": 2001100,
    "responseMessage": "Successful",
    "accountNo": AGENT_KEY,
    "name": "Simulator Indo Agent",
    "accountInfos": {
        "holdAmount": {"value": "0.00", "currency": "IDR"},
        "avaliableBalance": {"value": "823781442.13", "currency": "IDR"},
    },
}
# Check status failing too: a transfer whose first answer left the outcome open stays open.
STATUS_DOWN = (500, {"responseCode": "5005300", "responseMessage": "General Error"})
PAYOUT_STATUS_DOWN = (400, {"status": "400", "message": "Transaction not found"})

WEBHOOK_AGENT = "A41418"
WEBHOOK_KEY = "627054fevj1sutvs"


def load(path: Path) -> Sample:
    sample = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(sample, dict)
    return sample


def sample_id(path: Path) -> str:
    return str(path.relative_to(CORPUS))


def encoded(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


# ----------------------------------------------------------------------------- the server


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]


@dataclass
class Answers:
    """Per path: (HTTP status, body bytes); every request is recorded."""

    by_path: dict[str, tuple[int, bytes]]
    calls: list[Recorded] = field(default_factory=list)

    def calls_to(self, path: str) -> list[Recorded]:
        return [c for c in self.calls if c.path == path]


def signed_non_snap_headers(request: web.Request, body: bytes) -> dict[str, str]:
    """Sign a Non-SNAP answer as DOKU does (its documented recipe, written here without the
    SDK's signing code): the SDK requires a signed answer to a money-moving call."""
    request_id = request.headers.get("Request-Id", "")
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    component = (
        f"Client-Id:{CLIENT_ID}\nRequest-Id:{request_id}\nResponse-Timestamp:{ts}\n"
        f"Request-Target:{request.path}\nDigest:{digest}"
    )
    mac = hmac.new(CLIENT_SECRET.encode(), component.encode(), hashlib.sha256).digest()
    return {
        "Client-Id": CLIENT_ID,
        "Request-Id": request_id,
        "Response-Timestamp": ts,
        "Signature": "HMACSHA256=" + base64.b64encode(mac).decode(),
    }


def build_app(answers: Answers) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        answers.calls.append(Recorded(request.path, dict(request.headers)))
        found = answers.by_path.get(request.path)
        if found is None:
            return web.Response(status=404, text="No static resource", content_type="text/plain")
        status, body = found
        headers = {}
        if request.path in NON_SNAP_PATHS.values():
            headers = signed_non_snap_headers(request, body)
        return web.Response(
            status=status, body=body, content_type="application/json", headers=headers
        )

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    return app


@asynccontextmanager
async def serving(answers: Answers, keypair: KeyPair, **options: Any) -> AsyncIterator[DokuClient]:
    """A loopback server answering ``answers`` and a client pointed at it (bounded in time)."""
    server = TestServer(build_app(answers), host="127.0.0.1")
    await server.start_server()
    try:
        url = str(server.make_url("")).rstrip("/")
        async with asyncio.timeout(20), make_client(url, keypair, **options) as client:
            yield client
    finally:
        await server.close()


def snap_answers(op: str, sample: Sample) -> Answers:
    body = encoded(sample["body"])
    status = int(sample["http_status"])
    by_path = {TOKEN_PATH: (200, encoded(GOOD_TOKEN))}
    if op == "token":
        by_path[TOKEN_PATH] = (status, body)
        by_path[SNAP_PATHS["balance_inquiry"]] = (200, encoded(GOOD_BALANCE))
    else:
        by_path[SNAP_PATHS[op]] = (status, body)
        if op == "transfer_bank":
            by_path[SNAP_PATHS["check_status"]] = (STATUS_DOWN[0], encoded(STATUS_DOWN[1]))
    return Answers(by_path)


# ----------------------------------------------------------------------------- assertions


def assert_api_error(exc: BaseException, sample: Sample, *, raw_body: bytes) -> None:
    """The typed error, carrying HTTP status, response code and the raw answer."""
    expect = sample["expect"]
    assert type(exc).__name__ == expect["error"], repr(exc)
    assert isinstance(exc, DokuAPIError), repr(exc)
    assert exc.http_status == sample["http_status"]
    assert exc.response_code == expect["response_code"]
    assert exc.raw_body == raw_body


def assert_outcome_unknown(exc: BaseException, sample: Sample) -> None:
    """An open money outcome: reported unknown, carrying the answer that left it open."""
    expect = sample["expect"]
    assert isinstance(exc, TransferOutcomeUnknownError), repr(exc)
    last = exc.last_error
    assert last is not None
    assert type(last).__name__ == expect["last_error"], repr(last)
    assert_api_error(
        last, {**sample, "expect": {**expect, "error": expect["last_error"]}}, raw_body=body(sample)
    )


def body(sample: Sample) -> bytes:
    return encoded(sample["body"])


def is_error(sample: Sample) -> bool:
    return "error" in sample["expect"]


# ----------------------------------------------------------------------------- SNAP operations


async def run_account_inquiry(client: DokuClient, sample: Sample) -> None:
    call = client.kirim.account_inquiry(
        partner_reference_no="hsjkans284b2he54",
        customer_number="628115678890",
        beneficiary_account_number="8377388292",
        beneficiary_bank_code="014",
        beneficiary_account_name="FHILEA HERMANUS",
        amount="200000.00",
    )
    if is_error(sample):
        with pytest.raises(DokuError) as info:
            await call
        assert_api_error(info.value, sample, raw_body=body(sample))
        return
    answer = await call
    expect = sample["expect"]
    assert answer.response_code == expect["response_code"]
    assert answer.session_id == expect["session_id"]
    assert answer.beneficiary_account_name == expect["beneficiary_account_name"]
    assert answer.reference_no == expect["reference_no"]


async def run_balance_inquiry(client: DokuClient, sample: Sample) -> None:
    call = client.kirim.balance_inquiry(account_no=AGENT_KEY)
    if is_error(sample):
        with pytest.raises(DokuError) as info:
            await call
        assert_api_error(info.value, sample, raw_body=body(sample))
        return
    answer = await call
    expect = sample["expect"]
    assert answer.response_code == expect["response_code"]
    assert answer.available_balance == Decimal(expect["available_balance"])
    assert str(answer.available_balance) == expect["available_balance"]


async def run_transfer_bank(client: DokuClient, sample: Sample) -> None:
    call = client.kirim.transfer_bank(
        partner_reference_no="2020102900000000000001",
        customer_number="628115678890",
        beneficiary_account_number="8377388292",
        beneficiary_bank_code="014",
        amount="200000.00",
        session_id="I0438729855304540",
        beneficiary_account_name="FHILEA HERMANUS",
    )
    expect = sample["expect"]
    if is_error(sample):
        with pytest.raises(DokuError) as info:
            await call
        if "last_error" in expect:
            assert_outcome_unknown(info.value, sample)
        else:
            assert_api_error(info.value, sample, raw_body=body(sample))
        return
    result = await call
    # Accepted by DOKU's answer; the confirming check status is down here (STATUS_DOWN), so
    # the SDK reports accepted, never paid.
    assert result.status == "accepted"
    assert not result.succeeded
    assert result.status_response is None
    assert result.response is not None
    assert result.response.response_code == expect["response_code"]
    assert result.response.partner_reference_no == expect["partner_reference_no"]
    assert result.reference_no == expect["reference_no"]


async def run_check_status(client: DokuClient, sample: Sample) -> None:
    call = client.kirim.check_status(original_partner_reference_no="2020102900000000000001")
    if is_error(sample):
        with pytest.raises(DokuError) as info:
            await call
        assert_api_error(info.value, sample, raw_body=body(sample))
        return
    answer = await call
    expect = sample["expect"]
    assert answer.response_code == expect["response_code"]
    assert answer.transaction_status == expect["transaction_status"]
    assert answer.original_partner_reference_no == expect["original_partner_reference_no"]
    if expect["amount"] is None:  # "not found": no amount
        assert answer.amount is None
        return
    assert answer.amount is not None
    assert answer.amount.value == Decimal(expect["amount"])


SNAP_RUNNERS: dict[str, Callable[[DokuClient, Sample], Any]] = {
    "account_inquiry": run_account_inquiry,
    "balance_inquiry": run_balance_inquiry,
    "transfer_bank": run_transfer_bank,
    "check_status": run_check_status,
}


async def check_token(sample: Sample, keypair: KeyPair) -> None:
    """Serve the token answer; a Kirim call must authenticate with it (or fail typed)."""
    now = [1000.0]
    answers = snap_answers("token", sample)
    async with serving(answers, keypair, clocks=Clocks(monotonic=lambda: now[0])) as client:
        call = client.kirim.balance_inquiry(account_no=AGENT_KEY)
        expect = sample["expect"]
        if is_error(sample):
            with pytest.raises(DokuError) as info:
                await call
            # Token answers may hold a token: the SDK never keeps their body in an error.
            assert_api_error(info.value, sample, raw_body=b"")
            assert answers.calls_to(SNAP_PATHS["balance_inquiry"]) == []
            return
        await call
        assert client.token_fetches == 1
        cached = client._requester.tokens._token
        assert cached is not None
        assert cached.value == expect["access_token"]
        assert cached.expires_at - now[0] == pytest.approx(expect["lifetime"])
    (sent,) = answers.calls_to(SNAP_PATHS["balance_inquiry"])
    # Built from accessToken alone, never from tokenType ("Bearer " in DOKU's fixtures).
    assert sent.headers["Authorization"] == "Bearer " + expect["access_token"]
    assert expect["response_code"] == "2007300"


# ----------------------------------------------------------------------------- notifications


@asynccontextmanager
async def webhook_client(
    received: list[Notification],
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async def on_notification(notification: Notification) -> None:
        received.append(notification)

    outer = web.Application()
    outer.add_subapp(
        "/doku/",
        create_webhook_app(
            agent_key=WEBHOOK_AGENT,
            encryption_keys=WEBHOOK_KEY,
            on_notification=on_notification,
        ),
    )
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(outer, host="127.0.0.1")
    )
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def check_notification(op: str, sample: Sample) -> None:
    path = "/doku/kirim/unpaid" if op == "unpaid_notification" else "/doku/kirim/refund"
    headers = sign_kirim_notification(agent_key=WEBHOOK_AGENT, encryption_key=WEBHOOK_KEY)
    received: list[Notification] = []
    expect = sample["expect"]
    async with (
        asyncio.timeout(20),
        webhook_client(received) as client,
        client.post(path, data=body(sample), headers=headers) as resp,
    ):
        raw = await resp.read()
        assert resp.status == 200, raw
        assert json.loads(raw) == {
            "status": True,
            "transactionId": expect["transaction_id"],
            "responseCode": "00",
            "responseMessage": "Successfully processed",
        }
    (notification,) = received
    assert notification.kind == ("unpaid" if op == "unpaid_notification" else "refund")
    assert notification.transaction_id == expect["transaction_id"]
    assert notification.status == expect["status"]
    assert notification.request_id == headers["requestId"]
    assert notification.agent_key == WEBHOOK_AGENT
    processed = notification.processed_at
    assert processed is not None
    assert processed.isoformat() == expect["processed_at"]


# ----------------------------------------------------------------------------- Non-SNAP


def non_snap_answers(op: str, sample: Sample) -> Answers:
    by_path = {NON_SNAP_PATHS[op]: (int(sample["http_status"]), body(sample))}
    if op == "payout_link_initiate":
        by_path[NON_SNAP_PATHS["payout_link_status"]] = (
            PAYOUT_STATUS_DOWN[0],
            encoded(PAYOUT_STATUS_DOWN[1]),
        )
    return Answers(by_path)


async def non_snap_call(client: DokuClient, op: str) -> Any:
    if op == "payout_link_initiate":
        return await client.payout_links.initiate(
            reference_id="REF-0001",
            amount=Decimal("150000.50"),
            sender_name="PT Maju Jaya",
            receiver_name="Budi Santoso",
            receiver_phone_number="6281234567890",
            receiver_email="budi@example.com",
        )
    if op == "payout_link_status":
        return await client.payout_links.status(reference_id="REF-0001")
    if op == "transfers":
        return await client.transfers.create(
            origin="SAC-0000-0000000000001",
            destination="SAC-8014-1628130619289",
            amount=10000,
            invoice_number="INV/7274812",
        )
    assert op == "rdl_disbursement"
    return await client.rdl.disburse(
        transaction_id="transaksi-sandbox-01",
        amount=300_000_000,
        description="testuat",
        source_account_id="2340211124151729152107164433893000196019",
        destination_bank_code="BNINIDJA",
        destination_account_number="0115471119",
        destination_account_name="pk ROBERT NARO ROBERT NARO",
        destination_address="JAKARTA",
    )


async def check_non_snap(op: str, sample: Sample, keypair: KeyPair) -> None:
    answers = non_snap_answers(op, sample)
    expect = sample["expect"]
    async with serving(answers, keypair) as client:
        if is_error(sample):
            with pytest.raises(DokuError) as info:
                await non_snap_call(client, op)
            if "last_error" in expect:
                assert_outcome_unknown(info.value, sample)
            else:
                assert_api_error(info.value, sample, raw_body=body(sample))
            return
        answer = await non_snap_call(client, op)
    assert answer.replayed is False
    if op.startswith("payout_link"):
        assert answer.data is not None
        assert answer.data.reference_id == expect["reference_id"]
        assert answer.data.transaction_id == expect["transaction_id"]
        assert answer.link_status == expect["link_status"]
        assert answer.data.amount == Decimal(expect["amount"])
        if "state" in expect:
            assert answer.data.state == expect["state"]
    elif op == "transfers":
        assert answer.transfer is not None
        assert answer.transfer.invoice_number == expect["invoice_number"]
        assert answer.transfer.status == expect["status"]
        assert answer.transfer.amount == Decimal(expect["amount"])
    else:
        assert answer.transaction is not None
        assert answer.transaction.id == expect["transaction_id"]
        assert answer.transaction.status == expect["status"]
        assert answer.transaction.amount == Decimal(expect["amount"])


# ----------------------------------------------------------------------------- the test


def test_corpus_is_complete() -> None:
    """Every operation has samples, success and error where DOKU documents both."""
    ops = {path.parent.name for path in SAMPLES}
    assert ops == {"token", *SNAP_PATHS, "unpaid_notification", "refund_notification"} | set(
        NON_SNAP_PATHS
    )
    for path in SAMPLES:
        sample = load(path)
        assert set(sample) == {"source", "note", "http_status", "body", "expect"}, path
        assert sample["source"], path
        assert sample["note"], path


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
async def test_corpus_sample(path: Path, keypair: KeyPair) -> None:
    sample = load(path)
    op = path.parent.name
    if op == "token":
        await check_token(sample, keypair)
    elif op in SNAP_RUNNERS:
        async with serving(snap_answers(op, sample), keypair) as client:
            await SNAP_RUNNERS[op](client, sample)
    elif op in ("unpaid_notification", "refund_notification"):
        await check_notification(op, sample)
    else:
        await check_non_snap(op, sample, keypair)
