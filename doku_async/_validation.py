"""Argument checks run before any I/O. Each raises :class:`RequestValidationError` naming the
field; messages describe the problem, never echo a possibly sensitive value."""

from __future__ import annotations

import re
from decimal import Context, Decimal, InvalidOperation

from ._banks import BankCodes
from ._exceptions import RequestValidationError

__all__ = ["amount", "bank_code", "digits", "optional_text", "phone", "text"]

_PHONE = re.compile(r"62[0-9]{7,12}")
_TWO_PLACES = Decimal("0.01")
_CONTEXT = Context(prec=60)
_AMOUNT_TYPES = (Decimal, int, str)


def text(
    field: str,
    value: object,
    *,
    max_len: int,
    min_len: int = 1,
    pattern: re.Pattern[str] | None = None,
    allowed: str = "",
) -> str:
    """A required string of ``min_len..max_len`` characters, optionally matching ``pattern``."""
    if not isinstance(value, str):
        raise RequestValidationError(field, f"must be a string, not {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestValidationError(field, "must be valid Unicode text") from None
    n = len(value)
    if min_len > 0 and (n == 0 or value.isspace()):
        raise RequestValidationError(field, "must not be empty")
    if n < min_len or n > max_len:
        if min_len == max_len:
            raise RequestValidationError(field, f"must be exactly {max_len} characters (got {n})")
        raise RequestValidationError(field, f"must be {min_len} to {max_len} characters (got {n})")
    if pattern is not None and pattern.fullmatch(value) is None:
        raise RequestValidationError(field, f"may contain only {allowed or pattern.pattern}")
    return value


def optional_text(
    field: str,
    value: object,
    *,
    max_len: int,
    pattern: re.Pattern[str] | None = None,
    allowed: str = "",
) -> str | None:
    """``None`` or a non-empty string of at most ``max_len`` characters."""
    if value is None:
        return None
    return text(field, value, max_len=max_len, pattern=pattern, allowed=allowed)


def digits(field: str, value: object, *, max_len: int, min_len: int = 1) -> str:
    """A required string of ASCII digits, ``min_len..max_len`` long."""
    checked = text(field, value, max_len=max_len, min_len=min_len)
    if not (checked.isascii() and checked.isdigit()):
        raise RequestValidationError(field, "may contain only digits 0-9")
    return checked


def bank_code(field: str, value: object, codes: BankCodes) -> str:
    """A three-digit bank code that ``codes`` knows, e.g. ``"014"``.

    Both messages name the code (digits only, at most 8, so never sensitive) and the unknown
    one says how to extend the table.
    """
    checked = digits(field, value, max_len=8)
    if len(checked) != 3:
        raise RequestValidationError(
            field, f"must be a three-digit bank code such as '014', not {checked!r}"
        )
    if not codes.is_known(checked):
        raise RequestValidationError(
            field,
            f"unknown bank code {checked!r}; if DOKU accepts it, add it with "
            f"DokuClient(bank_codes=BankCodes.default().with_extra({{{checked!r}: 'Bank name'}}))",
        )
    return checked


def phone(field: str, value: object) -> str:
    """An Indonesian phone number in ``62...`` form, 9 to 14 digits in all."""
    checked = text(field, value, max_len=14, min_len=1)
    if _PHONE.fullmatch(checked) is None:
        raise RequestValidationError(
            field, "must be a phone number in 62... form with 9 to 14 digits (e.g. 628115678890)"
        )
    return checked


def amount(
    field: str,
    value: object,
    *,
    minimum: Decimal = _TWO_PLACES,
    maximum: Decimal = Decimal("99999999999999.99"),
) -> Decimal:
    """A positive amount with at most two decimals, returned quantized to exactly two.

    Accepts :class:`~decimal.Decimal`, ``int`` or a numeric string. Floats are refused: binary
    floating point cannot hold most cent values exactly.
    """
    if isinstance(value, bool) or not isinstance(value, _AMOUNT_TYPES):
        if isinstance(value, float):
            raise RequestValidationError(
                field, "must be a Decimal, int or str, not float (floats lose cents)"
            )
        raise RequestValidationError(
            field, f"must be a Decimal, int or str, not {type(value).__name__}"
        )
    dec = _to_decimal(field, value)
    if not dec.is_finite():
        raise RequestValidationError(field, "must be a finite number")
    if dec > maximum:
        raise RequestValidationError(field, f"must be at most {maximum}")
    if dec < -maximum:
        raise RequestValidationError(field, f"must be at least {minimum}")
    # Bounded, and in our own context: the caller's decimal context cannot break it.
    quantized = dec.quantize(_TWO_PLACES, context=_CONTEXT)
    if quantized != dec:
        raise RequestValidationError(field, "must have at most 2 decimal places")
    if dec < minimum:
        raise RequestValidationError(field, f"must be at least {minimum}")
    return quantized


def _to_decimal(field: str, value: Decimal | int | str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str) and (not value.isascii() or "_" in value or value != value.strip()):
        # Decimal() would take Arabic-Indic digits, "1_000" and padding: not for money.
        raise RequestValidationError(field, "must be a plain number (ASCII digits, no spaces)")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise RequestValidationError(field, "is not a number") from None


def whole_amount(field: str, value: object, *, minimum: int, maximum: int) -> int:
    """A whole amount (no cents) between ``minimum`` and ``maximum``, returned as ``int``.

    Accepts ``int``, :class:`~decimal.Decimal` or a numeric string without a fractional part.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        if isinstance(value, float):
            raise RequestValidationError(field, "must be an int, Decimal or str, not float")
        raise RequestValidationError(
            field, f"must be an int, Decimal or str, not {type(value).__name__}"
        )
    dec = _to_decimal(field, value)
    if not dec.is_finite() or dec != dec.to_integral_value(context=_CONTEXT):
        raise RequestValidationError(field, "must be a whole number (no cents)")
    if dec < minimum:
        raise RequestValidationError(field, f"must be at least {minimum}")
    if dec > maximum:
        raise RequestValidationError(field, f"must be at most {maximum}")
    return int(dec)


_COUNTRY = re.compile(r"[A-Z]{2}")
_CHANNEL = re.compile(r"[0-9]{1,2}")


def country_code(field: str, value: object) -> str:
    """An ISO country code as DOKU takes it: two capital letters."""
    return text(field, value, max_len=2, min_len=2, pattern=_COUNTRY, allowed="A-Z")


def channel_code(value: object) -> str:
    """A channel code: one or two digits."""
    return text("channel_code", value, max_len=2, pattern=_CHANNEL, allowed="digits")


def optional_channel_code(value: object) -> str | None:
    """An optional channel code: one or two digits, or ``None``."""
    return None if value is None else channel_code(value)
