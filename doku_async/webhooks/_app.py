"""The aiohttp sub-app that receives Kirim DOKU notifications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .._exceptions import ConfigurationError
from ..models.notifications import Notification, RefundNotification, UnpaidNotification
from ._dedup import DEFAULT_TTL, DedupStore, MemoryDedupStore
from ._snap_inbound import SnapInbound
from ._verify import (
    AesSignatureVerifier,
    NotificationKind,
    NotificationParseError,
    NotificationVerifier,
    WebhookVerificationError,
    verify_and_parse,
)

__all__ = ["BACKGROUND_TASKS", "WEBHOOK_CONFIG", "WebhookConfig", "create_webhook_app"]

log = logging.getLogger("doku_async.webhooks")

UnpaidHandler = Callable[[UnpaidNotification], Awaitable[object]]
RefundHandler = Callable[[RefundNotification], Awaitable[object]]
NotificationHandler = Callable[[Notification], Awaitable[object]]

_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class WebhookConfig:
    """Everything a webhook app needs; stored under :data:`WEBHOOK_CONFIG`."""

    verifier: NotificationVerifier
    on_unpaid: UnpaidHandler | None
    on_refund: RefundHandler | None
    on_notification: NotificationHandler | None
    ack_first: bool
    dedup_store: DedupStore
    dedup_ttl: float
    max_body_size: int
    drain_timeout: float
    inflight: dict[str, asyncio.Future[bool]] = field(default_factory=dict)
    processed: int = field(default=0)
    duplicates: int = field(default=0)
    rejected: int = field(default=0)


WEBHOOK_CONFIG = web.AppKey("doku_webhook_config", WebhookConfig)
"""The app's :class:`WebhookConfig` (also its counters: processed, duplicates, rejected)."""
BACKGROUND_TASKS = web.AppKey("doku_webhook_tasks", set[asyncio.Task[None]])
"""Callbacks still running in ``ack_first`` mode; drained on shutdown."""


def _json(
    status: int, payload: dict[str, object], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=_encoder.encode(payload),
        content_type="application/json",
        headers=headers,
    )


def _ack(transaction_id: str, code: str, message: str) -> web.Response:
    return _json(
        200,
        {
            "status": True,
            "transactionId": transaction_id,
            "responseCode": code,
            "responseMessage": message,
        },
    )


def _reject(status: int, message: str) -> web.Response:
    return _json(status, {"status": False, "responseCode": str(status), "responseMessage": message})


async def _read_capped(request: web.Request, cap: int) -> bytes | None:
    """The body, or ``None`` when it exceeds ``cap`` bytes."""
    length = request.content_length
    if length is not None and length > cap:
        return None
    if length == 0:
        return b""  # aiohttp's empty payload raises on readexactly(0)
    if length is not None and "Content-Encoding" not in request.headers:
        # The HTTP parser holds a plain body to exactly Content-Length bytes: read it at once.
        try:
            return await request.content.readexactly(length)
        except asyncio.IncompleteReadError:
            raise web.RequestPayloadError("body shorter than Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _callback_for(cfg: WebhookConfig, notification: Notification) -> NotificationHandler | None:
    specific: NotificationHandler | None = (
        cfg.on_unpaid  # type: ignore[assignment]
        if isinstance(notification, UnpaidNotification)
        else cfg.on_refund
    )
    return specific if specific is not None else cfg.on_notification


def _handler(kind: NotificationKind) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        cfg = request.app[WEBHOOK_CONFIG]
        if request.method != "POST":
            cfg.rejected += 1
            return _json(
                405,
                {"status": False, "responseCode": "405", "responseMessage": "use POST"},
                headers={"Allow": "POST"},
            )
        if request.content_type != "application/json":
            cfg.rejected += 1
            return _reject(415, "Content-Type must be application/json")
        try:
            body = await _read_capped(request, cfg.max_body_size)
        except (web.RequestPayloadError, HttpProcessingError):
            cfg.rejected += 1
            return _reject(400, "unreadable body (bad encoding)")
        if body is None:
            cfg.rejected += 1
            return _reject(413, f"body larger than {cfg.max_body_size} bytes")
        try:
            notification = verify_and_parse(
                request.headers,
                body,
                verifier=cfg.verifier,
                kind=kind,
                method=request.method,
                path=request.rel_url.raw_path,
            )
        except WebhookVerificationError as exc:
            cfg.rejected += 1
            log.warning("rejected %s notification: %s", kind, exc.message)
            return _reject(401, "notification signature rejected")
        except NotificationParseError as exc:
            cfg.rejected += 1
            log.warning("rejected %s notification: %s", kind, exc.message)
            return _reject(400, "invalid notification body")
        except Exception:
            # A plugged-in verifier failed on hostile input: still the sender's fault.
            cfg.rejected += 1
            log.exception("notification verifier raised; answering 401")
            return _reject(401, "notification signature rejected")
        agent = notification.agent_key
        keys = (
            f"request:{agent}:{notification.request_id}",
            f"trx:{agent}:{kind}:{notification.transaction_id}:{notification.status}",
        )
        while True:
            try:
                claimed = await cfg.dedup_store.claim(keys, cfg.dedup_ttl)
            except Exception:
                log.exception("de-duplication store failed; answering 503 so DOKU retries")
                return _reject(503, "temporarily unavailable; please retry")
            if claimed:
                break
            running = next((cfg.inflight[k] for k in keys if k in cfg.inflight), None)
            # A copy that arrives while the first is still being handled waits for its
            # outcome: if that fails, this copy is handled instead of being lost.
            if running is None or await asyncio.shield(running):
                cfg.duplicates += 1
                return _ack(notification.transaction_id, "01", "Already processed")
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        for key in keys:
            cfg.inflight[key] = outcome
        try:
            response = await _hand_over(request, cfg, kind, notification, keys)
            outcome.set_result(response.status == 200)
            return response
        except BaseException:
            outcome.set_result(False)
            raise
        finally:
            for key in keys:
                if cfg.inflight.get(key) is outcome:
                    del cfg.inflight[key]

    return handle


async def _hand_over(
    request: web.Request,
    cfg: WebhookConfig,
    kind: NotificationKind,
    notification: Notification,
    keys: tuple[str, ...],
) -> web.Response:
    """Run (or schedule) the user's callback; release the keys when it did not succeed."""
    callback = _callback_for(cfg, notification)
    if callback is None:
        log.warning("no handler registered for %s notifications; acknowledged", kind)
    elif cfg.ack_first:
        tasks = request.app[BACKGROUND_TASKS]
        task = asyncio.create_task(_run_detached(callback, notification))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    else:
        try:
            await callback(notification)
        except asyncio.CancelledError:
            # Cancelled mid-way (client gone, shutdown): DOKU's retry must be handled.
            await asyncio.shield(cfg.dedup_store.release(keys))
            raise
        except Exception:
            await cfg.dedup_store.release(keys)
            log.exception(
                "%s notification handler failed for %s; answering 500 so DOKU retries",
                kind,
                notification.transaction_id,
            )
            return _reject(500, "handler failed; please retry")
    cfg.processed += 1
    return _ack(notification.transaction_id, "00", "Successfully processed")


async def _run_detached(callback: NotificationHandler, notification: Notification) -> None:
    try:
        await callback(notification)
    except Exception:
        log.exception(
            "%s notification handler failed for %s (already acknowledged: reconcile it with "
            "check status)",
            notification.kind,
            notification.transaction_id,
        )


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    tasks: set[asyncio.Task[None]] = set()
    app[BACKGROUND_TASKS] = tasks
    yield
    if tasks:
        pending = set(tasks)
        _, still = await asyncio.wait(pending, timeout=app[WEBHOOK_CONFIG].drain_timeout)
        for task in still:
            task.cancel()
        for task in still:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def create_webhook_app(
    *,
    verifier: NotificationVerifier | None = None,
    agent_key: str | None = None,
    encryption_keys: str | Sequence[str] | None = None,
    on_unpaid: UnpaidHandler | None = None,
    on_refund: RefundHandler | None = None,
    on_notification: NotificationHandler | None = None,
    unpaid_path: str = "/kirim/unpaid",
    refund_path: str = "/kirim/refund",
    ack_first: bool = False,
    dedup_store: DedupStore | None = None,
    dedup_ttl: float = DEFAULT_TTL,
    max_body_size: int = 64 * 1024,
    drain_timeout: float = 30.0,
    snap_inbound: SnapInbound | None = None,
) -> web.Application:
    """An ``aiohttp`` application receiving Kirim DOKU notifications.

    Mount it with ``app.add_subapp("/doku/", create_webhook_app(...))`` and register the
    resulting URLs (``/doku/kirim/unpaid``, ``/doku/kirim/refund``) with DOKU.

    Args:
        verifier: how notifications are authenticated; default the AES scheme built from
            ``agent_key`` and ``encryption_keys``.
        agent_key: your Kirim DOKU agent key (the ``agentKey`` header must match).
        encryption_keys: the 16-character encryption key, or several during a rotation.
        on_unpaid: ``async`` callback for Unpaid notifications.
        on_refund: ``async`` callback for Refund notifications.
        on_notification: ``async`` callback for either, when the specific one is not set.
        unpaid_path: route of Unpaid notifications inside the app.
        refund_path: route of Refund notifications inside the app.
        ack_first: acknowledge at once and run the callback as a tracked background task
            (drained on shutdown); by default the acknowledgement waits for the callback, so a
            failing callback answers 500 and DOKU retries.
        dedup_store: where handled notifications are remembered; default in memory.
        dedup_ttl: how long to remember them (48 hours by default).
        max_body_size: larger bodies get 413.
        drain_timeout: how long shutdown waits for ``ack_first`` callbacks.
        snap_inbound: adds the SNAP token route DOKU calls before SNAP-style notifications
            (``POST /access-token/b2b`` by default, see :class:`SnapInbound`); pair it with
            ``verifier=snap_inbound.notification_verifier(...)``.
    """
    if verifier is None:
        if agent_key is None or encryption_keys is None:
            raise ConfigurationError("give a verifier, or agent_key and encryption_keys")
        verifier = AesSignatureVerifier.single(agent_key, encryption_keys)
    if on_unpaid is None and on_refund is None and on_notification is None:
        raise ConfigurationError("register at least one of on_unpaid, on_refund, on_notification")
    app = web.Application()
    app[WEBHOOK_CONFIG] = WebhookConfig(
        verifier=verifier,
        on_unpaid=on_unpaid,
        on_refund=on_refund,
        on_notification=on_notification,
        ack_first=ack_first,
        dedup_store=dedup_store if dedup_store is not None else MemoryDedupStore(),
        dedup_ttl=dedup_ttl,
        max_body_size=max_body_size,
        drain_timeout=drain_timeout,
    )
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_route("*", unpaid_path, _handler("unpaid"))
    app.router.add_route("*", refund_path, _handler("refund"))
    if snap_inbound is not None:
        app.router.add_route("*", snap_inbound.path, snap_inbound.handle)
    return app
