"""The bulk payout runner: many transfers through one client, resumable, never paying twice."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from decimal import Decimal

from .. import _validation as v
from .._client import DokuClient
from .._exceptions import (
    ConfigurationError,
    DokuError,
    RequestValidationError,
)
from .._names import NAME_CHECK_MODES, NameCheckMode
from ._item import ItemFlow
from ._journal import FINAL_STATES, Journal
from ._models import BulkProgress, BulkSummary, ItemResult, PayoutItem
from ._ratelimit import RateLimiter
from ._storage import JournalBackend, is_database_url

__all__ = ["BulkRunner", "PreflightError"]

log = logging.getLogger("doku_async.bulk")

ProgressCallback = Callable[[BulkProgress], None]


class PreflightError(DokuError):
    """The run was refused before anything was sent (e.g. the balance does not cover it)."""


class BulkRunner:
    """Runs many payouts through one :class:`~doku_async.DokuClient`.

    For each item: account inquiry, then ``transfer_bank`` with the inquiry's ``sessionId``;
    optionally it waits for the final status. A fixed pool of workers shares the client, a
    rate limit paces requests (and slows down on 429), one item's failure never stops the run,
    and input and results stream so memory stays flat however many items there are.

    With a :class:`Journal`, every item is recorded before its transfer is sent and updated
    with each outcome. Running again over the same journal resumes: paid items are skipped,
    items whose outcome was unknown are settled through check status first, and nothing is
    paid twice.

    Args:
        client: the client to pay through (the runner never closes it).
        customer_number: the sender's phone number (``customerNumber``), ``62...``.
        concurrency: number of workers (items in flight).
        rate: requests per second for the whole run (``None``: unpaced until DOKU answers 429),
            or a :class:`RateLimiter` to share, e.g. ``doku_async.fleet.FleetRateLimiter``: one
            rate for every runner of a fleet.
        journal: a journal (:class:`Journal`, :class:`PostgresJournal`, or anything providing
            :class:`JournalBackend`), a path to a SQLite one, or a ``postgresql://`` URL.
        run_id: the run's id in a PostgreSQL journal opened from a URL (several runs share a
            database).
        wait_for_final: poll check status until each accepted transfer is final.
        final_timeout: how long to wait for a final status per item, in seconds.
        poll_interval: seconds between those polls.
        progress: called with a :class:`BulkProgress` after each item.
        check_balance: compare the run's total with ``balance_inquiry`` before the first
            transfer (needs ``agent_key``, and a total: a sequence of items or ``total_amount``).
        agent_key: the Kirim DOKU agent key for the balance check.
        sender_country_code: sent with each account inquiry.
        channel_code: optional ``channelCode`` sent with inquiries and transfers.
        name_check: compare the account holder's name from the inquiry with the item's
            ``account_name`` before any transfer (see :func:`~doku_async.names_match`):
            ``"lenient"`` (default: case, spacing, punctuation, Indonesian honorifics, titles
            and abbreviations ignored, bank truncation tolerated), ``"strict"`` or ``"off"``.
            A mismatch fails the item (``code="name_mismatch"``, both names in the message)
            and nothing is sent.
    """

    def __init__(
        self,
        client: DokuClient,
        *,
        customer_number: str,
        concurrency: int = 32,
        rate: float | RateLimiter | None = None,
        journal: JournalBackend | str | os.PathLike[str] | None = None,
        run_id: str = "default",
        wait_for_final: bool = False,
        final_timeout: float = 600.0,
        poll_interval: float = 10.0,
        progress: ProgressCallback | None = None,
        check_balance: bool = False,
        agent_key: str | None = None,
        sender_country_code: str = "ID",
        channel_code: str | None = None,
        name_check: NameCheckMode = "lenient",
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError("concurrency: must be at least 1")
        if check_balance and not agent_key:
            raise ConfigurationError("check_balance needs agent_key")
        if isinstance(rate, int | float) and rate <= 0:
            raise ConfigurationError("rate: must be positive")
        if name_check not in NAME_CHECK_MODES:
            raise ConfigurationError("name_check: must be 'strict', 'lenient' or 'off'")
        self.name_check: NameCheckMode = name_check
        try:
            # Run-wide settings go into every request: checked once here, so a typo fails the
            # run at once instead of failing (and journaling) every item.
            # The same rules the requests apply: a setting accepted here never fails an item.
            customer_number = v.phone("customer_number", customer_number)
            sender_country_code = v.country_code("sender_country_code", sender_country_code)
            channel_code = v.optional_channel_code(channel_code)
        except RequestValidationError as exc:
            raise ConfigurationError(f"{exc.field}: {exc.problem}") from None
        self.client = client
        self.customer_number = customer_number
        self.concurrency = concurrency
        self.limiter = rate if isinstance(rate, RateLimiter) else RateLimiter(rate)
        self._owns_journal = isinstance(journal, str | os.PathLike)
        self.journal = _open(journal, run_id) if isinstance(journal, str | os.PathLike) else journal
        self.wait_for_final = wait_for_final
        self.final_timeout = final_timeout
        self.poll_interval = poll_interval
        self.progress = progress
        self.check_balance = check_balance
        self.agent_key = agent_key
        self.sender_country_code = sender_country_code
        self.channel_code = channel_code
        self.summary = BulkSummary()
        self._stopping = False
        self._flow = ItemFlow(
            client=client,
            journal=self.journal,
            limiter=self.limiter,
            customer_number=customer_number,
            sender_country_code=sender_country_code,
            channel_code=channel_code,
            name_check=name_check,
            wait_for_final=wait_for_final,
            final_timeout=final_timeout,
            poll_interval=poll_interval,
            stopping=lambda: self._stopping,
        )

    def __repr__(self) -> str:
        return f"BulkRunner(concurrency={self.concurrency}, journal={self.journal!r})"

    def close(self) -> None:
        """Close the journal if the runner opened it (from a path)."""
        if self._owns_journal and self.journal is not None:
            self.journal.close()

    async def __aenter__(self) -> BulkRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """Stop taking new items; items in flight finish and are journaled (graceful Ctrl-C)."""
        self._stopping = True

    def allow_again(self, reference: str) -> bool:
        """Let ``reference`` be paid or settled again in this runner's life, unless it is in
        flight now (``False``): for an item a shared journal's claim hands back (see
        :func:`run_shared`). Otherwise a reference seen twice is refused as a duplicate."""
        return self._flow.allow_again(reference)

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping

    # --- running -----------------------------------------------------------------------

    async def run(
        self,
        items: Iterable[PayoutItem] | AsyncIterable[PayoutItem],
        *,
        total_amount: Decimal | None = None,
        on_result: Callable[[ItemResult], None] | None = None,
    ) -> BulkSummary:
        """Run every item; return the summary. ``on_result`` sees each result as it comes."""
        async for result in self.results(items, total_amount=total_amount):
            if on_result is not None:
                on_result(result)
        return self.summary

    async def results(
        self,
        items: Iterable[PayoutItem] | AsyncIterable[PayoutItem],
        *,
        total_amount: Decimal | None = None,
    ) -> AsyncIterator[ItemResult]:
        """Run the items, yielding each result as soon as it is known (in completion order)."""
        if self.check_balance:
            await self._preflight(items, total_amount)
        summary = self.summary
        if isinstance(items, list | tuple):
            summary.total = len(items)
        started = time.perf_counter()
        listeners = self.client.rate_limit_listeners
        listeners.append(self.limiter.throttle)
        outbox: asyncio.Queue[ItemResult | None] = asyncio.Queue(maxsize=self.concurrency * 2)
        supervisor = asyncio.create_task(self._pool(items, outbox))
        ended = False
        try:
            while (result := await outbox.get()) is not None:
                summary.add(result)
                summary.elapsed = time.perf_counter() - started
                if self.progress is not None:
                    self.progress(summary.progress())
                yield result
            try:
                await supervisor
            except BaseExceptionGroup as group:  # a run-stopping error from a worker
                raise group.exceptions[0] from None
            ended = True
        finally:
            if not supervisor.done():
                supervisor.cancel()
                try:
                    await supervisor
                except (asyncio.CancelledError, Exception):
                    log.debug("bulk run stopped before its end")
            listeners.remove(self.limiter.throttle)
            summary.elapsed = time.perf_counter() - started
            if self.journal is not None:
                # The outcomes still queued for the group commit. When the run is already
                # stopping on an error or a cancellation, that one is what the caller gets.
                try:
                    self.journal.flush()
                except Exception:
                    if ended:
                        raise
                    log.exception("the journal could not be written as the run stopped")

    async def _pool(
        self,
        items: Iterable[PayoutItem] | AsyncIterable[PayoutItem],
        outbox: asyncio.Queue[ItemResult | None],
    ) -> None:
        """The worker pool: ``concurrency`` workers take items from a bounded inbox, put each
        result in ``outbox``, then ``None`` at the end (also when a worker's error stops the
        run: the consumer then re-raises it)."""
        inbox: asyncio.Queue[PayoutItem | None] = asyncio.Queue(maxsize=self.concurrency * 2)

        async def feed() -> None:
            if isinstance(items, AsyncIterable):
                async for item in items:
                    if self._stopping:
                        break
                    await inbox.put(item)
            else:
                for item in items:
                    if self._stopping:
                        break
                    await inbox.put(item)
            # Only on a normal end: a cancelled run has no workers left to take these.
            for _ in range(self.concurrency):
                await inbox.put(None)

        async def work() -> None:
            while (item := await inbox.get()) is not None:
                if self._stopping:
                    continue  # queued but not started: leave it for a resumed run
                await outbox.put(await self._process(item))

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(feed())
                for _ in range(self.concurrency):
                    group.create_task(work())
        except asyncio.CancelledError:
            raise  # the consumer is gone: nobody waits for the end marker
        except BaseException:
            await outbox.put(None)  # wake the consumer, which re-raises the error
            raise
        await outbox.put(None)

    async def _preflight(
        self,
        items: Iterable[PayoutItem] | AsyncIterable[PayoutItem],
        total_amount: Decimal | None,
    ) -> None:
        if total_amount is None:
            if not isinstance(items, list | tuple):
                raise ConfigurationError("check_balance needs total_amount when items are streamed")
            journal = self.journal
            total_amount = sum(
                (
                    item.amount
                    for item in items
                    if journal is None
                    or (entry := journal.get(item.reference)) is None
                    or entry.state not in FINAL_STATES
                ),
                Decimal("0.00"),
            )
        assert self.agent_key is not None
        balance = await self.client.kirim.balance_inquiry(account_no=self.agent_key)
        available = balance.available_balance
        if available is None:
            raise PreflightError("DOKU's balance answer carried no available balance")
        if available < total_amount:
            raise PreflightError(
                f"the balance {available} does not cover the run's total {total_amount}; "
                "nothing was sent"
            )

    async def _process(self, item: PayoutItem) -> ItemResult:
        return await self._flow.process(item)


def _open(journal: str | os.PathLike[str], run_id: str) -> JournalBackend:
    """The journal a path (SQLite) or a ``postgresql://`` URL names."""
    if is_database_url(journal):
        from ._postgres import PostgresJournal

        return PostgresJournal(str(journal), run_id=run_id)
    return Journal(journal)
