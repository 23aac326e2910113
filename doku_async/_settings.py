"""``ClientSettings``: a client's options, checked once and frozen.

``DokuClient(...)`` takes these options as keywords (``ClientOptions`` types them) or one
``ClientSettings`` built ahead of time and shared, for example, by every client of a service.
Every option is checked here, before anything is built or sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypedDict
from urllib.parse import urlsplit

from . import _constants as C
from ._banks import BankCodes
from ._config import KirimPaths, Timeouts
from ._exceptions import ConfigurationError
from ._retry import RetryPolicy
from ._signing import NonSnapAlgorithm, TimestampFormat

__all__ = [
    "RESPONSE_SIGNATURE_MODES",
    "ClientOptions",
    "ClientSettings",
    "Environment",
    "ResponseSignatureMode",
]

Environment = Literal["sandbox", "production"]
"""DOKU's two published environments."""

ResponseSignatureMode = Literal["money_required", "required", "if_present", "off"]
"""How Non-SNAP answers are verified: ``"money_required"`` (the default: the answer to a
money-moving call must be signed, a status read is verified when signed), ``"required"``
(every answer must be signed), ``"if_present"`` (verify when signed), ``"off"``."""
RESPONSE_SIGNATURE_MODES: tuple[str, ...] = ("money_required", "required", "if_present", "off")


class ClientOptions(TypedDict, total=False):
    """The keyword options of ``DokuClient`` (each one a :class:`ClientSettings` field)."""

    environment: Environment
    base_url: str | None
    kirim_paths: str | KirimPaths
    channel_id: str
    token_timestamp_format: TimestampFormat
    request_timestamp_format: TimestampFormat
    timeouts: Timeouts
    retry: RetryPolicy
    check_status_service_code: str
    payout_link_signature: NonSnapAlgorithm
    response_signatures: ResponseSignatureMode
    confirm_transfers: bool
    bank_codes: BankCodes | None
    token_refresh_margin: float
    pool_size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSettings:
    """A client's options, checked when built (``ConfigurationError`` names the bad one).

    Each field is documented on :class:`~doku_async.DokuClient`. After construction
    ``base_url`` is the URL calls go to (the environment's when none was given, without a
    trailing slash), ``kirim_paths`` a :class:`KirimPaths` and ``bank_codes`` a table.
    """

    environment: Environment = "sandbox"
    base_url: str | None = None
    kirim_paths: str | KirimPaths = "/v1.0"
    channel_id: str = C.DEFAULT_CHANNEL_ID
    token_timestamp_format: TimestampFormat = "utc"
    request_timestamp_format: TimestampFormat = "jakarta"
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    check_status_service_code: str = C.SERVICE_TRANSFER_BANK
    payout_link_signature: NonSnapAlgorithm = "sha256"
    response_signatures: ResponseSignatureMode = "money_required"
    confirm_transfers: bool = True
    bank_codes: BankCodes | None = None
    token_refresh_margin: float = C.DEFAULT_TOKEN_REFRESH_MARGIN
    pool_size: int = C.DEFAULT_POOL_SIZE

    def __post_init__(self) -> None:
        base_url = _check_base_url(self.environment, self.base_url)
        paths = self.kirim_paths
        set_ = object.__setattr__  # normalised once, here; the instance stays frozen
        set_(self, "base_url", base_url.rstrip("/"))
        set_(self, "kirim_paths", paths if isinstance(paths, KirimPaths) else _family(paths))
        set_(self, "confirm_transfers", bool(self.confirm_transfers))
        set_(self, "bank_codes", _bank_codes(self.bank_codes))
        if self.timeouts is None:
            set_(self, "timeouts", Timeouts())
        if self.retry is None:
            set_(self, "retry", RetryPolicy())
        _check_words(self)
        for name in ("token_refresh_margin", "pool_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigurationError(f"{name}: must be positive")

    @property
    def url(self) -> str:
        """The base URL calls go to (``base_url`` after construction, never ``None``)."""
        assert self.base_url is not None  # set by __post_init__
        return self.base_url

    @property
    def paths(self) -> KirimPaths:
        """The Kirim DOKU paths (``kirim_paths`` after construction)."""
        assert isinstance(self.kirim_paths, KirimPaths)  # set by __post_init__
        return self.kirim_paths

    @property
    def banks(self) -> BankCodes:
        """The bank-code table (``bank_codes`` after construction)."""
        assert self.bank_codes is not None  # set by __post_init__
        return self.bank_codes


def _check_base_url(environment: str, base_url: str | None) -> str:
    if base_url is None:
        if environment not in C.BASE_URLS:
            raise ConfigurationError("environment: must be 'sandbox' or 'production'")
        return C.BASE_URLS[environment]
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ConfigurationError(
            f"base_url: must be an http(s) URL without a query, such as "
            f"https://api-sandbox.doku.com (got {base_url!r})"
        )
    return base_url


def _family(prefix: object) -> KirimPaths:
    if not isinstance(prefix, str):
        raise ConfigurationError("kirim_paths: must be a path family such as '/v1.0' or KirimPaths")
    return KirimPaths.family(prefix)


def _bank_codes(value: object) -> BankCodes:
    if value is None:
        return BankCodes.default()
    if not isinstance(value, BankCodes):
        raise ConfigurationError("bank_codes: must be a BankCodes, e.g. BankCodes.default()")
    return value


def _check_words(s: ClientSettings) -> None:
    """The options that take one of a few words, and the header values."""
    for name in ("token_timestamp_format", "request_timestamp_format"):
        if getattr(s, name) not in ("utc", "jakarta"):
            raise ConfigurationError(f"{name}: must be 'utc' or 'jakarta'")
    if s.payout_link_signature not in ("sha256", "sha512"):
        raise ConfigurationError("payout_link_signature: must be 'sha256' or 'sha512'")
    if s.response_signatures not in RESPONSE_SIGNATURE_MODES:
        raise ConfigurationError(
            f"response_signatures: must be one of {', '.join(RESPONSE_SIGNATURE_MODES)}"
        )
    channel = s.channel_id
    if not isinstance(channel, str) or not channel or not all("!" <= c <= "~" for c in channel):
        raise ConfigurationError("channel_id: must be visible ASCII characters, no spaces")
    code = s.check_status_service_code
    if not (isinstance(code, str) and len(code) == 2 and code.isdigit()):
        raise ConfigurationError("check_status_service_code: must be two digits")
    if not isinstance(s.timeouts, Timeouts):
        raise ConfigurationError("timeouts: must be a Timeouts")
    if not isinstance(s.retry, RetryPolicy):
        raise ConfigurationError("retry: must be a RetryPolicy")
