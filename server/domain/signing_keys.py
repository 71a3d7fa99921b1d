"""A partner's request-signing keys: at most two live at once, so keys rotate without
downtime (register the new one, switch clients over, delete the old one)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from server.domain.errors import DomainError, ErrorKind, NotFound

MAX_LIVE_KEYS = 2


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A partner's public signing key: what `PUT /auth/signing` parses, and what a request
    signature is verified against."""

    key_id: str  # RFC 7638 JWK thumbprint (SHA-256, base64url without padding)
    algorithm: str  # "ecdsa-p384-sha384" | "ed25519"
    pem: str  # canonical PEM SubjectPublicKeyInfo


@dataclass(frozen=True)
class SigningKey:
    """A registration: the partner's public key, and since when it is live."""

    partner_id: UUID
    public: PublicKey  # handed to the verifier as is
    created_at: datetime

    @property
    def key_id(self) -> str:
        return self.public.key_id

    @property
    def algorithm(self) -> str:
        return self.public.algorithm


class SigningKeyLimitReached(DomainError):
    kind = ErrorKind.CONFLICT
    reason = "SIGNING_KEY_LIMIT_REACHED"

    def __init__(self) -> None:
        super().__init__(f"A partner holds at most {MAX_LIVE_KEYS} signing keys; delete one first")


class SigningKeyNotFound(NotFound):
    reason = "SIGNING_KEY_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("Signing key not found")


class InvalidSigningKey(DomainError):
    reason = "INVALID_SIGNING_KEY"

    def __init__(self, message: str) -> None:
        super().__init__(message, metadata={"field": "publicKey"})


def check_can_add(live: list[SigningKey], key_id: str) -> bool:
    """False when the key is already live (registering it again is a no-op)."""
    if any(key.key_id == key_id for key in live):
        return False
    if len(live) >= MAX_LIVE_KEYS:
        raise SigningKeyLimitReached()
    return True
