"""Reading RSA keys, with errors that say what was given instead and what to do.

A key is parsed once, when the client is built. Every message names what kind of thing was
found (a public key, a certificate, an encrypted key, key text without its PEM lines, a file
that cannot be read) and never contains key material.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ._exceptions import ConfigurationError

__all__ = ["load_private_key", "load_public_key"]

_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=\s]+")
_KEY_FILE_SUFFIXES = (".pem", ".key", ".der", ".p8", ".pk8", ".txt")
_PASSPHRASE_HINT = "private_key_passphrase=, or DOKU_PRIVATE_KEY_PASSPHRASE with from_env()"


def load_private_key(
    key: str | bytes | os.PathLike[str], password: str | bytes | None = None
) -> rsa.RSAPrivateKey:
    """Parse an RSA private key from PEM text, PEM/DER bytes or a file path (once).

    PEM text whose line breaks arrived as the two characters ``\\n`` (as environment variables
    and ``.env`` files often carry them) is read as if they were line breaks. ``password``
    decrypts an encrypted key.

    Raises:
        ConfigurationError: the key cannot be read, is encrypted without (or with a wrong)
            ``password``, or is not an RSA private key (a public key, a certificate, another
            algorithm). The message never contains key material.
    """
    data = _key_bytes(key)
    label = _label(data)
    if label in (b"PUBLIC KEY", b"RSA PUBLIC KEY"):
        raise ConfigurationError(
            "private_key: this is a public key; the B2B token is signed with your RSA "
            "private key (the public key is the one you upload to DOKU)"
        )
    if label == b"CERTIFICATE":
        raise ConfigurationError(
            "private_key: this is a certificate, not a private key; give the RSA private key "
            "that belongs to it"
        )
    encrypted = label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in data
    secret = password.encode() if isinstance(password, str) else password
    if encrypted and not secret:
        raise ConfigurationError(
            f"private_key: the key is encrypted; give its passphrase ({_PASSPHRASE_HINT})"
        )
    loaded = _parse_private(data, secret if encrypted else None, encrypted)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ConfigurationError("private_key: the key is not an RSA key")
    return loaded


def load_public_key(key: str | bytes) -> rsa.RSAPublicKey:
    """Parse an RSA public key from PEM text or bytes."""
    data = key.encode() if isinstance(key, str) else key
    try:
        loaded = serialization.load_pem_public_key(_unescape_newlines(data))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigurationError("public_key: not a readable RSA public key") from None
    if not isinstance(loaded, rsa.RSAPublicKey):
        raise ConfigurationError("public_key: the key is not an RSA key")
    return loaded


def _parse_private(data: bytes, password: bytes | None, encrypted: bool) -> object:
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, password=password)
        return serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if encrypted:
            raise ConfigurationError(
                "private_key: cannot decrypt the key with the passphrase given"
            ) from None
        raise ConfigurationError(
            "private_key: not a readable RSA private key (PEM text, PEM/DER bytes or a path "
            "to such a file)"
        ) from None


def _key_bytes(key: str | bytes | os.PathLike[str]) -> bytes:
    """The key's bytes: read from the file ``key`` names, or ``key`` itself."""
    text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
    if isinstance(text, str) and "-----BEGIN" not in text and _bare_base64(text):
        raise ConfigurationError(
            "private_key: this looks like key text without its PEM header and footer lines "
            "(BEGIN PRIVATE KEY ... END PRIVATE KEY); give the whole PEM text or a path to the "
            "file"
        )
    if isinstance(key, bytes):
        return _unescape_newlines(key)
    if isinstance(key, str) and "-----BEGIN" in key:
        return _unescape_newlines(key.strip().strip("\"'").encode())
    path = os.fspath(key)
    try:
        return Path(path).read_bytes()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a usable path"
        raise ConfigurationError(
            f"private_key: cannot read key file {_shown_path(key, path)}({reason})"
        ) from None


def _bare_base64(text: str) -> bool:
    """Base64 key text (line breaks real or written as ``\\n``) without its PEM lines."""
    compact = text.strip().strip("\"'").replace("\\n", "").replace("\\r", "")
    return len(compact) > 256 and _BASE64_TEXT.fullmatch(compact) is not None


def _shown_path(key: object, path: str) -> str:
    """The path as it may appear in a message: only a value that is plainly a path (never a
    string that could be a secret given to the wrong argument)."""
    looks_like_path = (
        isinstance(key, os.PathLike) or os.sep in path or path.lower().endswith(_KEY_FILE_SUFFIXES)
    )
    if looks_like_path and len(path) <= 512 and path.isprintable():
        return f"{path!r} "
    return ""


def _unescape_newlines(data: bytes) -> bytes:
    """PEM text whose line breaks are the two characters ``\\n`` (one line in all)."""
    if b"-----BEGIN" in data and b"\\n" in data and data.count(b"\n") <= 1:
        return data.replace(b"\\r\\n", b"\n").replace(b"\\n", b"\n")
    return data


def _label(data: bytes) -> bytes | None:
    match = _PEM_LABEL.search(data)
    return match.group(1) if match else None
