"""Partners: programme members whose API key and secret buy bearer tokens."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass
class Partner:
    id: UUID
    name: str
    api_key: UUID
    secret_hash: str
    # Bumped on every secret rotation; tokens carry the version they were issued under,
    # so rotation invalidates every earlier token at once, on every replica.
    credentials_version: int
    created_at: datetime

    def secret_matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, hash_secret(secret))


def hash_secret(secret: str) -> str:
    """SHA-256 is enough here: secrets are 256-bit random strings we generate, not
    passwords, so a slow KDF would add latency without adding resistance."""
    return hashlib.sha256(secret.encode()).hexdigest()
