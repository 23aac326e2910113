"""``doku_async.testing.DokuSimulator`` driven end to end through the real SDK client.

Every test talks to a simulator on 127.0.0.1 through :class:`~doku_async.DokuClient` (raw
``aiohttp`` requests only where the SDK cannot misbehave on purpose: a reused
``X-EXTERNAL-ID``, a forged body) and checks both what the SDK returned and what the
simulator's ledger says happened. Retries are instant (a no-op ``sleep``, no jitter).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fakedoku import generate_rsa_keypair, serve
from helpers import SleepRecorder, client_for

from doku_async import (
    AuthenticationError,
    BadRequestError,
    BusinessRejectionError,
    Clocks,
    DokuClient,
    DuplicateRequestError,
    InsufficientFundsError,
    InvalidAccountError,
    RetryPolicy,
    SignatureVerificationError,
    Timeouts,
    TransactionStatus,
    TransferFailedError,
    TransferOutcomeUnknownError,
    TransferResult,
)
from doku_async.models.payout_link import PayoutLinkResponse, PayoutLinkStatus
from doku_async.testing import (
    FAULT_KINDS,
    OPERATIONS,
    DokuSimulator,
    Fault,
    SimulatorCredentials,
)
from doku_async.webhooks import (
    Notification,
    RefundNotification,
    UnpaidNotification,
    create_webhook_app,
)

CUSTOMER = "628115678890"
ACCOUNT = "8377388292"
BANK = "014"
AMOUNT = Decimal("150000.00")
START_BALANCE = Decimal("1000000000.00")
TOKEN_PATH = "/authorization/v1/access-token/b2b"
SAC_ORIGIN = "SAC-0000-0000000000001"
SAC_DESTINATION = "SAC-8014-1628130619289"


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def other_private_key() -> bytes:
    """A second RSA private key that the simulator does not know."""
    return generate_rsa_keypair()[0]


@asynccontextmanager
async def running(
    creds: SimulatorCredentials, *, client: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[tuple[DokuSimulator, DokuClient]]:
    """A started simulator with ``options`` and a client for it; bounded by 20 s."""
    async with (
        asyncio.timeout(20),
        DokuSimulator(credentials=creds, **options) as sim,
        client_for(sim, **(client or {})) as doku,
    ):
        yield sim, doku


async def inquire(
    doku: DokuClient,
    ref: str,
    *,
    account: str = ACCOUNT,
    bank: str = BANK,
    amount: Decimal | str = AMOUNT,
) -> Any:
    return await doku.kirim.account_inquiry(
        partner_reference_no=ref,
        customer_number=CUSTOMER,
        beneficiary_account_number=account,
        beneficiary_bank_code=bank,
        beneficiary_account_name="Fhilea Hermanus",
        amount=amount,
    )


async def pay(
    doku: DokuClient,
    ref: str,
    *,
    account: str = ACCOUNT,
    bank: str = BANK,
    amount: Decimal | str = AMOUNT,
    session_id: str | None = None,
) -> TransferResult:
    return await doku.kirim.transfer_bank(
        partner_reference_no=ref,
        customer_number=CUSTOMER,
        beneficiary_account_number=account,
        beneficiary_bank_code=bank,
        amount=amount,
        session_id=session_id,
    )


async def balance_of(doku: DokuClient, sim: DokuSimulator) -> Decimal:
    answer = await doku.kirim.balance_inquiry(account_no=sim.credentials.agent_key)
    value = answer.available_balance
    assert value is not None
    return value


async def status_of(doku: DokuClient, ref: str) -> str:
    answer = await doku.kirim.check_status(original_partner_reference_no=ref)
    return answer.transaction_status


def statuses(sim: DokuSimulator, op: str) -> list[int]:
    return [r.status for r in sim.requests_for(op)]


async def initiate_link(doku: DokuClient, ref: str, **kwargs: Any) -> PayoutLinkResponse:
    return await doku.payout_links.initiate(
        reference_id=ref,
        amount=Decimal("250000.50"),
        sender_name="PT Maju",
        receiver_name="Budi",
        receiver_phone_number="6281234567890",
        receiver_email="budi@example.com",
        **kwargs,
    )


async def sub_transfer(doku: DokuClient, invoice: str, amount: int = 10_000, **kwargs: Any) -> Any:
    return await doku.transfers.create(
        origin=SAC_ORIGIN,
        destination=SAC_DESTINATION,
        amount=amount,
        invoice_number=invoice,
        **kwargs,
    )


async def disburse(doku: DokuClient, txn: str, amount: int = 50_000, **kwargs: Any) -> Any:
    return await doku.rdl.disburse(
        transaction_id=txn,
        amount=amount,
        description="loan disbursement",
        source_account_id="RDL-0001",
        destination_bank_code="BNINIDJA",
        destination_account_number="0115476117",
        destination_account_name="Budi",
        destination_address="Jakarta",
        **kwargs,
    )


NonSnapCall = Callable[[DokuClient, str, str], Awaitable[Any]]


async def _link_call(doku: DokuClient, key: str, request_id: str) -> Any:
    return await initiate_link(doku, key, request_id=request_id)


async def _transfer_call(doku: DokuClient, key: str, request_id: str) -> Any:
    return await sub_transfer(doku, key, request_id=request_id)


async def _rdl_call(doku: DokuClient, key: str, request_id: str) -> Any:
    return await disburse(doku, key, request_id=request_id)


def effects(sim: DokuSimulator, op: str) -> int:
    """How many effects a Non-SNAP money-moving operation left in the simulator."""
    store = {
        "payout_link_initiate": sim.payout_links,
        "transfers": sim.sub_account_transfers,
        "rdl": sim.rdl_disbursements,
    }[op]
    return len(store)


NON_SNAP_MONEY: list[tuple[str, NonSnapCall]] = [
    ("payout_link_initiate", _link_call),
    ("transfers", _transfer_call),
    ("rdl", _rdl_call),
]


# --- raw SNAP / Non-SNAP requests, signed independently of the SDK ---------------------------


def _snap_ts() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+07:00", time.gmtime(time.time() + 7 * 3600))


async def raw_token(http: aiohttp.ClientSession, sim: DokuSimulator) -> str:
    return str((await raw_token_answer(http, sim))["accessToken"])


async def raw_token_answer(http: aiohttp.ClientSession, sim: DokuSimulator) -> dict[str, Any]:
    creds = sim.credentials
    key = serialization.load_pem_private_key(creds.private_key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    signature = key.sign(f"{creds.client_id}|{ts}".encode(), padding.PKCS1v15(), hashes.SHA256())
    headers = {
        "Content-Type": "application/json",
        "X-CLIENT-KEY": creds.client_id,
        "X-TIMESTAMP": ts,
        "X-SIGNATURE": base64.b64encode(signature).decode(),
    }
    async with http.post(
        sim.base_url + TOKEN_PATH, data=b'{"grantType":"client_credentials"}', headers=headers
    ) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
    return body


async def raw_snap(
    http: aiohttp.ClientSession,
    sim: DokuSimulator,
    token: str,
    path: str,
    body: dict[str, Any],
    *,
    external_id: str,
    signed_body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST a SNAP request; the signature covers ``signed_body`` when given (a forgery)."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    signed = raw if signed_body is None else json.dumps(signed_body, separators=(",", ":")).encode()
    ts = _snap_ts()
    string_to_sign = f"POST:{path}:{token}:{hashlib.sha256(signed).hexdigest()}:{ts}"
    mac = hmac.new(sim.credentials.client_secret.encode(), string_to_sign.encode(), "sha512")
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Bearer " + token,
        "X-TIMESTAMP": ts,
        "X-SIGNATURE": base64.b64encode(mac.digest()).decode(),
        "X-PARTNER-ID": sim.credentials.client_id,
        "X-EXTERNAL-ID": external_id,
        "CHANNEL-ID": "H2H",
    }
    async with http.post(sim.base_url + path, data=raw, headers=headers) as resp:
        return resp.status, await resp.json()


async def raw_non_snap(
    http: aiohttp.ClientSession,
    sim: DokuSimulator,
    path: str,
    body: dict[str, Any],
    *,
    signed_body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    raw = json.dumps(body, separators=(",", ":")).encode()
    signed = raw if signed_body is None else json.dumps(signed_body, separators=(",", ":")).encode()
    creds = sim.credentials
    request_id = str(uuid.uuid4())
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    digest = base64.b64encode(hashlib.sha256(signed).digest()).decode()
    component = (
        f"Client-Id:{creds.client_id}\nRequest-Id:{request_id}\nRequest-Timestamp:{ts}\n"
        f"Request-Target:{path}\nDigest:{digest}"
    )
    mac = hmac.new(creds.client_secret.encode(), component.encode(), "sha256")
    headers = {
        "Content-Type": "application/json",
        "Client-Id": creds.client_id,
        "Request-Id": request_id,
        "Request-Timestamp": ts,
        "Signature": "HMACSHA256=" + base64.b64encode(mac.digest()).decode(),
    }
    async with http.post(sim.base_url + path, data=raw, headers=headers) as resp:
        return resp.status, await resp.json()


# ============================================================================ 0. basics


def test_credentials_repr_hides_secrets(creds: SimulatorCredentials) -> None:
    text = repr(creds)
    assert creds.client_id in text
    assert creds.client_secret not in text
    assert "PRIVATE" not in text
    assert creds.encryption_key not in text
    assert len(creds.encryption_key) == 16


def test_generated_credentials_differ() -> None:
    a, b = SimulatorCredentials.generate(), SimulatorCredentials.generate()
    assert a.client_id != b.client_id or a.client_secret != b.client_secret
    assert a.private_key_pem != b.private_key_pem


def test_inject_validates_its_arguments(creds: SimulatorCredentials) -> None:
    sim = DokuSimulator(credentials=creds)
    with pytest.raises(ValueError, match="unknown operation"):
        sim.inject("refund", "error")
    with pytest.raises(ValueError, match="unknown fault"):
        sim.inject("token", "explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        sim.inject("token", "error", times=0)
    sim.inject("check_status", "error", times=3)
    assert sim.faults.pending("check_status") == 3
    assert sim.faults.take("check_status") == Fault("error")
    sim.faults.clear()
    assert sim.faults.pending("check_status") == 0
    assert {"token", "transfer_bank", "rdl"} <= OPERATIONS
    assert {"latency", "drop_after_commit"} <= FAULT_KINDS


async def test_client_kwargs_point_at_the_running_simulator(creds: SimulatorCredentials) -> None:
    async with asyncio.timeout(20), DokuSimulator(credentials=creds) as sim:
        kwargs = sim.client_kwargs()
        assert kwargs["base_url"] == sim.base_url
        assert sim.base_url.startswith("http://127.0.0.1:")
        assert sim.port != 0
        assert kwargs["client_id"] == creds.client_id
        async with DokuClient(**kwargs) as doku:
            assert await balance_of(doku, sim) == START_BALANCE


# ============================================================================ 1. operations


@pytest.mark.parametrize("family", ["/v1.0", "/snap/v1.1"])
async def test_kirim_flow_end_to_end(creds: SimulatorCredentials, family: str) -> None:
    async with running(creds, client={"kirim_paths": family}) as (sim, doku):
        before = await balance_of(doku, sim)
        assert before == START_BALANCE

        inquiry = await inquire(doku, "INQ-1")
        assert inquiry.response_code == "2004200"  # sent as a JSON number
        assert inquiry.beneficiary_account_name == "FHILEA HERMANUS"
        assert inquiry.session_id

        result = await pay(doku, "PAY-1", session_id=inquiry.session_id)
        assert result.status == "succeeded"
        assert result.succeeded
        assert result.response is not None
        assert result.response.response_code == "2004300"
        assert result.reference_no == sim.transfers["PAY-1"].reference_no
        assert result.resent is False
        assert sim.transfer_count("PAY-1") == 1
        assert sim.transfers["PAY-1"].session_id == inquiry.session_id

        found = await doku.kirim.check_status(original_partner_reference_no="PAY-1")
        assert found.response_code == "2005300"
        assert found.transaction_status == TransactionStatus.SUCCESS
        assert found.original_reference_no == result.reference_no
        assert found.amount is not None
        assert found.amount.value == AMOUNT
        assert found.transaction_date is not None  # malformed on purpose, kept as text

        after = await balance_of(doku, sim)
        assert after == before - AMOUNT == sim.balance()

        assert sim.token_requests == 1
        assert doku.token_fetches == 1
        kirim_paths = [r.path for r in sim.requests if r.operation != "token"]
        assert kirim_paths
        assert all(path.startswith(family + "/") for path in kirim_paths)
        assert all(r.status == 200 for r in sim.requests)


async def test_request_timestamp_in_utc_is_accepted(creds: SimulatorCredentials) -> None:
    async with running(creds, client={"request_timestamp_format": "utc"}) as (sim, doku):
        assert await balance_of(doku, sim) == START_BALANCE
        ts = sim.requests_for("balance_inquiry")[0].headers["X-TIMESTAMP"]
        assert ts.endswith("Z")


async def test_balance_inquiry_of_an_unknown_account(creds: SimulatorCredentials) -> None:
    async with running(creds) as (sim, doku):
        with pytest.raises(InvalidAccountError) as info:
            await doku.kirim.balance_inquiry(account_no="A00000X")
        assert info.value.response_code == "4041111"
        assert len(sim.requests_for("balance_inquiry")) == 1  # final: not retried


async def test_check_status_of_an_unknown_transfer_is_07(creds: SimulatorCredentials) -> None:
    async with running(creds) as (_, doku):
        found = await doku.kirim.check_status(original_partner_reference_no="NEVER-SENT")
        assert found.transaction_status == TransactionStatus.NOT_FOUND


async def test_payout_link_lifecycle(creds: SimulatorCredentials) -> None:
    async with running(creds, client={"response_signatures": "required"}) as (sim, doku):
        created = await initiate_link(doku, "LINK-1")
        assert created.status == "SUCCESS"
        assert created.replayed is False
        assert created.data is not None
        assert created.data.amount == Decimal("250000.50")
        assert created.link_status == PayoutLinkStatus.EMAIL_SENT
        assert created.data.transaction_id

        pending = await doku.payout_links.status(reference_id="LINK-1")
        assert pending.link_status == "EMAIL_SENT"
        assert pending.data is not None
        assert pending.data.state == "GENERATED"
        assert not pending.data.is_terminal

        sim.claim_payout_link("LINK-1")
        done = await doku.payout_links.status(reference_id="LINK-1")
        assert done.link_status == PayoutLinkStatus.COMPLETED
        assert done.data is not None
        assert done.data.state == "DONE"
        assert done.data.is_terminal
        assert sim.payout_links["LINK-1"]["history"] == [
            "PENDING",
            "EMAIL_SENT",
            "EMAIL_LINK_OPENED",
            "CONFIRMED",
            "COMPLETED",
        ]
        with pytest.raises(ValueError, match="already COMPLETED"):
            sim.claim_payout_link("LINK-1")

        await initiate_link(doku, "LINK-2")
        sim.claim_payout_link("LINK-2", succeed=False)
        failed = await doku.payout_links.status(reference_id="LINK-2")
        assert failed.link_status == PayoutLinkStatus.FAILED
        assert failed.data is not None
        assert failed.data.is_terminal

        await initiate_link(doku, "LINK-3")
        sim.set_payout_link_status("LINK-3", "SOMETHING_NEW")
        odd = await doku.payout_links.status(reference_id="LINK-3")
        assert odd.link_status == "SOMETHING_NEW"
        assert not PayoutLinkStatus.is_known(odd.link_status)
        assert odd.data is not None
        assert not odd.data.is_terminal

        with pytest.raises(BusinessRejectionError) as info:
            await doku.payout_links.status(reference_id="LINK-404")
        assert info.value.http_status == 404

        assert all(r.headers.get("Signature") for r in sim.requests)


async def test_payout_link_sha512_scheme(creds: SimulatorCredentials) -> None:
    async with running(
        creds,
        payout_link_scheme="sha512",
        client={"payout_link_signature": "sha512", "response_signatures": "required"},
    ) as (sim, doku):
        created = await initiate_link(doku, "LINK-512")
        assert created.link_status == "EMAIL_SENT"
        assert (await doku.payout_links.status(reference_id="LINK-512")).link_status == (
            "EMAIL_SENT"
        )
        assert all(
            r.headers["Signature"].startswith("HMACSHA512=")
            for r in sim.requests_for("payout_link_initiate")
        )
        # Transfers keep the Non-SNAP SHA-256 scheme.
        answer = await sub_transfer(doku, "INV-512")
        assert answer.transfer is not None
        assert sim.requests_for("transfers")[0].headers["Signature"].startswith("HMACSHA256=")


async def test_payout_link_scheme_mismatch_is_rejected(creds: SimulatorCredentials) -> None:
    async with running(
        creds, payout_link_scheme="sha512", client={"response_signatures": "off"}
    ) as (sim, doku):
        with pytest.raises(AuthenticationError) as info:
            await initiate_link(doku, "LINK-X")
        assert info.value.http_status == 401
        assert sim.payout_links == {}


async def test_sub_account_transfer(creds: SimulatorCredentials) -> None:
    async with running(creds, client={"response_signatures": "required"}) as (sim, doku):
        answer = await sub_transfer(doku, "INV/7274812", amount=10_000)
        assert answer.replayed is False
        assert answer.transfer is not None
        assert answer.transfer.status == "SUCCESS"
        assert answer.transfer.amount == Decimal(10_000)
        assert answer.transfer.invoice_number == "INV/7274812"
        assert answer.request_id == sim.requests_for("transfers")[0].headers["Request-Id"]
        assert sim.sub_accounts[SAC_ORIGIN] == sim.sub_account_balance - 10_000
        assert sim.sub_accounts[SAC_DESTINATION] == sim.sub_account_balance + 10_000

        with pytest.raises(DuplicateRequestError):  # same invoice, new Request-Id
            await sub_transfer(doku, "INV/7274812")
        assert len(sim.sub_account_transfers) == 1


async def test_sub_account_transfer_insufficient_balance(creds: SimulatorCredentials) -> None:
    async with running(creds, sub_account_balance=100) as (sim, doku):
        with pytest.raises(BadRequestError) as info:
            await sub_transfer(doku, "INV-BIG", amount=101)
        assert info.value.http_status == 400
        assert sim.sub_account_transfers == {}
        assert sim.sub_accounts[SAC_ORIGIN] == 100


async def test_rdl_disbursement(creds: SimulatorCredentials) -> None:
    async with running(creds, client={"response_signatures": "required"}) as (sim, doku):
        answer = await disburse(doku, "RDL-TX-1", amount=50_000)
        assert answer.replayed is False
        assert answer.transaction is not None
        assert answer.transaction.status == "PENDING"
        assert answer.transaction.id == "RDL-TX-1"
        assert answer.transaction.amount == Decimal(50_000)
        assert answer.source_account == {"account_id": "RDL-0001"}
        assert answer.account_destination is not None
        assert answer.account_destination["code"] == "BNINIDJA"
        assert list(sim.rdl_disbursements) == ["RDL-TX-1"]


async def test_unsigned_non_snap_answers_fail_required_verification(
    creds: SimulatorCredentials,
) -> None:
    required = {"response_signatures": "required"}
    async with running(creds, sign_responses=False, client=required) as (sim, doku):
        with pytest.raises(SignatureVerificationError):
            await sub_transfer(doku, "INV-UNSIGNED")
        assert len(sim.sub_account_transfers) == 1  # it went through; only the answer is bad
    # The default refuses an unsigned answer to a money-moving call (issue 12, finding 9)...
    async with running(creds, sign_responses=False) as (sim, doku):
        with pytest.raises(SignatureVerificationError):
            await sub_transfer(doku, "INV-UNSIGNED-2")
        assert len(sim.sub_account_transfers) == 1
    if_present = {"response_signatures": "if_present"}  # the documented escape hatch
    async with running(creds, sign_responses=False, client=if_present) as (sim, doku):
        answer = await sub_transfer(doku, "INV-UNSIGNED")
        assert answer.transfer is not None
        await initiate_link(doku, "PL-UNSIGNED")
        # A status read under the default is verified when signed, accepted when not.
        async with client_for(sim) as default_client:
            status = await default_client.payout_links.status(reference_id="PL-UNSIGNED")
        assert status.link_status == "EMAIL_SENT"


# ============================================================================ 2. signatures


async def test_wrong_secret_snap_call_is_401xx00(creds: SimulatorCredentials) -> None:
    async with running(creds, client={"client_secret": "SK-not-the-secret"}) as (sim, doku):
        with pytest.raises(AuthenticationError) as info:
            await doku.kirim.balance_inquiry(account_no=creds.agent_key)
        assert info.value.response_code == "4011100"
        assert info.value.case_code == "00"
        assert sim.token_requests == 1  # the RSA token call was fine
        assert statuses(sim, "balance_inquiry") == [401]  # final: not retried

        with pytest.raises(AuthenticationError) as transfer_info:
            await pay(doku, "PAY-WRONG-SECRET")
        assert transfer_info.value.response_code == "4014300"
        assert sim.transfer_count("PAY-WRONG-SECRET") == 0
        assert sim.balance() == START_BALANCE


async def test_wrong_secret_non_snap_call_is_401(creds: SimulatorCredentials) -> None:
    async with running(
        creds, client={"client_secret": "SK-not-the-secret", "response_signatures": "off"}
    ) as (sim, doku):
        with pytest.raises(AuthenticationError) as info:
            await sub_transfer(doku, "INV-WRONG")
        assert info.value.http_status == 401
        assert sim.sub_account_transfers == {}
    # With verification on, the answer (signed with the real secret) cannot be verified
    # with the wrong one, so the client reports that instead of trusting it.
    async with running(creds, client={"client_secret": "SK-not-the-secret"}) as (sim, doku):
        with pytest.raises(SignatureVerificationError):
            await disburse(doku, "RDL-WRONG")
        assert sim.rdl_disbursements == {}


async def test_another_private_key_gets_4017300(
    creds: SimulatorCredentials, other_private_key: bytes
) -> None:
    async with running(creds, client={"private_key": other_private_key}) as (sim, doku):
        with pytest.raises(AuthenticationError) as info:
            await doku.kirim.balance_inquiry(account_no=creds.agent_key)
        assert info.value.response_code == "4017300"
        assert sim.token_requests == 0
        assert statuses(sim, "token") == [401]
        assert sim.requests_for("balance_inquiry") == []


async def test_unknown_client_id_gets_4017300(creds: SimulatorCredentials) -> None:
    async with running(creds, client={"client_id": "BRN-0001-0000000000000"}) as (sim, doku):
        with pytest.raises(AuthenticationError) as info:
            await doku.kirim.balance_inquiry(account_no=creds.agent_key)
        assert info.value.response_code == "4017300"
        assert sim.token_requests == 0


async def test_forged_snap_body_is_rejected(creds: SimulatorCredentials) -> None:
    async with (
        asyncio.timeout(20),
        DokuSimulator(credentials=creds) as sim,
        aiohttp.ClientSession() as http,
    ):
        token = await raw_token(http, sim)
        path = "/v1.0/emoney/transfer-bank"
        honest = {
            "partnerReferenceNo": "FORGED-1",
            "customerNumber": CUSTOMER,
            "beneficiaryAccountNumber": ACCOUNT,
            "beneficiaryBankCode": BANK,
            "amount": {"value": "1000.00", "currency": "IDR"},
        }
        forged = {**honest, "amount": {"value": "9000000.00", "currency": "IDR"}}
        status, body = await raw_snap(
            http, sim, token, path, forged, external_id="1001", signed_body=honest
        )
        assert status == 401
        assert body["responseCode"] == "4014300"
        assert sim.transfer_count("FORGED-1") == 0
        assert sim.balance() == START_BALANCE

        # The same request, honestly signed, is accepted: the forgery was the only problem.
        status, body = await raw_snap(http, sim, token, path, honest, external_id="1002")
        assert (status, body["responseCode"]) == (200, 2004300)  # a JSON number, as in DOKU's docs
        assert sim.transfer_count("FORGED-1") == 1


async def test_forged_non_snap_body_is_rejected(creds: SimulatorCredentials) -> None:
    async with (
        asyncio.timeout(20),
        DokuSimulator(credentials=creds) as sim,
        aiohttp.ClientSession() as http,
    ):
        honest = {
            "transfer": {
                "origin": SAC_ORIGIN,
                "destination": SAC_DESTINATION,
                "amount": 10000,
                "invoice_number": "INV-FORGED",
            }
        }
        forged = {"transfer": {**honest["transfer"], "amount": 99_000_000}}
        path = "/sac-merchant/v1/transfers"
        status, body = await raw_non_snap(http, sim, path, forged, signed_body=honest)
        assert status == 401
        assert body["error"]["code"] == "invalid_signature"
        assert sim.sub_account_transfers == {}
        status, _ = await raw_non_snap(http, sim, path, honest)
        assert status == 200
        assert list(sim.sub_account_transfers) == ["INV-FORGED"]


async def test_snap_call_without_a_token_is_401xx03(creds: SimulatorCredentials) -> None:
    async with (
        asyncio.timeout(20),
        DokuSimulator(credentials=creds) as sim,
        aiohttp.ClientSession() as http,
    ):
        status, body = await raw_snap(
            http,
            sim,
            "eyJ-never-issued",
            "/v1.0/balance-inquiry",
            {"accountNo": creds.agent_key},
            external_id="42",
        )
        assert (status, body["responseCode"]) == (401, "4011103")


# ============================================================================ 3. state


async def test_expired_tokens_are_refreshed_once(creds: SimulatorCredentials) -> None:
    async with running(creds) as (sim, doku):
        await balance_of(doku, sim)
        assert sim.token_requests == 1
        sim.expire_tokens()
        assert await balance_of(doku, sim) == START_BALANCE
        assert sim.token_requests == 2
        assert doku.token_fetches == 2
        assert statuses(sim, "balance_inquiry") == [200, 401, 200]
        assert sim.requests_for("balance_inquiry")[1].response_code == "4011101"


async def test_token_ttl_expiry_gives_401xx01_then_one_refresh(
    creds: SimulatorCredentials,
) -> None:
    # The client's clock never moves, so only the simulator sees the token expire.
    async with running(
        creds, token_ttl=1.0, client={"clocks": Clocks(monotonic=lambda: 1000.0)}
    ) as (sim, doku):
        await balance_of(doku, sim)
        await asyncio.sleep(1.1)
        assert await balance_of(doku, sim) == START_BALANCE
        assert sim.token_requests == 2
        assert [r.response_code for r in sim.requests_for("balance_inquiry")] == [
            "2001100",
            "4011101",
            "2001100",
        ]


async def test_short_token_ttl_is_refreshed_ahead_by_the_client(
    creds: SimulatorCredentials,
) -> None:
    now = [1000.0]
    async with running(
        creds,
        token_ttl=2.0,
        client={"token_refresh_margin": 0.5, "clocks": Clocks(monotonic=lambda: now[0])},
    ) as (sim, doku):
        await balance_of(doku, sim)
        # Past the refresh point (2.0 - 0.5), in the margin's first half: the call goes out
        # with the current token at once, and one refresh runs in the background.
        now[0] += 1.6
        await balance_of(doku, sim)
        async with asyncio.timeout(10):
            while sim.token_requests < 2:  # noqa: ASYNC110 - polling the simulator's counter
                await asyncio.sleep(0.01)
        # Past the new token's second half of the margin: the call waits for a fresh one.
        now[0] += 1.8
        await balance_of(doku, sim)
        assert sim.token_requests == 3
        assert statuses(sim, "balance_inquiry") == [200, 200, 200]  # never a 401


async def test_insufficient_funds(creds: SimulatorCredentials) -> None:
    async with running(creds, balance="100.00") as (sim, doku):
        with pytest.raises(InsufficientFundsError) as info:
            await pay(doku, "PAY-BIG", amount="150.00")
        assert info.value.case_code == "14"
        assert info.value.response_code == "4034314"
        assert sim.transfer_count("PAY-BIG") == 0
        assert await balance_of(doku, sim) == Decimal("100.00")
        assert statuses(sim, "transfer_bank") == [403]
        assert sim.requests_for("check_status") == []  # a definite rejection: not settled

        await pay(doku, "PAY-ALL", amount="100.00")
        assert await balance_of(doku, sim) == Decimal("0.00")


async def test_reused_external_id_is_409xx00(creds: SimulatorCredentials) -> None:
    async with (
        asyncio.timeout(20),
        DokuSimulator(credentials=creds) as sim,
        aiohttp.ClientSession() as http,
    ):
        token = await raw_token(http, sim)
        path = "/v1.0/balance-inquiry"
        body = {"accountNo": creds.agent_key}
        first = await raw_snap(http, sim, token, path, body, external_id="7777")
        second = await raw_snap(http, sim, token, path, body, external_id="7777")
        assert first[0] == 200
        assert (second[0], second[1]["responseCode"]) == (409, "4091100")

        transfer = {
            "partnerReferenceNo": "RAW-XID",
            "customerNumber": CUSTOMER,
            "beneficiaryAccountNumber": ACCOUNT,
            "beneficiaryBankCode": BANK,
            "amount": {"value": "1000.00", "currency": "IDR"},
        }
        tpath = "/v1.0/emoney/transfer-bank"
        status, answer = await raw_snap(http, sim, token, tpath, transfer, external_id="7777")
        assert (status, answer["responseCode"]) == (409, "4094300")
        assert sim.transfer_count("RAW-XID") == 0
        status, answer = await raw_snap(http, sim, token, tpath, transfer, external_id="7778")
        assert (status, answer["responseCode"]) == (200, 2004300)
        assert sim.transfer_count("RAW-XID") == 1


async def test_reused_partner_reference_same_amount_settles_without_second_commit(
    creds: SimulatorCredentials,
) -> None:
    async with running(creds) as (sim, doku):
        first = await pay(doku, "PAY-TWICE")
        assert first.response is not None
        again = await pay(doku, "PAY-TWICE")
        assert again.status == "succeeded"
        assert again.response is None  # DOKU answered 409; check status settled it
        assert again.status_response is not None
        assert again.transaction_status == "00"
        assert again.reference_no == first.reference_no
        assert sim.transfer_count("PAY-TWICE") == 1
        assert [r.response_code for r in sim.requests_for("transfer_bank")] == [
            "2004300",
            "4094301",
        ]
        assert await balance_of(doku, sim) == START_BALANCE - AMOUNT


async def test_reused_partner_reference_other_amount_reports_the_paid_reference(
    creds: SimulatorCredentials,
) -> None:
    """Issue 12, finding 1: the reference is paid (for 1000.00); the 2000.00 call pays
    nothing and is reported as DOKU records the reference, with the difference flagged."""
    async with running(creds) as (sim, doku):
        await pay(doku, "PAY-CLASH", amount="1000.00")
        again = await pay(doku, "PAY-CLASH", amount="2000.00")
        assert again.transaction_status == "00"
        assert again.reported_amount == Decimal("1000.00")
        assert sim.transfer_count("PAY-CLASH") == 1
        assert sim.transfers["PAY-CLASH"].amount == Decimal("1000.00")
        assert await balance_of(doku, sim) == START_BALANCE - Decimal("1000.00")


async def test_reused_inquiry_session_never_commits_the_second_transfer(
    creds: SimulatorCredentials,
) -> None:
    async with running(creds) as (sim, doku):
        inquiry = await inquire(doku, "INQ-S")
        await pay(doku, "PAY-S1", session_id=inquiry.session_id)
        with pytest.raises((TransferOutcomeUnknownError, DuplicateRequestError)):
            await pay(doku, "PAY-S2", session_id=inquiry.session_id)
        assert sim.transfer_count("PAY-S1") == 1
        assert sim.transfer_count("PAY-S2") == 0
        assert "PAY-S2" not in sim.transfers
        assert sim.requests_for("transfer_bank")[1].response_code == "4094302"
        assert await status_of(doku, "PAY-S2") == TransactionStatus.NOT_FOUND
        assert await balance_of(doku, sim) == START_BALANCE - AMOUNT


@pytest.mark.parametrize(("op", "call"), NON_SNAP_MONEY, ids=[op for op, _ in NON_SNAP_MONEY])
async def test_repeated_request_id_is_replayed_once(
    creds: SimulatorCredentials, op: str, call: NonSnapCall
) -> None:
    async with running(creds, client={"response_signatures": "required"}) as (sim, doku):
        first = await call(doku, "KEY-1", "rid-0001")
        second = await call(doku, "KEY-1", "rid-0001")
        assert first.replayed is False
        assert second.replayed is True
        assert second.request_id == "rid-0001"
        assert effects(sim, op) == 1
        assert statuses(sim, op) == [200, 409]
        # The same Request-Id with another body is a conflict, never a second effect.
        with pytest.raises(DuplicateRequestError):
            await call(doku, "KEY-2", "rid-0001")
        assert effects(sim, op) == 1


async def test_sub_account_replay_moves_money_once(creds: SimulatorCredentials) -> None:
    async with running(creds) as (sim, doku):
        await sub_transfer(doku, "INV-R", amount=5_000, request_id="rid-sac")
        again = await sub_transfer(doku, "INV-R", amount=5_000, request_id="rid-sac")
        assert again.replayed is True
        assert again.transfer is not None
        assert again.transfer.amount == Decimal(5_000)
        assert sim.sub_accounts[SAC_ORIGIN] == sim.sub_account_balance - 5_000


async def test_check_status_follows_the_ledger(creds: SimulatorCredentials) -> None:
    async with running(creds, notification_delay=0.3) as (sim, doku):
        await pay(doku, "PAY-OK")
        assert await status_of(doku, "PAY-OK") == "00"
        pending = await pay(doku, "PAY-UNPAID", account="9912345000", bank="014")
        assert pending.status == "pending"  # DOKU accepted it; the payout is UNPAID
        assert not pending.succeeded
        assert await status_of(doku, "PAY-UNPAID") == "03"
        assert await status_of(doku, "PAY-NOPE") == "07"
        await sim.drain()  # no notification URL: the transfer still settles
        assert await status_of(doku, "PAY-UNPAID") == "00"
        assert sim.notifications == []


async def test_unclear_transfer_to_an_unpaid_account_settles_as_pending_then_failed(
    creds: SimulatorCredentials,
) -> None:
    async with running(creds, notification_delay=0.3) as (sim, doku):
        sim.inject("transfer_bank", "error_after_commit", status=504)
        result = await pay(doku, "PAY-PEND", account="7712345", bank="002")
        assert result.status == "pending"
        assert result.transaction_status == "03"
        assert sim.balance() == START_BALANCE - AMOUNT
        await sim.drain()
        assert await status_of(doku, "PAY-PEND") == "06"
        assert sim.balance() == START_BALANCE
        # Paying the same obligation again under its reference reports the failure; it is
        # not paid a second time.
        with pytest.raises(TransferFailedError) as info:
            await pay(doku, "PAY-PEND", account="7712345", bank="002")
        assert info.value.transaction_status == "06"
        assert sim.transfer_count("PAY-PEND") == 1
        assert sim.balance() == START_BALANCE


async def test_concurrent_transfers_commit_each_reference_once(
    creds: SimulatorCredentials,
) -> None:
    async with running(creds) as (sim, doku):
        refs = [f"PAY-C{i:02d}" for i in range(10)]
        results = await asyncio.gather(
            *(pay(doku, ref, amount="1000.00") for ref in refs),
            *(pay(doku, "PAY-SAME", amount="1000.00") for _ in range(5)),
        )
        assert all(r.status == "succeeded" for r in results)
        assert all(sim.transfer_count(ref) == 1 for ref in refs)
        assert sim.transfer_count("PAY-SAME") == 1
        assert sim.balance() == START_BALANCE - Decimal("1000.00") * 11
        assert sim.token_requests == 1  # one token fetch shared by every caller
        assert doku.token_fetches == 1


# ============================================================================ 4. notifications


class Receiver:
    """The SDK's webhook app mounted under ``/doku/`` on a loopback server."""

    def __init__(self, creds: SimulatorCredentials, *, failures: int = 0) -> None:
        self.received: list[Notification] = []
        self.failures = failures
        self.calls = 0
        root = web.Application()
        root.add_subapp(
            "/doku/",
            create_webhook_app(
                agent_key=creds.agent_key,
                encryption_keys=creds.encryption_key,
                on_notification=self.on_notification,
            ),
        )
        self.app = root

    async def on_notification(self, notification: Notification) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("receiver not ready yet")  # the app answers 500
        self.received.append(notification)


MAGIC = [
    # bank, account, kind, notification status, final check status, balance restored
    pytest.param("002", "9912345678", "unpaid", "35", "06", True, id="unpaid-failed-002"),
    pytest.param("014", "9912345678", "unpaid", "50", "00", False, id="unpaid-success-014"),
    pytest.param("014", "7746555134", "refund", "40", "04", True, id="refund"),
]


@pytest.mark.parametrize(("bank", "account", "kind", "code", "final", "restored"), MAGIC)
async def test_magic_values_send_notifications(
    creds: SimulatorCredentials,
    bank: str,
    account: str,
    kind: str,
    code: str,
    final: str,
    restored: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = Receiver(creds)
    async with (
        asyncio.timeout(20),
        serve(receiver.app) as url,
        running(
            creds,
            unpaid_url=url + "/doku/kirim/unpaid",
            refund_url=url + "/doku/kirim/refund",
            notification_delay=0.3,
            retry_schedule=(0.02, 0.02),
        ) as (sim, doku),
    ):
        result = await pay(doku, "PAY-MAGIC", account=account, bank=bank)
        # Accepted and confirmed: UNPAID (pending) for the unpaid magic values, never paid yet.
        assert result.status == ("pending" if kind == "unpaid" else "succeeded")
        assert await status_of(doku, "PAY-MAGIC") == ("03" if kind == "unpaid" else "00")
        assert await balance_of(doku, sim) == START_BALANCE - AMOUNT

        await sim.wait_for_notifications(1, timeout=5)
        await sim.drain()
        assert len(receiver.received) == 1
        notification = receiver.received[0]
        assert notification.kind == kind
        assert notification.status == code
        assert notification.transaction_id == result.reference_no
        assert notification.agent_key == creds.agent_key
        assert notification.processed_at is not None
        if kind == "unpaid":
            assert isinstance(notification, UnpaidNotification)
            assert notification.invoice_number == "PAY-MAGIC"
            assert notification.created_at is not None
        else:
            assert isinstance(notification, RefundNotification)

        [sent] = sim.notifications
        assert sent.kind == kind
        assert sent.url.endswith(f"/doku/kirim/{kind}")
        assert sent.acknowledged
        assert sent.attempts == 1
        assert sent.responses == [200]

        assert await status_of(doku, "PAY-MAGIC") == final
        expected = START_BALANCE if restored else START_BALANCE - AMOUNT
        assert await balance_of(doku, sim) == expected == sim.balance()
        assert sim.transfer_count("PAY-MAGIC") == 1


async def test_notification_retried_until_acknowledged(creds: SimulatorCredentials) -> None:
    receiver = Receiver(creds, failures=2)
    async with (
        asyncio.timeout(20),
        serve(receiver.app) as url,
        running(
            creds,
            unpaid_url=url + "/doku/kirim/unpaid",
            notification_delay=0.01,
            retry_schedule=(0.02, 0.02, 0.02),
        ) as (sim, doku),
    ):
        await pay(doku, "PAY-RETRY", account="5512345", bank="002")
        await sim.wait_for_notifications(1, timeout=5)
        [sent] = sim.notifications
        assert sent.attempts == 3
        assert sent.responses == [500, 500, 200]
        assert sent.acknowledged
        assert len(receiver.received) == 1
        assert receiver.calls == 3


async def test_notification_never_acknowledged(creds: SimulatorCredentials) -> None:
    hits: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        hits.append(request.headers.get("requestId", ""))
        return web.json_response({"responseCode": "99"}, status=503)

    app = web.Application()
    app.router.add_post("/hook", refuse)
    schedule = (0.02, 0.03, 0.04)
    async with (
        asyncio.timeout(20),
        serve(app) as url,
        running(
            creds, refund_url=url + "/hook", notification_delay=0.01, retry_schedule=schedule
        ) as (sim, doku),
    ):
        await pay(doku, "PAY-IGNORED", account="7746555134")
        with pytest.raises(TimeoutError):
            await sim.wait_for_notifications(1, timeout=0.5)
        await sim.drain()
        [sent] = sim.notifications
        assert sent.attempts == 1 + len(schedule)
        assert sent.responses == [503] * (1 + len(schedule))
        assert not sent.acknowledged
        assert len(hits) == 1 + len(schedule)
        assert len(set(hits)) == len(hits)  # a fresh requestId per attempt
        # Reconciliation still works: the ledger says refunded.
        assert await status_of(doku, "PAY-IGNORED") == "04"
        assert sim.balance() == START_BALANCE


# ============================================================================ 5. faults


@pytest.mark.parametrize("status", [500, 504])
@pytest.mark.parametrize("op", ["token", "balance_inquiry", "account_inquiry", "check_status"])
async def test_error_on_reads_is_retried(creds: SimulatorCredentials, op: str, status: int) -> None:
    async with running(creds) as (sim, doku):
        if op != "token":
            await balance_of(doku, sim)  # the token first, so only ``op`` meets the fault
        sim.inject(op, "error", status=status, times=2)
        if op in ("token", "balance_inquiry"):
            await balance_of(doku, sim)
        elif op == "account_inquiry":
            await inquire(doku, "INQ-RETRY")
        else:
            assert await status_of(doku, "NOT-THERE") == "07"
        assert statuses(sim, op)[-3:] == [status, status, 200]
        assert sim.faults.pending(op) == 0
        assert sim.token_requests == 1


async def test_error_on_payout_link_status_is_retried(creds: SimulatorCredentials) -> None:
    async with running(creds) as (sim, doku):
        await initiate_link(doku, "LINK-R")
        sim.inject("payout_link_status", "error", status=503, times=2)
        answer = await doku.payout_links.status(reference_id="LINK-R")
        assert answer.link_status == "EMAIL_SENT"
        assert statuses(sim, "payout_link_status") == [503, 503, 200]


async def test_rate_limit_retry_after_is_honoured_on_reads(creds: SimulatorCredentials) -> None:
    sleeps = SleepRecorder()
    async with running(creds, client={"clocks": Clocks(sleep=sleeps)}) as (sim, doku):
        sim.inject("balance_inquiry", "error", status=429, retry_after="1")
        assert await balance_of(doku, sim) == START_BALANCE
        assert sleeps.calls == [1.0]
        assert statuses(sim, "balance_inquiry") == [429, 200]
        assert sim.requests_for("balance_inquiry")[0].response_code == "4291100"


async def test_rate_limit_on_a_transfer_resends_the_same_references(
    creds: SimulatorCredentials,
) -> None:
    sleeps = SleepRecorder()
    async with running(creds, client={"clocks": Clocks(sleep=sleeps)}) as (sim, doku):
        sim.inject("transfer_bank", "error", status=429, retry_after="1")
        result = await pay(doku, "PAY-429")
        assert result.status == "succeeded"
        assert result.response is not None
        assert sleeps.calls == [1.0]
        sent = sim.requests_for("transfer_bank")
        assert [r.status for r in sent] == [429, 200]
        # The same body (partnerReferenceNo), a fresh X-EXTERNAL-ID (issue 12, finding 9).
        assert sent[0].headers["X-EXTERNAL-ID"] != sent[1].headers["X-EXTERNAL-ID"]
        assert sent[0].body == sent[1].body
        assert sim.transfer_count("PAY-429") == 1


async def test_rate_limit_on_non_snap_money_call(creds: SimulatorCredentials) -> None:
    sleeps = SleepRecorder()
    async with running(creds, client={"clocks": Clocks(sleep=sleeps)}) as (sim, doku):
        sim.inject("transfers", "error", status=429, retry_after="1")
        answer = await sub_transfer(doku, "INV-429")
        assert answer.replayed is False
        assert sleeps.calls == [1.0]
        assert statuses(sim, "transfers") == [429, 200]
        assert len(sim.sub_account_transfers) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, ""), (504, ""), (202, "2024300")],
    ids=["500", "504", "202"],
)
async def test_error_after_commit_on_a_transfer_is_settled_by_check_status(
    creds: SimulatorCredentials, status: int, code: str
) -> None:
    async with running(creds) as (sim, doku):
        sim.inject("transfer_bank", "error_after_commit", status=status, response_code=code)
        result = await pay(doku, "PAY-EAC")
        assert result.status == "succeeded"
        assert result.response is None
        assert result.status_response is not None
        assert result.transaction_status == "00"
        assert result.resent is False
        assert result.reference_no == sim.transfers["PAY-EAC"].reference_no
        assert statuses(sim, "transfer_bank") == [status]
        assert len(sim.requests_for("check_status")) == 1
        assert sim.transfer_count("PAY-EAC") == 1
        assert sim.balance() == START_BALANCE - AMOUNT


async def test_error_before_commit_on_a_transfer_is_resent_once(
    creds: SimulatorCredentials,
) -> None:
    async with running(creds) as (sim, doku):
        sim.inject("transfer_bank", "error", status=500)
        result = await pay(doku, "PAY-EBC")
        assert result.status == "succeeded"
        assert result.resent is True
        assert statuses(sim, "transfer_bank") == [500, 200]
        # "not found" before the resend, then the confirmation of the resend's 2004300.
        assert [r.response_code for r in sim.requests_for("check_status")] == ["2005300"] * 2
        assert sim.transfer_count("PAY-EBC") == 1


@pytest.mark.parametrize("kind", ["drop_before_commit", "drop_after_commit"])
async def test_dropped_transfer_has_exactly_one_effect(
    creds: SimulatorCredentials, kind: str
) -> None:
    async with running(creds) as (sim, doku):
        sim.inject("transfer_bank", kind)  # type: ignore[arg-type]
        result = await pay(doku, "PAY-DROP")
        assert result.status == "succeeded"
        sent = sim.requests_for("transfer_bank")
        assert sent[0].status == 0  # dropped: never answered
        assert sent[0].response_code == ""
        if kind == "drop_before_commit":
            assert result.resent is True
            assert [r.status for r in sent] == [0, 200]
            assert sent[0].body == sent[1].body
            assert sent[0].headers["X-EXTERNAL-ID"] != sent[1].headers["X-EXTERNAL-ID"]
        else:
            assert result.resent is False
            assert len(sent) == 1
            assert result.transaction_status == "00"
        assert sim.transfer_count("PAY-DROP") == 1
        assert sim.balance() == START_BALANCE - AMOUNT


@pytest.mark.parametrize("kind", ["drop_before_commit", "drop_after_commit", "error_after_commit"])
@pytest.mark.parametrize(("op", "call"), NON_SNAP_MONEY, ids=[op for op, _ in NON_SNAP_MONEY])
async def test_non_snap_money_faults_have_exactly_one_effect(
    creds: SimulatorCredentials, op: str, call: NonSnapCall, kind: str
) -> None:
    async with running(creds, client={"response_signatures": "required"}) as (sim, doku):
        sim.inject(op, kind)  # type: ignore[arg-type]
        answer = await call(doku, "KEY-F", "rid-fault")
        assert answer.request_id == "rid-fault"
        sent = sim.requests_for(op)
        assert len(sent) == 2
        assert {r.headers["Request-Id"] for r in sent} == {"rid-fault"}
        if kind == "drop_before_commit":
            assert [r.status for r in sent] == [0, 200]
            assert answer.replayed is False
        elif kind == "drop_after_commit":
            assert [r.status for r in sent] == [0, 409]
            assert answer.replayed is True
        else:
            assert [r.status for r in sent] == [500, 409]
            assert answer.replayed is True
        assert effects(sim, op) == 1


async def test_payout_link_resolved_by_status_when_every_answer_is_lost(
    creds: SimulatorCredentials,
) -> None:
    one_attempt = {"retry": RetryPolicy(max_attempts=1, jitter=False)}
    async with running(creds, client=one_attempt) as (sim, doku):
        sim.inject("payout_link_initiate", "drop_after_commit")
        answer = await initiate_link(doku, "LINK-LOST")
        assert answer.resolved_by_status is True
        assert answer.link_status == "EMAIL_SENT"
        assert statuses(sim, "payout_link_initiate") == [0]
        assert effects(sim, "payout_link_initiate") == 1


async def test_non_snap_money_call_outcome_unknown_when_unresolvable(
    creds: SimulatorCredentials,
) -> None:
    one_attempt = {"retry": RetryPolicy(max_attempts=1, jitter=False)}
    async with running(creds, client=one_attempt) as (sim, doku):
        sim.inject("rdl", "drop_after_commit")
        with pytest.raises(TransferOutcomeUnknownError) as info:
            await disburse(doku, "RDL-LOST", request_id="rid-lost")
        assert info.value.request_id == "rid-lost"
        assert effects(sim, "rdl") == 1
        # Resending with the same request_id later gets DOKU's replay, not a second payout.
        again = await disburse(doku, "RDL-LOST", request_id="rid-lost")
        assert again.replayed is True
        assert effects(sim, "rdl") == 1


async def test_token_faults_are_retried(creds: SimulatorCredentials) -> None:
    async with running(creds) as (sim, doku):
        sim.inject("token", "drop_before_commit")
        sim.inject("token", "error", status=503)
        assert await balance_of(doku, sim) == START_BALANCE
        assert statuses(sim, "token") == [0, 503, 200]
        assert sim.token_requests == 1


async def test_latency_within_the_attempt_timeout_is_harmless(
    creds: SimulatorCredentials,
) -> None:
    async with running(creds) as (sim, doku):
        sim.inject("balance_inquiry", "latency", delay=0.1)
        started = time.monotonic()
        assert await balance_of(doku, sim) == START_BALANCE
        assert time.monotonic() - started >= 0.1
        assert statuses(sim, "balance_inquiry") == [200]


async def test_latency_beyond_the_attempt_timeout_on_a_read_is_retried(
    creds: SimulatorCredentials,
) -> None:
    # The healthy retry must finish within the attempt timeout too: 0.5 s of margin.
    timeouts = Timeouts(connect=1.0, attempt=0.5, total=10.0)
    async with running(creds, client={"timeouts": timeouts}) as (sim, doku):
        await balance_of(doku, sim)
        sim.inject("balance_inquiry", "latency", delay=1.0)
        assert await balance_of(doku, sim) == START_BALANCE
        await asyncio.sleep(1.0)  # let the slow attempt finish on the server
        sent = sim.requests_for("balance_inquiry")
        assert len(sent) == 3
        ids = {r.headers["X-EXTERNAL-ID"] for r in sent}
        assert len(ids) == 3  # every read attempt has a fresh X-EXTERNAL-ID


async def test_latency_beyond_the_attempt_timeout_on_a_transfer(
    creds: SimulatorCredentials,
) -> None:
    timeouts = Timeouts(connect=1.0, attempt=0.3, total=10.0)
    async with running(creds, client={"timeouts": timeouts}) as (sim, doku):
        sim.inject("transfer_bank", "latency", delay=0.8)
        outcome: TransferResult | TransferOutcomeUnknownError
        try:
            outcome = await pay(doku, "PAY-SLOW")
        except TransferOutcomeUnknownError as exc:
            outcome = exc
        await sim.drain()
        # The slow first attempt is still being handled: wait until the server answered it.
        for _ in range(250):
            if all(r.status for r in sim.requests_for("transfer_bank")):
                break
            await asyncio.sleep(0.02)
        assert sim.transfer_count("PAY-SLOW") == 1
        assert sim.balance() == START_BALANCE - AMOUNT
        if isinstance(outcome, TransferResult):
            assert outcome.status == "succeeded"
        assert await status_of(doku, "PAY-SLOW") == "00"
        # Whichever attempt committed, the other one was refused as a duplicate.
        codes = sorted(r.response_code for r in sim.requests_for("transfer_bank"))
        assert codes[0] == "2004300"
        assert all(code.startswith("409") for code in codes[1:])


async def test_drain_waits_for_a_latency_delayed_commit(creds: SimulatorCredentials) -> None:
    timeouts = Timeouts(connect=1.0, attempt=0.2, total=10.0)
    async with running(creds, client={"timeouts": timeouts}) as (sim, doku):
        await balance_of(doku, sim)
        sim.inject("transfer_bank", "latency", delay=0.6)
        sim.inject("check_status", "error", status=500, times=4)  # nothing can settle it
        try:
            with pytest.raises(TransferOutcomeUnknownError):
                await pay(doku, "PAY-LATE")
            await sim.drain()  # "Wait for deliveries and delayed commits still running."
            assert sim.transfer_count("PAY-LATE") == 1
        finally:
            await asyncio.sleep(0.7)  # let the delayed commit land before closing


async def test_skewed_clock_rejects_requests_until_restored(creds: SimulatorCredentials) -> None:
    async with running(creds) as (sim, doku):
        sim.skew_clock(3600)
        with pytest.raises(AuthenticationError) as info:
            await doku.kirim.balance_inquiry(account_no=creds.agent_key)
        assert info.value.response_code == "4017300"  # the token call is out of range
        assert sim.token_requests == 0

        sim.skew_clock(0)
        await balance_of(doku, sim)  # now a token is cached
        sim.skew_clock(-3600)
        with pytest.raises(AuthenticationError) as snap_info:
            await doku.kirim.balance_inquiry(account_no=creds.agent_key)
        assert snap_info.value.response_code == "4011100"
        with pytest.raises(AuthenticationError) as non_snap_info:
            await sub_transfer(doku, "INV-SKEW")
        assert non_snap_info.value.http_status == 401
        assert sim.sub_account_transfers == {}
        with pytest.raises(AuthenticationError):
            await pay(doku, "PAY-SKEW")
        assert sim.transfer_count("PAY-SKEW") == 0

        sim.skew_clock(0)
        assert await balance_of(doku, sim) == START_BALANCE
        await sub_transfer(doku, "INV-SKEW")
        assert (await pay(doku, "PAY-SKEW")).status == "succeeded"


async def test_requests_are_recorded_per_operation(creds: SimulatorCredentials) -> None:
    async with running(creds) as (sim, doku):
        sim.inject("balance_inquiry", "drop_before_commit")
        await balance_of(doku, sim)
        recorded = sim.requests_for("balance_inquiry")
        assert [(r.status, r.response_code) for r in recorded] == [(0, ""), (200, "2001100")]
        assert all(r.path == "/v1.0/balance-inquiry" for r in recorded)
        body = json.loads(recorded[0].body)
        assert body == {"accountNo": creds.agent_key}
        operations = [r.operation for r in sim.requests]
        assert operations == ["token", "balance_inquiry", "balance_inquiry"]


# --- the answer shapes DOKU documents (issue 11) ---------------------------------------------


@pytest.mark.parametrize("shapes", ["docs", "sandbox", "mixed"])
async def test_every_answer_shape_is_spoken_and_decoded(
    creds: SimulatorCredentials, shapes: str
) -> None:
    """The simulator answers in DOKU's documented shapes (codes as JSON numbers, the object
    ``accountInfos`` with ``avaliableBalance``) or the sandbox's, and the SDK reads both."""
    async with running(creds, shapes=shapes) as (sim, doku), aiohttp.ClientSession() as http:
        token = await raw_token(http, sim)
        _, raw_balance = await raw_snap(
            http,
            sim,
            token,
            "/v1.0/balance-inquiry",
            {"accountNo": sim.credentials.agent_key},
            external_id="5001",
        )
        _, raw_balance_2 = await raw_snap(
            http,
            sim,
            token,
            "/v1.0/balance-inquiry",
            {"accountNo": sim.credentials.agent_key},
            external_id="5002",
        )
        inquiry = await inquire(doku, "INQ-SHAPE")
        result = await pay(doku, "PAY-SHAPE", session_id=inquiry.session_id)
        status = await status_of(doku, "PAY-SHAPE")
        balance = await balance_of(doku, sim)
    assert inquiry.response_code == "2004200"
    assert inquiry.session_id
    assert result.reference_no is not None
    assert status == "00"
    assert balance == sim.balance()
    answers = [raw_balance, raw_balance_2]
    docs_shape = [isinstance(a["responseCode"], int) for a in answers]
    assert docs_shape == {"docs": [True, True], "sandbox": [False, False]}.get(
        shapes, [True, False]
    )
    for answer, docs in zip(answers, docs_shape, strict=True):
        infos = answer["accountInfos"]
        if docs:
            assert isinstance(infos, dict)
            assert "avaliableBalance" in infos
        else:
            assert isinstance(infos, list)
            assert "availableBalance" in infos[0]


async def test_the_token_answer_is_shaped_as_doku_documents(creds: SimulatorCredentials) -> None:
    async with (
        asyncio.timeout(10),
        DokuSimulator(credentials=creds) as sim,
        aiohttp.ClientSession() as http,
    ):
        body = await raw_token_answer(http, sim)
    assert body["additionalInfo"] == ""  # a string, as DOKU's SDKs' token DTOs type it
    assert body["responseCode"] == "2007300"
    assert isinstance(body["expiresIn"], int)


def test_an_unknown_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="shapes must be one of"):
        DokuSimulator(shapes="imagined")
