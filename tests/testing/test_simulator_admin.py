"""The simulator's HTTP admin routes under ``/_simulator/`` (issue 15), in process: what they
show, how they steer the simulator, and the 400 answers to bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from fakedoku import serve
from helpers import client_for

from doku_async import DokuClient, TransferOutcomeUnknownError
from doku_async.testing import DokuSimulator, SimulatorCredentials

CUSTOMER = "628115678890"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    sim: DokuSimulator,
    method: str,
    route: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    async with http.request(method, f"{sim.base_url}/_simulator/{route}", data=data) as resp:
        return resp.status, await resp.json()


async def pay(doku: DokuClient, ref: str, account: str = "8377388292", bank: str = "014") -> Any:
    return await doku.kirim.transfer_bank(
        partner_reference_no=ref,
        customer_number=CUSTOMER,
        beneficiary_account_number=account,
        beneficiary_bank_code=bank,
        amount="1500.00",
    )


async def test_ledger_shows_each_transfer_once_with_the_balance(
    sim: DokuSimulator, http: aiohttp.ClientSession
) -> None:
    async with asyncio.timeout(20), client_for(sim) as doku:
        status, empty = await call(http, sim, "GET", "ledger")
        assert status == 200
        assert empty["transfers"] == []
        assert empty["paid_twice"] == []
        start = Decimal(empty["balance"])
        await pay(doku, "ADM-1")
        await pay(doku, "ADM-2", account="5512345678", bank="014")  # UNPAID magic value
        sim.inject("transfer_bank", "drop_after_commit")  # the client resends: same reference
        await pay(doku, "ADM-3")

        status, ledger = await call(http, sim, "GET", "ledger")
    assert status == 200
    assert ledger["agent_key"] == sim.credentials.agent_key
    assert Decimal(ledger["balance"]) == start - 3 * Decimal("1500.00") == sim.balance()
    rows = {row["reference"]: row for row in ledger["transfers"]}
    assert set(rows) == {"ADM-1", "ADM-2", "ADM-3"}
    assert rows["ADM-1"]["amount"] == "1500.00"
    assert rows["ADM-1"]["reference_no"] == sim.transfers["ADM-1"].reference_no
    assert (rows["ADM-1"]["status"], rows["ADM-1"]["state"]) == ("00", "succeeded")
    assert (rows["ADM-2"]["status"], rows["ADM-2"]["state"]) in {
        ("03", "pending"),
        ("00", "succeeded"),  # settled after notification_delay (no URL: no notification)
    }
    assert all(row["times_paid"] == 1 for row in rows.values())
    assert ledger["paid_twice"] == []


async def test_paid_twice_lists_a_reference_committed_twice(
    sim: DokuSimulator, http: aiohttp.ClientSession
) -> None:
    # The simulator's idempotency never commits twice; make its ledger do so by hand, to see
    # the tripwire a multi-process test relies on actually fire.
    async with asyncio.timeout(20), client_for(sim) as doku:
        await pay(doku, "ADM-TWICE")
    sim.commits["ADM-TWICE"] += 1
    _, ledger = await call(http, sim, "GET", "ledger")
    assert ledger["paid_twice"] == ["ADM-TWICE"]
    [row] = ledger["transfers"]
    assert row["times_paid"] == 2


async def test_request_log_names_references_and_answers_without_secrets(
    sim: DokuSimulator, http: aiohttp.ClientSession
) -> None:
    async with asyncio.timeout(20), client_for(sim) as doku:
        await pay(doku, "ADM-LOG")
        sim.inject("transfer_bank", "error", status=500, times=50)
        sim.inject("check_status", "error", status=500, times=50)
        with pytest.raises(TransferOutcomeUnknownError):
            await pay(doku, "ADM-LOG-2")
    sim.faults.clear()
    status, answer = await call(http, sim, "GET", "requests")
    assert status == 200
    rows = answer["requests"]
    assert len(rows) == len(sim.requests)
    assert {r["operation"] for r in rows} >= {"token", "transfer_bank", "check_status"}
    first = next(r for r in rows if r["operation"] == "transfer_bank")
    assert first["method"] == "POST"
    assert first["reference"] == "ADM-LOG"
    assert first["status"] == 200
    assert str(first["response_code"]) == "2004300"
    assert any(r["reference"] == "ADM-LOG-2" and r["status"] == 500 for r in rows)
    text = json.dumps(answer)
    creds = sim.credentials
    for secret in (creds.client_secret, "signature", "bearer", "X-PARTNER-ID"):
        assert secret.lower() not in text.lower()
    for record in sim.requests:  # no header value (signatures, tokens) is in the log
        for name, value in record.headers.items():
            if len(value) > 20:
                assert value not in text, name

    status, only = await call(http, sim, "GET", "requests?operation=check_status")
    assert status == 200
    assert only["requests"]
    assert {r["operation"] for r in only["requests"]} == {"check_status"}
    status, bad = await call(http, sim, "GET", "requests?operation=nope")
    assert status == 400
    assert "nope" in bad["error"]


async def test_faults_posted_over_http_are_applied_then_cleared(
    sim: DokuSimulator, http: aiohttp.ClientSession
) -> None:
    status, answer = await call(
        http,
        sim,
        "POST",
        "faults",
        [
            {"operation": "balance_inquiry", "kind": "error", "status": 503, "times": 2},
            {"operation": "transfer_bank", "kind": "drop_before_commit"},
        ],
    )
    assert status == 200
    assert answer == {"pending": {"balance_inquiry": 2, "transfer_bank": 1}}
    assert (await call(http, sim, "GET", "faults"))[1] == answer

    async with asyncio.timeout(20), client_for(sim) as doku:
        agent = sim.credentials.agent_key
        await doku.kirim.balance_inquiry(account_no=agent)  # absorbs the two 503s
        codes = [r.status for r in sim.requests_for("balance_inquiry")]
        assert codes == [503, 503, 200]
        status, answer = await call(http, sim, "DELETE", "faults")
        assert (status, answer) == (200, {"pending": {}})
        assert sim.faults.pending("transfer_bank") == 0
        await pay(doku, "ADM-CLEARED")  # the cleared drop never happens
    assert [r.status for r in sim.requests_for("transfer_bank")] == [200]


async def test_one_fault_object_with_every_field(
    sim: DokuSimulator, http: aiohttp.ClientSession
) -> None:
    fault = {
        "operation": "transfer_bank",
        "kind": "error",
        "times": 1,
        "status": 429,
        "response_code": "4294300",
        "retry_after": "0",
        "delay": 0,
    }
    status, answer = await call(http, sim, "POST", "faults", fault)
    assert (status, answer) == (200, {"pending": {"transfer_bank": 1}})
    queued = sim.faults.take("transfer_bank")
    assert queued is not None
    assert (queued.kind, queued.status, queued.response_code, queued.retry_after) == (
        "error",
        429,
        "4294300",
        "0",
    )


BAD_FAULTS = [
    pytest.param(b"not json", "fault object", id="not-json"),
    pytest.param(b'{"kind": "error"}', "operation", id="no-operation"),
    pytest.param(b'{"operation": "transfer", "kind": "error"}', "unknown operation", id="op"),
    pytest.param(b'{"operation": "token", "kind": "boom"}', "unknown fault kind", id="kind"),
    pytest.param(b'{"operation": "token", "kind": "error", "times": 0}', "times", id="times"),
    pytest.param(b'{"operation": "token", "kind": "error", "status": 99}', "status", id="st"),
    pytest.param(b'{"operation": "token", "kind": "error", "delay": -1}', "delay", id="delay"),
    pytest.param(b'{"operation": "token", "kind": "error", "tiems": 2}', "tiems", id="typo"),
    pytest.param(b'{"operation": "token", "kind": "error", "times": "2"}', "times", id="text"),
    pytest.param(
        b'[{"operation": "token", "kind": "error"}, {"operation": "x", "kind": "error"}]',
        "unknown operation",
        id="list-with-one-bad",
    ),
]


@pytest.mark.parametrize(("body", "says"), BAD_FAULTS)
async def test_bad_fault_requests_get_400_and_queue_nothing(
    sim: DokuSimulator, http: aiohttp.ClientSession, body: bytes, says: str
) -> None:
    status, answer = await call(http, sim, "POST", "faults", raw=body)
    assert status == 400
    assert says in answer["error"]
    assert (await call(http, sim, "GET", "faults"))[1] == {"pending": {}}


async def test_admin_routes_are_not_doku_routes(
    sim: DokuSimulator, http: aiohttp.ClientSession
) -> None:
    # Only the documented methods answer; nothing under the prefix is recorded as a DOKU call.
    async with http.post(f"{sim.base_url}/_simulator/ledger") as resp:
        assert resp.status == 405
    async with http.get(f"{sim.base_url}/_simulator/nothing") as resp:
        assert resp.status == 404
    await call(http, sim, "GET", "ledger")
    assert sim.requests == []


class Hook:
    """A receiver that acknowledges every notification and keeps the bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/hook", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.json_response({"responseCode": "00"})


async def test_notify_route_settles_and_sends(
    creds: SimulatorCredentials, http: aiohttp.ClientSession
) -> None:
    hook = Hook()
    async with (
        asyncio.timeout(20),
        serve(hook.app) as url,
        DokuSimulator(credentials=creds, unpaid_url=url + "/hook", refund_url=url + "/hook") as sim,
        client_for(sim) as doku,
    ):
        paid = await pay(doku, "ADM-REFUND")
        status, answer = await call(
            http, sim, "POST", "notify", {"reference": "ADM-REFUND", "kind": "refund"}
        )
        assert status == 200
        assert answer == {
            "delivered": True,
            "acknowledged": True,
            "attempts": 1,
            "responses": [200],
        }
        assert hook.bodies == [sim.notifications[0].body]
        assert hook.bodies[0]["transactionId"] == paid.reference_no
        assert sim.transfers["ADM-REFUND"].status == "04"  # the ledger moved with it

        # A refunded transfer gets no Unpaid notification; an unknown reference, a bad kind
        # and a malformed body are refused too, each with 400 and nothing sent.
        for body in (
            {"reference": "ADM-REFUND", "kind": "unpaid"},
            {"reference": "NOPE", "kind": "unpaid"},
            {"reference": "ADM-REFUND", "kind": "paid"},
            {"kind": "unpaid"},
        ):
            status, answer = await call(http, sim, "POST", "notify", body)
            assert status == 400, body
            assert answer["error"]
        assert len(hook.bodies) == 1

        await pay(doku, "ADM-QUEUED")
        status, answer = await call(
            http, sim, "POST", "notify", {"reference": "ADM-QUEUED", "wait": False}
        )
        assert (status, answer) == (202, {"queued": True})
        await sim.wait_for_notifications(2, timeout=5)
        assert hook.bodies[1]["sendTrxId"] == "ADM-QUEUED"
        assert hook.bodies[1]["transactionStatus"] == "50"

        status, answer = await call(http, sim, "GET", "notifications")
    assert status == 200
    assert [n["kind"] for n in answer["notifications"]] == ["refund", "unpaid"]
    assert all(n["acknowledged"] and n["responses"] == [200] for n in answer["notifications"])
