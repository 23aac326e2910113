"""End-to-end Kirim DOKU flows against the independent fake DOKU server.

The fake recomputes every signature (RSA for the token, HMAC-SHA512 for SNAP calls) and checks
``X-PARTNER-ID``, ``X-EXTERNAL-ID``, ``CHANNEL-ID`` and that the body is minified JSON, so a
passing flow here means the SDK's wire format agrees with a second implementation.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from fakedoku import FakeDoku, generate_rsa_keypair, serve
from helpers import (
    AGENT_KEY,
    CLIENT_ID,
    CLIENT_SECRET,
    SleepRecorder,
    client_with,
    header,
    make_client,
)

from doku_async import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    Clocks,
    ConfigurationError,
    DokuClient,
    RetryPolicy,
    ServerError,
    TokenError,
)

CUSTOMER = "628115678890"
ACCOUNT = "8377388292"
BANK = "014"
EXTERNAL_ID = re.compile(r"[0-9]{1,36}")

OP_SUFFIXES = {
    "account_inquiry": "/emoney/bank-account-inquiry",
    "balance_inquiry": "/balance-inquiry",
    "transfer_bank": "/emoney/transfer-bank",
    "check_status": "/qr/qr-mpm-status",
}
TOKEN_PATH = "/authorization/v1/access-token/b2b"


# ----------------------------------------------------------------------------- helpers


def new_fake(keypair: tuple[bytes, bytes], **kwargs: Any) -> FakeDoku:
    return FakeDoku(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, public_key_pem=keypair[1], **kwargs
    )


@asynccontextmanager
async def running(
    fake: FakeDoku, keypair: tuple[bytes, bytes], **kwargs: Any
) -> AsyncIterator[DokuClient]:
    """Serve ``fake`` and yield a client pointed at it; everything bounded by 20 s."""
    async with (
        asyncio.timeout(20),
        serve(fake.app) as url,
        make_client(url, keypair, **kwargs) as client,
    ):
        yield client


async def inquire(client: DokuClient, ref: str, amount: str = "150000.00") -> Any:
    return await client.kirim.account_inquiry(
        partner_reference_no=ref,
        customer_number=CUSTOMER,
        beneficiary_account_number=ACCOUNT,
        beneficiary_bank_code=BANK,
        beneficiary_account_name="FHILEA HERMANUS",
        amount=amount,
    )


# ----------------------------------------------------------------------------- full flow


@pytest.mark.parametrize("family", ["/v1.0", "/snap/v1.1"])
async def test_four_operations_end_to_end(keypair: tuple[bytes, bytes], family: str) -> None:
    fake = new_fake(keypair, path_prefix=family)
    async with running(fake, keypair, kirim_paths=family) as client:
        before = await client.kirim.balance_inquiry(account_no=AGENT_KEY)
        inquiry = await inquire(client, "inq-e2e-1")
        assert inquiry.response_code == "2004200"  # sent as a JSON number by the fake
        assert inquiry.session_id
        assert inquiry.beneficiary_account_name == "FHILEA HERMANUS"

        result = await client.kirim.transfer_bank(
            partner_reference_no="pay-e2e-1",
            customer_number=CUSTOMER,
            beneficiary_account_number=ACCOUNT,
            beneficiary_bank_code=BANK,
            amount=Decimal("150000.00"),
            session_id=inquiry.session_id,
            beneficiary_account_name="FHILEA HERMANUS",
            remark="e2e",
        )
        assert result.status == "succeeded"
        assert result.succeeded
        assert result.resent is False
        # Accepted by the transfer's own answer, confirmed paid by one check status.
        assert result.status_response is not None
        assert result.transaction_status == "00"
        assert result.response is not None
        assert result.response.response_code == "2004300"
        assert result.partner_reference_no == "pay-e2e-1"
        assert result.reference_no == fake.transfers["pay-e2e-1"].reference_no
        assert fake.transfers["pay-e2e-1"].session_id == inquiry.session_id

        status = await client.kirim.check_status(
            original_partner_reference_no="pay-e2e-1", original_external_id=result.external_id
        )
        assert status.response_code == "2005300"
        assert status.transaction_status == "00"
        assert status.original_reference_no == result.reference_no
        assert status.service_code == 43  # number on the wire, kept as is

        after = await client.kirim.balance_inquiry(account_no=AGENT_KEY)

    assert before.available_balance is not None
    assert after.available_balance is not None
    assert before.available_balance - after.available_balance == Decimal("150000.00")
    assert fake.transfers_count("pay-e2e-1") == 1
    assert fake.errors == []

    # Every request went to the chosen family, and the path signed is the path requested
    # (the fake verified the signature over request.raw_path).
    expected_paths = [
        TOKEN_PATH,
        family + OP_SUFFIXES["balance_inquiry"],
        family + OP_SUFFIXES["account_inquiry"],
        family + OP_SUFFIXES["transfer_bank"],
        family + OP_SUFFIXES["check_status"],  # transfer_bank's confirmation
        family + OP_SUFFIXES["check_status"],
        family + OP_SUFFIXES["balance_inquiry"],
    ]
    assert [call.path for call in fake.calls] == expected_paths
    assert [call.status for call in fake.calls] == [200] * 7
    assert fake.token_requests == 1  # one token for the whole flow

    # The transfer body went out minified, with the session id and amount as a string.
    (transfer_call,) = fake.calls_for("transfer_bank")
    body = json.loads(transfer_call.body)
    assert body["amount"] == {"value": "150000.00", "currency": "IDR"}
    assert body["sessionId"] == inquiry.session_id
    assert transfer_call.body == json.dumps(body, separators=(",", ":")).encode()
    assert header(transfer_call, "X-EXTERNAL-ID") == result.external_id


async def test_base_url_with_path_prefix_is_signed(keypair: tuple[bytes, bytes]) -> None:
    """The fake mounted as a sub-app under ``/gw``: it verifies signatures over
    ``request.raw_path``, which in a sub-app is still the full path, so the SDK must sign
    ``/gw/v1.0/...``."""
    fake = new_fake(keypair)
    outer = web.Application()
    outer.add_subapp("/gw", fake.app)
    async with (
        asyncio.timeout(20),
        serve(outer) as url,
        make_client(url + "/gw/", keypair) as client,
    ):
        balance = await client.kirim.balance_inquiry(account_no=AGENT_KEY)
        inquiry = await inquire(client, "inq-gw")
        result = await client.kirim.transfer_bank(
            partner_reference_no="pay-gw",
            customer_number=CUSTOMER,
            beneficiary_account_number=ACCOUNT,
            beneficiary_bank_code=BANK,
            amount="1000.00",
            session_id=inquiry.session_id,
        )
        status = await client.kirim.check_status(original_partner_reference_no="pay-gw")
    assert balance.response_code == "2001100"
    assert result.status == "succeeded"
    assert status.transaction_status == "00"
    assert [call.path for call in fake.calls] == [
        "/gw" + TOKEN_PATH,
        "/gw/v1.0/balance-inquiry",
        "/gw/v1.0/emoney/bank-account-inquiry",
        "/gw/v1.0/emoney/transfer-bank",
        "/gw/v1.0/qr/qr-mpm-status",  # transfer_bank's confirmation
        "/gw/v1.0/qr/qr-mpm-status",
    ]
    assert all(call.status == 200 for call in fake.calls)
    assert fake.transfers_count("pay-gw") == 1


# ----------------------------------------------------------------------------- headers


async def test_default_headers(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    async with running(fake, keypair) as client:
        await client.kirim.balance_inquiry(account_no=AGENT_KEY)
        inquiry = await inquire(client, "inq-h")
        result = await client.kirim.transfer_bank(
            partner_reference_no="pay-h",
            customer_number=CUSTOMER,
            beneficiary_account_number=ACCOUNT,
            beneficiary_bank_code=BANK,
            amount="10.00",
            session_id=inquiry.session_id,
        )
        await client.kirim.check_status(original_partner_reference_no="pay-h")
        await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert result.status == "succeeded"

    (token_call,) = fake.calls_for("token")
    assert header(token_call, "X-TIMESTAMP").endswith("Z")
    assert header(token_call, "X-CLIENT-KEY") == CLIENT_ID

    snap_calls = [call for call in fake.calls if call.op != "token"]
    assert len(snap_calls) == 6  # transfer_bank's confirming check status included
    external_ids = []
    for call in snap_calls:
        assert call.status == 200, (call.op, call.response_code)
        assert header(call, "X-TIMESTAMP").endswith("+07:00")
        assert header(call, "CHANNEL-ID") == "H2H"
        assert header(call, "X-PARTNER-ID") == CLIENT_ID
        assert header(call, "Content-Type") == "application/json"
        assert header(call, "Authorization").startswith("Bearer ")
        external_id = header(call, "X-EXTERNAL-ID")
        assert EXTERNAL_ID.fullmatch(external_id), external_id
        external_ids.append(external_id)
    assert len(set(external_ids)) == len(external_ids)


async def test_configurable_channel_and_timestamp_formats(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    async with running(
        fake,
        keypair,
        channel_id="DESKTOP",
        request_timestamp_format="utc",
        token_timestamp_format="jakarta",
    ) as client:
        answer = await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert answer.response_code == "2001100"
    (token_call,) = fake.calls_for("token")
    assert header(token_call, "X-TIMESTAMP").endswith("+07:00")
    (call,) = fake.calls_for("balance_inquiry")
    assert header(call, "X-TIMESTAMP").endswith("Z")
    assert header(call, "CHANNEL-ID") == "DESKTOP"
    assert call.status == 200


async def test_invalid_timestamp_format_is_a_configuration_error(
    keypair: tuple[bytes, bytes],
) -> None:
    with pytest.raises(ConfigurationError, match="request_timestamp_format"):
        make_client("http://127.0.0.1:9", keypair, request_timestamp_format="local")


# ----------------------------------------------------------------------------- lifecycle


async def test_borrowed_session_is_not_closed(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    async with asyncio.timeout(20), serve(fake.app) as url:
        session = aiohttp.ClientSession()
        try:
            client = make_client(url, keypair, session=session)
            answer = await client.kirim.balance_inquiry(account_no=AGENT_KEY)
            await client.aclose()
            assert answer.response_code == "2001100"
            assert not session.closed
            # Still usable by its owner after the client is gone.
            async with session.get(url + "/anything") as resp:
                assert resp.status == 404
        finally:
            await session.close()
    assert len(fake.calls_for("balance_inquiry")) == 1


async def test_owned_session_is_closed_and_client_refuses_after_aclose(
    keypair: tuple[bytes, bytes],
) -> None:
    fake = new_fake(keypair)
    async with running(fake, keypair) as client:
        await client.kirim.balance_inquiry(account_no=AGENT_KEY)
        await client.aclose()
        await client.aclose()  # idempotent
        with pytest.raises(ClientClosedError, match="closed") as info:
            await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert info.value.request_sent is False
    assert len(fake.calls_for("balance_inquiry")) == 1


async def test_closed_borrowed_session_raises_a_doku_error(keypair: tuple[bytes, bytes]) -> None:
    """The error tree promises that every error the SDK raises derives from DokuError."""
    session = aiohttp.ClientSession()
    await session.close()
    async with (
        asyncio.timeout(20),
        make_client("http://127.0.0.1:9", keypair, session=session) as c,
    ):
        with pytest.raises(ClientClosedError) as info:
            await c.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert info.value.request_sent is False


# ----------------------------------------------------------------------------- from_env


async def test_from_env(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair, path_prefix="/snap/v1.1")
    async with asyncio.timeout(20), serve(fake.app) as url:
        environ = {
            "DOKU_CLIENT_ID": CLIENT_ID,
            "DOKU_CLIENT_SECRET": CLIENT_SECRET,
            "DOKU_PRIVATE_KEY": keypair[0].decode(),
            "DOKU_BASE_URL": url,
            "DOKU_KIRIM_PATHS": "/snap/v1.1",
            "DOKU_CHANNEL_ID": "API",
        }
        async with DokuClient.from_env(environ=environ) as client:
            assert client.base_url == url
            assert client.environment == "custom"
            answer = await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert answer.response_code == "2001100"
    (call,) = fake.calls_for("balance_inquiry")
    assert call.path == "/snap/v1.1/balance-inquiry"
    assert header(call, "CHANNEL-ID") == "API"


@pytest.mark.parametrize("missing", ["DOKU_CLIENT_ID", "DOKU_CLIENT_SECRET"])
def test_from_env_missing_credentials(keypair: tuple[bytes, bytes], missing: str) -> None:
    environ = {
        "DOKU_CLIENT_ID": CLIENT_ID,
        "DOKU_CLIENT_SECRET": CLIENT_SECRET,
        "DOKU_PRIVATE_KEY": keypair[0].decode(),
        "DOKU_BASE_URL": "http://127.0.0.1:9",
    }
    del environ[missing]
    with pytest.raises(ConfigurationError, match=missing):
        DokuClient.from_env(environ=environ)
    environ[missing] = ""  # empty counts as missing
    with pytest.raises(ConfigurationError, match=missing):
        DokuClient.from_env(environ=environ)


async def test_from_env_missing_private_key_fails_before_io() -> None:
    """Without DOKU_PRIVATE_KEY the client can be built (non-SNAP products need no RSA key),
    but the first Kirim DOKU call raises ConfigurationError before any I/O."""
    environ = {
        "DOKU_CLIENT_ID": CLIENT_ID,
        "DOKU_CLIENT_SECRET": CLIENT_SECRET,
        "DOKU_BASE_URL": "http://127.0.0.1:9",
    }
    async with asyncio.timeout(5):
        async with DokuClient.from_env(environ=environ) as client:
            with pytest.raises(ConfigurationError, match="private_key"):
                await client.kirim.balance_inquiry(account_no=AGENT_KEY)
            assert client.token_fetches == 0


def test_from_env_without_base_url_uses_sandbox(keypair: tuple[bytes, bytes]) -> None:
    environ = {
        "DOKU_CLIENT_ID": CLIENT_ID,
        "DOKU_CLIENT_SECRET": CLIENT_SECRET,
        "DOKU_PRIVATE_KEY": keypair[0].decode(),
    }
    client = DokuClient.from_env(environ=environ)
    assert client.base_url == "https://api-sandbox.doku.com"
    assert client.environment == "sandbox"


# ----------------------------------------------------------------------------- read retries


async def test_read_retries_5xx_with_fresh_external_ids(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    sleeps = SleepRecorder()
    fake.inject("balance_inquiry", "http", times=2, http_status=500)
    async with running(fake, keypair, clocks=Clocks(sleep=sleeps)) as client:
        answer = await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert answer.response_code == "2001100"
    calls = fake.calls_for("balance_inquiry")
    assert [(c.status, c.response_code) for c in calls] == [
        (500, "5001100"),
        (500, "5001100"),
        (200, "2001100"),
    ]
    external_ids = [header(c, "X-EXTERNAL-ID") for c in calls]
    assert len(set(external_ids)) == 3
    assert sleeps.calls == [0.5, 1.0]  # exponential backoff, jitter off


async def test_read_honours_retry_after(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    sleeps = SleepRecorder()
    fake.inject(
        "balance_inquiry", "http", http_status=429, response_code="4291100", retry_after="1"
    )
    async with running(fake, keypair, clocks=Clocks(sleep=sleeps)) as client:
        answer = await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert answer.response_code == "2001100"
    assert sleeps.calls == [1.0]
    assert [c.response_code for c in fake.calls_for("balance_inquiry")] == ["4291100", "2001100"]


async def test_read_400_is_final(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    sleeps = SleepRecorder()
    fake.inject("balance_inquiry", "http", http_status=400, response_code="4001102")
    async with running(fake, keypair, clocks=Clocks(sleep=sleeps)) as client:
        with pytest.raises(BadRequestError) as info:
            await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    err = info.value
    assert (err.http_status, err.response_code) == (400, "4001102")
    assert (err.service_code, err.case_code) == ("11", "02")
    assert err.response_message == "Injected"
    assert "X-EXTERNAL-ID" in err.references
    assert len(fake.calls_for("balance_inquiry")) == 1
    assert err.references["X-EXTERNAL-ID"] == header(
        fake.calls_for("balance_inquiry")[0], "X-EXTERNAL-ID"
    )
    assert sleeps.calls == []


async def test_read_gives_up_after_max_attempts(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    fake.inject("balance_inquiry", "http", times=10, http_status=503)
    async with running(fake, keypair, retry=RetryPolicy(jitter=False, max_attempts=3)) as client:
        with pytest.raises(ServerError) as info:
            await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert info.value.response_code == "5031100"
    assert len(fake.calls_for("balance_inquiry")) == 3


# ----------------------------------------------------------------------------- tokens


async def test_expired_token_is_refreshed_once(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    async with running(fake, keypair) as client:
        await client.kirim.balance_inquiry(account_no=AGENT_KEY)
        fake.expire_tokens()
        answer = await client.kirim.balance_inquiry(account_no=AGENT_KEY)
        assert client.token_fetches == 2
    assert answer.response_code == "2001100"
    assert fake.token_requests == 2
    calls = fake.calls_for("balance_inquiry")
    assert [c.response_code for c in calls] == ["2001100", "4011101", "2001100"]
    # The retried request was re-signed with the new token, under the same X-EXTERNAL-ID.
    assert header(calls[1], "Authorization") != header(calls[2], "Authorization")
    assert header(calls[1], "X-EXTERNAL-ID") == header(calls[2], "X-EXTERNAL-ID")


async def test_token_rejected_twice_raises_token_error(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair, token_ttl=900)
    async with running(fake, keypair, retry=RetryPolicy(jitter=False, max_attempts=1)) as client:
        await client.kirim.balance_inquiry(account_no=AGENT_KEY)
        fake.expire_tokens()
        # The refreshed token is expired on arrival, too.
        fake.token_ttl = -1
        with pytest.raises(TokenError) as info:
            await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert info.value.response_code == "4011101"
    codes = [c.response_code for c in fake.calls_for("balance_inquiry")]
    assert codes == ["2001100", "4011101", "4011101"]  # one refresh, never a loop


async def test_concurrent_first_calls_share_one_token(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    async with running(fake, keypair) as client:
        answers = await asyncio.gather(
            *(client.kirim.balance_inquiry(account_no=AGENT_KEY) for _ in range(12))
        )
        assert client.token_fetches == 1
    assert [a.response_code for a in answers] == ["2001100"] * 12
    assert fake.token_requests == 1
    assert len(fake.calls_for("token")) == 1


async def test_concurrent_401s_trigger_one_refresh(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    async with running(fake, keypair) as client:
        await client.kirim.balance_inquiry(account_no=AGENT_KEY)
        fake.expire_tokens()
        answers = await asyncio.gather(
            *(client.kirim.balance_inquiry(account_no=AGENT_KEY) for _ in range(12))
        )
        assert client.token_fetches == 2
    assert [a.response_code for a in answers] == ["2001100"] * 12
    assert fake.token_requests == 2
    codes = [c.response_code for c in fake.calls_for("balance_inquiry")]
    assert codes.count("4011101") == 12
    assert codes.count("2001100") == 13


async def test_forged_client_secret(keypair: tuple[bytes, bytes]) -> None:
    fake = new_fake(keypair)
    async with (
        asyncio.timeout(20),
        serve(fake.app) as url,
        client_with(url, keypair[0], secret="SK-forged-secret") as client,
    ):
        with pytest.raises(AuthenticationError) as info:
            await client.kirim.balance_inquiry(account_no=AGENT_KEY)
        with pytest.raises(AuthenticationError) as transfer_info:
            await client.kirim.transfer_bank(
                partner_reference_no="pay-forged",
                customer_number=CUSTOMER,
                beneficiary_account_number=ACCOUNT,
                beneficiary_bank_code=BANK,
                amount="1.00",
            )
    assert not isinstance(info.value, TokenError)
    assert info.value.response_code == "4011100"
    assert transfer_info.value.response_code == "4014300"
    assert "check the client secret (DOKU_CLIENT_SECRET)" in str(transfer_info.value)
    assert len(fake.calls_for("balance_inquiry")) == 1
    assert len(fake.calls_for("transfer_bank")) == 1
    assert fake.calls_for("check_status") == []
    assert fake.transfers_count("pay-forged") == 0
    assert fake.token_requests == 1  # the token was fine; no refresh loop either


async def test_wrong_private_key(keypair: tuple[bytes, bytes]) -> None:
    other_private, _ = generate_rsa_keypair()
    fake = new_fake(keypair)
    async with (
        asyncio.timeout(20),
        serve(fake.app) as url,
        client_with(url, other_private) as client,
    ):
        with pytest.raises(AuthenticationError) as info:
            await client.kirim.balance_inquiry(account_no=AGENT_KEY)
    assert info.value.response_code == "4017300"
    assert "public key is registered with DOKU" in str(info.value)
    assert info.value.http_status == 401
    assert info.value.raw_body == b""  # token answers are never carried
    assert len(fake.calls_for("token")) == 1
    assert fake.calls_for("balance_inquiry") == []
    assert fake.token_requests == 0
