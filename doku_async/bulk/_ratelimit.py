"""A client-side rate limit that backs off when DOKU answers 429."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from .._exceptions import ConfigurationError

__all__ = ["RateLimiter"]


class RateLimiter:
    """Paces requests to at most ``rate`` per second, shared by every worker.

    On a 429 the rate is halved (at most once a second, since one slow-down yields a burst
    of 429s) and DOKU's ``Retry-After`` is respected; it then climbs back
    by 5% of the target per second without a 429 (additive increase, multiplicative
    decrease). With ``rate=None`` it does not pace until the first 429, then starts at half
    the rate it observed over the last second.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        min_rate: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ConfigurationError("rate: must be positive")
        self.target = rate
        self.rate = rate
        self.min_rate = min_rate
        self.throttled = 0
        """How many 429 answers slowed the run down."""
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._last_adjust = 0.0
        self._last_halving: float | None = None
        self._recent: deque[float] = deque()

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate}, target={self.target})"

    async def acquire(self) -> None:
        """Wait for the next slot."""
        now = self._clock()
        if self.rate is None:
            recent = self._recent
            recent.append(now)
            while recent and recent[0] < now - 1.0:
                recent.popleft()
            if self._next <= now:
                return
            await self._sleep(self._next - now)
            return
        self._recover(now)
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        if slot > now:
            await self._sleep(slot - now)

    def _recover(self, now: float) -> None:
        if self.rate is None or not self._last_adjust:
            return
        elapsed = now - self._last_adjust
        self._last_adjust = now
        base = self.target if self.target is not None else self.rate
        self.rate += base * 0.05 * elapsed
        if self.target is not None:
            self.rate = min(self.rate, self.target)

    def throttle(self, retry_after: float | None = None) -> None:
        """DOKU answered 429: halve the rate and honour ``retry_after``."""
        now = self._clock()
        self.throttled += 1
        if retry_after is not None:
            self._next = max(self._next, now + retry_after)
        if self._last_halving is not None and now - self._last_halving < 1.0:
            return  # one halving per second: a burst of 429s is one signal, not many
        self._last_halving = now
        if self.rate is None:
            recent = self._recent
            # Requests per second over the last second, or over the run so far if shorter.
            span = min(1.0, now - recent[0]) if recent else 1.0
            observed = len(recent) / span if span > 0 else float(len(recent))
            self.rate = max(self.min_rate, (observed or 1.0) / 2)
        else:
            self.rate = max(self.min_rate, self.rate / 2)
        self._last_adjust = now
