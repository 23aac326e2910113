"""Helpers shared by the test modules (fixtures live in ``conftest.py``).

Import them as ``from helpers import ...``: ``tests/`` is on ``sys.path`` (pytest's
``pythonpath`` setting; mypy finds it as the base directory of ``conftest.py``). The two fakes
under ``fakes/`` do not import this module: they must not depend on the SDK they check.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fakedoku import RecordedCall

from doku_async import Clocks, DokuClient, RetryPolicy, Timeouts
from doku_async.bulk import PayoutItem, payout_item
from doku_async.testing import DokuSimulator

CLIENT_ID = "BRN-0001-1700000000001"
CLIENT_SECRET = "SK-unit-test-secret-do-not-leak-7f3a9c"
AGENT_KEY = "A41879"

# ----------------------------------------------------------------------------- sleeping


async def no_sleep(_: float) -> None:
    """An injected ``sleep`` that returns at once (instant backoff)."""
    return


class SleepRecorder:
    """An injected ``sleep`` that records each requested delay and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.calls.append(delay)


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 15.0, interval: float = 0.005
) -> None:
    """Poll ``predicate`` every ``interval`` seconds until true (bounded by ``timeout``)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polling a simulator's or a file's state
            await asyncio.sleep(interval)


# ----------------------------------------------------------------------------- clients

FAST_TIMEOUTS = Timeouts(connect=2.0, attempt=2.0, total=10.0)


def client_with(
    url: str, private_pem: bytes, *, secret: str = CLIENT_SECRET, **overrides: Any
) -> DokuClient:
    """A client against ``url`` signing with ``private_pem`` and ``secret``: fast timeouts,
    no real sleeping and no jitter (``overrides`` win)."""
    options: dict[str, Any] = {
        "base_url": url,
        "timeouts": FAST_TIMEOUTS,
        "retry": RetryPolicy(jitter=False),
        "clocks": Clocks(sleep=no_sleep),
    }
    options.update(overrides)
    return DokuClient(CLIENT_ID, secret, private_pem, **options)


def make_client(url: str, keypair: tuple[bytes, bytes], **overrides: Any) -> DokuClient:
    """:func:`client_with` for the session's key pair and :data:`CLIENT_SECRET`."""
    return client_with(url, keypair[0], **overrides)


def client_for(sim: DokuSimulator, **overrides: Any) -> DokuClient:
    """``sim.client()`` with instant retries, no jitter and fast timeouts (``overrides`` win)."""
    options: dict[str, Any] = {
        "clocks": Clocks(sleep=no_sleep),
        "retry": RetryPolicy(jitter=False),
        "timeouts": FAST_TIMEOUTS,
    }
    options.update(overrides)
    return sim.client(**options)


def real_time_client(sim: DokuSimulator) -> DokuClient:
    """``sim.client()`` with no jitter but real sleeps and the SDK's default timeouts."""
    return sim.client(retry=RetryPolicy(jitter=False))


def header(call: RecordedCall, name: str) -> str:
    """A header of a request the fake recorded, looked up case-insensitively."""
    for key, value in call.headers.items():
        if key.lower() == name.lower():
            return value
    raise AssertionError(f"{call.op} call has no {name} header: {sorted(call.headers)}")


# ----------------------------------------------------------------------------- journal files


def committed_states(path: Path) -> dict[str, str]:
    """The journal's committed states, read with a plain connection (no lock): what another
    process would read from the file."""
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT reference, state FROM items").fetchall())
    finally:
        db.close()


def fail_writes_of(path: Path, reference: str) -> None:
    """A trigger that makes the database refuse any write of ``reference`` (a failing disk)."""
    db = sqlite3.connect(path)
    try:
        for event in ("INSERT", "UPDATE"):
            db.execute(
                f"CREATE TRIGGER refuse_{event.lower()} BEFORE {event} ON items "
                f"WHEN NEW.reference = '{reference}' "
                "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )
        db.commit()
    finally:
        db.close()


# ----------------------------------------------------------------------------- standalone simulator


class StandaloneSimulator:
    """``python -m doku_async.testing ARGS`` in its own process (see :func:`start_standalone`):
    the ``export`` variables and the banner lines it printed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.exports: dict[str, str] = {}
        self.lines: list[str] = []

    @property
    def base_url(self) -> str:
        """Its ``DOKU_BASE_URL``."""
        return self.exports["DOKU_BASE_URL"]

    async def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        """Send ``sig`` and wait (5 s, then kill): its exit code and what it wrote to stderr."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            _, err = await asyncio.wait_for(self.proc.communicate(), timeout=5)
        except TimeoutError:
            self.proc.kill()
            _, err = await self.proc.communicate()
        assert self.proc.returncode is not None
        return self.proc.returncode, err.decode(errors="replace")


async def start_standalone(*args: str, cwd: Path | None = None) -> StandaloneSimulator:
    """Start ``python -m doku_async.testing ARGS`` and read its banner up to "Ctrl-C" (20 s);
    the caller stops it (``await sim.stop()`` in a ``finally``)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "doku_async.testing",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    sim = StandaloneSimulator(proc)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(20):
            while not sim.lines or not sim.lines[-1].startswith("Ctrl-C"):
                raw = await proc.stdout.readline()
                if not raw:
                    code, err = await sim.stop()
                    raise AssertionError(f"the simulator exited ({code}): {sim.lines} {err}")
                line = raw.decode().strip()
                sim.lines.append(line)
                if line.startswith("export "):
                    name, _, value = line.removeprefix("export ").partition("=")
                    sim.exports[name] = value
    except BaseException:
        await sim.stop(signal.SIGKILL)
        raise
    return sim


def numbered_items(n: int, tag: str, *, cents: str = "50") -> list[PayoutItem]:
    """``n`` payouts ``{tag}-000``... to accounts ``8000000000``..., of IDR 10,000.{cents} plus
    their number, with CSV line numbers from 2 (as if read from a file)."""
    return [
        payout_item(
            reference=f"{tag}-{i:03d}",
            bank_code="014",
            account_number=f"8{i:09d}",
            account_name=f"DRIVER {i}",
            amount=f"{10_000 + i}.{cents}",
            line=i + 2,
        )
        for i in range(n)
    ]
