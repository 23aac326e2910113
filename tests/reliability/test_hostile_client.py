"""Every request argument of every operation, attacked with hypothesis (seeded:
``derandomize=True``, no example database).

For each operation (Kirim ``account_inquiry``, ``balance_inquiry``, ``transfer_bank``,
``check_status``; ``payout_links.initiate``/``status``; ``transfers.create``;
``rdl.disburse``; ``bulk.payout_item``):

* one argument out of range (too long, empty, blank, wrong type, characters outside its
  pattern, amounts that are floats, NaN, infinite, negative, zero, with too many decimals, too
  large or not numbers), the others valid, raises ``RequestValidationError`` whose ``field``
  names that argument, whose message does not echo the value, and nothing reaches the
  simulator: not the call, not even a token request;
* everything in range is sent and answered by the simulator, and the bytes on the wire carry
  exactly the values given (amounts as exact two-decimal values).

One simulator and one client per test function, driven from synchronous hypothesis tests
through an :class:`asyncio.Runner`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import string
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doku_async import (
    BankCodes,
    DokuAPIError,
    DokuClient,
    InvalidAccountError,
    RequestValidationError,
    RetryPolicy,
    Timeouts,
)
from doku_async.bulk import BulkRunner, PayoutItem, payout_item
from doku_async.testing import DokuSimulator, SimulatorCredentials

pytestmark = pytest.mark.timeout(120)

AGENT = "A41879"
SNAP_MAX = Decimal("99999999999999.99")
LINK_MAX = Decimal("9999999999999999.99")
WHOLE_MAX = 999_999_999_999

SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
REJECT_EXAMPLES = 200
ACCEPT_EXAMPLES = 100


@functools.cache
def credentials() -> SimulatorCredentials:
    """One RSA key pair for the module (generation is slow), with a fixed agent key."""
    return dataclasses.replace(SimulatorCredentials.generate(), agent_key=AGENT)


# ------------------------------------------------------------------------------- the harness


class Live:
    """A simulator and a client on one event loop, called from synchronous code."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.sim = DokuSimulator(
            credentials=credentials(),
            balance=Decimal(10) ** 18,
            sub_account_balance=10**16,
        )
        self.client: DokuClient | None = None

    def __enter__(self) -> Live:
        self.runner.__enter__()
        self.runner.run(self.sim.start())
        self.client = self.sim.client(
            timeouts=Timeouts(connect=5.0, attempt=10.0, total=30.0),
            retry=RetryPolicy(jitter=False),
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.client is not None:
            self.runner.run(self.client.aclose())
        self.runner.run(self.sim.close())
        self.runner.__exit__(exc_type, exc, tb)

    def call(self, op: Op, kwargs: dict[str, object]) -> object:
        assert self.client is not None
        return self.runner.run(op.invoke(self.client, kwargs))


# ------------------------------------------------------------------------------- strategies

UNICODE = st.characters(codec="utf-8")  # every code point but lone surrogates
VISIBLE_ASCII = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
DIGITS = "0123456789"
UPPER = string.ascii_uppercase
WRONG_TYPES: st.SearchStrategy[object] = st.one_of(
    st.integers(),
    st.floats(),
    st.booleans(),
    st.binary(max_size=8),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
)
WHITESPACE = st.text(
    st.sampled_from(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2003\u2028\u3000"),
    min_size=1,
    max_size=6,
)


def not_blank(value: str) -> bool:
    return not value.isspace()


@dataclass(frozen=True)
class Arg:
    """One argument: what is in range, what is not, and where it goes on the wire."""

    valid: st.SearchStrategy[object]
    invalid: st.SearchStrategy[object]
    optional: bool = False
    wire: str | None = None  # dotted JSON path in the body, or "header:Name"
    kind: str = "text"  # "text", "amount" (two decimals) or "whole"
    unique: int = 0  # > 0: made unique per example within this many characters


def _common_invalid(
    max_len: int, min_len: int, chars: st.SearchStrategy[str], optional: bool
) -> list[st.SearchStrategy[object]]:
    wrong: list[st.SearchStrategy[object]] = [
        WRONG_TYPES,
        st.just(""),
        WHITESPACE,
        st.text(chars, min_size=max_len + 1, max_size=max_len + 40),
    ]
    if not optional:
        wrong.append(st.none())
    if min_len > 1:
        wrong.append(st.text(chars, min_size=1, max_size=min_len - 1).filter(not_blank))
    return wrong


def _with_bad_char(
    chars: st.SearchStrategy[str], max_len: int, min_len: int, bad: st.SearchStrategy[str]
) -> st.SearchStrategy[object]:
    """A value of the right length with one character outside the allowed set."""

    @st.composite
    def build(draw: st.DrawFn) -> object:
        base = draw(st.text(chars, min_size=max(0, min_len - 1), max_size=max_len - 1))
        at = draw(st.integers(0, len(base)))
        return base[:at] + draw(bad) + base[at:]

    return build()


def text_arg(
    max_len: int,
    *,
    min_len: int = 1,
    chars: st.SearchStrategy[str] = UNICODE,
    bad: st.SearchStrategy[str] | None = None,
    optional: bool = False,
    wire: str | None = None,
    unique: bool = False,
) -> Arg:
    valid = st.text(chars, min_size=min_len, max_size=max_len).filter(not_blank)
    invalid = _common_invalid(max_len, min_len, chars, optional)
    if bad is not None:
        invalid.append(_with_bad_char(chars, max_len, min_len, bad))
    return Arg(
        valid=valid,
        invalid=st.one_of(invalid),
        optional=optional,
        wire=wire,
        unique=max_len if unique else 0,
    )


BAD_DIGITS = st.sampled_from(["a", " ", "-", "+", ".", "\u0663", "\u00b2", "\uff11", "\x00", "\n"])
BAD_VISIBLE = st.sampled_from(
    [" ", "\t", "\n", "\r\nX-Evil: 1", "\x00", "\x7f", "\u00e9", "\u200b"]
)


def digits_arg(max_len: int, *, optional: bool = False, wire: str | None = None) -> Arg:
    return text_arg(
        max_len, chars=st.sampled_from(DIGITS), bad=BAD_DIGITS, optional=optional, wire=wire
    )


KNOWN_BANK_CODES = sorted(BankCodes.default())


def bank_code_arg(*, wire: str | None = None, unknown_is_invalid: bool = True) -> Arg:
    """A bank code: in range means three digits in the shipped table (issue 13); 1 to 8
    digits outside the table are refused too when ``unknown_is_invalid``."""
    base = digits_arg(8, wire=wire)
    invalid = base.invalid
    if unknown_is_invalid:
        known = set(KNOWN_BANK_CODES)
        unknown = st.text(st.sampled_from(DIGITS), min_size=1, max_size=8).filter(
            lambda code: code not in known
        )
        invalid = st.one_of(invalid, unknown)
    return dataclasses.replace(base, valid=st.sampled_from(KNOWN_BANK_CODES), invalid=invalid)


def visible_arg(
    max_len: int, *, optional: bool = False, wire: str | None = None, unique: bool = False
) -> Arg:
    return text_arg(
        max_len, chars=VISIBLE_ASCII, bad=BAD_VISIBLE, optional=optional, wire=wire, unique=unique
    )


def letters_arg(
    length: int, *, min_len: int | None = None, optional: bool = False, wire: str | None = None
) -> Arg:
    bad = st.sampled_from(["a", "z", "1", "-", " ", "\u00c4", "\u0130"])
    return text_arg(
        length,
        min_len=length if min_len is None else min_len,
        chars=st.sampled_from(UPPER),
        bad=bad,
        optional=optional,
        wire=wire,
    )


def code_arg(*, exact: bool, optional: bool, wire: str | None = None) -> Arg:
    """``channel_code`` ([0-9]{1,2}) or ``service_code`` (exactly two digits)."""
    return text_arg(
        2,
        min_len=2 if exact else 1,
        chars=st.sampled_from(DIGITS),
        bad=BAD_DIGITS,
        optional=optional,
        wire=wire,
    )


PHONE_VALID = (
    st.integers(7, 12)
    .flatmap(lambda n: st.text(st.sampled_from(DIGITS), min_size=n, max_size=n))
    .map(lambda rest: "62" + rest)
)
PHONE_INVALID: st.SearchStrategy[object] = st.one_of(
    WRONG_TYPES,
    st.none(),
    st.just(""),
    WHITESPACE,
    st.text(st.sampled_from(DIGITS), max_size=6).map(lambda r: "62" + r),  # too short
    st.text(st.sampled_from(DIGITS), min_size=13, max_size=20).map(lambda r: "62" + r),  # long
    PHONE_VALID.map(lambda p: "0" + p[2:]),  # local format
    PHONE_VALID.map(lambda p: "+" + p[:-1]),
    PHONE_VALID.map(lambda p: "63" + p[2:]),
    PHONE_VALID.map(lambda p: p[:5] + " " + p[5:-1]),
    PHONE_VALID.map(lambda p: p[:5] + "-" + p[5:-1]),
    PHONE_VALID.map(lambda p: "62" + "".join(chr(0xFF10 + int(c)) for c in p[2:])),  # fullwidth
    PHONE_VALID.map(lambda p: "62" + "".join(chr(0x0660 + int(c)) for c in p[2:])),  # arabic
)


def phone_arg(*, optional: bool = False, wire: str | None = None) -> Arg:
    invalid = st.one_of(PHONE_INVALID).filter(lambda v: not (optional and v is None))
    return Arg(valid=PHONE_VALID, invalid=invalid, optional=optional, wire=wire)


EMAIL_CHARS = UNICODE.filter(lambda c: c != "@" and not c.isspace())
EMAIL_PART = st.text(EMAIL_CHARS, min_size=1, max_size=14)
EMAIL_VALID = st.builds(lambda a, b, c: f"{a}@{b}.{c}", EMAIL_PART, EMAIL_PART, EMAIL_PART)
EMAIL_INVALID: st.SearchStrategy[object] = st.one_of(
    WRONG_TYPES,
    st.none(),
    st.just(""),
    WHITESPACE,
    EMAIL_PART,  # no @
    st.builds(lambda a, b: f"{a}@{b}", EMAIL_PART, EMAIL_PART.filter(lambda s: "." not in s)),
    st.builds(lambda a, b, c: f"{a}@{b}@{c}.id", EMAIL_PART, EMAIL_PART, EMAIL_PART),
    st.builds(lambda a, b, c: f"{a} x@{b}.{c}", EMAIL_PART, EMAIL_PART, EMAIL_PART),
    st.builds(lambda b, c: f"@{b}.{c}", EMAIL_PART, EMAIL_PART),
    st.builds(lambda a: f"{'a' * 40}{a}@example.com", EMAIL_PART),  # longer than 50
)


def is_decimal(text: str) -> bool:
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return True


NOT_NUMBERS = st.one_of(
    st.sampled_from(
        ["", " ", "abc", "1,000", "1.2.3", "0x10", "1e", "--1", "1 000", "Rp 100", "12abc", "."]
    ),
    st.text(max_size=12).filter(lambda s: not is_decimal(s)),
)
NON_FINITE = st.sampled_from(
    [
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-inf",
    ]
)
AMOUNT_WRONG_TYPES = st.one_of(
    st.floats(),  # floats lose cents: refused whatever their value, NaN and inf included
    st.booleans(),
    st.none(),
    st.binary(max_size=6),
    st.lists(st.integers(), max_size=2),
    st.just(object()),
)


def amount_arg(maximum: Decimal, *, wire: str) -> Arg:
    cents = st.decimals(min_value=Decimal("0.01"), max_value=maximum, places=2)
    valid = st.one_of(
        cents,
        cents.map(str),
        st.integers(1, int(maximum)),
        st.integers(1, int(maximum)).map(str),
        st.sampled_from([Decimal("0.01"), maximum, "0.01", str(maximum), "1E+2", "7.5", "1.000"]),
    )
    too_precise = st.integers(3, 10).flatmap(
        lambda places: st.decimals(
            min_value=Decimal("0.001"), max_value=maximum, places=places
        ).filter(lambda d: d != d.quantize(Decimal("0.01")))
    )
    invalid = st.one_of(
        AMOUNT_WRONG_TYPES,
        NON_FINITE,
        NOT_NUMBERS,
        st.decimals(max_value=Decimal("0.00"), places=2, allow_nan=False, allow_infinity=False),
        st.integers(max_value=0),
        st.integers(max_value=0).map(str),
        too_precise,
        too_precise.map(str),
        st.decimals(min_value=maximum + Decimal("0.01"), places=2, allow_infinity=False),
        st.integers(min_value=int(maximum) + 1),
        st.sampled_from(["1E+100", "-1E+100", "1E-100", "0.001", "-0.01", "1E+999999999999"]),
    )
    return Arg(valid=valid, invalid=invalid, wire=wire, kind="amount")


def whole_arg(minimum: int, maximum: int, *, wire: str) -> Arg:
    ints = st.integers(minimum, maximum)
    valid = st.one_of(
        ints,
        ints.map(str),
        ints.map(Decimal),
        ints.map(lambda i: Decimal(f"{i}.00")),
        st.sampled_from([minimum, maximum, str(maximum), Decimal(minimum)]),
    )
    with_cents = st.tuples(ints, st.integers(1, 99)).map(lambda t: Decimal(f"{t[0]}.{t[1]:02d}"))
    invalid = st.one_of(
        AMOUNT_WRONG_TYPES,
        NON_FINITE,
        NOT_NUMBERS,
        with_cents,
        with_cents.map(str),
        st.integers(max_value=minimum - 1),
        st.integers(max_value=minimum - 1).map(str),
        st.integers(min_value=maximum + 1),
        st.integers(min_value=maximum + 1).map(Decimal),
        st.sampled_from(["1E+100", "0.5", "1E-100"]),
    )
    return Arg(valid=valid, invalid=invalid, wire=wire, kind="whole")


RDL_ID_CHARS = st.sampled_from(string.ascii_letters + string.digits + "-:._")
RDL_ID_BAD = st.sampled_from([" ", "/", "#", "+", "@", "\u00e9", "\n", "\x00", "*"])
REQUEST_ID = visible_arg(128, optional=True, wire="header:Request-Id", unique=True)


# ------------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Op:
    resource: str
    method: str
    operation: str  # the simulator's name for it
    args: dict[str, Arg]
    answers: tuple[type[DokuAPIError], ...] = ()  # accepted answers besides success

    @property
    def name(self) -> str:
        return f"{self.resource}.{self.method}"

    def invoke(self, client: DokuClient, kwargs: dict[str, object]) -> Coroutine[Any, Any, object]:
        method: Callable[..., Coroutine[Any, Any, object]] = getattr(
            getattr(client, self.resource), self.method
        )
        return method(**kwargs)


OPS: dict[str, Op] = {
    op.name: op
    for op in [
        Op(
            "kirim",
            "account_inquiry",
            "account_inquiry",
            {
                "partner_reference_no": visible_arg(64, wire="partnerReferenceNo"),
                "customer_number": phone_arg(wire="customerNumber"),
                "beneficiary_account_number": digits_arg(32, wire="beneficiaryAccountNumber"),
                "beneficiary_bank_code": bank_code_arg(wire="additionalInfo.beneficiaryBankCode"),
                "beneficiary_account_name": text_arg(
                    100, wire="additionalInfo.beneficiaryAccountName"
                ),
                "amount": amount_arg(SNAP_MAX, wire="amount.value"),
                "currency": letters_arg(3, wire="amount.currency"),
                "sender_country_code": letters_arg(2, wire="additionalInfo.senderCountryCode"),
                "channel_code": code_arg(
                    exact=False, optional=True, wire="additionalInfo.channelCode"
                ),
            },
        ),
        Op(
            "kirim",
            "balance_inquiry",
            "balance_inquiry",
            {
                "account_no": Arg(
                    valid=st.one_of(st.just(AGENT), text_arg(16).valid),
                    invalid=text_arg(16).invalid,
                    wire="accountNo",
                ),
                "partner_reference_no": visible_arg(64, optional=True, wire="partnerReferenceNo"),
            },
            answers=(InvalidAccountError,),  # an account that is not the agent's: 404
        ),
        Op(
            "kirim",
            "transfer_bank",
            "transfer_bank",
            {
                "partner_reference_no": visible_arg(64, wire="partnerReferenceNo", unique=True),
                "customer_number": phone_arg(wire="customerNumber"),
                "beneficiary_account_number": digits_arg(32, wire="beneficiaryAccountNumber"),
                "beneficiary_bank_code": bank_code_arg(wire="beneficiaryBankCode"),
                "amount": amount_arg(SNAP_MAX, wire="amount.value"),
                "currency": letters_arg(3, wire="amount.currency"),
                # An inquiry's sessionId pays once (a reused one gets 4094302): unique too.
                "session_id": text_arg(25, optional=True, wire="sessionId", unique=True),
                "fee_type": text_arg(25, optional=True, wire="feeType"),
                "channel_code": code_arg(
                    exact=False, optional=True, wire="additionalInfo.channelCode"
                ),
                "beneficiary_account_name": text_arg(
                    100, optional=True, wire="additionalInfo.beneficiaryAccountName"
                ),
                "beneficiary_first_name": text_arg(
                    50, optional=True, wire="additionalInfo.beneficiaryFirstName"
                ),
                "beneficiary_last_name": text_arg(
                    50, optional=True, wire="additionalInfo.beneficiaryLastName"
                ),
                "beneficiary_phone_number": phone_arg(
                    optional=True, wire="additionalInfo.beneficiaryPhoneNumber"
                ),
                "beneficiary_bank_name": text_arg(
                    100, optional=True, wire="additionalInfo.beneficiaryBankName"
                ),
                "sender_country_code": letters_arg(
                    2, optional=True, wire="additionalInfo.senderCountryCode"
                ),
                "sender_first_name": text_arg(
                    50, optional=True, wire="additionalInfo.senderFirstName"
                ),
                "sender_last_name": text_arg(
                    50, optional=True, wire="additionalInfo.senderLastName"
                ),
                "sender_personal_id": text_arg(
                    50, optional=True, wire="additionalInfo.senderPersonalId"
                ),
                "sender_personal_id_type": text_arg(
                    20, optional=True, wire="additionalInfo.senderPersonalIdType"
                ),
                "remark": text_arg(100, optional=True, wire="additionalInfo.remark"),
                "external_id": dataclasses.replace(
                    digits_arg(36, optional=True, wire="header:X-EXTERNAL-ID"), unique=36
                ),
            },
        ),
        Op(
            "kirim",
            "check_status",
            "check_status",
            {
                "original_partner_reference_no": visible_arg(64, wire="originalPartnerReferenceNo"),
                "original_reference_no": text_arg(64, optional=True, wire="originalReferenceNo"),
                "original_external_id": digits_arg(36, optional=True, wire="originalExternalId"),
                "service_code": code_arg(exact=True, optional=True, wire="serviceCode"),
            },
        ),
        Op(
            "payout_links",
            "initiate",
            "payout_link_initiate",
            {
                "reference_id": text_arg(30, wire="reference_id", unique=True),
                "amount": amount_arg(LINK_MAX, wire="amount"),
                "sender_name": text_arg(50, wire="sender_name"),
                "receiver_name": text_arg(50, wire="receiver_name"),
                "receiver_phone_number": phone_arg(wire="receiver_phone_number"),
                "receiver_email": Arg(
                    valid=EMAIL_VALID.filter(lambda e: len(e) <= 50),
                    invalid=EMAIL_INVALID,
                    wire="receiver_email",
                ),
                "description": text_arg(30, optional=True, wire="description"),
                "currency": letters_arg(3, min_len=1, optional=True, wire="currency"),
                "request_id": REQUEST_ID,
            },
        ),
        Op(
            "payout_links",
            "status",
            "payout_link_status",
            {
                "reference_id": text_arg(30, wire="transaction_id", unique=True),
                "request_id": dataclasses.replace(REQUEST_ID, unique=0),
            },
        ),
        Op(
            "transfers",
            "create",
            "transfers",
            {
                "origin": text_arg(40, wire="transfer.origin"),
                "destination": text_arg(40, wire="transfer.destination"),
                "amount": whole_arg(1, WHOLE_MAX, wire="transfer.amount"),
                "invoice_number": text_arg(100, wire="transfer.invoice_number", unique=True),
                "request_id": REQUEST_ID,
            },
        ),
        Op(
            "rdl",
            "disburse",
            "rdl",
            {
                "transaction_id": text_arg(
                    64, chars=RDL_ID_CHARS, bad=RDL_ID_BAD, wire="transaction.id", unique=True
                ),
                "amount": whole_arg(10_000, WHOLE_MAX, wire="transaction.amount"),
                "description": text_arg(256, wire="transaction.description"),
                "source_account_id": text_arg(100, wire="source_account.account_id"),
                "destination_bank_code": text_arg(50, wire="account_destination.code"),
                "destination_account_number": text_arg(
                    100, wire="account_destination.account_bank_number"
                ),
                "destination_account_name": text_arg(
                    50, wire="account_destination.account_bank_name"
                ),
                "destination_address": text_arg(50, wire="account_destination.address"),
                "request_id": REQUEST_ID,
            },
        ),
    ]
}


def valid_kwargs(args: dict[str, Arg]) -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries(
        {
            name: st.one_of(st.none(), arg.valid) if arg.optional else arg.valid
            for name, arg in args.items()
        }
    )


def assert_rejected(exc: RequestValidationError, name: str, value: object) -> None:
    assert exc.field == name, (exc.field, name, value)
    assert str(exc).startswith(f"{name}: ")
    if isinstance(value, str) and len(value) >= 12:
        assert value not in str(exc)  # the message never echoes the value


def make_unique(args: dict[str, Arg], kwargs: dict[str, object], n: int) -> dict[str, object]:
    """Suffix the idempotency keys with the example number (allowed in each of them), so
    every accepted example is a new payment."""
    out = dict(kwargs)
    for name, arg in args.items():
        value = out[name]
        if arg.unique and isinstance(value, str):
            suffix = f"{n:07d}" if name == "external_id" else f"-{n:07d}"
            out[name] = value[: arg.unique - len(suffix)] + suffix
    return out


# ------------------------------------------------------------------------------- rejections


def examples_per_argument(args: dict[str, Arg]) -> int:
    """About ``REJECT_EXAMPLES`` per operation, and at least 20 for every argument."""
    return max(20, REJECT_EXAMPLES // len(args))


@pytest.mark.parametrize("op_name", sorted(OPS))
def test_out_of_range_argument_is_refused_before_any_io(op_name: str) -> None:
    op = OPS[op_name]
    tried: Counter[str] = Counter()
    per_argument = examples_per_argument(op.args)
    with Live() as live:

        def attack(name: str, arg: Arg) -> None:
            @settings(SETTINGS, max_examples=per_argument)
            @given(kwargs=valid_kwargs(op.args), value=arg.invalid)
            def run(kwargs: dict[str, object], value: object) -> None:
                with pytest.raises(RequestValidationError) as caught:
                    live.call(op, {**kwargs, name: value})
                assert_rejected(caught.value, name, value)
                assert live.sim.requests == []  # nothing sent: no call, no token request
                assert live.sim.token_requests == 0
                tried[name] += 1

            run()

        for name, arg in op.args.items():
            attack(name, arg)
        assert live.client is not None
        assert live.client.token_fetches == 0
    assert tried == dict.fromkeys(op.args, per_argument)  # every argument, fully


# ------------------------------------------------------------------------------- acceptance


def dig(body: Any, path: str) -> Any:
    for part in path.split("."):
        body = body[part]
    return body


def check_wire(op: Op, kwargs: dict[str, object], headers: dict[str, str], raw: bytes) -> None:
    """The recorded request carries exactly the values given."""
    body = json.loads(raw, parse_float=Decimal)
    for name, arg in op.args.items():
        value = kwargs.get(name)
        if arg.wire is None or value is None:
            continue
        if arg.wire.startswith("header:"):
            assert headers[arg.wire.removeprefix("header:")] == value
            continue
        sent = dig(body, arg.wire)
        if arg.kind == "amount":
            assert isinstance(value, Decimal | int | str)
            expected = Decimal(value).quantize(Decimal("0.01"))
            if op.resource == "kirim":
                assert sent == str(expected)  # SNAP: a string with exactly two decimals
            else:
                assert isinstance(sent, Decimal)  # Payout Link: an exact JSON number
                assert sent == expected
                assert sent.as_tuple().exponent == -2
        elif arg.kind == "whole":
            assert isinstance(value, Decimal | int | str)
            assert type(sent) is int
            assert sent == int(Decimal(value))
        else:
            assert sent == value


ACCEPTED = [name for name in sorted(OPS) if name != "payout_links.status"]


@pytest.mark.parametrize("op_name", ACCEPTED)
def test_in_range_arguments_are_sent_and_answered(op_name: str) -> None:
    op = OPS[op_name]
    counter: Iterator[int] = iter(range(10**9))
    with Live() as live:

        @settings(SETTINGS, max_examples=ACCEPT_EXAMPLES)
        @given(kwargs=valid_kwargs(op.args))
        def run(kwargs: dict[str, object]) -> None:
            kwargs = make_unique(op.args, kwargs, next(counter))
            before = len(live.sim.requests_for(op.operation))
            result: object = None
            try:
                result = live.call(op, kwargs)
            except RequestValidationError as exc:  # pragma: no cover - the failure itself
                pytest.fail(f"in-range arguments refused: {exc}")
            except DokuAPIError as exc:
                result = exc
            if isinstance(result, DokuAPIError):
                assert isinstance(result, op.answers), result
            assert result is not None
            sent = live.sim.requests_for(op.operation)
            assert len(sent) == before + 1  # exactly one attempt: no retry was needed
            check_wire(op, kwargs, sent[-1].headers, sent[-1].body)

        run()
    assert len(live.sim.requests_for(op.operation)) == ACCEPT_EXAMPLES
    if op.operation == "transfer_bank":
        assert all(count == 1 for count in live.sim.commits.values())


def test_in_range_payout_link_status_is_answered() -> None:
    """``payout_links.status`` of a link made in the same example: answered with that link."""
    op = OPS["payout_links.status"]
    initiate = OPS["payout_links.initiate"]
    counter: Iterator[int] = iter(range(10**9))
    with Live() as live:

        @settings(SETTINGS, max_examples=ACCEPT_EXAMPLES)
        @given(link=valid_kwargs(initiate.args), kwargs=valid_kwargs(op.args))
        def run(link: dict[str, object], kwargs: dict[str, object]) -> None:
            kwargs = make_unique(op.args, kwargs, next(counter))
            live.call(
                initiate, {**link, "reference_id": kwargs["reference_id"], "request_id": None}
            )
            answer = live.call(op, kwargs)
            assert getattr(answer, "data", None) is not None
            sent = live.sim.requests_for(op.operation)
            check_wire(op, kwargs, sent[-1].headers, sent[-1].body)

        run()


# ------------------------------------------------------------------------------- bulk items

ITEM_ARGS: dict[str, Arg] = {
    "reference": visible_arg(64, unique=True),
    # Known codes only: the bulk item checks the table, as the Kirim calls do.
    "bank_code": bank_code_arg(unknown_is_invalid=True),
    "account_number": digits_arg(32),
    "account_name": text_arg(100),
    "amount": amount_arg(SNAP_MAX, wire="amount"),
    "remark": text_arg(100, optional=True),
}


@pytest.mark.parametrize("name", sorted(ITEM_ARGS))
def test_out_of_range_payout_item_is_refused(name: str) -> None:
    @settings(SETTINGS, max_examples=50)
    @given(kwargs=valid_kwargs(ITEM_ARGS), value=ITEM_ARGS[name].invalid)
    def run(kwargs: dict[str, object], value: object) -> None:
        with pytest.raises(RequestValidationError) as caught:
            payout_item(**{**kwargs, name: value})  # type: ignore[arg-type]
        assert_rejected(caught.value, name, value)

    run()


@settings(SETTINGS, max_examples=300)
@given(kwargs=valid_kwargs(ITEM_ARGS))
def test_in_range_payout_item_is_kept_exactly(kwargs: dict[str, object]) -> None:
    item = payout_item(**kwargs)  # type: ignore[arg-type]
    for name, value in kwargs.items():
        kept = getattr(item, name)
        if name == "amount":
            assert isinstance(value, Decimal | int | str)
            assert kept == Decimal(value)
            assert kept.as_tuple().exponent == -2
        else:
            assert kept == value


def test_in_range_payout_items_are_paid_once() -> None:
    """Valid items run through a :class:`BulkRunner` on the simulator: each one is paid
    exactly once and none fails or is left unknown."""
    counter: Iterator[int] = iter(range(10**9))
    with Live() as live:

        @settings(SETTINGS, max_examples=25)
        @given(rows=st.lists(valid_kwargs(ITEM_ARGS), min_size=1, max_size=6))
        def run(rows: list[dict[str, object]]) -> None:
            n = next(counter)
            items: list[PayoutItem] = [
                payout_item(**make_unique(ITEM_ARGS, row, n * 10 + i))  # type: ignore[arg-type]
                for i, row in enumerate(rows)
            ]
            assert live.client is not None
            # The names here are arbitrary text: the name check (tested in test_names.py and
            # test_bulk_guards.py) is off, so only the arguments' ranges are under test.
            runner = BulkRunner(
                live.client, customer_number="628115678890", concurrency=3, name_check="off"
            )
            summary = live.runner.run(runner.run(items))
            assert summary.counts["failed"] == summary.counts["unknown"] == 0
            for item in items:
                assert live.sim.transfer_count(item.reference) == 1
                assert live.sim.transfers[item.reference].amount == item.amount

        run()


# ------------------------------------------------------------------------------- known bug

SURROGATE = "\ud800"
SURROGATE_CASES = [
    ("kirim.account_inquiry", "beneficiary_account_name"),
    ("kirim.balance_inquiry", "account_no"),
    ("kirim.transfer_bank", "remark"),
    ("kirim.check_status", "original_reference_no"),
    ("payout_links.initiate", "sender_name"),
    ("payout_links.initiate", "receiver_email"),
    ("payout_links.status", "reference_id"),
    ("transfers.create", "destination"),
    ("rdl.disburse", "description"),
]


VALID: dict[str, dict[str, object]] = {
    "kirim.account_inquiry": {
        "partner_reference_no": "inq-1",
        "customer_number": "628115678890",
        "beneficiary_account_number": "8377388292",
        "beneficiary_bank_code": "014",
        "beneficiary_account_name": "FHILEA HERMANUS",
        "amount": "200000",
    },
    "kirim.balance_inquiry": {"account_no": AGENT},
    "kirim.transfer_bank": {
        "partner_reference_no": "pay-1",
        "customer_number": "628115678890",
        "beneficiary_account_number": "8377388292",
        "beneficiary_bank_code": "014",
        "amount": "200000",
    },
    "kirim.check_status": {"original_partner_reference_no": "pay-1"},
    "payout_links.initiate": {
        "reference_id": "BONUS-1",
        "amount": "150000.50",
        "sender_name": "ACME Logistics",
        "receiver_name": "Budi Santoso",
        "receiver_phone_number": "628111222333",
        "receiver_email": "budi@example.com",
    },
    "payout_links.status": {"reference_id": "BONUS-1"},
    "transfers.create": {
        "origin": "SAC-0000-0000000000001",
        "destination": "SAC-8014-1628130619289",
        "amount": 10000,
        "invoice_number": "INV/1",
    },
    "rdl.disburse": {
        "transaction_id": "trx-1",
        "amount": 300000,
        "description": "withdrawal",
        "source_account_id": "2340211124151729152107164433893000196019",
        "destination_bank_code": "BNINIDJA",
        "destination_account_number": "0115471119",
        "destination_account_name": "ROBERT NARO",
        "destination_address": "JAKARTA",
    },
}


@pytest.mark.parametrize(("op_name", "name"), SURROGATE_CASES)
def test_lone_surrogate_is_never_sent(op_name: str, name: str) -> None:
    """The safety half of the bug below: a lone surrogate never reaches the wire."""
    op = OPS[op_name]
    with Live() as live:
        with pytest.raises((RequestValidationError, UnicodeEncodeError)):
            live.call(op, {**VALID[op_name], name: f"a{SURROGATE}@b.id"})
        assert live.sim.requests == []


@pytest.mark.parametrize(("op_name", "name"), SURROGATE_CASES)
def test_lone_surrogate_is_a_validation_error(op_name: str, name: str) -> None:
    op = OPS[op_name]
    with Live() as live:
        with pytest.raises(RequestValidationError) as caught:
            live.call(op, {**VALID[op_name], name: f"a{SURROGATE}@b.id"})
        assert caught.value.field == name


@pytest.mark.parametrize("name", ["account_name", "remark"])
def test_lone_surrogate_payout_item_is_refused(name: str) -> None:
    kwargs: dict[str, object] = {
        "reference": "DRV-1",
        "bank_code": "014",
        "account_number": "8377388292",
        "account_name": "FHILEA HERMANUS",
        "amount": "200000",
        name: f"x{SURROGATE}",
    }
    with pytest.raises(RequestValidationError) as caught:
        payout_item(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == name
