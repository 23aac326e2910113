"""The B2B access token cache: refresh ahead of expiry, one refresh at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["TokenCache", "TokenStore"]

log = logging.getLogger("doku_async")


class _Token:
    __slots__ = ("expires_at", "refresh_at", "value", "wait_at")

    def __init__(self, value: str, expires_at: float, refresh_at: float) -> None:
        self.value = value
        self.expires_at = expires_at
        self.refresh_at = refresh_at
        # From here on callers wait for the new token instead of using this one.
        self.wait_at = refresh_at + (expires_at - refresh_at) / 2

    def __repr__(self) -> str:
        return "_Token(***)"


Fetch = Callable[[], Awaitable[tuple[str, float]]]


class TokenStore(Protocol):
    """One B2B token shared by a fleet of clients (``doku_async.fleet.RedisTokenStore``)."""

    async def fetch(self, scope: str, fetch: Fetch, rejected: str | None) -> tuple[str, float]:
        """The fleet's token for ``scope`` and how long this process may keep it, calling
        ``fetch`` (DOKU's token endpoint) only when no usable one is shared; ``rejected`` is a
        value DOKU refused (``401xx01``/``401xx03``): never returned, dropped for everyone."""
        ...


class TokenCache:
    """Caches one access token per client on a monotonic clock.

    * A token is fresh until ``refresh_margin`` seconds before its advertised expiry (or half
      its lifetime, for very short lifetimes).
    * Past that, for the first half of the margin, callers still get the cached token at once
      while one refresh runs in the background (a failed background refresh is tried again
      at most once a second). After that, callers wait for the refresh.
    * However many callers wait, a single fetch runs; they all share its result or error.
    * When a refresh fails while the old token is still valid, the old token keeps serving.
    * :meth:`invalidate` drops a token DOKU rejected, unless it was already replaced.

    ``fetch`` returns ``(token, lifetime_seconds)``.
    """

    RETRY_AFTER_FAILURE = 1.0
    """Seconds between background refreshes after one failed."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[tuple[str, float]]],
        *,
        clock: Callable[[], float],
        refresh_margin: float,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = refresh_margin
        self._token: _Token | None = None
        self._inflight: asyncio.Future[str] | None = None
        self._failed_at: float | None = None
        self._closed = False
        self._store: TokenStore | None = None
        self._scope = ""
        self._rejected: str | None = None
        self.fetches = 0
        """How many token fetches were started (for tests and benchmarks)."""

    def __repr__(self) -> str:
        state = "empty" if self._token is None else "cached"
        return f"TokenCache({state})"

    def peek(self) -> str | None:
        """A token usable without waiting, or ``None``: the fresh one, or during the first half
        of the refresh margin the current one (then a background refresh is started)."""
        token = self._token
        if token is None:
            return None
        now = self._clock()
        if now < token.refresh_at:
            return token.value
        if now < token.wait_at:
            self._refresh_in_background(now)
            return token.value
        return None

    async def get(self) -> str:
        """Return a usable token: the cached one (see :meth:`peek`), or one fetched now."""
        cached = self.peek()
        if cached is not None:
            return cached
        try:
            return await asyncio.shield(self._start_refresh())
        except Exception:
            token = self._token
            if token is not None and self._clock() < token.expires_at:
                return token.value
            raise

    def _refresh_in_background(self, now: float) -> None:
        if self._closed or (self._inflight is not None and not self._inflight.done()):
            return
        failed_at = self._failed_at
        if failed_at is not None and now - failed_at < self.RETRY_AFTER_FAILURE:
            return
        self._start_refresh()

    def _start_refresh(self) -> asyncio.Future[str]:
        if self._inflight is None or self._inflight.done():
            self.fetches += 1
            self._inflight = asyncio.ensure_future(self._refresh())
            self._inflight.add_done_callback(self._fetched)
        return self._inflight

    def _fetched(self, inflight: asyncio.Future[str]) -> None:
        # Retrieve a refresh's error (callers that wait get it too), and say so: a background
        # refresh has nobody waiting, and revoked credentials must not stay silent.
        if inflight.cancelled():
            return
        error = inflight.exception()
        if error is not None:
            self._failed_at = self._clock()
            log.warning("access token refresh failed: %s", error)

    def share(self, store: TokenStore, scope: str) -> None:
        """Take tokens from ``store`` (shared under ``scope``) instead of fetching them here."""
        self._store = store
        self._scope = scope
        self._token = None

    async def _refresh(self) -> str:
        if self._store is None:
            value, lifetime = await self._fetch()
        else:
            value, lifetime = await self._store.fetch(self._scope, self._fetch, self._rejected)
            self._rejected = None
        now = self._clock()
        lifetime = max(lifetime, 1.0)
        refresh_in = lifetime - self._margin if lifetime > 2 * self._margin else lifetime / 2
        self._token = _Token(value, now + lifetime, now + refresh_in)
        self._failed_at = None
        return value

    def clear(self) -> None:
        """Forget the cached token, whatever it is."""
        self._token = None

    def invalidate(self, value: str) -> None:
        """Forget ``value`` if it is still the cached token (DOKU rejected it); a shared store
        drops it for the fleet at the next fetch."""
        if self._token is not None and self._token.value == value:
            self._token = None
            if self._store is not None:
                self._rejected = value

    async def aclose(self) -> None:
        """Cancel a fetch in flight; no background refresh starts afterwards."""
        self._closed = True
        inflight = self._inflight
        self._inflight = None
        if inflight is not None and not inflight.done():
            inflight.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await inflight
