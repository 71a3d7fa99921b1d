"""Registering, listing and deleting a partner's request-signing keys."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from server.domain.signing_keys import (
    SigningKey,
    SigningKeyNotFound,
    check_can_add,
)
from server.services.auth import CACHE_TTL
from server.services.ports import Clock, PublicKeyParser, UnitOfWork, UnitOfWorkFactory
from server.services.recent import Recent


@dataclass(frozen=True)
class Registered:
    key: SigningKey
    created: bool  # False when the same key was already registered


class SigningKeyService:
    def __init__(self, *, uow: UnitOfWorkFactory, clock: Clock, parse: PublicKeyParser) -> None:
        self._uow = uow
        self._clock = clock
        self._parse = parse
        self._live: Recent[UUID, list[SigningKey]] = Recent(clock, CACHE_TTL)

    async def register(self, *, partner_id: UUID, public_key: str) -> Registered:
        parsed = self._parse(public_key)
        async with self._uow(write=True) as uow:
            live = await uow.signing_keys.live(partner_id=partner_id, for_update=True)
            if not check_can_add(live, parsed.key_id):
                existing = next(k for k in live if k.key_id == parsed.key_id)
                return Registered(existing, created=False)
            key = SigningKey(partner_id, parsed, self._clock.now())
            await uow.signing_keys.add(key)
            self._changed(uow, partner_id)
            await uow.commit()
        return Registered(key, created=True)

    async def live(self, *, partner_id: UUID, fresh: bool = False) -> list[SigningKey]:
        """Read on every signed request, so remembered briefly (services/recent.py);
        `fresh` skips the memo (a key registered a moment ago through another replica)."""
        if fresh:
            self._live.forget(partner_id)
        return await self._live.get(partner_id, lambda: self._load(partner_id))

    async def _load(self, partner_id: UUID) -> list[SigningKey]:
        async with self._uow() as uow:
            return await uow.signing_keys.live(partner_id=partner_id)

    async def delete(self, *, partner_id: UUID, key_id: str) -> None:
        async with self._uow(write=True) as uow:
            if not await uow.signing_keys.delete(partner_id=partner_id, key_id=key_id):
                raise SigningKeyNotFound()
            self._changed(uow, partner_id)
            await uow.commit()

    def _changed(self, uow: UnitOfWork, partner_id: UUID) -> None:
        # Forgotten here once committed (an idempotent request commits later than `commit`
        # returns: forgetting earlier let a read in between remember the old keys), and on
        # the other replicas by notification.
        uow.after_commit(lambda: self.invalidate(partner_id))
        uow.credentials_changed(partner_id)

    def invalidate(self, partner_id: UUID) -> None:
        """Forget the partner's remembered keys: they have changed."""
        self._live.forget(partner_id)

    def invalidate_all(self) -> None:
        """Forget every partner's remembered keys (changes may have gone unheard)."""
        self._live.forget_all()
