"""The simulator's ledger: the state DOKU keeps about money and references, and its operations.

It owns the agent balances, the Kirim DOKU transfers and how many times each was committed, the
account-inquiry sessions, the ``X-EXTERNAL-ID`` values seen each day, the sub-accounts and their
transfers, the payout links and the RDL disbursements, and the id sequence. Its operations are
pure state changes (no I/O, no HTTP); the APIs check the protocol's rules before calling them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ._records import TWO, UNPAID_MARKER, WIB, Clock, SimulatedTransfer

__all__ = ["Ledger"]

_FINAL_LINK_STATUSES = ("COMPLETED", "FAILED", "EXPIRED")


class Ledger:
    """Balances, transfers and references, stamped by ``clock``."""

    def __init__(
        self,
        clock: Clock,
        agent_key: str,
        *,
        balance: Decimal | int | str,
        sub_account_balance: int,
    ) -> None:
        self.clock = clock
        self.agent_key = agent_key
        self.balances: dict[str, Decimal] = {agent_key: Decimal(balance).quantize(TWO)}
        self.sub_account_balance = sub_account_balance
        self.sub_accounts: dict[str, int] = {}
        self.transfers: dict[str, SimulatedTransfer] = {}
        self.commits: dict[str, int] = {}
        self.payout_links: dict[str, dict[str, Any]] = {}
        self.sub_account_transfers: dict[str, dict[str, Any]] = {}
        self.rdl_disbursements: dict[str, dict[str, Any]] = {}
        self.external_ids: set[tuple[str, str]] = set()
        self.sessions: dict[str, bool] = {}  # inquiry sessionId -> used by a transfer
        self._seq = 0

    def next_id(self, prefix: str, width: int = 10) -> str:
        """A fresh reference: ``prefix`` and the next number of one sequence, zero-padded."""
        self._seq += 1
        return f"{prefix}{self._seq:0{width}d}"

    # --- Kirim DOKU ----------------------------------------------------------------------

    def claim_external_id(self, external_id: str) -> bool:
        """Record ``external_id`` for today (WIB); ``False`` if it was already used today."""
        day = datetime.fromtimestamp(self.clock.now(), WIB).date().isoformat()
        if (day, external_id) in self.external_ids:
            return False
        self.external_ids.add((day, external_id))
        return True

    def open_session(self) -> str:
        """A new account-inquiry session, not yet used by a transfer."""
        session_id = self.next_id("I", 16)
        self.sessions[session_id] = False
        return session_id

    def session_used(self, session_id: str) -> bool:
        """Whether a transfer already used this inquiry session."""
        return self.sessions.get(session_id) is True

    def commit_transfer(
        self,
        *,
        reference: str,
        external_id: str,
        amount: Decimal,
        account: str,
        bank: str,
        session_id: str,
    ) -> SimulatedTransfer:
        """Debit the agent and book the transfer: UNPAID (``03``) for the magic account
        numbers, otherwise paid (``00``)."""
        self.balances[self.agent_key] -= amount
        if session_id:
            self.sessions[session_id] = True
        transfer = SimulatedTransfer(
            partner_reference_no=reference,
            external_id=external_id,
            reference_no=self.next_id("DK", 8),
            amount=amount,
            beneficiary_account_number=account,
            beneficiary_bank_code=bank,
            session_id=session_id,
            status="03" if UNPAID_MARKER in account else "00",
            created_at=self.clock.now(),
        )
        self.transfers[reference] = transfer
        self.commits[reference] = self.commits.get(reference, 0) + 1
        return transfer

    def settle_unpaid(self, transfer: SimulatedTransfer, *, failed: bool) -> None:
        """Settle an UNPAID transfer: FAILED (``06``, the money back) or SUCCESS (``00``)."""
        transfer.status = "06" if failed else "00"
        if failed:
            self.balances[self.agent_key] += transfer.amount

    def refund(self, transfer: SimulatedTransfer) -> None:
        """Refund a paid transfer (``04``): the money back to the agent."""
        transfer.status = "04"
        self.balances[self.agent_key] += transfer.amount

    # --- Non-SNAP ------------------------------------------------------------------------

    def create_payout_link(
        self, reference: str, amount: Decimal, people: dict[str, str]
    ) -> dict[str, Any]:
        """Book a payout link for ``reference``; it starts as EMAIL_SENT."""
        now = self.clock.iso_now()
        link = {
            "reference_id": reference,
            "transaction_id": self.next_id("PL"),
            "status": "PENDING",
            "amount": amount,
            **people,
            "created_time": now,
            "modified_time": now,
            "history": ["PENDING", "EMAIL_SENT"],
        }
        self.payout_links[reference] = link
        link["status"] = "EMAIL_SENT"
        return link

    def set_payout_link_status(self, reference_id: str, status: str) -> None:
        """Move a payout link to ``status``."""
        link = self.payout_links[reference_id]
        link["status"] = status
        link["modified_time"] = self.clock.iso_now()

    def claim_payout_link(self, reference_id: str, *, succeed: bool) -> None:
        """The recipient opens the link and submits bank details: COMPLETED (or FAILED)."""
        link = self.payout_links[reference_id]
        if link["status"] in _FINAL_LINK_STATUSES:
            raise ValueError(f"payout link {reference_id} is already {link['status']}")
        link["history"].extend(["EMAIL_LINK_OPENED", "CONFIRMED"])
        self.set_payout_link_status(reference_id, "COMPLETED" if succeed else "FAILED")
        link["history"].append(link["status"])

    def sub_account_funds(self, account: str) -> int:
        """A sub-account's balance, opened with the starting balance on first sight."""
        return self.sub_accounts.setdefault(account, self.sub_account_balance)

    def move_sub_account_funds(self, origin: str, destination: str, amount: int) -> None:
        """Move ``amount`` from ``origin`` to ``destination`` (the caller checked the funds)."""
        self.sub_accounts[origin] = self.sub_account_funds(origin) - amount
        self.sub_accounts[destination] = self.sub_account_funds(destination) + amount
