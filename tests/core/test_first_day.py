"""Issue 15: what a new user trips on gets an error that says what to do.

Each test is one item of the issue: configuration from the environment, the forms a private
key arrives in, connection errors and 404s that name what was tried, and a client used after
(or without) closing it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import socket
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from helpers import SleepRecorder, wait_until

from doku_async import (
    AuthenticationError,
    BusinessRejectionError,
    ClientClosedError,
    Clocks,
    ConfigurationError,
    ConfigurationWarning,
    DokuClient,
    DokuConnectionError,
    DokuError,
    DokuTransportError,
    TransferOutcomeUnknownError,
)
from doku_async.testing import DokuSimulator


@pytest.fixture
async def sim() -> AsyncIterator[DokuSimulator]:
    async with DokuSimulator() as simulator:
        yield simulator


def _env(sim: DokuSimulator, **extra: str) -> dict[str, str]:
    creds = sim.credentials
    env = {
        "DOKU_CLIENT_ID": creds.client_id,
        "DOKU_CLIENT_SECRET": creds.client_secret,
        "DOKU_BASE_URL": sim.base_url,
    }
    env.update(extra)
    return env


def _no_key_material(message: str, pem: bytes) -> None:
    assert "-----BEGIN" not in message
    for line in pem.decode().splitlines():
        if len(line) >= 16 and not line.startswith("-----"):
            assert line not in message


# --- from_env --------------------------------------------------------------------------------


def test_from_env_missing_client_id_lists_what_is_read() -> None:
    with pytest.raises(ConfigurationError) as info:
        DokuClient.from_env(environ={"DOKU_CLIENT_SECRET": "s"})
    message = str(info.value)
    assert "DOKU_CLIENT_ID is not set" in message
    for name in ("DOKU_CLIENT_SECRET", "DOKU_PRIVATE_KEY", "DOKU_PRIVATE_KEY_PATH"):
        assert name in message


async def test_from_env_without_a_key_says_which_variables_give_one(sim: DokuSimulator) -> None:
    async with DokuClient.from_env(environ=_env(sim)) as doku:
        with pytest.raises(ConfigurationError) as info:
            await doku.kirim.balance_inquiry(account_no=sim.credentials.agent_key)
    assert "DOKU_PRIVATE_KEY" in str(info.value)
    assert "DOKU_PRIVATE_KEY_PATH" in str(info.value)
    assert sim.requests == []  # nothing was sent


def test_from_env_warns_about_a_misspelt_variable(sim: DokuSimulator) -> None:
    env = _env(sim, DOKU_PRIVATE_KEY_FILE="/etc/doku/key.pem")
    with pytest.warns(ConfigurationWarning, match="DOKU_PRIVATE_KEY_FILE.*DOKU_PRIVATE_KEY_PATH"):
        DokuClient.from_env(environ=env)


def test_from_env_is_quiet_about_variables_that_are_not_typos(sim: DokuSimulator) -> None:
    env = _env(
        sim,
        DOKU_TEST_POSTGRES_DSN="postgresql://x",
        DOKU_CUSTOMER_NUMBER="628115678890",
        DOKU_SOMETHING_ELSE_ENTIRELY="1",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DokuClient.from_env(environ=env)


def test_from_env_refuses_both_key_variables(sim: DokuSimulator, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(sim.credentials.private_key_pem)
    env = _env(
        sim,
        DOKU_PRIVATE_KEY=sim.credentials.private_key_pem.decode(),
        DOKU_PRIVATE_KEY_PATH=str(path),
    )
    with pytest.raises(ConfigurationError, match="both set"):
        DokuClient.from_env(environ=env)


def _encrypted(pem: bytes, passphrase: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


async def test_passphrase_protected_key_from_env_authenticates(sim: DokuSimulator) -> None:
    encrypted = _encrypted(sim.credentials.private_key_pem, b"correct horse")
    env = _env(
        sim, DOKU_PRIVATE_KEY=encrypted.decode(), DOKU_PRIVATE_KEY_PASSPHRASE="correct horse"
    )
    async with DokuClient.from_env(environ=env) as doku:
        balance = await doku.kirim.balance_inquiry(account_no=sim.credentials.agent_key)
    assert balance.available_balance is not None
    assert doku.token_fetches == 1


def test_encrypted_key_without_or_with_a_wrong_passphrase(sim: DokuSimulator) -> None:
    encrypted = _encrypted(sim.credentials.private_key_pem, b"correct horse")
    env = _env(sim, DOKU_PRIVATE_KEY=encrypted.decode())
    with pytest.raises(ConfigurationError, match=r"encrypted.*DOKU_PRIVATE_KEY_PASSPHRASE") as info:
        DokuClient.from_env(environ=env)
    _no_key_material(str(info.value), encrypted)
    env["DOKU_PRIVATE_KEY_PASSPHRASE"] = "wrong"
    with pytest.raises(ConfigurationError, match="cannot decrypt") as info:
        DokuClient.from_env(environ=env)
    assert "wrong" not in str(info.value)


# --- the forms a key arrives in -----------------------------------------------------------


def _certificate(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "merchant")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_public_key_and_certificate_are_named_as_such(sim: DokuSimulator) -> None:
    creds = sim.credentials
    with pytest.raises(ConfigurationError, match="this is a public key"):
        DokuClient(creds.client_id, creds.client_secret, private_key=creds.public_key_pem)
    cert = _certificate(creds.private_key_pem)
    with pytest.raises(ConfigurationError, match="this is a certificate") as info:
        DokuClient(creds.client_id, creds.client_secret, private_key=cert.decode())
    _no_key_material(str(info.value), cert)


async def test_pem_with_literal_backslash_n_is_read(sim: DokuSimulator) -> None:
    one_line = sim.credentials.private_key_pem.decode().strip().replace("\n", "\\n")
    assert "\n" not in one_line
    env = _env(sim, DOKU_PRIVATE_KEY=one_line)
    async with DokuClient.from_env(environ=env) as doku:
        await doku.kirim.balance_inquiry(account_no=sim.credentials.agent_key)
    assert doku.token_fetches == 1


def test_key_text_without_its_pem_lines_is_named(sim: DokuSimulator) -> None:
    pem = sim.credentials.private_key_pem.decode()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    with pytest.raises(ConfigurationError, match="without its PEM header") as info:
        DokuClient("id", "secret", private_key=body)
    _no_key_material(str(info.value), sim.credentials.private_key_pem)


def test_unreadable_key_file_is_named_but_a_stray_value_is_not(tmp_path: Path) -> None:
    missing = tmp_path / "keys" / "merchant.pem"
    with pytest.raises(ConfigurationError, match="cannot read key file") as info:
        DokuClient("id", "secret", private_key=str(missing))
    assert str(missing) in str(info.value)
    # A value that is not plainly a path (a secret given to the wrong argument) is not echoed.
    with pytest.raises(ConfigurationError, match="cannot read key file") as info:
        DokuClient("id", "secret", private_key="SK-oops-this-is-the-client-secret")
    assert "SK-oops" not in str(info.value)


# --- connection errors and 404s name what was tried --------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused_names_host_and_url(sim: DokuSimulator) -> None:
    port = _closed_port()
    url = f"http://127.0.0.1:{port}"
    async with sim.client(base_url=url, clocks=Clocks(sleep=SleepRecorder())) as doku:
        with pytest.raises(DokuConnectionError) as info:
            await doku.kirim.balance_inquiry(account_no=sim.credentials.agent_key)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert f"{url}/authorization/v1/access-token/b2b" in message


async def test_404_from_a_wrong_base_url_says_the_path(sim: DokuSimulator) -> None:
    async with sim.client(base_url=sim.base_url + "/wrong-prefix") as doku:
        with pytest.raises(BusinessRejectionError) as info:
            await doku.payout_links.status(reference_id="BONUS-1")
    message = str(info.value)
    assert "HTTP 404" in message
    assert "/wrong-prefix/" in message
    assert "base_url" in message


# --- closed and unclosed clients -----------------------------------------------------------


async def test_a_call_on_a_closed_client_fails_at_once(sim: DokuSimulator) -> None:
    sleeps = SleepRecorder()
    doku = sim.client(clocks=Clocks(sleep=sleeps))
    async with doku:
        await doku.kirim.balance_inquiry(account_no=sim.credentials.agent_key)
    sent = len(sim.requests)
    for call in (
        doku.kirim.balance_inquiry(account_no=sim.credentials.agent_key),
        doku.payout_links.status(reference_id="BONUS-1"),
    ):
        with pytest.raises(ClientClosedError, match="async with") as info:
            await call
        assert info.value.request_sent is False
    assert sleeps.calls == []  # no retry, no backoff
    assert len(sim.requests) == sent


async def test_a_client_never_closed_warns_naming_async_with(sim: DokuSimulator) -> None:
    doku = sim.client()
    await doku.kirim.balance_inquiry(account_no=sim.credentials.agent_key)
    transport = doku._transport  # keep the session to close it ourselves afterwards
    with pytest.warns(ResourceWarning, match=r"never closed.*async with.*aclose\(\)"):  # noqa: PT031
        del doku  # the last reference: the client is collected here, unclosed
        gc.collect()
    await transport.aclose()


async def test_authenticate_proves_the_key_before_anything_is_paid(sim: DokuSimulator) -> None:
    async with sim.client() as doku:
        await doku.authenticate()
        await doku.authenticate()  # the cached token: no second request
        assert doku.token_fetches == 1
    assert sim.token_requests == 1
    assert sim.requests_for("transfer_bank") == []

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    async with sim.client(private_key=other) as doku:
        with pytest.raises(AuthenticationError):
            await doku.authenticate()

    creds = sim.credentials
    async with DokuClient(creds.client_id, creds.client_secret, base_url=sim.base_url) as doku:
        with pytest.raises(ConfigurationError, match="DOKU_PRIVATE_KEY_PATH"):
            await doku.authenticate()


async def test_a_client_closed_while_a_transfer_is_unclear_raises_outcome_unknown(
    sim: DokuSimulator,
) -> None:
    # Closing is a usage error, but never one that hides money: the first send may have been
    # paid, so the caller gets TransferOutcomeUnknownError with the references.
    sim.inject("transfer_bank", "drop_after_commit")
    sim.inject("check_status", "latency", delay=0.5)
    doku = sim.client(clocks=Clocks(sleep=SleepRecorder()))
    transfer = asyncio.create_task(
        doku.kirim.transfer_bank(
            partner_reference_no="CLOSED-1",
            customer_number="628115678890",
            beneficiary_account_number="8377388292",
            beneficiary_bank_code="014",
            amount="10000",
        )
    )
    async with asyncio.timeout(10):
        await wait_until(lambda: bool(sim.requests_for("check_status")))
        await doku.aclose()
        with pytest.raises(TransferOutcomeUnknownError) as info:
            await transfer
    assert info.value.references["partnerReferenceNo"] == "CLOSED-1"
    assert sim.transfer_count("CLOSED-1") == 1


def test_client_closed_error_is_a_usage_error_not_a_transport_error() -> None:
    # A retry loop written as "except DokuTransportError: try again" must not catch it.
    assert not issubclass(ClientClosedError, DokuTransportError)
    assert issubclass(ClientClosedError, DokuError)
    assert ClientClosedError().request_sent is False


def test_from_env_names_the_variable_behind_a_bad_value(sim: DokuSimulator) -> None:
    with pytest.raises(
        ConfigurationError, match=r"^DOKU_BASE_URL \(base_url\): .*got '127\.0\.0\.1:8800'"
    ):
        DokuClient.from_env(_env(sim, DOKU_BASE_URL="127.0.0.1:8800"))
    pem = sim.credentials.private_key_pem.decode()
    body = "".join(pem.strip().splitlines()[1:-1])
    for value in (body, "\\n".join(pem.strip().splitlines()[1:-1])):  # bare base64, one line or \n
        with pytest.raises(
            ConfigurationError, match=r"^DOKU_PRIVATE_KEY \(private_key\): .*without its PEM"
        ):
            DokuClient.from_env(_env(sim, DOKU_PRIVATE_KEY=value))
    with pytest.raises(
        ConfigurationError, match="for the path to a key file use DOKU_PRIVATE_KEY_PATH"
    ):
        DokuClient.from_env(_env(sim, DOKU_PRIVATE_KEY="/etc/doku/key.pem"))
