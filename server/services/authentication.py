"""Authenticating a request: bearer token, then the partner's rate limit, then the RFC 9421
signature and Content-Digest, then its nonce.

One use case for both doors (the auth interceptor builds the SignedRequest): REST through
Envoy (the raw method, target and body the gateway forwarded) and native gRPC (POST, the
method path, the serialized request message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from server.domain.errors import RequestNotAuthenticated, Unauthenticated
from server.domain.signing_keys import PublicKey, SigningKey
from server.services.limits import PartnerRateLimiter
from server.services.ports import (
    NONCE_REPLAYED,
    UNKNOWN_KEY,
    Clock,
    NonceRegistry,
    SignatureRejected,
    SignatureVerifier,
    SignedRequest,
    VerifiedSignature,
)


class BearerTokens(Protocol):
    """What this needs of services/auth.py's AuthService."""

    async def authenticate(self, token: str) -> UUID: ...


class LiveKeys(Protocol):
    """What this needs of services/signing_keys.py's SigningKeyService."""

    async def live(self, *, partner_id: UUID, fresh: bool = False) -> list[SigningKey]: ...


@dataclass(frozen=True)
class Authenticated:
    partner_id: UUID
    key_id: str  # "-" for the first key's registration, made with the token alone


def bearer_token(header: str | None) -> str:
    if not header:
        raise Unauthenticated("Missing Authorization header (Bearer token)")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must be 'Bearer <token>'")
    return token.strip()


class RequestAuthenticator:
    def __init__(
        self,
        *,
        auth: BearerTokens,
        keys: LiveKeys,
        verifier: SignatureVerifier,
        nonces: NonceRegistry,
        clock: Clock,
        limiter: PartnerRateLimiter | None = None,
    ) -> None:
        """`limiter`: the per-partner rate limit (None: none)."""
        self._auth = auth
        self._limiter = limiter
        self._keys = keys
        self._verifier = verifier
        self._nonces = nonces
        self._clock = clock
        # A nonce is remembered while a request carrying it could still be accepted: until
        # its `created` is too old, plus the future skew allowed, since the replica that
        # sees the replay may run that far behind the one that recorded it.
        self._nonce_memory = verifier.max_age_seconds + verifier.max_future_seconds

    async def authenticate(
        self, request: SignedRequest, *, scheme: str, first_key_registration: bool
    ) -> Authenticated:
        """`first_key_registration`: this request registers a signing key, which a partner
        with no key yet may do with the bearer token alone."""
        partner_id = await self._auth.authenticate(
            bearer_token(request.headers.get("authorization"))
        )
        if self._limiter is not None:
            # As soon as the partner is known, and before the costly checks: a refused
            # request verifies nothing and burns no nonce (so a retry of the very same
            # signed request later is admitted), and the steps after auth never run.
            self._limiter.admit(partner_id)
        live = await self._keys.live(partner_id=partner_id)
        if not live and first_key_registration:
            live = await self._keys.live(partner_id=partner_id, fresh=True)
            if not live:
                return Authenticated(partner_id, "-")
        now = int(self._clock.now().timestamp())
        try:
            verified = self._verify(request, live, now, scheme)
        except SignatureRejected as rejected:
            if rejected.reason != UNKNOWN_KEY:
                raise RequestNotAuthenticated(rejected.reason, rejected.message) from None
            # Perhaps registered a moment ago on another replica: look once more.
            live = await self._keys.live(partner_id=partner_id, fresh=True)
            try:
                verified = self._verify(request, live, now, scheme)
            except SignatureRejected as again:
                raise RequestNotAuthenticated(again.reason, again.message) from None
        # Only now, with the signature known good: a forged request cannot burn a nonce.
        if verified.nonce is not None and await self._nonces.seen(
            verified.key_id,
            verified.nonce,
            keep_until=verified.created + self._nonce_memory,
            now=now,
        ):
            raise RequestNotAuthenticated(NONCE_REPLAYED, "Signature nonce was already used")
        return Authenticated(partner_id, verified.key_id)

    def _verify(
        self, request: SignedRequest, live: list[SigningKey], now: int, scheme: str
    ) -> VerifiedSignature:
        def key(key_id: str) -> PublicKey | None:
            return next((k.public for k in live if k.key_id == key_id), None)

        return self._verifier.verify(request, key, now=now, scheme=scheme)
