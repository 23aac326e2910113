"""Settings from ``DOKU_*`` environment variables, with errors and warnings that name them.

:meth:`DokuClient.from_env` reads the variables below. A set ``DOKU_*`` variable that the SDK
does not read but that looks like a typo of one it does (``DOKU_PRIVATE_KEY_FILE`` for
``DOKU_PRIVATE_KEY_PATH``) gives a :class:`ConfigurationWarning`, so a misspelt setting is not
silently ignored.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ._exceptions import ConfigurationError

__all__ = [
    "CLIENT_VARIABLES",
    "WEBHOOK_VARIABLES",
    "ConfigurationWarning",
    "client_settings_from_env",
    "webhook_keys_from_env",
]

#: ``DokuClient`` keyword argument of each optional variable ``from_env`` reads.
_OPTIONAL: Final = {
    "DOKU_ENVIRONMENT": "environment",
    "DOKU_BASE_URL": "base_url",
    "DOKU_KIRIM_PATHS": "kirim_paths",
    "DOKU_CHANNEL_ID": "channel_id",
    "DOKU_CHECK_STATUS_SERVICE_CODE": "check_status_service_code",
    "DOKU_PRIVATE_KEY_PASSPHRASE": "private_key_passphrase",
}
#: Every variable ``DokuClient.from_env`` reads.
CLIENT_VARIABLES: Final = (
    "DOKU_CLIENT_ID",
    "DOKU_CLIENT_SECRET",
    "DOKU_PRIVATE_KEY",
    "DOKU_PRIVATE_KEY_PATH",
    *_OPTIONAL,
)
#: Variables ``create_webhook_app`` reads for the keys it is not given
#: (``DOKU_ENCRYPTION_KEY``, one key, is read when ``DOKU_ENCRYPTION_KEYS`` is not set).
WEBHOOK_VARIABLES: Final = ("DOKU_AGENT_KEY", "DOKU_ENCRYPTION_KEYS", "DOKU_ENCRYPTION_KEY")
#: Variables other parts of doku_async read (the command line, the webhook receiver).
_OTHER_VARIABLES: Final = ("DOKU_CUSTOMER_NUMBER", *WEBHOOK_VARIABLES)
_READS: Final = (
    "DokuClient.from_env() reads DOKU_CLIENT_ID, DOKU_CLIENT_SECRET, and for Kirim DOKU "
    "DOKU_PRIVATE_KEY (PEM text) or DOKU_PRIVATE_KEY_PATH (a file), with "
    "DOKU_PRIVATE_KEY_PASSPHRASE for an encrypted key; optionally "
    + ", ".join(name for name in _OPTIONAL if name != "DOKU_PRIVATE_KEY_PASSPHRASE")
)


class ConfigurationWarning(UserWarning):
    """A setting that is probably not what was meant (a misspelt ``DOKU_*`` variable)."""


def client_settings_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``DokuClient`` keyword arguments from ``env`` (warns about likely typos first).

    Raises:
        ConfigurationError: a required variable is missing, or both key variables are set.
    """
    warn_about_typos(env)
    settings: dict[str, Any] = {}
    for name in ("DOKU_CLIENT_ID", "DOKU_CLIENT_SECRET"):
        if env.get(name):
            settings[name.removeprefix("DOKU_").lower()] = env[name]
    pem, path = env.get("DOKU_PRIVATE_KEY"), env.get("DOKU_PRIVATE_KEY_PATH")
    if pem and path:
        raise ConfigurationError(
            "DOKU_PRIVATE_KEY and DOKU_PRIVATE_KEY_PATH are both set: set only one "
            "(the PEM text, or the path to the file)"
        )
    if pem:
        if "-----BEGIN" not in pem and len(pem) < 512 and not any(c.isspace() for c in pem):
            raise ConfigurationError(
                "DOKU_PRIVATE_KEY holds the key's PEM text; for the path to a key file use "
                "DOKU_PRIVATE_KEY_PATH"
            )
        settings["private_key"] = pem.encode()  # text, never taken for a path
    elif path:
        settings["private_key"] = path
    for name, argument in _OPTIONAL.items():
        if env.get(name):
            settings[argument] = env[name]
    return settings


def missing(name: str) -> ConfigurationError:
    """The error for a required variable that is not set."""
    return ConfigurationError(f"{name} is not set ({_READS})")


def warn_about_typos(env: Mapping[str, str], *, stacklevel: int = 4) -> None:
    """Warn about each set ``DOKU_*`` variable that looks like a misspelt one we read."""
    known = (*CLIENT_VARIABLES, *_OTHER_VARIABLES)
    for name in sorted(env):
        if not name.startswith("DOKU_") or name in known or name.startswith("DOKU_TEST_"):
            continue
        if name.endswith("_FILE") and name.removesuffix("_FILE") + "_PATH" in known:
            close = [name.removesuffix("_FILE") + "_PATH"]  # the Docker-secrets convention
        else:
            close = difflib.get_close_matches(name, known, n=2, cutoff=0.8)
        if close:
            warnings.warn(
                f"{name} is set but doku_async does not read it; did you mean "
                f"{' or '.join(close)}?",
                ConfigurationWarning,
                stacklevel=stacklevel,
            )


def webhook_keys_from_env(
    env: Mapping[str, str],
    *,
    agent_key: str | None = None,
    encryption_keys: str | Sequence[str] | None = None,
) -> tuple[str, tuple[str, ...]]:
    """The webhook receiver's agent key and encryption keys: the ones given, else
    ``DOKU_AGENT_KEY`` and ``DOKU_ENCRYPTION_KEYS`` (comma-separated, several during a
    rotation; ``DOKU_ENCRYPTION_KEY`` for a single key). Warns about likely typos first.

    Raises:
        ConfigurationError: a key is neither given nor set (the message names the variable),
            or both encryption-key variables are set.
    """
    warn_about_typos(env)
    if agent_key is None:
        agent_key = env.get("DOKU_AGENT_KEY", "").strip()
        if not agent_key:
            raise _webhook_missing("agent_key", "DOKU_AGENT_KEY")
    if encryption_keys is None:
        several, one = env.get("DOKU_ENCRYPTION_KEYS"), env.get("DOKU_ENCRYPTION_KEY")
        if several and one:
            raise ConfigurationError(
                "DOKU_ENCRYPTION_KEYS and DOKU_ENCRYPTION_KEY are both set: set only "
                "DOKU_ENCRYPTION_KEYS (comma-separated during a rotation)"
            )
        encryption_keys = [k.strip() for k in (several or one or "").split(",") if k.strip()]
        if not encryption_keys:
            raise _webhook_missing("encryption_keys", "DOKU_ENCRYPTION_KEYS")
        variable = "DOKU_ENCRYPTION_KEYS" if several else "DOKU_ENCRYPTION_KEY"
        for number, key in enumerate(encryption_keys, 1):
            if len(key.encode()) not in (16, 24, 32):
                raise ConfigurationError(
                    f"{variable}: key {number} of {len(encryption_keys)} is "
                    f"{len(key.encode())} bytes long; DOKU's notification encryption keys are "
                    "16 characters (AES also takes 24 or 32)"
                )
    keys = (encryption_keys,) if isinstance(encryption_keys, str) else tuple(encryption_keys)
    return agent_key, keys


def _webhook_missing(argument: str, name: str) -> ConfigurationError:
    return ConfigurationError(
        f"{name} is not set and no {argument}= was given: create_webhook_app() reads "
        "DOKU_AGENT_KEY (your Kirim DOKU agent key) and DOKU_ENCRYPTION_KEYS (the 16-character "
        "notification encryption key; comma-separated during a rotation) for the keys it is "
        "not given, or takes a verifier="
    )


def name_variable(exc: ConfigurationError, env: Mapping[str, str]) -> ConfigurationError:
    """``exc`` with the variable behind its setting named (``private_key: ...`` becomes
    ``DOKU_PRIVATE_KEY (private_key): ...``); ``exc`` itself when no variable gave it."""
    setting, sep, rest = str(exc).partition(": ")
    variables = {argument: name for name, argument in _OPTIONAL.items()}
    variables["private_key"] = (
        "DOKU_PRIVATE_KEY" if env.get("DOKU_PRIVATE_KEY") else "DOKU_PRIVATE_KEY_PATH"
    )
    variable = variables.get(setting)
    if not sep or variable is None or not env.get(variable):
        return exc
    return ConfigurationError(f"{variable} ({setting}): {rest}")
