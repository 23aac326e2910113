"""Helpers shared by the secrets tests: every text a secret could leak through."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def pem_body_lines(pem: bytes) -> list[str]:
    """The base64 lines of a PEM document (not the BEGIN/END armour)."""
    return [
        line.strip()
        for line in pem.decode().splitlines()
        if line.strip() and not line.startswith("-----")
    ]


def exception_texts(exc: BaseException | None, seen: set[int] | None = None) -> Iterator[str]:
    """str, repr, args and attributes of an exception and of its whole cause/context chain."""
    seen = set() if seen is None else seen
    if exc is None or id(exc) in seen:
        return
    seen.add(id(exc))
    yield str(exc)
    yield repr(exc)
    yield repr(exc.args)
    yield from (str(arg) for arg in exc.args)
    for name, value in vars(exc).items():
        yield f"{name}={value!r}"
        yield str(value)
        if isinstance(value, BaseException):
            yield from exception_texts(value, seen)
    yield from exception_texts(exc.__cause__, seen)
    yield from exception_texts(exc.__context__, seen)


def object_texts(objects: Iterable[object]) -> Iterator[str]:
    """The repr and str of each object."""
    for obj in objects:
        yield repr(obj)
        yield str(obj)
