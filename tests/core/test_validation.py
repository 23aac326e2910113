"""Argument validation: every ``doku.kirim`` method rejects bad input with a
RequestValidationError naming the argument, before any I/O (no token request, no call), and
DokuClient rejects bad configuration with ConfigurationError."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from fakedoku import FakeDoku
from helpers import AGENT_KEY, CLIENT_ID, CLIENT_SECRET

from doku_async import (
    BankCodes,
    ConfigurationError,
    DokuAPIError,
    DokuClient,
    KirimPaths,
    RequestValidationError,
    RetryPolicy,
    Timeouts,
    _validation,
)

VALID: dict[str, dict[str, Any]] = {
    "account_inquiry": {
        "partner_reference_no": "inq-0001",
        "customer_number": "628115678890",
        "beneficiary_account_number": "8377388292",
        "beneficiary_bank_code": "014",
        "beneficiary_account_name": "FHILEA HERMANUS",
        "amount": Decimal("200000.00"),
    },
    "balance_inquiry": {"account_no": AGENT_KEY},
    "transfer_bank": {
        "partner_reference_no": "trf-0001",
        "customer_number": "628115678890",
        "beneficiary_account_number": "8377388292",
        "beneficiary_bank_code": "014",
        "amount": Decimal("200000.00"),
    },
    "check_status": {"original_partner_reference_no": "trf-0001"},
}
METHODS = tuple(VALID)

# Where each argument lands in the JSON body (dotted path).
WIRE: dict[str, dict[str, str]] = {
    "account_inquiry": {
        "partner_reference_no": "partnerReferenceNo",
        "customer_number": "customerNumber",
        "beneficiary_account_number": "beneficiaryAccountNumber",
        "beneficiary_bank_code": "additionalInfo.beneficiaryBankCode",
        "beneficiary_account_name": "additionalInfo.beneficiaryAccountName",
        "sender_country_code": "additionalInfo.senderCountryCode",
        "channel_code": "additionalInfo.channelCode",
        "amount": "amount.value",
        "currency": "amount.currency",
    },
    "balance_inquiry": {
        "account_no": "accountNo",
        "partner_reference_no": "partnerReferenceNo",
    },
    "transfer_bank": {
        "partner_reference_no": "partnerReferenceNo",
        "customer_number": "customerNumber",
        "beneficiary_account_number": "beneficiaryAccountNumber",
        "beneficiary_bank_code": "beneficiaryBankCode",
        "amount": "amount.value",
        "currency": "amount.currency",
        "session_id": "sessionId",
        "fee_type": "feeType",
        "channel_code": "additionalInfo.channelCode",
        "beneficiary_first_name": "additionalInfo.beneficiaryFirstName",
        "beneficiary_last_name": "additionalInfo.beneficiaryLastName",
        "beneficiary_phone_number": "additionalInfo.beneficiaryPhoneNumber",
        "beneficiary_bank_name": "additionalInfo.beneficiaryBankName",
        "beneficiary_account_name": "additionalInfo.beneficiaryAccountName",
        "sender_country_code": "additionalInfo.senderCountryCode",
        "sender_first_name": "additionalInfo.senderFirstName",
        "sender_last_name": "additionalInfo.senderLastName",
        "sender_personal_id": "additionalInfo.senderPersonalId",
        "sender_personal_id_type": "additionalInfo.senderPersonalIdType",
        "remark": "additionalInfo.remark",
    },
    "check_status": {
        "original_partner_reference_no": "originalPartnerReferenceNo",
        "original_reference_no": "originalReferenceNo",
        "original_external_id": "originalExternalId",
        "service_code": "serviceCode",
    },
}

# Length limits of free-text / digit arguments (from doku_async/resources/kirim.py).
LIMITS: dict[str, dict[str, int]] = {
    "account_inquiry": {
        "partner_reference_no": 64,
        "beneficiary_account_number": 32,
        # A bank code is exactly three digits and must be in the table: "123" (BPD Kalimantan
        # Barat) is sent, "1234" refused.
        "beneficiary_bank_code": 3,
        "beneficiary_account_name": 100,
    },
    "balance_inquiry": {"account_no": 16, "partner_reference_no": 64},
    "transfer_bank": {
        "partner_reference_no": 64,
        "beneficiary_account_number": 32,
        "beneficiary_bank_code": 3,
        "session_id": 25,
        "fee_type": 25,
        "beneficiary_first_name": 50,
        "beneficiary_last_name": 50,
        "beneficiary_bank_name": 100,
        "beneficiary_account_name": 100,
        "sender_first_name": 50,
        "sender_last_name": 50,
        "sender_personal_id": 50,
        "sender_personal_id_type": 20,
        "remark": 100,
    },
    "check_status": {
        "original_partner_reference_no": 64,
        "original_reference_no": 64,
        "original_external_id": 36,
    },
}
DIGIT_FIELDS = frozenset(
    {"beneficiary_account_number", "beneficiary_bank_code", "original_external_id"}
)


def _filler(field: str, n: int) -> str:
    return ("1234567890" * 20)[:n] if field in DIGIT_FIELDS else ("ABCDEFGHIJ" * 20)[:n]


async def _call(client: DokuClient, method: str, **overrides: Any) -> Any:
    kwargs = {**VALID[method], **overrides}
    return await getattr(client.kirim, method)(**kwargs)


def _assert_nothing_sent(fake: FakeDoku, client: DokuClient) -> None:
    assert fake.calls == []
    assert fake.token_requests == 0
    assert client.token_fetches == 0


def _wire(body: bytes, dotted: str) -> Any:
    value: Any = json.loads(body)
    for part in dotted.split("."):
        value = value[part]
    return value


# --- rejection cases --------------------------------------------------------------------------


def _rejections() -> list[Any]:
    cases: list[Any] = []

    def add(method: str, field: str, value: object, label: str) -> None:
        cases.append(pytest.param(method, field, value, id=f"{method}-{field}-{label}"))

    # Too long, at limit + 1.
    for method, limits in LIMITS.items():
        for field, limit in limits.items():
            add(method, field, _filler(field, limit + 1), f"len{limit + 1}")

    # Empty and blank strings (required and optional arguments alike).
    empties = {
        "account_inquiry": [
            "partner_reference_no",
            "customer_number",
            "beneficiary_account_number",
            "beneficiary_bank_code",
            "beneficiary_account_name",
            "currency",
            "sender_country_code",
            "channel_code",
            "amount",
        ],
        "balance_inquiry": ["account_no", "partner_reference_no"],
        "transfer_bank": [
            "partner_reference_no",
            "customer_number",
            "beneficiary_account_number",
            "beneficiary_bank_code",
            "currency",
            "session_id",
            "fee_type",
            "channel_code",
            "beneficiary_account_name",
            "beneficiary_phone_number",
            "sender_country_code",
            "remark",
            "amount",
        ],
        "check_status": [
            "original_partner_reference_no",
            "original_reference_no",
            "original_external_id",
            "service_code",
        ],
    }
    for method, fields in empties.items():
        for field in fields:
            add(method, field, "", "empty")
    for method, field in [
        ("account_inquiry", "beneficiary_account_name"),
        ("balance_inquiry", "account_no"),
        ("transfer_bank", "remark"),
        ("check_status", "original_reference_no"),
    ]:
        add(method, field, "   ", "blank")

    # Wrong types.
    wrong_types: list[tuple[str, str, object]] = [
        ("account_inquiry", "beneficiary_account_number", 8377388292),
        ("account_inquiry", "customer_number", 628115678890),
        ("balance_inquiry", "account_no", None),
        ("balance_inquiry", "account_no", 41879),
        ("transfer_bank", "beneficiary_bank_code", 14),
        ("transfer_bank", "remark", b"Remark"),
        ("check_status", "original_partner_reference_no", None),
    ]
    for method, field, wrong in wrong_types:
        add(method, field, wrong, f"type-{type(wrong).__name__}")

    # Account numbers and bank codes must be ASCII digits.
    for method in ("account_inquiry", "transfer_bank"):
        for field, bad in [
            ("beneficiary_account_number", "83773882a2"),
            ("beneficiary_account_number", "8377-388292"),
            ("beneficiary_account_number", "8377 388292"),
            ("beneficiary_account_number", "\uff18\uff13\uff17\uff17"),  # full-width digits
            ("beneficiary_bank_code", "O14"),
            ("beneficiary_bank_code", "-14"),
            ("beneficiary_bank_code", "\u0661\u0664"),  # Arabic-Indic digits
        ]:
            add(method, field, bad, repr(bad))

    # Bank codes: three digits, and known to the client's table.
    for method in ("account_inquiry", "transfer_bank"):
        for bad in ("999", "99", "0140", "1", "000", "12345678"):
            add(method, "beneficiary_bank_code", bad, f"bank-{bad}")

    # Phone numbers: 62..., 9 to 14 digits, digits only.
    phones = [
        "08115678890",
        "+628115678890",
        "6281234",
        "62812345",
        "628115678890123",
        "62811abc8890",
        "62 8115678890",
        "6281156788.0",
    ]
    for value in phones:
        add("account_inquiry", "customer_number", value, value)
        add("transfer_bank", "customer_number", value, value)
    for value in ("08115678890", "62812345", "628115678890123"):
        add("transfer_bank", "beneficiary_phone_number", value, value)

    # Amounts.
    amounts: list[tuple[object, str]] = [
        (0, "zero-int"),
        ("0", "zero-str"),
        (Decimal("0.00"), "zero-dec"),
        (-1, "neg-int"),
        ("-100.00", "neg-str"),
        (Decimal("-0.01"), "neg-dec"),
        ("1.005", "3dp-str"),
        (Decimal("1.005"), "3dp-dec"),
        ("0.001", "tiny"),
        (1.5, "float"),
        (200000.0, "float-whole"),
        (Decimal("NaN"), "nan-dec"),
        ("NaN", "nan-str"),
        (Decimal("Infinity"), "inf-dec"),
        ("-Infinity", "neginf-str"),
        ("abc", "abc"),
        ("1,000.00", "comma"),
        (True, "bool-true"),
        (False, "bool-false"),
        (None, "none"),
        ([200000], "list"),
        ("100000000000000.00", "above-max"),
        (Decimal("99999999999999.999"), "above-max-3dp"),
        ("1e20", "above-max-exp"),
    ]
    for method in ("account_inquiry", "transfer_bank"):
        for amount, label in amounts:
            add(method, "amount", amount, label)

    # Currency, country code, channel code, service code.
    for method in ("account_inquiry", "transfer_bank"):
        for value in ("idr", "RUPIAH", "ID", "ID1", "I R", "IDRX"):
            add(method, "currency", value, value)
        for value in ("007", "ab", "7a", " 7", "\u0667"):
            add(method, "channel_code", value, value)
    for value in ("id", "IDN", "I", "1D", "Id"):
        add("account_inquiry", "sender_country_code", value, value)
        add("transfer_bank", "sender_country_code", value, value)
    for value in ("4", "430", "ab", "4a"):
        add("check_status", "service_code", value, value)

    # Partner references: visible ASCII only.
    for method, field in [
        ("account_inquiry", "partner_reference_no"),
        ("balance_inquiry", "partner_reference_no"),
        ("transfer_bank", "partner_reference_no"),
        ("check_status", "original_partner_reference_no"),
    ]:
        for value in ("ref 0001", "ref\t1", "réf-1", "ref\n1"):
            add(method, field, value, repr(value))

    # original_external_id: digits only.
    for value in ("892834eWg", "12-34", "1 2", "0x1F"):
        add("check_status", "original_external_id", value, value)
    return cases


REJECTIONS = _rejections()


@pytest.mark.parametrize(("method", "field", "value"), REJECTIONS)
async def test_rejects_bad_argument_before_any_io(
    fake: FakeDoku, client: DokuClient, method: str, field: str, value: object
) -> None:
    with pytest.raises(RequestValidationError) as info:
        await _call(client, method, **{field: value})
    error = info.value
    assert error.field == field
    assert str(error).startswith(f"{field}: ")
    assert error.problem
    assert isinstance(error, ValueError)
    _assert_nothing_sent(fake, client)


async def test_float_amount_message_mentions_float(fake: FakeDoku, client: DokuClient) -> None:
    for method in ("account_inquiry", "transfer_bank"):
        with pytest.raises(RequestValidationError, match="float") as info:
            await _call(client, method, amount=1.5)
        assert info.value.field == "amount"
    _assert_nothing_sent(fake, client)


async def test_messages_do_not_echo_the_value(fake: FakeDoku, client: DokuClient) -> None:
    sentinel = "SENTINEL9876543210"
    for method, field, value in [
        ("account_inquiry", "customer_number", sentinel),
        ("transfer_bank", "beneficiary_account_number", sentinel),
        ("transfer_bank", "amount", sentinel),
        ("balance_inquiry", "account_no", sentinel * 2),
        ("check_status", "original_external_id", sentinel),
        ("transfer_bank", "sender_personal_id", sentinel * 3),
    ]:
        with pytest.raises(RequestValidationError) as info:
            await _call(client, method, **{field: value})
        assert sentinel not in str(info.value)
        assert sentinel not in repr(info.value)
    _assert_nothing_sent(fake, client)


# --- accepted edge inputs ---------------------------------------------------------------------


def _limit_acceptances() -> list[Any]:
    cases: list[Any] = []
    for method, limits in LIMITS.items():
        for field, limit in limits.items():
            cases.append(pytest.param(method, field, limit, id=f"{method}-{field}-len{limit}"))
    return cases


@pytest.mark.parametrize(("method", "field", "limit"), _limit_acceptances())
async def test_value_at_the_length_limit_is_sent(
    fake: FakeDoku, client: DokuClient, method: str, field: str, limit: int
) -> None:
    value = _filler(field, limit)
    # DOKU (the fake) may reject it on business grounds (unknown agent key); it was sent.
    with contextlib.suppress(DokuAPIError):
        await _call(client, method, **{field: value})
    calls = fake.calls_for(method)
    assert len(calls) >= 1
    assert _wire(calls[0].body, WIRE[method][field]) == value


@pytest.mark.parametrize(
    ("method", "field", "value"),
    [
        ("account_inquiry", "customer_number", "621234567"),
        ("account_inquiry", "customer_number", "62123456789012"),
        ("transfer_bank", "customer_number", "621234567"),
        ("transfer_bank", "beneficiary_phone_number", "62811600174"),
        ("account_inquiry", "channel_code", "07"),
        ("account_inquiry", "channel_code", "7"),
        ("transfer_bank", "channel_code", "07"),
        ("account_inquiry", "sender_country_code", "SG"),
        ("transfer_bank", "sender_country_code", "ID"),
        ("account_inquiry", "currency", "USD"),
        ("check_status", "service_code", "43"),
        ("check_status", "original_external_id", "41807553358950093184162180797837"),
        ("balance_inquiry", "partner_reference_no", "!~visible-ASCII~!"),
        ("transfer_bank", "beneficiary_account_name", "Siti Nurhaliza bt. Ahmad / José"),
    ],
)
async def test_valid_edge_values_are_sent_verbatim(
    fake: FakeDoku, client: DokuClient, method: str, field: str, value: str
) -> None:
    await _call(client, method, **{field: value})
    (call,) = fake.calls_for(method)
    assert _wire(call.body, WIRE[method][field]) == value


@pytest.mark.parametrize(
    ("amount", "wire"),
    [
        (Decimal("1.000"), "1.00"),
        (Decimal("1.0"), "1.00"),
        (Decimal("1"), "1.00"),
        (200000, "200000.00"),
        ("200000", "200000.00"),
        ("200000.5", "200000.50"),
        ("0.01", "0.01"),
        (Decimal("1E+2"), "100.00"),
        ("99999999999999.99", "99999999999999.99"),
    ],
)
async def test_amount_is_normalised_to_two_decimals_on_the_wire(
    fake: FakeDoku, client: DokuClient, amount: object, wire: str
) -> None:
    response = await _call(client, "account_inquiry", amount=amount)
    (call,) = fake.calls_for("account_inquiry")
    assert _wire(call.body, "amount") == {"value": wire, "currency": "IDR"}
    assert response.amount.value == Decimal(wire)


async def test_transfer_int_amount_on_the_wire(fake: FakeDoku, client: DokuClient) -> None:
    result = await _call(client, "transfer_bank", amount=200000)
    assert result.succeeded
    (call,) = fake.calls_for("transfer_bank")
    body = json.loads(call.body)
    assert body["amount"] == {"value": "200000.00", "currency": "IDR"}
    assert b'"value":"200000.00"' in call.body
    # No optional argument given: no additionalInfo, sessionId or feeType on the wire.
    assert set(body) == {
        "partnerReferenceNo",
        "customerNumber",
        "beneficiaryAccountNumber",
        "beneficiaryBankCode",
        "amount",
    }
    assert fake.transfers["trf-0001"].amount == "200000.00"


# --- _validation.amount, unit level -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.000"), "1.00"),
        (Decimal("200000"), "200000.00"),
        (200000, "200000.00"),
        (1, "1.00"),
        ("0.01", "0.01"),
        ("12.3", "12.30"),
        ("1E+2", "100.00"),
        (Decimal("5.50000"), "5.50"),
        ("99999999999999.99", "99999999999999.99"),
    ],
)
def test_amount_accepts_and_quantizes(value: object, expected: str) -> None:
    result = _validation.amount("amount", value)
    assert isinstance(result, Decimal)
    assert str(result) == expected
    assert result.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (1.5, "not float"),
        (0.1, "not float"),
        (True, "not bool"),
        (None, "not NoneType"),
        (b"1.00", "not bytes"),
        ("abc", "is not a number"),
        ("", "is not a number"),
        ("NaN", "finite"),
        ("sNaN", "finite"),
        (Decimal("Infinity"), "finite"),
        ("1.005", "at most 2 decimal places"),
        (Decimal("0.001"), "at most 2 decimal places"),
        (0, "at least 0.01"),
        ("-5", "at least 0.01"),
        ("-0", "at least 0.01"),
        ("100000000000000", "at most 99999999999999.99"),
    ],
)
def test_amount_rejects(value: object, fragment: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        _validation.amount("my_amount", value)
    assert info.value.field == "my_amount"
    assert fragment in info.value.problem


def test_amount_custom_bounds() -> None:
    assert _validation.amount("a", "10", minimum=Decimal("10")) == Decimal("10.00")
    with pytest.raises(RequestValidationError, match="at least 10"):
        _validation.amount("a", "9.99", minimum=Decimal("10"))
    assert _validation.amount("a", 500, maximum=Decimal("500")) == Decimal("500.00")
    with pytest.raises(RequestValidationError, match="at most 500"):
        _validation.amount("a", "500.01", maximum=Decimal("500"))


def test_amount_trailing_zeros_beyond_two_places_are_fine() -> None:
    assert _validation.amount("a", "7.1000000000") == Decimal("7.10")


def test_amount_huge_value_with_three_decimals_is_a_validation_error() -> None:
    with pytest.raises(RequestValidationError):
        _validation.amount("amount", "123456789012345678901234567.001")


def test_phone_boundaries() -> None:
    assert _validation.phone("p", "621234567") == "621234567"
    assert _validation.phone("p", "62123456789012") == "62123456789012"
    for bad in ("62123456", "621234567890123", "0812345678", "62-1234567"):
        with pytest.raises(RequestValidationError) as info:
            _validation.phone("p", bad)
        assert info.value.field == "p"


def test_digits_and_text_helpers() -> None:
    assert _validation.digits("d", "0123", max_len=4) == "0123"
    with pytest.raises(RequestValidationError, match="only digits"):
        _validation.digits("d", "12a", max_len=4)
    with pytest.raises(RequestValidationError, match="exactly 2 characters"):
        _validation.text("t", "ABC", max_len=2, min_len=2)
    with pytest.raises(RequestValidationError, match="1 to 3 characters"):
        _validation.text("t", "ABCD", max_len=3)
    assert _validation.optional_text("o", None, max_len=3) is None
    with pytest.raises(RequestValidationError, match="must not be empty"):
        _validation.optional_text("o", "", max_len=3)


# --- DokuClient configuration errors ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "fragment"),
    [
        ((CLIENT_ID, ""), {}, "client_secret"),
        (("", CLIENT_SECRET), {}, "client_id"),
        (("   ", CLIENT_SECRET), {}, "client_id"),
        ((CLIENT_ID, CLIENT_SECRET), {"environment": "staging"}, "environment"),
        ((CLIENT_ID, CLIENT_SECRET), {"environment": "Sandbox"}, "environment"),
        ((CLIENT_ID, CLIENT_SECRET), {"base_url": "api.doku.com"}, "base_url"),
        ((CLIENT_ID, CLIENT_SECRET), {"base_url": "//api.doku.com"}, "base_url"),
        ((CLIENT_ID, CLIENT_SECRET), {"base_url": "ftp://api.doku.com"}, "base_url"),
        ((CLIENT_ID, CLIENT_SECRET), {"base_url": "https://"}, "base_url"),
        ((CLIENT_ID, CLIENT_SECRET), {"base_url": "https://api.doku.com/?a=1"}, "base_url"),
        ((CLIENT_ID, CLIENT_SECRET), {"base_url": "http://127.0.0.1:8080/x?y"}, "base_url"),
        ((CLIENT_ID, CLIENT_SECRET), {"token_timestamp_format": "local"}, "token_timestamp"),
        ((CLIENT_ID, CLIENT_SECRET), {"request_timestamp_format": "UTC"}, "request_timestamp"),
        ((CLIENT_ID, CLIENT_SECRET), {"kirim_paths": "/v2.0"}, "kirim_paths"),
        ((CLIENT_ID, CLIENT_SECRET), {"kirim_paths": "v1.0"}, "kirim_paths"),
        ((CLIENT_ID, CLIENT_SECRET), {"channel_id": ""}, "channel_id"),
        ((CLIENT_ID, CLIENT_SECRET), {"token_refresh_margin": 0}, "token_refresh_margin"),
        ((CLIENT_ID, CLIENT_SECRET), {"token_refresh_margin": -1.0}, "token_refresh_margin"),
        ((CLIENT_ID, CLIENT_SECRET, b"not a key"), {}, "private_key"),
        ((CLIENT_ID, CLIENT_SECRET, "/nonexistent/merchant.pem"), {}, "private_key"),
    ],
)
def test_client_configuration_errors(
    args: tuple[Any, ...], kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigurationError, match=fragment) as info:
        DokuClient(*args, **kwargs)
    assert type(info.value) is ConfigurationError  # typed (also a ValueError)
    assert CLIENT_SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Timeouts(connect=0), "timeouts"),
        (lambda: Timeouts(attempt=0), "timeouts"),
        (lambda: Timeouts(total=0), "timeouts"),
        (lambda: Timeouts(total=-5), "timeouts"),
        (lambda: RetryPolicy(max_attempts=0), "max_attempts"),
        (lambda: RetryPolicy(max_attempts=-1), "max_attempts"),
        (lambda: RetryPolicy(status_checks=0), "status_checks"),
        (lambda: RetryPolicy(initial_backoff=-0.1), "backoff"),
        (lambda: RetryPolicy(max_retry_after=-1), "backoff"),
        (lambda: KirimPaths.family("/v3"), "kirim_paths"),
        (
            lambda: KirimPaths(
                account_inquiry="/a",
                balance_inquiry="b",
                transfer_bank="/c",
                check_status="/d",
            ),
            "kirim_paths.balance_inquiry",
        ),
        (
            lambda: KirimPaths(
                account_inquiry="/a",
                balance_inquiry="/b",
                transfer_bank="/c?x=1",
                check_status="/d",
            ),
            "kirim_paths.transfer_bank",
        ),
    ],
)
def test_config_value_objects_reject_bad_values(build: Callable[[], object], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        build()


def test_valid_configuration_builds_without_io(keypair: tuple[bytes, bytes]) -> None:
    client = DokuClient(
        CLIENT_ID,
        CLIENT_SECRET,
        keypair[0],
        environment="production",
        kirim_paths="/snap/v1.1",
        timeouts=Timeouts(connect=1, attempt=2, total=3),
        retry=RetryPolicy(max_attempts=1),
    )
    assert client.base_url == "https://api.doku.com"
    assert client.kirim_paths.transfer_bank == "/snap/v1.1/emoney/transfer-bank"
    assert client.token_fetches == 0
    assert CLIENT_SECRET not in repr(client)


async def test_kirim_call_without_private_key_is_a_configuration_error(
    fake: FakeDoku, fake_url: str
) -> None:
    async with DokuClient(CLIENT_ID, CLIENT_SECRET, base_url=fake_url) as client:
        for method in METHODS:
            with pytest.raises(ConfigurationError, match="private_key"):
                await _call(client, method)
        assert client.token_fetches == 0
    assert fake.calls == []
    assert fake.token_requests == 0


@pytest.mark.parametrize("text", ["١٢٣", "1_000", " 100", "100 ", "1\u00a0000"])
def test_amount_text_must_be_plain_ascii_digits(text: str) -> None:
    """Decimal() would read these; money amounts must be unambiguous ASCII numbers."""
    with pytest.raises(RequestValidationError) as info:
        _validation.amount("amount", text)
    assert info.value.field == "amount"
    with pytest.raises(RequestValidationError):
        _validation.whole_amount("amount", text, minimum=1, maximum=10**12)


def test_lone_surrogate_text_is_a_validation_error() -> None:
    with pytest.raises(RequestValidationError) as info:
        _validation.text("remark", "ok\ud800", max_len=100)
    assert info.value.field == "remark"
    assert "Unicode" in info.value.problem


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"channel_id": "H2H\r\nX-Evil: 1"}, "channel_id"),
        ({"channel_id": "H 2H"}, "channel_id"),
        ({"check_status_service_code": "4"}, "check_status_service_code"),
        ({"check_status_service_code": "4x"}, "check_status_service_code"),
    ],
)
def test_header_and_code_settings_are_checked_at_construction(
    kwargs: dict[str, Any], fragment: str
) -> None:
    """Values that go into every request's headers or bodies fail at construction, not as an
    aiohttp ValueError on the first call."""
    with pytest.raises(ConfigurationError, match=fragment):
        DokuClient("BRN-0001", "secret", **kwargs)


# --- bank codes -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["account_inquiry", "transfer_bank"])
@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("999", "unknown bank code '999'"),
        ("99", "three-digit bank code such as '014', not '99'"),
        ("0140", "three-digit bank code such as '014', not '0140'"),
    ],
)
async def test_bank_code_messages_name_the_code(
    fake: FakeDoku, client: DokuClient, method: str, code: str, fragment: str
) -> None:
    with pytest.raises(RequestValidationError, match=fragment) as info:
        await _call(client, method, beneficiary_bank_code=code)
    assert info.value.field == "beneficiary_bank_code"
    if code == "999":
        assert "with_extra" in str(info.value)  # says how to extend the table
    _assert_nothing_sent(fake, client)


async def test_extended_bank_codes_are_sent(
    fake: FakeDoku, fake_url: str, keypair: tuple[bytes, bytes]
) -> None:
    codes = BankCodes.default().with_extra({"999": "My test bank"})
    async with DokuClient(
        CLIENT_ID, CLIENT_SECRET, keypair[0], base_url=fake_url, bank_codes=codes
    ) as client:
        assert client.bank_codes.name_of("999") == "My test bank"
        await _call(client, "account_inquiry", beneficiary_bank_code="999")
    (call,) = fake.calls_for("account_inquiry")
    assert _wire(call.body, "additionalInfo.beneficiaryBankCode") == "999"


def test_bank_codes_must_be_a_table() -> None:
    with pytest.raises(ConfigurationError, match="bank_codes"):
        DokuClient(CLIENT_ID, CLIENT_SECRET, bank_codes={"014": "BCA"})  # type: ignore[arg-type]
    assert DokuClient(CLIENT_ID, CLIENT_SECRET).bank_codes is BankCodes.default()
