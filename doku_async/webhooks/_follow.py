"""Keeping a payout record (the bulk journal) up to date from confirmed notifications.

One line wires it::

    create_webhook_app(..., confirm_with=doku, **follow_journal(journal))

The notification is only a trigger: confirm mode asks check status first, and the record moves
to the state DOKU confirmed (``source="notification"``), never to the body's claim. The record
is anything with the two methods of :class:`PayoutRecord` (the SQLite
:class:`~doku_async.bulk.Journal` has them), so this module does not depend on the bulk layer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypedDict

from ._confirm import ConfirmedNotification, ReferenceLookup

__all__ = ["FollowArguments", "PayoutRecord", "follow_journal"]

log = logging.getLogger("doku_async.webhooks")


class _Reference(Protocol):
    @property
    def reference(self) -> str: ...


class _Entry(Protocol):
    @property
    def item(self) -> _Reference: ...


class PayoutRecord(Protocol):
    """What :func:`follow_journal` needs of a payout record."""

    def find_by_reference_no(self, reference_no: str) -> _Entry | None:
        """The entry whose transfer DOKU answered with ``reference_no``, or ``None``."""
        ...

    def apply(
        self,
        reference: str,
        state: str,
        *,
        source: str,
        code: str = "",
        message: str = "",
        reference_no: str | None = None,
    ) -> bool:
        """Record an event; move the state only forward. Whether the state changed."""
        ...


class FollowArguments(TypedDict):
    """The ``create_webhook_app`` arguments :func:`follow_journal` returns."""

    reference_lookup: ReferenceLookup
    on_confirmed: Callable[[ConfirmedNotification], Awaitable[None]]


def follow_journal(
    record: PayoutRecord,
    then: Callable[[ConfirmedNotification], Awaitable[object]] | None = None,
) -> FollowArguments:
    """``reference_lookup`` and ``on_confirmed`` for ``create_webhook_app(confirm_with=...)``
    that map each notification to its payout through ``record`` and record DOKU's confirmed
    state there (an older state never overwrites a newer one), then call ``then``.

    A notification for a ``referenceNo`` the record does not hold is unknown (404, DOKU
    retries; a forgery gets nothing).
    """

    async def reference_lookup(reference_no: str) -> str | None:
        entry = record.find_by_reference_no(reference_no)
        return entry.item.reference if entry is not None else None

    async def on_confirmed(confirmed: ConfirmedNotification) -> None:
        state = confirmed.state
        if state is not None and confirmed.partner_reference_no:
            changed = record.apply(
                confirmed.partner_reference_no,
                state,
                source="notification",
                code=confirmed.confirmed_status,
                message=confirmed.status_response.transaction_status_desc or confirmed.description,
                reference_no=confirmed.transaction_id,
            )
            if changed:
                log.info(
                    "payout %s is now %s (DOKU confirmed, after a %s notification)",
                    confirmed.partner_reference_no,
                    state,
                    confirmed.kind,
                )
        elif state is None:
            log.warning(
                "DOKU confirmed an undocumented status %r for %s; the record is unchanged",
                confirmed.confirmed_status,
                confirmed.transaction_id,
            )
        if then is not None:
            await then(confirmed)

    return {"reference_lookup": reference_lookup, "on_confirmed": on_confirmed}
