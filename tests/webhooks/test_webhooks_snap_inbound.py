"""SNAP-style inbound calls (unconfirmed for Kirim DOKU): DOKU's RSA-signed token request to
our token route, then notifications carrying our token and an RSA or HMAC ``X-SIGNATURE``.

Every signature DOKU would send is made here with ``cryptography``/``hmac`` directly, from the
test's own RSA key pairs, never with the SDK's signing code, so the tests check the SDK against
the formulas and not against itself. The full flow runs over a real aiohttp server on
127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doku_async import ConfigurationError
from doku_async._signing import (
    snap_inbound_rsa_signature,
    snap_inbound_string_to_sign,
    verify_snap_inbound_rsa_signature,
    verify_token_signature,
)
from doku_async.webhooks import (
    AesSignatureVerifier,
    Notification,
    NotificationRequestVerifier,
    SnapInbound,
    SnapNotificationVerifier,
    SnapTokenRequestError,
    SnapTokenStore,
    UnpaidNotification,
    WebhookVerificationError,
    create_webhook_app,
    sign_kirim_notification,
    verify_and_parse,
)

pytestmark = pytest.mark.timeout(30)

CLIENT_ID = "BRN-0001-1700000000001"
CLIENT_SECRET = "SK-snap-inbound-secret-do-not-leak-91c2"
PARTNER = CLIENT_ID
EXTERNAL_ID = "418075533589"
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
TOKEN_PATH = "/doku/access-token/b2b"
UNPAID_PATH = "/doku/kirim/unpaid"
REFUND_PATH = "/doku/kirim/refund"
WIB = timezone(timedelta(hours=7))

TOKEN_ANSWER_KEYS = [
    "responseCode",
    "responseMessage",
    "accessToken",
    "tokenType",
    "expiresIn",
    "additionalInfo",
]

Client = TestClient[web.Request, web.Application]


# --- the test's own keys and an independent signer ------------------------------------------


@cache
def doku_key() -> rsa.RSAPrivateKey:
    """The key pair standing in for DOKU's (generated once per run)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def other_key() -> rsa.RSAPrivateKey:
    """Someone else's key pair."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def rsa_sign(key: rsa.RSAPrivateKey, message: str) -> str:
    """base64(SHA256withRSA, PKCS#1 v1.5), straight from cryptography."""
    return base64.b64encode(
        key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()


def hmac_sign(secret: str, message: str) -> str:
    """base64(HMAC-SHA512), straight from the standard library."""
    mac = hmac.new(secret.encode(), message.encode(), hashlib.sha512).digest()
    return base64.b64encode(mac).decode()


def stamp(epoch: float = NOW, form: str = "z-millis") -> str:
    """``2023-11-14T22:13:20.000Z`` (z-millis), ``...Z`` (z) or ``2023-11-15T05:13:20+07:00``."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    if form == "z-millis":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if form == "z":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.astimezone(WIB).isoformat(timespec="seconds")


def token_headers(
    *,
    key: rsa.RSAPrivateKey | None = None,
    client_id: str = CLIENT_ID,
    timestamp: str | None = None,
    signed_client_id: str | None = None,
) -> dict[str, str]:
    """The headers DOKU sends to our token route."""
    ts = stamp() if timestamp is None else timestamp
    signer = doku_key() if key is None else key
    return {
        "X-CLIENT-KEY": client_id,
        "X-TIMESTAMP": ts,
        "X-SIGNATURE": rsa_sign(signer, f"{signed_client_id or client_id}|{ts}"),
        "Content-Type": "application/json",
    }


def minified_sha256(body: bytes) -> str:
    """lowercase hex sha256 of the compact JSON DOKU hashes (json, not msgspec: independent)."""
    compact = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(compact).hexdigest()


def notification_headers(
    token: str,
    body: bytes,
    *,
    path: str = UNPAID_PATH,
    method: str = "POST",
    timestamp: str | None = None,
    mode: str = "rsa",
    key: rsa.RSAPrivateKey | None = None,
    secret: str = CLIENT_SECRET,
    external_id: str = EXTERNAL_ID,
    partner: str = PARTNER,
) -> dict[str, str]:
    """A SNAP notification's headers, signed over the minified body."""
    ts = stamp() if timestamp is None else timestamp
    digest = minified_sha256(body)
    if mode == "rsa":
        signature = rsa_sign(doku_key() if key is None else key, f"{method}:{path}:{digest}:{ts}")
    elif mode == "hmac":
        signature = hmac_sign(secret, f"{method}:{path}:{token}:{digest}:{ts}")
    else:  # HMAC over the asymmetric string (no token)
        signature = hmac_sign(secret, f"{method}:{path}:{digest}:{ts}")
    return {
        "Authorization": f"Bearer {token}",
        "X-TIMESTAMP": ts,
        "X-SIGNATURE": signature,
        "X-PARTNER-ID": partner,
        "X-EXTERNAL-ID": external_id,
        "CHANNEL-ID": "H2H",
        "Content-Type": "application/json",
    }


def unpaid_body(transaction_id: str = "DK0018353", *, pretty: bool = False) -> bytes:
    body = {
        "sendTrxId": "text",
        "transactionId": transaction_id,
        "invoiceNumber": "I088787987870912",
        "transactionStatus": "50",
        "activityCode": "200",
        "message": "Transaction is Success / Berhasil",
        "processDate": "2024-01-12'T'07:30:12",
        "createdTime": "1699520040340",
    }
    if pretty:
        return json.dumps(body, indent=2).encode()
    return json.dumps(body, separators=(",", ":")).encode()


class Clocks:
    """A wall clock and a monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.wall = NOW
        self.mono = 1000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono


def make_inbound(clocks: Clocks, **kwargs: Any) -> SnapInbound:
    kwargs.setdefault("client_id", CLIENT_ID)
    kwargs.setdefault("doku_public_key", public_pem(doku_key()))
    kwargs.setdefault("tokens", SnapTokenStore(clock=clocks.monotonic))
    kwargs.setdefault("clock", clocks.time)
    return SnapInbound(**kwargs)


# --- known-answer vectors: the pure crypto ---------------------------------------------------

# The Kirim DOKU body of docs/doku-protocol.md and its documented sha256.
KAT_BODY = (
    b'{"partnerReferenceNo":"hsjkans284b2he54","customerNumber":"628115678890",'
    b'"beneficiaryAccountNumber":"8377388292","beneficiaryBankCode":"014",'
    b'"amount":{"value":"200000.00","currency":"IDR"},'
    b'"additionalInfo":{"beneficiaryAccountName":"FHILEA HERMANUS","remark":"Remark test"}}'
)
KAT_SHA256 = "744452bbca0209c99af9e5253c131f83e9409c4d13e95521b51bd8c45165073c"
KAT_TS = "2024-01-12T14:30:00+07:00"
KAT_PATH = "/v1.0/emoney/transfer-bank"
KAT_SECRET = "SK-TEST-SECRET"
KAT_TOKEN = "eyJhbGciOiJSUzI1NiJ9.test.token"
KAT_HMAC = (
    "YDYcvA5ixP7xYrQbThezrD0OAgd+FPuEFAuxZ0twjK8b9fgGOnKMOe1jU0moECD8Hi/7NoC36EsFMtNyTfgAhg=="
)


def test_inbound_string_to_sign_known_answer() -> None:
    assert hashlib.sha256(KAT_BODY).hexdigest() == KAT_SHA256
    assert snap_inbound_string_to_sign("POST", KAT_PATH, KAT_SHA256, KAT_TS) == (
        b"POST:/v1.0/emoney/transfer-bank:"
        b"744452bbca0209c99af9e5253c131f83e9409c4d13e95521b51bd8c45165073c:"
        b"2024-01-12T14:30:00+07:00"
    )


def test_inbound_rsa_signature_matches_an_independent_signer() -> None:
    expected = rsa_sign(doku_key(), f"POST:{KAT_PATH}:{KAT_SHA256}:{KAT_TS}")
    # PKCS#1 v1.5 is deterministic: the SDK's signer gives the very same bytes.
    assert snap_inbound_rsa_signature(doku_key(), "POST", KAT_PATH, KAT_BODY, KAT_TS) == expected
    public = doku_key().public_key()
    assert verify_snap_inbound_rsa_signature(public, "POST", KAT_PATH, KAT_BODY, KAT_TS, expected)
    assert not verify_snap_inbound_rsa_signature(
        other_key().public_key(), "POST", KAT_PATH, KAT_BODY, KAT_TS, expected
    )
    assert not verify_snap_inbound_rsa_signature(
        public, "POST", KAT_PATH, KAT_BODY + b" ", KAT_TS, expected
    )
    for garbage in ("", "not base64!", "QUJD", "é" * 40):
        assert not verify_snap_inbound_rsa_signature(
            public, "POST", KAT_PATH, KAT_BODY, KAT_TS, garbage
        )


def test_token_request_signature_checked_with_dokus_public_key() -> None:
    signature = rsa_sign(doku_key(), f"{CLIENT_ID}|{KAT_TS}")
    assert verify_token_signature(doku_key().public_key(), CLIENT_ID, KAT_TS, signature)
    assert not verify_token_signature(other_key().public_key(), CLIENT_ID, KAT_TS, signature)
    assert not verify_token_signature(doku_key().public_key(), CLIENT_ID + "1", KAT_TS, signature)


class _FixedToken(SnapTokenStore):
    """A store where only the protocol page's test token is live."""

    def is_live(self, token: str) -> bool:
        return token == KAT_TOKEN


def test_hmac_mode_known_answer_from_the_protocol_page() -> None:
    verifier = SnapNotificationVerifier(
        tokens=_FixedToken(),
        signature="hmac",
        client_secret=KAT_SECRET,
        clock=lambda: datetime.fromisoformat(KAT_TS).timestamp(),
    )
    headers = {
        "Authorization": f"Bearer {KAT_TOKEN}",
        "X-TIMESTAMP": KAT_TS,
        "X-SIGNATURE": KAT_HMAC,
        "X-PARTNER-ID": PARTNER,
        "X-EXTERNAL-ID": EXTERNAL_ID,
    }
    assert verifier.verify_request(headers, KAT_BODY, method="POST", path=KAT_PATH) == (
        EXTERNAL_ID,
        PARTNER,
    )
    with pytest.raises(WebhookVerificationError):
        verifier.verify_request(headers, KAT_BODY, method="POST", path="/v1.0/other")


# --- the verifier, framework-free -------------------------------------------------------------


def issued(clocks: Clocks) -> tuple[SnapInbound, str]:
    inbound = make_inbound(clocks)
    answer = inbound.issue_token(token_headers(), b'{"grantType":"client_credentials"}')
    token = answer["accessToken"]
    assert isinstance(token, str)
    return inbound, token


@pytest.mark.parametrize("form", ["z-millis", "z", "wib"])
@pytest.mark.parametrize("skew", [-300.0, 0.0, 300.0])
def test_rsa_verifier_accepts_both_timestamp_forms_inside_the_window(
    form: str, skew: float
) -> None:
    clocks = Clocks()
    inbound, token = issued(clocks)
    verifier = inbound.notification_verifier(partner_ids=PARTNER)
    body = unpaid_body()
    headers = notification_headers(token, body, timestamp=stamp(NOW + skew, form))
    assert verifier.verify_request(headers, body, method="POST", path=UNPAID_PATH) == (
        EXTERNAL_ID,
        PARTNER,
    )


@pytest.mark.parametrize("skew", [-301.0, 301.0, -86400.0, 86400.0])
def test_rsa_verifier_refuses_stale_and_future_timestamps(skew: float) -> None:
    clocks = Clocks()
    inbound, token = issued(clocks)
    verifier = inbound.notification_verifier()
    body = unpaid_body()
    headers = notification_headers(token, body, timestamp=stamp(NOW + skew))
    with pytest.raises(WebhookVerificationError, match="window"):
        verifier.verify_request(headers, body, method="POST", path=UNPAID_PATH)


def test_body_as_sent_and_minified_both_verify() -> None:
    clocks = Clocks()
    inbound, token = issued(clocks)
    verifier = inbound.notification_verifier()
    pretty = unpaid_body(pretty=True)
    # Signed over the minified form, sent pretty: DOKU re-minifies what it sends.
    headers = notification_headers(token, pretty)
    assert verifier.verify_request(headers, pretty, method="POST", path=UNPAID_PATH)
    # Signed over the exact bytes sent.
    ts = stamp()
    raw_digest = hashlib.sha256(pretty).hexdigest()
    headers["X-SIGNATURE"] = rsa_sign(doku_key(), f"POST:{UNPAID_PATH}:{raw_digest}:{ts}")
    assert verifier.verify_request(headers, pretty, method="POST", path=UNPAID_PATH)
    # A body whose number text differs from msgspec's re-encoding: whitespace-only minify.
    odd = b'{ "transactionId": "DK1", "amount": 1.50 }'
    digest = hashlib.sha256(b'{"transactionId":"DK1","amount":1.50}').hexdigest()
    headers["X-SIGNATURE"] = rsa_sign(doku_key(), f"POST:{UNPAID_PATH}:{digest}:{ts}")
    assert verifier.verify_request(headers, odd, method="POST", path=UNPAID_PATH)


def test_hmac_mode_with_and_without_the_token() -> None:
    clocks = Clocks()
    inbound, token = issued(clocks)
    body = unpaid_body()
    with_token = inbound.notification_verifier(signature="hmac", client_secret=CLIENT_SECRET)
    assert with_token.verify_request(
        notification_headers(token, body, mode="hmac"), body, method="POST", path=UNPAID_PATH
    )
    without = inbound.notification_verifier(
        signature="hmac", client_secret=CLIENT_SECRET, hmac_covers_token=False
    )
    assert without.verify_request(
        notification_headers(token, body, mode="hmac-no-token"),
        body,
        method="POST",
        path=UNPAID_PATH,
    )
    with pytest.raises(WebhookVerificationError):
        without.verify_request(
            notification_headers(token, body, mode="hmac"), body, method="POST", path=UNPAID_PATH
        )
    wrong = notification_headers(token, body, mode="hmac", secret="SK-someone-else")
    with pytest.raises(WebhookVerificationError, match="does not verify"):
        with_token.verify_request(wrong, body, method="POST", path=UNPAID_PATH)
    # An RSA signature is not accepted in HMAC mode, nor the other way round.
    with pytest.raises(WebhookVerificationError):
        with_token.verify_request(
            notification_headers(token, body), body, method="POST", path=UNPAID_PATH
        )
    with pytest.raises(WebhookVerificationError):
        inbound.notification_verifier().verify_request(
            notification_headers(token, body, mode="hmac"), body, method="POST", path=UNPAID_PATH
        )


def test_verifier_refusals() -> None:
    clocks = Clocks()
    inbound, token = issued(clocks)
    verifier = inbound.notification_verifier(partner_ids=[PARTNER])
    body = unpaid_body()
    good = notification_headers(token, body)

    def refused(headers: Mapping[str, str], body: bytes = body, **where: str) -> str:
        options = {"method": "POST", "path": UNPAID_PATH, **where}
        with pytest.raises(WebhookVerificationError) as caught:
            verifier.verify_request(headers, body, **options)
        return caught.value.message

    assert "does not verify" in refused(good, body.replace(b"DK0018353", b"DK0018354"))
    assert "does not verify" in refused(good, path=REFUND_PATH)
    assert "does not verify" in refused(good, method="PUT")
    assert "does not verify" in refused(notification_headers(token, body, key=other_key()))
    assert "unknown X-PARTNER-ID" in refused(notification_headers(token, body, partner="BRN-X"))
    assert "access token" in refused(notification_headers("forged-token", body))
    assert "bearer" in refused({**good, "Authorization": f"Basic {token}"})
    assert "bearer" in refused({**good, "Authorization": "Bearer "})
    assert "malformed X-EXTERNAL-ID" in refused({**good, "X-EXTERNAL-ID": "a:b"})
    assert "malformed X-TIMESTAMP" in refused({**good, "X-TIMESTAMP": "2023-11-14 22:13:20"})
    assert "malformed X-TIMESTAMP" in refused({**good, "X-TIMESTAMP": "2023-11-14T22:13:20"})
    assert "malformed X-SIGNATURE" in refused({**good, "X-SIGNATURE": "x" * 5000})
    assert "malformed" in refused({**good, "X-SIGNATURE": "abc\x00"})
    for name in ("Authorization", "X-TIMESTAMP", "X-SIGNATURE", "X-PARTNER-ID", "X-EXTERNAL-ID"):
        assert refused({k: v for k, v in good.items() if k != name}) == f"missing {name} header"
    assert verifier.verify_request(good, body, method="POST", path=UNPAID_PATH)


def test_expired_and_revoked_tokens_are_refused() -> None:
    clocks = Clocks()
    inbound, token = issued(clocks)
    verifier = inbound.notification_verifier()
    body = unpaid_body()
    headers = notification_headers(token, body)
    clocks.mono += 899.0
    assert verifier.verify_request(headers, body, method="POST", path=UNPAID_PATH)
    clocks.mono += 1.0
    with pytest.raises(WebhookVerificationError, match="expired"):
        verifier.verify_request(headers, body, method="POST", path=UNPAID_PATH)
    _, second = issued(clocks)  # another store: unknown here
    with pytest.raises(WebhookVerificationError, match="unknown"):
        verifier.verify_request(
            notification_headers(second, body), body, method="POST", path=UNPAID_PATH
        )
    fresh = inbound.issue_token(token_headers(), b'{"grantType":"client_credentials"}')
    token3 = str(fresh["accessToken"])
    assert inbound.tokens.is_live(token3)
    inbound.tokens.revoke(token3)
    assert not inbound.tokens.is_live(token3)


def test_token_store_is_bounded_and_purges() -> None:
    clocks = Clocks()
    store = SnapTokenStore(max_tokens=3, clock=clocks.monotonic)
    tokens = [store.issue(10.0) for _ in range(5)]
    assert len(store) == 3
    assert not store.is_live(tokens[0])
    assert store.is_live(tokens[-1])
    assert len(set(tokens)) == 5
    assert all(len(t) >= 40 for t in tokens)
    clocks.mono += 11.0
    store.issue(10.0)
    assert len(store) == 1
    assert tokens[-1] not in repr(store)


def test_verify_without_path_uses_the_configured_one_and_path_prefix() -> None:
    clocks = Clocks()
    inbound, token = issued(clocks)
    body = unpaid_body()
    headers = notification_headers(token, body)
    fixed = inbound.notification_verifier(path=UNPAID_PATH)
    assert fixed.verify(headers, body) == (EXTERNAL_ID, PARTNER)
    with pytest.raises(WebhookVerificationError, match="path"):
        inbound.notification_verifier().verify(headers, body)
    # A proxy forwards /api/doku/kirim/unpaid as /doku/kirim/unpaid.
    proxied = notification_headers(token, body, path="/api" + UNPAID_PATH)
    behind = inbound.notification_verifier(path_prefix="/api/")
    assert behind.verify_request(proxied, body, method="POST", path=UNPAID_PATH)


def test_verify_and_parse_passes_method_and_path_and_keeps_aes_working() -> None:
    clocks = Clocks()
    inbound, token = issued(clocks)
    verifier = inbound.notification_verifier()
    assert isinstance(verifier, SnapNotificationVerifier)
    request_verifier: NotificationRequestVerifier = verifier  # structural typing
    body = unpaid_body()
    n = verify_and_parse(
        notification_headers(token, body), body, verifier=request_verifier, path=UNPAID_PATH
    )
    assert isinstance(n, UnpaidNotification)
    assert (n.request_id, n.agent_key) == (EXTERNAL_ID, PARTNER)
    aes = AesSignatureVerifier.single("A41418", "627054fevj1sutvs")
    aes_headers = sign_kirim_notification(agent_key="A41418", encryption_key="627054fevj1sutvs")
    n2 = verify_and_parse(aes_headers, body, verifier=aes, method="POST", path=UNPAID_PATH)
    assert n2.agent_key == "A41418"


def test_configuration_errors_and_reprs_hide_secrets() -> None:
    clocks = Clocks()
    with pytest.raises(ConfigurationError, match="doku_public_key"):
        SnapNotificationVerifier(tokens=SnapTokenStore())
    with pytest.raises(ConfigurationError, match="client_secret"):
        SnapNotificationVerifier(tokens=SnapTokenStore(), signature="hmac")
    with pytest.raises(ConfigurationError, match="doku_public_key"):
        make_inbound(clocks, doku_public_key="-----BEGIN PUBLIC KEY-----\nnope\n")
    with pytest.raises(ConfigurationError, match="doku_public_key"):
        make_inbound(clocks, doku_public_key="bm90IGEga2V5")
    with pytest.raises(ConfigurationError):
        make_inbound(clocks, client_id="")
    # The bare base64 DER body of the PEM, as some dashboards show it, is accepted.
    bare = "".join(public_pem(doku_key()).decode().splitlines()[1:-1])
    make_inbound(clocks, doku_public_key=bare)
    verifier = SnapNotificationVerifier(
        tokens=SnapTokenStore(), signature="hmac", client_secret=CLIENT_SECRET
    )
    assert CLIENT_SECRET not in repr(verifier)
    inbound, token = issued(clocks)
    assert token not in repr(inbound)
    assert token not in repr(inbound.tokens)


def test_token_request_refusals_framework_free() -> None:
    clocks = Clocks()
    inbound = make_inbound(clocks)
    body = b'{"grantType":"client_credentials"}'

    def refusal(headers: Mapping[str, str], body: bytes = body) -> tuple[int, str, str]:
        with pytest.raises(SnapTokenRequestError) as caught:
            inbound.issue_token(headers, body)
        exc = caught.value
        assert isinstance(exc, WebhookVerificationError)
        return exc.status, exc.response_code, exc.response_message

    assert refusal(token_headers(key=other_key())) == (
        401,
        "4017300",
        "Unauthorized. Invalid Signature",
    )
    assert refusal(token_headers(client_id="BRN-9999")) == (
        401,
        "4017300",
        "Unauthorized. Unknown Client",
    )
    assert refusal(token_headers(signed_client_id="BRN-9999"))[0] == 401
    assert refusal(token_headers(timestamp=stamp(NOW - 301)))[2] == (
        "Unauthorized. Invalid Timestamp"
    )
    assert refusal(token_headers(timestamp=stamp(NOW + 301)))[0] == 401
    assert refusal(token_headers(timestamp="yesterday"))[0] == 401
    for name in ("X-CLIENT-KEY", "X-TIMESTAMP", "X-SIGNATURE"):
        headers = {k: v for k, v in token_headers().items() if k != name}
        assert refusal(headers) == (400, "4007302", f"Invalid Mandatory Field {{{name}}}")
    for bad in (b"", b"not json", b"[]", b"{}", b'{"grantType":""}', b'{"grantType":null}'):
        assert refusal(token_headers(), bad) == (
            400,
            "4007302",
            "Invalid Mandatory Field {grantType}",
        )
    assert refusal(token_headers(), b'{"grantType":"password"}')[:2] == (400, "4007301")
    assert len(inbound.tokens) == 0
    for form in ("z-millis", "z", "wib"):
        answer = inbound.issue_token(token_headers(timestamp=stamp(NOW + 300, form)), body)
        assert answer["responseCode"] == "2007300"


_HEADER_NAMES = [
    "Authorization",
    "X-TIMESTAMP",
    "X-SIGNATURE",
    "X-PARTNER-ID",
    "X-EXTERNAL-ID",
    "X-CLIENT-KEY",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    replaced=st.dictionaries(st.sampled_from(_HEADER_NAMES), st.text(max_size=700), max_size=6),
    body=st.binary(max_size=200),
    path=st.text(max_size=40),
)
def test_hostile_input_only_ever_raises_verification_errors(
    replaced: dict[str, str], body: bytes, path: str
) -> None:
    clocks = Clocks()
    inbound, token = issued(clocks)
    verifier = inbound.notification_verifier()
    hmac_verifier = inbound.notification_verifier(signature="hmac", client_secret=CLIENT_SECRET)
    base = {**notification_headers(token, unpaid_body()), **token_headers()}
    headers = {**base, **replaced}
    messages: list[str] = []
    for check in (verifier, hmac_verifier):
        try:
            check.verify_request(headers, body, method="POST", path=path)
        except WebhookVerificationError as exc:  # the only error allowed
            messages.append(exc.message)
    statuses: list[int] = []
    try:
        inbound.issue_token(headers, body)
    except SnapTokenRequestError as exc:
        statuses.append(exc.status)
        messages.append(exc.message)
    assert all(400 <= status < 500 for status in statuses)
    assert not any(token in m or CLIENT_SECRET in m for m in messages)


# --- the full flow over a real loopback server -------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Notification] = []

    async def __call__(self, notification: Notification) -> None:
        self.calls.append(notification)


@asynccontextmanager
async def serving(
    clocks: Clocks, *, signature: str = "rsa", **verifier_options: Any
) -> AsyncIterator[tuple[Client, Recorder, SnapInbound]]:
    recorder = Recorder()
    inbound = make_inbound(clocks)
    if signature == "hmac":
        verifier_options.setdefault("client_secret", CLIENT_SECRET)
    verifier = inbound.notification_verifier(signature=signature, **verifier_options)  # type: ignore[arg-type]
    outer = web.Application()
    outer.add_subapp(
        "/doku/",
        create_webhook_app(verifier=verifier, snap_inbound=inbound, on_notification=recorder),
    )
    client: Client = TestClient(TestServer(outer, host="127.0.0.1"))
    await client.start_server()
    try:
        assert client.host == "127.0.0.1"
        yield client, recorder, inbound
    finally:
        await client.close()


async def call(
    client: Client, path: str, body: bytes, headers: Mapping[str, str], method: str = "POST"
) -> tuple[int, dict[str, Any], bytes]:
    async with client.request(method, path, data=body, headers=dict(headers)) as resp:
        raw = await resp.read()
        assert resp.content_type == "application/json", (resp.status, raw)
        payload = json.loads(raw)
        assert isinstance(payload, dict)
        return resp.status, payload, raw


async def get_token(client: Client, headers: Mapping[str, str] | None = None) -> str:
    status, payload, raw = await call(
        client,
        TOKEN_PATH,
        b'{"grantType":"client_credentials"}',
        token_headers() if headers is None else headers,
    )
    assert status == 200, payload
    assert list(payload) == TOKEN_ANSWER_KEYS
    token = payload["accessToken"]
    assert isinstance(token, str)
    assert len(token) >= 40
    assert payload == {
        "responseCode": "2007300",
        "responseMessage": "Successful",
        "accessToken": token,
        "tokenType": "Bearer",
        "expiresIn": 900,
        "additionalInfo": "",
    }
    assert raw.startswith(b'{"responseCode":"2007300","responseMessage":"Successful"')
    return token


@pytest.mark.parametrize("signature", ["rsa", "hmac"])
async def test_full_flow_token_then_signed_notification(
    signature: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clocks = Clocks()
    async with serving(clocks, signature=signature) as (client, recorder, inbound):
        token = await get_token(client)
        assert inbound.tokens.is_live(token)
        body = unpaid_body(pretty=True)
        headers = notification_headers(token, body, mode=signature)
        status, payload, raw = await call(client, UNPAID_PATH, body, headers)
        assert status == 200, payload
        assert raw == (
            b'{"status":true,"transactionId":"DK0018353","responseCode":"00",'
            b'"responseMessage":"Successfully processed"}'
        )
        assert len(recorder.calls) == 1
        got = recorder.calls[0]
        assert isinstance(got, UnpaidNotification)
        assert got.transaction_id == "DK0018353"
        assert (got.request_id, got.agent_key) == (EXTERNAL_ID, PARTNER)
        # DOKU's retry of the same notification: acknowledged as a duplicate, not handed over.
        status, payload, _ = await call(client, UNPAID_PATH, body, headers)
        assert (status, payload["responseCode"]) == (200, "01")
        assert len(recorder.calls) == 1
        assert inbound.issued == 1
    assert token not in caplog.text
    assert CLIENT_SECRET not in caplog.text


async def test_token_route_refusals_over_http() -> None:
    clocks = Clocks()
    grant = b'{"grantType":"client_credentials"}'
    async with serving(clocks) as (client, recorder, inbound):
        cases: list[tuple[Mapping[str, str], bytes, int, str]] = [
            (token_headers(key=other_key()), grant, 401, "4017300"),
            (token_headers(client_id="BRN-9999"), grant, 401, "4017300"),
            (token_headers(timestamp=stamp(NOW - 301)), grant, 401, "4017300"),
            (token_headers(timestamp=stamp(NOW + 301)), grant, 401, "4017300"),
            ({"Content-Type": "application/json"}, grant, 400, "4007302"),
            (token_headers(), b"{", 400, "4007302"),
            (token_headers(), b'{"grantType":"password"}', 400, "4007301"),
            (token_headers(), b"x" * 10_000, 400, "4007300"),
            ({**token_headers(), "X-SIGNATURE": "\u00e9" * 10}, grant, 401, "4017300"),
        ]
        for headers, body, expected_status, code in cases:
            status, payload, _ = await call(client, TOKEN_PATH, body, headers)
            assert (status, payload["responseCode"]) == (expected_status, code), (headers, body)
            assert set(payload) == {"responseCode", "responseMessage"}
            assert payload["responseMessage"]
        status, payload, _ = await call(client, TOKEN_PATH, b"", token_headers(), method="GET")
        assert (status, payload["responseCode"]) == (405, "4057300")
        assert len(inbound.tokens) == 0
        assert inbound.rejected == len(cases) + 1
        assert recorder.calls == []


async def test_notification_refusals_over_http_never_reach_the_callback() -> None:
    clocks = Clocks()
    async with serving(clocks) as (client, recorder, _):
        token = await get_token(client)
        body = unpaid_body()
        good = notification_headers(token, body)
        cases: list[tuple[str, Mapping[str, str], bytes]] = [
            ("wrong key", notification_headers(token, body, key=other_key()), body),
            ("unknown token", notification_headers("x" * 43, body), body),
            ("tampered body", good, body.replace(b"DK0018353", b"DK0018354")),
            ("wrong path", notification_headers(token, body, path=REFUND_PATH), body),
            ("wrong method", notification_headers(token, body, method="PUT"), body),
            ("stale", notification_headers(token, body, timestamp=stamp(NOW - 301)), body),
            ("future", notification_headers(token, body, timestamp=stamp(NOW + 301, "wib")), body),
            ("hmac instead of rsa", notification_headers(token, body, mode="hmac"), body),
            ("no bearer", {**good, "Authorization": token}, body),
            ("bad signature", {**good, "X-SIGNATURE": "!!!"}, body),
        ]
        for name in (
            "Authorization",
            "X-TIMESTAMP",
            "X-SIGNATURE",
            "X-PARTNER-ID",
            "X-EXTERNAL-ID",
        ):
            cases.append((f"missing {name}", {k: v for k, v in good.items() if k != name}, body))
        for label, headers, sent in cases:
            status, payload, _ = await call(client, UNPAID_PATH, sent, headers)
            assert status == 401, (label, payload)
            assert payload["status"] is False
        # The right notification sent to the refund URL: the path is signed.
        status, _, _ = await call(client, REFUND_PATH, body, good)
        assert status == 401
        # Wrong HTTP method on the notification route.
        status, _, _ = await call(client, UNPAID_PATH, body, good, method="PUT")
        assert status == 405
        # Expired token.
        clocks.mono += 900.0
        status, _, _ = await call(client, UNPAID_PATH, body, good)
        assert status == 401
        assert recorder.calls == []
        # A new token makes the very same notification acceptable again.
        token2 = await get_token(client)
        status, payload, _ = await call(
            client, UNPAID_PATH, body, notification_headers(token2, body)
        )
        assert (status, payload["responseCode"]) == (200, "00")
        assert len(recorder.calls) == 1


async def test_hmac_mode_with_wrong_secret_over_http() -> None:
    clocks = Clocks()
    async with serving(clocks, signature="hmac") as (client, recorder, _):
        token = await get_token(client)
        body = unpaid_body()
        wrong = notification_headers(token, body, mode="hmac", secret="SK-not-ours")
        status, payload, _ = await call(client, UNPAID_PATH, body, wrong)
        assert status == 401, payload
        assert recorder.calls == []


async def test_custom_token_path() -> None:
    clocks = Clocks()
    inbound = make_inbound(clocks, path="/snap/v1.0/access-token/b2b")
    outer = web.Application()
    outer.add_subapp(
        "/doku/",
        create_webhook_app(
            verifier=inbound.notification_verifier(),
            snap_inbound=inbound,
            on_notification=Recorder(),
        ),
    )
    client: Client = TestClient(TestServer(outer, host="127.0.0.1"))
    await client.start_server()
    try:
        grant = b'{"grantType":"client_credentials"}'
        status, payload, _ = await call(
            client, "/doku/snap/v1.0/access-token/b2b", grant, token_headers()
        )
        assert (status, payload["responseCode"]) == (200, "2007300")
        async with client.post(TOKEN_PATH, data=grant, headers=token_headers()) as resp:
            assert resp.status == 404
    finally:
        await client.close()
