"""KycService and AuthService over fakes: partner callbacks, tokens and rotation."""

from __future__ import annotations

import pytest

from server.domain.customer import CustomerStatus
from server.domain.errors import InvalidCredentials, KycSessionNotFound, Unauthenticated
from tests.fakes.world import FakeWorld
from tests.unit.services.conftest import signed_customer


async def test_a_kyc_approval_activates_a_verifying_customer_once(world: FakeWorld) -> None:
    customer = await signed_customer(world, world.partner())
    body = f"{customer.kyc_session_id}:approved:event-1".encode()
    await world.container.kyc.receive_callback(body=body, headers={})
    assert world.uow.tables.customers[customer.id].status is CustomerStatus.ACTIVE
    commits = world.uow.store.commits
    # The partner resends, and then changes its mind: a decided KYC is acknowledged only.
    await world.container.kyc.receive_callback(body=body, headers={})
    rejected = f"{customer.kyc_session_id}:rejected:event-2".encode()
    await world.container.kyc.receive_callback(body=rejected, headers={})
    assert world.uow.store.commits == commits
    assert world.uow.tables.customers[customer.id].status is CustomerStatus.ACTIVE


async def test_a_callback_for_an_unknown_session_is_not_found(world: FakeWorld) -> None:
    with pytest.raises(KycSessionNotFound):
        await world.container.kyc.receive_callback(body=b"session-x:approved:e", headers={})


async def test_a_token_speaks_for_its_partner_until_the_credentials_rotate(
    world: FakeWorld,
) -> None:
    auth = world.container.auth
    made = await auth.create_partner("rotating")
    token = await auth.issue_token(api_key=str(made.api_key), api_secret=made.api_secret)
    assert await auth.authenticate(token.token) == made.partner_id
    rotated = await auth.rotate_credentials(partner_id=made.partner_id)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(token.token)
    with pytest.raises(InvalidCredentials):
        await auth.issue_token(api_key=str(made.api_key), api_secret=made.api_secret)
    fresh = await auth.issue_token(api_key=str(rotated.api_key), api_secret=rotated.api_secret)
    assert await auth.authenticate(fresh.token) == made.partner_id
    assert world.uow.store.credentials_changed == [made.partner_id]


async def test_a_token_expires_with_its_ttl(world: FakeWorld) -> None:
    auth = world.container.auth
    made = await auth.create_partner("expiring")
    token = await auth.issue_token(api_key=str(made.api_key), api_secret=made.api_secret)
    world.clock.advance(seconds=world.container.settings.token_ttl_seconds)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(token.token)
