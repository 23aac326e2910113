"""Configuration value objects: timeouts and the Kirim DOKU paths (stdlib only)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from . import _constants as C
from ._exceptions import ConfigurationError

__all__ = ["KirimPaths", "Timeouts"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Time limits in seconds.

    Attributes:
        connect: to open a TCP/TLS connection.
        attempt: for one HTTP attempt, from sending to the last byte of the answer.
        total: for a whole operation, retries, token fetch and transfer settlement included.
    """

    connect: float = C.DEFAULT_CONNECT_TIMEOUT
    attempt: float = C.DEFAULT_ATTEMPT_TIMEOUT
    total: float = C.DEFAULT_TOTAL_TIMEOUT

    def __post_init__(self) -> None:
        if min(self.connect, self.attempt, self.total) <= 0:
            raise ConfigurationError("timeouts: every timeout must be positive")


@dataclass(frozen=True, slots=True)
class KirimPaths:
    """The four Kirim DOKU paths. The path signed is exactly the path requested.

    Use :meth:`family` for DOKU's two published families, or set each path yourself (DOKU
    has not confirmed the live check-status path).
    """

    account_inquiry: str
    balance_inquiry: str
    transfer_bank: str
    check_status: str

    @classmethod
    def family(cls, prefix: str) -> KirimPaths:
        """Paths under ``"/v1.0"`` (the seed page, default) or ``"/snap/v1.1"`` (current docs)."""
        if prefix not in C.KIRIM_FAMILIES:
            raise ConfigurationError(
                f"kirim_paths: unknown family {prefix!r}; use one of {', '.join(C.KIRIM_FAMILIES)}"
            )
        return cls(
            account_inquiry=prefix + C.ACCOUNT_INQUIRY_SUFFIX,
            balance_inquiry=prefix + C.BALANCE_INQUIRY_SUFFIX,
            transfer_bank=prefix + C.TRANSFER_BANK_SUFFIX,
            check_status=prefix + C.CHECK_STATUS_SUFFIX,
        )

    def __post_init__(self) -> None:
        for name in ("account_inquiry", "balance_inquiry", "transfer_bank", "check_status"):
            value = getattr(self, name)
            if not value.startswith("/") or "?" in value:
                raise ConfigurationError(
                    f"kirim_paths.{name}: must start with '/' and have no query"
                )


@dataclass(frozen=True, slots=True)
class Clocks:
    """Time, sleeping and randomness, in one bundle so tests inject them together.

    Attributes:
        monotonic: deadlines and token expiry (``time.monotonic``).
        sleep: backoff waits (``asyncio.sleep``).
        rand: backoff jitter, in ``[0, 1)`` (``random.random``).
        wall: request timestamps, in seconds since the epoch (``time.time``).
    """

    monotonic: Callable[[], float] = field(default=time.monotonic)
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)
    rand: Callable[[], float] = field(default=random.random)
    wall: Callable[[], float] = field(default=time.time)
