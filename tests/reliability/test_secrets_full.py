"""No secret ever shows up in logs, reprs, results, errors or the command line's output.

The whole product runs against the simulator with DEBUG logging on every logger: a token, every
Kirim DOKU operation, every Non-SNAP operation, a transfer settled through check status after
its answer is lost, a 401 token refresh, clients with a forged secret and a wrong private key,
a transfer whose outcome stays unknown, notifications (valid, forged, duplicate, and the
simulator's own signed deliveries) through the mounted webhook app, a bulk run with a journal,
and the ``doku-async`` command line in subprocesses (plain, with ``--out``, with DEBUG logging
and ``payouts status``).

Then every text a user could print or log is collected (log records and their tracebacks,
reprs and strs of the client and its parts, the simulator's credentials, the verifier, the
runner and its journal, every result, every exception with its args, attributes and
cause/context chain, the CLI's stdout/stderr and results CSVs) and searched for: the client
secrets, every base64 line of the private keys, every access token issued, every
``X-SIGNATURE``/``Signature`` header sent or received, the notification encryption key and
every notification ``signature`` header. Account numbers may appear in logs only masked.

(``python -m doku_async.testing`` prints its generated credentials on purpose; not used here.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakedoku import generate_rsa_keypair
from helpers import client_for
from secret_scan import exception_texts, object_texts, pem_body_lines

from doku_async import (
    AuthenticationError,
    RequestValidationError,
    SignatureVerificationError,
    Timeouts,
    TransferOutcomeUnknownError,
)
from doku_async.bulk import BulkRunner, ItemResult, payout_item
from doku_async.testing import DokuSimulator
from doku_async.webhooks import (
    WEBHOOK_CONFIG,
    AesSignatureVerifier,
    Notification,
    create_webhook_app,
    sign_kirim_notification,
)

pytestmark = pytest.mark.timeout(120)

FORGED_SECRET = "SK-forged-secret-that-must-not-leak-5c2e"
WRONG_ENCRYPTION_KEY = "wrong-16-charkey"
CUSTOMER = "628115678890"
CLI_TIMEOUT = 60.0
TIMEOUTS = Timeouts(connect=2.0, attempt=5.0, total=20.0)  # the clients' timeouts

# Every beneficiary account of the run. The simulator's magic values: "12345" inside the
# number goes UNPAID then SUCCESS (FAILED at bank 002); 7746555134 is refunded.
DIRECT_ACCOUNT = "8377388292"
BULK_ACCOUNTS = {
    "SEC-BULK-1": ("014", "6120398475"),
    "SEC-BULK-2": ("008", "9988776655"),
    "SEC-BULK-3": ("014", "5550012345"),  # unpaid, then success
    "SEC-BULK-4": ("002", "7770012345"),  # unpaid, then failed
    "SEC-BULK-5": ("009", "7746555134"),  # refunded
}
CLI_ACCOUNTS = {
    "cli-plain": ("014", "4433221109"),
    "cli-out": ("008", "3141592653"),
    "cli-debug": ("009", "2718281828"),
}
LOGGERS = (
    "",
    "aiohttp",
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.server",
    "aiohttp.web",
    "asyncio",
    "doku_async",
    "doku_async.bulk",
    "doku_async.testing",
    "doku_async.webhooks",
)
# The CLI with DEBUG logging on every logger (the CLI itself configures none).
DEBUG_CLI = (
    "import logging, runpy, sys; "
    "logging.basicConfig(level=logging.DEBUG, format='%(levelname)s %(name)s %(message)s'); "
    "sys.argv = ['doku-async', *sys.argv[1:]]; "
    "runpy.run_module('doku_async', run_name='__main__', alter_sys=True)"
)


# ------------------------------------------------------------------------------- helpers


def header(headers: dict[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return ""


@dataclass
class CliRun:
    args: tuple[str, ...]
    returncode: int
    output: str


async def run_cli(*args: str, env: dict[str, str], cwd: Path, debug: bool = False) -> CliRun:
    """``python -m doku_async ...`` (or the DEBUG wrapper) while this loop serves the
    simulator; stdout and stderr captured."""
    command = ("-c", DEBUG_CLI) if debug else ("-m", "doku_async")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        *args,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CliRun(args, proc.returncode, out.decode() + "\n" + err.decode())


def write_csv(path: Path, rows: dict[str, tuple[str, str]]) -> Path:
    lines = ["reference,bank_code,account_number,account_name,amount,remark"]
    lines += [
        f"{ref},{bank},{account},SECRET TEST {i},150000.00,October earnings"
        for i, (ref, (bank, account)) in enumerate(rows.items())
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------- the test


async def test_no_secret_leaks_anywhere(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)

    objects: list[object] = []
    errors: list[BaseException] = []
    notifications: list[Notification] = []
    notification_signatures: list[str] = []
    received_signatures: list[str] = []

    # --- the webhook receiver: its signature headers are recorded on the way in ---------------

    @web.middleware
    async def capture(request: web.Request, handler: Any) -> web.StreamResponse:
        value = request.headers.get("signature")
        if value:
            notification_signatures.append(value)
        response: web.StreamResponse = await handler(request)
        return response

    async def on_notification(notification: Notification) -> None:
        notifications.append(notification)

    other_pem = generate_rsa_keypair()[0]
    sim = DokuSimulator(notification_delay=0.01)
    creds = sim.credentials
    verifier = AesSignatureVerifier.single(creds.agent_key, creds.encryption_key)
    webhook_app = create_webhook_app(verifier=verifier, on_notification=on_notification)
    outer = web.Application(middlewares=[capture])
    outer.add_subapp("/doku/", webhook_app)
    receiver = TestServer(outer, host="127.0.0.1")
    await receiver.start_server()
    sim.unpaid_url = str(receiver.make_url("/doku/kirim/unpaid"))
    sim.refund_url = str(receiver.make_url("/doku/kirim/refund"))

    # --- the simulator: the Signature headers it answers with are recorded --------------------

    async def record_answer(request: web.BaseRequest, response: web.StreamResponse) -> None:
        value = response.headers.get("Signature")
        if value:
            received_signatures.append(value)

    sim.app.on_response_prepare.append(record_answer)
    await sim.start()
    objects += [sim, creds, verifier, webhook_app[WEBHOOK_CONFIG]]

    try:
        async with asyncio.timeout(100):
            async with client_for(sim, timeouts=TIMEOUTS) as client:
                objects += [
                    client,
                    client.kirim,
                    client.payout_links,
                    client.transfers,
                    client.rdl,
                    client._requester,
                    client._requester.tokens,
                    client._non_snap_requester,
                    client._secret,
                ]
                # --- every Kirim DOKU operation -------------------------------------------
                objects.append(await client.kirim.balance_inquiry(account_no=creds.agent_key))
                inquiry = await client.kirim.account_inquiry(
                    partner_reference_no="sec-inq-1",
                    customer_number=CUSTOMER,
                    beneficiary_account_number=DIRECT_ACCOUNT,
                    beneficiary_bank_code="014",
                    beneficiary_account_name="FHILEA HERMANUS",
                    amount="5000.00",
                )
                objects.append(inquiry)
                paid = await client.kirim.transfer_bank(
                    partner_reference_no="sec-pay-1",
                    customer_number=CUSTOMER,
                    beneficiary_account_number=DIRECT_ACCOUNT,
                    beneficiary_bank_code="014",
                    amount="5000.00",
                    session_id=inquiry.session_id,
                    remark="secret test",
                )
                objects += [paid, paid.response]
                objects.append(
                    await client.kirim.check_status(original_partner_reference_no="sec-pay-1")
                )

                # --- a transfer whose answer is lost, settled through check status --------
                sim.inject("transfer_bank", "drop_after_commit")
                settled = await client.kirim.transfer_bank(
                    partner_reference_no="sec-pay-2",
                    customer_number=CUSTOMER,
                    beneficiary_account_number=DIRECT_ACCOUNT,
                    beneficiary_bank_code="014",
                    amount="10.00",
                )
                assert settled.status_response is not None
                objects += [settled, settled.status_response]

                # --- an expired token: one refresh, the request re-signed -----------------
                sim.expire_tokens()
                objects.append(await client.kirim.balance_inquiry(account_no=creds.agent_key))
                assert client.token_fetches == 2

                # --- a transfer whose outcome cannot be settled ---------------------------
                sim.inject("transfer_bank", "drop_after_commit")
                sim.inject("check_status", "error", status=500, times=100)
                with pytest.raises(TransferOutcomeUnknownError) as unknown:
                    await client.kirim.transfer_bank(
                        partner_reference_no="sec-pay-3",
                        customer_number=CUSTOMER,
                        beneficiary_account_number=DIRECT_ACCOUNT,
                        beneficiary_bank_code="014",
                        amount="10.00",
                    )
                errors.append(unknown.value)
                sim.faults.clear()

                # --- a validation error (nothing sent) ------------------------------------
                with pytest.raises(RequestValidationError) as invalid:
                    await client.kirim.transfer_bank(
                        partner_reference_no="sec-pay-4",
                        customer_number=CUSTOMER,
                        beneficiary_account_number=DIRECT_ACCOUNT,
                        beneficiary_bank_code="014",
                        amount=10.5,  # type: ignore[arg-type]
                    )
                errors.append(invalid.value)

                # --- every Non-SNAP operation ---------------------------------------------
                link = await client.payout_links.initiate(
                    reference_id="SEC-LINK-1",
                    amount=Decimal("150000.50"),
                    sender_name="ACME Logistics",
                    receiver_name="Budi Santoso",
                    receiver_phone_number="628111222333",
                    receiver_email="budi@example.com",
                )
                objects += [link, await client.payout_links.status(reference_id="SEC-LINK-1")]
                objects.append(
                    await client.transfers.create(
                        origin="SAC-0000-0000000000001",
                        destination="SAC-8014-1628130619289",
                        amount=10000,
                        invoice_number="SEC-INV-1",
                    )
                )
                objects.append(
                    await client.rdl.disburse(
                        transaction_id="sec-rdl-1",
                        amount=300000,
                        description="withdrawal",
                        source_account_id="2340211124151729152107164433893000196019",
                        destination_bank_code="BNINIDJA",
                        destination_account_number="0115471119",
                        destination_account_name="ROBERT NARO",
                        destination_address="JAKARTA",
                    )
                )

                # --- a bulk run with a journal (its magic values notify the receiver) -----
                items = [
                    payout_item(
                        reference=ref,
                        bank_code=bank,
                        account_number=account,
                        account_name=f"BULK PAYEE {i}",
                        amount="25000.00",
                    )
                    for i, (ref, (bank, account)) in enumerate(BULK_ACCOUNTS.items())
                ]
                runner = BulkRunner(
                    client,
                    customer_number=CUSTOMER,
                    concurrency=4,
                    journal=str(tmp_path / "bulk.db"),
                    check_balance=True,
                    agent_key=creds.agent_key,
                )
                results: list[ItemResult] = [r async for r in runner.results(items)]
                assert runner.journal is not None
                objects += [runner, runner.journal, runner.summary, *results]
                objects += list(runner.journal.entries())
                runner.journal.close()
                assert sorted(r.reference for r in results) == sorted(BULK_ACCOUNTS)
                await sim.wait_for_notifications(3, timeout=10)

            # --- a forged client secret ----------------------------------------------------
            async with client_for(sim, timeouts=TIMEOUTS, client_secret=FORGED_SECRET) as forged:
                objects += [forged, forged._secret, forged._requester]
                with pytest.raises(AuthenticationError) as forged_snap:
                    await forged.kirim.balance_inquiry(account_no=creds.agent_key)
                errors.append(forged_snap.value)
                with pytest.raises((AuthenticationError, SignatureVerificationError)) as forged_ns:
                    await forged.payout_links.status(reference_id="SEC-LINK-1")
                errors.append(forged_ns.value)
                with pytest.raises((AuthenticationError, SignatureVerificationError)) as forged_tr:
                    await forged.transfers.create(
                        origin="SAC-0000-0000000000001",
                        destination="SAC-8014-1628130619289",
                        amount=10000,
                        invoice_number="SEC-INV-FORGED",
                    )
                errors.append(forged_tr.value)

            # --- the wrong private key: the token request is refused -----------------------
            async with client_for(sim, timeouts=TIMEOUTS, private_key=other_pem) as wrong_key:
                with pytest.raises(AuthenticationError) as key_error:
                    await wrong_key.kirim.balance_inquiry(account_no=creds.agent_key)
                errors.append(key_error.value)

            # --- notifications sent by hand: valid, duplicate, forged ----------------------
            async with aiohttp.ClientSession() as http:
                url = receiver.make_url("/doku/kirim/unpaid")
                body = (
                    b'{"transactionId":"SEC-TRX-1","invoiceNumber":"SEC-INV-9",'
                    b'"transactionStatus":"50","sendTrxId":"SEC-INV-9"}'
                )
                good = sign_kirim_notification(
                    agent_key=creds.agent_key,
                    encryption_key=creds.encryption_key,
                    request_id="5ec00000-0000-4000-8000-000000000001",
                )
                bad = sign_kirim_notification(
                    agent_key=creds.agent_key,
                    encryption_key=WRONG_ENCRYPTION_KEY,
                    request_id="5ec00000-0000-4000-8000-000000000002",
                )
                answers = []
                for headers in (good, good, bad):
                    async with http.post(url, data=body, headers=headers) as resp:
                        answers.append((resp.status, (await resp.json())["responseCode"]))
                assert answers == [(200, "00"), (200, "01"), (401, "401")]

            # --- the command line ----------------------------------------------------------
            env = {k: v for k, v in os.environ.items() if not k.startswith("DOKU_")}
            env.update(
                PYTHONDONTWRITEBYTECODE="1",
                DOKU_BASE_URL=sim.base_url,
                DOKU_CLIENT_ID=creds.client_id,
                DOKU_CLIENT_SECRET=creds.client_secret,
                DOKU_PRIVATE_KEY=creds.private_key_pem.decode(),
                DOKU_CUSTOMER_NUMBER=CUSTOMER,
            )
            csvs = {
                name: write_csv(tmp_path / f"{name}.csv", {f"SEC-{name}-1": row})
                for name, row in CLI_ACCOUNTS.items()
            }
            runs = [
                await run_cli(
                    "payouts", "run", str(csvs["cli-plain"]),
                    "--journal", str(tmp_path / "cli-plain.db"),
                    env=env, cwd=tmp_path,
                ),
                await run_cli(
                    "payouts", "run", str(csvs["cli-out"]),
                    "--journal", str(tmp_path / "cli-out.db"),
                    "--out", str(tmp_path / "cli-out-results.csv"),
                    env=env, cwd=tmp_path,
                ),
                await run_cli(
                    "payouts", "run", str(csvs["cli-debug"]),
                    "--journal", str(tmp_path / "cli-debug.db"),
                    "--out", str(tmp_path / "cli-debug-results.csv"),
                    env=env, cwd=tmp_path, debug=True,
                ),
                await run_cli(
                    "payouts", "status", "SEC-cli-plain-1",
                    "--journal", str(tmp_path / "cli-plain.db"),
                    env=env, cwd=tmp_path,
                ),
            ]  # fmt: skip
            for run in runs:
                assert run.returncode == 0, run
            results_csvs = [
                (tmp_path / "cli-out-results.csv").read_text(encoding="utf-8"),
                (tmp_path / "cli-debug-results.csv").read_text(encoding="utf-8"),
            ]
            assert all("SEC-cli-" in text and "succeeded" in text for text in results_csvs)
    finally:
        await sim.close()
        await receiver.close()

    # --- what happened -----------------------------------------------------------------------
    assert forged_snap.value.response_code == "4011100"
    assert key_error.value.response_code == "4017300"
    assert len(notifications) == 4  # three from the simulator, one by hand
    assert webhook_app[WEBHOOK_CONFIG].duplicates >= 1
    objects += notifications

    # --- the secrets -------------------------------------------------------------------------
    tokens = {header(r.headers, "Authorization").removeprefix("Bearer ") for r in sim.requests}
    tokens |= set(sim._tokens)
    tokens.discard("")
    sent_signatures = {header(r.headers, "X-SIGNATURE") for r in sim.requests}
    sent_signatures |= {header(r.headers, "Signature") for r in sim.requests}
    sent_signatures.discard("")
    assert len(tokens) >= 5  # main (2), forged, and one per CLI run that paid
    assert len(sent_signatures) >= 30
    assert len(received_signatures) >= 4
    assert len(notification_signatures) >= 6  # three deliveries and three by hand
    secrets = {
        "client secret": [creds.client_secret, FORGED_SECRET],
        "private key": pem_body_lines(creds.private_key_pem) + pem_body_lines(other_pem),
        "access token": sorted(tokens),
        "signature sent": sorted(sent_signatures),
        "signature received": sorted(set(received_signatures)),
        "encryption key": [creds.encryption_key, WRONG_ENCRYPTION_KEY],
        "notification signature": sorted(set(notification_signatures)),
    }

    # --- the texts ---------------------------------------------------------------------------
    log_texts: list[str] = [caplog.text]
    for record in caplog.records:
        log_texts.append(record.getMessage())
        log_texts.append(repr(record.args))
        if record.exc_text:
            log_texts.append(record.exc_text)
    cli_output = [run.output for run in runs]
    log_texts += cli_output  # the DEBUG run's log lines are on its stderr
    texts = list(log_texts)
    texts += object_texts(objects)
    for error in errors:
        texts += exception_texts(error)
    texts += results_csvs
    corpus = "\n".join(texts)
    # The corpus really holds what it should.
    assert "sec-pay-3" in corpus  # the unknown transfer's error
    assert "SEC-BULK-3" in corpus  # the bulk results
    assert "DEBUG doku_async" in "\n".join(cli_output)  # the CLI's own debug log
    assert "rejected unpaid notification" in caplog.text  # the forged notification

    for kind, values in secrets.items():
        assert values, kind
        for value in values:
            assert value not in corpus, f"{kind} leaked: {value[:12]}..."

    # --- account numbers: only masked in the logs --------------------------------------------
    log_corpus = "\n".join(log_texts)
    accounts = [DIRECT_ACCOUNT] + [a for _, a in BULK_ACCOUNTS.values()]
    accounts += [a for _, a in CLI_ACCOUNTS.values()]
    for account in accounts:
        assert account not in log_corpus, f"account {account[-4:]} logged in full"
    for _, account in [*BULK_ACCOUNTS.values(), CLI_ACCOUNTS["cli-debug"]]:
        assert f"account {'*' * (len(account) - 4)}{account[-4:]}" in log_corpus
