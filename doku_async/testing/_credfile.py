"""The simulator's credentials file: written on first start, reused after, so a service's
configuration survives restarts (``python -m doku_async.testing --credentials FILE``).

The file is JSON, mode 0600, with the fields of :class:`SimulatorCredentials`: ``client_id``,
``client_secret``, ``private_key_pem`` (the merchant's private key), ``public_key_pem`` (its
public half, the one registered with the simulator), ``agent_key`` and ``encryption_key``
(the notification keys). A file that is not exactly that is refused with a message naming the
file and what is wrong; it is never overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ._records import SimulatorCredentials

__all__ = ["CredentialsFileError", "load_credentials", "load_or_create_credentials"]


class CredentialsFileError(ValueError):
    """The credentials file cannot be used (unreadable, malformed or inconsistent)."""


class _File(msgspec.Struct, forbid_unknown_fields=True):
    client_id: str
    client_secret: str
    private_key_pem: str
    public_key_pem: str
    agent_key: str
    encryption_key: str


def load_credentials(path: Path) -> SimulatorCredentials:
    """Read the credentials in ``path``.

    Raises:
        CredentialsFileError: the file is unreadable, not the expected JSON, or its keys do
            not belong together.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CredentialsFileError(f"cannot read credentials file {path}: {exc.strerror}") from None
    try:
        data = msgspec.json.decode(raw, type=_File)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise CredentialsFileError(
            f"credentials file {path} is malformed ({exc}); it holds the JSON this command "
            "wrote: remove it to generate new credentials"
        ) from None
    empty = [name for name in _File.__struct_fields__ if not getattr(data, name)]
    if empty:
        raise CredentialsFileError(f"credentials file {path}: empty {', '.join(empty)}")
    if len(data.encryption_key) != 16:
        raise CredentialsFileError(f"credentials file {path}: encryption_key must be 16 characters")
    _check_key_pair(path, data.private_key_pem.encode(), data.public_key_pem.encode())
    return SimulatorCredentials(
        client_id=data.client_id,
        client_secret=data.client_secret,
        private_key_pem=data.private_key_pem.encode(),
        public_key_pem=data.public_key_pem.encode(),
        agent_key=data.agent_key,
        encryption_key=data.encryption_key,
    )


def _check_key_pair(path: Path, private_pem: bytes, public_pem: bytes) -> None:
    try:
        private = serialization.load_pem_private_key(private_pem, password=None)
        public = serialization.load_pem_public_key(public_pem)
    except (ValueError, TypeError):
        raise CredentialsFileError(
            f"credentials file {path}: private_key_pem or public_key_pem is not an "
            "unencrypted PEM key"
        ) from None
    if not isinstance(private, rsa.RSAPrivateKey) or not isinstance(public, rsa.RSAPublicKey):
        raise CredentialsFileError(f"credentials file {path}: the keys must be RSA keys")
    if private.public_key().public_numbers() != public.public_numbers():
        raise CredentialsFileError(
            f"credentials file {path}: public_key_pem is not the public half of private_key_pem"
        )


def load_or_create_credentials(path: Path) -> tuple[SimulatorCredentials, bool]:
    """The credentials in ``path``, or fresh ones written there (mode 0600) when it does not
    exist; and whether they were created."""
    if path.exists():
        return load_credentials(path), False
    creds = SimulatorCredentials.generate()
    data = _File(
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        private_key_pem=creds.private_key_pem.decode(),
        public_key_pem=creds.public_key_pem.decode(),
        agent_key=creds.agent_key,
        encryption_key=creds.encryption_key,
    )
    write_private(path, msgspec.json.format(msgspec.json.encode(data)) + b"\n", replace=False)
    return creds, True


def write_private(path: Path, content: bytes, *, replace: bool) -> None:
    """Write ``content`` to a file readable by its owner only (0600 from the start; an
    existing file is replaced only when ``replace``, and then made 0600 too)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise CredentialsFileError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(content)
