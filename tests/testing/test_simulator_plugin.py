"""The simulator's pytest plugin (run through ``pytester`` in a subprocess) and its command
line entry point ``python -m doku_async.testing``."""

from __future__ import annotations

import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import no_sleep, start_standalone

from doku_async import Clocks, DokuClient, RetryPolicy, Timeouts

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

CONFTEST = """
pytest_plugins = ["doku_async.testing.pytest_plugin"]
"""

USER_TESTS = """
from decimal import Decimal

from doku_async import DokuClient
from doku_async.testing import DokuSimulator

CLOSED = []


async def test_balance_and_transfer(doku_simulator: DokuSimulator, doku_client: DokuClient):
    agent = doku_simulator.credentials.agent_key
    before = (await doku_client.kirim.balance_inquiry(account_no=agent)).available_balance
    result = await doku_client.kirim.transfer_bank(
        partner_reference_no="USER-1",
        customer_number="628115678890",
        beneficiary_account_number="8377388292",
        beneficiary_bank_code="014",
        amount="1500.00",
    )
    assert result.succeeded
    assert doku_simulator.transfer_count("USER-1") == 1
    after = (await doku_client.kirim.balance_inquiry(account_no=agent)).available_balance
    assert before - after == Decimal("1500.00")
    CLOSED.append(doku_simulator)


async def test_fresh_simulator_per_test(doku_simulator: DokuSimulator, doku_client: DokuClient):
    assert doku_simulator.transfer_count("USER-1") == 0
    assert CLOSED and CLOSED[0] is not doku_simulator
    assert CLOSED[0]._runner is None  # the previous test's simulator was closed


def test_options_default_to_empty(doku_simulator_options):
    assert doku_simulator_options == {}
"""

USER_OVERRIDE_TESTS = """
import pytest

from doku_async import InsufficientFundsError


@pytest.fixture
def doku_simulator_options():
    return {"balance": "5.00"}


async def test_small_balance(doku_simulator, doku_client):
    with pytest.raises(InsufficientFundsError) as info:
        await doku_client.kirim.transfer_bank(
            partner_reference_no="USER-2",
            customer_number="628115678890",
            beneficiary_account_number="8377388292",
            beneficiary_bank_code="014",
            amount="10.00",
        )
    assert info.value.case_code == "14"
    assert doku_simulator.transfer_count("USER-2") == 0
    assert doku_simulator.balance() == 5


async def test_injected_fault_is_absorbed(doku_simulator, doku_client):
    doku_simulator.inject("balance_inquiry", "error", status=503)
    agent = doku_simulator.credentials.agent_key
    answer = await doku_client.kirim.balance_inquiry(account_no=agent)
    assert answer.available_balance == 5
"""


def test_plugin_fixtures_in_a_user_project(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_user=USER_TESTS, test_user_override=USER_OVERRIDE_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=60)
    result.assert_outcomes(passed=5)
    assert result.ret == 0


def test_plugin_reports_a_failing_user_test(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_failing="""
        async def test_counts_a_transfer_that_never_happened(doku_simulator, doku_client):
            await doku_client.kirim.check_status(original_partner_reference_no="NOPE")
            assert doku_simulator.transfer_count("NOPE") == 1
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=60)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 0 == 1*"])


def test_module_help_exits_zero() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "doku_async.testing", "--help"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0
    assert "--port" in done.stdout
    assert "--unpaid-url" in done.stdout


async def test_module_runs_a_usable_simulator() -> None:
    sim = await start_standalone("--port", "0")
    try:
        env = sim.exports
        assert env["DOKU_BASE_URL"].startswith("http://127.0.0.1:")
        assert set(env) >= {"DOKU_CLIENT_ID", "DOKU_CLIENT_SECRET", "DOKU_PRIVATE_KEY_PATH"}
        agent_key = env["DOKU_AGENT_KEY"]
        assert f"agent key (balance inquiry accountNo): {agent_key}" in sim.lines

        async with DokuClient.from_env(
            environ=env,
            clocks=Clocks(sleep=no_sleep),
            retry=RetryPolicy(jitter=False),
            timeouts=Timeouts(connect=2.0, attempt=5.0, total=10.0),
        ) as doku:
            answer = await doku.kirim.balance_inquiry(account_no=agent_key)
        assert answer.available_balance == Decimal("1000000000.00")
    finally:
        code, stderr = await sim.stop(signal.SIGINT)
    assert code == 0, stderr
    assert "Traceback" not in stderr


def _exists(path: Path) -> bool:
    return path.exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_module_removes_its_key_file_on_exit(sig: int) -> None:
    sim = await start_standalone()
    key_path = Path(sim.exports["DOKU_PRIVATE_KEY_PATH"])
    try:
        assert _exists(key_path)
        assert key_path.parent.name.startswith("doku-sim-")
    finally:
        code, _ = await sim.stop(sig)
    assert code == 0
    assert not _exists(key_path)
    assert not _exists(key_path.parent)
