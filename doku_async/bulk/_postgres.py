"""The bulk journal on PostgreSQL: the SQLite journal's guarantees, shared by runners on several
machines.

A :class:`PostgresJournal` is one run (``run_id``) in a database that may hold many. It keeps
the same states and events as :class:`~doku_async.bulk.Journal` (states move only forward, in
SQL: ``doku_moves``), commits through a group commit (see :mod:`._pgconn`), and applies the
schema's migrations when opened (see :mod:`._pgschema`). Runners sharing a run take items with
leases (see :mod:`._fleet`): a sending mark is made only by the item's lease holder, so a runner
whose lease was taken over never sends the item.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any

from .._states import PayoutState
from ._models import PayoutItem
from ._pgconn import PgConnection, redact_url
from ._pgrecords import PostgresRecords, pg_outcome
from ._pgschema import (
    EVENT,
    MARK_SENDING,
    PLAN_ITEM,
    RECORD,
    RELEASE,
    claim_sql,
    migrate,
)
from ._plan import (
    PlanMismatchError,
    PlanRecord,
    PlanSource,
    check_complete,
)
from ._records import JournalEntry, entry_from_row
from ._schema import check_source
from ._storage import LeaseLostError

__all__ = ["PostgresJournal", "migrate_url"]

_PAGE = 500
_APPLY_STATES = PayoutState.ALL | {"retry"}


def migrate_url(url: str) -> tuple[int, int]:
    """Apply the schema's migrations to the database ``url`` names; (before, after)."""
    conn = PgConnection(url, retry_for=3)
    try:
        return conn.call(conn.with_conn(migrate))
    finally:
        conn.close()


class PostgresJournal(PostgresRecords):
    """A bulk run's journal in PostgreSQL (the ``postgres`` extra: asyncpg).

    The same methods and guarantees as :class:`~doku_async.bulk.Journal`: a sending mark is
    committed before its transfer goes out (:meth:`mark_sending_grouped`), outcomes go through
    a group commit (:meth:`record_soon`), states only move forward, and every piece of news is
    an event. Several runs share a database, keyed by ``run_id``; several runners share a run
    through leases (:meth:`claim`, :meth:`heartbeat`, :meth:`release_soon`).

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?search_path=schema]``;
            its password never appears in reprs, logs or errors.
        run_id: the run's id (default ``"default"``).
        lease: seconds a runner's claim on an item lasts without a heartbeat.
        retry_for: seconds a dropped connection or a restarting server is retried before the
            journal fails (meanwhile the runners pause: no mark, no transfer).
        owner: this runner's id in leases (default: host, pid and a random part).
    """

    def __init__(
        self,
        url: str,
        *,
        run_id: str = "default",
        lease: float = 30.0,
        retry_for: float = 60.0,
        owner: str | None = None,
    ) -> None:
        if not run_id or len(run_id) > 200:
            raise ValueError("run_id: 1 to 200 characters")
        if lease <= 0 or retry_for <= 0:
            raise ValueError("lease and retry_for must be positive")
        self.run_id = run_id
        self.lease = lease
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.path = f"{redact_url(url)} (run {run_id})"
        self._db = PgConnection(url, retry_for=retry_for)
        self._claimed: dict[str, JournalEntry] = {}
        self._held: set[str] = set()
        """References this runner claimed and has not let go of yet."""
        try:
            self._db.call(self._db.with_conn(self._start))
        except BaseException:
            self._db.close()
            raise

    async def _start(self, conn: Any) -> None:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO doku_runs(run_id, created) VALUES($1, $2) ON CONFLICT DO NOTHING",
            self.run_id,
            time.time(),
        )

    def __repr__(self) -> str:
        return f"PostgresJournal({self.path!r})"

    def close(self) -> None:
        """Commit what is queued, let go of this runner's leases, close. Idempotent."""
        if self._db.closed:
            return
        try:
            if self._db.failed is None:
                self._read(
                    lambda c: c.execute(
                        "UPDATE doku_items SET owner=NULL WHERE run_id=$1 AND owner=$2",
                        self.run_id,
                        self.owner,
                    )
                )
        finally:
            self._db.close()

    def flush(self) -> None:
        """Commit what is queued now; raises the journal's error if that failed."""
        self._db.flush()

    # --- group commit ------------------------------------------------------------------

    async def mark_sending_grouped(
        self, item: PayoutItem, external_id: str, *, session_id: str | None = None
    ) -> None:
        """Record, in the next group commit, that ``item``'s transfer goes out with
        ``external_id``; return once committed.

        Raises:
            LeaseLostError: another runner holds the item: it must not be sent from here.
            JournalDatabaseError: the commit failed: the transfer must not be sent.
        """
        params = (
            *self._columns(item),
            external_id,
            session_id,
            time.time(),
            self.owner,
            self.lease,
            item.reference in self._held,  # claimed: the row must still be this runner's
        )
        self._claimed.pop(item.reference, None)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._db.enqueue([(MARK_SENDING, params, done)])
        if not await done:
            raise LeaseLostError(
                f"item {item.reference} is held by another runner (or final); not sent from here"
            )

    def mark_sending(
        self, item: PayoutItem, external_id: str, *, session_id: str | None = None
    ) -> None:
        """:meth:`mark_sending_grouped`, blocking (outside an event loop)."""
        asyncio.run(self.mark_sending_grouped(item, external_id, session_id=session_id))

    def record_soon(
        self,
        item: PayoutItem,
        state: str,
        *,
        code: str = "",
        message: str = "",
        reference_no: str | None = None,
        source: str = "answer",
    ) -> None:
        """Queue an outcome and its event for the next group commit, without waiting."""
        check_source(source)
        self._claimed.pop(item.reference, None)
        claimed = item.reference in self._held  # then only while the row is still ours
        self._held.discard(item.reference)  # the outcome lets go of the lease (RECORD)
        now = time.time()
        code, message, reference_no = pg_outcome(code, message, reference_no)
        record = (
            *self._columns(item),
            *(state, code, message, reference_no, now, self.owner, claimed),
        )
        event = (uuid.uuid4().hex, self.run_id, item.reference, now, source, state, code, message)
        self._db.enqueue([(RECORD, record, None), (EVENT, event, None)])

    def record(self, item: PayoutItem, state: str, **kwargs: Any) -> None:
        """:meth:`record_soon`, then wait for its commit."""
        self.record_soon(item, state, **kwargs)
        self.flush()

    def release_soon(self, reference: str) -> None:
        """Let go of this runner's lease on ``reference`` in the next group commit (unless
        its recorded outcome already did)."""
        self._claimed.pop(reference, None)
        if reference in self._held:
            self._held.discard(reference)
            self._db.enqueue([(RELEASE, (self.run_id, reference, self.owner), None)])

    def _columns(self, item: PayoutItem) -> tuple[object, ...]:
        return (
            self.run_id,
            item.reference,
            item.line,
            item.bank_code,
            item.account_number,
            item.account_name,
            str(item.amount),
            item.remark,
        )

    # --- metadata and plan ---------------------------------------------------------------

    def set_meta(self, **values: str) -> None:
        """Remember run settings (e.g. the customer number)."""

        async def run(conn: Any) -> None:
            await conn.executemany(
                "INSERT INTO doku_meta(run_id, key, value) VALUES($1,$2,$3) "
                "ON CONFLICT (run_id, key) DO UPDATE SET value=excluded.value",
                [(self.run_id, k, v) for k, v in values.items()],
            )

        self._read(run)

    def meta(self) -> dict[str, str]:
        """All remembered settings of this run."""
        rows = self._read(
            lambda c: c.fetch("SELECT key, value FROM doku_meta WHERE run_id=$1", self.run_id)
        )
        return {str(k): str(v) for k, v in rows}

    def plan(self, items: Iterable[PayoutItem], *, source: PlanSource | None = None) -> int:
        """Record the items not journaled yet as ``planned``, in one transaction; how many
        were new. With ``source``, the plan is recorded as complete; the same file again is a
        no-op, another file for this run is refused (:class:`PlanMismatchError`)."""
        rows = [(*self._columns(i), time.time()) for i in items]
        return int(self._read(lambda c: self._plan(c, rows, source)))

    async def _plan(self, conn: Any, rows: list[tuple[object, ...]], source: Any) -> int:
        async with conn.transaction():
            run = await conn.fetchrow(
                "SELECT plan_rows, plan_sha256, plan_name FROM doku_runs WHERE run_id=$1 "
                "FOR UPDATE",
                self.run_id,
            )
            if source is not None and run["plan_sha256"] is not None:
                if (run["plan_sha256"], run["plan_rows"]) != (source.sha256, source.rows):
                    raise PlanMismatchError(
                        f"the run {self.run_id!r} in {self.path} was planned from another file "
                        f"({run['plan_name'] or 'unnamed'}: {run['plan_rows']} rows, sha256 "
                        f"{run['plan_sha256'][:12]}...); this file ({source.name or 'unnamed'}) "
                        f"has {source.rows} rows, sha256 {source.sha256[:12]}...: nothing was "
                        "sent. Use a new run id for a new file."
                    )
                return 0  # the same file: planned already
            if source is not None:
                given = {row[1] for row in rows}
                extra = await conn.fetchval(
                    "SELECT count(*) FROM doku_items WHERE run_id=$1 AND "
                    "NOT (reference = ANY($2::text[]))",
                    self.run_id,
                    list(given),
                )
                if extra:
                    raise PlanMismatchError(
                        f"the run {self.run_id!r} in {self.path} holds {extra} reference(s) "
                        "this file lacks: it belongs to another file; nothing was sent."
                    )
            before = await conn.fetchval(
                "SELECT count(*) FROM doku_items WHERE run_id=$1", self.run_id
            )
            await conn.executemany(PLAN_ITEM, rows)
            after = await conn.fetchval(
                "SELECT count(*) FROM doku_items WHERE run_id=$1", self.run_id
            )
            if source is not None:
                await conn.execute(
                    "UPDATE doku_runs SET plan_rows=$2, plan_sha256=$3, plan_name=$4, "
                    "planned_at=$5 WHERE run_id=$1",
                    self.run_id,
                    source.rows,
                    source.sha256,
                    source.name,
                    time.time(),
                )
            return int(after) - int(before)

    def plan_record(self) -> PlanRecord | None:
        """This run's complete plan, or ``None``."""
        row = self._read(
            lambda c: c.fetchrow(
                "SELECT plan_rows, plan_sha256, plan_name, planned_at FROM doku_runs "
                "WHERE run_id=$1",
                self.run_id,
            )
        )
        if row is None or row["plan_sha256"] is None:
            return None
        return PlanRecord(
            int(row["plan_rows"]),
            str(row["plan_sha256"]),
            str(row["plan_name"] or ""),
            float(row["planned_at"] or 0),
        )

    def check_plan_complete(self) -> PlanRecord:
        """The plan record, after checking every planned row is journaled
        (:class:`IncompletePlanError` otherwise)."""
        count = self._read(
            lambda c: c.fetchval("SELECT count(*) FROM doku_items WHERE run_id=$1", self.run_id)
        )
        return check_complete(self.path, int(count), self.plan_record())

    # --- leases (many runners, one run) --------------------------------------------------

    async def claim(
        self, limit: int, *, resume: bool = False, after: int = 0
    ) -> tuple[list[PayoutItem], int]:
        """Take up to ``limit`` items for this runner (see :mod:`._fleet`); (items, the last
        ``seq`` seen, the ``after`` of the next call)."""
        sql = claim_sql(resume)
        held = sorted(self._held)  # a retried claim also hands over what a lost answer took
        rows = await self._db.acall(
            self._db.with_conn(
                lambda c: c.fetch(sql, self.run_id, self.owner, limit, self.lease, after, held)
            )
        )
        items = []
        for row in rows:
            entry = entry_from_row(tuple(row)[1:])
            self._claimed[entry.item.reference] = entry
            self._held.add(entry.item.reference)
            items.append(entry.item)
        last = max([after, *(int(row[0]) for row in rows)])
        return items, last

    async def held_by_others(self) -> int:
        """How many unsettled items other runners hold (live or expired leases)."""
        value = await self._db.acall(
            self._db.with_conn(
                lambda c: c.fetchval(
                    "SELECT count(*) FROM doku_items WHERE run_id=$1 AND owner IS NOT NULL "
                    "AND owner <> $2 AND state NOT IN ('succeeded', 'failed', 'refunded')",
                    self.run_id,
                    self.owner,
                )
            )
        )
        return int(value)

    async def heartbeat(self) -> int:
        """Renew this runner's leases; how many items it holds."""
        result = await self._db.acall(
            self._db.with_conn(
                lambda c: c.execute(
                    "UPDATE doku_items SET lease_until = clock_timestamp() + "
                    "make_interval(secs => $3) WHERE run_id=$1 AND owner=$2",
                    self.run_id,
                    self.owner,
                    self.lease,
                )
            )
        )
        return int(str(result).rsplit(" ", 1)[-1])
