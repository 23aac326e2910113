"""Receiving Kirim DOKU notifications: verification (framework-free) and an aiohttp sub-app.

::

    from aiohttp import web
    from doku_async.webhooks import create_webhook_app

    async def on_unpaid(n):  # an UnpaidNotification
        ...

    app = web.Application()
    app.add_subapp("/doku/", create_webhook_app(
        agent_key="A41418", encryption_keys="627054fevj1sutvs", on_unpaid=on_unpaid))
"""

from ..models.notifications import (
    Notification,
    NotificationStatus,
    RefundNotification,
    UnpaidNotification,
    parse_process_date,
)
from ._app import BACKGROUND_TASKS, WEBHOOK_CONFIG, WebhookConfig, create_webhook_app
from ._dedup import DedupStore, MemoryDedupStore
from ._snap_inbound import (
    SnapInbound,
    SnapNotificationVerifier,
    SnapSignatureMode,
    SnapTokenRequestError,
    SnapTokenStore,
)
from ._verify import (
    AesSignatureVerifier,
    NotificationParseError,
    NotificationRequestVerifier,
    NotificationVerifier,
    WebhookVerificationError,
    parse_notification,
    sign_kirim_notification,
    verify_and_parse,
)

__all__ = [
    "BACKGROUND_TASKS",
    "WEBHOOK_CONFIG",
    "AesSignatureVerifier",
    "DedupStore",
    "MemoryDedupStore",
    "Notification",
    "NotificationParseError",
    "NotificationRequestVerifier",
    "NotificationStatus",
    "NotificationVerifier",
    "RefundNotification",
    "SnapInbound",
    "SnapNotificationVerifier",
    "SnapSignatureMode",
    "SnapTokenRequestError",
    "SnapTokenStore",
    "UnpaidNotification",
    "WebhookConfig",
    "WebhookVerificationError",
    "create_webhook_app",
    "parse_notification",
    "parse_process_date",
    "sign_kirim_notification",
    "verify_and_parse",
]
