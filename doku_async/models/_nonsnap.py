"""Bases for DOKU's Non-SNAP bodies (snake_case on the wire)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["NonSnapError", "NonSnapRequest", "NonSnapResponse"]


class NonSnapRequest(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, kw_only=True):
    """Base of Non-SNAP request bodies: snake_case, ``None`` omitted, unknown fields forbidden."""


class NonSnapResponse(msgspec.Struct, kw_only=True):
    """Base of Non-SNAP answers: tolerant of new fields.

    ``request_id``, ``replayed`` and ``resolved_by_status`` are set by the SDK, not by DOKU:
    the ``Request-Id`` the operation used, whether DOKU answered 409 with the original result
    of that ``Request-Id`` (a replay, not a second payout), and whether the result came from a
    status call after the first answers were lost.
    """

    request_id: str = ""
    replayed: bool = False
    resolved_by_status: bool = False

    def is_result(self) -> bool:
        """Whether the body carries the product's result object (used to tell a replay)."""
        return False


class NonSnapError(msgspec.Struct, kw_only=True):
    """The error shapes Non-SNAP products answer with (400 ``errors``, 408/500 ``data``)."""

    status: str | int | None = None
    message: str | None = None
    errors: list[Any] | None = None
    data: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def describe(self) -> str:
        """A one-line message from whichever fields are present (``""`` when none is)."""
        parts: list[str] = []
        if self.error:
            parts.append(str(self.error.get("message") or self.error.get("code") or ""))
        if self.message:
            parts.append(self.message)
        if self.errors:
            parts.append("; ".join(str(e) for e in self.errors[:5]))
        return " - ".join(p for p in parts if p)
