"""Defaults in one place: hosts, path families, timeouts and retry caps (stdlib only)."""

from __future__ import annotations

from typing import Final

SANDBOX_BASE_URL: Final = "https://api-sandbox.doku.com"
PRODUCTION_BASE_URL: Final = "https://api.doku.com"
BASE_URLS: Final = {"sandbox": SANDBOX_BASE_URL, "production": PRODUCTION_BASE_URL}

TOKEN_PATH: Final = "/authorization/v1/access-token/b2b"

# Kirim DOKU path families: the seed page's "/v1.0" and DOKU's current "/snap/v1.1".
KIRIM_FAMILIES: Final = ("/v1.0", "/snap/v1.1")
ACCOUNT_INQUIRY_SUFFIX: Final = "/emoney/bank-account-inquiry"
BALANCE_INQUIRY_SUFFIX: Final = "/balance-inquiry"
TRANSFER_BANK_SUFFIX: Final = "/emoney/transfer-bank"
CHECK_STATUS_SUFFIX: Final = "/qr/qr-mpm-status"

# SNAP service codes (the middle two digits of a responseCode).
SERVICE_TOKEN: Final = "73"
SERVICE_ACCOUNT_INQUIRY: Final = "42"
SERVICE_BALANCE_INQUIRY: Final = "11"
SERVICE_TRANSFER_BANK: Final = "43"
SERVICE_CHECK_STATUS: Final = "53"

DEFAULT_CHANNEL_ID: Final = "H2H"
DEFAULT_CURRENCY: Final = "IDR"

DEFAULT_CONNECT_TIMEOUT: Final = 10.0
DEFAULT_ATTEMPT_TIMEOUT: Final = 30.0
DEFAULT_TOTAL_TIMEOUT: Final = 120.0

DEFAULT_MAX_ATTEMPTS: Final = 4
DEFAULT_INITIAL_BACKOFF: Final = 0.5
DEFAULT_MAX_BACKOFF: Final = 8.0
DEFAULT_MAX_RETRY_AFTER: Final = 30.0
DEFAULT_STATUS_CHECKS: Final = 4

# DOKU tokens live 900 s; refresh this long before the advertised expiry.
DEFAULT_TOKEN_REFRESH_MARGIN: Final = 60.0
DEFAULT_TOKEN_LIFETIME: Final = 900.0

DEFAULT_POOL_SIZE: Final = 100

USER_AGENT: Final = "doku-async"

# Non-SNAP products.
PAYOUT_LINK_INITIATE_PATH: Final = "/v1/payout/initiate"
PAYOUT_LINK_STATUS_PATH: Final = "/v1/payout/status"
SAC_TRANSFERS_PATH: Final = "/sac-merchant/v1/transfers"
RDL_DISBURSEMENTS_PATH: Final = "/sac-rdl/v1/rdl-disbursements"
REQUEST_ID_MAX: Final = 128

# What a Kirim DOKU call without an RSA key says (three places raise it).
MISSING_PRIVATE_KEY: Final = (
    "private_key: Kirim DOKU calls need your RSA private key: pass private_key=, or set "
    "DOKU_PRIVATE_KEY (PEM text) or DOKU_PRIVATE_KEY_PATH (a file) for DokuClient.from_env()"
)
