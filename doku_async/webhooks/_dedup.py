"""De-duplication stores for at-least-once notifications."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, cast, runtime_checkable

import msgspec

__all__ = ["BodyBindingStore", "DedupStore", "MemoryDedupStore", "SharedDedupStore"]

log = logging.getLogger("doku_async.webhooks")

DEFAULT_TTL = 48 * 3600.0
CLAIM_ROUNDS = 5
"""How many times a delivery tries to claim after the copy it waited for failed; then 503."""


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


@runtime_checkable
class BodyBindingStore(Protocol):
    """A store that also binds a ``requestId`` to the body first seen with it.

    The legacy signature covers only ``agentKey + requestId``: captured headers replayed with a
    changed body verify. Binding refuses such a replay (409) before any de-duplication, even
    when the first delivery failed and was released. Both stores of the SDK implement it.
    """

    async def bind(self, key: str, digest: str, ttl: float) -> bool:
        """Record ``digest`` under ``key`` unless present; ``False`` if bound to another."""
        ...


@runtime_checkable
class SharedDedupStore(Protocol):
    """A store shared by several processes (several replicas behind a load balancer).

    A claim is *pending* while the claiming delivery runs and *done* once it succeeded, so a
    copy arriving at another replica meanwhile can wait for the outcome instead of being
    acknowledged before the first callback is known to have succeeded.
    """

    async def complete(self, keys: Sequence[str], ttl: float) -> None:
        """Mark this process's pending claim of ``keys`` done, remembered for ``ttl`` seconds."""
        ...

    async def wait_outcome(self, keys: Sequence[str]) -> bool | None:
        """Wait (bounded) while another process holds ``keys``: ``True`` done (a duplicate),
        ``False`` released (claim again), ``None`` still pending (answer 503 so DOKU retries)."""
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
        self._digests: dict[str, str] = {}
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
            self._digests.pop(key, None)

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

    async def bind(self, key: str, digest: str, ttl: float) -> bool:
        """Bind ``key`` to ``digest`` for ``ttl`` seconds; ``False`` if bound to another."""
        now = self._clock()
        self._purge(now)
        expiry = self._expiry.get(key)
        if expiry is not None and expiry > now:
            return self._digests.get(key) == digest
        self._expiry.pop(key, None)
        self._expiry[key] = now + ttl
        self._digests[key] = digest
        return True


_CAPABILITIES: dict[type, tuple[bool, bool]] = {}


def _capabilities(store: DedupStore) -> tuple[bool, bool]:
    """``(binds bodies, shared)`` for ``store``'s class, checked once per class: an
    ``isinstance`` against a runtime-checkable protocol inspects every member, which cost more
    than the rest of the de-duplication per notification."""
    cls = type(store)
    known = _CAPABILITIES.get(cls)
    if known is None:
        known = (isinstance(store, BodyBindingStore), isinstance(store, SharedDedupStore))
        _CAPABILITIES[cls] = known
    return known


def body_digest(kind: str, notification: msgspec.Struct) -> str:
    """The SHA-256 of the parsed notification (its fields, canonically encoded), so DOKU's
    retry of one notification matches whatever its whitespace or key order."""
    return hashlib.sha256(kind.encode() + b"\n" + msgspec.json.encode(notification)).hexdigest()


async def bind_body(store: DedupStore, key: str, digest: str, ttl: float) -> bool | None:
    """Bind when the store can: ``True`` bound (or no binding), ``False`` another body holds
    ``key``, ``None`` the store failed (answer 503)."""
    if not _capabilities(store)[0]:
        return True
    try:
        return await cast(BodyBindingStore, store).bind(key, digest, ttl)
    except Exception:
        log.exception("de-duplication store failed; answering 503 so DOKU retries")
        return None


async def claim_delivery(
    store: DedupStore,
    keys: Sequence[str],
    ttl: float,
    inflight: Mapping[str, asyncio.Future[bool]],
) -> bool | None:
    """Claim ``keys``: ``True`` claimed, ``False`` already handled, ``None`` answer 503.

    A copy that arrives while the first is still being handled waits for its outcome, in this
    process (``inflight``) or, with a :class:`SharedDedupStore`, in another one: if that fails,
    this copy is handled instead of being lost; if it is still running after the store's wait,
    the answer is 503 and DOKU retries. User code is never called without a claim.
    """
    for _ in range(CLAIM_ROUNDS):
        try:
            if await store.claim(keys, ttl):
                return True
        except Exception:
            log.exception("de-duplication store failed; answering 503 so DOKU retries")
            return None
        running = next((inflight[k] for k in keys if k in inflight), None)
        if running is not None:
            if await asyncio.shield(running):
                return False
            continue
        if not _capabilities(store)[1]:
            return False
        try:
            outcome = await cast(SharedDedupStore, store).wait_outcome(keys)
        except Exception:
            log.exception("de-duplication store failed; answering 503 so DOKU retries")
            return None
        if outcome is None:
            return None
        if outcome:
            return False
    return None


async def release_quietly(store: DedupStore, keys: Sequence[str]) -> None:
    """Release ``keys``; a store failure is logged, not raised (a shared store's claim then
    lapses with its lease, and DOKU's retry is handled after that)."""
    try:
        await store.release(keys)
    except Exception:
        log.exception("de-duplication store failed to release a claim")


async def complete_quietly(store: DedupStore, keys: Sequence[str], ttl: float) -> None:
    """Mark a shared store's claim done after success; a failure is logged (the answer is
    already decided: the callback ran)."""
    if not _capabilities(store)[1]:
        return
    try:
        await cast(SharedDedupStore, store).complete(keys, ttl)
    except Exception:
        log.exception("de-duplication store failed to mark a notification done")
