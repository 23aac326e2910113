"""De-duplication stores for at-least-once notifications."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

__all__ = ["DedupStore", "MemoryDedupStore"]

DEFAULT_TTL = 48 * 3600.0


class DedupStore(Protocol):
    """Remembers which notifications were handled.

    Small enough to back with Redis (``SET key 1 NX EX ttl`` per key) or a database table with
    a unique key.
    """

    async def claim(self, keys: Sequence[str], ttl: float) -> bool:
        """Atomically record all ``keys`` for ``ttl`` seconds; ``False`` if any is present."""
        ...

    async def release(self, keys: Sequence[str]) -> None:
        """Forget ``keys`` (the handler failed, so DOKU's retry must be processed)."""
        ...


class MemoryDedupStore:
    """An in-process store with a TTL (48 hours by default, past DOKU's 12-hour retries).

    Atomic because asyncio runs one coroutine step at a time and :meth:`claim` never awaits.
    Expired keys are purged as new ones arrive, at a cost proportional to what is purged;
    ``max_keys`` bounds memory (the oldest keys go first).
    """

    def __init__(
        self,
        *,
        max_keys: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._expiry: dict[str, float] = {}
        self._max_keys = max_keys
        self._clock = clock

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge(self, now: float) -> None:
        """Drop expired keys from the front, then the oldest beyond ``max_keys``.

        Keys are kept in insertion order, which is expiry order for one TTL, so this stops at
        the first live key: it costs what it removes, not the size of the store.
        """
        expiry = self._expiry
        stale: list[str] = []
        overflow = len(expiry) - self._max_keys + 1
        for key, until in expiry.items():
            if until > now and len(stale) >= overflow:
                break
            stale.append(key)
        for key in stale:
            del expiry[key]

    async def claim(self, keys: Sequence[str], ttl: float) -> bool:
        """Record all ``keys`` for ``ttl`` seconds unless one is already present."""
        now = self._clock()
        self._purge(now)
        for key in keys:
            expiry = self._expiry.get(key)
            if expiry is not None and expiry > now:
                return False
        until = now + ttl
        for key in keys:
            self._expiry.pop(key, None)  # re-insert at the end: order stays expiry order
            self._expiry[key] = until
        return True

    async def release(self, keys: Sequence[str]) -> None:
        """Forget ``keys``."""
        for key in keys:
            self._expiry.pop(key, None)
