"""Framework-free tests of doku_async.webhooks: the AES notification signature (known-answer
vector from docs/doku-protocol.md), header verification, key rotation, pluggable verifiers, and
parsing of Unpaid / Refund notification bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

import pytest

from doku_async import ConfigurationError, DokuError, SignatureVerificationError
from doku_async.webhooks import (
    AesSignatureVerifier,
    MemoryDedupStore,
    NotificationParseError,
    NotificationStatus,
    NotificationVerifier,
    RefundNotification,
    UnpaidNotification,
    WebhookVerificationError,
    parse_notification,
    parse_process_date,
    sign_kirim_notification,
    verify_and_parse,
)

pytestmark = pytest.mark.timeout(30)

KAT_AGENT = "A41418"
KAT_KEY = "627054fevj1sutvs"
KAT_REQUEST_ID = "fd53b1e3-9c35-4dfa-a95ca8dbc5695485"
# Other requestIds in the shape DOKU sends (UUIDs; see KIRIM_REQUEST_ID_PATTERN).
R1, R2, R3, R4, R5, R6 = (f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 7))
KAT_SIGNATURE = "c7gWWl1UEDpkO42/Ikqjd/GNGzFQSZONqvwFhbcXtUVdqgq+gliUBQCOUqsFjAtX"

KEY_OLD = "0123456789abcdef"
KEY_NEW = "fedcba9876543210"
KEY_OTHER = "ZZZZZZZZZZZZZZZZ"

WIB = timezone(timedelta(hours=7))


def unpaid(**overrides: object) -> dict[str, object]:
    """The Unpaid notification sample of the DOKU docs, with overrides (None removes a field)."""
    body: dict[str, object] = {
        "sendTrxId": "text",
        "transactionId": "DK0018353",
        "invoiceNumber": "I088787987870912",
        "transactionStatus": "50",
        "activityCode": "200",
        "message": "Transaction is Success",
        "processDate": "2024-01-12'T'07:30:12",
        "createdTime": "1699520040340",
    }
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def refund(**overrides: object) -> dict[str, object]:
    """The Refund notification sample of the DOKU docs, with overrides."""
    body: dict[str, object] = {
        "transactionId": "DK0018353",
        "activityCode": "200",
        "message": "Transaction is Refunded",
        "processDate": "2024-01-12'T'07:30:12",
    }
    body.update(overrides)
    return body


def encode(body: Mapping[str, object]) -> bytes:
    return json.dumps(body).encode()


def kat_verifier() -> AesSignatureVerifier:
    return AesSignatureVerifier.single(KAT_AGENT, KAT_KEY)


def kat_headers() -> dict[str, str]:
    return {"requestId": KAT_REQUEST_ID, "agentKey": KAT_AGENT, "signature": KAT_SIGNATURE}


def assert_verification_error(exc: BaseException) -> None:
    """A typed SDK error, never a bare ValueError/KeyError."""
    assert type(exc) is WebhookVerificationError
    assert isinstance(exc, SignatureVerificationError)
    assert isinstance(exc, DokuError)
    assert not isinstance(exc, ValueError)


# --- signature: known-answer vector --------------------------------------------------------


def test_sign_kirim_notification_known_answer() -> None:
    headers = sign_kirim_notification(
        agent_key=KAT_AGENT, encryption_key=KAT_KEY, request_id=KAT_REQUEST_ID
    )
    assert headers["signature"] == KAT_SIGNATURE
    assert headers["requestId"] == KAT_REQUEST_ID
    assert headers["agentKey"] == KAT_AGENT
    assert headers["Content-Type"] == "application/json"


def test_sign_kirim_notification_generates_fresh_request_ids() -> None:
    first = sign_kirim_notification(agent_key=KAT_AGENT, encryption_key=KAT_KEY)
    second = sign_kirim_notification(agent_key=KAT_AGENT, encryption_key=KAT_KEY)
    assert first["requestId"] != second["requestId"]
    assert first["signature"] != second["signature"]
    verifier = kat_verifier()
    assert verifier.verify(first, b"") == (first["requestId"], KAT_AGENT)
    assert verifier.verify(second, b"") == (second["requestId"], KAT_AGENT)


def test_known_answer_verifies_and_parses_the_docs_sample() -> None:
    notification = verify_and_parse(kat_headers(), encode(unpaid()), verifier=kat_verifier())
    assert type(notification) is UnpaidNotification
    assert notification.request_id == KAT_REQUEST_ID
    assert notification.agent_key == KAT_AGENT
    assert notification.transaction_id == "DK0018353"
    assert notification.invoice_number == "I088787987870912"
    assert notification.send_trx_id == "text"
    assert notification.status == "50"
    assert notification.kind == "unpaid"
    assert notification.message == "Transaction is Success"


# --- verify_and_parse with plain dict headers --------------------------------------------


@pytest.mark.parametrize(
    "names",
    [
        ("requestId", "agentKey", "signature"),
        ("requestid", "agentkey", "signature"),
        ("REQUESTID", "AGENTKEY", "SIGNATURE"),
        ("RequestId", "AgentKey", "Signature"),
    ],
)
def test_header_names_are_case_insensitive(names: tuple[str, str, str]) -> None:
    rid, agent, sig = names
    headers = {rid: KAT_REQUEST_ID, agent: KAT_AGENT, sig: KAT_SIGNATURE}
    notification = verify_and_parse(headers, encode(unpaid()), verifier=kat_verifier())
    assert isinstance(notification, UnpaidNotification)
    assert notification.request_id == KAT_REQUEST_ID
    assert notification.agent_key == KAT_AGENT


def test_refund_body_parses_as_refund_notification() -> None:
    notification = verify_and_parse(kat_headers(), encode(refund()), verifier=kat_verifier())
    assert type(notification) is RefundNotification
    assert notification.request_id == KAT_REQUEST_ID
    assert notification.agent_key == KAT_AGENT
    assert notification.transaction_id == "DK0018353"
    assert notification.status == NotificationStatus.REFUNDED == "40"
    assert notification.kind == "refund"


def test_explicit_kind_is_honoured() -> None:
    body = encode(refund())
    assert type(verify_and_parse(kat_headers(), body, verifier=kat_verifier(), kind="refund")) is (
        RefundNotification
    )
    # Read as an Unpaid notification when told so: usable (it has its transaction id), with
    # no status, which a receiver must then confirm through check status.
    as_unpaid = verify_and_parse(kat_headers(), body, verifier=kat_verifier(), kind="unpaid")
    assert type(as_unpaid) is UnpaidNotification
    assert as_unpaid.status == ""


@pytest.mark.parametrize("missing", ["requestId", "agentKey", "signature"])
def test_missing_header_is_a_verification_error(missing: str) -> None:
    headers = kat_headers()
    del headers[missing]
    with pytest.raises(WebhookVerificationError) as info:
        verify_and_parse(headers, encode(unpaid()), verifier=kat_verifier())
    assert_verification_error(info.value)
    assert missing in info.value.message


@pytest.mark.parametrize("name", ["requestId", "agentKey", "signature"])
@pytest.mark.parametrize("value", ["", "   "])
def test_empty_header_is_a_verification_error(name: str, value: str) -> None:
    headers = kat_headers()
    headers[name] = value
    with pytest.raises(WebhookVerificationError) as info:
        verify_and_parse(headers, encode(unpaid()), verifier=kat_verifier())
    assert_verification_error(info.value)


@pytest.mark.parametrize("name", ["requestId", "agentKey", "signature"])
def test_overlong_header_is_a_verification_error(name: str) -> None:
    headers = kat_headers()
    headers[name] = "A" * 513
    with pytest.raises(WebhookVerificationError) as info:
        verify_and_parse(headers, encode(unpaid()), verifier=kat_verifier())
    assert_verification_error(info.value)


def test_overlong_request_id_with_matching_signature_is_still_rejected() -> None:
    """The length cap applies even when the signature is right for the long value."""
    rid = "r" * 600
    headers = sign_kirim_notification(agent_key=KAT_AGENT, encryption_key=KAT_KEY, request_id=rid)
    with pytest.raises(WebhookVerificationError) as info:
        kat_verifier().verify(headers, b"")
    assert_verification_error(info.value)


@pytest.mark.parametrize("name", ["requestId", "agentKey", "signature"])
@pytest.mark.parametrize("bad", ["\x00", "\n", "\x1b[31m", "\udcff"])
def test_non_printable_header_is_a_verification_error(name: str, bad: str) -> None:
    headers = kat_headers()
    headers[name] = headers[name] + bad + "x"
    with pytest.raises(WebhookVerificationError) as info:
        verify_and_parse(headers, encode(unpaid()), verifier=kat_verifier())
    assert_verification_error(info.value)


def test_wrong_signature_is_a_verification_error() -> None:
    headers = kat_headers()
    good = headers["signature"]
    headers["signature"] = ("d" if good[0] != "d" else "e") + good[1:]
    with pytest.raises(WebhookVerificationError) as info:
        verify_and_parse(headers, encode(unpaid()), verifier=kat_verifier())
    assert_verification_error(info.value)


def test_signature_for_another_request_id_is_rejected() -> None:
    """Replaying a signature under another requestId must fail."""
    headers = kat_headers()
    headers["requestId"] = "fd53b1e3-9c35-4dfa-a95ca8dbc5695486"
    with pytest.raises(WebhookVerificationError) as info:
        verify_and_parse(headers, encode(unpaid()), verifier=kat_verifier())
    assert_verification_error(info.value)


def test_wrong_agent_key_is_a_verification_error() -> None:
    # A signature correctly made for another agent key with the same encryption key.
    headers = sign_kirim_notification(
        agent_key="A99999", encryption_key=KAT_KEY, request_id=KAT_REQUEST_ID
    )
    with pytest.raises(WebhookVerificationError) as info:
        verify_and_parse(headers, encode(unpaid()), verifier=kat_verifier())
    assert_verification_error(info.value)


@pytest.mark.parametrize(
    "signature", ["not base64 at all!", "%%%%", "c7gWWl1UEDpkO42", "é" * 10, "==" * 8]
)
def test_non_base64_signature_is_a_verification_error(signature: str) -> None:
    headers = kat_headers()
    headers["signature"] = signature
    with pytest.raises(WebhookVerificationError) as info:
        verify_and_parse(headers, encode(unpaid()), verifier=kat_verifier())
    assert_verification_error(info.value)


def test_verification_happens_before_parsing() -> None:
    """A forged notification with a garbage body is a verification error, not a parse error."""
    headers = kat_headers()
    headers["signature"] = "AAAA"
    with pytest.raises(WebhookVerificationError):
        verify_and_parse(headers, b"{not json", verifier=kat_verifier())


# --- key rotation and several agent keys ----------------------------------------------------


def test_key_rotation_accepts_either_key_and_rejects_a_third() -> None:
    verifier = AesSignatureVerifier.single("A1", [KEY_OLD, KEY_NEW])
    for key in (KEY_OLD, KEY_NEW):
        headers = sign_kirim_notification(agent_key="A1", encryption_key=key, request_id=R1)
        assert verifier.verify(headers, b"") == (R1, "A1")
    forged = sign_kirim_notification(agent_key="A1", encryption_key=KEY_OTHER, request_id=R1)
    with pytest.raises(WebhookVerificationError) as info:
        verifier.verify(forged, b"")
    assert_verification_error(info.value)


def test_several_agent_keys_each_with_their_own_keys() -> None:
    verifier = AesSignatureVerifier({"A1": "k" * 16, "A2": [KEY_OLD, KEY_NEW]})
    ok_a1 = sign_kirim_notification(agent_key="A1", encryption_key="k" * 16, request_id=R1)
    ok_a2_old = sign_kirim_notification(agent_key="A2", encryption_key=KEY_OLD, request_id=R2)
    ok_a2_new = sign_kirim_notification(agent_key="A2", encryption_key=KEY_NEW, request_id=R3)
    assert verifier.verify(ok_a1, b"") == (R1, "A1")
    assert verifier.verify(ok_a2_old, b"") == (R2, "A2")
    assert verifier.verify(ok_a2_new, b"") == (R3, "A2")
    notification = verify_and_parse(ok_a2_new, encode(refund()), verifier=verifier)
    assert notification.agent_key == "A2"
    assert notification.request_id == R3

    # A1's key does not sign for A2, A2's keys do not sign for A1, and A3 is unknown.
    cross = [
        sign_kirim_notification(agent_key="A2", encryption_key="k" * 16, request_id=R4),
        sign_kirim_notification(agent_key="A1", encryption_key=KEY_OLD, request_id=R5),
        sign_kirim_notification(agent_key="A3", encryption_key="k" * 16, request_id=R6),
    ]
    for headers in cross:
        with pytest.raises(WebhookVerificationError) as info:
            verifier.verify(headers, b"")
        assert_verification_error(info.value)


def test_verifier_constructor_validation() -> None:
    with pytest.raises(ValueError, match="agent key"):
        AesSignatureVerifier({})
    with pytest.raises(ValueError, match="encryption key"):
        AesSignatureVerifier({"A1": []})
    with pytest.raises(ValueError, match="encryption key"):
        AesSignatureVerifier({"": "k" * 16})
    with pytest.raises(ConfigurationError):
        AesSignatureVerifier({"A1": "too-short"})
    with pytest.raises(ConfigurationError):
        AesSignatureVerifier.single("A1", [KEY_OLD, "x" * 15])


def test_verifier_repr_hides_encryption_keys() -> None:
    text = repr(AesSignatureVerifier({"A1": KEY_OLD, "A2": [KEY_NEW]}))
    assert "A1" in text
    assert "A2" in text
    assert KEY_OLD not in text
    assert KEY_NEW not in text


# --- custom verifiers -----------------------------------------------------------------------


class TokenVerifier:
    """A made-up scheme: header ``X-Token`` must be ``"letmein"``; it also sees the body."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], bytes]] = []

    def verify(self, headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
        self.seen.append((dict(headers), body))
        if headers.get("X-Token") != "letmein":
            raise WebhookVerificationError("bad token")
        return headers.get("X-Id", "custom-rid"), "CUSTOM-AGENT"


def test_custom_verifier_is_used() -> None:
    verifier = TokenVerifier()
    typed: NotificationVerifier = verifier  # satisfies the protocol
    body = encode(unpaid())
    notification = verify_and_parse({"X-Token": "letmein", "X-Id": "id-7"}, body, verifier=typed)
    assert notification.request_id == "id-7"
    assert notification.agent_key == "CUSTOM-AGENT"
    assert verifier.seen == [({"X-Token": "letmein", "X-Id": "id-7"}, body)]

    # The AES headers mean nothing to it.
    with pytest.raises(WebhookVerificationError):
        verify_and_parse(kat_headers(), body, verifier=typed)
    assert len(verifier.seen) == 2


# --- parsing: createdTime ------------------------------------------------------------------

CREATED = datetime(2023, 11, 9, 8, 54, 0, 340000, tzinfo=UTC)  # 1699520040340 ms


@pytest.mark.parametrize("created", ["1699520040340", 1699520040340])
def test_created_time_string_or_number(created: object) -> None:
    notification = parse_notification(encode(unpaid(createdTime=created)))
    assert isinstance(notification, UnpaidNotification)
    assert notification.created_at == CREATED
    assert notification.created_at is not None
    assert notification.created_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("created", ["soon", "", "99999999999999999999999"])
def test_unreadable_created_time_is_none(created: str) -> None:
    notification = parse_notification(encode(unpaid(createdTime=created)))
    assert isinstance(notification, UnpaidNotification)
    assert notification.created_at is None
    assert notification.created_time == created


def test_absent_created_time_is_none() -> None:
    notification = parse_notification(encode(unpaid(createdTime=None)))
    assert isinstance(notification, UnpaidNotification)
    assert notification.created_at is None


# --- parsing: processDate ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-12'T'07:30:12", datetime(2024, 1, 12, 7, 30, 12, tzinfo=WIB)),
        ("2024-01-12T07:30:12", datetime(2024, 1, 12, 7, 30, 12, tzinfo=WIB)),
        ("2024-01-12 07:30:12", datetime(2024, 1, 12, 7, 30, 12, tzinfo=WIB)),
        ("2024-01-12T07:30:12Z", datetime(2024, 1, 12, 7, 30, 12, tzinfo=UTC)),
        ("2024-01-12'T'07:30:12Z", datetime(2024, 1, 12, 7, 30, 12, tzinfo=UTC)),
        ("2024-01-12T07:30:12+07:00", datetime(2024, 1, 12, 0, 30, 12, tzinfo=UTC)),
        ("2024-01-12 07:30:12+07:00", datetime(2024, 1, 12, 0, 30, 12, tzinfo=UTC)),
        ("2024-01-12T07:30:12-05:30", datetime(2024, 1, 12, 13, 0, 12, tzinfo=UTC)),
        ("2024-01-12T07:30:12.123+07:00", datetime(2024, 1, 12, 0, 30, 12, tzinfo=UTC)),
    ],
)
def test_process_date_forms(text: str, expected: datetime) -> None:
    parsed = parse_process_date(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() is not None  # always aware
    notification = parse_notification(encode(unpaid(processDate=text)))
    assert notification.process_date == text  # the text is kept as sent
    assert notification.processed_at == expected


def test_process_date_without_offset_is_jakarta_time() -> None:
    parsed = parse_process_date("2024-01-12T07:30:12")
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(hours=7)
    assert parsed.astimezone(UTC) == datetime(2024, 1, 12, 0, 30, 12, tzinfo=UTC)
    assert parse_process_date("2024-01-12T07:30:12", assume=UTC) == datetime(
        2024, 1, 12, 7, 30, 12, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "garbage",
    ["yesterday", "2024-13-45T07:30:12", "2024-02-30T07:30:12", "12/01/2024 07:30", "", "   "],
)
def test_unreadable_process_date_is_none_and_kept_as_text(garbage: str) -> None:
    assert parse_process_date(garbage) is None
    notification = parse_notification(encode(refund(processDate=garbage)))
    assert notification.process_date == garbage
    assert notification.processed_at is None


def test_process_date_none_is_none() -> None:
    assert parse_process_date(None) is None


@pytest.mark.parametrize(
    "text", ["2024-01-12T07:30:12+25:00", "2024-01-12T07:30:12-24:00", "2024-01-12T07:30:12+23:99"]
)
def test_out_of_range_offset_is_none_not_an_exception(text: str) -> None:
    assert parse_process_date(text) is None
    notification = parse_notification(encode(unpaid(processDate=text)))
    assert notification.processed_at is None


# --- parsing: transactionStatus ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text", "word", "final"),
    [
        ("50", "50", "success", True),
        ("35", "35", "failed", True),
        ("20", "20", "unpaid", False),
        ("40", "40", "refunded", True),
        (50, "50", "success", True),
        (35, "35", "failed", True),
    ],
)
def test_transaction_status(raw: object, text: str, word: str, final: bool) -> None:
    notification = parse_notification(encode(unpaid(transactionStatus=raw)))
    assert isinstance(notification, UnpaidNotification)
    assert notification.status == text
    assert isinstance(notification.status, str)
    assert NotificationStatus.describe(notification.status) == word
    assert NotificationStatus.is_final(notification.status) is final


def test_unknown_transaction_status_is_tolerated() -> None:
    notification = parse_notification(encode(unpaid(transactionStatus="99")))
    assert isinstance(notification, UnpaidNotification)
    assert notification.status == "99"
    assert "unknown" in NotificationStatus.describe("99")
    assert "99" in NotificationStatus.describe("99")
    assert NotificationStatus.is_final("99") is False


# --- parsing: rejects ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind", "transaction_id", "status"),
    [
        # The decoding rule: only the transaction id is essential; numbers become text and
        # any other JSON type in another field is tolerated (issue 11).
        (encode(unpaid(transactionId=18353)), "unpaid", "18353", "50"),
        (encode(refund(transactionId=18353)), "refund", "18353", "40"),
        (encode(unpaid(invoiceNumber=None)), "unpaid", "DK0018353", "50"),
        (encode(unpaid(invoiceNumber=None)), None, "DK0018353", "50"),
        (encode(unpaid(invoiceNumber={"no": 1})), "unpaid", "DK0018353", "50"),
        (encode(unpaid(transactionStatus=None)), "unpaid", "DK0018353", ""),
        (encode(unpaid(transactionStatus=50.5)), "unpaid", "DK0018353", "50.5"),
        (encode(unpaid(transactionStatus=[50])), "unpaid", "DK0018353", ""),
        (encode(unpaid(createdTime={"ms": 1})), "unpaid", "DK0018353", "50"),
        (encode(unpaid(message=[1, 2], activityCode={})), "unpaid", "DK0018353", "50"),
        (encode(refund(processDate=1705044612000)), "refund", "DK0018353", "40"),
    ],
)
def test_other_fields_of_any_type_are_tolerated(
    body: bytes, kind: str | None, transaction_id: str, status: str
) -> None:
    notification = parse_notification(body, kind)  # type: ignore[arg-type]
    assert notification.transaction_id == transaction_id
    assert notification.status == status


def test_process_date_as_epoch_millis_is_read() -> None:
    """DOKU's older KIRIMDOKU page sends ``processDate`` as epoch milliseconds (a number)."""
    notification = parse_notification(encode(refund(processDate=1705044612000)), "refund")
    assert notification.processed_at == datetime(2024, 1, 12, 7, 30, 12, tzinfo=UTC)
    as_text = parse_notification(encode(refund(processDate="1705044612000")), "refund")
    assert as_text.processed_at == notification.processed_at


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (encode(unpaid(transactionId=None)), "unpaid"),
        (encode(refund(transactionId=[18353])), "refund"),
        (encode(unpaid(transactionId={"id": "DK1"})), "unpaid"),
        (encode(unpaid(transactionId=True)), "unpaid"),
        (encode(unpaid(transactionId="")), "unpaid"),
        (encode(refund(transactionId="")), "refund"),
        (encode({"activityCode": "200"}), "refund"),
        (b"[1, 2, 3]", "refund"),
        (b'"just a string"', "unpaid"),
        (b"null", "refund"),
    ],
)
def test_wrong_shapes_are_parse_errors(body: bytes, kind: str | None) -> None:
    with pytest.raises(NotificationParseError) as info:
        parse_notification(body, kind)  # type: ignore[arg-type]
    assert type(info.value) is NotificationParseError
    assert isinstance(info.value, DokuError)
    assert not isinstance(info.value, WebhookVerificationError)


@pytest.mark.parametrize(
    "body", [b"{not json", b"", b"   ", b'{"transactionId": "DK1"', b"\xff\xfe{}", b"{}}"]
)
@pytest.mark.parametrize("kind", ["unpaid", "refund", None])
def test_invalid_json_is_a_parse_error(body: bytes, kind: str | None) -> None:
    with pytest.raises(NotificationParseError) as info:
        parse_notification(body, kind)  # type: ignore[arg-type]
    assert type(info.value) is NotificationParseError


def test_invalid_json_through_verify_and_parse_is_a_parse_error() -> None:
    with pytest.raises(NotificationParseError) as info:
        verify_and_parse(kat_headers(), b"{oops", verifier=kat_verifier())
    assert type(info.value) is NotificationParseError


@pytest.mark.parametrize("kind", ["unpaid", "refund"])
def test_invalid_utf8_inside_a_string_is_a_parse_error(kind: str) -> None:
    body = (
        b'{"transactionId": "DK\xff\xfe1", "invoiceNumber": "I1", "transactionStatus": "50",'
        b' "activityCode": "200"}'
    )
    with pytest.raises(NotificationParseError):
        parse_notification(body, kind)  # type: ignore[arg-type]


def test_unknown_fields_are_ignored() -> None:
    notification = parse_notification(encode(unpaid(newField={"nested": [1, 2]}, extra="x")))
    assert isinstance(notification, UnpaidNotification)
    assert notification.transaction_id == "DK0018353"


def test_activity_code_string_or_number() -> None:
    assert parse_notification(encode(unpaid(activityCode=200))).activity_code == 200
    assert parse_notification(encode(refund(activityCode="200"))).activity_code == "200"


def test_body_cannot_set_request_id_or_agent_key() -> None:
    """requestId/agentKey come from the verified headers, never from the body."""
    body = encode(unpaid(requestId="from-body", agentKey="EVIL"))
    notification = verify_and_parse(kat_headers(), body, verifier=kat_verifier())
    assert notification.request_id == KAT_REQUEST_ID
    assert notification.agent_key == KAT_AGENT


# --- MemoryDedupStore ----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_dedup_store_claims_once_until_ttl_expires() -> None:
    clock = FakeClock()
    store = MemoryDedupStore(clock=clock)
    assert await store.claim(["a", "b"], ttl=10.0) is True
    assert await store.claim(["a"], ttl=10.0) is False
    assert await store.claim(["b", "c"], ttl=10.0) is False  # any present key blocks
    assert await store.claim(["c"], ttl=10.0) is True  # ...and the failed claim stored nothing
    clock.now += 9.999
    assert await store.claim(["a"], ttl=10.0) is False
    clock.now += 0.002
    assert await store.claim(["a", "b"], ttl=10.0) is True  # expired: claimable again
    assert await store.claim(["a"], ttl=10.0) is False  # with a fresh ttl


async def test_memory_dedup_store_failed_claim_records_nothing() -> None:
    store = MemoryDedupStore(clock=FakeClock())
    assert await store.claim(["x"], ttl=60.0) is True
    assert await store.claim(["y", "x"], ttl=60.0) is False
    assert await store.claim(["y"], ttl=60.0) is True


async def test_memory_dedup_store_release_frees_keys() -> None:
    store = MemoryDedupStore(clock=FakeClock())
    assert await store.claim(["k1", "k2"], ttl=3600.0) is True
    await store.release(["k1", "k2"])
    assert len(store) == 0
    assert await store.claim(["k1"], ttl=3600.0) is True
    assert await store.claim(["k2"], ttl=3600.0) is True
    await store.release(["never-claimed"])  # harmless
    assert await store.claim(["k1"], ttl=3600.0) is False


async def test_memory_dedup_store_max_keys_bounds_memory() -> None:
    clock = FakeClock()
    store = MemoryDedupStore(max_keys=10, clock=clock)
    for i in range(50):
        assert await store.claim([f"k{i}"], ttl=3600.0) is True
    assert len(store) <= 11
    assert await store.claim(["k49"], ttl=3600.0) is False  # the newest are kept
