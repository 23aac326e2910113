"""aiohttp failures mapped to the SDK's errors, with ``aioresponses`` standing in for DOKU.

``request_sent`` is the flag the money rule hangs on: ``False`` only when the request certainly
never reached DOKU (connect failure, connect timeout), ``True`` otherwise.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from helpers import AGENT_KEY, make_client
from yarl import URL

from doku_async import (
    DokuClient,
    DokuConnectionError,
    DokuTimeoutError,
    DokuTransportError,
    InvalidAccountError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    TransferFailedError,
    TransferOutcomeUnknownError,
)

BASE = "http://doku.test"
TOKEN_URL = BASE + "/authorization/v1/access-token/b2b"
BALANCE_URL = BASE + "/v1.0/balance-inquiry"
INQUIRY_URL = BASE + "/v1.0/emoney/bank-account-inquiry"
TRANSFER_URL = BASE + "/v1.0/emoney/transfer-bank"
STATUS_URL = BASE + "/v1.0/qr/qr-mpm-status"
TOKEN_PAYLOAD = {"responseCode": "2007300", "accessToken": "tok", "expiresIn": 900}
MAX_ATTEMPTS = RetryPolicy().max_attempts


class _FinishedWriter:
    """Stands in for the request's stream writer once the upload is done."""

    output_size = 0


class CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds ``ClientResponse`` without ``stream_writer``, which aiohttp
    3.14 made a required argument (pnuckowski/aioresponses#289). Supply a finished stub."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        if _NEEDS_STREAM_WRITER:
            kwargs.setdefault("stream_writer", _FinishedWriter())
        super().__init__(method, url, **kwargs)


_NEEDS_STREAM_WRITER = "stream_writer" in inspect.signature(aiohttp.ClientResponse).parameters


def reply(mock: Any, url: str, **kwargs: Any) -> None:
    """``mock.post`` for an answer (not an exception), built with :class:`CompatResponse`."""
    mock.post(url, response_class=CompatResponse, **kwargs)


def connector_error() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("doku.test", 80, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


def calls(mock: Any, url: str) -> int:
    return len(mock.requests.get(("POST", URL(url)), []))


@pytest.fixture
def mocked() -> Iterator[Any]:
    with aioresponses() as mock:
        reply(mock, TOKEN_URL, payload=TOKEN_PAYLOAD, repeat=True)
        yield mock


@pytest.fixture
async def doku(keypair: tuple[bytes, bytes]) -> AsyncIterator[DokuClient]:
    async with asyncio.timeout(20):
        async with make_client(BASE, keypair) as client:
            yield client


async def balance(client: DokuClient) -> Any:
    return await client.kirim.balance_inquiry(account_no=AGENT_KEY)


# ----------------------------------------------------------------------------- exception mapping


@pytest.mark.parametrize(
    ("exception", "error_type", "request_sent"),
    [
        pytest.param(connector_error(), DokuConnectionError, False, id="connector-error"),
        pytest.param(
            aiohttp.ServerDisconnectedError(), DokuConnectionError, True, id="server-disconnected"
        ),
        pytest.param(
            aiohttp.ClientPayloadError("truncated"), DokuConnectionError, True, id="payload"
        ),
        pytest.param(
            aiohttp.ClientOSError(104, "Connection reset by peer"),
            DokuConnectionError,
            True,
            id="connection-reset",
        ),
        pytest.param(TimeoutError(), DokuTimeoutError, True, id="asyncio-timeout"),
        pytest.param(
            aiohttp.SocketTimeoutError("read timeout"), DokuTimeoutError, True, id="read-timeout"
        ),
        pytest.param(
            aiohttp.ConnectionTimeoutError("connect timeout"),
            DokuTimeoutError,
            False,
            id="connect-timeout",
        ),
    ],
)
async def test_read_exception_mapping(
    mocked: Any,
    doku: DokuClient,
    exception: Exception,
    error_type: type[DokuTransportError],
    request_sent: bool,
) -> None:
    mocked.post(BALANCE_URL, exception=exception, repeat=True)
    with pytest.raises(DokuTransportError) as info:
        await balance(doku)
    err = info.value
    assert type(err) is error_type
    assert err.request_sent is request_sent
    assert err.references["X-EXTERNAL-ID"].isdigit()
    assert calls(mocked, BALANCE_URL) == MAX_ATTEMPTS  # a read retries every transport error
    assert calls(mocked, TOKEN_URL) == 1


async def test_read_recovers_after_transport_errors(mocked: Any, doku: DokuClient) -> None:
    mocked.post(BALANCE_URL, exception=aiohttp.ServerDisconnectedError())
    mocked.post(BALANCE_URL, exception=TimeoutError())
    reply(mocked, BALANCE_URL, payload={"responseCode": "2001100", "accountNo": AGENT_KEY})
    answer = await balance(doku)
    assert answer.response_code == "2001100"
    assert answer.account_no == AGENT_KEY
    assert calls(mocked, BALANCE_URL) == 3


async def test_token_connect_failure_is_not_sent(keypair: tuple[bytes, bytes]) -> None:
    async with asyncio.timeout(20):
        with aioresponses() as mocked:
            mocked.post(TOKEN_URL, exception=connector_error(), repeat=True)
            async with make_client(BASE, keypair) as client:
                with pytest.raises(DokuConnectionError) as info:
                    await balance(client)
            assert calls(mocked, BALANCE_URL) == 0
    assert info.value.request_sent is False
    assert "access token" in info.value.message


async def test_token_connect_failure_attempts_are_bounded(keypair: tuple[bytes, bytes]) -> None:
    """``RetryPolicy.max_attempts`` is documented as the attempts per read operation."""
    async with asyncio.timeout(20):
        with aioresponses() as mocked:
            mocked.post(TOKEN_URL, exception=connector_error(), repeat=True)
            async with make_client(BASE, keypair) as client:
                with pytest.raises(DokuConnectionError):
                    await balance(client)
            token_calls = calls(mocked, TOKEN_URL)
    assert token_calls >= 1
    assert token_calls <= MAX_ATTEMPTS, f"{token_calls} token requests for one read"


# ----------------------------------------------------------------------------- transfers


async def test_transfer_connect_failure_resends_same_references_only(
    mocked: Any, doku: DokuClient
) -> None:
    """Certainly not sent: the transfer may be retried with the same references, no check."""
    mocked.post(TRANSFER_URL, exception=connector_error(), repeat=True)
    with pytest.raises(DokuConnectionError) as info:
        await doku.kirim.transfer_bank(
            partner_reference_no="t-refused",
            customer_number="628115678890",
            beneficiary_account_number="8377388292",
            beneficiary_bank_code="014",
            amount="10.00",
        )
    assert info.value.request_sent is False
    sent = mocked.requests[("POST", URL(TRANSFER_URL))]
    assert len(sent) == MAX_ATTEMPTS
    assert len({call.kwargs["data"] for call in sent}) == 1
    assert len({call.kwargs["headers"]["X-EXTERNAL-ID"] for call in sent}) == 1
    assert calls(mocked, STATUS_URL) == 0


async def test_transfer_disconnect_asks_check_status(mocked: Any, doku: DokuClient) -> None:
    """Maybe sent: never resent blind; check status is asked, here it fails too."""
    mocked.post(TRANSFER_URL, exception=aiohttp.ServerDisconnectedError(), repeat=True)
    mocked.post(STATUS_URL, exception=TimeoutError(), repeat=True)
    with pytest.raises(TransferOutcomeUnknownError) as info:
        await doku.kirim.transfer_bank(
            partner_reference_no="t-dropped",
            customer_number="628115678890",
            beneficiary_account_number="8377388292",
            beneficiary_bank_code="014",
            amount="10.00",
        )
    err = info.value
    assert err.partner_reference_no == "t-dropped"
    assert isinstance(err.last_error, DokuConnectionError)
    assert err.last_error.request_sent is True
    assert calls(mocked, TRANSFER_URL) == 1
    assert calls(mocked, STATUS_URL) == RetryPolicy().status_checks
    (sent,) = mocked.requests[("POST", URL(TRANSFER_URL))]
    assert sent.kwargs["headers"]["X-EXTERNAL-ID"] == err.external_id


async def test_transfer_error_code_in_200_body_is_final(mocked: Any, doku: DokuClient) -> None:
    reply(mocked, TRANSFER_URL, payload={"responseCode": "4044311", "responseMessage": "Invalid"})
    with pytest.raises(InvalidAccountError) as info:
        await doku.kirim.transfer_bank(
            partner_reference_no="t-invalid",
            customer_number="628115678890",
            beneficiary_account_number="8377388292",
            beneficiary_bank_code="014",
            amount="10.00",
        )
    assert info.value.http_status == 200
    assert info.value.response_code == "4044311"
    assert calls(mocked, STATUS_URL) == 0


async def test_transfer_settled_failed_raises_transfer_failed(
    mocked: Any, doku: DokuClient
) -> None:
    mocked.post(TRANSFER_URL, exception=aiohttp.ServerDisconnectedError())
    reply(
        mocked,
        STATUS_URL,
        payload={
            "responseCode": "2005300",
            "latestTransactionStatus": "06",
            "transactionStatusDesc": "Transaction failed",
        },
    )
    with pytest.raises(TransferFailedError) as info:
        await doku.kirim.transfer_bank(
            partner_reference_no="t-failed",
            customer_number="628115678890",
            beneficiary_account_number="8377388292",
            beneficiary_bank_code="014",
            amount="10.00",
        )
    assert info.value.transaction_status == "06"
    assert info.value.references["partnerReferenceNo"] == "t-failed"
    assert calls(mocked, TRANSFER_URL) == 1  # a failed transfer is never resent


async def test_transfer_undocumented_status_is_outcome_unknown(
    mocked: Any, doku: DokuClient
) -> None:
    reply(mocked, TRANSFER_URL, status=500, payload={"responseCode": "5004301"})
    reply(mocked, STATUS_URL, payload={"responseCode": "2005300", "latestTransactionStatus": 99})
    with pytest.raises(TransferOutcomeUnknownError) as info:
        await doku.kirim.transfer_bank(
            partner_reference_no="t-odd",
            customer_number="628115678890",
            beneficiary_account_number="8377388292",
            beneficiary_bank_code="014",
            amount="10.00",
        )
    assert "'99'" in str(info.value)
    assert isinstance(info.value.last_error, ServerError)
    assert calls(mocked, TRANSFER_URL) == 1


async def test_transfer_check_status_404_not_found_allows_one_resend(
    mocked: Any, doku: DokuClient
) -> None:
    """Check status may say "not found" as ``404xx01`` instead of status ``07``."""
    reply(mocked, TRANSFER_URL, status=504, payload={"responseCode": "5044300"})
    reply(mocked, STATUS_URL, status=404, payload={"responseCode": "4045301"})
    reply(mocked, TRANSFER_URL, payload={"responseCode": "2004300", "referenceNo": "DK1"})
    result = await doku.kirim.transfer_bank(
        partner_reference_no="t-404",
        customer_number="628115678890",
        beneficiary_account_number="8377388292",
        beneficiary_bank_code="014",
        amount="10.00",
    )
    # The resend was accepted; the confirming check status got no answer (nothing more is
    # mocked), so the SDK says accepted, not paid.
    assert (result.status, result.resent, result.reference_no) == ("accepted", True, "DK1")
    sent = mocked.requests[("POST", URL(TRANSFER_URL))]
    assert len(sent) == 2
    assert sent[0].kwargs["data"] == sent[1].kwargs["data"]
    # Resent under the same partnerReferenceNo and a fresh X-EXTERNAL-ID (issue 12, finding 9).
    assert sent[0].kwargs["headers"]["X-EXTERNAL-ID"] != sent[1].kwargs["headers"]["X-EXTERNAL-ID"]


# ----------------------------------------------------------------------------- bodies


async def test_non_json_success_body_is_a_decode_error(mocked: Any, doku: DokuClient) -> None:
    reply(mocked, BALANCE_URL, status=200, body=b"<html>OK</html>", content_type="text/html")
    with pytest.raises(ResponseDecodeError) as info:
        await balance(doku)
    assert info.value.http_status == 200
    assert info.value.raw_body == b"<html>OK</html>"
    assert calls(mocked, BALANCE_URL) == 1


async def test_html_502_is_retried_then_server_error(mocked: Any, doku: DokuClient) -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    reply(mocked, BALANCE_URL, status=502, body=html, content_type="text/html", repeat=True)
    with pytest.raises(ServerError) as info:
        await balance(doku)
    assert info.value.http_status == 502
    assert info.value.response_code == ""
    assert info.value.raw_body == html
    assert calls(mocked, BALANCE_URL) == MAX_ATTEMPTS


async def test_html_502_then_success(mocked: Any, doku: DokuClient) -> None:
    reply(mocked, BALANCE_URL, status=502, body=b"<html>bad gateway</html>")
    reply(mocked, BALANCE_URL, payload={"responseCode": 2001100})
    answer = await balance(doku)
    assert answer.response_code == "2001100"
    assert calls(mocked, BALANCE_URL) == 2


async def test_error_code_wins_over_http_status(mocked: Any, doku: DokuClient) -> None:
    reply(
        mocked,
        INQUIRY_URL,
        status=200,
        payload={"responseCode": "4044211", "responseMessage": "Invalid Account"},
    )
    with pytest.raises(InvalidAccountError) as info:
        await doku.kirim.account_inquiry(
            partner_reference_no="inq-invalid",
            customer_number="628115678890",
            beneficiary_account_number="8377388292",
            beneficiary_bank_code="014",
            beneficiary_account_name="NAME",
            amount="10.00",
        )
    err = info.value
    assert (err.http_status, err.response_code, err.case_code) == (200, "4044211", "11")
    assert err.response_message == "Invalid Account"
    assert calls(mocked, INQUIRY_URL) == 1


async def test_success_code_in_wrong_shape_is_a_decode_error(mocked: Any, doku: DokuClient) -> None:
    # accountInfos must be an object or array: a success code in a malformed body is unusable.
    reply(mocked, BALANCE_URL, payload={"responseCode": "2001100", "accountInfos": 5})
    with pytest.raises(ResponseDecodeError):
        await balance(doku)
    assert calls(mocked, BALANCE_URL) == 1


async def test_token_decode_error_does_not_carry_body(keypair: tuple[bytes, bytes]) -> None:
    async with asyncio.timeout(20):
        with aioresponses() as mocked:
            reply(mocked, TOKEN_URL, status=200, body=b'{"accessToken": "secret-tok"', repeat=True)
            async with make_client(BASE, keypair) as client:
                with pytest.raises(ResponseDecodeError) as info:
                    await balance(client)
    assert info.value.raw_body == b""
    assert "secret-tok" not in str(info.value)


def test_connection_key_helper_is_well_formed() -> None:
    err = connector_error()
    assert err.os_error.errno == 111
    assert err.host == "doku.test"


@pytest.mark.parametrize(
    "odd",
    [
        {"responseCode": "2005300", "latestTransactionStatus": "99"},  # undocumented status
        {"responseCode": "2005300", "latestTransactionStatus": "07"},  # not visible yet
        {"responseCode": "2005300", "latestTransactionStatus": {"x": 1}},  # unusable
        {"responseCode": "5005300", "responseMessage": "General Error"},
    ],
)
async def test_an_odd_confirmation_never_turns_accepted_into_paid(
    mocked: Any, doku: DokuClient, odd: dict[str, object]
) -> None:
    """Adversarial (issue 13): DOKU accepts the transfer, then its confirming check status
    answers something odd. The SDK says accepted, never succeeded, and sends nothing more."""
    reply(mocked, TRANSFER_URL, payload={"responseCode": "2004300", "referenceNo": "DK9"})
    for _ in range(MAX_ATTEMPTS):
        reply(
            mocked, STATUS_URL, status=500 if odd["responseCode"] == "5005300" else 200, payload=odd
        )
    result = await doku.kirim.transfer_bank(
        partner_reference_no="t-odd",
        customer_number="628115678890",
        beneficiary_account_number="8377388292",
        beneficiary_bank_code="014",
        amount="10.00",
    )
    assert result.status == "accepted"
    assert not result.succeeded
    assert result.reference_no == "DK9"
    assert len(mocked.requests[("POST", URL(TRANSFER_URL))]) == 1
