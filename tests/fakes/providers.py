"""Fake outside parties and adapters behind the ports: a clock that stands still, wallets
whose "signature" is the signer's address, a KYC partner, a screener, tokens and keys."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from uuid import UUID

from server.domain.customer import KycVerdict
from server.domain.errors import Unauthenticated
from server.domain.signing_keys import InvalidSigningKey, PublicKey
from server.services.ports import KycCallback, KycSession, TokenClaims

START = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


class FixedClock:
    """Time moves only when a test says so."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> None:
        self._now += timedelta(**delta)


class FakeWallets:
    """A wallet "signs" by writing its address over the exact message: the signature is
    `address.encode()` and recovers only for the text it was made for (`signed`)."""

    def __init__(self) -> None:
        self._nonces = 0

    @staticmethod
    def sign(message_text: str, address: str) -> bytes:
        digest = hashlib.sha256(message_text.encode()).hexdigest()[:16]
        return f"{address}|{digest}".encode()

    def recover_signer(self, message_text: str, signature: bytes) -> str:
        address, _, digest = signature.decode("utf-8", "replace").partition("|")
        if not digest:
            raise ValueError("not a signature")
        if digest != hashlib.sha256(message_text.encode()).hexdigest()[:16]:
            return "0x" + "0" * 40  # a valid signature of another text: someone else
        return address

    def new_nonce(self) -> str:
        self._nonces += 1
        return f"fakenonce{self._nonces:08d}"


class FakeKyc:
    """Opens sessions and remembers them; a callback body is `session_id:verdict:event_id`."""

    def __init__(self) -> None:
        self.sessions: list[tuple[UUID, UUID]] = []  # (partner, customer) per opened session

    async def open_session(self, *, partner_id: UUID, customer_id: UUID) -> KycSession:
        self.sessions.append((partner_id, customer_id))
        session_id = f"session-{customer_id}"
        return KycSession(session_id, f"https://kyc.example/{session_id}")

    async def verify_callback(
        self, *, body: bytes, headers: Mapping[str, str], now: datetime
    ) -> KycCallback | None:
        session_id, verdict, event_id = body.decode().split(":")
        return KycCallback(session_id, KycVerdict(verdict), event_id)


class FakeScreener:
    """Passes every wallet except those denied."""

    def __init__(self, *denied: str) -> None:
        self.denied = set(denied)
        self.screened: list[str] = []

    async def screen(self, chain_id: str) -> bool:
        self.screened.append(chain_id)
        return chain_id not in self.denied


class FakeTokens:
    """Readable tokens, `partner:version:expiry`; no secret, no database."""

    def encode(self, claims: TokenClaims) -> str:
        return f"{claims.partner_id}:{claims.credentials_version}:{claims.expires_at}"

    def decode(self, token: str, *, now: int) -> TokenClaims:
        try:
            partner, version, expires = token.split(":")
            claims = TokenClaims(UUID(partner), int(version), int(expires))
        except ValueError:
            raise Unauthenticated("invalid token") from None
        if claims.expires_at <= now:
            raise Unauthenticated("token expired")
        return claims


def fake_key_parser(submitted: str) -> PublicKey:
    """`ed25519:NAME` is a key named NAME; anything else is refused as the real parser
    (adapters/signing_keys.py) refuses a bad key."""
    algorithm, _, name = submitted.partition(":")
    if algorithm != "ed25519" or not name:
        raise InvalidSigningKey("publicKey must be an Ed25519 or P-384 public key")
    return PublicKey(key_id=f"kid-{name}", algorithm="ed25519", pem=f"PEM {name}")
