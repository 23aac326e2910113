"""The Kirim DOKU webhook receiver, mounted as a sub-app under ``/doku/`` of a real aiohttp
server on 127.0.0.1: acknowledgements, rejections, de-duplication, callback failures,
``ack_first`` background tasks and their draining on shutdown, and the counters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from doku_async.webhooks import (
    BACKGROUND_TASKS,
    WEBHOOK_CONFIG,
    MemoryDedupStore,
    Notification,
    RefundNotification,
    UnpaidNotification,
    WebhookVerificationError,
    create_webhook_app,
    sign_kirim_notification,
)

pytestmark = pytest.mark.timeout(30)

AGENT = "A41418"
KEY = "627054fevj1sutvs"
UNPAID_PATH = "/doku/kirim/unpaid"
REFUND_PATH = "/doku/kirim/refund"
TRX = "DK0018353"
# requestIds in the shape DOKU sends (see KIRIM_REQUEST_ID_PATTERN)
RID_1 = "00000000-0000-4000-8000-000000000001"
RID_2 = "00000000-0000-4000-8000-000000000002"
RID_3 = "00000000-0000-4000-8000-000000000003"

Client = TestClient[web.Request, web.Application]


def ack(transaction_id: str = TRX, code: str = "00") -> dict[str, object]:
    message = "Successfully processed" if code == "00" else "Already processed"
    return {
        "status": True,
        "transactionId": transaction_id,
        "responseCode": code,
        "responseMessage": message,
    }


ACK_EXACT = {
    "status": True,
    "transactionId": TRX,
    "responseCode": "00",
    "responseMessage": "Successfully processed",
}


def unpaid_body(transaction_id: str = TRX, status: object = "50", **extra: object) -> bytes:
    body: dict[str, object] = {
        "sendTrxId": "text",
        "transactionId": transaction_id,
        "invoiceNumber": "I088787987870912",
        "transactionStatus": status,
        "activityCode": "200",
        "message": "Transaction is Success",
        "processDate": "2024-01-12'T'07:30:12",
        "createdTime": "1699520040340",
    }
    body.update(extra)
    return json.dumps(body).encode()


def refund_body(transaction_id: str = TRX) -> bytes:
    return json.dumps(
        {
            "transactionId": transaction_id,
            "activityCode": "200",
            "message": "Transaction is Refunded",
            "processDate": "2024-01-12'T'07:30:12",
        }
    ).encode()


def signed(request_id: str | None = None, agent_key: str = AGENT, key: str = KEY) -> dict[str, str]:
    return sign_kirim_notification(agent_key=agent_key, encryption_key=key, request_id=request_id)


class Recorder:
    """An async callback that records what it got; optionally slow or failing."""

    def __init__(self, *, fail_first: int = 0, delay: float = 0.0) -> None:
        self.calls: list[Notification] = []
        self.fail_first = fail_first
        self.delay = delay
        self.completed = 0

    async def __call__(self, notification: Notification) -> None:
        self.calls.append(notification)
        if self.delay:
            await asyncio.sleep(self.delay)
        if len(self.calls) <= self.fail_first:
            raise RuntimeError("handler exploded")
        self.completed += 1


def build(**kwargs: Any) -> tuple[web.Application, web.Application]:
    """(outer app, webhook sub-app mounted at /doku/)."""
    if "verifier" not in kwargs:
        kwargs.setdefault("agent_key", AGENT)
        kwargs.setdefault("encryption_keys", KEY)
    sub = create_webhook_app(**kwargs)
    outer = web.Application()
    outer.add_subapp("/doku/", sub)
    return outer, sub


@asynccontextmanager
async def running(outer: web.Application) -> AsyncIterator[Client]:
    client: Client = TestClient(TestServer(outer, host="127.0.0.1"))
    await client.start_server()
    try:
        assert client.host == "127.0.0.1"
        yield client
    finally:
        await client.close()


async def post(
    client: Client,
    path: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    """POST and return (status, parsed JSON, response); the answer must always be JSON."""
    async with client.post(path, data=body, headers=dict(headers or signed())) as resp:
        raw = await resp.read()
        assert resp.content_type == "application/json", (resp.status, raw)
        payload = json.loads(raw)
        assert isinstance(payload, dict)
        return resp.status, payload, resp


def assert_rejected(status: int, payload: Mapping[str, Any], expected: int) -> None:
    assert status == expected, payload
    assert payload["status"] is False
    assert payload["responseCode"] == str(expected)
    assert isinstance(payload["responseMessage"], str)
    assert payload["responseMessage"]


# --- acknowledgements ---------------------------------------------------------------------


async def test_valid_unpaid_gets_exactly_the_acknowledgement() -> None:
    on_unpaid = Recorder()
    outer, sub = build(on_unpaid=on_unpaid)
    async with running(outer) as client:
        headers = signed("fd53b1e3-9c35-4dfa-a95ca8dbc5695485")
        async with client.post(UNPAID_PATH, data=unpaid_body(), headers=headers) as resp:
            raw = await resp.read()
            assert resp.status == 200
            assert resp.content_type == "application/json"
    assert json.loads(raw) == ACK_EXACT
    assert list(json.loads(raw)) == [
        "status",
        "transactionId",
        "responseCode",
        "responseMessage",
    ]
    assert len(on_unpaid.calls) == 1
    notification = on_unpaid.calls[0]
    assert type(notification) is UnpaidNotification
    assert notification.transaction_id == TRX
    assert notification.status == "50"
    assert notification.invoice_number == "I088787987870912"
    assert notification.request_id == "fd53b1e3-9c35-4dfa-a95ca8dbc5695485"
    assert notification.agent_key == AGENT
    assert sub[WEBHOOK_CONFIG].processed == 1


async def test_valid_refund_calls_on_refund_only() -> None:
    on_unpaid, on_refund = Recorder(), Recorder()
    outer, _ = build(on_unpaid=on_unpaid, on_refund=on_refund)
    async with running(outer) as client:
        status, payload, _ = await post(client, REFUND_PATH, refund_body("DK7"))
    assert status == 200
    assert payload == ack("DK7")
    assert on_unpaid.calls == []
    assert len(on_refund.calls) == 1
    assert type(on_refund.calls[0]) is RefundNotification
    assert on_refund.calls[0].transaction_id == "DK7"
    assert on_refund.calls[0].agent_key == AGENT


async def test_on_notification_alone_receives_both_kinds() -> None:
    on_notification = Recorder()
    outer, _ = build(on_notification=on_notification)
    async with running(outer) as client:
        s1, p1, _ = await post(client, UNPAID_PATH, unpaid_body("DK1"))
        s2, p2, _ = await post(client, REFUND_PATH, refund_body("DK2"))
    assert (s1, s2) == (200, 200)
    assert p1 == ack("DK1")
    assert p2 == ack("DK2")
    assert [type(n) for n in on_notification.calls] == [UnpaidNotification, RefundNotification]
    assert [n.transaction_id for n in on_notification.calls] == ["DK1", "DK2"]


async def test_specific_callback_wins_over_on_notification() -> None:
    on_unpaid, on_notification = Recorder(), Recorder()
    outer, _ = build(on_unpaid=on_unpaid, on_notification=on_notification)
    async with running(outer) as client:
        await post(client, UNPAID_PATH, unpaid_body("DK1"))
        await post(client, REFUND_PATH, refund_body("DK2"))
    assert [n.transaction_id for n in on_unpaid.calls] == ["DK1"]
    assert [n.transaction_id for n in on_notification.calls] == ["DK2"]


async def test_default_mode_acknowledges_after_the_callback_finished() -> None:
    on_unpaid = Recorder(delay=0.2)
    outer, _ = build(on_unpaid=on_unpaid)
    async with running(outer) as client:
        status, payload, _ = await post(client, UNPAID_PATH, unpaid_body())
        assert on_unpaid.completed == 1  # already done when the answer arrived
    assert status == 200
    assert payload == ACK_EXACT


async def test_charset_in_content_type_is_accepted() -> None:
    on_unpaid = Recorder()
    outer, _ = build(on_unpaid=on_unpaid)
    headers = signed()
    headers["Content-Type"] = "application/json; charset=utf-8"
    async with running(outer) as client:
        status, payload, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
    assert status == 200
    assert payload == ACK_EXACT
    assert len(on_unpaid.calls) == 1


async def test_key_rotation_in_the_app() -> None:
    on_unpaid = Recorder()
    old, new = "0123456789abcdef", "fedcba9876543210"
    outer, _ = build(on_unpaid=on_unpaid, encryption_keys=[old, new])
    async with running(outer) as client:
        s1, _, _ = await post(client, UNPAID_PATH, unpaid_body("DK1"), signed(key=old))
        s2, _, _ = await post(client, UNPAID_PATH, unpaid_body("DK2"), signed(key=new))
        s3, p3, _ = await post(client, UNPAID_PATH, unpaid_body("DK3"), signed(key=KEY))
    assert (s1, s2) == (200, 200)
    assert_rejected(s3, p3, 401)
    assert [n.transaction_id for n in on_unpaid.calls] == ["DK1", "DK2"]


async def test_configurable_paths() -> None:
    on_notification = Recorder()
    outer, _ = build(on_notification=on_notification, unpaid_path="/u", refund_path="/r")
    async with running(outer) as client:
        s1, p1, _ = await post(client, "/doku/u", unpaid_body("DK1"))
        s2, p2, _ = await post(client, "/doku/r", refund_body("DK2"))
        async with client.post(UNPAID_PATH, data=unpaid_body("DK3"), headers=signed()) as resp:
            assert resp.status == 404
    assert (s1, s2) == (200, 200)
    assert p1 == ack("DK1")
    assert p2 == ack("DK2")
    assert [n.kind for n in on_notification.calls] == ["unpaid", "refund"]


async def test_custom_verifier_in_the_app() -> None:
    class HeaderTokenVerifier:
        def verify(self, headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
            if headers.get("X-Token") != "letmein":
                raise WebhookVerificationError("bad token")
            return headers.get("X-Id", ""), "CUSTOM"

    on_unpaid = Recorder()
    outer, _ = build(verifier=HeaderTokenVerifier(), on_unpaid=on_unpaid)
    good = {"X-Token": "letmein", "X-Id": "rid-1", "Content-Type": "application/json"}
    async with running(outer) as client:
        s1, p1, _ = await post(client, UNPAID_PATH, unpaid_body(), good)
        s2, p2, _ = await post(client, UNPAID_PATH, unpaid_body("DK2"), signed())  # AES: no
    assert s1 == 200
    assert p1 == ACK_EXACT
    assert_rejected(s2, p2, 401)
    assert len(on_unpaid.calls) == 1
    assert on_unpaid.calls[0].request_id == "rid-1"
    assert on_unpaid.calls[0].agent_key == "CUSTOM"


async def test_a_verifier_that_crashes_is_a_401_not_a_5xx() -> None:
    class BrokenVerifier:
        def verify(self, headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
            raise KeyError("oops")

    on_unpaid = Recorder()
    outer, sub = build(verifier=BrokenVerifier(), on_unpaid=on_unpaid)
    async with running(outer) as client:
        status, payload, _ = await post(client, UNPAID_PATH, unpaid_body())
    assert_rejected(status, payload, 401)
    assert on_unpaid.calls == []
    assert sub[WEBHOOK_CONFIG].rejected == 1


# --- rejections ---------------------------------------------------------------------------


async def test_forged_signature_is_401_and_the_callback_is_not_called() -> None:
    on_unpaid = Recorder()
    outer, sub = build(on_unpaid=on_unpaid)
    forged = signed(key="ZZZZZZZZZZZZZZZZ")
    tampered = signed()
    tampered["requestId"] = tampered["requestId"] + "x"
    async with running(outer) as client:
        for headers in (forged, tampered):
            status, payload, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
            assert_rejected(status, payload, 401)
            assert "transactionId" not in payload
    assert on_unpaid.calls == []
    assert sub[WEBHOOK_CONFIG].rejected == 2
    assert sub[WEBHOOK_CONFIG].processed == 0


async def test_wrong_agent_key_is_401() -> None:
    on_refund = Recorder()
    outer, _ = build(on_refund=on_refund)
    async with running(outer) as client:
        # correctly signed with our key, but for another agent
        status, payload, _ = await post(client, REFUND_PATH, refund_body(), signed(agent_key="A1"))
    assert_rejected(status, payload, 401)
    assert on_refund.calls == []


@pytest.mark.parametrize("missing", ["requestId", "agentKey", "signature", "all"])
async def test_missing_headers_are_401(missing: str) -> None:
    on_unpaid = Recorder()
    outer, _ = build(on_unpaid=on_unpaid)
    headers = signed()
    if missing == "all":
        headers = {"Content-Type": "application/json"}
    else:
        del headers[missing]
    async with running(outer) as client:
        status, payload, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
    assert_rejected(status, payload, 401)
    assert on_unpaid.calls == []


async def test_overlong_and_empty_headers_are_401() -> None:
    on_unpaid = Recorder()
    outer, _ = build(on_unpaid=on_unpaid)
    long_rid = "r" * 600
    overlong = signed(long_rid)  # a signature that matches the long requestId
    empty = signed()
    empty["signature"] = ""
    async with running(outer) as client:
        for headers in (overlong, empty):
            status, payload, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
            assert_rejected(status, payload, 401)
    assert on_unpaid.calls == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[]",
        b'{"transactionId": "DK1"',
        unpaid_body(transaction_id=[12345]),  # type: ignore[arg-type]
        unpaid_body(transaction_id=None),  # type: ignore[arg-type]
        unpaid_body(transaction_id=""),
        json.dumps({"invoiceNumber": "INV1", "transactionStatus": "50"}).encode(),
    ],
)
async def test_bad_bodies_are_400_and_the_callback_is_not_called(body: bytes) -> None:
    on_notification = Recorder()
    outer, sub = build(on_notification=on_notification)
    async with running(outer) as client:
        status, payload, _ = await post(client, UNPAID_PATH, body)
    assert_rejected(status, payload, 400)
    # Read whole (an empty body too) and judged as a notification, not as a broken stream.
    assert payload["responseMessage"] == "invalid notification body"
    assert on_notification.calls == []
    assert sub[WEBHOOK_CONFIG].rejected == 1


async def test_an_unusable_transaction_id_on_the_refund_path_is_400() -> None:
    on_refund = Recorder()
    outer, _ = build(on_refund=on_refund)
    body = json.dumps({"transactionId": {"id": 7}, "activityCode": "200"}).encode()
    async with running(outer) as client:
        status, payload, _ = await post(client, REFUND_PATH, body)
    assert_rejected(status, payload, 400)
    assert on_refund.calls == []


@pytest.mark.parametrize(
    "body",
    [
        unpaid_body(transaction_id=12345),  # type: ignore[arg-type]
        unpaid_body(status=[50]),
        refund_body(),  # a refund body on the unpaid path: usable, with no status
        json.dumps({"transactionId": "12345", "transactionStatus": "50"}).encode(),
    ],
)
async def test_other_fields_of_any_type_reach_the_callback(body: bytes) -> None:
    """The decoding rule: a notification is refused only when unusable (issue 11)."""
    on_notification = Recorder()
    outer, _ = build(on_notification=on_notification)
    async with running(outer) as client:
        status, payload, _ = await post(client, UNPAID_PATH, body)
    assert status == 200
    assert payload["responseCode"] == "00"
    assert payload["transactionId"] in {"12345", "DK0018353"}
    assert [n.transaction_id for n in on_notification.calls] == [payload["transactionId"]]


async def test_invalid_utf8_body_is_400() -> None:
    on_unpaid = Recorder()
    outer, _ = build(on_unpaid=on_unpaid)
    body = (
        b'{"transactionId": "DK\xff1", "invoiceNumber": "I1", "transactionStatus": "50",'
        b' "activityCode": "200"}'
    )
    async with running(outer) as client:
        status, payload, _ = await post(client, UNPAID_PATH, body)
    assert on_unpaid.calls == []
    assert_rejected(status, payload, 400)


async def test_invalid_utf8_outside_strings_is_400() -> None:
    on_unpaid = Recorder()
    outer, _ = build(on_unpaid=on_unpaid)
    async with running(outer) as client:
        status, payload, _ = await post(client, UNPAID_PATH, b"\xff\xfe{}")
    assert_rejected(status, payload, 400)
    assert on_unpaid.calls == []


async def test_body_over_max_body_size_is_413_with_content_length() -> None:
    on_unpaid = Recorder()
    seen: list[tuple[int | None, str | None]] = []

    @web.middleware
    async def spy(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        seen.append((request.content_length, request.headers.get("Transfer-Encoding")))
        return await handler(request)

    outer, sub = build(on_unpaid=on_unpaid, max_body_size=1024)
    outer.middlewares.append(spy)
    big = unpaid_body(message="x" * 2048)
    assert len(big) > 2048
    async with running(outer) as client:
        status, payload, _ = await post(client, UNPAID_PATH, big)
    assert_rejected(status, payload, 413)
    assert seen == [(len(big), None)]
    assert on_unpaid.calls == []
    assert sub[WEBHOOK_CONFIG].rejected == 1


async def test_chunked_body_over_max_body_size_is_413() -> None:
    on_unpaid = Recorder()
    seen: list[tuple[int | None, str | None]] = []

    @web.middleware
    async def spy(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        seen.append((request.content_length, request.headers.get("Transfer-Encoding")))
        return await handler(request)

    outer, _ = build(on_unpaid=on_unpaid, max_body_size=1024)
    outer.middlewares.append(spy)
    body = unpaid_body(message="y" * 2048)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 256):
            yield body[i : i + 256]

    async with (
        running(outer) as client,
        client.post(UNPAID_PATH, data=chunks(), headers=signed()) as resp,
    ):
        payload = await resp.json()
        status = resp.status
    assert_rejected(status, payload, 413)
    assert seen == [(None, "chunked")]
    assert on_unpaid.calls == []


async def test_body_of_exactly_max_body_size_is_accepted_chunked_or_not() -> None:
    on_unpaid = Recorder()
    outer, _ = build(on_unpaid=on_unpaid, max_body_size=1024)
    body1 = unpaid_body("DK1")
    body1 += b" " * (1024 - len(body1))
    body2 = unpaid_body("DK2")
    body2 += b" " * (1024 - len(body2))
    assert len(body1) == len(body2) == 1024

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body2), 100):
            yield body2[i : i + 100]

    async with running(outer) as client:
        s1, p1, _ = await post(client, UNPAID_PATH, body1)
        async with client.post(UNPAID_PATH, data=chunks(), headers=signed()) as resp:
            s2, p2 = resp.status, await resp.json()
        s3, p3, _ = await post(client, UNPAID_PATH, unpaid_body("DK3") + b" " * 1024)
    assert (s1, p1) == (200, ack("DK1"))
    assert (s2, p2) == (200, ack("DK2"))
    assert_rejected(s3, p3, 413)
    assert [n.transaction_id for n in on_unpaid.calls] == ["DK1", "DK2"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405_json(method: str) -> None:
    on_unpaid = Recorder()
    outer, sub = build(on_unpaid=on_unpaid)
    async with (
        running(outer) as client,
        client.request(method, UNPAID_PATH, data=unpaid_body(), headers=signed()) as resp,
    ):
        raw = await resp.read()
        assert resp.status == 405
        assert resp.content_type == "application/json"
        assert resp.headers["Allow"] == "POST"
    assert_rejected(405, json.loads(raw), 405)
    assert on_unpaid.calls == []
    assert sub[WEBHOOK_CONFIG].rejected == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_non_json_content_type_is_415(content_type: str) -> None:
    on_unpaid = Recorder()
    outer, _ = build(on_unpaid=on_unpaid)
    headers = signed()
    headers["Content-Type"] = content_type
    async with running(outer) as client:
        status, payload, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
    assert_rejected(status, payload, 415)
    assert on_unpaid.calls == []


# --- duplicates ---------------------------------------------------------------------------


async def test_same_notification_twice_is_acknowledged_as_duplicate() -> None:
    on_unpaid = Recorder()
    outer, sub = build(on_unpaid=on_unpaid)
    headers = signed()
    async with running(outer) as client:
        s1, p1, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
        s2, p2, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
    assert (s1, s2) == (200, 200)
    assert p1 == ACK_EXACT
    assert p2 == ack(TRX, "01")
    assert p2["responseCode"] == "01"
    assert len(on_unpaid.calls) == 1
    assert (sub[WEBHOOK_CONFIG].processed, sub[WEBHOOK_CONFIG].duplicates) == (1, 1)


async def test_new_request_id_same_transaction_and_status_is_a_duplicate() -> None:
    on_unpaid = Recorder()
    outer, _ = build(on_unpaid=on_unpaid)
    async with running(outer) as client:
        _, p1, _ = await post(client, UNPAID_PATH, unpaid_body(), signed(RID_1))
        _, p2, _ = await post(client, UNPAID_PATH, unpaid_body(), signed(RID_2))
        # transactionStatus as a number is the same status
        _, p3, _ = await post(client, UNPAID_PATH, unpaid_body(status=50), signed(RID_3))
    assert p1["responseCode"] == "00"
    assert p2["responseCode"] == "01"
    assert p3["responseCode"] == "01"
    assert len(on_unpaid.calls) == 1


async def test_same_request_id_with_another_body_is_refused() -> None:
    """Issue 17: the legacy signature covers only agentKey + requestId, so captured headers
    replayed with another body verify; the requestId is bound to its first body (409)."""
    on_unpaid = Recorder()
    outer, sub = build(on_unpaid=on_unpaid)
    async with running(outer) as client:
        _, p1, _ = await post(client, UNPAID_PATH, unpaid_body("DK1"), signed(RID_1))
        s2, p2, _ = await post(client, UNPAID_PATH, unpaid_body("DK2"), signed(RID_1))
        s3, p3, _ = await post(client, UNPAID_PATH, unpaid_body("DK1", "35"), signed(RID_1))
    assert p1 == ack("DK1")
    assert (s2, p2["responseCode"], s3, p3["responseCode"]) == (409, "409", 409, "409")
    assert [n.transaction_id for n in on_unpaid.calls] == ["DK1"]
    assert sub[WEBHOOK_CONFIG].rejected == 2


async def test_a_replay_with_another_body_is_refused_after_the_first_failed() -> None:
    """The binding outlives a released claim: DOKU's retry (same body) is handled, a changed
    body is not."""
    calls: list[str] = []

    async def flaky(n: UnpaidNotification) -> None:
        calls.append(str(n.status))
        if len(calls) == 1:
            raise RuntimeError("down")

    outer, _ = build(on_unpaid=flaky)
    async with running(outer) as client:
        s1, _, _ = await post(client, UNPAID_PATH, unpaid_body("DK1", "35"), signed(RID_1))
        s2, _, _ = await post(client, UNPAID_PATH, unpaid_body("DK1", "50"), signed(RID_1))
        s3, p3, _ = await post(client, UNPAID_PATH, unpaid_body("DK1", "35"), signed(RID_1))
    assert (s1, s2, s3, p3["responseCode"]) == (500, 409, 200, "00")
    assert calls == ["35", "35"]


async def test_same_transaction_with_a_new_status_is_processed() -> None:
    on_unpaid, on_refund = Recorder(), Recorder()
    outer, sub = build(on_unpaid=on_unpaid, on_refund=on_refund)
    async with running(outer) as client:
        _, p1, _ = await post(client, UNPAID_PATH, unpaid_body(status="20"))
        _, p2, _ = await post(client, UNPAID_PATH, unpaid_body(status="50"))
        _, p3, _ = await post(client, REFUND_PATH, refund_body())
    assert [p["responseCode"] for p in (p1, p2, p3)] == ["00", "00", "00"]
    assert [n.status for n in on_unpaid.calls] == ["20", "50"]
    assert len(on_refund.calls) == 1
    assert sub[WEBHOOK_CONFIG].processed == 3
    assert sub[WEBHOOK_CONFIG].duplicates == 0


async def test_hundred_concurrent_identical_deliveries_run_the_callback_once() -> None:
    on_unpaid = Recorder(delay=0.05)
    outer, sub = build(on_unpaid=on_unpaid)
    headers = signed()
    body = unpaid_body()
    async with running(outer) as client:

        async def deliver() -> tuple[int, str]:
            async with client.post(UNPAID_PATH, data=body, headers=headers) as resp:
                payload = await resp.json()
                return resp.status, payload["responseCode"]

        results = await asyncio.wait_for(asyncio.gather(*(deliver() for _ in range(100))), 20)
    assert [s for s, _ in results] == [200] * 100
    codes = [c for _, c in results]
    assert codes.count("00") == 1
    assert codes.count("01") == 99
    assert len(on_unpaid.calls) == 1
    assert on_unpaid.completed == 1
    assert sub[WEBHOOK_CONFIG].processed == 1
    assert sub[WEBHOOK_CONFIG].duplicates == 99


def test_an_injected_empty_dedup_store_is_used() -> None:
    store = MemoryDedupStore()
    _, sub = build(on_unpaid=Recorder(), dedup_store=store)
    assert sub[WEBHOOK_CONFIG].settings.dedup_store is store


async def test_dedup_store_and_ttl_are_used() -> None:
    now = [0.0]
    store = MemoryDedupStore(clock=lambda: now[0])
    # Not empty, to step around the falsy-empty-store bug above.
    assert await store.claim(["unrelated"], ttl=1e9)
    on_unpaid = Recorder()
    outer, sub = build(on_unpaid=on_unpaid, dedup_store=store, dedup_ttl=60.0)
    assert sub[WEBHOOK_CONFIG].settings.dedup_store is store
    headers = signed()
    async with running(outer) as client:
        _, p1, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
        assert len(store) == 4  # + requestId, transaction+status and the body binding
        now[0] = 59.0
        _, p2, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
        now[0] = 61.0
        _, p3, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
    assert [p["responseCode"] for p in (p1, p2, p3)] == ["00", "01", "00"]
    assert len(on_unpaid.calls) == 2


class RecordingStore:
    """A DedupStore of our own (like a Redis one): records every claim and release."""

    def __init__(self) -> None:
        self.inner = MemoryDedupStore()
        self.claims: list[tuple[tuple[str, ...], float]] = []
        self.releases: list[tuple[str, ...]] = []

    async def claim(self, keys: Sequence[str], ttl: float) -> bool:
        self.claims.append((tuple(keys), ttl))
        return await self.inner.claim(keys, ttl)

    async def release(self, keys: Sequence[str]) -> None:
        self.releases.append(tuple(keys))
        await self.inner.release(keys)


async def test_custom_dedup_store_gets_claims_and_releases() -> None:
    store = RecordingStore()
    on_unpaid = Recorder(fail_first=1)
    outer, _ = build(on_unpaid=on_unpaid, dedup_store=store, dedup_ttl=123.0)
    async with running(outer) as client:
        s1, _, _ = await post(client, UNPAID_PATH, unpaid_body(), signed(RID_1))
        s2, _, _ = await post(client, UNPAID_PATH, unpaid_body(), signed(RID_1))
    assert (s1, s2) == (500, 200)
    assert len(store.claims) == 2
    keys, ttl = store.claims[0]
    assert ttl == 123.0
    assert len(keys) == 2
    assert any(RID_1 in k for k in keys)
    assert any(TRX in k and "50" in k for k in keys)
    assert store.releases == [keys]  # released after the failure, so the retry ran
    assert len(on_unpaid.calls) == 2


# --- callback failures --------------------------------------------------------------------


async def test_failing_callback_answers_500_and_the_retry_is_processed() -> None:
    on_unpaid = Recorder(fail_first=1)
    outer, sub = build(on_unpaid=on_unpaid)
    headers = signed()
    async with running(outer) as client:
        s1, p1, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
        assert 500 <= s1 < 600  # a 5xx, so DOKU retries
        assert_rejected(s1, p1, 500)
        # DOKU's retry: same requestId, same body
        s2, p2, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
        s3, p3, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
    assert (s2, p2) == (200, ACK_EXACT)
    assert (s3, p3["responseCode"]) == (200, "01")
    assert len(on_unpaid.calls) == 2
    assert on_unpaid.completed == 1
    assert sub[WEBHOOK_CONFIG].processed == 1
    assert sub[WEBHOOK_CONFIG].duplicates == 1


async def test_cancelled_callback_does_not_swallow_the_retry() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()
    calls: list[Notification] = []

    async def on_unpaid(notification: Notification) -> None:
        calls.append(notification)
        if len(calls) == 1:
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    outer, _ = build(on_unpaid=on_unpaid)
    headers = signed()
    async with running(outer) as client:
        # DOKU gives up waiting (its timeout) and drops the connection; TestServer runs with
        # handler_cancellation=True, so the handler is cancelled inside the callback.
        with pytest.raises(asyncio.TimeoutError):
            async with client.post(
                UNPAID_PATH,
                data=unpaid_body(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=0.3),
            ):
                pass
        await asyncio.wait_for(started.wait(), 5)
        await asyncio.wait_for(cancelled.wait(), 5)
        status, payload, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
    assert (status, payload) == (200, ACK_EXACT)  # not {"responseCode": "01", ...}
    assert len(calls) == 2


# --- ack_first ----------------------------------------------------------------------------


async def test_ack_first_answers_before_the_callback_and_drains_on_shutdown() -> None:
    gate = asyncio.Event()
    started = asyncio.Event()
    finished = asyncio.Event()

    async def on_unpaid(notification: Notification) -> None:
        started.set()
        await gate.wait()
        finished.set()

    outer, sub = build(on_unpaid=on_unpaid, ack_first=True, drain_timeout=10.0)
    client: Client = TestClient(TestServer(outer, host="127.0.0.1"))
    await client.start_server()
    closing: asyncio.Task[None] | None = None
    try:
        status, payload, _ = await post(client, UNPAID_PATH, unpaid_body())
        assert status == 200
        assert payload == ACK_EXACT
        await asyncio.wait_for(started.wait(), 5)
        assert not finished.is_set()  # answered while the callback is still blocked
        tasks = sub[BACKGROUND_TASKS]
        assert len(tasks) == 1
        (task,) = tasks
        assert not task.done()
        assert sub[WEBHOOK_CONFIG].processed == 1

        closing = asyncio.create_task(client.close())
        await asyncio.sleep(0.2)
        assert not closing.done()  # shutdown waits for the callback
        assert not task.done()
        gate.set()
        await asyncio.wait_for(closing, 5)
    finally:
        gate.set()
        if closing is None:
            await client.close()
    assert finished.is_set()
    assert task.done()
    assert not task.cancelled()
    assert task.exception() is None
    assert not tasks  # the finished task left the set


async def test_ack_first_callback_finishing_within_drain_timeout_completes() -> None:
    gate = asyncio.Event()
    completed: list[str] = []

    async def on_unpaid(notification: Notification) -> None:
        await gate.wait()
        await asyncio.sleep(0.05)
        completed.append(notification.transaction_id)

    outer, sub = build(on_unpaid=on_unpaid, ack_first=True, drain_timeout=5.0)
    async with running(outer) as client:
        status, payload, _ = await post(client, UNPAID_PATH, unpaid_body())
        assert (status, payload) == (200, ACK_EXACT)
        assert completed == []  # still blocked
        (task,) = sub[BACKGROUND_TASKS]
        # released only once shutdown has begun
        asyncio.get_running_loop().call_later(0.1, gate.set)
    # running() closed the server: the drain let the callback finish
    assert completed == [TRX]
    assert task.done()
    assert not task.cancelled()


async def test_ack_first_never_finishing_callback_is_cancelled_at_drain_timeout() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def on_refund(notification: Notification) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    outer, sub = build(on_refund=on_refund, ack_first=True, drain_timeout=0.2)
    client: Client = TestClient(TestServer(outer, host="127.0.0.1"))
    await client.start_server()
    try:
        status, payload, _ = await post(client, REFUND_PATH, refund_body())
        assert (status, payload) == (200, ACK_EXACT)
        await asyncio.wait_for(started.wait(), 5)
        (task,) = sub[BACKGROUND_TASKS]
    finally:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.wait_for(client.close(), 10)
        elapsed = loop.time() - began
    assert cancelled.is_set()
    assert task.cancelled()
    assert 0.15 <= elapsed < 5.0
    assert not sub[BACKGROUND_TASKS]


async def test_ack_first_failing_callback_still_acknowledged_and_app_keeps_working() -> None:
    on_unpaid = Recorder(fail_first=1)
    outer, sub = build(on_unpaid=on_unpaid, ack_first=True)
    async with running(outer) as client:
        s1, p1, _ = await post(client, UNPAID_PATH, unpaid_body("DK1"))
        for _ in range(200):
            if not sub[BACKGROUND_TASKS]:
                break
            await asyncio.sleep(0.01)
        assert not sub[BACKGROUND_TASKS]
        s2, p2, _ = await post(client, UNPAID_PATH, unpaid_body("DK2"))
        for _ in range(200):
            if on_unpaid.completed:
                break
            await asyncio.sleep(0.01)
    assert (s1, p1) == (200, ack("DK1"))
    assert (s2, p2) == (200, ack("DK2"))
    assert [n.transaction_id for n in on_unpaid.calls] == ["DK1", "DK2"]
    assert on_unpaid.completed == 1
    assert sub[WEBHOOK_CONFIG].processed == 2


async def test_ack_first_duplicates_are_still_deduplicated() -> None:
    on_unpaid = Recorder(delay=0.05)
    outer, sub = build(on_unpaid=on_unpaid, ack_first=True)
    headers = signed()
    async with running(outer) as client:
        _, p1, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
        _, p2, _ = await post(client, UNPAID_PATH, unpaid_body(), headers)
    assert (p1["responseCode"], p2["responseCode"]) == ("00", "01")
    assert len(on_unpaid.calls) == 1
    assert on_unpaid.completed == 1  # drained on close
    assert sub[WEBHOOK_CONFIG].duplicates == 1


# --- counters -----------------------------------------------------------------------------


async def test_counters_reflect_what_happened() -> None:
    on_notification = Recorder()
    outer, sub = build(on_notification=on_notification, max_body_size=1024)
    cfg = sub[WEBHOOK_CONFIG]
    headers = signed()
    async with running(outer) as client:
        assert (cfg.processed, cfg.duplicates, cfg.rejected) == (0, 0, 0)
        await post(client, UNPAID_PATH, unpaid_body("DK1"), headers)
        await post(client, REFUND_PATH, refund_body("DK2"))
        assert (cfg.processed, cfg.duplicates, cfg.rejected) == (2, 0, 0)
        await post(client, UNPAID_PATH, unpaid_body("DK1"), headers)  # duplicate
        await post(client, UNPAID_PATH, unpaid_body("DK1"))  # duplicate by transaction
        assert (cfg.processed, cfg.duplicates, cfg.rejected) == (2, 2, 0)
        await post(client, UNPAID_PATH, unpaid_body("DK3"), signed(key="x" * 16))  # 401
        await post(client, UNPAID_PATH, b"{bad")  # 400
        await post(client, UNPAID_PATH, unpaid_body("DK4", message="z" * 2000))  # 413
        text = signed()
        text["Content-Type"] = "text/plain"
        await post(client, UNPAID_PATH, unpaid_body("DK5"), text)  # 415
        async with client.get(UNPAID_PATH) as resp:  # 405
            assert resp.status == 405
        assert (cfg.processed, cfg.duplicates, cfg.rejected) == (2, 2, 5)
    assert len(on_notification.calls) == 2


# --- construction -------------------------------------------------------------------------


async def _noop(notification: Notification) -> None:
    return None


def test_create_webhook_app_needs_a_verifier_or_keys() -> None:
    with pytest.raises(ValueError, match="verifier"):
        create_webhook_app(on_unpaid=_noop)
    with pytest.raises(ValueError, match="verifier"):
        create_webhook_app(agent_key=AGENT, on_unpaid=_noop)
    with pytest.raises(ValueError, match="verifier"):
        create_webhook_app(encryption_keys=KEY, on_unpaid=_noop)


def test_create_webhook_app_needs_a_callback() -> None:
    with pytest.raises(ValueError, match="on_unpaid"):
        create_webhook_app(agent_key=AGENT, encryption_keys=KEY)


def test_create_webhook_app_stores_its_config() -> None:
    app = create_webhook_app(
        agent_key=AGENT,
        encryption_keys=KEY,
        on_refund=_noop,
        ack_first=True,
        max_body_size=2048,
        dedup_ttl=7.0,
        drain_timeout=3.0,
    )
    cfg = app[WEBHOOK_CONFIG]
    assert cfg.settings.on_refund is _noop
    assert cfg.settings.on_unpaid is None
    assert cfg.settings.ack_first is True
    assert cfg.settings.max_body_size == 2048
    assert cfg.settings.dedup_ttl == 7.0
    assert cfg.settings.drain_timeout == 3.0
    assert isinstance(cfg.settings.dedup_store, MemoryDedupStore)
    assert KEY not in repr(cfg.settings.verifier)


async def test_copy_arriving_while_the_first_fails_is_handled_not_lost() -> None:
    """A duplicate that arrives while the first delivery is still in the callback waits for
    it; when the first fails (500), the waiting copy is handled instead of being answered
    "already processed" and lost."""
    release = asyncio.Event()
    entered = asyncio.Event()
    calls: list[str] = []

    async def callback(notification: Notification) -> None:
        calls.append(notification.request_id)
        entered.set()
        if len(calls) == 1:
            await release.wait()
            raise RuntimeError("first delivery fails")

    outer, sub = build(on_unpaid=callback)
    async with running(outer) as client, asyncio.timeout(10):
        body = unpaid_body()
        first = asyncio.create_task(client.post(UNPAID_PATH, data=body, headers=signed(RID_1)))
        await entered.wait()
        second = asyncio.create_task(client.post(UNPAID_PATH, data=body, headers=signed(RID_2)))
        await asyncio.sleep(0.05)
        assert not second.done(), "the copy must wait for the first delivery's outcome"
        release.set()
        first_resp, second_resp = await first, await second
        assert first_resp.status == 500
        assert second_resp.status == 200
        assert await second_resp.json() == ACK_EXACT
        assert calls == [RID_1, RID_2]
        assert sub[WEBHOOK_CONFIG].processed == 1
        assert sub[WEBHOOK_CONFIG].duplicates == 0
