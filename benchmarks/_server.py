"""Loopback servers that run in their own process, pinned to the other core.

``kind="minimal"``: a minimal HTTP/1.1 keep-alive server written on a raw
:class:`asyncio.Protocol` (no aiohttp.web). It answers canned, DOKU-shaped JSON per path and
verifies nothing, so the client side of a benchmark is what gets measured. Per-path counters,
connection counts and the server's own CPU time are read from ``GET /__stats``; ``POST
/__reset`` zeroes them and ``POST /__config`` (``{"expires_in": 2}``) changes the token
lifetime it advertises.

``kind="webhook"``: an aiohttp application with the SDK's webhook sub-app mounted under
``/doku/`` and a bare aiohttp handler under ``/bare/kirim/unpaid`` returning the same
acknowledgement, plus the same ``/__stats`` route.

Both are started in a ``multiprocessing`` child (spawn context) bound to 127.0.0.1 on an
ephemeral port that comes back through a pipe; the child stops when told to, when the pipe
closes (the parent died) or after ``max_lifetime`` seconds, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import multiprocessing
import multiprocessing.connection
import time
from types import TracebackType
from typing import Any

from ._common import AGENT_KEY, ENCRYPTION_KEY, SERVER_CPU, pin

__all__ = ["ServerProcess"]

TOKEN_PATH = "/authorization/v1/access-token/b2b"
VA_STATUS_PATH = "/orders/v1.0/transfer-va/status"

_SUFFIXES = {
    "/emoney/bank-account-inquiry": "account_inquiry",
    "/emoney/transfer-bank": "transfer_bank",
    "/qr/qr-mpm-status": "check_status",
    "/balance-inquiry": "balance_inquiry",
}


def _canned() -> dict[str, dict[str, Any]]:
    """DOKU-shaped answers (as the SDK's simulator gives them), one per operation."""
    return {
        "account_inquiry": {
            "responseCode": "2004200",
            "responseMessage": "Successful",
            "referenceNo": "I000000000000001",
            "partnerReferenceNo": "inq-0000000000000001",
            "beneficiaryAccountNumber": "8377388292",
            "beneficiaryAccountName": "FHILEA HERMANUS",
            "beneficiaryBankCode": "014",
            "beneficiaryBankShortName": "BCA",
            "beneficiaryBankName": "Bank Central Asia",
            "amount": {"value": "200000.00", "currency": "IDR"},
            "sessionId": "I000000000000001",
            "additionalInfo": {
                "senderCountryCode": "ID",
                "forexRate": "1.00",
                "forexOriginCurrency": "IDR",
                "feeAmount": "4500.00",
                "feeCurrency": "IDR",
                "beneficiaryAmount": "200000.00",
                "referenceNumber": "5a0c1f7e-6a8f-4d2b-9a0e-3b1f2c4d5e6f",
            },
        },
        "transfer_bank": {
            "responseCode": "2004300",
            "responseMessage": "Successful",
            "referenceNo": "DK00000001",
            "partnerReferenceNo": "DRV-2024-10-000001",
            "transactionDate": "2024-10-31T10:00:00+07:00",
            "referenceNumber": "0b8f6c2e-2d1a-4f5e-8c3b-7a9d0e1f2a3b",
            "additionalInfo": {"sessionId": "I000000000000001", "amount": "200000.00"},
        },
        "check_status": {
            "responseCode": "2005300",
            "responseMessage": "Successful",
            "originalReferenceNo": "DK00000001",
            "originalPartnerReferenceNo": "DRV-2024-10-000001",
            "serviceCode": 43,
            "latestTransactionStatus": "00",
            "amount": {"value": "200000.00", "currency": "IDR"},
            "transactionDate": "2024-10-31T10:00:00+07:00",
            "originalResponseCode": 0,
            "originalResponseMessage": "Transfer Approve",
            "transactionStatusDesc": "Transaction is successfully processed",
            "sessionId": "I000000000000001",
            "additionalInfo": {"remark": "", "beneficiaryAmount": "200000.00"},
        },
        "balance_inquiry": {
            "responseCode": "2001100",
            "responseMessage": "Successful",
            "accountNo": AGENT_KEY,
            "name": "Benchmark Agent",
            "accountInfos": [
                {
                    "holdAmount": {"value": "0.00", "currency": "IDR"},
                    "availableBalance": {"value": "1000000000.00", "currency": "IDR"},
                }
            ],
            "additionalInfo": {"creditAlertLimit": {"value": "65000.00", "currency": "IDR"}},
        },
        # The official library's VA check status: its response class takes exactly these keys.
        "va_status": {
            "responseCode": "2002600",
            "responseMessage": "Successful",
            "virtualAccountData": {
                "paymentFlagReason": {"english": "Success", "indonesia": "Sukses"},
                "partnerServiceId": "  888994",
                "customerNo": "00000000000000000001",
                "virtualAccountNo": "  88899400000000000000000001",
                "inquiryRequestId": "abcdef-123456-abcdef",
                "paymentRequestId": "abcdef-123456-abcdef",
                "paidAmount": {"value": "12500.00", "currency": "IDR"},
                "billAmount": {"value": "12500.00", "currency": "IDR"},
            },
            "additionalInfo": {"acquirer": {"id": "BANK_CIMB"}, "trxId": "INV_CIMB_1"},
        },
    }


def _response(status: int, body: bytes, *, close: bool = False) -> bytes:
    reason = {200: "OK", 404: "Not Found", 400: "Bad Request", 501: "Not Implemented"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


class _State:
    """Canned answers, counters and the advertised token lifetime of one minimal server."""

    def __init__(self, expires_in: int) -> None:
        self.expires_in = expires_in
        self.tokens_issued = 0
        self.started_cpu = time.process_time()
        self.counts: dict[str, int] = {}
        self.connections = 0
        self.requests = 0
        self.bytes_in = 0
        self._answers: dict[str, tuple[bytes, bytes]] = {}
        for name, payload in _canned().items():
            body = json.dumps(payload, separators=(",", ":")).encode()
            self._answers[name] = (_response(200, body), _response(200, body, close=True))
        missing = b'{"responseCode":"4040000","responseMessage":"Not Found"}'
        self._missing = (_response(404, missing), _response(404, missing, close=True))

    def reset(self) -> None:
        self.counts.clear()
        self.connections = 0
        self.requests = 0
        self.bytes_in = 0
        self.tokens_issued = 0
        self.started_cpu = time.process_time()

    def stats(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "requests": self.requests,
            "connections": self.connections,
            "bytes_in": self.bytes_in,
            "tokens_issued": self.tokens_issued,
            "cpu": time.process_time() - self.started_cpu,
            "expires_in": self.expires_in,
        }

    def operation(self, path: str) -> str:
        if path == TOKEN_PATH:
            return "token"
        if path == VA_STATUS_PATH:
            return "va_status"
        for suffix, name in _SUFFIXES.items():
            if path.endswith(suffix):
                return name
        return path

    def answer(self, method: bytes, raw_path: bytes, body: bytes, close: bool) -> bytes:
        path = raw_path.split(b"?", 1)[0].decode("latin-1")
        if path.startswith("/__"):
            return self._control(method, path, body, close)
        self.requests += 1
        self.bytes_in += len(body)
        op = self.operation(path)
        self.counts[op] = self.counts.get(op, 0) + 1
        if op == "token":
            self.tokens_issued += 1
            payload = {
                "responseCode": "2007300",
                "responseMessage": "Successful",
                "accessToken": f"tok{self.tokens_issued:08d}{'x' * 40}",
                "tokenType": "Bearer",
                "expiresIn": self.expires_in,
                "additionalInfo": {},
            }
            return _response(200, json.dumps(payload, separators=(",", ":")).encode(), close=close)
        pair = self._answers.get(op, self._missing)
        return pair[1] if close else pair[0]

    def _control(self, method: bytes, path: str, body: bytes, close: bool) -> bytes:
        if path == "/__stats":
            out = json.dumps(self.stats()).encode()
        elif path == "/__reset" and method == b"POST":
            self.reset()
            out = b"{}"
        elif path == "/__config" and method == b"POST":
            config = json.loads(body or b"{}")
            if "expires_in" in config:
                self.expires_in = int(config["expires_in"])
            out = json.dumps({"expires_in": self.expires_in}).encode()
        else:
            return self._missing[1] if close else self._missing[0]
        return _response(200, out, close=close)


class _HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and Content-Length bodies (what both clients send)."""

    __slots__ = ("_buf", "_state", "_transport")

    def __init__(self, state: _State) -> None:
        self._state = state
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self._state.connections += 1

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        transport = self._transport
        assert transport is not None
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    transport.close()
                return
            head = bytes(buf[:end])
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            if len(parts) != 3:
                transport.write(_response(400, b"{}", close=True))
                transport.close()
                return
            method, path, version = parts
            length = 0
            close = version == b"HTTP/1.0"
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    length = int(value)
                elif lname == b"connection":
                    token = value.strip().lower()
                    if token == b"close":
                        close = True
                    elif token == b"keep-alive":
                        close = False
                elif lname == b"transfer-encoding":
                    transport.write(_response(501, b"{}", close=True))
                    transport.close()
                    return
            total = end + 4 + length
            if len(buf) < total:
                return
            body = bytes(buf[end + 4 : total])
            del buf[:total]
            transport.write(self._state.answer(method, path, body, close))
            if close:
                transport.close()
                return


async def _serve_minimal(options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    state = _State(int(options.get("expires_in", 900)))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _HttpProtocol(state), "127.0.0.1", 0, backlog=4096, reuse_address=True
    )
    return server, {"port": server.sockets[0].getsockname()[1]}


async def _serve_webhook(options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import msgspec
    from aiohttp import web

    from doku_async.webhooks import WEBHOOK_CONFIG, Notification, create_webhook_app

    async def on_notification(_: Notification) -> None:
        return None

    sub = create_webhook_app(
        agent_key=AGENT_KEY,
        encryption_keys=ENCRYPTION_KEY,
        on_notification=on_notification,
        dedup_ttl=7 * 24 * 3600.0,
    )
    decoder = msgspec.json.Decoder()
    encoder = msgspec.json.Encoder()
    counters = {"bare": 0}
    started = [time.process_time()]

    async def bare(request: web.Request) -> web.Response:
        # What a hand-written receiver does at the least: read the body, answer the same
        # acknowledgement (with the notification's transactionId). No verification.
        body = await request.read()
        transaction_id = decoder.decode(body)["transactionId"]
        counters["bare"] += 1
        ack = {
            "status": True,
            "transactionId": transaction_id,
            "responseCode": "00",
            "responseMessage": "Successfully processed",
        }
        return web.Response(body=encoder.encode(ack), content_type="application/json")

    async def stats(_: web.Request) -> web.Response:
        cfg = sub[WEBHOOK_CONFIG]
        payload = {
            "bare": counters["bare"],
            "processed": cfg.processed,
            "duplicates": cfg.duplicates,
            "rejected": cfg.rejected,
            "cpu": time.process_time() - started[0],
        }
        return web.json_response(payload)

    async def reset(_: web.Request) -> web.Response:
        cfg = sub[WEBHOOK_CONFIG]
        counters["bare"] = 0
        cfg.stats.processed = cfg.stats.duplicates = cfg.stats.rejected = 0
        started[0] = time.process_time()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/bare/kirim/unpaid", bare)
    app.router.add_get("/__stats", stats)
    app.router.add_post("/__reset", reset)
    app.add_subapp("/doku/", sub)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = int(runner.addresses[0][1])

    class _Closer:
        def close(self) -> None:
            pass

        async def wait_closed(self) -> None:
            await runner.cleanup()

    return _Closer(), {"port": port}


async def _serve(
    conn: multiprocessing.connection.Connection,
    kind: str,
    options: dict[str, Any],
    info: dict[str, Any],
) -> None:
    loop = asyncio.get_running_loop()
    serve = _serve_minimal if kind == "minimal" else _serve_webhook
    server, details = await serve(options)
    stop = loop.create_future()

    def on_message() -> None:
        with contextlib.suppress(Exception):
            if conn.poll():
                conn.recv()
        if not stop.done():
            stop.set_result(None)

    loop.add_reader(conn.fileno(), on_message)
    conn.send({"ready": True, **info, **details})
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop, timeout=float(options.get("max_lifetime", 900)))
    loop.remove_reader(conn.fileno())
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 5)


def _child_main(
    conn: multiprocessing.connection.Connection, kind: str, options: dict[str, Any]
) -> None:
    pinned = pin(SERVER_CPU) if options.get("pin", True) else False
    loop_name = "asyncio"
    factory = None
    if options.get("uvloop", True):
        try:
            import uvloop

            factory = uvloop.new_event_loop
            loop_name = "uvloop"
        except ImportError:
            pass
    info = {"pinned": pinned, "loop": loop_name}
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve(conn, kind, options, info))


class ServerProcess:
    """A server in a spawned child process; use as a context manager.

    Args:
        kind: ``"minimal"`` or ``"webhook"``.
        expires_in: the token lifetime the minimal server advertises.
        uvloop: run the server on uvloop when it is importable (the server should never be
            the bottleneck).
    """

    def __init__(self, kind: str = "minimal", **options: Any) -> None:
        self.kind = kind
        self.options = options
        self.port = 0
        self.info: dict[str, Any] = {}
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerProcess:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=_child_main, args=(child, self.kind, self.options), daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        if not parent.poll(60):
            self._stop()
            raise RuntimeError(f"{self.kind} server did not start within 60 s")
        self.info = parent.recv()
        self.port = int(self.info["port"])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        process, conn = self._process, self._conn
        if conn is not None:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send("stop")
            conn.close()
        if process is not None:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
        self._process = self._conn = None

    # --- control endpoints (blocking; call them outside timed regions) -------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"}
            if data is None and method == "POST":
                data = b"{}"
            conn.request(method, path, body=data, headers=headers)
            return json.loads(conn.getresponse().read() or b"{}")
        finally:
            conn.close()

    def stats(self) -> dict[str, Any]:
        """Counters and the server's CPU seconds since the last reset."""
        result: dict[str, Any] = self._call("GET", "/__stats")
        return result

    def reset(self) -> None:
        """Zero the counters."""
        self._call("POST", "/__reset")

    def configure(self, **config: Any) -> None:
        """Change the minimal server's settings (``expires_in``)."""
        self._call("POST", "/__config", config)
