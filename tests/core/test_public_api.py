"""The public surface stays deliberate: a sorted, complete ``__all__`` and typed package."""

from __future__ import annotations

import importlib.resources
import inspect

import msgspec

import doku_async


def test_all_is_sorted_and_unique() -> None:
    names = list(doku_async.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_all_names_exist_and_public_classes_are_exported() -> None:
    for name in doku_async.__all__:
        assert hasattr(doku_async, name), name
    exported = {
        name
        for name, obj in vars(doku_async).items()
        if not name.startswith("_") and inspect.isclass(obj)
    }
    assert exported <= set(doku_async.__all__)


def test_every_error_derives_from_doku_error() -> None:
    errors = [
        obj
        for name in doku_async.__all__
        if inspect.isclass(obj := getattr(doku_async, name)) and name.endswith("Error")
    ]
    assert len(errors) >= 19
    for cls in errors:
        assert issubclass(cls, doku_async.DokuError), cls


def test_public_classes_have_docstrings() -> None:
    for name in doku_async.__all__:
        obj = getattr(doku_async, name)
        if inspect.isclass(obj):
            assert (obj.__doc__ or "").strip(), name


def test_py_typed_marker_ships() -> None:
    assert importlib.resources.files("doku_async").joinpath("py.typed").is_file()


def test_public_names_show_as_doku_async_x() -> None:
    """Issue 14: ``doku_async.DokuClient``, not ``doku_async._client.DokuClient``."""
    shown = {
        name: getattr(doku_async, name).__module__
        for name in doku_async.__all__
        if (inspect.isclass(obj := getattr(doku_async, name)) or inspect.isfunction(obj))
        # msgspec Structs keep their module: msgspec resolves their annotations there.
        and not (inspect.isclass(obj) and issubclass(obj, msgspec.Struct))
    }
    assert "DokuClient" in shown
    assert shown
    assert set(shown.values()) == {"doku_async"}, shown
    error = doku_async.TransferOutcomeUnknownError("x", references={})
    assert type(error).__module__ + "." + type(error).__qualname__ == (
        "doku_async.TransferOutcomeUnknownError"
    )
