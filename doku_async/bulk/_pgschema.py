"""The PostgreSQL journal's versioned schema, its migrations and the statements it runs.

Every table is named ``doku_*`` and lives in the connection's ``search_path`` (the URL may set
it: ``postgresql://host/db?search_path=payouts``). Several runs share the tables, keyed by
``run_id``. ``doku_schema`` holds the version; :func:`migrate` applies the missing migrations in
one transaction under an advisory lock, so runners starting together migrate once.

Version 1: ``doku_runs`` (a run's complete plan: rows, sha256, name), ``doku_meta`` (a run's
settings), ``doku_items`` (the SQLite journal's columns, plus the lease: ``owner`` and
``lease_until`` in the database's clock, and ``seq``, the insertion order), ``doku_events``
(news about a payout; an id made by the client, so a group commit retried after a dropped
connection never records an event twice) and the functions ``doku_rank`` and ``doku_moves``:
the state order of :meth:`~doku_async.PayoutState.advances` and the runner's ``retry`` rule
(see ``_schema.runner_moves``), in SQL, so an outcome's upsert needs no round trip to read the
current state.
"""

from __future__ import annotations

from typing import Any

from ._storage import JournalDatabaseError

__all__ = ["SCHEMA_VERSION", "migrate"]

SCHEMA_VERSION = 1
"""The PostgreSQL journal schema this SDK writes."""

_LOCK_KEY = 0x646F6B75  # "doku": the advisory lock that serializes migrations

_MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE doku_runs (
    run_id text PRIMARY KEY,
    plan_rows integer,
    plan_sha256 text,
    plan_name text,
    planned_at double precision,
    created double precision NOT NULL
);
CREATE TABLE doku_meta (
    run_id text NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE doku_items (
    run_id text NOT NULL,
    reference text NOT NULL,
    seq bigserial,
    line integer,
    bank_code text NOT NULL,
    account_number text NOT NULL,
    account_name text NOT NULL,
    amount text NOT NULL,
    remark text,
    state text NOT NULL,
    external_id text,
    reference_no text,
    code text,
    message text,
    session_id text,
    updated double precision NOT NULL,
    owner text,
    lease_until timestamptz,
    PRIMARY KEY (run_id, reference)
);
CREATE INDEX doku_items_seq ON doku_items (run_id, seq);
CREATE INDEX doku_items_reference_no ON doku_items (reference_no)
    WHERE reference_no IS NOT NULL;
CREATE INDEX doku_items_open ON doku_items (run_id, seq)
    WHERE state NOT IN ('succeeded', 'failed', 'refunded');
CREATE TABLE doku_events (
    id text PRIMARY KEY,
    seq bigserial,
    run_id text NOT NULL,
    reference text NOT NULL,
    at double precision NOT NULL,
    source text NOT NULL,
    state text NOT NULL,
    code text NOT NULL,
    message text NOT NULL
);
CREATE INDEX doku_events_reference ON doku_events (run_id, reference, seq);
CREATE FUNCTION doku_rank(s text) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE s WHEN 'unknown' THEN 0 WHEN 'accepted' THEN 1 WHEN 'pending' THEN 2
        WHEN 'succeeded' THEN 3 WHEN 'failed' THEN 3 WHEN 'refunded' THEN 4 END
$$;
CREATE FUNCTION doku_moves(cur text, new text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN new = 'retry' THEN cur IS NULL OR cur NOT IN ('succeeded', 'failed', 'refunded')
        WHEN cur IS NULL OR doku_rank(cur) IS NULL THEN true
        WHEN new = cur THEN false
        ELSE COALESCE(doku_rank(new), -1) > doku_rank(cur)
    END
$$;
CREATE TABLE doku_schema (version integer NOT NULL);
INSERT INTO doku_schema VALUES (0);
""",
}

_COLUMNS = "run_id, reference, line, bank_code, account_number, account_name, amount, remark"

PLAN_ITEM = (
    f"INSERT INTO doku_items({_COLUMNS}, state, updated) "
    "VALUES($1,$2,$3,$4,$5,$6,$7,$8,'planned',$9) ON CONFLICT (run_id, reference) DO NOTHING"
)

MARK_SENDING = (
    f"INSERT INTO doku_items({_COLUMNS}, state, external_id, session_id, updated, owner, "
    "lease_until) VALUES($1,$2,$3,$4,$5,$6,$7,$8,'sending',$9,$10,$11,$12, "
    "clock_timestamp() + make_interval(secs => $13)) "
    "ON CONFLICT (run_id, reference) DO UPDATE SET state='sending', "
    "external_id=excluded.external_id, "
    "session_id=COALESCE(excluded.session_id, doku_items.session_id), "
    "updated=excluded.updated, owner=excluded.owner, lease_until=excluded.lease_until "
    "WHERE (doku_items.owner = excluded.owner OR (doku_items.owner IS NULL AND NOT $14)) "
    "AND doku_items.state NOT IN ('succeeded', 'failed', 'refunded') RETURNING reference"
)
"""The sending mark: only by the item's lease holder, and never over a final state. ``$14``:
whether this runner claimed the item; then the row must still be its own (a free row is one
another runner took over and let go of), otherwise (a runner that does not claim) a row nobody
holds will do. No row back: the mark was not made, and the transfer must not go out."""

_MOVES = (
    "(doku_moves(doku_items.state, excluded.state) "
    "AND (doku_items.owner = $14 OR (doku_items.owner IS NULL AND NOT $15)) "
    "AND (excluded.state <> 'retry' OR doku_items.owner IS NOT DISTINCT FROM $14 "
    "OR doku_items.state IN ('planned', 'retry')))"
)
"""Whether an outcome moves the state: forward only, and only by the item's lease holder (or,
from a runner that did not claim the item, ``$15`` false, on an item nobody holds); a
``retry`` ("nothing paid, send again") only from the holder or over an item never sent. A
runner that lost its lease reports on its own attempt, not on the transfer its successor may
have sent since: that news is kept as an event only."""
RECORD = (
    f"INSERT INTO doku_items({_COLUMNS}, state, code, message, reference_no, updated) "
    "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) "
    "ON CONFLICT (run_id, reference) DO UPDATE SET "
    f"state=CASE WHEN {_MOVES} THEN excluded.state ELSE doku_items.state END, "
    f"code=CASE WHEN {_MOVES} THEN excluded.code ELSE doku_items.code END, "
    f"message=CASE WHEN {_MOVES} THEN excluded.message ELSE doku_items.message END, "
    f"updated=CASE WHEN {_MOVES} THEN excluded.updated ELSE doku_items.updated END, "
    "reference_no=CASE WHEN doku_items.owner = $14 OR (doku_items.owner IS NULL AND NOT $15) "
    "THEN COALESCE(excluded.reference_no, doku_items.reference_no) "
    "ELSE COALESCE(doku_items.reference_no, excluded.reference_no) END, "
    "owner=CASE WHEN doku_items.owner = $14 THEN NULL ELSE doku_items.owner END"
)
"""An outcome: the state moves only forward (:data:`_MOVES`); the recording runner lets go of
its lease."""

EVENT = (
    "INSERT INTO doku_events(id, run_id, reference, at, source, state, code, message) "
    "VALUES($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (id) DO NOTHING"
)

RELEASE = "UPDATE doku_items SET owner=NULL WHERE run_id=$1 AND reference=$2 AND owner=$3"

SELECT = (
    "SELECT reference, line, bank_code, account_number, account_name, amount, remark, "
    "state, external_id, reference_no, code, message, session_id, updated FROM doku_items"
)


_CLAIM = (
    "WITH picked AS (SELECT reference FROM doku_items WHERE run_id=$1 "
    "AND state NOT IN ('succeeded', 'failed', 'refunded') "
    "AND ((owner IS NULL AND {unowned} seq > $5) "
    "OR (owner <> $2 AND lease_until < clock_timestamp()) "
    "OR (owner = $2 AND NOT (reference = ANY($6::text[])))) "
    "ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED) "
    "UPDATE doku_items AS i SET owner=$2, "
    "lease_until=clock_timestamp() + make_interval(secs => $4) "
    "FROM picked WHERE i.run_id=$1 AND i.reference=picked.reference "
    "RETURNING i.seq, i.reference, i.line, i.bank_code, i.account_number, i.account_name, "
    "i.amount, i.remark, i.state, i.external_id, i.reference_no, i.code, i.message, "
    "i.session_id, i.updated"
)
CLAIM_NEW = _CLAIM.format(unowned="state IN ('planned', 'sending') AND")
"""Items never sent (or left ``sending`` by a stopped runner), and expired leases."""
CLAIM_RESUME = _CLAIM.format(unowned="")
"""Every unsettled item after ``seq`` ``$5``, and expired leases."""


def claim_sql(resume: bool) -> str:
    """The claim: up to ``$3`` items of run ``$1`` for owner ``$2``, leased ``$4`` seconds,
    after ``seq`` ``$5`` (``resume``: every unsettled item; otherwise those never sent), with
    an expired lease, or already this owner's but not among the references ``$6`` it knows
    it holds (a claim committed whose answer was lost with its connection: retried, it hands
    those over too)."""
    return CLAIM_RESUME if resume else CLAIM_NEW


async def migrate(conn: Any) -> tuple[int, int]:
    """Bring the schema in ``conn``'s ``search_path`` to :data:`SCHEMA_VERSION`, in one
    transaction; returns (version before, version after). A newer schema is refused."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        exists = await conn.fetchval("SELECT to_regclass('doku_schema') IS NOT NULL")
        before = int(await conn.fetchval("SELECT version FROM doku_schema")) if exists else 0
        if before > SCHEMA_VERSION:
            raise JournalDatabaseError(
                f"the journal's schema has version {before}, newer than this SDK's "
                f"{SCHEMA_VERSION}: use a newer doku-async"
            )
        for version in range(before + 1, SCHEMA_VERSION + 1):
            await conn.execute(_MIGRATIONS[version])
            await conn.execute("UPDATE doku_schema SET version = $1", version)
    return before, SCHEMA_VERSION
