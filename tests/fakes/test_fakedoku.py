"""Self-test of the DOKU fake, with a tiny hand-written client (no doku_async import)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fakedoku import FakeDoku, generate_rsa_keypair, serve, snap_signature

CLIENT_ID = "BRN-0201-1700000000000"
CLIENT_SECRET = "SK-TEST-SECRET"
WIB = timezone(timedelta(hours=7))
TRANSFER_PATH = "/v1.0/emoney/transfer-bank"

VECTOR_BODY = (
    b'{"partnerReferenceNo":"hsjkans284b2he54","customerNumber":"628115678890",'
    b'"beneficiaryAccountNumber":"8377388292","beneficiaryBankCode":"014",'
    b'"amount":{"value":"200000.00","currency":"IDR"},'
    b'"additionalInfo":{"beneficiaryAccountName":"FHILEA HERMANUS","remark":"Remark test"}}'
)
VECTOR_SIGNATURE = (
    "YDYcvA5ixP7xYrQbThezrD0OAgd+FPuEFAuxZ0twjK8b9fgGOnKMOe1jU0moECD8Hi/7NoC36EsFMtNyTfgAhg=="
)

_external_ids = itertools.count(int(datetime.now(UTC).timestamp() * 1000) * 1000)


# ----------------------------------------------------------------- local signing helpers


def local_snap_signature(
    secret: str, method: str, path: str, token: str, body: bytes, ts: str
) -> str:
    digest = hashlib.sha256(body).hexdigest()
    message = ":".join((method, path, token, digest, ts)).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha512).digest()).decode()


def local_token_signature(private_pem: bytes, client_id: str, ts: str) -> str:
    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    raw = key.sign(f"{client_id}|{ts}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def minified(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def wib_now() -> str:
    return datetime.now(WIB).strftime("%Y-%m-%dT%H:%M:%S+07:00")


def transfer_body(reference: str, *, account: str = "8377388292", session_id: str = "") -> bytes:
    payload: dict[str, Any] = {
        "partnerReferenceNo": reference,
        "customerNumber": "628115678890",
        "beneficiaryAccountNumber": account,
        "beneficiaryBankCode": "014",
        "amount": {"value": "200000.00", "currency": "IDR"},
    }
    if session_id:
        payload["sessionId"] = session_id
    payload["additionalInfo"] = {"beneficiaryAccountName": "FHILEA HERMANUS", "remark": "test"}
    return minified(payload)


@dataclass
class Client:
    session: aiohttp.ClientSession
    base_url: str
    private_pem: bytes
    token: str = ""

    async def fetch_token(self, *, private_pem: bytes | None = None) -> tuple[int, Any]:
        ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {
            "X-CLIENT-KEY": CLIENT_ID,
            "X-TIMESTAMP": ts,
            "X-SIGNATURE": local_token_signature(private_pem or self.private_pem, CLIENT_ID, ts),
            "Content-Type": "application/json",
        }
        async with self.session.post(
            self.base_url + "/authorization/v1/access-token/b2b",
            data=b'{"grantType":"client_credentials"}',
            headers=headers,
        ) as resp:
            data = await resp.json()
        if resp.status == 200:
            self.token = data["accessToken"]
        return resp.status, data

    async def snap(
        self, path: str, body: bytes, *, signature: str | None = None, external_id: str = ""
    ) -> tuple[int, Any]:
        ts = wib_now()
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.token}",
            "X-TIMESTAMP": ts,
            "X-SIGNATURE": signature
            or local_snap_signature(CLIENT_SECRET, "POST", path, self.token, body, ts),
            "X-PARTNER-ID": CLIENT_ID,
            "X-EXTERNAL-ID": external_id or str(next(_external_ids)),
            "CHANNEL-ID": "H2H",
        }
        async with self.session.post(self.base_url + path, data=body, headers=headers) as resp:
            assert resp.content_type == "application/json"
            return resp.status, await resp.json()


@pytest.fixture(scope="module")
def keypair() -> tuple[bytes, bytes]:
    return generate_rsa_keypair()


@pytest.fixture
def fake(keypair: tuple[bytes, bytes]) -> FakeDoku:
    return FakeDoku(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, public_key_pem=keypair[1])


@pytest.fixture
async def client(fake: FakeDoku, keypair: tuple[bytes, bytes]) -> AsyncIterator[Client]:
    async with serve(fake.app) as base_url, aiohttp.ClientSession() as session:
        yield Client(session, base_url, keypair[0])


# ----------------------------------------------------------------- tests


def test_snap_known_answer_vector() -> None:
    args = ("SK-TEST-SECRET", "POST", TRANSFER_PATH, "eyJhbGciOiJSUzI1NiJ9.test.token")
    ts = "2024-01-12T14:30:00+07:00"
    assert hashlib.sha256(VECTOR_BODY).hexdigest() == (
        "744452bbca0209c99af9e5253c131f83e9409c4d13e95521b51bd8c45165073c"
    )
    assert snap_signature(*args, VECTOR_BODY, ts) == VECTOR_SIGNATURE
    assert local_snap_signature(*args, VECTOR_BODY, ts) == VECTOR_SIGNATURE


async def test_token_and_transfer_end_to_end(client: Client, fake: FakeDoku) -> None:
    async with asyncio.timeout(10):
        status, token = await client.fetch_token()
        assert status == 200
        assert token["responseCode"] == "2007300"
        assert token["tokenType"] == "Bearer"
        # DOKU's documented answer: expiresIn a number, additionalInfo a string.
        assert token["expiresIn"] == 900
        assert token["additionalInfo"] == ""
        assert fake.token_requests == 1

        inquiry_body = minified(
            {
                "customerNumber": "628115678890",
                "amount": {"value": "200000.00", "currency": "IDR"},
                "beneficiaryAccountNumber": "8377388292",
                "additionalInfo": {
                    "beneficiaryBankCode": "014",
                    "beneficiaryAccountName": "FHILEA HERMANUS",
                    "senderCountryCode": "ID",
                },
            }
        )
        status, inquiry = await client.snap("/v1.0/emoney/bank-account-inquiry", inquiry_body)
        assert (status, inquiry["responseCode"]) == (200, 2004200)
        session_id = inquiry["sessionId"]

        body = transfer_body("ref-e2e-1", session_id=session_id)
        status, transfer = await client.snap(TRANSFER_PATH, body)
        assert (status, transfer["responseCode"]) == (200, "2004300")
        assert transfer["partnerReferenceNo"] == "ref-e2e-1"
        assert transfer["additionalInfo"] == {"sessionId": session_id, "amount": "200000.00"}
        record = fake.transfers["ref-e2e-1"]
        assert record.reference_no == transfer["referenceNo"]
        assert record.status == "00"
        assert fake.transfers_count("ref-e2e-1") == 1

        # The same sessionId cannot pay twice.
        status, again = await client.snap(
            TRANSFER_PATH, transfer_body("ref-e2e-2", session_id=session_id)
        )
        assert (status, again["responseCode"]) == (409, "4094302")

        status, balance = await client.snap(
            "/v1.0/balance-inquiry", minified({"accountNo": "A41879"})
        )
        assert (status, balance["responseCode"]) == (200, "2001100")
        assert balance["accountInfos"][0]["availableBalance"]["value"] == "99800000.00"

        check = minified({"originalPartnerReferenceNo": "ref-e2e-1", "serviceCode": "43"})
        status, found = await client.snap("/v1.0/qr/qr-mpm-status", check)
        assert (status, found["latestTransactionStatus"], found["serviceCode"]) == (200, "00", 43)
        missing = minified({"originalPartnerReferenceNo": "nope", "serviceCode": "43"})
        status, not_found = await client.snap("/v1.0/qr/qr-mpm-status", missing)
        assert (status, not_found["latestTransactionStatus"]) == (200, "07")

        assert [c.status for c in fake.calls_for("transfer_bank")] == [200, 409]
        assert fake.errors == []


async def test_bad_token_signature(client: Client, fake: FakeDoku) -> None:
    other_private, _ = generate_rsa_keypair()
    async with asyncio.timeout(10):
        status, data = await client.fetch_token(private_pem=other_private)
    assert (status, data["responseCode"]) == (401, "4017300")
    assert data["responseMessage"] == "Unauthorized. Signature"
    assert fake.token_requests == 0


async def test_forged_signature_rejected(client: Client, fake: FakeDoku) -> None:
    async with asyncio.timeout(10):
        await client.fetch_token()
        body = transfer_body("ref-forged")
        forged = local_snap_signature(
            "wrong-secret", "POST", TRANSFER_PATH, client.token, body, "x"
        )
        status, data = await client.snap(TRANSFER_PATH, body, signature=forged)
    assert (status, data["responseCode"]) == (401, "4014300")
    assert fake.transfers == {}


async def test_token_problems(client: Client, fake: FakeDoku) -> None:
    async with asyncio.timeout(10):
        status, data = await client.snap(TRANSFER_PATH, transfer_body("r"))
        assert (status, data["responseCode"]) == (401, "4014303")
        await client.fetch_token()
        fake.expire_tokens()
        status, data = await client.snap(TRANSFER_PATH, transfer_body("r"))
        assert (status, data["responseCode"]) == (401, "4014301")


async def test_duplicates_and_unminified_body(client: Client, fake: FakeDoku) -> None:
    async with asyncio.timeout(10):
        await client.fetch_token()
        status, _ = await client.snap(TRANSFER_PATH, transfer_body("ref-dup"), external_id="77")
        assert status == 200
        status, data = await client.snap(TRANSFER_PATH, transfer_body("ref-dup"))
        assert (status, data["responseCode"]) == (409, "4094301")
        status, data = await client.snap(TRANSFER_PATH, transfer_body("ref-x"), external_id="77")
        assert (status, data["responseCode"]) == (409, "4094300")
        pretty = json.dumps(json.loads(transfer_body("ref-pretty")), indent=2).encode()
        status, data = await client.snap(TRANSFER_PATH, pretty)
        assert (status, data["responseCode"]) == (400, "4004300")
    assert fake.transfers_count("ref-dup") == 1
    assert set(fake.transfers) == {"ref-dup"}


async def test_drop_after_commit(client: Client, fake: FakeDoku) -> None:
    async with asyncio.timeout(10):
        await client.fetch_token()
        fake.inject("transfer_bank", "drop_after_commit")
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.snap(TRANSFER_PATH, transfer_body("ref-drop"))
        assert fake.transfers_count("ref-drop") == 1
        assert fake.balance == 100_000_000 - 200_000
        (call,) = fake.calls_for("transfer_bank")
        assert (call.status, call.response_code) == (0, "")

        # The server keeps working for the next request.
        check = minified({"originalPartnerReferenceNo": "ref-drop", "serviceCode": "43"})
        status, data = await client.snap("/v1.0/qr/qr-mpm-status", check)
        assert (status, data["latestTransactionStatus"]) == (200, "00")


async def test_http_fault_and_delay_commit_after_client_timeout(
    client: Client, fake: FakeDoku
) -> None:
    async with asyncio.timeout(10):
        await client.fetch_token()
        fake.inject(
            "transfer_bank", "http", http_status=429, response_code="4294300", retry_after="1"
        )
        fake.inject("transfer_bank", "delay", delay=0.5)
        status, data = await client.snap(TRANSFER_PATH, transfer_body("ref-slow"))
        assert (status, data["responseCode"]) == (429, "4294300")
        assert fake.transfers == {}
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await client.snap(TRANSFER_PATH, transfer_body("ref-slow"))
        assert fake.transfers == {}
        await fake.settle()
        assert fake.transfers_count("ref-slow") == 1
        assert fake.transfers["ref-slow"].amount == "200000.00"
