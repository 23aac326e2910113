"""Masking for values that may appear in logs (stdlib only)."""

from __future__ import annotations

__all__ = ["mask_account"]


def mask_account(number: str, visible: int = 4) -> str:
    """``"8377388292"`` -> ``"******8292"``: enough to recognise, not enough to use."""
    if len(number) <= visible:
        return "*" * len(number)
    return "*" * (len(number) - visible) + number[-visible:]
