"""The only module that uses aiohttp's client: one pooled session, errors mapped at the edge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from . import _constants as C
from ._exceptions import ClientClosedError, DokuConnectionError, DokuTimeoutError
from ._version import __version__

__all__ = ["RawResponse", "Transport"]


def _where(url: str) -> str:
    """``host (URL)`` for messages: the URL has no query and carries no secret."""
    return f"{urlsplit(url).netloc} ({url})"


class RawResponse:
    """Status, headers and bytes of one HTTP answer."""

    __slots__ = ("body", "elapsed", "headers", "status", "url")

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        elapsed: float,
        url: str = "",
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.url = url
        """The URL that answered (for messages: a wrong ``base_url`` shows in a 404)."""

    def __repr__(self) -> str:
        return f"RawResponse(status={self.status}, bytes={len(self.body)})"


class Transport:
    """Sends requests over one pooled :class:`aiohttp.ClientSession`.

    The session is created lazily inside the running loop (never in a constructor) unless the
    user lends one; a lent session is never closed by us.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None,
        connect_timeout: float,
        pool_size: int,
        attempt_timeout: float = 0.0,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._connect_timeout = connect_timeout
        self._pool_size = pool_size
        self._closed = False
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._common_timeout = attempt_timeout
        self._user_agent = f"{C.USER_AGENT}/{__version__}"

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` ran."""
        return self._closed

    @property
    def left_open(self) -> bool:
        """Whether this transport opened its own session and it was never closed."""
        session = self._session
        return (
            self._owns_session and session is not None and not session.closed and not self._closed
        )

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300)
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self._user_agent},
                skip_auto_headers=("Content-Type",),
                # DOKU's APIs use no cookies: skip the jar's work on every request and answer.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return session

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float
    ) -> RawResponse:
        """POST ``body``; return the answer or raise a typed transport error.

        ``request_sent`` on the raised error is ``False`` only when the request certainly did
        not reach the server (connection refused, DNS failure, connect timeout).
        """
        if self._closed:
            raise ClientClosedError()
        session = self._get_session()
        if session.closed:
            raise ClientClosedError(
                "the aiohttp session lent to this DokuClient is closed: keep it open while the "
                "client is used"
            )
        client_timeout = self._timeouts.get(timeout)
        if client_timeout is None:
            total = max(timeout, 0.001)
            client_timeout = aiohttp.ClientTimeout(
                total=total, sock_connect=min(self._connect_timeout, total)
            )
            if timeout == self._common_timeout:  # the usual full attempt: build it once
                self._timeouts[timeout] = client_timeout
        started = time.perf_counter()
        try:
            async with session.post(
                url, data=body, headers=headers, timeout=client_timeout, allow_redirects=False
            ) as resp:
                data = await resp.read()
                elapsed = time.perf_counter() - started
                return RawResponse(resp.status, resp.headers, data, elapsed, url)
        except aiohttp.ConnectionTimeoutError:
            raise DokuTimeoutError(
                f"timed out connecting to {_where(url)}", request_sent=False
            ) from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise DokuTimeoutError(
                f"no answer from {_where(url)} within {timeout:.3g}s", request_sent=True
            ) from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or type(exc.os_error).__name__
            raise DokuConnectionError(
                f"cannot connect to {_where(url)}: {reason} (check base_url / DOKU_BASE_URL)",
                request_sent=False,
            ) from None
        except aiohttp.ClientError as exc:
            raise DokuConnectionError(
                f"connection to {_where(url)} failed: {type(exc).__name__}", request_sent=True
            ) from None

    async def aclose(self) -> None:
        """Close the session if we own it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        session = self._session
        if session is not None and self._owns_session and not session.closed:
            await session.close()
            # Let the connector's transports finish closing before the loop may end.
            await asyncio.sleep(0)
