"""Partner request-signing keys: parse what `PUT /auth/signing` receives, name it by thumbprint.

Only ECDSA P-384 (`ecdsa-p384-sha384`, the documented default) and Ed25519 (`ed25519`) are
accepted, the two RFC 9421 algorithms the contract names. The key id is the RFC 7638 JWK
thumbprint, so the same key always gets the same id, on every replica, with nothing stored.
`parse_submitted_key` is the PublicKeyParser port; `load_verification_key` gives the verifier
the `cryptography` key object.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from server.domain.signing_keys import InvalidSigningKey, PublicKey

ECDSA_P384_SHA384: Final = "ecdsa-p384-sha384"
ED25519: Final = "ed25519"
ALGORITHMS: Final = frozenset({ECDSA_P384_SHA384, ED25519})

# A P-384 SPKI PEM is ~215 characters, base64 of it ~290: anything far larger is not a key.
MAX_SUBMITTED_CHARS: Final = 4096
_P384_COORDINATE_BYTES: Final = 48

VerificationKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def parse_submitted_key(submitted: str) -> PublicKey:
    """Parse base64(PEM SPKI) as `PUT /auth/signing` receives it; raise InvalidSigningKey
    (the domain error, INVALID_SIGNING_KEY on publicKey) saying what is wrong."""
    if not isinstance(submitted, str) or not submitted.strip():
        raise InvalidSigningKey("publicKey is required: base64 of a PEM SubjectPublicKeyInfo")
    if len(submitted) > MAX_SUBMITTED_CHARS:
        raise InvalidSigningKey(f"publicKey is longer than {MAX_SUBMITTED_CHARS} characters")
    # Tolerate line-wrapped base64 (what `base64` prints by default); nothing else.
    compact = "".join(submitted.split())
    try:
        pem = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSigningKey("publicKey is not valid base64") from None
    if not pem.lstrip().startswith(b"-----BEGIN PUBLIC KEY-----"):
        raise InvalidSigningKey(
            "publicKey must be base64 of a PEM block '-----BEGIN PUBLIC KEY-----' "
            "(SubjectPublicKeyInfo); private keys and raw or DER keys are not accepted"
        )
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise InvalidSigningKey("publicKey is not a parseable PEM SubjectPublicKeyInfo") from None
    return public_signing_key(key)


def public_signing_key(key: object) -> PublicKey:
    """Describe a `cryptography` public key object, rejecting unsupported algorithms."""
    algorithm = algorithm_of(key)
    assert isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    return PublicKey(key_id=jwk_thumbprint(key), algorithm=algorithm, pem=pem)


def algorithm_of(key: object) -> str:
    """The RFC 9421 algorithm name for a supported key, else InvalidSigningKey saying why."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ED25519
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP384R1):
            return ECDSA_P384_SHA384
        raise InvalidSigningKey(
            f"Unsupported elliptic curve {key.curve.name}: use P-384 (secp384r1) or Ed25519"
        )
    kind = type(key).__name__.removeprefix("_").replace("PublicKey", "") or "unknown"
    raise InvalidSigningKey(f"Unsupported key type {kind}: use ECDSA P-384 or Ed25519")


def load_verification_key(signing_key: PublicKey) -> VerificationKey:
    """Load a stored key's PEM and check it really is of the algorithm recorded with it."""
    key = serialization.load_pem_public_key(signing_key.pem.encode("ascii"))
    if algorithm_of(key) != signing_key.algorithm:
        raise InvalidSigningKey(f"Stored key {signing_key.key_id} is not {signing_key.algorithm}")
    assert isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    return key


def jwk_thumbprint(key: VerificationKey) -> str:
    """RFC 7638: SHA-256 over the required JWK members, sorted, no whitespace; base64url."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}  # RFC 8037 section 2
    else:
        if not isinstance(key.curve, ec.SECP384R1):
            raise InvalidSigningKey(f"Unsupported elliptic curve {key.curve.name}")
        numbers = key.public_numbers()
        # RFC 7518 section 6.2.1.2: coordinates are full length, leading zeros kept.
        members = {
            "crv": "P-384",
            "kty": "EC",
            "x": _b64url(numbers.x.to_bytes(_P384_COORDINATE_BYTES, "big")),
            "y": _b64url(numbers.y.to_bytes(_P384_COORDINATE_BYTES, "big")),
        }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("ascii")
    return _b64url(hashlib.sha256(canonical).digest())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
