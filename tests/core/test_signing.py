"""Unit tests of doku_async._signing: known-answer vectors from the protocol page, verification
(accept the right signature, reject every tampered input), key loading and timestamps."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from doku_async import ConfigurationError, _serde
from doku_async._signing import (
    AesKey,
    HmacKey,
    body_sha256_hex,
    format_timestamp,
    kirim_notification_signature,
    load_private_key,
    load_public_key,
    non_snap_component,
    non_snap_digest,
    non_snap_signature,
    snap_signature,
    snap_string_to_sign,
    token_signature,
    verify_kirim_notification_signature,
    verify_non_snap_signature,
    verify_snap_signature,
    verify_token_signature,
)
from doku_async.models import Amount, TransferBankAdditionalInfo, TransferBankRequest

# --- known-answer vectors (docs/doku-protocol.md) ------------------------------------------

SNAP_SECRET = "SK-TEST-SECRET"
SNAP_TOKEN = "eyJhbGciOiJSUzI1NiJ9.test.token"
SNAP_TIMESTAMP = "2024-01-12T14:30:00+07:00"
SNAP_PATH = "/v1.0/emoney/transfer-bank"
SNAP_BODY = (
    b'{"partnerReferenceNo":"hsjkans284b2he54","customerNumber":"628115678890",'
    b'"beneficiaryAccountNumber":"8377388292","beneficiaryBankCode":"014",'
    b'"amount":{"value":"200000.00","currency":"IDR"},'
    b'"additionalInfo":{"beneficiaryAccountName":"FHILEA HERMANUS","remark":"Remark test"}}'
)
SNAP_BODY_SHA256 = "744452bbca0209c99af9e5253c131f83e9409c4d13e95521b51bd8c45165073c"
SNAP_SIGNATURE = (
    "YDYcvA5ixP7xYrQbThezrD0OAgd+FPuEFAuxZ0twjK8b9fgGOnKMOe1jU0moECD8Hi/7NoC36EsFMtNyTfgAhg=="
)

NS_CLIENT_ID = "MCH-0001-10791114622547"
NS_REQUEST_ID = "b6a465ea-bb65-48b2-a22b-3e8fb51cf22e"
NS_TIMESTAMP = "2020-08-11T08:45:42Z"
NS_TARGET = "/sac-merchant/v1/transfers"
NS_SECRET = "SK-TEST-SECRET"
NS_BODY = (
    b'{"transfer":{"origin":"SAC-0000-0000000000001","destination":"SAC-8014-1628130619289",'
    b'"amount":10000,"invoice_number":"INV/7274812"}}'
)
NS_DIGEST = "oJdV54Qy9ZLaZhAIDgmu0KPyn1RixvDzxztRVo7/vQE="
NS_SIGNATURE = "HMACSHA256=Pu/GrPxA8o8FABcVqPrCHdJ5xgDXCzozfUxTTgiKdMQ="

NOTIF_AGENT_KEY = "A41418"
NOTIF_KEY = "627054fevj1sutvs"
NOTIF_REQUEST_ID = "fd53b1e3-9c35-4dfa-a95ca8dbc5695485"
NOTIF_SIGNATURE = "c7gWWl1UEDpkO42/Ikqjd/GNGzFQSZONqvwFhbcXtUVdqgq+gliUBQCOUqsFjAtX"

GARBAGE_SIGNATURES = [
    "",
    "!!!not-base64!!!",
    "AAAA",
    "é",
    "\x00",
    "Zm9v\n",
]


def _flip_char(text: str, index: int = 5) -> str:
    """``text`` with one character changed."""
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


def _flip_byte(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# --- SNAP symmetric --------------------------------------------------------------------------


def test_body_sha256_known_answer() -> None:
    assert body_sha256_hex(SNAP_BODY) == SNAP_BODY_SHA256


def test_body_sha256_is_lowercase_hex() -> None:
    digest = body_sha256_hex(b"")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_snap_string_to_sign_layout() -> None:
    assert snap_string_to_sign("POST", SNAP_PATH, SNAP_TOKEN, SNAP_BODY_SHA256, SNAP_TIMESTAMP) == (
        f"POST:{SNAP_PATH}:{SNAP_TOKEN}:{SNAP_BODY_SHA256}:{SNAP_TIMESTAMP}".encode()
    )


def test_snap_signature_known_answer() -> None:
    signature = snap_signature(
        SNAP_SECRET, "POST", SNAP_PATH, SNAP_TOKEN, SNAP_BODY, SNAP_TIMESTAMP
    )
    assert signature == SNAP_SIGNATURE


@pytest.mark.parametrize(
    "secret",
    [SNAP_SECRET, SNAP_SECRET.encode(), HmacKey(SNAP_SECRET, "sha512")],
    ids=["str", "bytes", "HmacKey"],
)
def test_snap_signature_accepts_every_secret_form(secret: str | bytes | HmacKey) -> None:
    assert (
        snap_signature(secret, "POST", SNAP_PATH, SNAP_TOKEN, SNAP_BODY, SNAP_TIMESTAMP)
        == SNAP_SIGNATURE
    )


def test_snap_signature_with_precomputed_body_hash() -> None:
    # The hash passed in wins over the body: the body is hashed once per operation.
    signature = snap_signature(
        SNAP_SECRET,
        "POST",
        SNAP_PATH,
        SNAP_TOKEN,
        b"ignored",
        SNAP_TIMESTAMP,
        body_hash_hex=SNAP_BODY_SHA256,
    )
    assert signature == SNAP_SIGNATURE


def test_snap_signature_matches_stdlib_recipe() -> None:
    message = f"POST:{SNAP_PATH}:{SNAP_TOKEN}:{SNAP_BODY_SHA256}:{SNAP_TIMESTAMP}".encode()
    expected = base64.b64encode(
        hmac.new(SNAP_SECRET.encode(), message, hashlib.sha512).digest()
    ).decode()
    assert expected == SNAP_SIGNATURE


def test_verify_snap_signature_accepts_the_vector() -> None:
    assert verify_snap_signature(
        SNAP_SECRET, "POST", SNAP_PATH, SNAP_TOKEN, SNAP_BODY, SNAP_TIMESTAMP, SNAP_SIGNATURE
    )


_SNAP_ARGS: dict[str, object] = {
    "secret": SNAP_SECRET,
    "method": "POST",
    "path": SNAP_PATH,
    "access_token": SNAP_TOKEN,
    "body": SNAP_BODY,
    "timestamp": SNAP_TIMESTAMP,
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("body", _flip_byte(SNAP_BODY, 0)),
        ("body", _flip_byte(SNAP_BODY, len(SNAP_BODY) // 2)),
        ("body", _flip_byte(SNAP_BODY, len(SNAP_BODY) - 1)),
        ("body", SNAP_BODY + b" "),
        ("body", SNAP_BODY.replace(b'"200000.00"', b'"200000.01"')),
        ("path", "/v1.0/emoney/transfer-banK"),
        ("path", "/snap/v1.1/emoney/transfer-bank"),
        ("path", SNAP_PATH + "?x=1"),
        ("timestamp", "2024-01-12T14:30:01+07:00"),
        ("timestamp", "2024-01-12T07:30:00Z"),
        ("access_token", SNAP_TOKEN + "x"),
        ("access_token", "Bearer " + SNAP_TOKEN),
        ("method", "GET"),
        ("method", "post"),
        ("secret", "SK-TEST-SECRET2"),
    ],
)
def test_verify_snap_signature_rejects_tampered_input(name: str, value: object) -> None:
    args = {**_SNAP_ARGS, name: value}
    assert not verify_snap_signature(
        args["secret"],  # type: ignore[arg-type]
        str(args["method"]),
        str(args["path"]),
        str(args["access_token"]),
        args["body"],  # type: ignore[arg-type]
        str(args["timestamp"]),
        SNAP_SIGNATURE,
    )


@pytest.mark.parametrize(
    "signature",
    [
        *GARBAGE_SIGNATURES,
        _flip_char(SNAP_SIGNATURE),
        SNAP_SIGNATURE[:-2],
        SNAP_SIGNATURE + "==",
        SNAP_SIGNATURE.lower(),
        " " + SNAP_SIGNATURE,
    ],
)
def test_verify_snap_signature_rejects_bad_signatures(signature: str) -> None:
    assert not verify_snap_signature(
        SNAP_SECRET, "POST", SNAP_PATH, SNAP_TOKEN, SNAP_BODY, SNAP_TIMESTAMP, signature
    )


# --- Non-SNAP ---------------------------------------------------------------------------------


def test_non_snap_digest_known_answer() -> None:
    assert non_snap_digest(NS_BODY) == NS_DIGEST


def test_non_snap_signature_known_answer() -> None:
    signature = non_snap_signature(
        NS_SECRET, NS_CLIENT_ID, NS_REQUEST_ID, NS_TIMESTAMP, NS_TARGET, NS_BODY
    )
    assert signature == NS_SIGNATURE


def test_non_snap_signature_with_prepared_key() -> None:
    key = HmacKey(NS_SECRET, "sha256")
    assert (
        non_snap_signature(key, NS_CLIENT_ID, NS_REQUEST_ID, NS_TIMESTAMP, NS_TARGET, NS_BODY)
        == NS_SIGNATURE
    )


def test_non_snap_component_layout() -> None:
    component = non_snap_component(NS_CLIENT_ID, NS_REQUEST_ID, NS_TIMESTAMP, NS_TARGET, NS_DIGEST)
    assert (
        component
        == (
            f"Client-Id:{NS_CLIENT_ID}\n"
            f"Request-Id:{NS_REQUEST_ID}\n"
            f"Request-Timestamp:{NS_TIMESTAMP}\n"
            f"Request-Target:{NS_TARGET}\n"
            f"Digest:{NS_DIGEST}"
        ).encode()
    )
    assert not component.endswith(b"\n")


def test_non_snap_component_without_body_has_no_digest_line() -> None:
    component = non_snap_component(NS_CLIENT_ID, NS_REQUEST_ID, NS_TIMESTAMP, NS_TARGET, None)
    assert b"Digest" not in component
    assert component.endswith(f"Request-Target:{NS_TARGET}".encode())
    signature = non_snap_signature(
        NS_SECRET, NS_CLIENT_ID, NS_REQUEST_ID, NS_TIMESTAMP, NS_TARGET, None
    )
    expected = base64.b64encode(
        hmac.new(NS_SECRET.encode(), component, hashlib.sha256).digest()
    ).decode()
    assert signature == "HMACSHA256=" + expected
    assert signature != non_snap_signature(
        NS_SECRET, NS_CLIENT_ID, NS_REQUEST_ID, NS_TIMESTAMP, NS_TARGET, b""
    )


def test_verify_non_snap_signature_accepts_request_vector() -> None:
    assert verify_non_snap_signature(
        NS_SECRET,
        NS_CLIENT_ID,
        NS_REQUEST_ID,
        NS_TIMESTAMP,
        NS_TARGET,
        NS_BODY,
        NS_SIGNATURE,
        timestamp_header="Request-Timestamp",
    )


def test_verify_non_snap_signature_defaults_to_response_timestamp() -> None:
    # The default verifies a response; a request-side signature must not pass as one.
    assert not verify_non_snap_signature(
        NS_SECRET, NS_CLIENT_ID, NS_REQUEST_ID, NS_TIMESTAMP, NS_TARGET, NS_BODY, NS_SIGNATURE
    )
    response_signature = non_snap_signature(
        NS_SECRET,
        NS_CLIENT_ID,
        NS_REQUEST_ID,
        NS_TIMESTAMP,
        NS_TARGET,
        NS_BODY,
        timestamp_header="Response-Timestamp",
    )
    assert response_signature != NS_SIGNATURE
    assert verify_non_snap_signature(
        NS_SECRET,
        NS_CLIENT_ID,
        NS_REQUEST_ID,
        NS_TIMESTAMP,
        NS_TARGET,
        NS_BODY,
        response_signature,
    )


_NS_ARGS: dict[str, object] = {
    "secret": NS_SECRET,
    "client_id": NS_CLIENT_ID,
    "request_id": NS_REQUEST_ID,
    "timestamp": NS_TIMESTAMP,
    "target": NS_TARGET,
    "body": NS_BODY,
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("body", _flip_byte(NS_BODY, 0)),
        ("body", _flip_byte(NS_BODY, len(NS_BODY) // 2)),
        ("body", NS_BODY.replace(b"10000", b"10001")),
        ("body", None),
        ("target", "/sac-merchant/v1/transfer"),
        ("timestamp", "2020-08-11T08:45:43Z"),
        ("request_id", _flip_char(NS_REQUEST_ID)),
        ("client_id", "MCH-0001-10791114622548"),
        ("secret", "SK-TEST-SECRET "),
    ],
)
def test_verify_non_snap_signature_rejects_tampered_input(name: str, value: object) -> None:
    args = {**_NS_ARGS, name: value}
    assert not verify_non_snap_signature(
        args["secret"],  # type: ignore[arg-type]
        str(args["client_id"]),
        str(args["request_id"]),
        str(args["timestamp"]),
        str(args["target"]),
        args["body"],  # type: ignore[arg-type]
        NS_SIGNATURE,
        timestamp_header="Request-Timestamp",
    )


@pytest.mark.parametrize(
    "signature",
    [
        *GARBAGE_SIGNATURES,
        _flip_char(NS_SIGNATURE, 15),
        NS_SIGNATURE.removeprefix("HMACSHA256="),
        "HMACSHA512=" + NS_SIGNATURE.removeprefix("HMACSHA256="),
        "HMACSHA256=",
    ],
)
def test_verify_non_snap_signature_rejects_bad_signatures(signature: str) -> None:
    assert not verify_non_snap_signature(
        NS_SECRET,
        NS_CLIENT_ID,
        NS_REQUEST_ID,
        NS_TIMESTAMP,
        NS_TARGET,
        NS_BODY,
        signature,
        timestamp_header="Request-Timestamp",
    )


# --- Kirim DOKU notifications (AES) -----------------------------------------------------------


def test_kirim_notification_signature_known_answer() -> None:
    assert (
        kirim_notification_signature(NOTIF_AGENT_KEY, NOTIF_REQUEST_ID, NOTIF_KEY)
        == NOTIF_SIGNATURE
    )
    assert (
        kirim_notification_signature(NOTIF_AGENT_KEY, NOTIF_REQUEST_ID, NOTIF_KEY.encode())
        == NOTIF_SIGNATURE
    )


def test_verify_kirim_notification_signature_accepts_the_vector() -> None:
    assert verify_kirim_notification_signature(
        NOTIF_AGENT_KEY, NOTIF_REQUEST_ID, NOTIF_KEY, NOTIF_SIGNATURE
    )


@pytest.mark.parametrize(
    ("agent_key", "request_id", "key"),
    [
        ("A41419", NOTIF_REQUEST_ID, NOTIF_KEY),
        (NOTIF_AGENT_KEY, _flip_char(NOTIF_REQUEST_ID), NOTIF_KEY),
        (NOTIF_AGENT_KEY, NOTIF_REQUEST_ID + "0", NOTIF_KEY),
        (NOTIF_AGENT_KEY, NOTIF_REQUEST_ID, "627054fevj1sutvt"),
        ("", NOTIF_REQUEST_ID, NOTIF_KEY),
    ],
)
def test_verify_kirim_notification_signature_rejects_tampered_input(
    agent_key: str, request_id: str, key: str
) -> None:
    assert not verify_kirim_notification_signature(agent_key, request_id, key, NOTIF_SIGNATURE)


@pytest.mark.parametrize(
    "signature", [*GARBAGE_SIGNATURES, _flip_char(NOTIF_SIGNATURE), NOTIF_SIGNATURE[:-4]]
)
def test_verify_kirim_notification_signature_rejects_bad_signatures(signature: str) -> None:
    assert not verify_kirim_notification_signature(
        NOTIF_AGENT_KEY, NOTIF_REQUEST_ID, NOTIF_KEY, signature
    )


def test_a_reused_aes_key_matches_a_fresh_cipher_for_every_length_and_thread() -> None:
    """One AesKey serves many signatures from one encryption context: each must equal a fresh
    one-shot AES-ECB-PKCS7 encryption, whatever was signed before and from whichever thread."""
    from concurrent.futures import ThreadPoolExecutor

    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    def fresh(agent_key: str, request_id: str) -> str:
        padder = padding.PKCS7(128).padder()
        padded = padder.update(f"{agent_key}{request_id}".encode()) + padder.finalize()
        encryptor = Cipher(algorithms.AES(NOTIF_KEY.encode()), modes.ECB()).encryptor()  # noqa: S305
        return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()

    key = AesKey(NOTIF_KEY)
    cases = [(NOTIF_AGENT_KEY, "r" * n) for n in range(0, 70)]  # every padding length
    cases += [("é" * n, "ß") for n in range(1, 20)]  # multi-byte text
    assert [key.signature(a, r) for a, r in cases] == [fresh(a, r) for a, r in cases]
    assert key.signature(NOTIF_AGENT_KEY, NOTIF_REQUEST_ID) == NOTIF_SIGNATURE
    with ThreadPoolExecutor(4) as pool:
        many = cases * 40
        got = list(pool.map(lambda case: key.signature(*case), many))
    assert got == [fresh(a, r) for a, r in many]


@pytest.mark.parametrize("key", ["", "short", "627054fevj1sutv", "627054fevj1sutvs0"])
def test_kirim_notification_rejects_bad_key_length(key: str) -> None:
    with pytest.raises(ConfigurationError, match="encryption_key") as info:
        kirim_notification_signature(NOTIF_AGENT_KEY, NOTIF_REQUEST_ID, key)
    if key:
        assert key not in str(info.value)


# --- HmacKey ----------------------------------------------------------------------------------


def test_hmac_key_repr_hides_the_secret() -> None:
    secret = "SK-very-secret-value-123"
    key = HmacKey(secret, "sha512")
    for text in (repr(key), str(key), f"{key!r}", repr([key])):
        assert secret not in text
        assert "SK-" not in text
    assert "***" in repr(key)


def test_hmac_key_sign_is_repeatable_and_verifies() -> None:
    key = HmacKey("secret", "sha256")
    first = key.sign(b"message")
    # The template must not be consumed by signing.
    assert key.sign(b"message") == first
    assert key.sign(b"other") != first
    expected = base64.b64encode(hmac.new(b"secret", b"message", hashlib.sha256).digest()).decode()
    assert first == expected
    assert key.verify(b"message", first)
    assert not key.verify(b"message!", first)
    assert not key.verify(b"message", "")
    assert not key.verify(b"message", "é")


# --- RSA: token signature and key loading -----------------------------------------------------


@pytest.fixture(scope="module")
def other_keypair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


TOKEN_CLIENT_ID = "BRN-0201-1700000000000"
TOKEN_TS = "2024-01-12T07:30:00Z"


def test_token_signature_round_trip(keypair: tuple[bytes, bytes]) -> None:
    private_key = load_private_key(keypair[0])
    public_key = load_public_key(keypair[1])
    signature = token_signature(private_key, TOKEN_CLIENT_ID, TOKEN_TS)
    assert len(base64.b64decode(signature, validate=True)) == 256  # 2048-bit key
    assert verify_token_signature(public_key, TOKEN_CLIENT_ID, TOKEN_TS, signature)
    # PKCS#1 v1.5 is deterministic.
    assert token_signature(private_key, TOKEN_CLIENT_ID, TOKEN_TS) == signature


def test_token_signature_fails_for_other_key_timestamp_or_client(
    keypair: tuple[bytes, bytes], other_keypair: tuple[bytes, bytes]
) -> None:
    private_key = load_private_key(keypair[0])
    public_key = load_public_key(keypair[1])
    other_public = load_public_key(other_keypair[1])
    other_private = load_private_key(other_keypair[0])
    signature = token_signature(private_key, TOKEN_CLIENT_ID, TOKEN_TS)
    assert not verify_token_signature(other_public, TOKEN_CLIENT_ID, TOKEN_TS, signature)
    assert not verify_token_signature(
        public_key, TOKEN_CLIENT_ID, "2024-01-12T07:30:01Z", signature
    )
    assert not verify_token_signature(
        public_key, TOKEN_CLIENT_ID, "2024-01-12T14:30:00+07:00", signature
    )
    assert not verify_token_signature(public_key, TOKEN_CLIENT_ID + "1", TOKEN_TS, signature)
    forged = token_signature(other_private, TOKEN_CLIENT_ID, TOKEN_TS)
    assert not verify_token_signature(public_key, TOKEN_CLIENT_ID, TOKEN_TS, forged)


@pytest.mark.parametrize("signature", [*GARBAGE_SIGNATURES, "QUJD" * 86 + "QQ=="])
def test_verify_token_signature_rejects_garbage(
    keypair: tuple[bytes, bytes], signature: str
) -> None:
    public_key = load_public_key(keypair[1])
    assert not verify_token_signature(public_key, TOKEN_CLIENT_ID, TOKEN_TS, signature)


def test_verify_token_signature_rejects_tampered_signature(keypair: tuple[bytes, bytes]) -> None:
    private_key = load_private_key(keypair[0])
    public_key = load_public_key(keypair[1])
    raw = base64.b64decode(token_signature(private_key, TOKEN_CLIENT_ID, TOKEN_TS))
    tampered = base64.b64encode(_flip_byte(raw, 100)).decode()
    assert not verify_token_signature(public_key, TOKEN_CLIENT_ID, TOKEN_TS, tampered)


def _public_numbers(key: rsa.RSAPrivateKey) -> rsa.RSAPublicNumbers:
    return key.public_key().public_numbers()


def test_load_private_key_from_every_form(keypair: tuple[bytes, bytes], tmp_path: Path) -> None:
    pem = keypair[0]
    reference = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(reference, rsa.RSAPrivateKey)
    der = reference.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    traditional_pem = reference.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    pem_file = tmp_path / "merchant.pem"
    pem_file.write_bytes(pem)
    der_file = tmp_path / "merchant.der"
    der_file.write_bytes(der)

    expected = _public_numbers(reference)
    for source in (pem.decode(), pem, der, traditional_pem, pem_file, str(pem_file), der_file):
        loaded = load_private_key(source)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        assert _public_numbers(loaded) == expected, type(source)


def _assert_no_key_material(message: str, *materials: bytes) -> None:
    assert "-----BEGIN" not in message
    for material in materials:
        for line in material.decode("latin-1").splitlines():
            if len(line) >= 16 and not line.startswith("-----"):
                assert line not in message


@pytest.fixture(scope="module")
def ec_private_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_load_private_key_rejects_ec_key(ec_private_pem: bytes, tmp_path: Path) -> None:
    ec_key = serialization.load_pem_private_key(ec_private_pem, password=None)
    ec_der = ec_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / "ec.pem"
    path.write_bytes(ec_private_pem)
    for source in (ec_private_pem, ec_private_pem.decode(), ec_der, path):
        with pytest.raises(ConfigurationError, match="not an RSA key") as info:
            load_private_key(source)
        assert type(info.value) is ConfigurationError  # typed (also a ValueError)
        _assert_no_key_material(str(info.value), ec_private_pem)


def _garbage_sources(keypair: tuple[bytes, bytes]) -> list[bytes | str]:
    pem = keypair[0]
    lines = pem.splitlines()
    truncated = b"\n".join(lines[: len(lines) // 2] + lines[-1:]) + b"\n"
    return [
        b"",
        b"garbage",
        b"\x30\x82\x01\x00garbage-der",
        b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\nnot base64 at all\n-----END RSA PRIVATE KEY-----\n",
        truncated,
        keypair[1],  # a public key is not a private key
        keypair[1].decode(),
    ]


def test_load_private_key_rejects_garbage(keypair: tuple[bytes, bytes]) -> None:
    for source in _garbage_sources(keypair):
        with pytest.raises(ConfigurationError, match="private_key") as info:
            load_private_key(source)
        assert type(info.value) is ConfigurationError  # typed (also a ValueError)
        material = source if isinstance(source, bytes) else source.encode()
        _assert_no_key_material(str(info.value), material, keypair[0])


def test_load_private_key_rejects_encrypted_pem(keypair: tuple[bytes, bytes]) -> None:
    key = serialization.load_pem_private_key(keypair[0], password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    with pytest.raises(ConfigurationError, match="encrypted; give its passphrase") as info:
        load_private_key(encrypted)
    _assert_no_key_material(str(info.value), encrypted)


def test_load_private_key_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "merchant.pem"
    for source in (missing, str(missing)):
        with pytest.raises(ConfigurationError, match="cannot read key file") as info:
            load_private_key(source)
        assert type(info.value) is ConfigurationError  # typed (also a ValueError)
        assert info.value.__cause__ is None


def test_load_private_key_directory_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="private_key"):
        load_private_key(tmp_path)


def test_load_private_key_str_with_nul_is_a_configuration_error(
    keypair: tuple[bytes, bytes],
) -> None:
    key = serialization.load_pem_private_key(keypair[0], password=None)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigurationError):
        load_private_key(der.decode("latin-1"))


def _pkcs8_with_unknown_algorithm() -> bytes:
    """A well-formed PKCS#8 PrivateKeyInfo whose algorithm OID (1.2.3.4) nobody knows."""
    oid = bytes([0x06, 0x03, 0x2A, 0x03, 0x04])
    algorithm = bytes([0x30, len(oid) + 2]) + oid + bytes([0x05, 0x00])
    private_key = bytes([0x04, 0x04, 0x04, 0x02, 0x01, 0x02])
    body = bytes([0x02, 0x01, 0x00]) + algorithm + private_key
    return bytes([0x30, len(body)]) + body


def test_load_private_key_unknown_algorithm_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        load_private_key(_pkcs8_with_unknown_algorithm())


def test_load_public_key(keypair: tuple[bytes, bytes], ec_private_pem: bytes) -> None:
    assert isinstance(load_public_key(keypair[1]), rsa.RSAPublicKey)
    assert isinstance(load_public_key(keypair[1].decode()), rsa.RSAPublicKey)
    ec_public = (
        serialization.load_pem_private_key(ec_private_pem, password=None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigurationError, match="not an RSA key"):
        load_public_key(ec_public)
    for garbage in (b"", "garbage", keypair[0]):
        with pytest.raises(ConfigurationError, match="public_key"):
            load_public_key(garbage)


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "epoch", "expected"),
    [
        ("utc", 1705044600, "2024-01-12T07:30:00Z"),
        ("jakarta", 1705044600, "2024-01-12T14:30:00+07:00"),
        ("utc", 1705044600.999, "2024-01-12T07:30:00Z"),
        # 17:00 UTC is already the next day in Jakarta.
        ("utc", 1705078800, "2024-01-12T17:00:00Z"),
        ("jakarta", 1705078800, "2024-01-13T00:00:00+07:00"),
        ("utc", 0, "1970-01-01T00:00:00Z"),
        ("jakarta", 0, "1970-01-01T07:00:00+07:00"),
    ],
)
def test_format_timestamp_exact_text(fmt: str, epoch: float, expected: str) -> None:
    assert format_timestamp(fmt, epoch) == expected  # type: ignore[arg-type]


def test_format_timestamp_defaults_to_now() -> None:
    before = time.time()
    utc = format_timestamp("utc")
    jakarta = format_timestamp("jakarta")
    after = time.time()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", utc)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+07:00", jakarta)
    assert format_timestamp("utc", before) <= utc <= format_timestamp("utc", after)


# --- the SDK's request encoding reproduces the vector body --------------------------------


def test_transfer_request_encoding_reproduces_the_vector_body() -> None:
    request = TransferBankRequest(
        partner_reference_no="hsjkans284b2he54",
        customer_number="628115678890",
        beneficiary_account_number="8377388292",
        beneficiary_bank_code="014",
        amount=Amount(value=Decimal("200000.00"), currency="IDR"),
        additional_info=TransferBankAdditionalInfo(
            beneficiary_account_name="FHILEA HERMANUS", remark="Remark test"
        ),
    )
    body = _serde.encode(request)
    assert body == SNAP_BODY
    assert body_sha256_hex(body) == SNAP_BODY_SHA256
    assert (
        snap_signature(SNAP_SECRET, "POST", SNAP_PATH, SNAP_TOKEN, body, SNAP_TIMESTAMP)
        == SNAP_SIGNATURE
    )
