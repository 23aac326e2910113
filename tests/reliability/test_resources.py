"""Resources: nothing leaks, whatever happens to the calls.

* No ``ResourceWarning`` ("Unclosed client session", "Unclosed connector") once a client that
  made calls is closed, also after a call failed mid-way and after calls in flight were
  cancelled. Checked with warnings turned into errors and a ``gc.collect()`` after teardown;
  a positive control proves the detector sees a real leak.
* No task left behind once the client, the simulator and a webhook app runner are closed, nor
  after a bulk run is cancelled, times out or is abandoned midway.
* The ``ack_first`` webhook app lets its callbacks finish on shutdown and leaves no task.
* 10,000 calls at concurrency 64 keep a flat number of open connections (never more than the
  pool) and use exactly one access token.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _matrix import (
    CUSTOMER,
    assert_journal_matches_ledger,
    assert_never_paid_twice,
    client_options,
    make_batch,
    settle_simulator,
)
from aiohttp import web
from helpers import wait_until

from doku_async import (
    DokuClient,
    DokuConnectionError,
    DokuTimeoutError,
    ServerError,
    Timeouts,
)
from doku_async.bulk import BulkRunner, ItemResult, Journal, payout_item
from doku_async.testing import DokuSimulator, SimulatorCredentials
from doku_async.webhooks import BACKGROUND_TASKS, WEBHOOK_CONFIG, Notification, create_webhook_app

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 20.0


# ----------------------------------------------------------------------------- detectors


@contextmanager
def leak_detector() -> Iterator[list[str]]:
    """Collect every leak report raised while the block runs and by a ``gc.collect()`` after
    it: warnings are errors (so a ``ResourceWarning`` in a ``__del__`` becomes an unraisable
    exception, recorded here) and the loop's exception handler is recorded too (unretrieved
    task exceptions, unclosed transports...). A clean block records nothing at all."""
    found: list[str] = []
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    previous_hook = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        found.append(f"{unraisable.exc_type.__name__}: {unraisable.exc_value}")

    def handler(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        found.append(f"loop: {context.get('message')}")

    sys.unraisablehook = hook
    loop.set_exception_handler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield found
            gc.collect()
            gc.collect()
    finally:
        sys.unraisablehook = previous_hook
        loop.set_exception_handler(previous_handler)


async def assert_no_tasks_left() -> None:
    """Nothing but the test itself is scheduled (after a few loop turns for callbacks)."""
    current = asyncio.current_task()
    for _ in range(5):
        await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() if t is not current]
    assert left == [], [repr(t) for t in left]


async def balance(doku: DokuClient, sim: DokuSimulator) -> None:
    await doku.kirim.balance_inquiry(account_no=sim.credentials.agent_key)


# ----------------------------------------------------------------------------- sessions


async def test_the_detector_sees_an_unclosed_session() -> None:
    """Positive control: a session that is never closed is reported."""

    async def leak() -> None:
        aiohttp.ClientSession()

    with leak_detector() as found:
        await leak()
    assert any("Unclosed client session" in f for f in found), found


async def test_the_detector_sees_a_dropped_session_with_open_connections(
    sim: DokuSimulator,
) -> None:
    """Positive control: a session that made a call and is dropped unclosed is reported, its
    connector too."""

    async def leak() -> None:
        session = aiohttp.ClientSession()
        async with session.get(f"{sim.base_url}/") as response:  # any answer (404) will do
            await response.read()

    with leak_detector() as found:
        await leak()
    assert any("Unclosed client session" in f for f in found), found
    assert any("Unclosed connector" in f for f in found), found


async def test_the_task_check_sees_a_stray_task() -> None:
    """Positive control for :func:`assert_no_tasks_left`."""
    stray = asyncio.create_task(asyncio.sleep(10))
    try:
        with pytest.raises(AssertionError, match="sleep"):
            await assert_no_tasks_left()
    finally:
        stray.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stray
    await assert_no_tasks_left()


async def test_no_unclosed_session_after_aclose_of_a_client_that_made_calls(
    sim: DokuSimulator,
) -> None:
    async def use() -> None:
        doku = sim.client(**client_options())
        await asyncio.gather(*(balance(doku, sim) for _ in range(40)))
        await doku.kirim.account_inquiry(
            partner_reference_no="inq-1",
            customer_number=CUSTOMER,
            beneficiary_account_number="8377388292",
            beneficiary_bank_code="014",
            beneficiary_account_name="FHILEA HERMANUS",
            amount="200000",
        )
        await doku.kirim.transfer_bank(
            partner_reference_no="RES-1",
            customer_number=CUSTOMER,
            beneficiary_account_number="8377388292",
            beneficiary_bank_code="014",
            amount="200000",
            beneficiary_account_name="FHILEA HERMANUS",
        )
        connector = doku._transport._session.connector if doku._transport._session else None
        assert connector is not None
        assert connector._conns  # keep-alive connections are open before aclose()
        await doku.aclose()
        assert connector.closed

    async with asyncio.timeout(TIMEOUT):
        with leak_detector() as found:
            await use()
    assert found == []
    assert sim.transfer_count("RES-1") == 1


@pytest.mark.parametrize("failure", ["timeout", "dropped", "server-error", "caller-raises"])
async def test_no_unclosed_session_after_an_exception_mid_call(
    sim: DokuSimulator, failure: str
) -> None:
    # Loose enough for the healthy first call (and its token) on a slow machine.
    options = client_options(timeouts=Timeouts(connect=0.5, attempt=0.3, total=1.0))
    if failure == "timeout":
        sim.inject("balance_inquiry", "hang_after_commit", delay=1.0, times=10)
        expected: type[BaseException] = DokuTimeoutError
    elif failure == "dropped":
        sim.inject("balance_inquiry", "drop_before_commit", times=10)
        expected = DokuConnectionError
    elif failure == "server-error":
        sim.inject("balance_inquiry", "error", status=503, times=10)
        expected = ServerError
    else:
        expected = RuntimeError

    async def use() -> None:
        async with sim.client(**options) as doku:
            await balance(doku, sim)  # a healthy call first: the pool holds a connection
            if failure == "caller-raises":
                calls = [asyncio.ensure_future(balance(doku, sim)) for _ in range(8)]
                await asyncio.sleep(0)
                try:
                    raise RuntimeError("the caller's own code fails with calls in flight")
                finally:
                    for call in calls:
                        call.cancel()
                    await asyncio.gather(*calls, return_exceptions=True)
            await balance(doku, sim)

    async with asyncio.timeout(TIMEOUT):
        with leak_detector() as found, pytest.raises(expected):
            await use()
        sim.faults.clear()
    assert found == []


async def test_no_leak_after_cancelling_calls_in_flight(creds: SimulatorCredentials) -> None:
    """32 calls are stuck in the simulator when they are cancelled; the client closes
    cleanly, the simulator too, and nothing is left: no warning, no task."""

    async def scenario() -> None:
        async with (
            DokuSimulator(credentials=creds) as sim,
            sim.client(**client_options()) as doku,
        ):
            await balance(doku, sim)
            sim.inject("balance_inquiry", "latency", delay=5.0, times=32)
            calls = [asyncio.ensure_future(balance(doku, sim)) for _ in range(32)]
            await wait_until(lambda: len(sim.requests_for("balance_inquiry")) >= 33)
            for call in calls:
                call.cancel()
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            # The client still works after the cancellation.
            sim.faults.clear()
            await balance(doku, sim)

    async with asyncio.timeout(TIMEOUT):
        with leak_detector() as found:
            await scenario()
    assert found == []
    await assert_no_tasks_left()


# ----------------------------------------------------------------------------- tasks


async def start_site(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


class SlowCallback:
    """A webhook callback that waits for ``gate`` (if given) then records completion."""

    def __init__(self, gate: asyncio.Event | None = None, delay: float = 0.0) -> None:
        self.gate = gate
        self.delay = delay
        self.started: list[str] = []
        self.completed: list[str] = []
        self.cancelled = 0

    async def __call__(self, notification: Notification) -> None:
        self.started.append(notification.transaction_id)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.completed.append(notification.transaction_id)


def webhook_app(
    creds: SimulatorCredentials, callback: SlowCallback, *, drain_timeout: float = 10.0
) -> tuple[web.Application, web.Application]:
    sub = create_webhook_app(
        agent_key=creds.agent_key,
        encryption_keys=creds.encryption_key,
        on_notification=callback,
        ack_first=True,
        drain_timeout=drain_timeout,
    )
    outer = web.Application()
    outer.add_subapp("/doku/", sub)
    return outer, sub


def unpaid_items(n: int, tag: str) -> list[Any]:
    """Items the simulator moves UNPAID -> SUCCESS and notifies about."""
    return [
        payout_item(
            reference=f"{tag}-{i:03d}",
            bank_code="014",
            account_number=f"99{i:04d}12345",
            account_name=f"DRIVER {i}",
            amount="50000",
        )
        for i in range(n)
    ]


async def test_no_tasks_left_after_client_simulator_and_webhook_app_close(
    creds: SimulatorCredentials,
) -> None:
    """A full round trip: payouts, the simulator's signed notifications to an ``ack_first``
    webhook app, then everything closed: no task and no leak remains."""
    callback = SlowCallback(delay=0.02)
    outer, sub = webhook_app(creds, callback)

    async def scenario() -> None:
        webhook, url = await start_site(outer)
        try:
            async with DokuSimulator(
                credentials=creds,
                unpaid_url=f"{url}/doku/kirim/unpaid",
                notification_delay=0.01,
            ) as sim:
                async with sim.client(**client_options()) as doku:
                    runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=8)
                    summary = await runner.run(unpaid_items(20, "HOOK"))
                    # UNPAID at DOKU when the run ends: pending, never reported paid.
                    assert summary.counts["pending"] == 20
                await sim.wait_for_notifications(20, timeout=10)
        finally:
            await webhook.cleanup()

    async with asyncio.timeout(TIMEOUT):
        with leak_detector() as found:
            await scenario()
    assert found == []
    assert len(callback.completed) == 20
    assert callback.cancelled == 0
    assert not sub[BACKGROUND_TASKS]
    assert sub[WEBHOOK_CONFIG].processed == 20
    await assert_no_tasks_left()


async def test_ack_first_webhook_drains_on_shutdown_and_leaves_no_task(
    creds: SimulatorCredentials,
) -> None:
    """Callbacks still blocked when shutdown begins are waited for, not cancelled."""
    gate = asyncio.Event()
    callback = SlowCallback(gate=gate)
    outer, sub = webhook_app(creds, callback)

    async with asyncio.timeout(TIMEOUT):
        with leak_detector() as found:
            webhook, url = await start_site(outer)
            try:
                async with DokuSimulator(
                    credentials=creds,
                    unpaid_url=f"{url}/doku/kirim/unpaid",
                    notification_delay=0.01,
                ) as sim:
                    async with sim.client(**client_options()) as doku:
                        runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=8)
                        await runner.run(unpaid_items(10, "DRAIN"))
                    # Acknowledged at once, although every callback is still blocked.
                    await sim.wait_for_notifications(10, timeout=10)
                assert len(callback.started) == 10
                assert callback.completed == []
                assert len(sub[BACKGROUND_TASKS]) == 10
                closing_task = asyncio.create_task(webhook.cleanup())
                await asyncio.sleep(0.2)
                assert not closing_task.done()  # shutdown waits for the callbacks
                gate.set()
                await closing_task
            finally:
                gate.set()
                await webhook.cleanup()
    assert found == []
    assert len(callback.completed) == 10
    assert callback.cancelled == 0
    assert not sub[BACKGROUND_TASKS]
    await assert_no_tasks_left()


@pytest.mark.parametrize("how", ["cancel", "timeout", "abandon"])
async def test_a_bulk_run_stopped_midway_leaves_no_tasks(
    creds: SimulatorCredentials, tmp_path: Path, how: str
) -> None:
    # Without wait_for_final a 2004300 counts as paid, so leave out items DOKU fails later.
    batch = make_batch(600, f"STOP-{how.upper()}", unpaid_failed=False)
    seen: list[ItemResult] = []

    async def scenario() -> None:
        async with DokuSimulator(credentials=creds) as sim:
            with closing(Journal(tmp_path / "run.db")) as journal:
                async with sim.client(**client_options()) as doku:
                    runner = BulkRunner(
                        doku,
                        customer_number=CUSTOMER,
                        concurrency=8,
                        rate=300,
                        journal=journal,
                    )
                    if how == "cancel":
                        task = asyncio.create_task(runner.run(batch.items, on_result=seen.append))
                        await wait_until(lambda: len(seen) >= 30)
                        task.cancel()
                        done, _ = await asyncio.wait({task}, timeout=2.0)
                        assert task in done, "cancelling the run did not return within 2 s"
                    elif how == "timeout":
                        with pytest.raises(TimeoutError):
                            # Long enough for the first results on a slow machine; the
                            # rate limit keeps the 600 items (4 s at 300 req/s) from finishing.
                            async with asyncio.timeout(1.0):
                                await runner.run(batch.items, on_result=seen.append)
                    else:
                        results = runner.results(batch.items)
                        async for result in results:
                            seen.append(result)
                            if len(seen) == 30:
                                break
                        await asyncio.wait_for(results.aclose(), 2.0)  # type: ignore[attr-defined]
                await settle_simulator(sim)
                assert 0 < len(seen) < len(batch.items)
                assert_never_paid_twice(sim, batch)
                assert_journal_matches_ledger(journal, sim, batch)

    async with asyncio.timeout(TIMEOUT):
        with leak_detector() as found:
            await scenario()
    assert found == []
    await assert_no_tasks_left()


# ----------------------------------------------------------------------------- a long run


def sockets_to(port: int) -> Counter[str] | None:
    """TCP states of this network namespace's IPv4 sockets whose remote port is ``port``
    (``01`` established, ``06`` time-wait); ``None`` without ``/proc``."""
    try:
        with open("/proc/self/net/tcp", encoding="ascii") as table:
            lines = table.read().splitlines()[1:]
    except OSError:
        return None
    states: Counter[str] = Counter()
    for line in lines:
        fields = line.split()
        if int(fields[2].rsplit(":", 1)[1], 16) == port:
            states[fields[3]] += 1
    return states


def open_connections(doku: DokuClient) -> int:
    """Connections the client's connector holds: in use plus idle keep-alive."""
    session = doku._transport._session
    assert session is not None
    connector = session.connector
    assert isinstance(connector, aiohttp.TCPConnector)
    idle = sum(len(conns) for conns in connector._conns.values())
    return len(connector._acquired) + idle


async def test_ten_thousand_calls_keep_a_flat_pool_and_one_token(
    creds: SimulatorCredentials,
) -> None:
    calls, concurrency, pool, every = 10_000, 64, 32, 1_000
    pooled: list[int] = []
    established: list[int] = []

    async with (
        asyncio.timeout(30),
        DokuSimulator(credentials=creds) as sim,
        sim.client(**client_options(pool_size=pool, timeouts=Timeouts(total=20))) as doku,
    ):
        issued = done = 0

        def sample() -> None:
            pooled.append(open_connections(doku))
            states = sockets_to(sim.port)
            if states is not None:
                established.append(states["01"])

        async def worker() -> None:
            nonlocal issued, done
            while issued < calls:
                issued += 1
                await balance(doku, sim)
                done += 1
                if done % every == 0:
                    sample()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

        assert done == calls
        assert len(sim.requests_for("balance_inquiry")) == calls
        assert all(r.status == 200 for r in sim.requests_for("balance_inquiry"))
        assert doku.token_fetches == 1
        assert sim.token_requests == 1
        time_wait = (sockets_to(sim.port) or Counter())["06"]

    assert len(pooled) == calls // every
    assert max(pooled) <= pool, pooled
    # Flat: after the first samples the pool does not grow any further.
    assert max(pooled[3:]) <= max(pooled[:3]), pooled
    if established:
        assert max(established) <= pool, established
        assert max(established[3:]) <= max(established[:3]), established
        # Connections are reused, not opened and closed per call.
        assert time_wait <= pool, time_wait
