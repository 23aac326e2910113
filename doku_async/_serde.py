"""One msgspec encoder and cached typed decoders, and the decoding rule for DOKU's answers.

Request bodies are encoded once into minified JSON (compact, key order kept, ``/`` not escaped,
non-ASCII as raw UTF-8, ``Decimal`` as a string), and exactly those bytes are hashed, signed and
sent. Decoders are built once per type.

**The decoding rule for answers and notifications** (:func:`decode_answer`): DOKU's documents,
its SDKs and its sandbox disagree on the JSON type of many fields (``additionalInfo`` is ``""``
in the token answer and an object elsewhere; codes come as numbers or text). So only the fields
the SDK acts on are decoded strictly: a model lists them in ``__essential__`` (response codes,
the token and its lifetime, references, statuses, amounts it compares). Every other field takes
any JSON value without failing the decode: a number where text is expected becomes text, and
any other mismatch leaves the field at its default (``None``); the raw body stays with the
caller. The typed decoder runs first, so a well-formed answer costs nothing extra; only an
answer that does not fit takes the tolerant path.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, TypeVar, Union, cast

import msgspec

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_number_encoder = msgspec.json.Encoder(decimal_format="number")
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
_any_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


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
    """Decode ``data`` strictly into ``type_``; raises :class:`msgspec.DecodeError` on bad
    input (for requests and our own records; answers use :func:`decode_answer`)."""
    return decoder(type_).decode(data)


def decode_answer(type_: type[T], data: bytes) -> T:
    """Decode an answer or notification from DOKU under the decoding rule (module docstring).

    Raises :class:`msgspec.DecodeError` when ``data`` is not JSON, and
    :class:`msgspec.ValidationError` when it is not an object or an essential field has a
    type the SDK cannot use.
    """
    try:
        return decoder(type_).decode(data)
    except msgspec.ValidationError:
        pass
    raw = _any_decoder.decode(data)
    if not isinstance(raw, dict):
        raise msgspec.ValidationError(f"expected a JSON object, got {type(raw).__name__}")
    result: T = _build(type_, raw, "$")
    return result


def try_decode(type_: type[T], data: bytes) -> T | None:
    """:func:`decode_answer`, or ``None`` when ``data`` cannot be read as ``type_``."""
    try:
        return decode_answer(type_, data)
    except _DECODE_ERRORS:
        return None


# --- the tolerant path ----------------------------------------------------------------------


class _Field:
    __slots__ = ("annotation", "essential", "name", "structs", "takes_text", "wire")

    def __init__(self, name: str, wire: str, annotation: Any, essential: bool) -> None:
        self.name = name
        self.wire = wire
        self.annotation = annotation
        self.essential = essential
        members = _members(annotation)
        self.takes_text = str in members or annotation is Any
        self.structs = tuple(
            m for m in members if isinstance(m, type) and issubclass(m, msgspec.Struct)
        )


def _members(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return (annotation,)


@functools.cache
def _plan(type_: Any) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(type_)
    essential: set[str] = set()
    for klass in type_.__mro__:  # a model's essential fields add to its bases'
        essential.update(vars(klass).get("__essential__", ()))
    return tuple(
        _Field(f.name, f.encode_name, hints[f.name], f.name in essential)
        for f in msgspec.structs.fields(type_)
    )


def _build(type_: type[T], raw: dict[str, Any], path: str) -> T:
    values: dict[str, Any] = {}
    for field in _plan(cast(Any, type_)):
        if field.wire not in raw:
            continue
        value = _field_value(field, raw[field.wire], f"{path}.{field.wire}")
        if value is not _MISSING:
            values[field.name] = value
    try:
        return type_(**values)
    except TypeError as exc:  # a required field that was absent or unusable
        raise msgspec.ValidationError(f"{exc} - at `{path}`") from None


_MISSING: Any = object()


def _field_value(field: _Field, value: Any, path: str) -> Any:
    try:
        return msgspec.convert(value, field.annotation, strict=False)
    except msgspec.ValidationError:
        pass
    if field.takes_text and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict):
        for struct in field.structs:
            try:
                return _build(struct, value, path)
            except msgspec.ValidationError:
                continue
    if isinstance(value, list) and field.structs:
        # ``list[Struct]`` members: keep the entries that can be read.
        for member in _members(field.annotation):
            args = typing.get_args(member)
            if typing.get_origin(member) is list and args and args[0] in field.structs:
                items = [_build_or_none(args[0], v, path) for v in value]
                return [v for v in items if v is not None]
    if field.essential:
        raise msgspec.ValidationError(f"unusable value for an essential field - at `{path}`")
    return _MISSING


def _build_or_none(type_: type[T], value: Any, path: str) -> T | None:
    if not isinstance(value, dict):
        return None
    try:
        return _build(type_, value, path)
    except msgspec.ValidationError:
        return None
