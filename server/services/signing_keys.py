"""Registering, listing and deleting a partner's request-signing keys."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from server.domain.signing_keys import (
    InvalidSigningKey,
    SigningKey,
    SigningKeyNotFound,
    check_can_add,
)
from server.services.ports import Clock, PublicKeyParser, UnitOfWorkFactory


@dataclass(frozen=True)
class Registered:
    key: SigningKey
    created: bool  # False when the same key was already registered


class SigningKeyService:
    def __init__(self, *, uow: UnitOfWorkFactory, clock: Clock, parse: PublicKeyParser) -> None:
        self._uow = uow
        self._clock = clock
        self._parse = parse

    async def register(self, *, partner_id: UUID, public_key: str) -> Registered:
        try:
            parsed = self._parse(public_key)
        except ValueError as exc:
            raise InvalidSigningKey(str(exc)) from None
        async with self._uow(write=True) as uow:
            live = await uow.signing_keys.live(partner_id=partner_id)
            if not check_can_add(live, parsed.key_id):
                existing = next(k for k in live if k.key_id == parsed.key_id)
                return Registered(existing, created=False)
            key = SigningKey(
                partner_id, parsed.key_id, parsed.algorithm, parsed.pem, self._clock.now()
            )
            await uow.signing_keys.add(key)
            await uow.commit()
            return Registered(key, created=True)

    async def live(self, *, partner_id: UUID) -> list[SigningKey]:
        async with self._uow() as uow:
            return await uow.signing_keys.live(partner_id=partner_id)

    async def delete(self, *, partner_id: UUID, key_id: str) -> None:
        async with self._uow(write=True) as uow:
            if not await uow.signing_keys.delete(partner_id=partner_id, key_id=key_id):
                raise SigningKeyNotFound()
            await uow.commit()
