"""Self-test of the Non-SNAP DOKU fake, with a tiny hand-written client (no doku_async import)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from fake_nonsnap import (
    FakeNonSnap,
    non_snap_component,
    non_snap_digest,
    non_snap_signature,
    serve,
)

CLIENT_ID = "MCH-0001-10791114622547"
CLIENT_SECRET = "SK-TEST-SECRET"
TRANSFER_PATH = "/sac-merchant/v1/transfers"
RDL_PATH = "/sac-rdl/v1/rdl-disbursements"
INITIATE_PATH = "/v1/payout/initiate"
STATUS_PATH = "/v1/payout/status"

VECTOR_REQUEST_ID = "b6a465ea-bb65-48b2-a22b-3e8fb51cf22e"
VECTOR_TIMESTAMP = "2020-08-11T08:45:42Z"
VECTOR_BODY = (
    b'{"transfer":{"origin":"SAC-0000-0000000000001","destination":"SAC-8014-1628130619289",'
    b'"amount":10000,"invoice_number":"INV/7274812"}}'
)
VECTOR_DIGEST = "oJdV54Qy9ZLaZhAIDgmu0KPyn1RixvDzxztRVo7/vQE="
VECTOR_SIGNATURE = "HMACSHA256=Pu/GrPxA8o8FABcVqPrCHdJ5xgDXCzozfUxTTgiKdMQ="


# ----------------------------------------------------------------- local client


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def minified(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def transfer_body(invoice: str, amount: int = 10_000) -> bytes:
    return minified(
        {
            "transfer": {
                "origin": "SAC-0000-0000000000001",
                "destination": "SAC-8014-1628130619289",
                "amount": amount,
                "invoice_number": invoice,
            }
        }
    )


def payout_body(reference: str, amount: str = "150000.50") -> bytes:
    # The amount is spliced in as raw JSON text so that its decimals are exactly as written.
    return (
        b'{"amount":' + amount.encode() + b',"sender_name":"PT Maju","receiver_name":"Budi",'
        b'"receiver_phone_number":"6281234567890","receiver_email":"budi@example.com",'
        b'"reference_id":"' + reference.encode() + b'","description":"Bonus","currency":"IDR"}'
    )


def rdl_body(transaction_id: str, amount: int = 300_000_000) -> bytes:
    return minified(
        {
            "transaction": {"id": transaction_id, "amount": amount, "description": "testuat"},
            "source_account": {"account_id": "2340211124151729152107164433893000196019"},
            "account_destination": {
                "code": "BNINIDJA",
                "account_bank_number": "0115471119",
                "account_bank_name": "pk ROBERT NARO ROBERT NARO",
                "address": "JAKARTA",
            },
        }
    )


@dataclass
class Reply:
    status: int
    raw: bytes
    headers: dict[str, str]
    path: str
    request_id: str

    def json(self) -> Any:
        return json.loads(self.raw, parse_float=Decimal)

    def signature_ok(self, *, secret: str = CLIENT_SECRET, algorithm: str = "sha256") -> bool:
        expected = non_snap_signature(
            secret,
            self.headers["Client-Id"],
            self.headers["Request-Id"],
            self.headers["Response-Timestamp"],
            self.path,
            self.raw,
            algorithm=algorithm,
            timestamp_header="Response-Timestamp",
        )
        return hmac.compare_digest(expected.encode(), self.headers["Signature"].encode())


@dataclass
class Client:
    session: aiohttp.ClientSession
    base_url: str
    sent: list[str] = field(default_factory=list)

    async def post(
        self,
        path: str,
        body: bytes,
        *,
        request_id: str | None = None,
        secret: str = CLIENT_SECRET,
        client_id: str = CLIENT_ID,
        timestamp: str | None = None,
        algorithm: str = "sha256",
        target: str | None = None,
    ) -> Reply:
        rid = request_id if request_id is not None else str(uuid.uuid4())
        ts = timestamp if timestamp is not None else utc_now()
        headers = {
            "Client-Id": client_id,
            "Request-Id": rid,
            "Request-Timestamp": ts,
            "Signature": non_snap_signature(
                secret, client_id, rid, ts, target or path, body, algorithm=algorithm
            ),
            "Content-Type": "application/json",
        }
        self.sent.append(rid)
        async with self.session.post(self.base_url + path, data=body, headers=headers) as resp:
            assert resp.content_type == "application/json"
            return Reply(resp.status, await resp.read(), dict(resp.headers), path, rid)


@pytest.fixture
def fake() -> FakeNonSnap:
    return FakeNonSnap(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)


@pytest.fixture
async def client(fake: FakeNonSnap) -> AsyncIterator[Client]:
    async with serve(fake.app) as base_url, aiohttp.ClientSession() as session:
        yield Client(session, base_url)


# ----------------------------------------------------------------- tests


def test_known_answer_vector() -> None:
    assert non_snap_digest(VECTOR_BODY) == VECTOR_DIGEST
    args = (CLIENT_SECRET, CLIENT_ID, VECTOR_REQUEST_ID, VECTOR_TIMESTAMP, TRANSFER_PATH)
    assert non_snap_signature(*args, VECTOR_BODY) == VECTOR_SIGNATURE

    # The component, spelled out independently of the helper.
    component = (
        f"Client-Id:{CLIENT_ID}\nRequest-Id:{VECTOR_REQUEST_ID}\n"
        f"Request-Timestamp:{VECTOR_TIMESTAMP}\nRequest-Target:{TRANSFER_PATH}\n"
        f"Digest:{base64.b64encode(hashlib.sha256(VECTOR_BODY).digest()).decode()}"
    )
    assert non_snap_component(*args[1:], VECTOR_BODY) == component
    mac = hmac.new(CLIENT_SECRET.encode(), component.encode(), hashlib.sha256).digest()
    assert "HMACSHA256=" + base64.b64encode(mac).decode() == VECTOR_SIGNATURE

    # Variants: SHA-512, the response header name, and no Digest line without a body.
    mac512 = hmac.new(CLIENT_SECRET.encode(), component.encode(), hashlib.sha512).digest()
    assert non_snap_signature(*args, VECTOR_BODY, algorithm="sha512") == (
        "HMACSHA512=" + base64.b64encode(mac512).decode()
    )
    response_component = component.replace("Request-Timestamp:", "Response-Timestamp:")
    assert (
        non_snap_component(*args[1:], VECTOR_BODY, timestamp_header="Response-Timestamp")
        == response_component
    )
    assert non_snap_component(*args[1:], None) == component.rsplit("\n", 1)[0]
    with pytest.raises(ValueError, match="unsupported"):
        non_snap_signature(*args, VECTOR_BODY, algorithm="md5")


async def test_signed_transfer_accepted_and_response_verifies(
    client: Client, fake: FakeNonSnap
) -> None:
    async with asyncio.timeout(10):
        reply = await client.post(TRANSFER_PATH, transfer_body("INV/7274812"))
    assert reply.status == 200
    assert reply.headers["Client-Id"] == CLIENT_ID
    assert reply.headers["Request-Id"] == reply.request_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", reply.headers["Response-Timestamp"])
    assert reply.headers["Signature"].startswith("HMACSHA256=")
    assert reply.signature_ok()
    assert not reply.signature_ok(secret="other-secret")
    transfer = reply.json()["transfer"]
    assert transfer["invoice_number"] == "INV/7274812"
    assert transfer["amount"] == 10_000
    assert transfer["status"] == "SUCCESS"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+07:00", transfer["created"])
    assert fake.balance == 10_000_000_000 - 10_000
    assert fake.effects_count("transfer", "INV/7274812") == 1
    assert fake.transfers["INV/7274812"]["request_id"] == reply.request_id
    (call,) = fake.calls_for("transfer")
    assert (call.status, call.response_code, call.path) == (200, "200", TRANSFER_PATH)
    assert fake.errors == []


async def test_request_verification_failures(client: Client, fake: FakeNonSnap) -> None:
    body = transfer_body("INV-bad")
    async with asyncio.timeout(10):
        forged = await client.post(TRANSFER_PATH, body, secret="wrong-secret")
        assert forged.status == 401
        assert forged.json() == {
            "error": {"code": "invalid_signature", "message": "Invalid Signature"}
        }
        wrong_client = await client.post(TRANSFER_PATH, body, client_id="MCH-other")
        assert wrong_client.status == 401
        assert wrong_client.json()["error"]["code"] == "invalid_client_id"
        long_id = await client.post(TRANSFER_PATH, body, request_id="x" * 129)
        assert long_id.status == 400
        assert long_id.json()["errors"][0]["field"] == "Request-Id"
        wib = await client.post(TRANSFER_PATH, body, timestamp="2020-08-11T15:45:42+07:00")
        assert wib.status == 400
        assert wib.json()["errors"][0]["field"] == "Request-Timestamp"
        # The sha512 form is not accepted on a sha256 route.
        sha512 = await client.post(TRANSFER_PATH, body, algorithm="sha512")
        assert sha512.status == 401
        # A request signed for another path is rejected.
        other = await client.post(TRANSFER_PATH, body, target=RDL_PATH)
        assert other.status == 401
        valid = await client.post(TRANSFER_PATH, body)
        assert valid.status == 200
        unknown = await client.post("/sac-merchant/v1/nope", body)
        assert unknown.status == 404
        assert unknown.json()["error"]["code"] == "not_found"
    assert fake.effects_count("transfer", "INV-bad") == 1  # only the valid one
    assert [call.status for call in fake.calls_for("transfer")] == [
        401,
        401,
        400,
        400,
        401,
        401,
        200,
    ]


async def test_replayed_request_id(client: Client, fake: FakeNonSnap) -> None:
    body = transfer_body("INV-replay")
    async with asyncio.timeout(10):
        first = await client.post(TRANSFER_PATH, body, request_id="rid-replay")
        assert first.status == 200
        again = await client.post(TRANSFER_PATH, body, request_id="rid-replay")
        assert again.status == 409
        assert again.raw == first.raw
        assert again.signature_ok()
        different = await client.post(
            TRANSFER_PATH, transfer_body("INV-other"), request_id="rid-replay"
        )
        assert different.status == 409
        assert different.json()["error"]["code"] == "duplicate_request_id"
    assert fake.effects_count("transfer", "INV-replay") == 1
    assert fake.effects_count("transfer", "INV-other") == 0
    assert set(fake.transfers) == {"INV-replay"}
    assert fake.balance == 10_000_000_000 - 10_000


async def test_duplicate_business_keys(client: Client, fake: FakeNonSnap) -> None:
    async with asyncio.timeout(10):
        assert (await client.post(TRANSFER_PATH, transfer_body("INV-dup"))).status == 200
        dup = await client.post(TRANSFER_PATH, transfer_body("INV-dup"))
        assert dup.status == 409
        assert dup.json()["error"]["code"] == "duplicate_reference"
        # The duplicate answer is itself committed: replaying it gives the same bytes.
        replay = await client.post(
            TRANSFER_PATH, transfer_body("INV-dup"), request_id=dup.request_id
        )
        assert (replay.status, replay.raw) == (409, dup.raw)

        assert (await client.post(RDL_PATH, rdl_body("trx-01"))).status == 200
        dup_rdl = await client.post(RDL_PATH, rdl_body("trx-01", amount=20_000))
        assert (dup_rdl.status, dup_rdl.json()["error"]["code"]) == (409, "duplicate_reference")

        assert (await client.post(INITIATE_PATH, payout_body("REF-dup"))).status == 200
        dup_link = await client.post(INITIATE_PATH, payout_body("REF-dup"))
        assert (dup_link.status, dup_link.json()["error"]["code"]) == (409, "duplicate_reference")
    assert fake.effects_count("transfer", "INV-dup") == 1
    assert fake.effects_count("rdl", "trx-01") == 1
    assert fake.effects_count("payout_initiate", "REF-dup") == 1


async def test_validation(client: Client, fake: FakeNonSnap) -> None:
    async with asyncio.timeout(10):
        as_string = await client.post(INITIATE_PATH, payout_body("REF-str", '"150000.50"'))
        assert as_string.status == 400
        assert as_string.json() == {
            "status": "FAILED",
            "message": "Bad Request",
            "errors": [{"field": "amount", "message": "must be a JSON number"}],
        }
        three = await client.post(INITIATE_PATH, payout_body("REF-3", "1.005"))
        assert (three.status, three.json()["errors"][0]["field"]) == (400, "amount")
        phone = payout_body("REF-phone").replace(b"6281234567890", b"081234567890")
        bad_phone = await client.post(INITIATE_PATH, phone)
        assert bad_phone.json()["errors"] == [
            {"field": "receiver_phone_number", "message": "must be digits starting with 62"}
        ]
        extra = payout_body("REF-x").replace(b'{"amount"', b'{"referenceId":"x","amount"')
        unknown_field = await client.post(INITIATE_PATH, extra)
        assert unknown_field.json()["errors"] == [
            {"field": "referenceId", "message": "unknown field"}
        ]

        float_amount = transfer_body("INV-f").replace(b"10000", b"10000.0")
        bad_transfer = await client.post(TRANSFER_PATH, float_amount)
        assert bad_transfer.json()["errors"] == [
            {"field": "transfer.amount", "message": "must be a JSON integer"}
        ]
        missing = await client.post(TRANSFER_PATH, b'{"transfer":{"origin":"a"}}')
        assert [e["field"] for e in missing.json()["errors"]] == [
            "transfer.destination",
            "transfer.amount",
            "transfer.invoice_number",
        ]
        poor = await client.post(TRANSFER_PATH, transfer_body("INV-poor", 10**11))
        poorer = await client.post(TRANSFER_PATH, transfer_body("INV-poor2", 10**10 + 1))
        assert (poor.status, poorer.status) == (400, 400)
        assert poorer.json()["errors"] == [
            {"field": "transfer.amount", "message": "insufficient balance"}
        ]

        small = await client.post(RDL_PATH, rdl_body("trx-small", amount=9_999))
        assert small.json()["errors"][0]["field"] == "transaction.amount"
        bad_id = await client.post(RDL_PATH, rdl_body("trx/slash"))
        assert bad_id.json()["errors"][0]["field"] == "transaction.id"
        no_dest = await client.post(RDL_PATH, b'{"transaction":{"id":"a","amount":10000}}')
        assert [e["field"] for e in no_dest.json()["errors"]] == [
            "transaction.description",
            "source_account",
            "account_destination",
        ]
        not_json = await client.post(TRANSFER_PATH, b"{nope")
        assert not_json.json()["errors"][0]["field"] == "body"
    assert fake.payout_links == {}
    assert fake.transfers == {}
    assert fake.rdl == {}
    assert fake.balance == 10_000_000_000
    assert fake.errors == []


async def test_payout_initiate_status_and_set_status(client: Client, fake: FakeNonSnap) -> None:
    async with asyncio.timeout(10):
        created = await client.post(INITIATE_PATH, payout_body("REF-001"))
        assert created.status == 200
        assert created.signature_ok()
        assert b'"amount":150000.50,' in created.raw  # a JSON number, decimals kept
        payload = created.json()
        assert (payload["status"], payload["message"]) == ("SUCCESS", "Payout link created")
        data = payload["data"]
        assert re.fullmatch(r"PL\d{10}", data["transaction_id"])
        assert data["reference_id"] == "REF-001"
        assert data["status"] == "PENDING"
        assert data["amount"] == Decimal("150000.50")
        assert data["receiver_phone_number"] == "6281234567890"
        assert data["created_time"].endswith("Z")
        assert fake.payout_links["REF-001"]["status"] == "PENDING"
        assert fake.payout_links["REF-001"]["amount"] == Decimal("150000.50")

        status_body = minified({"transaction_id": "REF-001"})
        status = await client.post(STATUS_PATH, status_body, request_id="rid-status")
        assert status.status == 200
        assert status.signature_ok()
        assert b'"amount":150000.50,' in status.raw
        info = status.json()["data"]
        assert (info["status"], info["state"]) == ("PENDING", "GENERATED")
        assert info["transaction_id"] == data["transaction_id"]

        fake.set_payout_status("REF-001", "COMPLETED")
        # Status calls are reads: the same Request-Id is answered afresh, not replayed.
        again = await client.post(STATUS_PATH, status_body, request_id="rid-status")
        assert again.status == 200
        assert (again.json()["data"]["status"], again.json()["data"]["state"]) == (
            "COMPLETED",
            "DONE",
        )
        fake.set_payout_status("REF-001", "CONFIRMED")
        confirmed = await client.post(STATUS_PATH, status_body)
        assert confirmed.json()["data"]["state"] == "PROCES"

        missing = await client.post(STATUS_PATH, minified({"transaction_id": "REF-404"}))
        assert missing.status == 404
        assert missing.json() == {
            "status": "FAILED",
            "message": "Transaction not found",
            "data": {"transaction_id": "REF-404"},
        }
        integer = await client.post(INITIATE_PATH, payout_body("REF-002", "150000"))
        assert integer.status == 200
        assert b'"amount":150000,' in integer.raw
    assert fake.effects_count("payout_initiate", "REF-001") == 1
    assert len(fake.calls_for("payout_status")) == 4
    with pytest.raises(KeyError):
        fake.set_payout_status("REF-404", "COMPLETED")


async def test_rdl_disbursement(client: Client, fake: FakeNonSnap) -> None:
    async with asyncio.timeout(10):
        reply = await client.post(RDL_PATH, rdl_body("transaksi-sandbox-01"))
    assert reply.status == 200
    assert reply.signature_ok()
    payload = reply.json()
    assert payload["transaction"]["id"] == "transaksi-sandbox-01"
    assert payload["transaction"]["amount"] == 300_000_000
    assert payload["transaction"]["status"] == "PENDING"
    assert payload["transaction"]["create_date"].endswith("Z")
    assert payload["account_destination"]["code"] == "BNINIDJA"
    assert payload["source_account"] == {"account_id": "2340211124151729152107164433893000196019"}
    assert fake.rdl["transaksi-sandbox-01"]["transaction"]["status"] == "PENDING"
    assert fake.effects_count("rdl", "transaksi-sandbox-01") == 1
    assert fake.balance == 10_000_000_000  # RDL does not touch the sub-account balance


async def test_sha512_payout_link_scheme() -> None:
    fake = FakeNonSnap(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, payout_link_scheme="sha512"
    )
    async with (
        asyncio.timeout(10),
        serve(fake.app) as base_url,
        aiohttp.ClientSession() as session,
    ):
        client = Client(session, base_url)
        sha256 = await client.post(INITIATE_PATH, payout_body("REF-512"))
        assert sha256.status == 401
        created = await client.post(INITIATE_PATH, payout_body("REF-512"), algorithm="sha512")
        assert created.status == 200
        assert created.headers["Signature"].startswith("HMACSHA512=")
        assert created.signature_ok(algorithm="sha512")
        status = await client.post(
            STATUS_PATH, minified({"transaction_id": "REF-512"}), algorithm="sha512"
        )
        assert status.status == 200
        assert status.signature_ok(algorithm="sha512")
        # Transfers stay on HMAC-SHA256.
        transfer = await client.post(TRANSFER_PATH, transfer_body("INV-512"))
        assert transfer.status == 200
        assert transfer.signature_ok(algorithm="sha256")
    assert fake.effects_count("payout_initiate", "REF-512") == 1


async def test_drop_after_commit(client: Client, fake: FakeNonSnap) -> None:
    body = transfer_body("INV-drop")
    async with asyncio.timeout(10):
        fake.inject("transfer", "drop_after_commit")
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.post(TRANSFER_PATH, body, request_id="rid-drop")
        assert fake.effects_count("transfer", "INV-drop") == 1
        (call,) = fake.calls_for("transfer")
        assert (call.status, call.response_code) == (0, "")
        # The retry with the same Request-Id learns the original outcome.
        retry = await client.post(TRANSFER_PATH, body, request_id="rid-drop")
        assert retry.status == 409
        assert retry.json()["transfer"]["status"] == "SUCCESS"
        assert retry.signature_ok()

        fake.inject("transfer", "drop_before_commit")
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.post(TRANSFER_PATH, transfer_body("INV-drop2"), request_id="rid-d2")
        assert fake.effects_count("transfer", "INV-drop2") == 0
        retry2 = await client.post(TRANSFER_PATH, transfer_body("INV-drop2"), request_id="rid-d2")
        assert retry2.status == 200
    assert fake.effects_count("transfer", "INV-drop") == 1
    assert fake.effects_count("transfer", "INV-drop2") == 1


async def test_http_faults(client: Client, fake: FakeNonSnap) -> None:
    async with asyncio.timeout(10):
        fake.inject("payout_initiate", "http")
        fake.inject("payout_initiate", "http", http_status=429, retry_after="2")
        fake.inject("payout_initiate", "http_after_commit", http_status=408)
        failed = await client.post(INITIATE_PATH, payout_body("REF-f"), request_id="rid-f")
        assert failed.status == 500
        assert failed.json() == {
            "status": "FAILED",
            "message": "Internal Error",
            "data": {"reference_id": "REF-f"},
        }
        assert failed.signature_ok()
        limited = await client.post(INITIATE_PATH, payout_body("REF-f"), request_id="rid-f")
        assert (limited.status, limited.headers["Retry-After"]) == (429, "2")
        assert fake.payout_links == {}
        timed_out = await client.post(INITIATE_PATH, payout_body("REF-f"), request_id="rid-f")
        assert timed_out.status == 408
        assert timed_out.json()["message"] == "Time out"
        assert fake.effects_count("payout_initiate", "REF-f") == 1
        replay = await client.post(INITIATE_PATH, payout_body("REF-f"), request_id="rid-f")
        assert replay.status == 409
        assert replay.json()["data"]["reference_id"] == "REF-f"

        fake.inject("transfer", "http", http_status=503, body={"custom": True})
        custom = await client.post(TRANSFER_PATH, transfer_body("INV-c"))
        assert (custom.status, custom.json()) == (503, {"custom": True})
        fake.inject("transfer", "unsigned")
        unsigned = await client.post(TRANSFER_PATH, transfer_body("INV-u"))
        assert unsigned.status == 200
        assert "Signature" not in unsigned.headers
        assert fake.pending_faults("transfer") == 0
    assert fake.effects_count("payout_initiate", "REF-f") == 1
    assert fake.effects_count("transfer", "INV-u") == 1
    assert fake.effects_count("transfer", "INV-c") == 0


async def test_delay_commits_after_client_gave_up(client: Client, fake: FakeNonSnap) -> None:
    async with asyncio.timeout(10):
        fake.inject("rdl", "delay", delay=0.5)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await client.post(RDL_PATH, rdl_body("trx-slow"), request_id="rid-slow")
        assert fake.rdl == {}
        await fake.settle()
        assert fake.effects_count("rdl", "trx-slow") == 1
        again = await client.post(RDL_PATH, rdl_body("trx-slow"), request_id="rid-slow")
        assert again.status == 409
        assert again.json()["transaction"]["id"] == "trx-slow"


async def test_forge_next_response_signature(client: Client, fake: FakeNonSnap) -> None:
    async with asyncio.timeout(10):
        fake.forge_next_response_signature()
        forged = await client.post(TRANSFER_PATH, transfer_body("INV-forge"))
        assert forged.status == 200
        assert forged.headers["Signature"].startswith("HMACSHA256=")
        assert not forged.signature_ok()
        honest = await client.post(TRANSFER_PATH, transfer_body("INV-honest"))
        assert honest.signature_ok()


async def test_unsigned_responses_when_disabled() -> None:
    fake = FakeNonSnap(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, sign_responses=False)
    async with (
        asyncio.timeout(10),
        serve(fake.app) as base_url,
        aiohttp.ClientSession() as session,
    ):
        reply = await Client(session, base_url).post(TRANSFER_PATH, transfer_body("INV-n"))
    assert reply.status == 200
    assert "Signature" not in reply.headers
    assert reply.headers["Request-Id"] == reply.request_id
