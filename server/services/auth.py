"""Partner credentials: tokens for API keys, and the check every call's token goes through."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from server.domain.errors import InvalidCredentials, Unauthenticated
from server.domain.partner import Partner, hash_secret
from server.services.ports import Clock, TokenClaims, TokenCodec, UnitOfWorkFactory
from server.services.recent import Recent

# How long a replica remembers a credentials version or key set. Changes reach the other
# replicas at once by notification; this bounds staleness when one is lost.
CACHE_TTL = timedelta(seconds=2)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: int  # Unix seconds


@dataclass(frozen=True)
class NewPartner:
    """Shown once to the operator: the secret is stored only as a hash."""

    partner_id: UUID
    api_key: UUID
    api_secret: str


def new_api_secret() -> str:
    """A partner's API secret (shown once; only its hash is kept). Not the webhook signing
    secret, which is domain/webhooks.new_secret, in the Standard Webhooks format."""
    return secrets.token_urlsafe(32)


class AuthService:
    def __init__(
        self, *, uow: UnitOfWorkFactory, clock: Clock, tokens: TokenCodec, token_ttl: timedelta
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._tokens = tokens
        self._ttl = token_ttl
        # partner id -> credentials version (None: no such partner), read on every request.
        self._versions: Recent[UUID, int | None] = Recent(clock, CACHE_TTL)

    async def create_partner(self, name: str) -> NewPartner:
        secret = new_api_secret()
        partner = Partner(
            id=uuid.uuid4(),
            name=name,
            api_key=uuid.uuid4(),
            secret_hash=hash_secret(secret),
            credentials_version=1,
            created_at=self._clock.now(),
        )
        async with self._uow(write=True) as uow:
            await uow.partners.add(partner)
            await uow.commit()
        return NewPartner(partner.id, partner.api_key, secret)

    async def issue_token(self, *, api_key: str, api_secret: str) -> IssuedToken:
        try:
            key = UUID(api_key)
        except ValueError:
            raise InvalidCredentials() from None
        async with self._uow() as uow:
            partner = await uow.partners.get_by_api_key(key)
        if partner is None or not partner.secret_matches(api_secret):
            raise InvalidCredentials()
        expires_at = int((self._clock.now() + self._ttl).timestamp())
        claims = TokenClaims(partner.id, partner.credentials_version, expires_at)
        return IssuedToken(self._tokens.encode(claims), expires_at)

    async def rotate_credentials(self, *, partner_id: UUID) -> NewPartner:
        """A new secret; every token issued before stops working at once (version bump)."""
        secret = new_api_secret()
        async with self._uow(write=True) as uow:
            # Locked: two rotations at once must not both hand out a secret.
            partner = await uow.partners.get(partner_id, for_update=True)
            if partner is None:
                raise Unauthenticated("Unknown partner")
            partner.secret_hash = hash_secret(secret)
            partner.credentials_version += 1
            await uow.partners.save(partner)
            # Forgotten here once committed (an idempotent request commits later than
            # `commit` returns), and on the other replicas by notification.
            uow.after_commit(lambda: self.invalidate(partner_id))
            uow.credentials_changed(partner_id)
            await uow.commit()
        return NewPartner(partner.id, partner.api_key, secret)

    def invalidate(self, partner_id: UUID) -> None:
        """Forget the partner's remembered credentials version: it has changed."""
        self._versions.forget(partner_id)

    def invalidate_all(self) -> None:
        """Forget every remembered credentials version (changes may have gone unheard)."""
        self._versions.forget_all()

    async def authenticate(self, token: str) -> UUID:
        """The partner a bearer token speaks for; raises Unauthenticated otherwise."""
        claims = self._tokens.decode(token, now=int(self._clock.now().timestamp()))
        load = lambda: self._credentials_version(claims.partner_id)  # noqa: E731
        version = await self._versions.get(claims.partner_id, load)
        if version is None or claims.credentials_version > version:
            # A token newer than what we remember: rotated through another replica.
            self._versions.forget(claims.partner_id)
            version = await self._versions.get(claims.partner_id, load)
        if version is None or version != claims.credentials_version:
            raise Unauthenticated("Token was revoked; request a new one")
        return claims.partner_id

    async def _credentials_version(self, partner_id: UUID) -> int | None:
        async with self._uow() as uow:
            partner = await uow.partners.get(partner_id)
        return partner.credentials_version if partner else None
