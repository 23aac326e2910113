"""1. Per-request CPU of the SDK's own work, with the network replaced by an in-process stub.

The client's ``Transport.post`` is swapped for an ``async`` function that returns a canned
``RawResponse`` at once, the token is warm, and ``await client.kirim.<call>(...)`` runs in a
loop: what remains is everything the SDK does per request (validation, building the typed
request, encoding, hashing, signing, headers, the request flow, decoding, the result). The
"bare" side does the same pieces by hand (a dict, ``msgspec.json.encode``, ``hashlib``,
``hmac``, ``time.strftime``, a headers dict, ``msgspec.json.decode``) around the same stub.

The breakdown times the SDK's pieces one by one against their hand-written equivalents
(``transfer_bank``, the call with the most fields). The SDK's "validate + build + result" and
"request flow" rows are derived: the full call less the directly timed pieces.

This is the hot-cache floor. Inside a real request loop the same SDK code costs 2-3x more
(caches shared with aiohttp): see the bulk benchmark's CPU per request.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec

from doku_async import DokuClient
from doku_async import _serde as serde
from doku_async._pipeline import SnapOperation, _read_answer, new_external_id
from doku_async._signing import body_sha256_hex, format_timestamp, snap_string_to_sign
from doku_async._transport import RawResponse
from doku_async.models._base import Amount
from doku_async.models.kirim import (
    TransferBankAdditionalInfo,
    TransferBankRequest,
    TransferBankResponse,
)

from ._common import (
    AGENT_KEY,
    CLIENT_ID,
    CLIENT_SECRET,
    CUSTOMER_NUMBER,
    Deadline,
    Paired,
    Row,
    Sample,
    Settings,
    alternate,
    measured,
    ratio_text,
    rsa_key_pem,
)
from ._result import Result
from ._server import _canned

NAME = "overhead"
TITLE = "Per-request CPU of the SDK's own work (network stubbed)"
TARGET_US = 10.0
RUN_SECONDS = 10.0
BASE_URL = "http://127.0.0.1:9"  # never contacted: the transport is stubbed

TOKEN_BODY = json.dumps(
    {
        "responseCode": "2007300",
        "responseMessage": "Successful",
        "accessToken": "tok" + "x" * 48,
        "tokenType": "Bearer",
        "expiresIn": 900,
    }
).encode()

TRANSFER_ARGS: dict[str, Any] = {
    "partner_reference_no": "DRV-2024-10-000001",
    "customer_number": CUSTOMER_NUMBER,
    "beneficiary_account_number": "8377388292",
    "beneficiary_bank_code": "014",
    "amount": Decimal("200000"),
    "session_id": "I000000000000001",
    "beneficiary_account_name": "FHILEA HERMANUS",
    "remark": "October earnings",
    "external_id": "12345678901234567890123456789012",
    # One request, like the bare side; what confirmation (one check status) costs is item 2's
    # confirmed-vs-unconfirmed rows.
    "confirm": False,
}
INQUIRY_ARGS: dict[str, Any] = {
    "partner_reference_no": "0123456789abcdef0123456789abcdef",
    "customer_number": CUSTOMER_NUMBER,
    "beneficiary_account_number": "8377388292",
    "beneficiary_bank_code": "014",
    "beneficiary_account_name": "FHILEA HERMANUS",
    "amount": Decimal("200000"),
}
STATUS_ARGS: dict[str, Any] = {"original_partner_reference_no": "DRV-2024-10-000001"}

AsyncCall = Callable[[], Awaitable[object]]


def _kirim_ops(client: DokuClient) -> dict[str, SnapOperation]:
    """The client's Kirim DOKU endpoints by name (the benchmark answers each from memory)."""
    ops = client._kirim_ops
    return {f.name: getattr(ops, f.name) for f in dataclasses.fields(ops)}


class Harness:
    """A client whose transport answers from memory, and hand-written equivalents."""

    def __init__(self) -> None:
        private, _ = rsa_key_pem()
        self.client = DokuClient(CLIENT_ID, CLIENT_SECRET, private, base_url=BASE_URL)
        bodies = {
            name: json.dumps(payload, separators=(",", ":")).encode()
            for name, payload in _canned().items()
        }
        headers = {"Content-Type": "application/json"}
        self.answers: dict[str, RawResponse] = {
            op.url: RawResponse(200, headers, bodies[name], 0.0)
            for name, op in _kirim_ops(self.client).items()
        }
        self.answers[self.client._requester._token_op.url] = RawResponse(
            200, headers, TOKEN_BODY, 0.0
        )
        answers = self.answers

        async def stub(url: str, body: bytes, headers: Any, *, timeout: float) -> RawResponse:
            return answers[url]

        self.stub = stub
        self.client._transport.post = stub  # type: ignore[method-assign]
        self.secret = CLIENT_SECRET.encode()
        self.token = "tok" + "x" * 48
        ops = _kirim_ops(self.client)
        self.paths = {name: (op.path, op.url) for name, op in ops.items()}

    async def warm(self) -> None:
        await self.client.kirim.balance_inquiry(account_no=AGENT_KEY)

    # --- the SDK's calls ----------------------------------------------------------------

    def sdk_calls(self) -> dict[str, AsyncCall]:
        kirim = self.client.kirim
        return {
            "account_inquiry": lambda: kirim.account_inquiry(**INQUIRY_ARGS),
            "transfer_bank": lambda: kirim.transfer_bank(**TRANSFER_ARGS),
            "check_status": lambda: kirim.check_status(**STATUS_ARGS),
        }

    # --- the same by hand ------------------------------------------------------------------

    async def _bare_send(self, name: str, payload: dict[str, Any]) -> Any:
        path, url = self.paths[name]
        body = msgspec.json.encode(payload)
        digest = hashlib.sha256(body).hexdigest()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S+07:00", time.gmtime(time.time() + 25200))
        message = f"POST:{path}:{self.token}:{digest}:{ts}".encode()
        signature = base64.b64encode(hmac.new(self.secret, message, hashlib.sha512).digest())
        headers = {
            "Content-Type": "application/json",
            "Authorization": "Bearer " + self.token,
            "X-TIMESTAMP": ts,
            "X-SIGNATURE": signature.decode(),
            "X-PARTNER-ID": CLIENT_ID,
            "X-EXTERNAL-ID": str(secrets.randbits(106)),
            "CHANNEL-ID": "H2H",
        }
        raw = await self.stub(url, body, headers, timeout=30.0)
        return msgspec.json.decode(raw.body)

    def bare_calls(self) -> dict[str, AsyncCall]:
        a = INQUIRY_ARGS

        def inquiry() -> Awaitable[Any]:
            return self._bare_send(
                "account_inquiry",
                {
                    "partnerReferenceNo": a["partner_reference_no"],
                    "customerNumber": a["customer_number"],
                    "amount": {"value": f"{a['amount']:.2f}", "currency": "IDR"},
                    "beneficiaryAccountNumber": a["beneficiary_account_number"],
                    "additionalInfo": {
                        "beneficiaryBankCode": a["beneficiary_bank_code"],
                        "beneficiaryAccountName": a["beneficiary_account_name"],
                        "senderCountryCode": "ID",
                    },
                },
            )

        def transfer() -> Awaitable[Any]:
            return self._bare_send("transfer_bank", bare_transfer_body())

        def status() -> Awaitable[Any]:
            return self._bare_send(
                "check_status",
                {
                    "originalPartnerReferenceNo": STATUS_ARGS["original_partner_reference_no"],
                    "serviceCode": "43",
                },
            )

        return {"account_inquiry": inquiry, "transfer_bank": transfer, "check_status": status}


def bare_transfer_body() -> dict[str, Any]:
    t = TRANSFER_ARGS
    return {
        "partnerReferenceNo": t["partner_reference_no"],
        "customerNumber": t["customer_number"],
        "beneficiaryAccountNumber": t["beneficiary_account_number"],
        "beneficiaryBankCode": t["beneficiary_bank_code"],
        "amount": {"value": f"{t['amount']:.2f}", "currency": "IDR"},
        "sessionId": t["session_id"],
        "additionalInfo": {
            "beneficiaryAccountName": t["beneficiary_account_name"],
            "remark": t["remark"],
        },
    }


async def time_async(call: AsyncCall, n: int) -> Sample:
    deadline = Deadline(RUN_SECONDS)
    done = 0
    with measured() as m:
        for i in range(n):
            await call()
            done += 1
            if i & 255 == 0 and deadline.passed():
                break
    return Sample(done, m[0], m[1], capped=done < n)


def time_sync(call: Callable[[], object], n: int) -> Sample:
    deadline = Deadline(RUN_SECONDS)
    done = 0
    with measured() as m:
        for i in range(n):
            call()
            done += 1
            if i & 1023 == 0 and deadline.passed():
                break
    return Sample(done, m[0], m[1], capped=done < n)


def _pieces(h: Harness) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """(SDK piece, hand-written piece) pairs for ``transfer_bank``."""
    client = h.client
    key = client._secret
    path, _ = h.paths["transfer_bank"]
    request = TransferBankRequest(
        partner_reference_no="DRV-2024-10-000001",
        customer_number=CUSTOMER_NUMBER,
        beneficiary_account_number="8377388292",
        beneficiary_bank_code="014",
        amount=Amount(value=Decimal("200000.00"), currency="IDR"),
        session_id="I000000000000001",
        additional_info=TransferBankAdditionalInfo(
            beneficiary_account_name="FHILEA HERMANUS", remark="October earnings"
        ),
    )
    payload = bare_transfer_body()
    body = serde.encode(request)
    digest = body_sha256_hex(body)
    ts = format_timestamp("jakarta")
    raw = h.answers[_kirim_ops(client)["transfer_bank"].url]
    token = h.token
    secret = h.secret

    def sdk_headers() -> object:
        stamp = format_timestamp("jakarta", time.time())
        return {
            "Content-Type": "application/json",
            "Authorization": "Bearer " + token,
            "X-TIMESTAMP": stamp,
            "X-SIGNATURE": "s",
            "X-PARTNER-ID": CLIENT_ID,
            "X-EXTERNAL-ID": new_external_id(),
            "CHANNEL-ID": "H2H",
        }

    def bare_headers() -> object:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S+07:00", time.gmtime(time.time() + 25200))
        return {
            "Content-Type": "application/json",
            "Authorization": "Bearer " + token,
            "X-TIMESTAMP": stamp,
            "X-SIGNATURE": "s",
            "X-PARTNER-ID": CLIENT_ID,
            "X-EXTERNAL-ID": str(secrets.randbits(106)),
            "CHANNEL-ID": "H2H",
        }

    return {
        "encode": (lambda: serde.encode(request), lambda: msgspec.json.encode(payload)),
        "sha256": (lambda: body_sha256_hex(body), lambda: hashlib.sha256(body).hexdigest()),
        "HMAC-SHA512 sign": (
            lambda: key.sign(snap_string_to_sign("POST", path, token, digest, ts)),
            lambda: base64.b64encode(
                hmac.new(
                    secret, f"POST:{path}:{token}:{digest}:{ts}".encode(), hashlib.sha512
                ).digest()
            ).decode(),
        ),
        "timestamp + external id + headers": (sdk_headers, bare_headers),
        "decode": (
            lambda: _read_answer(raw, TransferBankResponse),
            lambda: msgspec.json.decode(raw.body),
        ),
    }


async def _main(settings: Settings) -> Result:
    result = Result(NAME, TITLE)
    h = Harness()
    await h.warm()
    n_calls = settings.scale(5000, 1000)
    n_piece = settings.scale(20000, 4000)
    sdk_calls, bare_calls = h.sdk_calls(), h.bare_calls()
    for fn in (*sdk_calls.values(), *bare_calls.values()):  # warm up
        for _ in range(200):
            await fn()
    calls: dict[str, Paired] = {name: Paired([], []) for name in sdk_calls}
    pieces = _pieces(h)
    piece_results: dict[str, Paired] = {name: Paired([], []) for name in pieces}
    # The front half of transfer_bank: validation, building, encoding and the result, with the
    # request flow stubbed out.
    front = Paired([], [])
    money_rule = h.client.kirim._money_rule
    canned = await sdk_calls["transfer_bank"]()  # a real result, handed back by the stub

    async def no_flow(*args: Any, **kwargs: Any) -> Any:
        return canned

    def bare_front() -> object:
        body = msgspec.json.encode(bare_transfer_body())
        return {"status": "success", "body": body, "partnerReferenceNo": "DRV-2024-10-000001"}

    for _, order in alternate(settings.rounds):
        for side in order:
            for name in sdk_calls:
                fn = sdk_calls[name] if side == "sdk" else bare_calls[name]
                sample = await time_async(fn, n_calls)
                (calls[name].sdk if side == "sdk" else calls[name].base).append(sample)
            for name, (sdk_fn, bare_fn) in pieces.items():
                sample = time_sync(sdk_fn if side == "sdk" else bare_fn, n_piece)
                pr = piece_results[name]
                (pr.sdk if side == "sdk" else pr.base).append(sample)
            if side == "sdk":
                money_rule.transfer = no_flow  # type: ignore[method-assign]
                try:
                    front.sdk.append(await time_async(sdk_calls["transfer_bank"], n_calls))
                finally:
                    del money_rule.transfer
            else:
                front.base.append(time_sync(bare_front, n_piece))

    for name, paired in calls.items():
        ratio, spread = paired.ratio("wall_us")
        median = paired.stat("sdk", "wall_us").median
        result.rows.append(
            Row(
                "1",
                f"SDK work per call, `{name}` (µs, stubbed network)",
                paired.stat("sdk", "wall_us").fmt(2),
                paired.stat("base", "wall_us").fmt(2),
                ratio_text(ratio, spread),
                f"≤ {TARGET_US:g} µs",
                median <= TARGET_US,
                "bare: the same pieces by hand",
            )
        )
        result.data[name] = _json(paired)
    # Breakdown of transfer_bank.
    t_full_sdk = calls["transfer_bank"].stat("sdk", "wall_us").median
    t_full_bare = calls["transfer_bank"].stat("base", "wall_us").median
    med = {
        name: (p.stat("sdk", "wall_us").median, p.stat("base", "wall_us").median)
        for name, p in piece_results.items()
    }
    front_sdk = front.stat("sdk", "wall_us").median
    front_bare = front.stat("base", "wall_us").median
    build_sdk = front_sdk - med["encode"][0]
    build_bare = front_bare - med["encode"][1]
    direct = ("sha256", "HMAC-SHA512 sign", "timestamp + external id + headers", "decode")
    flow_sdk = t_full_sdk - front_sdk - sum(med[k][0] for k in direct)
    flow_bare = t_full_bare - front_bare - sum(med[k][1] for k in direct)
    breakdown: list[tuple[str, float, float, str]] = [
        ("validate + build request + result (derived)", build_sdk, build_bare, ""),
        *((name, med[name][0], med[name][1], "") for name in piece_results),
        (
            "request flow: token, deadlines, retry loop, awaits (derived)",
            flow_sdk,
            flow_bare,
            "",
        ),
    ]
    for label, sdk_us, bare_us, note in breakdown:
        ratio = sdk_us / bare_us if bare_us > 0 else float("nan")
        result.rows.append(
            Row(
                "1",
                f"`transfer_bank` breakdown: {label} (µs)",
                f"{sdk_us:,.2f}",
                f"{bare_us:,.2f}",
                f"{ratio:.2f}x" if ratio == ratio else "n/a",
                note=note,
            )
        )
    result.data["breakdown_transfer_bank_us"] = {
        label: {"sdk": s, "bare": b} for label, s, b, _ in breakdown
    }
    result.data["pieces"] = {name: _json(p) for name, p in piece_results.items()}
    result.data["front_half"] = _json(front)
    result.notes.append(
        "Item 1 is the hot-cache floor of the SDK's own code: in the bulk loop the SDK side "
        "spends more CPU per request than these numbers (see item 2)."
    )
    await h.client.aclose()
    return result


def _json(paired: Paired) -> dict[str, Any]:
    ratio, spread = paired.ratio("wall_us")
    return {
        "sdk_us": paired.stat("sdk", "wall_us").__dict__,
        "bare_us": paired.stat("base", "wall_us").__dict__,
        "sdk_cpu_us": paired.stat("sdk", "cpu_us").__dict__,
        "ratio_of_medians": ratio,
        "per_round_ratio": spread.__dict__,
        "ops_per_round": [s.ops for s in paired.sdk],
    }


def run(settings: Settings) -> Result:
    started = time.perf_counter()
    result = asyncio.run(_main(settings))
    result.seconds = time.perf_counter() - started
    return result
