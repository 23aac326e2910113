"""The aiohttp sub-app that receives Kirim DOKU notifications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .._client import DokuClient
from .._environ import webhook_keys_from_env
from .._exceptions import ConfigurationError
from ..models.notifications import Notification, RefundNotification, UnpaidNotification
from ._confirm import (
    ConfirmedNotification,
    Confirmer,
    ConfirmFunction,
    PartnerReferenceField,
    ReferenceLookup,
    Refusal,
    confirmer_for,
)
from ._dedup import (
    DEFAULT_TTL,
    DedupStore,
    MemoryDedupStore,
    bind_body,
    body_digest,
    claim_delivery,
    complete_quietly,
    release_quietly,
)
from ._http import ack, json_response, read_capped, reject
from ._network import NetworkAllowList, NetworkSpec
from ._snap_inbound import SnapInbound
from ._verify import (
    DEFAULT,
    AesSignatureVerifier,
    NotificationKind,
    NotificationParseError,
    NotificationVerifier,
    WebhookVerificationError,
    _Default,
    verify_and_parse,
)

__all__ = [
    "BACKGROUND_TASKS",
    "WEBHOOK_CONFIG",
    "WebhookConfig",
    "WebhookSettings",
    "WebhookStats",
    "create_webhook_app",
]

log = logging.getLogger("doku_async.webhooks")

UnpaidHandler = Callable[[UnpaidNotification], Awaitable[object]]
RefundHandler = Callable[[RefundNotification], Awaitable[object]]
NotificationHandler = Callable[[Notification], Awaitable[object]]
ConfirmedHandler = Callable[[ConfirmedNotification], Awaitable[object]]


class _Delivered(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def transaction_id(self) -> str: ...


_T = TypeVar("_T", bound=_Delivered)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """How a webhook app behaves: fixed when the app is created."""

    verifier: NotificationVerifier
    on_unpaid: UnpaidHandler | None
    on_refund: RefundHandler | None
    on_notification: NotificationHandler | None
    ack_first: bool
    dedup_store: DedupStore
    dedup_ttl: float
    max_body_size: int
    drain_timeout: float
    confirmer: Confirmer | None = None
    """Confirm mode: how outcomes are confirmed with check status (``None``: legacy mode)."""
    on_confirmed: ConfirmedHandler | None = None
    network: NetworkAllowList | None = None
    """The source allow-list, if any."""


@dataclass(slots=True)
class WebhookStats:
    """What a webhook app has seen since it started."""

    processed: int = 0
    duplicates: int = 0
    rejected: int = 0
    unconfirmed: int = 0
    """Confirm mode: notifications not handed over (not found, mismatch, check status down)."""
    disagreements: int = 0
    """Confirm mode: handed over with a claimed status DOKU contradicted."""


@dataclass(slots=True)
class WebhookConfig:
    """A webhook app's settings, its counters and the notifications in flight; stored under
    :data:`WEBHOOK_CONFIG`. The counters read as attributes too (``config.processed``)."""

    settings: WebhookSettings
    stats: WebhookStats = field(default_factory=WebhookStats)
    inflight: dict[str, asyncio.Future[bool]] = field(default_factory=dict)

    @property
    def processed(self) -> int:
        """Notifications handed over (or acknowledged in ``ack_first`` mode)."""
        return self.stats.processed

    @property
    def duplicates(self) -> int:
        """Copies answered "already processed"."""
        return self.stats.duplicates

    @property
    def rejected(self) -> int:
        """Requests refused (4xx)."""
        return self.stats.rejected

    @property
    def unconfirmed(self) -> int:
        """Confirm mode: notifications not handed over."""
        return self.stats.unconfirmed

    @property
    def disagreements(self) -> int:
        """Confirm mode: handed over although the body's claim disagreed with DOKU."""
        return self.stats.disagreements


WEBHOOK_CONFIG = web.AppKey("doku_webhook_config", WebhookConfig)
"""The app's :class:`WebhookConfig` (also its counters: processed, duplicates, rejected)."""
BACKGROUND_TASKS = web.AppKey("doku_webhook_tasks", set[asyncio.Task[None]])
"""Callbacks still running in ``ack_first`` mode; drained on shutdown."""


def _callback_for(cfg: WebhookConfig, notification: Notification) -> NotificationHandler | None:
    specific: NotificationHandler | None = (
        cfg.settings.on_unpaid  # type: ignore[assignment]
        if isinstance(notification, UnpaidNotification)
        else cfg.settings.on_refund
    )
    return specific if specific is not None else cfg.settings.on_notification


async def _claim(cfg: WebhookConfig, keys: Sequence[str]) -> bool | None:
    """Claim ``keys``: ``True`` claimed, ``False`` already handled, ``None`` answer 503
    (see :func:`claim_delivery`)."""
    settings = cfg.settings
    return await claim_delivery(settings.dedup_store, keys, settings.dedup_ttl, cfg.inflight)


_KEYS_HINT = (
    " (if every notification is rejected, check agent_key and encryption_keys, or "
    "DOKU_AGENT_KEY and DOKU_ENCRYPTION_KEYS, against DOKU's)"
)


@web.middleware
async def _source_guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Refuse (403) a request whose source is outside the allow-list, before anything else."""
    cfg = request.app[WEBHOOK_CONFIG]
    guard = cfg.settings.network
    if guard is not None and not guard.allows(
        request.remote, request.headers.getall(guard.header, [])
    ):
        cfg.stats.rejected += 1
        log.warning(
            "refused a request from %s: outside allowed_networks (behind a proxy? see the "
            "allowed_networks and trusted_proxies settings)",
            request.remote,
        )
        return reject(403, "source not allowed")
    return await handler(request)


def _handler(kind: NotificationKind) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        cfg = request.app[WEBHOOK_CONFIG]
        if request.method != "POST":
            cfg.stats.rejected += 1
            return json_response(
                405,
                {"status": False, "responseCode": "405", "responseMessage": "use POST"},
                headers={"Allow": "POST"},
            )
        if request.content_type != "application/json":
            cfg.stats.rejected += 1
            return reject(415, "Content-Type must be application/json")
        try:
            body = await read_capped(request, cfg.settings.max_body_size)
        except (web.RequestPayloadError, HttpProcessingError):
            cfg.stats.rejected += 1
            return reject(400, "unreadable body (bad encoding)")
        if body is None:
            cfg.stats.rejected += 1
            return reject(413, f"body larger than {cfg.settings.max_body_size} bytes")
        try:
            notification = verify_and_parse(
                request.headers,
                body,
                verifier=cfg.settings.verifier,
                kind=kind,
                method=request.method,
                path=request.rel_url.raw_path,
            )
        except WebhookVerificationError as exc:
            cfg.stats.rejected += 1
            log.warning("rejected %s notification: %s%s", kind, exc.message, _KEYS_HINT)
            return reject(401, "notification signature rejected")
        except NotificationParseError as exc:
            cfg.stats.rejected += 1
            log.warning("rejected %s notification: %s", kind, exc.message)
            return reject(400, "invalid notification body")
        except Exception:
            # A plugged-in verifier failed on hostile input: still the sender's fault.
            cfg.stats.rejected += 1
            log.exception("notification verifier raised; answering 401")
            return reject(401, "notification signature rejected")
        agent = notification.agent_key
        keys = [
            f"request:{agent}:{notification.request_id}",
            f"trx:{agent}:{kind}:{notification.transaction_id}:{notification.status}",
        ]
        if notification.request_id:
            bound = await bind_body(
                cfg.settings.dedup_store,
                f"body:{agent}:{notification.request_id}",
                body_digest(kind, notification),
                cfg.settings.dedup_ttl,
            )
            if bound is None:
                return reject(503, "temporarily unavailable; please retry")
            if not bound:
                cfg.stats.rejected += 1
                log.warning("refused a replayed requestId with a different body")
                return reject(409, "requestId already used with a different body")
        claimed = await _claim(cfg, keys)
        if claimed is None:
            return reject(503, "temporarily unavailable; please retry")
        if not claimed:
            cfg.stats.duplicates += 1
            return ack(notification.transaction_id, "01", "Already processed")
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        held = list(keys)  # every key this delivery registered as in flight
        for key in keys:
            cfg.inflight[key] = outcome
        try:
            if cfg.settings.confirmer is None:
                response = await _hand_over(request, cfg, kind, notification, keys)
            else:
                response = await _confirm_and_hand_over(
                    request, cfg, cfg.settings.confirmer, notification, keys, outcome, held
                )
            if response.status == 200:
                await complete_quietly(cfg.settings.dedup_store, held, cfg.settings.dedup_ttl)
            outcome.set_result(response.status == 200)
            return response
        except BaseException:
            outcome.set_result(False)
            # Whatever failed, DOKU's retry must be handled (a no-op for keys already released).
            await asyncio.shield(release_quietly(cfg.settings.dedup_store, held))
            raise
        finally:
            for key in held:
                if cfg.inflight.get(key) is outcome:
                    del cfg.inflight[key]

    return handle


async def _hand_over(
    request: web.Request,
    cfg: WebhookConfig,
    kind: NotificationKind,
    notification: Notification,
    keys: Sequence[str],
) -> web.Response:
    """Run (or schedule) the user's callback; release the keys when it did not succeed."""
    callback = _callback_for(cfg, notification)
    if callback is None:
        log.warning("no handler registered for %s notifications; acknowledged", kind)
    else:
        failed = await _run_callback(request, cfg, callback, notification, keys)
        if failed is not None:
            return failed
    cfg.stats.processed += 1
    return ack(notification.transaction_id, "00", "Successfully processed")


async def _run_callback(
    request: web.Request,
    cfg: WebhookConfig,
    callback: Callable[[_T], Awaitable[object]],
    item: _T,
    keys: Sequence[str],
) -> web.Response | None:
    """Run (or, in ``ack_first`` mode, schedule) ``callback(item)``; the 500 answer if it
    failed, after releasing ``keys`` so DOKU's retry is handled."""
    if cfg.settings.ack_first:
        tasks = request.app[BACKGROUND_TASKS]
        task = asyncio.create_task(_run_detached(callback, item))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return None
    try:
        await callback(item)
    except asyncio.CancelledError:
        # Cancelled mid-way (client gone, shutdown): DOKU's retry must be handled.
        await asyncio.shield(release_quietly(cfg.settings.dedup_store, keys))
        raise
    except Exception:
        await release_quietly(cfg.settings.dedup_store, keys)
        log.exception(
            "%s notification handler failed for %s; answering 500 so DOKU retries",
            item.kind,
            item.transaction_id,
        )
        return reject(500, "handler failed; please retry")
    return None


async def _confirm_and_hand_over(
    request: web.Request,
    cfg: WebhookConfig,
    confirmer: Confirmer,
    notification: Notification,
    keys: Sequence[str],
    outcome: asyncio.Future[bool],
    held: list[str],
) -> web.Response:
    """Confirm mode: ask check status, then hand the confirmed outcome to ``on_confirmed``.

    Nothing reaches user code unconfirmed. De-duplication: besides the delivery's own keys,
    each (transaction, confirmed status) is handed over once; when the body's claim disagrees
    with DOKU, the (transaction, claimed status) key is released afterwards, so a forged claim
    sent early cannot make DOKU's genuine notification look like a duplicate.
    """
    claim_key = keys[1]
    try:
        result = await confirmer.confirm(notification)
        if isinstance(result, Refusal):
            # DOKU's retry (if genuine) is handled afresh
            await release_quietly(cfg.settings.dedup_store, keys)
            cfg.stats.unconfirmed += 1
            return reject(result.status, result.message)
        confirmed_key = (
            f"confirmed:{notification.agent_key}:{notification.transaction_id}:"
            f"{result.confirmed_status}"
        )
        claimed = await _claim(cfg, [confirmed_key])
    except asyncio.CancelledError:
        # Cancelled mid-way (client gone, shutdown): DOKU's retry must be handled.
        await asyncio.shield(release_quietly(cfg.settings.dedup_store, keys))
        raise
    if claimed is None:
        await release_quietly(cfg.settings.dedup_store, keys)
        return reject(503, "temporarily unavailable; please retry")
    if result.disagrees:
        cfg.stats.disagreements += 1
    if not claimed:
        if result.disagrees:
            await release_quietly(cfg.settings.dedup_store, [claim_key])
        cfg.stats.duplicates += 1
        return ack(notification.transaction_id, "01", "Already processed")
    cfg.inflight[confirmed_key] = outcome
    held.append(confirmed_key)
    all_keys = [*keys, confirmed_key]
    if cfg.settings.on_confirmed is not None:
        failed = await _run_callback(request, cfg, cfg.settings.on_confirmed, result, all_keys)
        if failed is not None:
            return failed
    if result.disagrees:
        await release_quietly(cfg.settings.dedup_store, [claim_key])
    cfg.stats.processed += 1
    return ack(notification.transaction_id, "00", "Successfully processed")


async def _run_detached(callback: Callable[[_T], Awaitable[object]], item: _T) -> None:
    try:
        await callback(item)
    except Exception:
        log.exception(
            "%s notification handler failed for %s (already acknowledged: reconcile it with "
            "check status)",
            item.kind,
            item.transaction_id,
        )


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    tasks: set[asyncio.Task[None]] = set()
    app[BACKGROUND_TASKS] = tasks
    yield
    if tasks:
        pending = set(tasks)
        _, still = await asyncio.wait(pending, timeout=app[WEBHOOK_CONFIG].settings.drain_timeout)
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
    confirm_with: DokuClient | ConfirmFunction | None = None,
    on_confirmed: ConfirmedHandler | None = None,
    reference_lookup: ReferenceLookup | None = None,
    partner_reference_field: PartnerReferenceField | None = None,
    confirm_timeout: float = 20.0,
    request_id_pattern: str | re.Pattern[str] | _Default | None = DEFAULT,
    allowed_networks: Iterable[NetworkSpec] | None = None,
    trusted_proxies: Iterable[NetworkSpec] = (),
    proxy_header: str = "X-Forwarded-For",
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

    **Confirm mode (recommended)**: give ``confirm_with`` and ``on_confirmed``. A notification
    is then only a trigger: after its signature checks out, the app asks DOKU's check status
    and hands ``on_confirmed`` a :class:`ConfirmedNotification` carrying DOKU's status, never
    the body's claim. Check status unreachable (connection error, timeout, 5xx, 429): 503, so
    DOKU retries, and user code is not called. Transaction unknown (to your
    ``reference_lookup``, or to DOKU: ``07`` / ``404xx01``): 404, not acknowledged (DOKU's
    retries come back, bounded by its schedule; a forgery gets nothing). DOKU's answer naming
    another transaction: 409. None of these reach user code. In legacy mode (``on_unpaid``,
    ``on_refund``, ``on_notification``) the body's status, which the signature does not cover,
    is handed over as it came: a warning is logged when such an app is created.

    Args:
        verifier: how notifications are authenticated; default the AES scheme built from
            ``agent_key`` and ``encryption_keys``.
        agent_key: your Kirim DOKU agent key (the ``agentKey`` header must match); default
            the ``DOKU_AGENT_KEY`` environment variable.
        encryption_keys: the 16-character encryption key, or several during a rotation;
            default ``DOKU_ENCRYPTION_KEYS`` (comma-separated). A missing one raises
            :class:`~doku_async.ConfigurationError` naming the variable.
        on_unpaid: legacy mode: ``async`` callback for Unpaid notifications, unconfirmed.
        on_refund: legacy mode: ``async`` callback for Refund notifications, unconfirmed.
        on_notification: legacy mode: ``async`` callback for either, when the specific one is
            not set.
        confirm_with: confirm mode: a :class:`~doku_async.DokuClient` (the app calls
            ``kirim.check_status`` with the partner reference found through
            ``reference_lookup`` or ``partner_reference_field``, and DOKU's ``referenceNo``),
            or ``async confirm(transaction_id) -> CheckStatusResponse | None`` doing the
            mapping and the call itself (``None``: the transaction is unknown to you).
        on_confirmed: confirm mode: ``async`` callback receiving each
            :class:`ConfirmedNotification` (Unpaid and Refund alike; ``.kind`` tells).
        reference_lookup: with a ``DokuClient``: ``async lookup(reference_no) ->
            partner_reference_no | None`` from your own records (``reference_no`` is the
            notification's ``transactionId``, the ``referenceNo`` of your transfer's answer).
            Required for Refund notifications, which carry nothing else.
        partner_reference_field: with a ``DokuClient``, when the lookup is absent or returns
            ``None``: an Unpaid body field taken as your ``partnerReferenceNo``. DOKU's page
            describes ``sendTrxId`` in the very words it uses for ``partnerReferenceNo``
            ("Transaction identifier on service consumer system, generated by partner", at most
            64); ``invoiceNumber`` ("Transaction ID that have been updated", example
            ``I088787987870912``) looks like the inquiry ``sessionId`` instead. Neither is
            confirmed, and the body is not signed, so a reference read from it is accepted only
            when DOKU's answer names the notification's ``transactionId`` as its
            ``originalReferenceNo``. Default ``None``: only ``reference_lookup`` is used.
        confirm_timeout: seconds for the whole confirmation; past it the answer is 503.
        request_id_pattern: the ``requestId`` shape the default AES verifier accepts (default
            :data:`KIRIM_REQUEST_ID_PATTERN`: UUID ``8-4-4-4-12`` or DOKU's ``8-4-4-16``);
            other values get 401 before any signature comparison. ``None`` accepts any
            printable text (not recommended). Give it to your own verifier instead when you
            pass ``verifier``.
        allowed_networks: accept requests only from these networks (CIDR text or
            ``ipaddress`` networks); others get 403 before anything is read. Default: any.
        trusted_proxies: peers whose ``proxy_header`` is believed (your reverse proxies); from
            any other peer the header is ignored.
        proxy_header: the header your trusted proxies append the client address to.
        unpaid_path: route of Unpaid notifications inside the app.
        refund_path: route of Refund notifications inside the app.
        ack_first: acknowledge at once and run the callback as a tracked background task
            (drained on shutdown); by default the acknowledgement waits for the callback, so a
            failing callback answers 500 and DOKU retries. In confirm mode the confirmation
            still comes first.
        dedup_store: where handled notifications are remembered; default in memory.
        dedup_ttl: how long to remember them (48 hours by default; positive and finite).
        max_body_size: larger bodies get 413.
        drain_timeout: how long shutdown waits for ``ack_first`` callbacks.
        snap_inbound: adds the SNAP token route DOKU calls before SNAP-style notifications
            (``POST /access-token/b2b`` by default, see :class:`SnapInbound`); pair it with
            ``verifier=snap_inbound.notification_verifier(...)``.
    """
    if not isinstance(dedup_ttl, int | float) or not 0 < dedup_ttl < math.inf:
        raise ConfigurationError("dedup_ttl: give a positive, finite number of seconds")
    if verifier is None:
        agent_key, encryption_keys = webhook_keys_from_env(
            os.environ, agent_key=agent_key, encryption_keys=encryption_keys
        )
        verifier = AesSignatureVerifier.single(
            agent_key, encryption_keys, request_id_pattern=request_id_pattern
        )
    elif not isinstance(request_id_pattern, _Default):
        raise ConfigurationError(
            "request_id_pattern applies to the default verifier; give it to your verifier"
        )
    confirmer = confirmer_for(
        confirm_with,
        on_confirmed=on_confirmed,
        legacy=(on_unpaid, on_refund, on_notification),
        reference_lookup=reference_lookup,
        partner_reference_field=partner_reference_field,
        timeout=confirm_timeout,
    )
    if confirmer is None:
        log.warning(
            "webhook app in legacy mode: notifications are handed over unconfirmed, and the "
            "legacy signature does not cover their body; pass confirm_with= and on_confirmed= "
            "(recommended)"
        )
    network = (
        None
        if allowed_networks is None
        else NetworkAllowList(
            allowed_networks, trusted_proxies=trusted_proxies, header=proxy_header
        )
    )
    app = web.Application(middlewares=[_source_guard] if network is not None else [])
    app[WEBHOOK_CONFIG] = WebhookConfig(
        WebhookSettings(
            verifier=verifier,
            on_unpaid=on_unpaid,
            on_refund=on_refund,
            on_notification=on_notification,
            ack_first=ack_first,
            dedup_store=dedup_store if dedup_store is not None else MemoryDedupStore(),
            dedup_ttl=dedup_ttl,
            max_body_size=max_body_size,
            drain_timeout=drain_timeout,
            confirmer=confirmer,
            on_confirmed=on_confirmed,
            network=network,
        )
    )
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_route("*", unpaid_path, _handler("unpaid"))
    app.router.add_route("*", refund_path, _handler("refund"))
    if snap_inbound is not None:
        app.router.add_route("*", snap_inbound.path, snap_inbound.handle)
    return app
