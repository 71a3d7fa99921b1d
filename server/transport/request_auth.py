"""Authenticating a request: bearer token, then the RFC 9421 signature and Content-Digest.

One implementation for both doors: the ext_authz verifier (REST through Envoy, raw bytes)
and the authentication interceptor (native gRPC, serialized message bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from server.adapters.http_signatures import (
    RequestSignatureVerifier,
    SignatureRejected,
    SignedRequest,
    VerifiedSignature,
)
from server.adapters.signing_keys import PublicSigningKey
from server.domain.errors import RequestNotAuthenticated, Unauthenticated
from server.domain.signing_keys import SigningKey
from server.services.auth import AuthService
from server.services.ports import Clock
from server.services.signing_keys import SigningKeyService

# How long a nonce is remembered: the oldest acceptable `created` plus the future skew.
NONCE_MEMORY_SECONDS = 300 + 60


class NonceRegistry(Protocol):
    async def seen(self, key_id: str, nonce: str, *, keep_until: int, now: int) -> bool: ...


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
        auth: AuthService,
        keys: SigningKeyService,
        verifier: RequestSignatureVerifier,
        nonces: NonceRegistry,
        clock: Clock,
    ) -> None:
        self._auth = auth
        self._keys = keys
        self._verifier = verifier
        self._nonces = nonces
        self._clock = clock

    async def authenticate(
        self, request: SignedRequest, *, scheme: str, first_key_registration: bool
    ) -> Authenticated:
        """`first_key_registration`: this request registers a signing key, which a partner
        with no key yet may do with the bearer token alone."""
        partner_id = await self._auth.authenticate(
            bearer_token(request.headers.get("authorization"))
        )
        live = await self._keys.live(partner_id=partner_id)
        if not live and first_key_registration:
            live = await self._keys.live(partner_id=partner_id, fresh=True)
            if not live:
                return Authenticated(partner_id, "-")
        now = int(self._clock.now().timestamp())
        try:
            verified = self._verify(request, live, now, scheme)
        except SignatureRejected as rejected:
            if rejected.reason != "UNKNOWN_KEY":
                raise RequestNotAuthenticated(rejected.reason, rejected.message) from None
            # Perhaps registered a moment ago on another replica: look once more.
            live = await self._keys.live(partner_id=partner_id, fresh=True)
            try:
                verified = self._verify(request, live, now, scheme)
            except SignatureRejected as again:
                raise RequestNotAuthenticated(again.reason, again.message) from None
        if verified.nonce is not None and await self._nonces.seen(
            verified.key_id,
            verified.nonce,
            keep_until=verified.created + NONCE_MEMORY_SECONDS,
            now=now,
        ):
            raise RequestNotAuthenticated("NONCE_REPLAYED", "Signature nonce was already used")
        return Authenticated(partner_id, verified.key_id)

    def _verify(
        self, request: SignedRequest, live: list[SigningKey], now: int, scheme: str
    ) -> VerifiedSignature:
        keys = {k.key_id: PublicSigningKey(k.key_id, k.algorithm, k.public_key_pem) for k in live}
        return self._verifier.verify(
            request, lambda key_id: keys.get(key_id), now=now, scheme=scheme
        )
