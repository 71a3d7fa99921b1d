"""Partner signing keys: only P-384 and Ed25519 SPKI keys register, named by JWK thumbprint."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from client.signing import generate_key, public_key_b64
from server.adapters.signing_keys import (
    ECDSA_P384_SHA384,
    ED25519,
    jwk_thumbprint,
    load_verification_key,
    parse_submitted_key,
)
from server.domain.signing_keys import InvalidSigningKey, PublicKey

# RFC 8037 Appendix A.3: the thumbprint of the Appendix A.2 Ed25519 public key.
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

# RFC 9421 Appendix B.1.4 test-key-ed25519 (public half).
RFC9421_ED25519_PUBLIC = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n"
    "-----END PUBLIC KEY-----\n"
)


def _submitted(public_key: object) -> str:
    assert hasattr(public_key, "public_bytes")
    pem: bytes = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(pem).decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_ed25519_key_id_is_the_rfc_8037_thumbprint() -> None:
    public = ed25519.Ed25519PublicKey.from_public_bytes(_b64url_decode(RFC8037_X))

    key = parse_submitted_key(_submitted(public))

    assert key.algorithm == ED25519
    assert key.key_id == RFC8037_THUMBPRINT


def test_p384_key_id_is_sha256_of_the_canonical_ec_jwk() -> None:
    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    numbers = public.public_numbers()
    canonical = (
        '{"crv":"P-384","kty":"EC",'
        f'"x":"{_b64url(numbers.x.to_bytes(48, "big"))}",'
        f'"y":"{_b64url(numbers.y.to_bytes(48, "big"))}"}}'
    )

    key = parse_submitted_key(_submitted(public))

    assert key.algorithm == ECDSA_P384_SHA384
    assert key.key_id == _b64url(hashlib.sha256(canonical.encode()).digest())
    assert json.loads(canonical)["kty"] == "EC"  # the hand-written JSON is well formed


def test_p384_coordinates_keep_their_leading_zero_bytes_in_the_thumbprint() -> None:
    # Deterministic: the first small scalar whose public point has a short coordinate.
    scalar = 1
    while True:
        public = ec.derive_private_key(scalar, ec.SECP384R1()).public_key()
        numbers = public.public_numbers()
        if numbers.x < 2**376 or numbers.y < 2**376:
            break
        scalar += 1
    short = {"crv": "P-384", "kty": "EC"} | {
        axis: _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))
        for axis, value in (("x", numbers.x), ("y", numbers.y))
    }
    wrong = _b64url(hashlib.sha256(json.dumps(short, separators=(",", ":")).encode()).digest())

    assert jwk_thumbprint(public) != wrong


def test_the_client_sdk_computes_the_same_key_id_as_the_server() -> None:
    for algorithm in (ECDSA_P384_SHA384, ED25519):
        private = generate_key(algorithm)

        registered = parse_submitted_key(public_key_b64(private))

        assert registered.key_id == private.key_id
        assert registered.algorithm == private.algorithm == algorithm


def test_rfc_9421_test_key_ed25519_registers() -> None:
    key = parse_submitted_key(base64.b64encode(RFC9421_ED25519_PUBLIC.encode()).decode())

    assert key.algorithm == ED25519
    assert key.pem == RFC9421_ED25519_PUBLIC


def test_line_wrapped_base64_is_accepted_and_the_stored_pem_is_canonical() -> None:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    submitted = _submitted(public)
    wrapped = "\n".join(submitted[i : i + 76] for i in range(0, len(submitted), 76)) + "\n"

    key = parse_submitted_key(wrapped)

    assert key == parse_submitted_key(submitted)
    assert key.pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert isinstance(load_verification_key(key), ed25519.Ed25519PublicKey)


@pytest.mark.parametrize(
    ("public_key", "message"),
    [
        (ec.generate_private_key(ec.SECP256R1()).public_key(), "Unsupported elliptic curve"),
        (ec.generate_private_key(ec.SECP521R1()).public_key(), "Unsupported elliptic curve"),
        (rsa.generate_private_key(65537, 2048).public_key(), "Unsupported key type RSA"),
        (x25519.X25519PrivateKey.generate().public_key(), "Unsupported key type"),
    ],
    ids=["p256", "p521", "rsa", "x25519"],
)
def test_keys_of_other_algorithms_are_rejected_with_the_reason(
    public_key: object, message: str
) -> None:
    with pytest.raises(InvalidSigningKey, match=message):
        parse_submitted_key(_submitted(public_key))


def test_p256_rejection_names_the_supported_algorithms() -> None:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()

    with pytest.raises(InvalidSigningKey, match=r"secp256r1.*P-384.*Ed25519"):
        parse_submitted_key(_submitted(public))


@pytest.mark.parametrize(
    ("submitted", "message"),
    [
        ("", "publicKey is required"),
        ("   ", "publicKey is required"),
        ("not base64!", "not valid base64"),
        ("QUJ", "not valid base64"),
        (base64.b64encode(b"hello").decode(), "PEM block"),
        ("A" * 5000, "longer than"),
    ],
    ids=["empty", "blank", "not-base64", "bad-padding", "not-pem", "too-long"],
)
def test_garbage_is_rejected_with_a_clear_message(submitted: str, message: str) -> None:
    with pytest.raises(InvalidSigningKey, match=message):
        parse_submitted_key(submitted)


def test_a_der_key_or_a_raw_pem_instead_of_base64_pem_is_rejected() -> None:
    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    with pytest.raises(InvalidSigningKey, match="PEM block"):
        parse_submitted_key(base64.b64encode(der).decode())
    with pytest.raises(InvalidSigningKey, match="not valid base64"):
        parse_submitted_key(pem.decode())


def test_a_private_key_is_refused_rather_than_registered() -> None:
    private_pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with pytest.raises(InvalidSigningKey, match="private keys"):
        parse_submitted_key(base64.b64encode(private_pem).decode())


def test_a_corrupted_pem_body_is_rejected() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nAAAAAAAA\n-----END PUBLIC KEY-----\n"

    with pytest.raises(InvalidSigningKey, match="not a parseable PEM"):
        parse_submitted_key(base64.b64encode(pem.encode()).decode())


def test_a_stored_key_whose_algorithm_disagrees_with_its_pem_does_not_load() -> None:
    good = parse_submitted_key(_submitted(ed25519.Ed25519PrivateKey.generate().public_key()))
    mislabelled = PublicKey(good.key_id, ECDSA_P384_SHA384, good.pem)

    with pytest.raises(InvalidSigningKey, match="is not ecdsa-p384-sha384"):
        load_verification_key(mislabelled)
