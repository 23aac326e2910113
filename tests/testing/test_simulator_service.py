"""``python -m doku_async.testing`` as a service (issue 15): credentials written once and
reused, the key file kept when asked, ``--balance``, the webhook keys as ``export`` lines, and a
standalone simulator steered and inspected over its ``/_simulator/`` admin routes."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from fakedoku import serve
from helpers import FAST_TIMEOUTS, no_sleep, start_standalone

from doku_async import Clocks, DokuClient, RetryPolicy
from doku_async.testing import SimulatorCredentials
from doku_async.webhooks import Notification, create_webhook_app

EXPORTED = {
    "DOKU_BASE_URL",
    "DOKU_CLIENT_ID",
    "DOKU_CLIENT_SECRET",
    "DOKU_PRIVATE_KEY_PATH",
    "DOKU_AGENT_KEY",
    "DOKU_ENCRYPTION_KEYS",
}


def client_from(exports: dict[str, str]) -> DokuClient:
    return DokuClient.from_env(
        environ=exports,
        clocks=Clocks(sleep=no_sleep),
        retry=RetryPolicy(jitter=False),
        timeouts=FAST_TIMEOUTS,
    )


async def balance(exports: dict[str, str]) -> Decimal:
    async with client_from(exports) as doku:
        answer = await doku.kirim.balance_inquiry(account_no=exports["DOKU_AGENT_KEY"])
    assert answer.available_balance is not None
    return answer.available_balance


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_credentials_are_written_once_then_reused(tmp_path: Path) -> None:
    creds_file = tmp_path / "sim.json"
    key_file = tmp_path / "sim.private-key.pem"
    args = ("--credentials", str(creds_file), "--port", "0")
    first = await start_standalone(*args, "--balance", "2500.50", cwd=tmp_path)
    try:
        assert set(first.exports) == EXPORTED
        assert first.exports["DOKU_PRIVATE_KEY_PATH"] == str(key_file)  # absolute
        assert mode(creds_file) == 0o600
        assert mode(key_file) == 0o600
        saved = json.loads(creds_file.read_text())
        assert saved["client_id"] == first.exports["DOKU_CLIENT_ID"]
        assert saved["client_secret"] == first.exports["DOKU_CLIENT_SECRET"]
        assert saved["agent_key"] == first.exports["DOKU_AGENT_KEY"]
        assert saved["encryption_key"] == first.exports["DOKU_ENCRYPTION_KEYS"]
        assert saved["private_key_pem"] == key_file.read_text()
        assert "PUBLIC KEY" in saved["public_key_pem"]
        assert await balance(first.exports) == Decimal("2500.50")
    finally:
        code, err = await first.stop()
    assert code == 0, err
    assert "Traceback" not in err
    assert key_file.exists()  # kept: the service's configuration survives the restart

    second = await start_standalone(*args, cwd=tmp_path)
    try:
        same = {k: v for k, v in second.exports.items() if k != "DOKU_BASE_URL"}
        assert same == {k: v for k, v in first.exports.items() if k != "DOKU_BASE_URL"}
        assert json.loads(creds_file.read_text()) == saved  # reused, not rewritten
        assert await balance(second.exports) == Decimal("1000000000.00")  # state is not kept
    finally:
        code, err = await second.stop()
    assert code == 0, err


async def test_key_file_is_kept_where_asked(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "merchant.pem"
    key_file.parent.mkdir()
    sim = await start_standalone("--key-file", str(key_file))
    try:
        assert sim.exports["DOKU_PRIVATE_KEY_PATH"] == str(key_file)
        assert mode(key_file) == 0o600
        assert await balance(sim.exports) == Decimal("1000000000.00")
    finally:
        code, err = await sim.stop()
    assert code == 0, err
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert "the key file is kept" in sim.lines[-1]


def _valid_file() -> dict[str, str]:
    creds = SimulatorCredentials.generate()
    return {
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "private_key_pem": creds.private_key_pem.decode(),
        "public_key_pem": creds.public_key_pem.decode(),
        "agent_key": creds.agent_key,
        "encryption_key": creds.encryption_key,
    }


def _other_public_key() -> str:
    return SimulatorCredentials.generate().public_key_pem.decode()


BAD_FILES = [
    pytest.param(lambda d: "{not json", "is malformed", id="not-json"),
    pytest.param(lambda d: json.dumps({**d, "agent_key": None}), "is malformed", id="null"),
    pytest.param(
        lambda d: json.dumps({k: v for k, v in d.items() if k != "client_secret"}),
        "client_secret",
        id="missing-field",
    ),
    pytest.param(lambda d: json.dumps({**d, "client_id": ""}), "empty client_id", id="empty"),
    pytest.param(lambda d: json.dumps({**d, "encryption_key": "short"}), "16", id="enc-key"),
    pytest.param(
        lambda d: json.dumps({**d, "private_key_pem": "-----BEGIN NOTHING-----"}),
        "not an unencrypted PEM key",
        id="bad-pem",
    ),
    pytest.param(
        lambda d: json.dumps({**d, "public_key_pem": _other_public_key()}),
        "not the public half",
        id="mismatched-keys",
    ),
]


@pytest.mark.parametrize(("content", "says"), BAD_FILES)
def test_malformed_credentials_file_is_refused(tmp_path: Path, content: Any, says: str) -> None:
    creds_file = tmp_path / "sim.json"
    text = content(_valid_file())
    creds_file.write_text(text)
    done = subprocess.run(  # noqa: S603 - our own module, arguments built here
        [sys.executable, "-m", "doku_async.testing", "--credentials", str(creds_file)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert str(creds_file) in done.stderr, done.stderr
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert creds_file.read_text() == text  # never overwritten
    assert not (tmp_path / "sim.private-key.pem").exists()
    assert "SK-" not in done.stderr  # no secret in the message


@pytest.mark.parametrize("value", ["-5", "lots", "NaN"])
def test_bad_balance_is_refused_before_starting(value: str) -> None:
    done = subprocess.run(  # noqa: S603 - our own module, arguments built here
        [sys.executable, "-m", "doku_async.testing", "--balance", value],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "--balance" in done.stderr
    assert value in done.stderr


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(  # noqa: S603 - our own module, arguments built here
            [sys.executable, "-m", "doku_async.testing", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


async def test_standalone_simulator_is_steered_and_inspected_over_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver configured only from the printed ``export`` lines verifies the standalone
    simulator's notifications; faults go in and the ledger comes out over HTTP."""
    received: list[Notification] = []

    async def on_notification(notification: Notification) -> None:
        received.append(notification)

    creds_file = tmp_path / "sim.json"
    # First start only writes the credentials; the receiver needs the keys before it starts.
    sim = await start_standalone("--credentials", str(creds_file))
    await sim.stop()
    for name in ("DOKU_AGENT_KEY", "DOKU_ENCRYPTION_KEYS"):
        monkeypatch.setenv(name, sim.exports[name])
    root = web.Application()
    root.add_subapp("/doku/", create_webhook_app(on_notification=on_notification))
    async with asyncio.timeout(60), serve(root) as hook_url:
        sim = await start_standalone(
            "--credentials", str(creds_file), "--unpaid-url", hook_url + "/doku/kirim/unpaid"
        )
        try:
            await _steer_and_inspect(sim.base_url, sim.exports, received)
        finally:
            code, err = await sim.stop()
        assert code == 0, err


async def _steer_and_inspect(
    base: str, exports: dict[str, str], received: list[Notification]
) -> None:
    admin = base + "/_simulator"
    async with aiohttp.ClientSession() as http:
        fault = {"operation": "transfer_bank", "kind": "drop_after_commit"}
        async with http.post(admin + "/faults", json=fault) as resp:
            assert resp.status == 200
            assert await resp.json() == {"pending": {"transfer_bank": 1}}
        async with client_from(exports) as doku:
            result = await doku.kirim.transfer_bank(
                partner_reference_no="SVC-1",
                customer_number="628115678890",
                beneficiary_account_number="5512345678",  # UNPAID, then SUCCESS (bank 014)
                beneficiary_bank_code="014",
                amount="1500.00",
            )
        async with http.get(admin + "/ledger") as resp:
            ledger = await resp.json()
        [row] = ledger["transfers"]
        assert (row["reference"], row["amount"], row["times_paid"]) == ("SVC-1", "1500.00", 1)
        assert row["reference_no"] == result.reference_no
        assert ledger["paid_twice"] == []
        async with http.get(admin + "/requests") as resp:
            log = [
                (r["operation"], r["reference"], r["status"])
                for r in (await resp.json())["requests"]
            ]
        # Dropped after the commit: settled through check status, never sent again.
        assert ("transfer_bank", "SVC-1", 0) in log
        assert [r for r in log if r[0] == "transfer_bank"] == [("transfer_bank", "SVC-1", 0)]
        assert ("check_status", "SVC-1", 200) in log
        async with asyncio.timeout(10):
            while not received:  # noqa: ASYNC110 - the notification comes from another process
                await asyncio.sleep(0.02)
        assert received[0].transaction_id == result.reference_no
        assert received[0].status == "50"
        async with http.get(admin + "/notifications") as resp:
            [notification] = (await resp.json())["notifications"]
        assert notification["acknowledged"]
        assert notification["responses"] == [200]


async def test_a_credentials_file_readable_by_others_is_warned_about(tmp_path: Path) -> None:
    creds_file = tmp_path / "sim.json"
    creds_file.write_text(json.dumps(_valid_file()))
    creds_file.chmod(0o644)
    sim = await start_standalone("--credentials", str(creds_file))
    try:
        assert sim.exports["DOKU_CLIENT_ID"] == json.loads(creds_file.read_text())["client_id"]
    finally:
        code, err = await sim.stop()
    assert code == 0
    assert f"warning: {creds_file} is readable by others" in err
