"""No secret ever shows up in logs, reprs, results or errors.

A full flow runs against the fake with DEBUG logging on every logger; then every piece of text
a user could print or log is collected and searched for the client secret, the private key,
the access tokens the fake issued and every signature the SDK sent.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from fakedoku import FakeDoku, RecordedCall, generate_rsa_keypair, serve
from helpers import AGENT_KEY, CLIENT_ID, CLIENT_SECRET, client_with, make_client
from secret_scan import exception_texts, object_texts, pem_body_lines

from doku_async import (
    AuthenticationError,
    TransferOutcomeUnknownError,
)

FORGED_SECRET = "SK-forged-secret-also-must-not-leak-0b1d"
CUSTOMER = "628115678890"
ACCOUNT = "8377388292"
BANK = "014"
ATTEMPT_LINE = re.compile(
    r"^POST (?P<path>/\S+) -> (?:(?P<status>\d{3}) (?P<code>\d{7}|-) in \d+\.\dms"
    r"|(?P<error>Doku\w+Error)) \(attempt (?P<attempt>\d+)\)$"
)


def header(call: RecordedCall, name: str) -> str:
    for key, value in call.headers.items():
        if key.lower() == name.lower():
            return value
    return ""


async def test_no_secret_leaks_anywhere(
    keypair: tuple[bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("aiohttp", "doku_async", "fakedoku", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)

    other_private, _ = generate_rsa_keypair()
    fake = FakeDoku(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, public_key_pem=keypair[1])
    objects: list[object] = []
    errors: list[BaseException] = []

    async with asyncio.timeout(30), serve(fake.app) as url:
        async with make_client(url, keypair) as client:
            objects += [
                client,
                client.kirim,
                client._requester,
                client._requester.tokens,
                client._secret,
            ]
            objects.append(await client.kirim.balance_inquiry(account_no=AGENT_KEY))
            inquiry = await client.kirim.account_inquiry(
                partner_reference_no="inq-secret",
                customer_number=CUSTOMER,
                beneficiary_account_number=ACCOUNT,
                beneficiary_bank_code=BANK,
                beneficiary_account_name="FHILEA HERMANUS",
                amount="5000.00",
            )
            objects.append(inquiry)
            paid = await client.kirim.transfer_bank(
                partner_reference_no="pay-secret-1",
                customer_number=CUSTOMER,
                beneficiary_account_number=ACCOUNT,
                beneficiary_bank_code=BANK,
                amount="5000.00",
                session_id=inquiry.session_id,
            )
            objects += [paid, paid.response]
            objects.append(
                await client.kirim.check_status(original_partner_reference_no="pay-secret-1")
            )

            # A transfer whose answer is lost, settled through check status.
            fake.inject("transfer_bank", "drop_after_commit")
            settled = await client.kirim.transfer_bank(
                partner_reference_no="pay-secret-2",
                customer_number=CUSTOMER,
                beneficiary_account_number=ACCOUNT,
                beneficiary_bank_code=BANK,
                amount="10.00",
            )
            assert settled.status_response is not None
            objects += [settled, settled.status_response]

            # An expired token: one refresh, the request re-signed.
            fake.expire_tokens()
            objects.append(await client.kirim.balance_inquiry(account_no=AGENT_KEY))
            assert client.token_fetches == 2

            # A transfer whose outcome cannot be settled.
            fake.inject("transfer_bank", "drop_after_commit")
            fake.inject("check_status", "http", times=client.retry.status_checks)
            with pytest.raises(TransferOutcomeUnknownError) as unknown:
                await client.kirim.transfer_bank(
                    partner_reference_no="pay-secret-3",
                    customer_number=CUSTOMER,
                    beneficiary_account_number=ACCOUNT,
                    beneficiary_bank_code=BANK,
                    amount="10.00",
                )
            errors.append(unknown.value)

        # A forged client secret: DOKU rejects the HMAC signature.
        async with client_with(url, keypair[0], secret=FORGED_SECRET) as forged:
            objects.append(forged)
            with pytest.raises(AuthenticationError) as forged_error:
                await forged.kirim.balance_inquiry(account_no=AGENT_KEY)
            errors.append(forged_error.value)

        # The wrong private key: DOKU rejects the token request.
        async with client_with(url, other_private) as wrong_key:
            with pytest.raises(AuthenticationError) as key_error:
                await wrong_key.kirim.balance_inquiry(account_no=AGENT_KEY)
            errors.append(key_error.value)

    assert forged_error.value.response_code == "4011100"
    assert key_error.value.response_code == "4017300"
    assert fake.errors == []

    # --- the secrets --------------------------------------------------------------------------
    tokens = {header(c, "Authorization").removeprefix("Bearer ") for c in fake.calls}
    tokens |= set(fake._tokens)
    tokens.discard("")
    signatures = {header(c, "X-SIGNATURE") for c in fake.calls} - {""}
    assert len(tokens) >= 3  # two for the main client (refresh) and one for the forged one
    assert len(signatures) >= 10
    secrets = {
        "client secret": [CLIENT_SECRET, FORGED_SECRET],
        "private key": pem_body_lines(keypair[0]) + pem_body_lines(other_private),
        "access token": sorted(tokens),
        "signature": sorted(signatures),
    }

    # --- the texts ----------------------------------------------------------------------------
    records = caplog.records
    texts: list[str] = [caplog.text]
    for record in records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
    texts += object_texts(objects)
    for error in errors:
        texts += exception_texts(error)
    corpus = "\n".join(texts)
    assert "pay-secret-3" in corpus  # the corpus really holds the errors and results

    for kind, values in secrets.items():
        for value in values:
            assert value not in corpus, f"{kind} leaked: {value[:12]}..."

    # --- one debug line per attempt ------------------------------------------------------------
    lines = [r.getMessage() for r in records if r.name == "doku_async"]
    attempt_lines = [m for m in map(ATTEMPT_LINE.match, lines) if m is not None]
    transfer_path = fake.path("transfer_bank")
    first = re.compile(
        rf"^POST {re.escape(transfer_path)} -> 200 2004300 in \d+\.\dms \(attempt 1\)$"
    )
    assert any(first.match(line) for line in lines)
    per_path: dict[str, int] = {}
    for match in attempt_lines:
        per_path[match["path"]] = per_path.get(match["path"], 0) + 1
    recorded: dict[str, int] = {}
    for call in fake.calls:
        recorded[call.path] = recorded.get(call.path, 0) + 1
    assert per_path == recorded
    # The dropped transfer attempts are logged by error type, not as an answer.
    dropped = [m for m in attempt_lines if m["error"] is not None]
    assert [m["path"] for m in dropped] == [transfer_path, transfer_path]
    # The 401 and its re-signed retry are attempts of the same request.
    balance_lines = [
        (m["code"], m["attempt"])
        for m in attempt_lines
        if m["path"] == fake.path("balance_inquiry")
    ]
    assert ("4011101", "1") in balance_lines
