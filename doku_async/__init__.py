"""doku_async: an asyncio SDK for DOKU payouts.

Quick start::

    from doku_async import DokuClient

    async with DokuClient.from_env() as doku:
        inquiry = await doku.kirim.account_inquiry(...)
        result = await doku.kirim.transfer_bank(..., session_id=inquiry.session_id)
"""

from ._banks import BankCodes
from ._client import DokuClient
from ._config import Clocks, KirimPaths, Timeouts
from ._environ import ConfigurationWarning
from ._exceptions import (
    AuthenticationError,
    BadRequestError,
    BusinessRejectionError,
    ClientClosedError,
    ConfigurationError,
    DokuAPIError,
    DokuConnectionError,
    DokuError,
    DokuTimeoutError,
    DokuTransportError,
    DuplicateRequestError,
    InsufficientFundsError,
    InvalidAccountError,
    RateLimitError,
    RequestValidationError,
    ResponseDecodeError,
    ServerError,
    SignatureVerificationError,
    TokenError,
    TransferFailedError,
    TransferOutcomeUnknownError,
)
from ._names import NameCheck, NameCheckMode, names_match
from ._retry import RetryPolicy
from ._settings import ClientSettings
from ._states import PayoutState
from ._version import __version__
from .models import (
    AccountInquiryResponse,
    Amount,
    BalanceInquiryResponse,
    CheckStatusResponse,
    TransactionStatus,
    TransferBankResponse,
    TransferResult,
)
from .models.payout_link import PayoutLinkResponse, PayoutLinkStatus
from .models.rdl import RdlDisbursementResponse
from .models.transfers import TransferCreateResponse

__all__ = [
    "AccountInquiryResponse",
    "Amount",
    "AuthenticationError",
    "BadRequestError",
    "BalanceInquiryResponse",
    "BankCodes",
    "BusinessRejectionError",
    "CheckStatusResponse",
    "ClientClosedError",
    "ClientSettings",
    "Clocks",
    "ConfigurationError",
    "ConfigurationWarning",
    "DokuAPIError",
    "DokuClient",
    "DokuConnectionError",
    "DokuError",
    "DokuTimeoutError",
    "DokuTransportError",
    "DuplicateRequestError",
    "InsufficientFundsError",
    "InvalidAccountError",
    "KirimPaths",
    "NameCheck",
    "NameCheckMode",
    "PayoutLinkResponse",
    "PayoutLinkStatus",
    "PayoutState",
    "RateLimitError",
    "RdlDisbursementResponse",
    "RequestValidationError",
    "ResponseDecodeError",
    "RetryPolicy",
    "ServerError",
    "SignatureVerificationError",
    "Timeouts",
    "TokenError",
    "TransactionStatus",
    "TransferBankResponse",
    "TransferCreateResponse",
    "TransferFailedError",
    "TransferOutcomeUnknownError",
    "TransferResult",
    "__version__",
    "names_match",
]


import msgspec as _msgspec


def _present_public_names() -> None:
    """Public names show as ``doku_async.X`` (in reprs, tracebacks and docs), not as the
    private module that defines them."""
    namespace = globals()
    for name in __all__:
        obj = namespace[name]
        if (
            getattr(obj, "__module__", "").startswith("doku_async.")
            and (isinstance(obj, type) or callable(obj))
            # msgspec resolves a Struct's annotations in its defining module's namespace.
            and not (isinstance(obj, type) and issubclass(obj, _msgspec.Struct))
        ):
            obj.__module__ = __name__


_present_public_names()
