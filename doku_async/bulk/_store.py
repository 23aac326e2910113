"""The journal's connection: one SQLite connection shared by threads, and the group commit.

The writes the bulk runner's workers make in one event-loop iteration go into one
transaction, committed at the start of the next iteration. A ``sending`` mark is awaited until
its transaction has committed, so the transfer is never sent before its mark is on disk; an
outcome is queued without waiting. One commit per group instead of one per write costs about a
third of the CPU per write. Every read first commits what is queued, and once a group commit
failed every later write raises that error (no gap in the record).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator

__all__ = ["JournalStore"]

log = logging.getLogger("doku_async.bulk")

_Write = tuple[str, tuple[object, ...], "asyncio.Future[None] | None"]


class JournalStore:
    """A journal's connection, its lock and its group commit (see the module's docstring)."""

    def __init__(self, path: str, db: sqlite3.Connection) -> None:
        self.path = path
        self._db = db
        self._lock = threading.RLock()
        self._queued: list[_Write] = []
        self._queued_refs: set[str] = set()
        self._scheduled: asyncio.AbstractEventLoop | None = None
        """The loop holding a pending group commit, if any."""
        self._failed: BaseException | None = None
        self._closed = False

    def flush(self) -> None:
        """Commit the queued writes now, in one transaction (in the order they were made).

        Raises the database's error if that commit failed (and, with writes queued, if an
        earlier one did).
        """
        with self._lock:
            queued = self._queued
            if not queued:
                return
            self._check_writable()
            self._queued = []
            self._queued_refs.clear()
            db = self._db
            try:
                db.execute("BEGIN")
                for sql, params, _ in queued:
                    db.execute(sql, params)
                db.execute("COMMIT")
            except BaseException as exc:
                self._failed = exc
                with contextlib.suppress(sqlite3.Error):
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                _resolve(queued, exc)
                raise
        _resolve(queued, None)

    def _check_writable(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._closed:
            raise sqlite3.ProgrammingError(f"the journal {self.path} is closed")

    def _queue(
        self,
        reference: str,
        sql: str,
        params: tuple[object, ...],
        done: asyncio.Future[None] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            self._check_writable()
            if self._scheduled is not loop:  # none pending on this loop (or on a stopped one)
                loop.call_soon(self._flush_queued)
                self._scheduled = loop
            self._queued.append((sql, params, done))
            self._queued_refs.add(reference)

    def _flush_queued(self) -> None:
        with self._lock:
            self._scheduled = None
            try:
                self.flush()
            except Exception:
                # Kept in ``_failed``: the waiting marks get it, and every later write raises.
                log.error("the journal %s could not be written", self.path, exc_info=True)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, after what is queued; rolled back on any error."""
        with self._lock:
            self.flush()
            self._check_writable()
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                raise


def _resolve(queued: list[_Write], exc: BaseException | None) -> None:
    """Settle the waiting marks, each on its own loop (a flush may run in another thread)."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for _, _, done in queued:
        if done is None:
            continue
        loop = done.get_loop()
        if loop is running:
            _settle(done, exc)
        elif not loop.is_closed():  # a closed loop has nobody waiting any more
            with contextlib.suppress(RuntimeError):  # closed in between
                loop.call_soon_threadsafe(_settle, done, exc)


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():
        return  # the waiter was cancelled
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
