"""One msgspec encoder and cached typed decoders.

Request bodies are encoded once into minified JSON (compact, key order kept, ``/`` not escaped,
non-ASCII as raw UTF-8, ``Decimal`` as a string), and exactly those bytes are hashed, signed and
sent. Decoders are built once per response type.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_number_encoder = msgspec.json.Encoder(decimal_format="number")
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(obj: Any) -> bytes:
    """Encode ``obj`` as minified JSON; ``Decimal`` values become strings (SNAP amounts)."""
    return _encoder.encode(obj)


def encode_numbers(obj: Any) -> bytes:
    """Encode ``obj`` as minified JSON with ``Decimal`` values as exact JSON numbers."""
    return _number_encoder.encode(obj)


def decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    """Return the cached decoder for ``type_``."""
    dec = _decoders.get(type_)
    if dec is None:
        dec = _decoders[type_] = msgspec.json.Decoder(type_)
    return dec


def decode(type_: type[T], data: bytes) -> T:
    """Decode ``data`` into ``type_``; raises :class:`msgspec.DecodeError` on bad input."""
    return decoder(type_).decode(data)


def try_decode(type_: type[T], data: bytes) -> T | None:
    """Decode ``data`` into ``type_``, or ``None`` when it is not JSON of that shape."""
    try:
        return decoder(type_).decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
