"""The simulator's pytest plugin (run through ``pytester`` in a subprocess) and its command
line entry point ``python -m doku_async.testing``."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import no_sleep

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


async def _launch() -> tuple[asyncio.subprocess.Process, dict[str, str], str]:
    """Start ``python -m doku_async.testing --port 0``; read its banner up to "Ctrl-C".

    Returns the process, the ``export`` variables it printed and the agent key.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "doku_async.testing",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    env: dict[str, str] = {}
    agent_key = ""
    lines: list[str] = []
    while True:
        raw = await proc.stdout.readline()
        if not raw:
            await _stop(proc)
            raise AssertionError(f"the simulator exited early: {lines}")
        line = raw.decode().strip()
        lines.append(line)
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value
        elif line.startswith("agent key"):
            agent_key = line.rpartition(": ")[2]
        elif line.startswith("Ctrl-C"):
            return proc, env, agent_key


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.communicate()


def _exists(path: Path) -> bool:
    return path.exists()


def _remove_key_dir(env: dict[str, str]) -> None:
    path = env.get("DOKU_PRIVATE_KEY_PATH")
    if path and Path(path).parent.name.startswith("doku-sim-"):
        shutil.rmtree(Path(path).parent, ignore_errors=True)


async def test_module_runs_a_usable_simulator() -> None:
    async with asyncio.timeout(20):
        proc, env, agent_key = await _launch()
        try:
            assert env["DOKU_BASE_URL"].startswith("http://127.0.0.1:")
            assert set(env) >= {"DOKU_CLIENT_ID", "DOKU_CLIENT_SECRET", "DOKU_PRIVATE_KEY_PATH"}
            assert agent_key

            async with DokuClient.from_env(
                environ=env,
                clocks=Clocks(sleep=no_sleep),
                retry=RetryPolicy(jitter=False),
                timeouts=Timeouts(connect=2.0, attempt=5.0, total=10.0),
            ) as doku:
                answer = await doku.kirim.balance_inquiry(account_no=agent_key)
            assert answer.available_balance == Decimal("1000000000.00")

            proc.send_signal(signal.SIGINT)
            _, stderr = await asyncio.wait_for(proc.communicate(), timeout=5)
            assert proc.returncode == 0, stderr.decode()
            assert b"Traceback" not in stderr
        finally:
            await _stop(proc)
            _remove_key_dir(env)


async def test_module_removes_its_key_file_on_exit() -> None:
    async with asyncio.timeout(20):
        proc, env, _ = await _launch()
        try:
            key_path = Path(env["DOKU_PRIVATE_KEY_PATH"])
            assert _exists(key_path)
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.communicate(), timeout=5)
            assert proc.returncode == 0
            assert not _exists(key_path)
        finally:
            await _stop(proc)
            _remove_key_dir(env)
