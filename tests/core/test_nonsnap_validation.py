"""Argument validation of the Non-SNAP products: every documented limit is enforced before any
I/O (the fake sees no call), names the argument, and the limit itself is accepted."""

from __future__ import annotations

import asyncio
import decimal
import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from fake_nonsnap import FakeNonSnap, serve
from helpers import CLIENT_ID, CLIENT_SECRET, make_client
from test_nonsnap import payout_args, rdl_args, transfer_args

from doku_async import (
    DokuClient,
    RequestValidationError,
)
from doku_async.models._nonsnap import NonSnapResponse
from doku_async.models.payout_link import PayoutLinkResponse

KeyPair = tuple[bytes, bytes]
Env = tuple[DokuClient, FakeNonSnap]

EFFECT_OP = {"payout": "payout_initiate", "transfer": "transfer", "rdl": "rdl"}
KEY_ARG = {"payout": "reference_id", "transfer": "invoice_number", "rdl": "transaction_id"}
DEFAULT_ARGS: dict[str, Callable[[], dict[str, Any]]] = {
    "payout": payout_args,
    "transfer": transfer_args,
    "rdl": rdl_args,
}


@pytest.fixture
async def env(keypair: KeyPair) -> AsyncIterator[Env]:
    # A large balance so that the largest valid transfer is accepted by the fake.
    fake = FakeNonSnap(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, balance=10**13)
    async with (
        serve(fake.app) as url,
        make_client(url, keypair, response_signatures="required") as doku,
    ):
        yield doku, fake
    assert fake.errors == []


async def call(doku: DokuClient, product: str, **over: Any) -> NonSnapResponse:
    if product == "payout":
        return await doku.payout_links.initiate(**payout_args(**over))
    if product == "transfer":
        return await doku.transfers.create(**transfer_args(**over))
    if product == "rdl":
        return await doku.rdl.disburse(**rdl_args(**over))
    assert product == "status"
    return await doku.payout_links.status(
        reference_id=over.get("reference_id", "REF-0001"), request_id=over.get("request_id")
    )


def email(length: int) -> str:
    domain = "@example.com"
    return "a" * (length - len(domain)) + domain


def reject(product: str, field: str, value: object, case: str = "") -> Any:
    return pytest.param(product, field, value, id=f"{product}-{field}-{case or repr(value)[:20]}")


REJECTED = [
    # ---- Payout Link initiate
    reject("payout", "sender_name", "x" * 51, "51"),
    reject("payout", "sender_name", ""),
    reject("payout", "sender_name", "   "),
    reject("payout", "sender_name", 123),
    reject("payout", "receiver_name", "x" * 51, "51"),
    reject("payout", "receiver_name", ""),
    reject("payout", "receiver_email", email(51), "51"),
    reject("payout", "receiver_email", "budi.example.com"),
    reject("payout", "receiver_email", "budi@example"),
    reject("payout", "receiver_email", "budi @example.com"),
    reject("payout", "receiver_email", "@example.com"),
    reject("payout", "receiver_email", "budi@@example.com"),
    reject("payout", "receiver_email", ""),
    reject("payout", "receiver_phone_number", "081234567890"),
    reject("payout", "receiver_phone_number", "62123456", "8-digits"),
    reject("payout", "receiver_phone_number", "621234567890123", "15-digits"),
    reject("payout", "receiver_phone_number", "+6281234567890"),
    reject("payout", "receiver_phone_number", "62-812345678"),
    reject("payout", "receiver_phone_number", "62812345678a"),
    reject("payout", "receiver_phone_number", ""),
    reject("payout", "reference_id", "x" * 31, "31"),
    reject("payout", "reference_id", ""),
    reject("payout", "description", "x" * 31, "31"),
    reject("payout", "description", ""),
    reject("payout", "currency", "IDRX"),
    reject("payout", "currency", "idr"),
    reject("payout", "currency", "ID1"),
    reject("payout", "currency", ""),
    reject("payout", "amount", 0),
    reject("payout", "amount", -1),
    reject("payout", "amount", Decimal("0.00")),
    reject("payout", "amount", Decimal("-150000.50")),
    reject("payout", "amount", Decimal("0.001")),
    reject("payout", "amount", "10.005"),
    reject("payout", "amount", Decimal("150000.505")),
    reject("payout", "amount", 1.5),
    reject("payout", "amount", 150000.0),
    reject("payout", "amount", True),
    reject("payout", "amount", None),
    reject("payout", "amount", "abc"),
    reject("payout", "amount", "NaN"),
    reject("payout", "amount", "Infinity"),
    reject("payout", "amount", Decimal("10000000000000000.00"), "above-16.2"),
    reject("payout", "request_id", "r" * 129, "129"),
    reject("payout", "request_id", ""),
    # ---- Payout Link status
    reject("status", "reference_id", "x" * 31, "31"),
    reject("status", "reference_id", ""),
    reject("status", "request_id", "r" * 129, "129"),
    # ---- Transfers
    reject("transfer", "origin", "x" * 41, "41"),
    reject("transfer", "origin", ""),
    reject("transfer", "destination", "x" * 41, "41"),
    reject("transfer", "destination", ""),
    reject("transfer", "invoice_number", "x" * 101, "101"),
    reject("transfer", "invoice_number", ""),
    reject("transfer", "amount", 0),
    reject("transfer", "amount", -10000),
    reject("transfer", "amount", Decimal("10000.5")),
    reject("transfer", "amount", "10000.50"),
    reject("transfer", "amount", 10000.0),
    reject("transfer", "amount", 10**12, "13-digits"),
    reject("transfer", "amount", "abc"),
    reject("transfer", "amount", True),
    reject("transfer", "amount", "Infinity"),
    reject("transfer", "request_id", "r" * 129, "129"),
    # ---- RDL
    reject("rdl", "transaction_id", "x" * 65, "65"),
    reject("rdl", "transaction_id", "a b"),
    reject("rdl", "transaction_id", "a/b"),
    reject("rdl", "transaction_id", "a+b"),
    reject("rdl", "transaction_id", "a\nb"),
    reject("rdl", "transaction_id", "trx\u00e9"),
    reject("rdl", "transaction_id", ""),
    reject("rdl", "amount", 9_999),
    reject("rdl", "amount", 1_000_000_000_000),
    reject("rdl", "amount", Decimal("10000.5")),
    reject("rdl", "amount", 10000.0),
    reject("rdl", "amount", -10000),
    reject("rdl", "description", "x" * 257, "257"),
    reject("rdl", "description", ""),
    reject("rdl", "source_account_id", "x" * 101, "101"),
    reject("rdl", "destination_bank_code", "x" * 51, "51"),
    reject("rdl", "destination_account_number", "x" * 101, "101"),
    reject("rdl", "destination_account_name", "x" * 51, "51"),
    reject("rdl", "destination_address", "x" * 51, "51"),
    reject("rdl", "request_id", "r" * 129, "129"),
]


@pytest.mark.parametrize(("product", "field", "value"), REJECTED)
async def test_out_of_range_argument_is_rejected_before_sending(
    env: Env, product: str, field: str, value: object
) -> None:
    doku, fake = env
    async with asyncio.timeout(20):
        with pytest.raises(RequestValidationError) as info:
            await call(doku, product, **{field: value})
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")
    assert isinstance(info.value, ValueError)
    assert fake.calls == []


def accept(product: str, field: str, value: object, case: str = "") -> Any:
    return pytest.param(product, field, value, id=f"{product}-{field}-{case or repr(value)[:20]}")


ACCEPTED = [
    # ---- Payout Link initiate
    accept("payout", "sender_name", "s" * 50, "50"),
    accept("payout", "receiver_name", "r" * 50, "50"),
    accept("payout", "receiver_email", email(50), "50"),
    accept("payout", "receiver_phone_number", "621234567", "9-digits"),
    accept("payout", "receiver_phone_number", "62123456789012", "14-digits"),
    accept("payout", "reference_id", "R" * 30, "30"),
    accept("payout", "description", "d" * 30, "30"),
    accept("payout", "currency", "IDR"),
    accept("payout", "currency", "X"),
    accept("payout", "amount", Decimal("0.01")),
    accept("payout", "amount", "9999999999999999.99"),
    accept("payout", "amount", Decimal("10.50")),
    accept("payout", "request_id", "r" * 128, "128"),
    # ---- Transfers
    accept("transfer", "origin", "o" * 40, "40"),
    accept("transfer", "destination", "d" * 40, "40"),
    accept("transfer", "invoice_number", "I" * 100, "100"),
    accept("transfer", "amount", 1),
    accept("transfer", "amount", 999_999_999_999),
    accept("transfer", "amount", Decimal("5.00")),
    accept("transfer", "amount", "123"),
    accept("transfer", "request_id", "r" * 128, "128"),
    # ---- RDL
    accept("rdl", "transaction_id", "T" * 64, "64"),
    accept("rdl", "transaction_id", "Ab-1:2.3_4"),
    accept("rdl", "amount", 10_000),
    accept("rdl", "amount", 999_999_999_999),
    accept("rdl", "description", "d" * 256, "256"),
    accept("rdl", "source_account_id", "9" * 100, "100"),
    accept("rdl", "destination_bank_code", "B" * 50, "50"),
    accept("rdl", "destination_account_number", "1" * 100, "100"),
    accept("rdl", "destination_account_name", "n" * 50, "50"),
    accept("rdl", "destination_address", "a" * 50, "50"),
    accept("rdl", "request_id", "r" * 128, "128"),
]


@pytest.mark.parametrize(("product", "field", "value"), ACCEPTED)
async def test_limit_itself_is_accepted(env: Env, product: str, field: str, value: object) -> None:
    doku, fake = env
    async with asyncio.timeout(20):
        result = await call(doku, product, **{field: value})
    (sent,) = fake.calls
    assert sent.status == 200
    if field == "request_id":
        assert sent.headers["Request-Id"] == value
        assert result.request_id == value
    elif isinstance(value, str) and field != "amount":
        assert json.dumps(value).encode() in sent.body
    op = EFFECT_OP[product]
    key_arg = KEY_ARG[product]
    key = value if field == key_arg else DEFAULT_ARGS[product]()[key_arg]
    assert isinstance(key, str)
    assert fake.effects_count(op, key) == 1


@pytest.mark.parametrize(
    ("field", "value"), [("reference_id", "R" * 30), ("request_id", "q" * 128)]
)
async def test_status_limits_accepted(env: Env, field: str, value: str) -> None:
    doku, fake = env
    reference = value if field == "reference_id" else "REF-0001"
    async with asyncio.timeout(20):
        await doku.payout_links.initiate(**payout_args(reference))
        result = await call(doku, "status", **{field: value})
    assert isinstance(result, PayoutLinkResponse)
    assert result.link_status == "PENDING"
    assert len(fake.calls_for("payout_status")) == 1
    assert fake.effects_count("payout_initiate", reference) == 1


async def test_optional_payout_fields_are_omitted(env: Env) -> None:
    doku, fake = env
    async with asyncio.timeout(20):
        await doku.payout_links.initiate(**payout_args(description=None, currency=None))
    body = json.loads(fake.calls[0].body)
    assert "description" not in body
    assert "currency" not in body
    assert fake.effects_count("payout_initiate", "REF-0001") == 1


async def test_validation_messages_do_not_echo_values(env: Env) -> None:
    doku, fake = env
    secretish = "budi-private-9f2c@@example.com"
    async with asyncio.timeout(20):
        with pytest.raises(RequestValidationError) as info:
            await doku.payout_links.initiate(**payout_args(receiver_email=secretish))
    assert secretish not in str(info.value)
    assert fake.calls == []


# --------------------------------------------------------------------------- library bugs


@pytest.mark.parametrize("request_id", ["abc\r\nX-Evil: 1", "abc\nd", "x\x00y"])
async def test_request_id_with_control_characters_is_a_validation_error(
    env: Env, request_id: str
) -> None:
    doku, fake = env
    async with asyncio.timeout(20):
        with pytest.raises(RequestValidationError) as info:
            await doku.transfers.create(**transfer_args(), request_id=request_id)
    assert info.value.field == "request_id"
    assert fake.calls == []


@pytest.mark.parametrize("request_id", [" lead", "trail ", "\ttab"])
async def test_request_id_with_surrounding_whitespace_is_a_validation_error(
    env: Env, request_id: str
) -> None:
    doku, fake = env
    async with asyncio.timeout(20):
        with pytest.raises(RequestValidationError) as info:
            await doku.transfers.create(**transfer_args(), request_id=request_id)
    assert info.value.field == "request_id"
    assert fake.calls == []


async def test_absurdly_long_positive_payout_amount_is_a_validation_error(env: Env) -> None:
    doku, fake = env
    async with asyncio.timeout(20):
        with pytest.raises(RequestValidationError) as info:
            await doku.payout_links.initiate(
                **payout_args(amount="999999999999999999999999999.001")
            )
    assert info.value.field == "amount"
    assert fake.calls == []


@pytest.mark.parametrize("amount", ["-1e30", "-999999999999999999999999999.001", Decimal("-1E+40")])
async def test_hugely_negative_payout_amount_is_a_validation_error(
    env: Env, amount: str | Decimal
) -> None:
    doku, fake = env
    async with asyncio.timeout(20):
        with pytest.raises(RequestValidationError) as info:
            await doku.payout_links.initiate(**payout_args(amount=amount))
    assert info.value.field == "amount"
    assert fake.calls == []


async def test_payout_amount_does_not_depend_on_the_callers_decimal_context(env: Env) -> None:
    doku, fake = env
    async with asyncio.timeout(20):
        with decimal.localcontext() as ctx:
            ctx.prec = 8
            result = await doku.payout_links.initiate(**payout_args(amount=Decimal("1234567.89")))
    assert result.data is not None
    assert b'"amount":1234567.89,' in fake.calls[0].body
    assert fake.effects_count("payout_initiate", "REF-0001") == 1
