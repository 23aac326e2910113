"""Receiving Kirim DOKU notifications: verification (framework-free) and an aiohttp sub-app.

A notification is a trigger, not the truth: its legacy signature does not cover the body. In
confirm mode (recommended) the app asks check status and hands over DOKU's answer::

    from aiohttp import web
    from doku_async.webhooks import ConfirmedNotification, create_webhook_app

    async def on_confirmed(c: ConfirmedNotification) -> None:
        ...  # act on c.confirmed_status ("00" success, "06" failed, "04" refunded...)

    app = web.Application()
    app.add_subapp("/doku/", create_webhook_app(
        agent_key="A41418", encryption_keys="627054fevj1sutvs",
        confirm_with=doku,  # a DokuClient
        reference_lookup=partner_reference_for,  # async: referenceNo -> partnerReferenceNo
        on_confirmed=on_confirmed))
"""

from ..models.notifications import (
    Notification,
    NotificationStatus,
    RefundNotification,
    UnpaidNotification,
    parse_process_date,
)
from ._app import (
    BACKGROUND_TASKS,
    WEBHOOK_CONFIG,
    WebhookConfig,
    WebhookSettings,
    WebhookStats,
    create_webhook_app,
)
from ._confirm import (
    ConfirmedNotification,
    ConfirmFunction,
    PartnerReferenceField,
    ReferenceLookup,
)
from ._dedup import BodyBindingStore, DedupStore, MemoryDedupStore, SharedDedupStore
from ._follow import FollowArguments, PayoutRecord, follow_journal
from ._network import NetworkAllowList
from ._snap_inbound import (
    SnapInbound,
    SnapNotificationVerifier,
    SnapSignatureMode,
    SnapTokenRequestError,
    SnapTokenStore,
)
from ._verify import (
    KIRIM_REQUEST_ID_PATTERN,
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
    "KIRIM_REQUEST_ID_PATTERN",
    "WEBHOOK_CONFIG",
    "AesSignatureVerifier",
    "BodyBindingStore",
    "ConfirmFunction",
    "ConfirmedNotification",
    "DedupStore",
    "FollowArguments",
    "MemoryDedupStore",
    "NetworkAllowList",
    "Notification",
    "NotificationParseError",
    "NotificationRequestVerifier",
    "NotificationStatus",
    "NotificationVerifier",
    "PartnerReferenceField",
    "PayoutRecord",
    "ReferenceLookup",
    "RefundNotification",
    "SharedDedupStore",
    "SnapInbound",
    "SnapNotificationVerifier",
    "SnapSignatureMode",
    "SnapTokenRequestError",
    "SnapTokenStore",
    "UnpaidNotification",
    "WebhookConfig",
    "WebhookSettings",
    "WebhookStats",
    "WebhookVerificationError",
    "create_webhook_app",
    "follow_journal",
    "parse_notification",
    "parse_process_date",
    "sign_kirim_notification",
    "verify_and_parse",
]
