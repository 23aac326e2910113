"""The decoding rule (issue 11), one property per model: any field the SDK does not act on may
carry any JSON value, and the decode still succeeds with the essential values unchanged.

Each valid answer below follows a documented shape (the protocol page's "What DOKU really
sends"; the corpus in ``tests/corpus/`` keeps the sourced originals). The mutated fields are
read off the model itself (every field not in ``__essential__``, nested ones included), so a
field added later is covered without editing this file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doku_async import _serde
from doku_async.models.kirim import (
    AccountInquiryResponse,
    BalanceInquiryResponse,
    CheckStatusResponse,
    TokenResponse,
    TransferBankResponse,
)
from doku_async.models.notifications import RefundNotification, UnpaidNotification
from doku_async.models.payout_link import PayoutLinkResponse
from doku_async.models.rdl import RdlDisbursementResponse
from doku_async.models.transfers import TransferCreateResponse

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)

Essentials = Callable[[Any], dict[str, object]]

CASES: list[tuple[str, type[Any], dict[str, Any], Essentials]] = [
    (
        "token",
        TokenResponse,
        {
            "responseCode": "2007300",
            "responseMessage": "Successful",
            "accessToken": "eyJhbGciOiJSUzI1NiJ9.test.token",
            "tokenType": "Bearer",
            "expiresIn": 900,
            "additionalInfo": "",
        },
        lambda r: {"code": r.response_code, "token": r.access_token, "life": r.lifetime},
    ),
    (
        "account_inquiry",
        AccountInquiryResponse,
        {
            "responseCode": 2004200,
            "responseMessage": "Successful",
            "referenceNo": "DK0018353",
            "partnerReferenceNo": "INQ-1",
            "beneficiaryAccountNumber": "8377388292",
            "beneficiaryAccountName": "FHILEA HERMANUS",
            "beneficiaryBankCode": "014",
            "beneficiaryBankShortName": "BCA",
            "beneficiaryBankName": "Bank Central Asia",
            "amount": {"value": "200000.00", "currency": "IDR"},
            "sessionId": "SESSION-1",
            "additionalInfo": {"forex": {}, "fee": {}},
        },
        lambda r: {
            "code": r.response_code,
            "ref": r.reference_no,
            "partner": r.partner_reference_no,
            "session": r.session_id,
            "name": r.beneficiary_account_name,
        },
    ),
    (
        "balance_array",
        BalanceInquiryResponse,
        {
            "responseCode": "2001100",
            "responseMessage": "Successful",
            "accountNo": "A41879",
            "name": "Merchant",
            "accountInfos": [
                {
                    "availableBalance": {"value": "1000000.00", "currency": "IDR"},
                    "holdAmount": {"value": "0.00", "currency": "IDR"},
                }
            ],
            "additionalInfo": {},
        },
        lambda r: {"code": r.response_code, "balance": r.available_balance},
    ),
    (
        "balance_object_misspelled",
        BalanceInquiryResponse,
        {
            "responseCode": 2001100,
            "responseMessage": "Successful",
            "accountInfos": {"avaliableBalance": {"value": "1000000.00", "currency": "IDR"}},
        },
        lambda r: {"code": r.response_code, "balance": r.available_balance},
    ),
    (
        "transfer_bank",
        TransferBankResponse,
        {
            "responseCode": 2004300,
            "responseMessage": "Successful",
            "referenceNo": "DK0018353",
            "partnerReferenceNo": "PAY-1",
            "transactionDate": "2024-09-17T14:41:52. 022+07:00",
            "additionalInfo": {"sessionId": "SESSION-1", "amount": "200000.00"},
        },
        lambda r: {
            "code": r.response_code,
            "ref": r.reference_no,
            "partner": r.partner_reference_no,
        },
    ),
    (
        "check_status",
        CheckStatusResponse,
        {
            "responseCode": 2005300,
            "responseMessage": "Successful",
            "originalReferenceNo": "DK0018353",
            "originalPartnerReferenceNo": "PAY-1",
            "serviceCode": 43,
            "latestTransactionStatus": "00",
            "transactionStatusDesc": "SUCCESS",
            "originalResponseCode": 0,
            "amount": {"value": "200000.00", "currency": "IDR"},
            "transactionDate": "2024-09-17T14:41:52. 022+07:00",
            "additionalInfo": {"beneficiaryAmount": "195500.00"},
        },
        lambda r: {
            "code": r.response_code,
            "status": r.transaction_status,
            "ref": r.original_reference_no,
            "partner": r.original_partner_reference_no,
            "amount": r.amount.value if r.amount else None,
        },
    ),
    (
        "unpaid_notification",
        UnpaidNotification,
        {
            "sendTrxId": "text",
            "transactionId": "DK0018353",
            "invoiceNumber": "I088787987870912",
            "transactionStatus": "50",
            "activityCode": "200",
            "message": "Transaction is Success",
            "processDate": "2024-01-12'T'07:30:12",
            "createdTime": "1699520040340",
        },
        lambda n: {"id": n.transaction_id},
    ),
    (
        "refund_notification",
        RefundNotification,
        {
            "transactionId": "DK0018353",
            "activityCode": "200",
            "message": "Transaction is Refunded",
            "processDate": 1705044612000,
        },
        lambda n: {"id": n.transaction_id, "status": n.status},
    ),
    (
        "payout_link",
        PayoutLinkResponse,
        {
            "status": "SUCCESS",
            "message": "ok",
            "data": {
                "reference_id": "PL-1",
                "transaction_id": "PL-1",
                "status": "PENDING",
                "state": "GENERATED",
                "amount": 10000.00,
                "receiver_email": "a@example.com",
            },
        },
        lambda r: {
            "ref": r.data.reference_id if r.data else None,
            "status": r.link_status,
            "amount": r.data.amount if r.data else None,
        },
    ),
    (
        "transfers",
        TransferCreateResponse,
        {
            "transfer": {
                "invoice_number": "INV/7274812",
                "origin": "SAC-0000-0000000000001",
                "destination": "SAC-8014-1628130619289",
                "amount": 10000,
                "status": "SUCCESS",
                "created": "2021-08-06 15:18:06.820153+07:00",
            }
        },
        lambda r: {
            "inv": r.transfer.invoice_number if r.transfer else None,
            "status": r.transfer.status if r.transfer else None,
            "amount": r.transfer.amount if r.transfer else None,
        },
    ),
    (
        "rdl",
        RdlDisbursementResponse,
        {
            "transaction": {
                "id": "RDL-1",
                "amount": 10000,
                "description": "x",
                "status": "SUCCESS",
                "create_date": "2021-08-06T08:18:06Z",
            },
            "source_account": {"account_id": "RDL-0001"},
        },
        lambda r: {
            "id": r.transaction.id if r.transaction else None,
            "status": r.transaction.status if r.transaction else None,
        },
    ),
]


BODY = {name: body for name, _, body, _ in CASES}


def _essential_names(model: type[Any]) -> set[str]:
    names: set[str] = set()
    for klass in model.__mro__:
        names.update(vars(klass).get("__essential__", ()))
    return names


def _paths(
    model: type[Any], body: dict[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every present field of ``body`` that ``model`` does not hold essential, and the
    non-essential fields inside essential nested objects."""
    essential = _essential_names(model)
    hints = {f.encode_name: f for f in msgspec.structs.fields(model)}
    for wire, value in body.items():
        field = hints.get(wire)
        if field is None:
            yield (*prefix, wire)  # unknown to the model: ignored whatever its type
            continue
        nested = _struct_of(field.type)
        if field.name not in essential:
            yield (*prefix, wire)
        if nested is not None:
            entries = value if isinstance(value, list) else [value]
            for i, entry in enumerate(entries):
                if isinstance(entry, dict):
                    where = (*prefix, wire, i) if isinstance(value, list) else (*prefix, wire)
                    yield from _paths(nested, entry, where)  # type: ignore[arg-type]


def _struct_of(annotation: Any) -> type[Any] | None:
    info = msgspec.inspect.type_info(annotation)
    stack = [info]
    while stack:
        t = stack.pop()
        if isinstance(t, msgspec.inspect.StructType):
            return t.cls
        if isinstance(t, msgspec.inspect.UnionType):
            stack.extend(t.types)
        if isinstance(t, msgspec.inspect.ListType):
            stack.append(t.item_type)
    return None


def _set(body: Any, path: tuple[Any, ...], value: object) -> Any:
    body = json.loads(json.dumps(body))
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


@pytest.mark.parametrize(("name", "model", "body", "essentials"), CASES, ids=[c[0] for c in CASES])
def test_a_valid_answer_decodes_to_its_essential_values(
    name: str, model: type[Any], body: dict[str, Any], essentials: Essentials
) -> None:
    decoded = _serde.decode_answer(model, json.dumps(body).encode())
    values = essentials(decoded)
    assert all(v not in (None, "") for v in values.values()), (name, values)


@pytest.mark.parametrize(("name", "model", "body", "essentials"), CASES, ids=[c[0] for c in CASES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_json_in_a_non_essential_field_keeps_the_essentials(
    name: str, model: type[Any], body: dict[str, Any], essentials: Essentials, data: st.DataObject
) -> None:
    expected = essentials(_serde.decode_answer(model, json.dumps(body).encode()))
    paths = sorted(_paths(model, body), key=repr)
    assert paths, f"{name}: no non-essential field to mutate"
    chosen = data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=4, unique=True))
    mutated = body
    for path in chosen:
        try:
            mutated = _set(mutated, path, data.draw(JSON))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced the object this path lived in
    decoded = _serde.decode_answer(model, json.dumps(mutated).encode())
    assert essentials(decoded) == expected


@pytest.mark.parametrize(
    ("model", "body", "path"),
    [
        (TokenResponse, BODY["token"], ("accessToken",)),
        (TransferBankResponse, BODY["transfer_bank"], ("referenceNo",)),
        (CheckStatusResponse, BODY["check_status"], ("latestTransactionStatus",)),
        (CheckStatusResponse, BODY["check_status"], ("amount",)),
        (UnpaidNotification, BODY["unpaid_notification"], ("transactionId",)),
    ],
)
@pytest.mark.parametrize("value", [{"x": 1}, [1], True])
def test_an_unusable_essential_field_fails_the_decode(
    model: type[Any], body: dict[str, Any], path: tuple[str, ...], value: object
) -> None:
    with pytest.raises(msgspec.ValidationError, match="essential"):
        _serde.decode_answer(model, json.dumps(_set(body, path, value)).encode())


@pytest.mark.parametrize(
    ("model", "body", "path", "number", "text"),
    [
        (TransferBankResponse, BODY["transfer_bank"], ("referenceNo",), 18353, "18353"),
        (CheckStatusResponse, BODY["check_status"], ("latestTransactionStatus",), 0, "00"),
        (CheckStatusResponse, BODY["check_status"], ("originalPartnerReferenceNo",), 42, "42"),
        (AccountInquiryResponse, BODY["account_inquiry"], ("sessionId",), 7, "7"),
    ],
)
def test_numbers_for_codes_and_ids_become_text(
    model: type[Any], body: dict[str, Any], path: tuple[str, ...], number: int, text: str
) -> None:
    decoded = _serde.decode_answer(model, json.dumps(_set(body, path, number)).encode())
    got = {
        "referenceNo": lambda: decoded.reference_no,
        "latestTransactionStatus": lambda: decoded.transaction_status,
        "originalPartnerReferenceNo": lambda: decoded.original_partner_reference_no,
        "sessionId": lambda: decoded.session_id,
    }[path[0]]()
    assert got == text


def test_a_well_formed_answer_takes_the_typed_path_unchanged() -> None:
    """The tolerant path gives the same result as the typed decoder where both apply."""
    body = json.dumps(BODY["check_status"]).encode()
    assert _serde.decode_answer(CheckStatusResponse, body) == _serde.decode(
        CheckStatusResponse, body
    )
    odd = json.dumps(_set(BODY["check_status"], ("transactionStatusDesc",), {"a": 1})).encode()
    tolerant = _serde.decode_answer(CheckStatusResponse, odd)
    assert tolerant.transaction_status_desc is None
    assert tolerant.amount is not None
    assert tolerant.amount.value == Decimal("200000.00")
