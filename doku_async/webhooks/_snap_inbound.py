"""SNAP-style inbound calls: DOKU asks the merchant for a token, then signs its notifications.

DOKU's other products already call merchants this way; Kirim DOKU may move to it. None of it is
confirmed for Kirim DOKU, so every point DOKU's pages disagree on is a setting:

1. DOKU calls ``POST <your token URL>`` with ``X-CLIENT-KEY``, ``X-TIMESTAMP`` and
   ``X-SIGNATURE = base64(SHA256withRSA(DOKU's private key, clientId + "|" + X-TIMESTAMP))``
   and the body ``{"grantType":"client_credentials"}``. :class:`SnapInbound` checks it with
   DOKU's public key and answers with a short-lived random token of ours.
2. Notifications then carry ``Authorization: Bearer <that token>``, ``X-TIMESTAMP``,
   ``X-SIGNATURE``, ``X-PARTNER-ID``, ``X-EXTERNAL-ID`` and ``CHANNEL-ID``.
   :class:`SnapNotificationVerifier` checks the token, the timestamp window and the signature:
   SHA256withRSA over ``METHOD:path:lowerhex(sha256(minified body)):X-TIMESTAMP`` (DOKU's
   asymmetric-signature page) or HMAC-SHA512 with the client secret (DOKU's notification page;
   by default the SNAP symmetric string, which also covers the token).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Literal

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .._exceptions import ConfigurationError
from .._signing import (
    HmacKey,
    body_sha256_hex,
    load_public_key,
    snap_inbound_string_to_sign,
    snap_signature,
    verify_snap_inbound_rsa_signature,
    verify_token_signature,
)
from ._verify import WebhookVerificationError

__all__ = [
    "SnapInbound",
    "SnapNotificationVerifier",
    "SnapSignatureMode",
    "SnapTokenRequestError",
    "SnapTokenStore",
]

log = logging.getLogger("doku_async.webhooks")

SnapSignatureMode = Literal["rsa", "hmac"]
"""How a SNAP inbound ``X-SIGNATURE`` is made: ``"rsa"`` (SHA256withRSA, DOKU's key) or
``"hmac"`` (HMAC-SHA512, the client secret)."""

DEFAULT_TOKEN_LIFETIME = 900.0
DEFAULT_TOLERANCE = 300.0
_MAX_HEADER = 512
_MAX_SIGNATURE = 2048  # base64 of an RSA-8192 signature is 1,368 characters
_MAX_TOKEN_BODY = 4096
_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")
_encoder = msgspec.json.Encoder()


# --- helpers ---------------------------------------------------------------------------------


def _get(headers: Mapping[str, str], name: str, limit: int = _MAX_HEADER) -> str | None:
    """A header by case-insensitive name, stripped; ``None`` when absent or blank."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                value = candidate
                break
    if value is None or not value.strip():
        return None
    if len(value) > limit or not value.isprintable():
        raise WebhookVerificationError(f"malformed {name} header")
    return value.strip()


def _require(headers: Mapping[str, str], name: str, limit: int = _MAX_HEADER) -> str:
    value = _get(headers, name, limit)
    if value is None:
        raise WebhookVerificationError(f"missing {name} header")
    return value


def _parse_timestamp(text: str) -> float | None:
    """Epoch seconds of an ``X-TIMESTAMP`` with an explicit offset
    (``2020-12-21T07:56:11.000Z``, ``2020-12-21T14:56:11+07:00``); ``None`` if unreadable."""
    if _TIMESTAMP.fullmatch(text) is None:
        return None
    head, dot, tail = text.partition(".")
    if dot:  # fromisoformat reads at most 6 fractional digits: drop the fraction, keep the zone
        zone = tail.lstrip("0123456789")
        text = head + zone
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError):
        return None


def _check_window(text: str, now: float, tolerance: float) -> None:
    stamp = _parse_timestamp(text)
    if stamp is None:
        raise WebhookVerificationError("malformed X-TIMESTAMP header")
    if abs(now - stamp) > tolerance:
        raise WebhookVerificationError("X-TIMESTAMP outside the accepted window")


def _rsa_public_key(key: str | bytes | rsa.RSAPublicKey, what: str) -> rsa.RSAPublicKey:
    """DOKU's public key: an RSA key object, PEM text, or the bare base64 DER some dashboards
    show."""
    if isinstance(key, rsa.RSAPublicKey):
        return key
    data = key.encode() if isinstance(key, str) else key
    if b"-----BEGIN" in data:
        try:
            return load_public_key(data)
        except ConfigurationError:
            raise ConfigurationError(f"{what}: not a readable RSA public key") from None
    try:
        loaded = serialization.load_der_public_key(
            base64.b64decode(b"".join(data.split()), validate=True)
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigurationError(f"{what}: not a readable RSA public key") from None
    if not isinstance(loaded, rsa.RSAPublicKey):
        raise ConfigurationError(f"{what}: the key is not an RSA key")
    return loaded


def _body_forms(body: bytes) -> list[bytes]:
    """The bytes as sent, then the minified forms DOKU may have hashed: whitespace removed
    (number text kept), and decoded then re-encoded compactly (key order kept)."""
    forms = [body]
    try:
        candidates = (
            msgspec.json.format(body, indent=-1),
            _encoder.encode(msgspec.json.decode(body)),
        )
    except (msgspec.MsgspecError, ValueError, RecursionError, OverflowError):
        return forms
    for form in candidates:
        if form not in forms:
            forms.append(form)
    return forms


# --- the token store -------------------------------------------------------------------------


class SnapTokenStore:
    """The access tokens we issued to DOKU, each with its expiry, in this process's memory.

    Tokens are random and opaque (``secrets.token_urlsafe``); only their SHA-256 is kept, so a
    lookup compares digests, not the secret itself. Expired tokens are purged as new ones are
    issued; ``max_tokens`` bounds memory (the oldest go first). Share one store between the
    token route (:class:`SnapInbound`) and :class:`SnapNotificationVerifier`. Several worker
    processes need sticky routing or one process receiving DOKU's calls: a token issued by one
    process is unknown to the others.
    """

    __slots__ = ("_clock", "_expiry", "_max_tokens")

    def __init__(
        self, *, max_tokens: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_tokens < 1:
            raise ConfigurationError("max_tokens must be at least 1")
        self._expiry: dict[bytes, float] = {}
        self._max_tokens = max_tokens
        self._clock = clock

    def __len__(self) -> int:
        return len(self._expiry)

    def __repr__(self) -> str:
        return f"SnapTokenStore(tokens={len(self._expiry)}, values=***)"

    def _purge(self, now: float) -> None:
        stale: list[bytes] = []
        overflow = len(self._expiry) - self._max_tokens + 1
        for digest, until in self._expiry.items():  # insertion order is expiry order
            if until > now and len(stale) >= overflow:
                break
            stale.append(digest)
        for digest in stale:
            del self._expiry[digest]

    def issue(self, lifetime: float) -> str:
        """A new random token valid for ``lifetime`` seconds."""
        now = self._clock()
        self._purge(now)
        token = secrets.token_urlsafe(32)
        self._expiry[hashlib.sha256(token.encode()).digest()] = now + lifetime
        return token

    def is_live(self, token: str) -> bool:
        """Whether ``token`` was issued here and has not expired."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        until = self._expiry.get(digest)
        if until is None:
            return False
        if until <= self._clock():
            del self._expiry[digest]
            return False
        return True

    def revoke(self, token: str) -> None:
        """Forget ``token`` at once."""
        self._expiry.pop(hashlib.sha256(token.encode("utf-8", "replace")).digest(), None)


# --- the token route -------------------------------------------------------------------------


class SnapTokenRequestError(WebhookVerificationError):
    """DOKU's token request was refused. ``status``, ``response_code`` and
    ``response_message`` are what the SNAP answer carries (see :meth:`answer`); the exception's
    message says why, without any secret."""

    def __init__(self, status: int, response_code: str, response_message: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.response_code = response_code
        self.response_message = response_message

    def answer(self) -> dict[str, object]:
        """The SNAP body to send with :attr:`status`."""
        return {"responseCode": self.response_code, "responseMessage": self.response_message}


def _unauthorized(detail: str, reason: str) -> SnapTokenRequestError:
    return SnapTokenRequestError(401, "4017300", f"Unauthorized. {detail}", reason)


class SnapInbound:
    """The token route DOKU calls before a SNAP notification (``POST /access-token/b2b``).

    Give it to ``create_webhook_app(snap_inbound=...)``. It checks ``X-CLIENT-KEY`` is
    ``client_id``, ``X-TIMESTAMP`` is within ``timestamp_tolerance`` seconds of ``clock()``
    (either way) and ``X-SIGNATURE`` is DOKU's SHA256withRSA over ``clientId|X-TIMESTAMP``
    (checked with ``doku_public_key``, PEM or bare base64 from the dashboard), then answers
    ``2007300`` with a random token valid ``token_lifetime`` seconds, kept in ``tokens``.
    Refusals: 401 ``4017300``; 400 ``4007302`` (missing header or field) or ``4007301``
    (``grantType`` other than ``client_credentials``). Never a 500.

    Args:
        client_id: your client id, the ``X-CLIENT-KEY`` DOKU must send.
        doku_public_key: DOKU's RSA public key.
        tokens: where issued tokens live; share it with :class:`SnapNotificationVerifier`
            (see :meth:`notification_verifier`). Default: a new :class:`SnapTokenStore`.
        token_lifetime: seconds a token stays valid (``expiresIn``).
        timestamp_tolerance: accepted clock difference in seconds, both directions.
        path: the route inside the webhook app.
        clock: wall clock in epoch seconds (for the timestamp window).
    """

    def __init__(
        self,
        *,
        client_id: str,
        doku_public_key: str | bytes | rsa.RSAPublicKey,
        tokens: SnapTokenStore | None = None,
        token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
        timestamp_tolerance: float = DEFAULT_TOLERANCE,
        path: str = "/access-token/b2b",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_id:
            raise ConfigurationError("client_id must not be empty")
        if token_lifetime < 1:
            raise ConfigurationError("token_lifetime must be at least 1 second")
        if timestamp_tolerance < 0:
            raise ConfigurationError("timestamp_tolerance must not be negative")
        if not path.startswith("/"):
            raise ConfigurationError("path must start with '/'")
        self.client_id = client_id
        self._public_key = _rsa_public_key(doku_public_key, "doku_public_key")
        self.tokens = tokens if tokens is not None else SnapTokenStore()
        self.token_lifetime = token_lifetime
        self.timestamp_tolerance = timestamp_tolerance
        self.path = path
        self._clock = clock
        self.issued = 0
        self.rejected = 0

    def __repr__(self) -> str:
        return (
            f"SnapInbound(client_id={self.client_id!r}, path={self.path!r}, "
            f"token_lifetime={self.token_lifetime!r}, tokens={self.tokens!r})"
        )

    def notification_verifier(
        self,
        *,
        signature: SnapSignatureMode = "rsa",
        client_secret: str | bytes | None = None,
        **options: object,
    ) -> SnapNotificationVerifier:
        """A :class:`SnapNotificationVerifier` sharing this route's token store, DOKU's public
        key (``"rsa"``) and timestamp window; ``options`` go to its constructor."""
        options.setdefault("timestamp_tolerance", self.timestamp_tolerance)
        options.setdefault("clock", self._clock)
        return SnapNotificationVerifier(
            tokens=self.tokens,
            signature=signature,
            doku_public_key=self._public_key if signature == "rsa" else None,
            client_secret=client_secret,
            **options,  # type: ignore[arg-type]
        )

    def issue_token(self, headers: Mapping[str, str], body: bytes) -> dict[str, object]:
        """Check one token request (framework-free) and return the SNAP answer's body.

        Raises:
            SnapTokenRequestError: the request is refused; answer ``exc.status`` with
                ``exc.answer()``.
        """
        try:
            client = _get(headers, "X-CLIENT-KEY")
            stamp = _get(headers, "X-TIMESTAMP")
            signature = _get(headers, "X-SIGNATURE", _MAX_SIGNATURE)
        except WebhookVerificationError as exc:
            raise _unauthorized("Invalid Header", exc.message) from None
        if client is None or stamp is None or signature is None:
            found = {"X-CLIENT-KEY": client, "X-TIMESTAMP": stamp, "X-SIGNATURE": signature}
            name = next(key for key, value in found.items() if value is None)
            raise SnapTokenRequestError(
                400, "4007302", f"Invalid Mandatory Field {{{name}}}", f"missing {name}"
            )
        if not hmac.compare_digest(client.encode(), self.client_id.encode()):
            raise _unauthorized("Unknown Client", "unknown X-CLIENT-KEY")
        try:
            _check_window(stamp, self._clock(), self.timestamp_tolerance)
        except WebhookVerificationError as exc:
            raise _unauthorized("Invalid Timestamp", exc.message) from None
        if not verify_token_signature(self._public_key, client, stamp, signature):
            raise _unauthorized("Invalid Signature", "X-SIGNATURE does not verify")
        try:
            payload = msgspec.json.decode(body)
        except (msgspec.MsgspecError, ValueError, RecursionError):
            payload = None
        grant = payload.get("grantType") if isinstance(payload, dict) else None
        if grant is None or grant == "":
            raise SnapTokenRequestError(
                400, "4007302", "Invalid Mandatory Field {grantType}", "missing grantType"
            )
        if grant != "client_credentials":
            raise SnapTokenRequestError(
                400, "4007301", "Invalid Field Format {grantType}", "unsupported grantType"
            )
        token = self.tokens.issue(self.token_lifetime)
        return {
            "responseCode": "2007300",
            "responseMessage": "Successful",
            "accessToken": token,
            "tokenType": "Bearer",
            "expiresIn": int(self.token_lifetime),
            "additionalInfo": "",
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler of the token route (``create_webhook_app`` registers it)."""
        if request.method != "POST":
            self.rejected += 1
            return _snap_json(
                405, {"responseCode": "4057300", "responseMessage": "Method Not Allowed"}
            )
        try:
            body = await _read_small(request)
            if body is None:
                raise SnapTokenRequestError(400, "4007300", "Bad Request", "body too large")
            answer = self.issue_token(request.headers, body)
        except SnapTokenRequestError as exc:
            self.rejected += 1
            log.warning("refused SNAP token request: %s", exc.message)
            return _snap_json(exc.status, exc.answer())
        except (web.RequestPayloadError, HttpProcessingError, asyncio.IncompleteReadError):
            self.rejected += 1
            return _snap_json(400, {"responseCode": "4007300", "responseMessage": "Bad Request"})
        except Exception:
            self.rejected += 1
            log.exception("SNAP token route failed; answering 401")
            return _snap_json(
                401, {"responseCode": "4017300", "responseMessage": "Unauthorized. Error"}
            )
        self.issued += 1
        log.info("issued a SNAP access token to %s", self.client_id)
        return _snap_json(200, answer)


def _snap_json(status: int, payload: dict[str, object]) -> web.Response:
    return web.Response(
        status=status, body=_encoder.encode(payload), content_type="application/json"
    )


async def _read_small(request: web.Request) -> bytes | None:
    """The body, or ``None`` when it is larger than a token request can be."""
    length = request.content_length
    if length is not None and length > _MAX_TOKEN_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_MAX_TOKEN_BODY):
        size += len(chunk)
        if size > _MAX_TOKEN_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


# --- the notification verifier ---------------------------------------------------------------


class SnapNotificationVerifier:
    """Verifies SNAP-style notifications; use it as ``create_webhook_app(verifier=...)``.

    Checks, in order: the ``Authorization: Bearer`` token is live in ``tokens`` (issued by the
    :class:`SnapInbound` route); ``X-TIMESTAMP`` is within ``timestamp_tolerance`` seconds of
    ``clock()`` either way (``...Z`` and ``+07:00`` forms, fractions allowed);
    ``X-PARTNER-ID`` and ``X-EXTERNAL-ID`` are present (and the partner id is one of
    ``partner_ids`` when given); ``X-SIGNATURE`` verifies over the method, the path the
    notification was POSTed to and the body as sent or minified. It returns
    ``(X-EXTERNAL-ID, X-PARTNER-ID)``, so de-duplication keys on ``X-EXTERNAL-ID``.

    Args:
        tokens: the store the token route issues into.
        signature: ``"rsa"``: SHA256withRSA with ``doku_public_key`` over
            ``METHOD:path:lowerhex(sha256(body)):X-TIMESTAMP``. ``"hmac"``: base64
            HMAC-SHA512 with ``client_secret``, over the SNAP symmetric string
            ``METHOD:path:token:lowerhex(sha256(body)):X-TIMESTAMP`` or, with
            ``hmac_covers_token=False``, the same string without the token.
        doku_public_key: DOKU's RSA public key (``"rsa"``).
        client_secret: your client secret (``"hmac"``).
        partner_ids: accepted ``X-PARTNER-ID`` values; ``None`` accepts any.
        hmac_covers_token: whether the HMAC string includes the bearer token.
        timestamp_tolerance: accepted clock difference in seconds, both directions.
        clock: wall clock in epoch seconds.
        path: the signed path when :meth:`verify` is called without one (framework-free use
            with a fixed notification URL).
        path_prefix: prepended to the path the app sees, for a proxy that strips a prefix
            before forwarding (DOKU signs the path it called).
    """

    def __init__(
        self,
        *,
        tokens: SnapTokenStore,
        signature: SnapSignatureMode = "rsa",
        doku_public_key: str | bytes | rsa.RSAPublicKey | None = None,
        client_secret: str | bytes | None = None,
        partner_ids: str | Iterable[str] | None = None,
        hmac_covers_token: bool = True,
        timestamp_tolerance: float = DEFAULT_TOLERANCE,
        clock: Callable[[], float] = time.time,
        path: str | None = None,
        path_prefix: str = "",
    ) -> None:
        self._public_key: rsa.RSAPublicKey | None = None
        self._hmac: HmacKey | None = None
        if signature == "rsa":
            if doku_public_key is None:
                raise ConfigurationError('signature="rsa" needs doku_public_key')
            self._public_key = _rsa_public_key(doku_public_key, "doku_public_key")
        elif signature == "hmac":
            if not client_secret:
                raise ConfigurationError('signature="hmac" needs client_secret')
            self._hmac = HmacKey(client_secret, "sha512")
        else:
            raise ConfigurationError('signature must be "rsa" or "hmac"')
        if timestamp_tolerance < 0:
            raise ConfigurationError("timestamp_tolerance must not be negative")
        self.signature: SnapSignatureMode = signature
        self.tokens = tokens
        if isinstance(partner_ids, str):
            partner_ids = (partner_ids,)
        self._partner_ids = None if partner_ids is None else frozenset(partner_ids)
        self.hmac_covers_token = hmac_covers_token
        self.timestamp_tolerance = timestamp_tolerance
        self._clock = clock
        self.path = path
        self.path_prefix = path_prefix.rstrip("/")

    def __repr__(self) -> str:
        partners = None if self._partner_ids is None else sorted(self._partner_ids)
        return (
            f"SnapNotificationVerifier(signature={self.signature!r}, partner_ids={partners!r}, "
            f"key=***)"
        )

    def verify(self, headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
        """Verify a POST to the fixed ``path`` given to the constructor."""
        if self.path is None:
            raise WebhookVerificationError("no request path to check the signature against")
        return self.verify_request(headers, body, method="POST", path=self.path)

    def verify_request(
        self, headers: Mapping[str, str], body: bytes, *, method: str, path: str
    ) -> tuple[str, str]:
        """Verify one notification sent with ``method`` to ``path`` (no query string).

        Returns ``(X-EXTERNAL-ID, X-PARTNER-ID)``; raises :class:`WebhookVerificationError`.
        """
        authorization = _require(headers, "Authorization")
        stamp = _require(headers, "X-TIMESTAMP")
        signature = _require(headers, "X-SIGNATURE", _MAX_SIGNATURE)
        partner = _require(headers, "X-PARTNER-ID")
        external = _require(headers, "X-EXTERNAL-ID")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise WebhookVerificationError("Authorization is not a bearer token")
        if not self.tokens.is_live(token):
            raise WebhookVerificationError("unknown or expired access token")
        _check_window(stamp, self._clock(), self.timestamp_tolerance)
        if _ID.fullmatch(partner) is None:
            raise WebhookVerificationError("malformed X-PARTNER-ID header")
        if _ID.fullmatch(external) is None:
            raise WebhookVerificationError("malformed X-EXTERNAL-ID header")
        if self._partner_ids is not None and partner not in self._partner_ids:
            raise WebhookVerificationError("unknown X-PARTNER-ID")
        signed_path = self.path_prefix + path
        if not self._signature_ok(method.upper(), signed_path, token, body, stamp, signature):
            raise WebhookVerificationError("X-SIGNATURE does not verify")
        return external, partner

    def _signature_ok(
        self, method: str, path: str, token: str, body: bytes, stamp: str, signature: str
    ) -> bool:
        ok = False
        for form in _body_forms(body):  # every form is tried: timing does not tell which
            digest = body_sha256_hex(form)
            if self._public_key is not None:
                ok |= verify_snap_inbound_rsa_signature(
                    self._public_key, method, path, form, stamp, signature, body_hash_hex=digest
                )
                continue
            assert self._hmac is not None
            if self.hmac_covers_token:
                expected = snap_signature(
                    self._hmac, method, path, token, form, stamp, body_hash_hex=digest
                )
                ok |= hmac.compare_digest(expected.encode(), signature.encode())
            else:
                message = snap_inbound_string_to_sign(method, path, digest, stamp)
                ok |= self._hmac.verify(message, signature)
        return ok
