"""DOKU's signature schemes as pure functions (no I/O).

One implementation serves the client, the webhook verifier and the simulator:

* B2B access token: ``base64(RSA-PKCS1v15-SHA256(private key, clientId + "|" + timestamp))``
  (the merchant's key when we ask DOKU for a token; DOKU's key when DOKU asks us, SNAP inbound).
* SNAP symmetric: ``base64(HMAC-SHA512(client secret,
  METHOD:PATH:TOKEN:lowerhex(sha256(body)):TIMESTAMP))``.
* SNAP inbound (DOKU calls the merchant; unconfirmed for Kirim DOKU):
  ``base64(RSA-PKCS1v15-SHA256(DOKU's private key, METHOD:PATH:lowerhex(sha256(body)):TIMESTAMP))``,
  or the symmetric signature above with the token the merchant issued to DOKU.
* Non-SNAP: ``"HMACSHA256=" + base64(HMAC-SHA256(secret, component))`` where the component
  lists ``Client-Id``, ``Request-Id``, ``Request-Timestamp`` (or ``Response-Timestamp``),
  ``Request-Target`` and, for requests with a body, ``Digest = base64(sha256(body))``.
* Kirim DOKU notifications (legacy scheme, unconfirmed by DOKU):
  ``base64(AES-128-ECB-PKCS7(encryption key, agentKey + requestId))``.

Signatures are compared with :func:`hmac.compare_digest` so verification runs in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ._exceptions import ConfigurationError
from ._keys import load_private_key, load_public_key

__all__ = [
    "AesKey",
    "HmacKey",
    "NonSnapAlgorithm",
    "TimestampFormat",
    "body_sha256_hex",
    "format_timestamp",
    "kirim_notification_signature",
    "load_private_key",
    "load_public_key",
    "non_snap_component",
    "non_snap_digest",
    "non_snap_signature",
    "snap_inbound_rsa_signature",
    "snap_inbound_string_to_sign",
    "snap_signature",
    "snap_string_to_sign",
    "token_signature",
    "verify_kirim_notification_signature",
    "verify_non_snap_signature",
    "verify_snap_inbound_rsa_signature",
    "verify_snap_signature",
    "verify_token_signature",
]

NonSnapAlgorithm = Literal["sha256", "sha512"]
"""The HMAC digest of a Non-SNAP signature: ``"sha256"`` (documented) or ``"sha512"``."""

TimestampFormat = Literal["utc", "jakarta"]
"""``"utc"`` gives ``2024-01-12T07:30:00Z``; ``"jakarta"`` gives ``2024-01-12T14:30:00+07:00``."""

_WIB_OFFSET = 7 * 3600
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


_last_stamp: dict[str, tuple[int, str]] = {}


def format_timestamp(fmt: TimestampFormat, epoch: float | None = None) -> str:
    """Format ``epoch`` (default: now) as DOKU expects in ``X-TIMESTAMP``/``Request-Timestamp``.

    The text only changes once a second, so the last one per format is reused.
    """
    second = int(time.time() if epoch is None else epoch)
    cached = _last_stamp.get(fmt)
    if cached is not None and cached[0] == second:
        return cached[1]
    if fmt == "utc":
        text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    else:
        text = time.strftime("%Y-%m-%dT%H:%M:%S+07:00", time.gmtime(second + _WIB_OFFSET))
    _last_stamp[fmt] = (second, text)
    return text


class HmacKey:
    """An HMAC key prepared once (RFC 2104): the keyed inner and outer hash states are built
    here, and :meth:`sign` only copies them, which costs half of copying an ``hmac`` object.

    The repr never shows the key.
    """

    __slots__ = ("_inner", "_outer", "algorithm")

    def __init__(self, secret: str | bytes, digest: NonSnapAlgorithm) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        self.algorithm: NonSnapAlgorithm = digest
        block = hashlib.new(digest).block_size
        if len(key) > block:
            key = hashlib.new(digest, key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.new(digest, key.translate(_IPAD))
        self._outer = hashlib.new(digest, key.translate(_OPAD))

    def sign(self, message: bytes) -> str:
        """Return ``base64(HMAC(key, message))``."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return binascii.b2a_base64(outer.digest(), newline=False).decode("ascii")

    def verify(self, message: bytes, signature: str) -> bool:
        """Check ``signature`` against ``message`` in constant time."""
        return hmac.compare_digest(
            self.sign(message).encode(), signature.encode("utf-8", "replace")
        )

    def __repr__(self) -> str:
        return f"HmacKey({self.algorithm}, key=***)"


# --- RSA keys and the B2B token signature -------------------------------------------------


def _rsa_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """``base64(SHA256withRSA(private key, message))``, PKCS#1 v1.5."""
    raw = private_key.sign(message, PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def _rsa_verify(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    """Check a base64 SHA256withRSA (PKCS#1 v1.5) signature; ``False`` for any malformed input."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message, PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def token_signature(private_key: rsa.RSAPrivateKey, client_id: str, timestamp: str) -> str:
    """``X-SIGNATURE`` of the B2B token request: SHA256withRSA over ``clientId|timestamp``."""
    return _rsa_sign(private_key, f"{client_id}|{timestamp}".encode())


def verify_token_signature(
    public_key: rsa.RSAPublicKey, client_id: str, timestamp: str, signature: str
) -> bool:
    """Check a B2B token request signature with the signer's public key (the merchant's when
    DOKU checks ours; DOKU's when we check DOKU's SNAP inbound token request)."""
    return _rsa_verify(public_key, f"{client_id}|{timestamp}".encode(), signature)


# --- SNAP symmetric signature --------------------------------------------------------------


def body_sha256_hex(body: bytes) -> str:
    """``lowercase(hex(sha256(body)))``, the body part of the SNAP string to sign."""
    return hashlib.sha256(body).hexdigest()


def snap_string_to_sign(
    method: str, path: str, access_token: str, body_hash_hex: str, timestamp: str
) -> bytes:
    """``METHOD:PATH:TOKEN:BODYHASH:TIMESTAMP`` as bytes."""
    return f"{method}:{path}:{access_token}:{body_hash_hex}:{timestamp}".encode()


def snap_signature(
    secret: str | bytes | HmacKey,
    method: str,
    path: str,
    access_token: str,
    body: bytes,
    timestamp: str,
    *,
    body_hash_hex: str | None = None,
) -> str:
    """SNAP ``X-SIGNATURE``: ``base64(HMAC-SHA512(secret, string to sign))``.

    Pass ``body_hash_hex`` when the body's hash is already known (it is computed once per
    operation and reused across attempts).
    """
    key = secret if isinstance(secret, HmacKey) else HmacKey(secret, "sha512")
    digest = body_sha256_hex(body) if body_hash_hex is None else body_hash_hex
    return key.sign(snap_string_to_sign(method, path, access_token, digest, timestamp))


def verify_snap_signature(
    secret: str | bytes | HmacKey,
    method: str,
    path: str,
    access_token: str,
    body: bytes,
    timestamp: str,
    signature: str,
) -> bool:
    """Check a SNAP symmetric signature in constant time."""
    expected = snap_signature(secret, method, path, access_token, body, timestamp)
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


# --- SNAP inbound asymmetric signature (DOKU calls the merchant) -----------------------------


def snap_inbound_string_to_sign(
    method: str, path: str, body_hash_hex: str, timestamp: str
) -> bytes:
    """``METHOD:PATH:BODYHASH:TIMESTAMP`` as bytes: what DOKU signs when it calls you (no token)."""
    return f"{method}:{path}:{body_hash_hex}:{timestamp}".encode()


def snap_inbound_rsa_signature(
    private_key: rsa.RSAPrivateKey, method: str, path: str, body: bytes, timestamp: str
) -> str:
    """The ``X-SIGNATURE`` DOKU would send on a SNAP inbound call (SHA256withRSA), for tests."""
    message = snap_inbound_string_to_sign(method, path, body_sha256_hex(body), timestamp)
    return _rsa_sign(private_key, message)


def verify_snap_inbound_rsa_signature(
    public_key: rsa.RSAPublicKey,
    method: str,
    path: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    body_hash_hex: str | None = None,
) -> bool:
    """Check a SNAP inbound SHA256withRSA ``X-SIGNATURE`` with DOKU's public key.

    Pass ``body_hash_hex`` when the body's hash is already known.
    """
    digest = body_sha256_hex(body) if body_hash_hex is None else body_hash_hex
    return _rsa_verify(
        public_key, snap_inbound_string_to_sign(method, path, digest, timestamp), signature
    )


# --- Non-SNAP signature ----------------------------------------------------------------------


def non_snap_digest(body: bytes) -> str:
    """``Digest`` component: ``base64(sha256(body))``."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def non_snap_component(
    client_id: str,
    request_id: str,
    timestamp: str,
    target: str,
    digest: str | None,
    *,
    timestamp_header: str = "Request-Timestamp",
) -> bytes:
    """The newline-joined component string (no trailing newline; no Digest line without body)."""
    parts = [
        f"Client-Id:{client_id}",
        f"Request-Id:{request_id}",
        f"{timestamp_header}:{timestamp}",
        f"Request-Target:{target}",
    ]
    if digest is not None:
        parts.append(f"Digest:{digest}")
    return "\n".join(parts).encode()


def non_snap_signature(
    secret: str | bytes | HmacKey,
    client_id: str,
    request_id: str,
    timestamp: str,
    target: str,
    body: bytes | None,
    *,
    timestamp_header: str = "Request-Timestamp",
    algorithm: NonSnapAlgorithm = "sha256",
) -> str:
    """Non-SNAP ``Signature`` header: ``"HMACSHA256=" + base64(HMAC-SHA256(secret, component))``.

    ``body`` is ``None`` for GET requests (no Digest line). ``algorithm="sha512"`` gives the
    ``"HMACSHA512="`` variant that Payout Link's page names (unconfirmed by DOKU). A prepared
    :class:`HmacKey` brings its own algorithm.
    """
    key = secret if isinstance(secret, HmacKey) else HmacKey(secret, algorithm)
    digest = None if body is None else non_snap_digest(body)
    component = non_snap_component(
        client_id, request_id, timestamp, target, digest, timestamp_header=timestamp_header
    )
    return f"HMAC{key.algorithm.upper()}=" + key.sign(component)


def verify_non_snap_signature(
    secret: str | bytes | HmacKey,
    client_id: str,
    request_id: str,
    timestamp: str,
    target: str,
    body: bytes | None,
    signature: str,
    *,
    timestamp_header: str = "Response-Timestamp",
    algorithm: NonSnapAlgorithm = "sha256",
) -> bool:
    """Check a Non-SNAP signature (by default a response's) in constant time."""
    expected = non_snap_signature(
        secret,
        client_id,
        request_id,
        timestamp,
        target,
        body,
        timestamp_header=timestamp_header,
        algorithm=algorithm,
    )
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


# --- Kirim DOKU notification signature (legacy AES scheme) -----------------------------------


def _aes_key(encryption_key: str | bytes) -> bytes:
    key = encryption_key.encode() if isinstance(encryption_key, str) else encryption_key
    if len(key) not in (16, 24, 32):
        raise ConfigurationError("encryption_key: must be 16, 24 or 32 bytes long")
    return key


class AesKey:
    """An AES key for notification signatures, prepared once. The repr never shows the key.

    ECB keeps no state between blocks, and the padded plaintext is always whole blocks, so one
    encryption context serves every signature (making a context costs more than encrypting):
    ``update`` returns each signature's blocks at once and the context is never finalized.
    A lock keeps it safe to share between threads.
    """

    __slots__ = ("_encryptor", "_lock")

    def __init__(self, encryption_key: str | bytes) -> None:
        # ECB is what the legacy scheme specifies; the plaintext is not secret, the key is.
        cipher = Cipher(algorithms.AES(_aes_key(encryption_key)), modes.ECB())  # noqa: S305
        self._encryptor = cipher.encryptor()
        self._lock = threading.Lock()

    def signature(self, agent_key: str, request_id: str) -> str:
        """``base64(AES-ECB-PKCS7(key, agentKey + requestId))``."""
        plaintext = f"{agent_key}{request_id}".encode()
        pad = 16 - len(plaintext) % 16  # PKCS#7: always at least one byte, whole blocks
        with self._lock:
            sealed = self._encryptor.update(plaintext + bytes((pad,)) * pad)
        return binascii.b2a_base64(sealed, newline=False).decode("ascii")

    def __repr__(self) -> str:
        return "AesKey(***)"


def kirim_notification_signature(
    agent_key: str, request_id: str, encryption_key: str | bytes | AesKey
) -> str:
    """``base64(AES-ECB-PKCS7(encryption_key, agentKey + requestId))``.

    This is the legacy KIRIMDOKU scheme; DOKU has not published the current one, which is
    why the webhook verifier is pluggable. Pass an :class:`AesKey` to reuse a prepared key.
    """
    key = encryption_key if isinstance(encryption_key, AesKey) else AesKey(encryption_key)
    return key.signature(agent_key, request_id)


def verify_kirim_notification_signature(
    agent_key: str, request_id: str, encryption_key: str | bytes | AesKey, signature: str
) -> bool:
    """Check a notification ``signature`` header in constant time."""
    expected = kirim_notification_signature(agent_key, request_id, encryption_key)
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
