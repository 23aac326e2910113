"""``DokuClient``: configuration, lifecycle and the product resources."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self, Unpack
from urllib.parse import urlsplit

import aiohttp

from . import _constants as C
from ._banks import BankCodes
from ._config import Clocks, KirimPaths, Timeouts
from ._environ import client_settings_from_env, name_variable
from ._environ import missing as missing_variable
from ._exceptions import ConfigurationError
from ._nonsnap import NonSnapOperation, NonSnapOperations, NonSnapRequester
from ._pipeline import KirimOperations, SnapOperation, SnapRequester
from ._retry import RetryPolicy
from ._settings import ClientOptions, ClientSettings
from ._signing import HmacKey, TimestampFormat, load_private_key
from ._tokens import TokenStore
from ._transport import Transport
from .resources.kirim import Kirim, KirimSettings
from .resources.payout_links import PayoutLinks
from .resources.rdl import Rdl
from .resources.transfers import Transfers

__all__ = ["DokuClient"]

log = logging.getLogger("doku_async")


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
        pool_size: connection pool size of the session the client creates.
        settings: all of the options above in one :class:`ClientSettings`, built once and
            shared (instead of passing them as keywords; passing both is an error).
        session: an ``aiohttp.ClientSession`` to borrow; it is not closed by :meth:`aclose`.
        clocks: time, sleeping and jitter in one :class:`Clocks` bundle (tests);
            ``time.monotonic``, ``asyncio.sleep``, ``random.random`` and ``time.time`` by
            default.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        private_key: str | bytes | os.PathLike[str] | None = None,
        *,
        private_key_passphrase: str | bytes | None = None,
        settings: ClientSettings | None = None,
        session: aiohttp.ClientSession | None = None,
        clocks: Clocks | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        if settings is None:
            _check_option_names(options)
            settings = ClientSettings(**options)
        elif options:
            raise ConfigurationError(
                f"pass either settings= or options ({', '.join(sorted(options))}), not both"
            )
        elif not isinstance(settings, ClientSettings):
            raise ConfigurationError("settings: must be a ClientSettings")
        _check_credentials(client_id, client_secret)
        self.settings = settings
        """The client's options, checked and frozen (:class:`ClientSettings`); the attributes
        below (``base_url``, ``timeouts``, ``bank_codes``...) read them."""
        self.client_id = client_id
        self._prefix = urlsplit(settings.url).path.rstrip("/")
        self._secret = HmacKey(client_secret, "sha512")
        self._private_key = (
            None if private_key is None else load_private_key(private_key, private_key_passphrase)
        )
        self.clocks = clocks or Clocks()
        """Time, sleeping and jitter this client uses (injected in tests)."""
        self._transport = Transport(
            session=session,
            connect_timeout=self.timeouts.connect,
            pool_size=settings.pool_size,
            attempt_timeout=self.timeouts.attempt,
        )
        self._requester, self._kirim_ops = self._build_kirim()
        self._non_snap_requester, self._non_snap_ops = self._build_non_snap(client_secret)
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

    # --- settings, read from the frozen ClientSettings -----------------------------------

    @property
    def environment(self) -> str:
        """``"sandbox"``, ``"production"`` or ``"custom"`` (another ``base_url`` was given)."""
        settings = self.settings
        standard = C.BASE_URLS.get(settings.environment, "").rstrip("/")
        return settings.environment if settings.url == standard else "custom"

    @property
    def base_url(self) -> str:
        """The URL calls go to, without a trailing slash."""
        return self.settings.url

    @property
    def kirim_paths(self) -> KirimPaths:
        """The Kirim DOKU paths."""
        return self.settings.paths

    @property
    def channel_id(self) -> str:
        """The ``CHANNEL-ID`` header."""
        return self.settings.channel_id

    @property
    def token_timestamp_format(self) -> TimestampFormat:
        """``X-TIMESTAMP`` form of the token call."""
        return self.settings.token_timestamp_format

    @property
    def request_timestamp_format(self) -> TimestampFormat:
        """``X-TIMESTAMP`` form of Kirim DOKU calls."""
        return self.settings.request_timestamp_format

    @property
    def timeouts(self) -> Timeouts:
        """Connect, per-attempt and per-operation limits."""
        return self.settings.timeouts

    @property
    def retry(self) -> RetryPolicy:
        """The retry and settlement policy."""
        return self.settings.retry

    @property
    def confirm_transfers(self) -> bool:
        """Whether an accepted transfer is followed by one check status."""
        return self.settings.confirm_transfers

    @property
    def bank_codes(self) -> BankCodes:
        """The bank-code table: validation and ``bank_codes.name_of(code)`` for display."""
        return self.settings.banks

    @property
    def check_status_service_code(self) -> str:
        """The ``serviceCode`` sent to check status."""
        return self.settings.check_status_service_code

    # --- construction helpers ------------------------------------------------------------

    def _build_kirim(self) -> tuple[SnapRequester, KirimOperations]:
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
            token_timestamp_format=self.settings.token_timestamp_format,
            token_refresh_margin=self.settings.token_refresh_margin,
            secret_key=self._secret,
            channel_id=self.channel_id,
            timestamp_format=self.settings.request_timestamp_format,
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

    def _build_non_snap(self, client_secret: str) -> tuple[NonSnapRequester, NonSnapOperations]:
        """The Non-SNAP requester (sharing the SNAP requester's retry budget) and endpoints."""
        sha256 = HmacKey(client_secret, "sha256")
        sha512 = self.settings.payout_link_signature == "sha512"
        link_key = HmacKey(client_secret, "sha512") if sha512 else sha256
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
            response_signatures=self.settings.response_signatures,
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
        try:
            return cls(client_id, client_secret, **kwargs)
        except ConfigurationError as exc:
            named = name_variable(exc, env)
            if named is exc:
                raise
            raise named from None

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

    async def authenticate(self) -> None:
        """Get the B2B access token now (or keep the cached one): proves the client id and the
        private key before anything is paid. The client secret is first used by a Kirim call.

        Raises:
            ConfigurationError: the client has no private key.
            AuthenticationError: DOKU refused the token request.
        """
        if self._private_key is None:
            raise ConfigurationError(C.MISSING_PRIVATE_KEY)
        await self._requester.tokens.get()

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


_CLOCK_NAMES = {"clock": "monotonic", "sleep": "sleep", "rand": "rand", "wall_clock": "wall"}


def _check_option_names(options: Mapping[str, object]) -> None:
    """Refuse an unknown keyword by name (a clock gets told where clocks go now)."""
    known = ClientSettings.__dataclass_fields__
    for name in options:
        if name in _CLOCK_NAMES:
            raise TypeError(
                f"DokuClient() got an unexpected keyword argument {name!r}: pass "
                f"clocks=Clocks({_CLOCK_NAMES[name]}=...)"
            )
        if name not in known:
            raise TypeError(f"DokuClient() got an unexpected keyword argument {name!r}")


def _check_credentials(client_id: object, client_secret: object) -> None:
    """Check the credentials before anything is built (the options are checked by
    :class:`ClientSettings`)."""
    if not isinstance(client_id, str) or not client_id.strip():
        raise ConfigurationError("client_id: must be a non-empty string")
    if not isinstance(client_secret, str) or not client_secret:
        raise ConfigurationError("client_secret: must be a non-empty string")
    if not all("!" <= c <= "~" for c in client_id):
        raise ConfigurationError("client_id: must be visible ASCII characters, no spaces")
