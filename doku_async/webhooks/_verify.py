"""Framework-free verification and parsing of Kirim DOKU notifications."""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal, Protocol

import msgspec

from .. import _serde
from .._exceptions import ConfigurationError, DokuError, SignatureVerificationError
from .._signing import AesKey, kirim_notification_signature
from ..models.notifications import Notification, RefundNotification, UnpaidNotification

__all__ = [
    "KIRIM_REQUEST_ID_PATTERN",
    "AesSignatureVerifier",
    "NotificationParseError",
    "NotificationRequestVerifier",
    "NotificationVerifier",
    "WebhookVerificationError",
    "parse_notification",
    "sign_kirim_notification",
    "verify_and_parse",
]

NotificationKind = Literal["unpaid", "refund"]

_MAX_HEADER = 512

_HEX = "[0-9a-fA-F]"
KIRIM_REQUEST_ID_PATTERN = (
    f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-(?:{_HEX}{{4}}-{_HEX}{{12}}|{_HEX}{{16}})"
)
"""The ``requestId`` shapes the AES verifier accepts by default: 32 hex digits grouped as a
UUID, ``8-4-4-4-12`` (``3f2c9a4e-1b7d-4c21-9e0f-5a6b7c8d9e0f``), or ``8-4-4-16`` as in DOKU's own
example (``fd53b1e3-9c35-4dfa-a95ca8dbc5695485``, a UUID missing its last dash); either case.
The whole header must match. Pass ``request_id_pattern=`` if your DOKU account sends another
shape, or ``None`` to accept any printable text (not recommended: see the README, "What a
notification proves")."""


class _Default:
    """Marks an argument left at its default."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()
"""Sentinel: "use the default" (``request_id_pattern``)."""


def compile_request_id_pattern(
    pattern: str | re.Pattern[str] | _Default | None,
) -> re.Pattern[str] | None:
    """The compiled ``requestId`` pattern (``DEFAULT``: :data:`KIRIM_REQUEST_ID_PATTERN`)."""
    if isinstance(pattern, _Default):
        pattern = KIRIM_REQUEST_ID_PATTERN
    if pattern is None or isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigurationError(
            f"request_id_pattern is not a valid regular expression: {exc}"
        ) from None


class WebhookVerificationError(SignatureVerificationError):
    """A notification's headers are missing, malformed or do not verify. Answer 401."""


class NotificationParseError(DokuError):
    """A notification's body is not valid JSON of the expected shape. Answer 400."""


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                value = candidate
                break
    if value is None or not value.strip():
        raise WebhookVerificationError(f"missing {name} header")
    if len(value) > _MAX_HEADER or not value.isprintable():
        raise WebhookVerificationError(f"malformed {name} header")
    return value.strip()


class NotificationVerifier(Protocol):
    """Checks a notification's headers (and body, if the scheme covers it).

    Return the ``(request_id, agent_key)`` it authenticated, or raise
    :class:`WebhookVerificationError`. Plug your own when DOKU tells you another scheme.
    """

    def verify(self, headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
        """Authenticate one notification."""
        ...


class NotificationRequestVerifier(NotificationVerifier, Protocol):
    """A verifier whose scheme also covers the request method and path (SNAP inbound).

    :func:`verify_and_parse` (and the webhook app) call :meth:`verify_request` instead of
    ``verify`` when they know the method and path.
    """

    def verify_request(
        self, headers: Mapping[str, str], body: bytes, *, method: str, path: str
    ) -> tuple[str, str]:
        """Authenticate one notification sent with ``method`` to ``path`` (no query string)."""
        ...


class AesSignatureVerifier:
    """The legacy KIRIMDOKU scheme: ``signature = base64(AES-ECB(encryption key,
    agentKey + requestId))``, compared in constant time.

    ``keys`` maps each accepted agent key to its encryption key or keys (several during a
    rotation). The scheme does not cover the body, and ECB lets blocks of captured signatures
    be spliced into valid signatures for new ``requestId`` values: the receiver checks the agent
    key, refuses a ``requestId`` outside ``request_id_pattern`` before any comparison (default
    :data:`KIRIM_REQUEST_ID_PATTERN`; ``None`` accepts any printable text up to 512
    characters), de-duplicates on ``requestId``, and should confirm outcomes with check status
    (``create_webhook_app(confirm_with=...)``).
    """

    def __init__(
        self,
        keys: Mapping[str, str | Sequence[str]],
        *,
        request_id_pattern: str | re.Pattern[str] | _Default | None = DEFAULT,
    ) -> None:
        self._request_id = compile_request_id_pattern(request_id_pattern)
        if not keys:
            raise ConfigurationError("AesSignatureVerifier needs at least one agent key")
        self._keys: dict[str, tuple[AesKey, ...]] = {}
        for agent_key, enc in keys.items():
            encs = (enc,) if isinstance(enc, str) else tuple(enc)
            if not agent_key or not encs:
                raise ConfigurationError("every agent key needs at least one encryption key")
            self._keys[agent_key] = tuple(AesKey(key) for key in encs)  # checks key lengths

    @classmethod
    def single(
        cls,
        agent_key: str,
        encryption_keys: str | Iterable[str],
        *,
        request_id_pattern: str | re.Pattern[str] | _Default | None = DEFAULT,
    ) -> AesSignatureVerifier:
        """One agent key with one encryption key, or several during a rotation."""
        keys = (encryption_keys,) if isinstance(encryption_keys, str) else tuple(encryption_keys)
        return cls({agent_key: keys}, request_id_pattern=request_id_pattern)

    def __repr__(self) -> str:
        return f"AesSignatureVerifier(agent_keys={sorted(self._keys)!r}, encryption_keys=***)"

    def verify(self, headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
        """Check ``requestId`` (its shape first), ``agentKey`` and ``signature`` headers."""
        request_id = _header(headers, "requestId")
        if self._request_id is not None and self._request_id.fullmatch(request_id) is None:
            # Refused before any comparison: spliced from one captured signature, ECB blocks
            # make valid signatures only for requestIds of other lengths or layouts.
            raise WebhookVerificationError("requestId does not have the shape DOKU sends")
        agent_key = _header(headers, "agentKey")
        signature = _header(headers, "signature").encode("utf-8", "replace")
        encs = self._keys.get(agent_key)
        if encs is None:
            raise WebhookVerificationError("unknown agentKey")
        ok = False
        for key in encs:  # every key is tried, so timing does not tell which one matched
            expected = key.signature(agent_key, request_id).encode()
            ok |= hmac.compare_digest(expected, signature)
        if not ok:
            raise WebhookVerificationError("signature does not verify")
        return request_id, agent_key


def parse_notification(body: bytes, kind: NotificationKind | None = None) -> Notification:
    """Decode a notification body. ``kind=None`` tells them apart by their fields
    (an Unpaid notification carries ``transactionStatus``)."""
    if kind is None:
        kind = "unpaid" if b"transactionStatus" in body else "refund"
    model: type[Notification] = UnpaidNotification if kind == "unpaid" else RefundNotification
    try:
        notification: Notification = _serde.decode_answer(model, body)
    except msgspec.ValidationError as exc:
        raise NotificationParseError(f"invalid {kind} notification: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise NotificationParseError(f"{kind} notification body is not valid JSON") from None
    if not notification.transaction_id:
        raise NotificationParseError("transactionId is empty")
    # Set from the verified headers by verify_and_parse, never from the body.
    notification.request_id = ""
    notification.agent_key = ""
    return notification


def verify_and_parse(
    headers: Mapping[str, str],
    body: bytes,
    *,
    verifier: NotificationVerifier,
    kind: NotificationKind | None = None,
    method: str = "POST",
    path: str | None = None,
) -> Notification:
    """Verify a notification's headers, then parse its body.

    Give ``path`` (the request path, no query string) and ``method`` for verifiers that sign
    them (:class:`NotificationRequestVerifier`); other verifiers ignore them.

    Raises:
        WebhookVerificationError: missing, malformed or wrong headers (answer 401).
        NotificationParseError: a body that is not a valid notification (answer 400).
    """
    # getattr, not isinstance: a runtime Protocol check costs more than the AES verification.
    verify_request = None if path is None else getattr(verifier, "verify_request", None)
    if verify_request is not None:
        request_id, agent_key = verify_request(headers, body, method=method, path=path)
    else:
        request_id, agent_key = verifier.verify(headers, body)
    notification = parse_notification(body, kind)
    notification.request_id = request_id
    notification.agent_key = agent_key
    return notification


def sign_kirim_notification(
    *, agent_key: str, encryption_key: str, request_id: str | None = None
) -> dict[str, str]:
    """The headers DOKU would send with a notification (for tests and the simulator)."""
    rid = request_id or str(uuid.uuid4())
    return {
        "requestId": rid,
        "agentKey": agent_key,
        "signature": kirim_notification_signature(agent_key, rid, encryption_key),
        "Content-Type": "application/json",
    }
