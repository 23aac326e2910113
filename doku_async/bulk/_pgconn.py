"""The PostgreSQL journal's connections: an asyncpg pool on a thread of its own, the retry of a
dropped connection, and the group commit.

The pool runs its own event loop on a daemon thread, so the journal offers the same blocking
methods as the SQLite one (the command line, reconciliation and the webhooks use them) while
the hot path stays asynchronous: a sending mark is queued and awaited from the caller's loop.

Group commit: the writes queued while a commit is under way go into the next transaction,
together. A sending mark resolves only once its transaction has committed (or fails: the
transfer must not go out). A dropped connection or a restarting server (``OSError``,
connection errors, ``admin_shutdown``, ``cannot_connect_now``) is retried with backoff for up
to ``retry_for`` seconds: meanwhile the marks wait, so the runners pause and nothing is sent
without its committed mark. A retried batch is idempotent (upserts, events keyed by an id made
here). Past the budget, or on any other database error, the journal fails: every waiting mark
and every later write raises :class:`JournalDatabaseError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from ._storage import JournalDatabaseError

__all__ = ["PgConnection", "redact_url"]

log = logging.getLogger("doku_async.bulk")

T = TypeVar("T")
_Write = tuple[str, tuple[object, ...], "asyncio.Future[bool] | None"]


_SECRET_PARAMS = frozenset({"password", "sslpassword"})
"""URL parameters asyncpg reads a password from (``?password=...``)."""


def redact_url(url: str) -> str:
    """``url`` with its password (if any, in the user part or as a ``password`` or
    ``sslpassword`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        query = "&".join(_redact_param(p) for p in parts.query.split("&")) if parts.query else ""
        netloc = parts.netloc
        if parts.password is not None:
            host = parts.hostname or ""
            if ":" in host:
                host = f"[{host}]"
            port = f":{parts.port}" if parts.port else ""
            netloc = f"{parts.username or ''}:***@{host}{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "postgresql://(unreadable URL)"


def _redact_param(param: str) -> str:
    name, sep, _ = param.partition("=")
    return f"{name}=***" if sep and unquote(name).lower() in _SECRET_PARAMS else param


def _asyncpg() -> Any:
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError(
            "a PostgreSQL journal needs asyncpg: pip install 'doku-async[postgres]'"
        ) from None
    return asyncpg


def transient_errors() -> tuple[type[BaseException], ...]:
    """The errors of a dropped connection or a restarting server: retried."""
    pg = _asyncpg()
    return (
        OSError,
        asyncio.TimeoutError,
        pg.PostgresConnectionError,
        pg.InterfaceError,
        pg.exceptions.OperatorInterventionError,
        # A connection terminated in the middle of an operation: the pool closes it and
        # opens another on the next acquire.
        pg.exceptions.InternalClientError,
        # Deadlock or serialization failure: the transaction was rolled back whole (e.g. a
        # group commit against this runner's own heartbeat); running it again is safe.
        pg.exceptions.TransactionRollbackError,
        # lock_timeout (a role's setting): a row held longer by another transaction; the
        # statement's transaction is rolled back whole, and retried like statement_timeout
        # (QueryCanceledError, an OperatorInterventionError).
        pg.exceptions.LockNotAvailableError,
    )


class PgConnection:
    """A pool on its own loop and thread, with retries and the group commit."""

    def __init__(self, url: str, *, retry_for: float, pool_size: int = 3) -> None:
        self.shown = redact_url(url)
        self.retry_for = retry_for
        self._url = url
        self._pg = _asyncpg()
        self._transient = transient_errors()
        self._pool: Any = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="doku-journal", daemon=True
        )
        self._thread.start()
        self._lock = threading.Lock()
        self._queue: list[_Write] = []
        self._kick_pending = False
        self._flusher: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None
        self.closed = False
        self._pool_size = pool_size
        try:
            self.call(self._open)
        except BaseException:
            self._stop_loop()
            raise

    def __repr__(self) -> str:
        return f"PgConnection({self.shown!r})"

    async def _open(self) -> None:
        self._pool = await self._pg.create_pool(
            self._url,
            min_size=0,
            max_size=self._pool_size,
            command_timeout=30,
            timeout=10,
            server_settings={"synchronous_commit": _durable(self._url)},
        )

    # --- calling into the pool's loop ----------------------------------------------------

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` on the pool's loop (with retries) and wait for it, blocking."""
        return asyncio.run_coroutine_threadsafe(self._retrying(fn), self._loop).result()

    async def acall(self, fn: Callable[[], Awaitable[T]]) -> T:
        """:meth:`call`, awaited from another event loop without blocking it."""
        future = asyncio.run_coroutine_threadsafe(self._retrying(fn), self._loop)
        return await asyncio.wrap_future(future)

    def with_conn(self, fn: Callable[[Any], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """``fn`` run on a connection of the pool (after the queued writes are committed)."""

        async def run() -> T:
            await self._drain()
            async with self._pool.acquire() as conn:
                return await fn(conn)

        return run

    async def _retrying(self, fn: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        warned = False
        while True:
            try:
                return await fn()
            except self._transient as exc:
                if time.monotonic() + delay > deadline:
                    raise JournalDatabaseError(
                        f"the journal {self.shown} could not be reached for "
                        f"{self.retry_for:g}s: {type(exc).__name__}: {exc}"
                    ) from None
                if not warned:
                    log.warning(
                        "the journal %s is unreachable or busy (%s); retrying for up to %gs",
                        self.shown,
                        type(exc).__name__,
                        self.retry_for,
                    )
                    warned = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except JournalDatabaseError:
                raise
            except self._pg.PostgresError as exc:
                raise JournalDatabaseError(
                    f"the journal {self.shown} refused a statement: {type(exc).__name__}: {exc}"
                ) from None

    # --- the group commit ----------------------------------------------------------------

    def check_writable(self) -> None:
        """Raise the error that failed the journal, or if it is closed."""
        if self.failed is not None:
            raise self.failed
        if self.closed:
            raise JournalDatabaseError(f"the journal {self.shown} is closed")

    def enqueue(self, writes: list[_Write]) -> None:
        """Queue ``writes`` for the next group commit (from any thread)."""
        with self._lock:
            self.check_writable()
            self._queue.extend(writes)
            if self._kick_pending:
                return  # the pending kick (or the running flusher) takes these too
            self._kick_pending = True
        self._loop.call_soon_threadsafe(self._kick)

    def _kick(self) -> None:
        with self._lock:
            self._kick_pending = False
        if self._flusher is None or self._flusher.done():
            self._flusher = self._loop.create_task(self._flush_all())

    async def _flush_all(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
            if not batch:
                return
            try:
                results = await self._retrying(functools.partial(self._commit, batch))
            except BaseException as exc:
                with self._lock:
                    self.failed = exc
                    batch.extend(self._queue)
                    self._queue = []
                log.error("the journal %s could not be written: %s", self.shown, exc)
                _settle_on_their_loops([(done, exc) for _, _, done in batch])
                return
            settled = zip(batch, results, strict=True)
            _settle_on_their_loops([(done, ok) for (_, _, done), ok in settled])

    async def _commit(self, batch: list[_Write]) -> list[bool]:
        """One transaction for ``batch``: each statement's rows in one pipelined round trip
        (``executemany``), in the order the statements first appear; then the writes awaited
        (sending marks), whose statement returns the reference (``args[1]``) it took effect
        on. Writes of one statement keep their order; the runner never queues two writes of
        different statements for one item whose order matters in one batch (an item's
        outcome is queued only after its mark committed)."""
        plain: dict[str, list[tuple[object, ...]]] = {}
        awaited: dict[str, list[tuple[object, ...]]] = {}
        for sql, args, done in batch:
            (plain if done is None else awaited).setdefault(sql, []).append(args)
        took: set[object] = set()
        async with self._pool.acquire() as conn, conn.transaction():
            for sql, rows in plain.items():
                await conn.executemany(sql, rows)
            for sql, rows in awaited.items():
                took.update(row[0] for row in await conn.fetchmany(sql, rows))
        return [done is None or args[1] in took for _, args, done in batch]

    async def _drain(self) -> None:
        """Wait until everything queued so far is committed; raise if the journal failed."""
        while True:
            task = self._flusher
            if task is not None and not task.done():
                await asyncio.wait({task})
                continue
            with self._lock:
                pending = bool(self._queue)
            if not pending:
                break
            self._kick()
        if self.failed is not None:
            raise self.failed

    def flush(self) -> None:
        """Commit what is queued now (blocking)."""
        if self.closed:
            return
        asyncio.run_coroutine_threadsafe(self._drain(), self._loop).result()

    def close(self) -> None:
        """Commit what is queued, close the pool and stop the thread. Idempotent."""
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self.closed = True
            self._stop_loop()

    def _stop_loop(self) -> None:
        async def shut() -> None:
            if self._pool is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._pool.close(), 5)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()


def _durable(url: str) -> str:
    """The ``synchronous_commit`` of the journal's connections: ``on`` (a commit is
    acknowledged once on disk), whatever the database's, the role's or the URL's default
    (``off`` or ``local``, set for speed, would acknowledge a sending mark a server crash can
    still lose, after its transfer went out); ``remote_apply`` asked in the URL is kept."""
    asked = parse_qs(urlsplit(url).query).get("synchronous_commit", [""])[-1]
    return "remote_apply" if asked == "remote_apply" else "on"


def _settle_on_their_loops(
    outcomes: list[tuple[asyncio.Future[bool] | None, bool | BaseException]],
) -> None:
    """Resolve the awaited writes of a batch: one wake-up per waiting loop, not per write."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], Any]]] = {}
    for done, outcome in outcomes:
        if done is not None:
            by_loop.setdefault(done.get_loop(), []).append((done, outcome))
    for loop, pairs in by_loop.items():
        if not loop.is_closed():  # a closed loop has nobody waiting any more
            with contextlib.suppress(RuntimeError):  # closed in between
                loop.call_soon_threadsafe(_settle, pairs)


def _settle(pairs: list[tuple[asyncio.Future[bool], Any]]) -> None:
    for done, outcome in pairs:
        if done.done():
            continue  # its waiter was cancelled
        if isinstance(outcome, BaseException):
            done.set_exception(outcome)
        else:
            done.set_result(outcome)
