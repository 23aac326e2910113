"""Many runners, one run: runners on several machines share a run in a PostgreSQL journal.

Each runner claims a batch of items at a time (``SELECT ... FOR UPDATE SKIP LOCKED``: two
runners never claim the same item, and neither waits for the other) and holds them with a lease
(``owner``, ``lease_until`` in the database's clock, so the machines' clocks do not matter),
renewed by a heartbeat. Items whose lease expired (their runner died, or lost the database for
longer than the lease) are taken over by another runner. The per-item flow settles a taken-over
item that may have been sent (``sending`` or later, not final) through check status before
anything is sent again, as a resumed SQLite run does. A sending mark is committed only by the
item's lease holder, so a runner whose lease was taken over never sends the item.

``payouts run`` and ``join`` claim the items never sent (``planned``, or ``sending`` left by a
stopped runner) and take over expired leases; ``resume`` walks every unsettled item once
(``retry``, ``unknown``, ``accepted``, ``pending`` too). A runner with nothing left to claim waits
while other runners hold items, so it can take over theirs if they die.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from ._models import BulkSummary, ItemResult, PayoutItem
from ._postgres import PostgresJournal
from ._runner import BulkRunner
from ._storage import JournalDatabaseError

__all__ = ["claimed_items", "run_shared"]

log = logging.getLogger("doku_async.bulk")


async def claimed_items(
    journal: PostgresJournal,
    *,
    batch: int,
    resume: bool = False,
    stopping: Callable[[], bool] = lambda: False,
    poll: float | None = None,
) -> AsyncIterator[PayoutItem]:
    """The items this runner claims, batch by batch, until none is left to claim and no
    other runner holds any (so a dead runner's items are taken over)."""
    wait = poll if poll is not None else min(0.25, journal.lease / 4)
    after = 0
    while not stopping():
        items, last = await journal.claim(batch, resume=resume, after=after)
        if resume:
            after = last  # each unsettled item once per runner
        if items:
            for item in items:
                yield item
            continue
        if await journal.held_by_others() == 0:
            return
        await asyncio.sleep(wait)


async def _handed_to(
    runner: BulkRunner, items: AsyncIterator[PayoutItem]
) -> AsyncIterator[PayoutItem]:
    """The claimed items, each allowed again in ``runner`` (a take-over may hand back an item
    it worked on before; the claim makes it this runner's alone). One it is working on now is
    left to that flow, whose outcome lets go of it."""
    async for item in items:
        if runner.allow_again(item.reference):
            yield item


async def _heartbeat(journal: PostgresJournal) -> None:
    while True:
        await asyncio.sleep(journal.lease / 3)
        try:
            await journal.heartbeat()
        except JournalDatabaseError as exc:
            log.warning("lease heartbeat failed: %s", exc)


async def run_shared(
    runner: BulkRunner,
    journal: PostgresJournal,
    *,
    resume: bool = False,
    batch: int | None = None,
    on_result: Callable[[ItemResult], None] | None = None,
) -> BulkSummary:
    """Run ``runner`` over the items it claims from ``journal`` (a run other runners may be
    working on too); the summary of what this runner did. Its leases are renewed while it
    runs, and each item's lease is let go of once its result is known."""
    if runner.journal is not journal:
        raise ValueError("the runner must write to the journal it claims from")

    def done(result: ItemResult) -> None:
        journal.release_soon(result.reference)
        if on_result is not None:
            on_result(result)

    beat = asyncio.create_task(_heartbeat(journal))
    try:
        items = claimed_items(
            journal,
            batch=batch or runner.concurrency,
            resume=resume,
            stopping=lambda: runner.stopped,
        )
        return await runner.run(_handed_to(runner, items), on_result=done)
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
