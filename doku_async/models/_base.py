"""Base Structs for the wire, one per direction.

* :class:`RequestStruct`: camelCase on the wire, ``None`` fields omitted, unknown fields
  forbidden (so a simulator or test decoding our requests catches typos).
* :class:`ResponseStruct`: camelCase, tolerant: unknown fields are ignored, every field has a
  default, so DOKU adding or dropping a field never breaks decoding.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

import msgspec

__all__ = ["Amount", "RequestStruct", "ResponseStruct", "SnapResponse", "normalize_code"]


class RequestStruct(
    msgspec.Struct, rename="camel", omit_defaults=True, forbid_unknown_fields=True, kw_only=True
):
    """Base of request bodies sent to DOKU."""


class ResponseStruct(msgspec.Struct, rename="camel", kw_only=True):
    """Base of response bodies received from DOKU.

    ``__essential__`` names the fields the SDK acts on: only those are decoded strictly; every
    other field tolerates any JSON value (see ``doku_async._serde.decode_answer``).
    """

    __essential__: ClassVar[frozenset[str]] = frozenset()


class Amount(msgspec.Struct, kw_only=True):
    """A SNAP money amount. ``value`` encodes as a string like ``"200000.00"``."""

    __essential__: ClassVar[frozenset[str]] = frozenset({"value"})

    value: Decimal
    currency: str = "IDR"
    """Kirim DOKU moves rupiah only; an answer without a readable currency reads as IDR."""


def normalize_code(raw: str | int | None, width: int = 7) -> str:
    """DOKU sometimes sends codes as JSON numbers: ``2004300`` -> ``"2004300"``."""
    if raw is None:
        return ""
    if isinstance(raw, int):
        return str(raw).zfill(width)
    return raw


class SnapResponse(ResponseStruct, kw_only=True):
    """Fields every SNAP answer carries."""

    __essential__: ClassVar[frozenset[str]] = frozenset({"raw_response_code"})

    raw_response_code: str | int = msgspec.field(name="responseCode", default="")
    """``responseCode`` as sent (text or number); read :attr:`response_code`."""
    response_message: str = ""
    """``responseMessage`` as text (a number becomes text, any other type ``""``)."""

    @property
    def response_code(self) -> str:
        """The seven-digit response code as text, e.g. ``"2004300"``."""
        return normalize_code(self.raw_response_code)
