"""SigningKeyService over fakes: the registration rules and who hears of a change."""

from __future__ import annotations

import pytest

from server.domain.signing_keys import (
    InvalidSigningKey,
    SigningKeyLimitReached,
    SigningKeyNotFound,
)
from tests.fakes.world import FakeWorld


async def test_registering_a_live_key_again_changes_nothing(world: FakeWorld) -> None:
    partner, keys = world.partner(), world.container.signing_keys
    first = await keys.register(partner_id=partner, public_key="ed25519:a")
    again = await keys.register(partner_id=partner, public_key="ed25519:a")
    assert first.created and not again.created
    assert again.key == first.key
    assert world.uow.store.commits == 1
    assert [k.key_id for k in await keys.live(partner_id=partner)] == ["kid-a"]


async def test_a_partner_holds_at_most_two_keys(world: FakeWorld) -> None:
    partner, keys = world.partner(), world.container.signing_keys
    await keys.register(partner_id=partner, public_key="ed25519:a")
    await keys.register(partner_id=partner, public_key="ed25519:b")
    with pytest.raises(SigningKeyLimitReached):
        await keys.register(partner_id=partner, public_key="ed25519:c")
    # Another partner's keys are its own.
    assert (await keys.register(partner_id=world.partner(), public_key="ed25519:c")).created


async def test_a_key_the_parser_refuses_is_an_invalid_signing_key(world: FakeWorld) -> None:
    with pytest.raises(InvalidSigningKey) as refused:
        await world.container.signing_keys.register(partner_id=world.partner(), public_key="rsa:a")
    assert refused.value.metadata == {"field": "publicKey"}
    assert world.uow.store.commits == 0


async def test_deleting_an_unknown_key_is_not_found(world: FakeWorld) -> None:
    with pytest.raises(SigningKeyNotFound):
        await world.container.signing_keys.delete(partner_id=world.partner(), key_id="kid-x")


async def test_a_change_is_announced_and_the_remembered_keys_are_forgotten_on_commit(
    world: FakeWorld,
) -> None:
    partner, keys = world.partner(), world.container.signing_keys
    await keys.register(partner_id=partner, public_key="ed25519:a")
    assert [k.key_id for k in await keys.live(partner_id=partner)] == ["kid-a"]  # remembered
    await keys.register(partner_id=partner, public_key="ed25519:b")
    assert [k.key_id for k in await keys.live(partner_id=partner)] == ["kid-a", "kid-b"]
    await keys.delete(partner_id=partner, key_id="kid-a")
    assert [k.key_id for k in await keys.live(partner_id=partner)] == ["kid-b"]
    # Every change tells the other replicas (NOTIFY partner_credentials on PostgreSQL).
    assert world.uow.store.credentials_changed == [partner, partner, partner]
