"""Wire models: lenient decoding of DOKU's answers (the seed page's exact samples and the
sandbox's quirks) and strict, byte-exact encoding of requests."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from doku_async import _serde
from doku_async.models import (
    AccountInfo,
    AccountInquiryAdditionalInfo,
    AccountInquiryRequest,
    AccountInquiryResponse,
    Amount,
    BalanceInquiryRequest,
    BalanceInquiryResponse,
    CheckStatusRequest,
    CheckStatusResponse,
    SnapResponse,
    TokenRequest,
    TokenResponse,
    TransactionStatus,
    TransferBankAdditionalInfo,
    TransferBankRequest,
    TransferBankResponse,
    TransferResult,
)

# --- the seed page's sample answers, verbatim (/work/shared/seeds/doku-kirim-doku.txt) --------

SEED_ACCOUNT_INQUIRY = b"""{
  "responseCode": 2004200,
  "responseMessage": "Successful",
  "referenceNo": "I0438729855304540",
  "partnerReferenceNo": "hsjkans284b2he54",
  "beneficiaryAccountNumber": "8377388292",
  "beneficiaryAccountName": "SUHUT",
  "beneficiaryBankCode": "014",
  "beneficiaryBankShortName": "Bank Central Asia BCA",
  "beneficiaryBankName": "Bank Central Asia BCA",
  "amount": {
    "value": "200000.00",
    "currency": "IDR"
  },
  "sessionId": "I0438729855304540",
  "additionalInfo": {
    "senderCountryCode": "ID",
    "forexRate": "1.00",
    "forexOriginCurrency": "IDR",
    "feeAmount": "4500.00",
    "feeCurrency": "IDR",
    "beneficiaryAmount": "200000.00",
    "referenceNumber": "c5fe5465-0843-4ac7-9c93-57cb2c5ef6b2"
  }
}"""

SEED_BALANCE = b"""{
  "responseCode": 2001100,
  "responseMessage": "Successful",
  "accountNo": "A41879",
  "name": "Simulator Indo Agent",
  "accountInfos": {
    "holdAmount": {
      "value": "0.00",
      "currency": "IDR"
    },
    "avaliableBalance": {
      "value": "823781442.13",
      "currency": "IDR"
    }
  },
  "additionalInfo": {
    "creditAlertLimit": {
      "value": "65000.00",
      "currency": "IDR"
    }
  }
}"""

SEED_TRANSFER = b"""{
  "responseCode": 2004300,
  "responseMessage": "Successful",
  "referenceNo": "DK01123220",
  "partnerReferenceNo": "2020102900000000000001",
  "transactionDate": "2022-11-11T10:51:48+07:00",
  "referenceNumber": "39448581-c741-44f9-b3af-98616e2229b1",
  "additionalInfo": {
    "sessionId": "I0438729855304540",
    "amount": "200000.00"
  }
}"""

SEED_CHECK_STATUS = b"""{
  "responseCode": 2005300,
  "responseMessage": "Successful",
  "originalReferenceNo": "DK01123220",
  "originalPartnerReferenceNo": "2020102900000000000001",
  "serviceCode": 43,
  "latestTransactionStatus": "00",
  "amount": {
    "value": "65000.00",
    "currency": "IDR"
  },
  "transactionDate": "2024-09-17T14:41:52. 022+07:00",
  "originalResponseCode": 0,
  "originalResponseMessage": "Transfer Approve",
  "transactionStatusDesc": "Transaction is successfully processed",
  "sessionId": "I0438729855304540",
  "additionalInfo": {
    "cashInTime": "2024-09-17 13:56:57",
    "remark": "Remark test",
    "beneficiaryAmount": "200000.00"
  }
}"""


def _with(seed: bytes, **changes: Any) -> bytes:
    """The seed body with top-level keys replaced (``None`` removes the key)."""
    body = json.loads(seed)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return json.dumps(body).encode()


# --- seed samples decode ----------------------------------------------------------------------


def test_seed_account_inquiry_decodes() -> None:
    r = _serde.decode(AccountInquiryResponse, SEED_ACCOUNT_INQUIRY)
    assert r.response_code == "2004200"
    assert r.raw_response_code == 2004200
    assert r.response_message == "Successful"
    assert r.session_id == "I0438729855304540"
    assert r.reference_no == "I0438729855304540"
    assert r.beneficiary_account_name == "SUHUT"
    assert r.beneficiary_bank_short_name == "Bank Central Asia BCA"
    assert r.amount == Amount(value=Decimal("200000.00"), currency="IDR")
    assert r.additional_info is not None
    assert r.additional_info.fee_amount == "4500.00"
    assert r.additional_info.reference_number == "c5fe5465-0843-4ac7-9c93-57cb2c5ef6b2"


def test_seed_balance_decodes_with_misspelled_field() -> None:
    r = _serde.decode(BalanceInquiryResponse, SEED_BALANCE)
    assert r.response_code == "2001100"
    assert r.account_no == "A41879"
    assert isinstance(r.account_infos, AccountInfo)  # an object, as on the seed page
    assert r.available_balance == Decimal("823781442.13")
    assert str(r.available_balance) == "823781442.13"
    (info,) = r.accounts
    assert info.available_balance is None
    assert info.avaliable_balance == Amount(value=Decimal("823781442.13"), currency="IDR")
    assert info.balance == info.avaliable_balance
    assert info.hold_amount == Amount(value=Decimal("0.00"), currency="IDR")
    assert r.additional_info is not None
    assert r.additional_info.credit_alert_limit == Amount(value=Decimal("65000.00"), currency="IDR")


def test_seed_transfer_decodes() -> None:
    r = _serde.decode(TransferBankResponse, SEED_TRANSFER)
    assert r.response_code == "2004300"
    assert r.reference_no == "DK01123220"
    assert r.partner_reference_no == "2020102900000000000001"
    assert r.transaction_date == "2022-11-11T10:51:48+07:00"
    assert r.additional_info is not None
    assert r.additional_info.session_id == "I0438729855304540"
    assert r.additional_info.amount == "200000.00"


def test_seed_check_status_decodes() -> None:
    r = _serde.decode(CheckStatusResponse, SEED_CHECK_STATUS)
    assert r.response_code == "2005300"
    assert r.service_code == 43
    assert r.original_response_code == 0
    assert r.latest_transaction_status == "00"
    assert r.transaction_status == "00"
    assert r.status_description == "success"
    assert r.transaction_date == "2024-09-17T14:41:52. 022+07:00"  # malformed, kept verbatim
    assert r.amount == Amount(value=Decimal("65000.00"), currency="IDR")
    assert r.original_reference_no == "DK01123220"
    assert r.session_id == "I0438729855304540"
    assert r.additional_info == {
        "cashInTime": "2024-09-17 13:56:57",
        "remark": "Remark test",
        "beneficiaryAmount": "200000.00",
    }


# --- responseCode as number or string ---------------------------------------------------------


@pytest.mark.parametrize(
    ("response_type", "seed", "code"),
    [
        (AccountInquiryResponse, SEED_ACCOUNT_INQUIRY, "2004200"),
        (BalanceInquiryResponse, SEED_BALANCE, "2001100"),
        (TransferBankResponse, SEED_TRANSFER, "2004300"),
        (CheckStatusResponse, SEED_CHECK_STATUS, "2005300"),
        (SnapResponse, SEED_TRANSFER, "2004300"),
    ],
)
@pytest.mark.parametrize("as_number", [True, False], ids=["number", "string"])
def test_response_code_number_or_string(
    response_type: type[SnapResponse], seed: bytes, code: str, as_number: bool
) -> None:
    body = _with(seed, responseCode=int(code) if as_number else code)
    decoded = _serde.decode(response_type, body)
    assert decoded.response_code == code
    assert isinstance(decoded.response_code, str)
    assert len(decoded.response_code) == 7


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"responseCode":4044311}', "4044311"),
        (b'{"responseCode":"4044311"}', "4044311"),
        (b'{"responseCode":"4044311","responseMessage":"Invalid Account"}', "4044311"),
        (b"{}", ""),
    ],
)
def test_envelope_response_code(raw: bytes, expected: str) -> None:
    assert _serde.decode(SnapResponse, raw).response_code == expected


# --- balance: both shapes of accountInfos -----------------------------------------------------


def test_balance_account_infos_as_array_with_correct_spelling() -> None:
    body = _with(
        SEED_BALANCE,
        accountInfos=[
            {
                "holdAmount": {"value": "0.00", "currency": "IDR"},
                "availableBalance": {"value": "823781442.13", "currency": "IDR"},
            }
        ],
    )
    r = _serde.decode(BalanceInquiryResponse, body)
    assert isinstance(r.account_infos, list)
    assert r.available_balance == Decimal("823781442.13")
    assert r.accounts[0].available_balance == Amount(value=Decimal("823781442.13"), currency="IDR")
    assert r.accounts[0].avaliable_balance is None


def test_balance_array_takes_first_account_with_a_balance() -> None:
    body = _with(
        SEED_BALANCE,
        accountInfos=[
            {"holdAmount": {"value": "1.00", "currency": "IDR"}},
            {"availableBalance": {"value": "5.55", "currency": "IDR"}},
            {"availableBalance": {"value": "9.99", "currency": "IDR"}},
        ],
    )
    r = _serde.decode(BalanceInquiryResponse, body)
    assert len(r.accounts) == 3
    assert r.available_balance == Decimal("5.55")


def test_balance_correct_spelling_wins_over_misspelling() -> None:
    body = _with(
        SEED_BALANCE,
        accountInfos={
            "availableBalance": {"value": "10.00", "currency": "IDR"},
            "avaliableBalance": {"value": "20.00", "currency": "IDR"},
        },
    )
    assert _serde.decode(BalanceInquiryResponse, body).available_balance == Decimal("10.00")


@pytest.mark.parametrize("infos", [None, [], {}])
def test_balance_without_balance_is_none(infos: object) -> None:
    body = _with(SEED_BALANCE, accountInfos=infos) if infos is not None else b"{}"
    r = _serde.decode(BalanceInquiryResponse, body)
    assert r.available_balance is None


def test_balance_amount_as_json_number_stays_exact() -> None:
    body = _with(
        SEED_BALANCE,
        accountInfos=[{"availableBalance": {"value": 0, "currency": "IDR"}}],
    ).replace(b'"value": 0', b'"value": 823781442.13')
    r = _serde.decode(BalanceInquiryResponse, body)
    assert r.available_balance == Decimal("823781442.13")


# --- transfer: additionalInfo.amount two ways -------------------------------------------------


def test_transfer_additional_amount_as_object() -> None:
    body = _with(
        SEED_TRANSFER,
        additionalInfo={
            "sessionId": "I0438729855304540",
            "amount": {"value": "200000.00", "currency": "IDR"},
        },
    )
    r = _serde.decode(TransferBankResponse, body)
    assert r.additional_info is not None
    assert r.additional_info.amount == Amount(value=Decimal("200000.00"), currency="IDR")


def test_transfer_additional_amount_as_plain_string() -> None:
    r = _serde.decode(TransferBankResponse, SEED_TRANSFER)
    assert r.additional_info is not None
    assert isinstance(r.additional_info.amount, str)
    assert r.additional_info.amount == "200000.00"


# --- check status quirks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("00", "00"),
        (0, "00"),
        ("03", "03"),
        (3, "03"),
        (7, "07"),
        ("07", "07"),
        (None, ""),
    ],
)
def test_latest_transaction_status_number_or_string(raw: object, expected: str) -> None:
    body = _with(SEED_CHECK_STATUS, latestTransactionStatus=raw)
    r = _serde.decode(CheckStatusResponse, body)
    assert r.transaction_status == expected


def test_check_status_numbers_and_strings_for_codes() -> None:
    body = _with(SEED_CHECK_STATUS, serviceCode="43", originalResponseCode="2004300")
    r = _serde.decode(CheckStatusResponse, body)
    assert r.service_code == "43"
    assert r.original_response_code == "2004300"


@pytest.mark.parametrize(
    "date",
    [
        "2024-09-17T14:41:52. 022+07:00",
        "2024-09-17 14:41:52",
        "17/09/2024",
        "",
        "not a date",
    ],
)
def test_malformed_transaction_date_is_kept_as_text(date: str) -> None:
    r = _serde.decode(CheckStatusResponse, _with(SEED_CHECK_STATUS, transactionDate=date))
    assert r.transaction_date == date


def test_unknown_status_code_is_tolerated() -> None:
    r = _serde.decode(CheckStatusResponse, _with(SEED_CHECK_STATUS, latestTransactionStatus="99"))
    assert r.transaction_status == "99"
    assert r.status_description == "unknown (99)"


# --- unknown fields are ignored ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("response_type", "seed", "nested"),
    [
        (AccountInquiryResponse, SEED_ACCOUNT_INQUIRY, True),
        (BalanceInquiryResponse, SEED_BALANCE, True),
        (TransferBankResponse, SEED_TRANSFER, True),
        # additionalInfo is a free-form dict here: unknown keys are kept, not dropped.
        (CheckStatusResponse, SEED_CHECK_STATUS, False),
        (TokenResponse, b'{"responseCode":"2007300","accessToken":"t"}', False),
    ],
)
def test_unknown_fields_are_ignored(
    response_type: type[SnapResponse], seed: bytes, nested: bool
) -> None:
    body = json.loads(seed)
    body["brandNewField"] = {"nested": [1, 2, {"x": None}]}
    body["anotherOne"] = 12.5
    if nested:
        body["additionalInfo"]["futureField"] = "yes"
    decoded = _serde.decode(response_type, json.dumps(body).encode())
    assert decoded == _serde.decode(response_type, seed)
    assert decoded.response_code.startswith("200")


def test_unknown_nested_amount_fields_are_ignored() -> None:
    body = _with(
        SEED_TRANSFER, additionalInfo={"amount": {"value": "1.00", "currency": "IDR", "x": 1}}
    )
    r = _serde.decode(TransferBankResponse, body)
    assert r.additional_info is not None
    assert r.additional_info.amount == Amount(value=Decimal("1.00"), currency="IDR")


def test_every_response_field_is_optional() -> None:
    for response_type in (
        AccountInquiryResponse,
        BalanceInquiryResponse,
        TransferBankResponse,
        CheckStatusResponse,
        TokenResponse,
    ):
        decoded = _serde.decode(response_type, b"{}")
        assert decoded.response_code == ""


def test_decode_errors_are_msgspec_errors() -> None:
    with pytest.raises(msgspec.DecodeError):
        _serde.decode(TransferBankResponse, b"<html>502 Bad Gateway</html>")
    with pytest.raises(msgspec.ValidationError):
        _serde.decode(TransferBankResponse, b'{"responseCode": true}')
    with pytest.raises(msgspec.ValidationError):
        _serde.decode(TransferBankResponse, b"[]")


def test_decoders_are_cached() -> None:
    assert _serde.decoder(CheckStatusResponse) is _serde.decoder(CheckStatusResponse)


# --- token answer -----------------------------------------------------------------------------

TOKEN_VALUE = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.sig-DO-NOT-LEAK"


@pytest.mark.parametrize("expires_in", ["900", 900], ids=["string", "int"])
def test_token_response_lifetime(expires_in: object) -> None:
    body = json.dumps(
        {
            "responseCode": "2007300",
            "responseMessage": "Successful",
            "accessToken": TOKEN_VALUE,
            "tokenType": "Bearer",
            "expiresIn": expires_in,
            "additionalInfo": {},
        }
    ).encode()
    r = _serde.decode(TokenResponse, body)
    assert r.lifetime == 900.0
    assert isinstance(r.lifetime, float)
    assert r.access_token == TOKEN_VALUE
    assert r.response_code == "2007300"


def test_token_response_lifetime_defaults() -> None:
    assert _serde.decode(TokenResponse, b"{}").lifetime == 900.0
    assert _serde.decode(TokenResponse, b'{"expiresIn":"soon"}').lifetime == 900.0
    assert _serde.decode(TokenResponse, b'{"expiresIn":"60"}').lifetime == 60.0


@pytest.mark.parametrize("expires_in", ["NaN", "inf"])
def test_token_response_lifetime_is_finite(expires_in: str) -> None:
    body = json.dumps({"responseCode": "2007300", "expiresIn": expires_in}).encode()
    lifetime = _serde.decode(TokenResponse, body).lifetime
    assert math.isfinite(lifetime)


def test_token_response_repr_hides_the_token() -> None:
    body = json.dumps({"responseCode": 2007300, "accessToken": TOKEN_VALUE}).encode()
    r = _serde.decode(TokenResponse, body)
    for text in (repr(r), str(r), repr([r]), f"{r}"):
        assert TOKEN_VALUE not in text
        assert "c2VjcmV0LXRva2Vu" not in text
    assert "***" in repr(r)
    assert "2007300" in repr(r)


# --- TransactionStatus ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "word", "final"),
    [
        ("00", "success", True),
        ("01", "initiated", False),
        ("02", "paying", False),
        ("03", "pending", False),
        ("04", "refunded", True),
        ("05", "canceled", True),
        ("06", "failed", True),
        ("07", "not found", False),
        ("99", "unknown (99)", False),
        ("", "unknown ()", False),
    ],
)
def test_transaction_status_describe_and_is_final(code: str, word: str, final: bool) -> None:
    assert TransactionStatus.describe(code) == word
    assert TransactionStatus.is_final(code) is final


def test_transaction_status_groups() -> None:
    assert {"01", "02", "03"} == TransactionStatus.IN_PROGRESS
    assert {"04", "05", "06"} == TransactionStatus.UNSUCCESSFUL
    assert TransactionStatus.SUCCESS not in TransactionStatus.UNSUCCESSFUL
    assert TransactionStatus.NOT_FOUND == "07"


def test_transfer_result_succeeded() -> None:
    assert TransferResult(status="succeeded", partner_reference_no="r", external_id="1").succeeded
    # Accepted (2004300) and pending are not (yet) paid: never reported as succeeded.
    for state in ("accepted", "pending", "refunded"):
        assert not TransferResult(status=state, partner_reference_no="r", external_id="1").succeeded
    assert not TransferResult(status="pending", partner_reference_no="r", external_id="1").succeeded


# --- request encoding -------------------------------------------------------------------------


def test_request_encoding_omits_none_and_uses_camel_case() -> None:
    assert _serde.encode(BalanceInquiryRequest(account_no="A41879")) == b'{"accountNo":"A41879"}'
    assert (
        _serde.encode(BalanceInquiryRequest(partner_reference_no="p-1", account_no="A41879"))
        == b'{"partnerReferenceNo":"p-1","accountNo":"A41879"}'
    )
    assert (
        _serde.encode(CheckStatusRequest(original_partner_reference_no="p", service_code="43"))
        == b'{"originalPartnerReferenceNo":"p","serviceCode":"43"}'
    )
    assert _serde.encode(TokenRequest(grant_type="client_credentials")) == (
        b'{"grantType":"client_credentials"}'
    )


def test_request_encoding_nested_and_key_order() -> None:
    request = AccountInquiryRequest(
        partner_reference_no="hsjkans284b2he54",
        customer_number="628115678890",
        amount=Amount(value=Decimal("200000.00"), currency="IDR"),
        beneficiary_account_number="8377388292",
        additional_info=AccountInquiryAdditionalInfo(
            channel_code="07",
            beneficiary_bank_code="014",
            beneficiary_account_name="FHILEA HERMANUS",
            sender_country_code="ID",
        ),
    )
    # The seed page's request, minified.
    expected = (
        b'{"partnerReferenceNo":"hsjkans284b2he54","customerNumber":"628115678890",'
        b'"amount":{"value":"200000.00","currency":"IDR"},"beneficiaryAccountNumber":"8377388292",'
        b'"additionalInfo":{"channelCode":"07","beneficiaryBankCode":"014",'
        b'"beneficiaryAccountName":"FHILEA HERMANUS","senderCountryCode":"ID"}}'
    )
    assert _serde.encode(request) == expected


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("200000.00"), b'"200000.00"'),
        (Decimal("0.01"), b'"0.01"'),
        (Decimal("99999999999999.99"), b'"99999999999999.99"'),
    ],
)
def test_decimal_amount_encodes_as_string(value: Decimal, wire: bytes) -> None:
    body = _serde.encode(Amount(value=value, currency="IDR"))
    assert body == b'{"value":' + wire + b',"currency":"IDR"}'
    assert b"." in wire
    # encode_numbers keeps the same digits as a JSON number (Payout Link style).
    assert _serde.encode_numbers(Amount(value=value, currency="IDR")) == (
        b'{"value":' + wire.strip(b'"') + b',"currency":"IDR"}'
    )


def test_non_ascii_is_raw_utf8_and_slash_not_escaped() -> None:
    request = TransferBankRequest(
        partner_reference_no="INV/2024/001",
        customer_number="628115678890",
        beneficiary_account_number="8377388292",
        beneficiary_bank_code="014",
        amount=Amount(value=Decimal("1.00"), currency="IDR"),
        additional_info=TransferBankAdditionalInfo(
            beneficiary_account_name="José Ñúñez 李", remark='a/b\\c "q"'
        ),
    )
    body = _serde.encode(request)
    assert "José Ñúñez 李".encode() in body
    assert b"\\u" not in body
    assert b'"INV/2024/001"' in body
    assert b"\\/" not in body
    assert b'"remark":"a/b\\\\c \\"q\\""' in body
    # It is exactly what DOKU's re-minification (compact, raw UTF-8) produces.
    assert body == json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def test_requests_forbid_unknown_fields_and_round_trip() -> None:
    request = TransferBankRequest(
        partner_reference_no="r-1",
        customer_number="628115678890",
        beneficiary_account_number="8377388292",
        beneficiary_bank_code="014",
        amount=Amount(value=Decimal("10.00"), currency="IDR"),
        session_id="I0438729855304540",
    )
    body = _serde.encode(request)
    assert _serde.decode(TransferBankRequest, body) == request
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        _serde.decode(TransferBankRequest, body[:-1] + b',"feeTyp":"x"}')
