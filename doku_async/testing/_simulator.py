"""``DokuSimulator``: a stateful local DOKU on a loopback port.

It verifies every signature with the SDK's own :mod:`doku_async._signing` (so it never drifts
from the client), answers in DOKU's shapes and codes, keeps a ledger, replays idempotent
requests as DOKU does, sends signed Kirim DOKU notifications for the sandbox magic values, and
injects faults on demand.

This module owns the front: the server's lifecycle, the routing (every request is recorded
here), the application of injected faults, and the control and query API. The work is done by
the parts it composes: the :class:`~._ledger.Ledger` (state), :class:`~._snap_api.SnapApi`
(Kirim DOKU), :class:`~._nonsnap_api.NonSnapApi` (Payout Link, Transfers, RDL) and
:class:`~._notifier.Notifier` (notifications); their settings and state stay readable and
settable as the simulator's attributes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping
from decimal import Decimal
from typing import Any, Generic, TypeVar, cast, overload

from aiohttp import web

from .. import _constants as C
from .. import _serde
from .._banks import BankCodes
from .._client import DokuClient
from ._admin import AdminApi
from ._faults import Fault, FaultKind, FaultPlan
from ._ledger import Ledger
from ._nonsnap_api import NonSnapApi
from ._notifier import Notifier
from ._records import (
    ANSWER_SHAPES,
    Clock,
    DeliveredNotification,
    Drop,
    Handler,
    RecordedRequest,
    Reply,
    SimulatedTransfer,
    SimulatorCredentials,
)
from ._snap_api import SnapApi

__all__ = [
    "ANSWER_SHAPES",
    "DeliveredNotification",
    "DokuSimulator",
    "RecordedRequest",
    "SimulatedTransfer",
    "SimulatorCredentials",
]

_T = TypeVar("_T")


class _Forward(Generic[_T]):
    """An attribute of the simulator that one of its parts keeps: read and set through."""

    def __init__(self, part: str, name: str = "") -> None:
        self._part = part
        self._name = name

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = self._name or name

    @overload
    def __get__(self, sim: None, owner: type) -> _Forward[_T]: ...
    @overload
    def __get__(self, sim: object, owner: type | None = None) -> _T: ...
    def __get__(self, sim: object, owner: type | None = None) -> _Forward[_T] | _T:
        if sim is None:
            return self
        return cast(_T, getattr(getattr(sim, self._part), self._name))

    def __set__(self, sim: object, value: _T) -> None:
        setattr(getattr(sim, self._part), self._name, value)


class DokuSimulator:
    """A local DOKU for tests, demos and benchmarks.

    Use ``async with DokuSimulator() as sim:`` and point a client at it with
    ``sim.client()`` (or ``DokuClient(**sim.client_kwargs())``).
    Over HTTP, its ``/_simulator/`` admin routes show the ledger, the request log and the
    notifications, and queue faults and notifications (see :mod:`._admin`).

    Args:
        credentials: the merchant credentials to accept; generated when omitted.
        host: interface to listen on (loopback).
        port: port to listen on; 0 picks a free ephemeral port.
        token_ttl: lifetime of issued B2B tokens, in seconds.
        balance: the agent's starting Kirim DOKU balance.
        sub_account_balance: each sub-account's starting balance (Transfers).
        unpaid_url: where Unpaid notifications go (none sent when ``None``).
        refund_url: where Refund notifications go (none sent when ``None``).
        notification_delay: seconds from a magic-value transfer to its notification.
        retry_schedule: seconds between delivery attempts when not acknowledged (DOKU: 30 min,
            6 h, 12 h; shrink for tests). Its length is the number of retries.
        max_clock_skew: accepted difference between a request timestamp and the simulator's
            clock, in seconds.
        sign_responses: sign Non-SNAP answers.
        payout_link_scheme: ``"sha256"`` or ``"sha512"`` for Payout Link signatures.
        shapes: which of DOKU's known answer shapes to speak (see :data:`ANSWER_SHAPES`):
            ``"docs"`` (the default) as DOKU's Kirim DOKU page shows them: ``responseCode`` a
            JSON number, ``accountInfos`` an object with the misspelled ``avaliableBalance``;
            ``"sandbox"`` as the live sandbox answers: codes as text, ``accountInfos`` an array
            with ``availableBalance``; ``"mixed"`` alternates between the two, answer by answer.
            In every variant the token answer's ``additionalInfo`` is ``""``, check status
            sends ``serviceCode`` ``43`` and ``originalResponseCode`` ``0`` as numbers and a
            malformed ``transactionDate``, and a transfer's ``additionalInfo.amount`` is text.
        bank_codes: the bank codes it accepts, :meth:`BankCodes.default` when omitted (the
            table the client checks). An account inquiry or transfer to any other code gets
            DOKU's HTTP 400 ``400{service}01`` "Invalid Field Format beneficiaryBankCode".
            ``sim.client()`` passes a customised table on to the client.
        registered_names: account number to the name its bank has registered, answered as
            the account inquiry's ``beneficiaryAccountName`` whatever name was sent (give it in
            DOKU's style: uppercase, possibly cut short). Other accounts answer the name that
            was sent, uppercased.

    Magic values (as in DOKU's sandbox, plus one of its own): a transfer to an account number
    containing ``12345`` stays UNPAID (``03``) and later turns FAILED (bank ``002``) or SUCCESS
    (any other bank), with an Unpaid notification; account ``7746555134`` is paid and then
    refunded, with a Refund notification. An account number ending in ``99999``
    (:data:`RENAMED_ACCOUNT_SUFFIX`) is registered to someone else: its account inquiry answers
    ``beneficiaryAccountName`` ``"BUDI SANTOSO"``, or ``"SITI AMINAH"`` when the name sent
    matches ``BUDI SANTOSO`` (:func:`~doku_async.names_match`), so a name check always has a
    mismatch to find (``registered_names`` wins over it).
    """

    # Kept by the parts (see the module docstring), readable and settable here as ever.
    shapes: _Forward[str] = _Forward("_snap")
    token_ttl: _Forward[float] = _Forward("_snap")
    bank_codes: _Forward[BankCodes] = _Forward("_snap")
    registered_names: _Forward[dict[str, str]] = _Forward("_snap")
    token_requests: _Forward[int] = _Forward("_snap")
    _tokens: _Forward[dict[str, float]] = _Forward("_snap", "tokens")
    sign_responses: _Forward[bool] = _Forward("_nonsnap")
    max_clock_skew: _Forward[float] = _Forward("_clock", "max_skew")
    unpaid_url: _Forward[str | None] = _Forward("_notifier")
    refund_url: _Forward[str | None] = _Forward("_notifier")
    notification_delay: _Forward[float] = _Forward("_notifier")
    retry_schedule: _Forward[tuple[float, ...]] = _Forward("_notifier")
    notifications: _Forward[list[DeliveredNotification]] = _Forward("_notifier")
    balances: _Forward[dict[str, Decimal]] = _Forward("_ledger")
    sub_account_balance: _Forward[int] = _Forward("_ledger")
    sub_accounts: _Forward[dict[str, int]] = _Forward("_ledger")
    transfers: _Forward[dict[str, SimulatedTransfer]] = _Forward("_ledger")
    commits: _Forward[dict[str, int]] = _Forward("_ledger")
    payout_links: _Forward[dict[str, dict[str, Any]]] = _Forward("_ledger")
    sub_account_transfers: _Forward[dict[str, dict[str, Any]]] = _Forward("_ledger")
    rdl_disbursements: _Forward[dict[str, dict[str, Any]]] = _Forward("_ledger")

    def __init__(
        self,
        *,
        credentials: SimulatorCredentials | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: float = C.DEFAULT_TOKEN_LIFETIME,
        balance: Decimal | int | str = Decimal("1000000000.00"),
        sub_account_balance: int = 1_000_000_000_000,
        unpaid_url: str | None = None,
        refund_url: str | None = None,
        notification_delay: float = 0.01,
        retry_schedule: tuple[float, ...] = (0.05, 0.1, 0.2),
        max_clock_skew: float = 300.0,
        sign_responses: bool = True,
        payout_link_scheme: str = "sha256",
        shapes: str = "docs",
        bank_codes: BankCodes | None = None,
        registered_names: Mapping[str, str] | None = None,
    ) -> None:
        if shapes not in ANSWER_SHAPES:
            raise ValueError(f"shapes must be one of {', '.join(ANSWER_SHAPES)}, not {shapes!r}")
        self.credentials = creds = credentials or SimulatorCredentials.generate()
        self.host = host
        self.port = port
        self.faults = FaultPlan()
        self.requests: list[RecordedRequest] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._clock = Clock(max_skew=max_clock_skew)
        self._ledger = Ledger(
            self._clock, creds.agent_key, balance=balance, sub_account_balance=sub_account_balance
        )
        self._notifier = Notifier(
            creds,
            self._ledger,
            self._spawn,
            unpaid_url=unpaid_url,
            refund_url=refund_url,
            notification_delay=notification_delay,
            retry_schedule=retry_schedule,
        )
        self._snap = SnapApi(
            creds,
            self._ledger,
            self._apply_fault,
            self._notifier.follow_up,
            token_ttl=token_ttl,
            shapes=shapes,
            bank_codes=BankCodes.default() if bank_codes is None else bank_codes,
            registered_names=registered_names or {},
        )
        self._nonsnap = NonSnapApi(
            creds,
            self._ledger,
            self._apply_fault,
            sign_responses=sign_responses,
            payout_link_scheme=payout_link_scheme,
        )
        self.app = self._build_app()

    def __repr__(self) -> str:
        return f"DokuSimulator(base_url={self.base_url!r})"

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> DokuSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0: an ephemeral one)."""
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])

    async def close(self) -> None:
        """Stop deliveries and the server."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._notifier.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running simulator."""
        return f"http://{self.host}:{self.port}"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~doku_async.DokuClient` pointing here."""
        creds = self.credentials
        kwargs: dict[str, Any] = {
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
            "private_key": creds.private_key_pem,
            "base_url": self.base_url,
        }
        if self.bank_codes != BankCodes.default():
            kwargs["bank_codes"] = self.bank_codes
        return kwargs

    def client(self, **overrides: Any) -> DokuClient:
        """A :class:`~doku_async.DokuClient` for this simulator (``overrides`` win)."""
        return DokuClient(**{**self.client_kwargs(), **overrides})

    # --- control and queries -------------------------------------------------------------

    def inject(
        self,
        operation: str,
        kind: FaultKind,
        *,
        times: int = 1,
        status: int = 500,
        response_code: str = "",
        retry_after: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` calls of ``operation`` suffer a fault (see :class:`Fault`)."""
        self.faults.add(
            operation,
            Fault(
                kind,
                status=status,
                response_code=response_code,
                retry_after=retry_after,
                delay=delay,
            ),
            times,
        )

    def skew_clock(self, seconds: float) -> None:
        """Shift the simulator's clock (requests then look that far off)."""
        self._clock.skew = seconds

    def expire_tokens(self) -> None:
        """Expire every issued token: the next SNAP call gets ``401xx01``."""
        self._snap.expire_tokens()

    def requests_for(self, operation: str) -> list[RecordedRequest]:
        """Recorded requests of one operation."""
        return [r for r in self.requests if r.operation == operation]

    def transfer_count(self, partner_reference_no: str) -> int:
        """How many times a transfer with this reference was committed (never more than 1)."""
        return self._ledger.commits.get(partner_reference_no, 0)

    def balance(self, agent_key: str | None = None) -> Decimal:
        """The agent's current balance."""
        return self._ledger.balances[agent_key or self.credentials.agent_key]

    async def wait_for_notifications(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` notifications were acknowledged (or raise ``TimeoutError``)."""
        await self._notifier.wait_for(count, timeout)

    async def drain(self) -> None:
        """Wait for deliveries and delayed commits still running."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def notify(
        self, partner_reference_no: str, kind: str = "unpaid", *, failed: bool = False
    ) -> DeliveredNotification | None:
        """Send the transfer's ``"unpaid"`` or ``"refund"`` notification now and wait until
        it was acknowledged or its retries ran out (``None`` if it was not sent). The ledger
        moves first: an Unpaid one settles a pending transfer (FAILED when ``failed``), a
        Refund one refunds a paid transfer; a repeat of a settled outcome changes nothing.

        Raises:
            ValueError: unknown reference or ``kind``, no URL set for ``kind``, or a state the
                notification cannot follow (a failed transfer is never refunded).
        """
        return await self._start_notify(partner_reference_no, kind, failed)

    def _start_notify(
        self, reference: str, kind: str, failed: bool
    ) -> asyncio.Task[DeliveredNotification | None]:
        transfer = self._ledger.transfers.get(reference)
        if transfer is None:
            raise ValueError(f"no transfer with partnerReferenceNo {reference!r}")
        return self._notifier.trigger(transfer, kind, failed=failed)

    def set_payout_link_status(self, reference_id: str, status: str) -> None:
        """Move a payout link to ``status`` (any text, like DOKU may send)."""
        self._ledger.set_payout_link_status(reference_id, status)

    def claim_payout_link(self, reference_id: str, *, succeed: bool = True) -> None:
        """Simulate the recipient opening the link and submitting bank details: the link goes
        through EMAIL_LINK_OPENED and CONFIRMED to COMPLETED (or FAILED)."""
        self._ledger.claim_payout_link(reference_id, succeed=succeed)

    # --- plumbing ------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """Run ``coro`` as a task that :meth:`drain` waits for and :meth:`close` cancels."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        for path, op, handler in (*self._snap.routes(), *self._nonsnap.routes()):
            app.router.add_post(path, self._route(op, handler))
        notifications = lambda: self._notifier.notifications  # noqa: E731 - read each time
        AdminApi(
            self._ledger, self.faults, self.requests, notifications, self._start_notify
        ).add_routes(app)
        return app

    def _route(
        self, op: str, handler: Handler
    ) -> Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            record = RecordedRequest(op, request.path, dict(request.headers), raw)
            self.requests.append(record)
            try:
                reply = await handler(request, raw)
            except Reply as exc:
                reply = exc
            except Drop:
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=204)
            record.status = reply.status
            record.response_code = reply.code
            return web.Response(
                status=reply.status,
                body=reply.body if reply.body is not None else _serde.encode_numbers(reply.payload),
                content_type="application/json",
                headers=reply.headers,
            )

        return route

    async def _apply_fault(self, op: str, service: str, commit: Callable[[], Reply]) -> Reply:
        """Run ``commit`` under the next queued fault of ``op``, if any."""
        fault = self.faults.take(op)
        if fault is None:
            return commit()
        if fault.kind == "hang_after_commit":
            reply = commit()
            await asyncio.sleep(fault.delay)
            return reply
        if fault.delay:
            if fault.kind == "latency":
                # Commit after the delay even if the client left, like a slow real server;
                # tracked, so drain() and close() wait for it.
                return await asyncio.shield(self._spawn(_delayed(fault.delay, commit)))
            await asyncio.sleep(fault.delay)
        if fault.kind == "drop_before_commit":
            raise Drop
        if fault.kind == "drop_after_commit":
            commit()
            raise Drop
        if fault.kind == "error_after_commit":
            commit()
        elif fault.kind == "latency":
            return commit()
        code = fault.response_code or f"{fault.status}{service}00"
        reply = Reply(
            fault.status, {"responseCode": code, "responseMessage": "Injected fault"}, code
        )
        if fault.retry_after is not None:
            reply.headers["Retry-After"] = fault.retry_after
        return reply


async def _delayed(delay: float, commit: Callable[[], Reply]) -> Reply:
    await asyncio.sleep(delay)
    return commit()
