"""``DokuClient``: configuration, lifecycle and the product resources."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import aiohttp

from . import _constants as C
from ._banks import BankCodes
from ._config import Clocks, KirimPaths, Timeouts
from ._environ import client_settings_from_env
from ._environ import missing as missing_variable
from ._exceptions import ConfigurationError
from ._nonsnap import (
    RESPONSE_SIGNATURE_MODES,
    NonSnapOperation,
    NonSnapOperations,
    NonSnapRequester,
    ResponseSignatureMode,
)
from ._pipeline import KirimOperations, SnapOperation, SnapRequester
from ._retry import RetryPolicy
from ._signing import HmacKey, NonSnapAlgorithm, TimestampFormat, load_private_key
from ._tokens import TokenStore
from ._transport import Transport
from .resources.kirim import Kirim, KirimSettings
from .resources.payout_links import PayoutLinks
from .resources.rdl import Rdl
from .resources.transfers import Transfers

__all__ = ["DokuClient"]

log = logging.getLogger("doku_async")

Environment = Literal["sandbox", "production"]


def _positive(name: str, value: float) -> float:
    if value <= 0:
        raise ConfigurationError(f"{name}: must be positive")
    return value


class DokuClient:
    """An async client for DOKU payouts.

    Use it as an async context manager (``async with DokuClient(...) as doku:``) or call
    :meth:`aclose` yourself. It owns one pooled ``aiohttp.ClientSession`` (or borrows yours),
    caches one B2B access token, and does no network I/O until the first call.

    Args:
        client_id: DOKU's client id (``X-PARTNER-ID`` / ``Client-Id``).
        client_secret: DOKU's secret key (HMAC key for SNAP and Non-SNAP signatures).
        private_key: your RSA private key for the B2B token, as PEM text, PEM/DER bytes or a
            path; parsed once, here. Required for Kirim DOKU calls.
        private_key_passphrase: decrypts an encrypted ``private_key``.
        environment: ``"sandbox"`` (default) or ``"production"``.
        base_url: overrides ``environment`` (e.g. a simulator's URL); may carry a path prefix.
        kirim_paths: ``"/v1.0"`` (default, the seed docs), ``"/snap/v1.1"`` (DOKU's current
            docs), or a :class:`KirimPaths` naming each path.
        channel_id: ``CHANNEL-ID`` header, ``"H2H"`` by default.
        token_timestamp_format: ``X-TIMESTAMP`` form for the token call, ``"utc"`` (``...Z``).
        request_timestamp_format: ``X-TIMESTAMP`` form for Kirim calls, ``"jakarta"`` (``+07:00``).
        timeouts: connect, per-attempt and per-operation limits, see :class:`Timeouts`.
        retry: retry and settlement policy, see :class:`RetryPolicy`.
        check_status_service_code: ``serviceCode`` sent to check status, ``"43"`` by default.
        payout_link_signature: Payout Link's signature digest, ``"sha256"`` (the Non-SNAP
            scheme, default) or ``"sha512"`` (the variant its page names; unconfirmed).
        response_signatures: Non-SNAP answer verification: ``"money_required"`` (default:
            answers to money-moving calls must be signed; status reads are verified when
            signed), ``"required"``, ``"if_present"`` (the escape hatch for an account whose
            answers come unsigned: verified when signed, accepted when not) or ``"off"``.
        confirm_transfers: follow each ``2004300`` ("accepted") transfer answer with one check
            status, so ``TransferResult.status`` is ``"succeeded"`` only for a payout DOKU
            confirmed (default on; ``transfer_bank(confirm=...)`` overrides it per call).
        bank_codes: the bank codes ``beneficiary_bank_code`` may take, checked before any I/O;
            :meth:`BankCodes.default` when omitted. Extend it with
            ``BankCodes.default().with_extra({"999": "My bank"})``. Names: ``name_of(code)``.
        token_refresh_margin: refresh the token this many seconds before it expires. For the
            first half of the margin calls keep using the current token while one refresh runs
            in the background; after that they wait for the new one.
        session: an ``aiohttp.ClientSession`` to borrow; it is not closed by :meth:`aclose`.
        pool_size: connection pool size of the session the client creates.
        clock: monotonic clock (tests); ``time.monotonic`` by default.
        sleep: async sleep (tests); ``asyncio.sleep`` by default.
        rand: ``[0, 1)`` source for backoff jitter (tests); ``random.random`` by default.
        wall_clock: epoch clock for timestamps (tests); ``time.time`` by default.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        private_key: str | bytes | os.PathLike[str] | None = None,
        *,
        private_key_passphrase: str | bytes | None = None,
        environment: Environment = "sandbox",
        base_url: str | None = None,
        kirim_paths: str | KirimPaths = "/v1.0",
        channel_id: str = C.DEFAULT_CHANNEL_ID,
        token_timestamp_format: TimestampFormat = "utc",
        request_timestamp_format: TimestampFormat = "jakarta",
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        check_status_service_code: str = C.SERVICE_TRANSFER_BANK,
        payout_link_signature: NonSnapAlgorithm = "sha256",
        response_signatures: ResponseSignatureMode = "money_required",
        confirm_transfers: bool = True,
        bank_codes: BankCodes | None = None,
        token_refresh_margin: float = C.DEFAULT_TOKEN_REFRESH_MARGIN,
        session: aiohttp.ClientSession | None = None,
        pool_size: int = C.DEFAULT_POOL_SIZE,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rand: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        given_base_url = base_url
        base_url = _check_options(
            client_id,
            client_secret,
            environment=environment,
            base_url=base_url,
            channel_id=channel_id,
            timestamp_formats=(token_timestamp_format, request_timestamp_format),
            payout_link_signature=payout_link_signature,
            response_signatures=response_signatures,
            check_status_service_code=check_status_service_code,
        )
        self.environment: str = environment if given_base_url is None else "custom"
        """``"sandbox"``, ``"production"`` or ``"custom"`` (a ``base_url`` was given)."""
        parts = urlsplit(base_url)
        self.client_id = client_id
        self.base_url = base_url.rstrip("/")
        self._prefix = parts.path.rstrip("/")
        self.kirim_paths = (
            kirim_paths if isinstance(kirim_paths, KirimPaths) else KirimPaths.family(kirim_paths)
        )
        self.channel_id = channel_id
        self.token_timestamp_format: TimestampFormat = token_timestamp_format
        self.request_timestamp_format: TimestampFormat = request_timestamp_format
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.confirm_transfers = bool(confirm_transfers)
        if bank_codes is not None and not isinstance(bank_codes, BankCodes):
            raise ConfigurationError("bank_codes: must be a BankCodes, e.g. BankCodes.default()")
        self.bank_codes: BankCodes = BankCodes.default() if bank_codes is None else bank_codes
        """The bank-code table: validation and ``bank_codes.name_of(code)`` for display."""
        self.check_status_service_code = check_status_service_code
        self._secret = HmacKey(client_secret, "sha512")
        self._private_key = (
            None if private_key is None else load_private_key(private_key, private_key_passphrase)
        )
        defaults = Clocks()
        self.clocks = Clocks(
            monotonic=clock or defaults.monotonic,
            sleep=sleep or defaults.sleep,
            rand=rand or defaults.rand,
            wall=wall_clock or defaults.wall,
        )
        """Time, sleeping and jitter this client uses (injected in tests)."""
        self._transport = Transport(
            session=session,
            connect_timeout=self.timeouts.connect,
            pool_size=pool_size,
            attempt_timeout=self.timeouts.attempt,
        )
        self._requester, self._kirim_ops = self._build_kirim(
            token_timestamp_format, request_timestamp_format, token_refresh_margin
        )
        self._non_snap_requester, self._non_snap_ops = self._build_non_snap(
            client_secret, payout_link_signature, response_signatures
        )
        non_snap = (self._non_snap_requester, self._non_snap_ops)
        self.payout_links = PayoutLinks(*non_snap)
        """Payout Link (Non-SNAP)."""
        self.transfers = Transfers(*non_snap)
        """Transfers between your sub-accounts (Non-SNAP)."""
        self.rdl = Rdl(*non_snap)
        """RDL disbursements (Non-SNAP)."""
        self.kirim = Kirim(
            self._requester if self._private_key is not None else None,
            self._kirim_ops,
            KirimSettings(
                bank_codes=self.bank_codes,
                check_status_service_code=self.check_status_service_code,
                confirm_transfers=self.confirm_transfers,
            ),
        )
        """Kirim DOKU operations (SNAP)."""

    # --- construction helpers ------------------------------------------------------------

    def _build_kirim(
        self,
        token_timestamp_format: TimestampFormat,
        request_timestamp_format: TimestampFormat,
        token_refresh_margin: float,
    ) -> tuple[SnapRequester, KirimOperations]:
        """The SNAP requester and the Kirim DOKU endpoints of this client's path family."""
        paths = self.kirim_paths
        ops = KirimOperations(
            account_inquiry=self._operation(
                "account_inquiry", paths.account_inquiry, C.SERVICE_ACCOUNT_INQUIRY
            ),
            balance_inquiry=self._operation(
                "balance_inquiry", paths.balance_inquiry, C.SERVICE_BALANCE_INQUIRY
            ),
            transfer_bank=self._operation(
                "transfer_bank", paths.transfer_bank, C.SERVICE_TRANSFER_BANK
            ),
            check_status=self._operation(
                "check_status", paths.check_status, C.SERVICE_CHECK_STATUS
            ),
        )
        clocks = self.clocks
        requester = SnapRequester(
            transport=self._transport,
            client_id=self.client_id,
            private_key=self._private_key,
            token_op=self._operation("token", C.TOKEN_PATH, C.SERVICE_TOKEN),
            token_timestamp_format=token_timestamp_format,
            token_refresh_margin=_positive("token_refresh_margin", token_refresh_margin),
            secret_key=self._secret,
            channel_id=self.channel_id,
            timestamp_format=request_timestamp_format,
            attempt_timeout=self.timeouts.attempt,
            total_timeout=self.timeouts.total,
            retry=self.retry,
            check_status_service_code=self.check_status_service_code,
            clock=clocks.monotonic,
            sleep=clocks.sleep,
            rand=clocks.rand,
            wall_clock=clocks.wall,
        )
        return requester, ops

    def _build_non_snap(
        self,
        client_secret: str,
        payout_link_signature: NonSnapAlgorithm,
        response_signatures: ResponseSignatureMode,
    ) -> tuple[NonSnapRequester, NonSnapOperations]:
        """The Non-SNAP requester (sharing the SNAP requester's retry budget) and endpoints."""
        sha256 = HmacKey(client_secret, "sha256")
        link_key = sha256 if payout_link_signature == "sha256" else HmacKey(client_secret, "sha512")
        ops = NonSnapOperations(
            payout_link_initiate=self._non_snap_operation(
                "payout_link_initiate", C.PAYOUT_LINK_INITIATE_PATH, link_key, True
            ),
            payout_link_status=self._non_snap_operation(
                "payout_link_status", C.PAYOUT_LINK_STATUS_PATH, link_key, False
            ),
            transfers=self._non_snap_operation("transfers", C.SAC_TRANSFERS_PATH, sha256, True),
            rdl=self._non_snap_operation("rdl", C.RDL_DISBURSEMENTS_PATH, sha256, True),
        )
        requester = NonSnapRequester(
            transport=self._transport,
            budget=self._requester.budget,
            client_id=self.client_id,
            response_signatures=response_signatures,
            max_attempts=self.retry.max_attempts,
            wall_clock=self.clocks.wall,
        )
        return requester, ops

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> DokuClient:
        """Build a client from ``DOKU_*`` environment variables.

        Reads ``DOKU_CLIENT_ID``, ``DOKU_CLIENT_SECRET``, ``DOKU_PRIVATE_KEY`` (PEM text) or
        ``DOKU_PRIVATE_KEY_PATH`` (a file) with ``DOKU_PRIVATE_KEY_PASSPHRASE`` for an
        encrypted key, and optionally ``DOKU_ENVIRONMENT``, ``DOKU_BASE_URL``,
        ``DOKU_KIRIM_PATHS``, ``DOKU_CHANNEL_ID`` and ``DOKU_CHECK_STATUS_SERVICE_CODE``.
        Keyword ``overrides`` win over the environment. A set ``DOKU_*`` variable that looks
        like a misspelling of one of these gives a :class:`ConfigurationWarning`.

        Raises:
            ConfigurationError: a required variable is missing (the message lists what is
                read), both key variables are set, or a value is unusable.
        """
        env = os.environ if environ is None else environ
        kwargs = client_settings_from_env(env)
        kwargs.update(overrides)
        client_id = kwargs.pop("client_id", None)
        client_secret = kwargs.pop("client_secret", None)
        if not client_id:
            raise missing_variable("DOKU_CLIENT_ID")
        if not client_secret:
            raise missing_variable("DOKU_CLIENT_SECRET")
        return cls(client_id, client_secret, **kwargs)

    def __repr__(self) -> str:
        return f"DokuClient(client_id={self.client_id!r}, base_url={self.base_url!r})"

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        transport = getattr(self, "_transport", None)
        if transport is not None and transport.left_open:
            message = (
                f"{self!r} was never closed: use 'async with DokuClient(...) as doku:' or "
                "'await doku.aclose()' when done (its connections are left open)"
            )
            _warn(message, ResourceWarning, source=self)
            log.warning("%s", message)

    async def aclose(self) -> None:
        """Cancel a token fetch in flight and close the session the client created."""
        await self._requester.tokens.aclose()
        await self._transport.aclose()

    @property
    def token_fetches(self) -> int:
        """How many B2B token fetches this client started."""
        return self._requester.tokens.fetches

    def invalidate_token(self) -> None:
        """Forget the cached access token; the next call fetches a new one."""
        self._requester.tokens.clear()

    def share_token(self, store: TokenStore) -> None:
        """Take the B2B token from ``store`` (``doku_async.fleet.RedisTokenStore``), shared by
        every client of the same ``client_id`` and base URL given the same store: one token
        request per token lifetime for the fleet, and a token DOKU rejects is dropped for all.
        :attr:`token_fetches` then counts reads through the store; the store's own counter
        counts requests to DOKU."""
        scope = hashlib.sha256(f"{self.client_id}\n{self.base_url}".encode()).hexdigest()[:32]
        self._requester.tokens.share(store, scope)

    # --- internals used by resources -------------------------------------------------------

    def _locate(self, path: str) -> tuple[str, str]:
        """``(signed path, URL)`` of ``path`` under ``base_url``; the signed path includes the
        base URL's own path prefix, so what is signed is exactly what is requested."""
        signed = self._prefix + path
        return signed, self.base_url[: len(self.base_url) - len(self._prefix)] + signed

    def _operation(self, name: str, path: str, service_code: str) -> SnapOperation:
        return SnapOperation(name, *self._locate(path), service_code)

    def _non_snap_operation(
        self, name: str, path: str, key: HmacKey, money_moving: bool
    ) -> NonSnapOperation:
        return NonSnapOperation(name, *self._locate(path), key, money_moving)

    @property
    def rate_limit_listeners(self) -> list[Callable[[float | None], None]]:
        """Callables told about every 429 DOKU answers (with its ``Retry-After`` hint, or
        ``None``): add one to slow your own pacing down (the bulk runner does, while it runs)."""
        return self._requester.rate_limit_listeners


def _check_options(
    client_id: object,
    client_secret: object,
    *,
    environment: str,
    base_url: str | None,
    channel_id: str,
    timestamp_formats: tuple[str, str],
    payout_link_signature: str,
    response_signatures: str,
    check_status_service_code: str,
) -> str:
    """Check the client's settings before anything is built; returns the base URL."""
    if not isinstance(client_id, str) or not client_id.strip():
        raise ConfigurationError("client_id: must be a non-empty string")
    if not isinstance(client_secret, str) or not client_secret:
        raise ConfigurationError("client_secret: must be a non-empty string")
    if base_url is None:
        if environment not in C.BASE_URLS:
            raise ConfigurationError("environment: must be 'sandbox' or 'production'")
        base_url = C.BASE_URLS[environment]
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ConfigurationError("base_url: must be an http(s) URL without a query")
    for name, fmt in zip(
        ("token_timestamp_format", "request_timestamp_format"), timestamp_formats, strict=True
    ):
        if fmt not in ("utc", "jakarta"):
            raise ConfigurationError(f"{name}: must be 'utc' or 'jakarta'")
    if payout_link_signature not in ("sha256", "sha512"):
        raise ConfigurationError("payout_link_signature: must be 'sha256' or 'sha512'")
    if response_signatures not in RESPONSE_SIGNATURE_MODES:
        raise ConfigurationError(
            f"response_signatures: must be one of {', '.join(RESPONSE_SIGNATURE_MODES)}"
        )
    for name, value in (("client_id", client_id), ("channel_id", channel_id)):
        if not value or not all("!" <= c <= "~" for c in value):
            raise ConfigurationError(f"{name}: must be visible ASCII characters, no spaces")
    if not (len(check_status_service_code) == 2 and check_status_service_code.isdigit()):
        raise ConfigurationError("check_status_service_code: must be two digits")
    return base_url
