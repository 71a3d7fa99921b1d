"""CustomerService over fakes: onboarding transitions, challenge re-issue, the cascade."""

from __future__ import annotations

import base64
import uuid

import pytest

from server.domain.accounts import AccountType, CardType, EntityStatus, InactiveCause
from server.domain.customer import CustomerStatus, KycVerdict
from server.domain.errors import (
    ChallengeAlreadySigned,
    ChallengeExpired,
    ChallengeRejected,
    CustomerAlreadyExists,
    CustomerNotFound,
    InvalidStateTransition,
    SandboxOnly,
    UnsupportedChain,
)
from tests.fakes.world import FakeWorld, fake_settings, fake_world
from tests.unit.services.conftest import (
    active_customer,
    euro_card_account,
    new_chain_id,
    signature,
    signed_customer,
)


async def test_a_new_customer_is_initiating_with_a_challenge_and_a_kyc_session(
    world: FakeWorld,
) -> None:
    partner = world.partner()
    chain_id = new_chain_id()
    created = await world.container.customers.create(
        partner_id=partner, chain_id=chain_id, external_id="user-1"
    )
    assert created.customer.status is CustomerStatus.INITIATING
    assert "Nonce: fakenonce00000001" in base64.b64decode(created.challenge).decode()
    assert created.verification_url.endswith(f"session-{created.customer.id}")
    assert world.kyc.sessions == [(partner, created.customer.id)]
    stored = world.uow.tables.customers[created.customer.id]
    assert stored.kyc_session_id == f"session-{created.customer.id}"
    assert world.uow.store.commits == 1


async def test_a_wallet_already_onboarded_is_refused_before_the_kyc_partner_is_called(
    world: FakeWorld,
) -> None:
    partner, chain_id = world.partner(), new_chain_id()
    customers = world.container.customers
    await customers.create(partner_id=partner, chain_id=chain_id, external_id="a")
    with pytest.raises(CustomerAlreadyExists) as refused:
        # The same wallet in upper case: addresses compare case-insensitively.
        upper = "eip155:1:0x" + chain_id.removeprefix("eip155:1:0x").upper()
        await customers.create(partner_id=partner, chain_id=upper, external_id="b")
    assert refused.value.metadata == {"field": "chainId"}
    with pytest.raises(CustomerAlreadyExists) as again:
        await customers.create(partner_id=partner, chain_id=new_chain_id(), external_id="a")
    assert again.value.metadata == {"field": "externalId"}
    assert len(world.kyc.sessions) == 1
    # Another partner may onboard the same wallet.
    await customers.create(partner_id=world.partner(), chain_id=chain_id, external_id="a")


async def test_signing_the_challenge_passes_screening_and_waits_for_kyc(world: FakeWorld) -> None:
    customer = await signed_customer(world, world.partner())
    assert customer.status is CustomerStatus.VERIFYING
    assert world.screener.screened == [customer.chain_id]
    changes = [(c.from_status, c.to_status) for c in world.uow.tables.status_changes]
    assert changes == [("initiating", "screening"), ("screening", "verifying")]


async def test_a_denied_wallet_is_rejected_at_screening(world: FakeWorld) -> None:
    chain_id, partner = new_chain_id(), world.partner()
    customers = world.container.customers
    created = await customers.create(partner_id=partner, chain_id=chain_id, external_id="x")
    world.screener.denied.add(created.customer.chain_id)  # screened in its EIP-55 form
    await customers.sign_challenge(
        partner_id=partner,
        customer_id=str(created.customer.id),
        signature=signature(world, created.challenge, chain_id),
        signer=chain_id,
        challenge=created.challenge,
    )
    got = await customers.get(partner_id=partner, customer_id=str(created.customer.id))
    assert got.status is CustomerStatus.REJECTED


async def test_a_wrong_signature_is_rejected_and_a_new_challenge_is_issued(
    world: FakeWorld,
) -> None:
    partner, chain_id = world.partner(), new_chain_id()
    customers = world.container.customers
    created = await customers.create(partner_id=partner, chain_id=chain_id, external_id="x")
    with pytest.raises(ChallengeRejected):
        await customers.sign_challenge(
            partner_id=partner,
            customer_id=str(created.customer.id),
            signature=signature(world, created.challenge, new_chain_id()),  # another wallet
            signer=chain_id,
            challenge=created.challenge,
        )
    stored = world.uow.tables.customers[created.customer.id]
    assert stored.status is CustomerStatus.INITIATING
    assert base64.b64encode(stored.challenge_message.encode()).decode() != created.challenge
    # The old challenge is not the current one any more, even signed correctly.
    with pytest.raises(ChallengeRejected):
        await customers.sign_challenge(
            partner_id=partner,
            customer_id=str(created.customer.id),
            signature=signature(world, created.challenge, chain_id),
            signer=chain_id,
            challenge=created.challenge,
        )


async def test_an_expired_challenge_is_refused_and_replaced(world: FakeWorld) -> None:
    partner, chain_id = world.partner(), new_chain_id()
    customers = world.container.customers
    created = await customers.create(partner_id=partner, chain_id=chain_id, external_id="x")
    world.clock.advance(days=2)
    with pytest.raises(ChallengeExpired):
        await customers.sign_challenge(
            partner_id=partner,
            customer_id=str(created.customer.id),
            signature=signature(world, created.challenge, chain_id),
            signer=chain_id,
            challenge=created.challenge,
        )
    current = await customers.current_challenge(
        partner_id=partner, customer_id=str(created.customer.id)
    )
    assert current.challenge != created.challenge
    assert current.expires_at > world.clock.now()


async def test_the_current_challenge_is_kept_while_valid_and_reissued_once_expired(
    world: FakeWorld,
) -> None:
    partner = world.partner()
    customers = world.container.customers
    created = await customers.create(partner_id=partner, chain_id=new_chain_id(), external_id="x")
    customer_id = str(created.customer.id)
    first = await customers.current_challenge(partner_id=partner, customer_id=customer_id)
    assert first.challenge == created.challenge
    commits = world.uow.store.commits
    assert (await customers.current_challenge(partner_id=partner, customer_id=customer_id)) == first
    assert world.uow.store.commits == commits  # nothing written while it is current
    world.clock.advance(seconds=(first.expires_at - world.clock.now()).total_seconds())
    renewed = await customers.current_challenge(partner_id=partner, customer_id=customer_id)
    assert renewed.challenge != first.challenge
    assert world.uow.store.commits == commits + 1


async def test_a_signed_challenge_cannot_be_signed_again(world: FakeWorld) -> None:
    partner = world.partner()
    customer = await signed_customer(world, partner)
    with pytest.raises(ChallengeAlreadySigned):
        await world.container.customers.sign_challenge(
            partner_id=partner,
            customer_id=str(customer.id),
            signature=base64.b64encode(b"x").decode(),
            signer=customer.chain_id,
            challenge=base64.b64encode(b"x").decode(),
        )


async def test_a_non_evm_customer_is_stored_but_gets_no_challenge(world: FakeWorld) -> None:
    partner = world.partner()
    chain_id = (
        "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp:7S3P4HxJpyyigGzodYwHtCxZyUQe9JiBMHyRWXArAaKv"
    )
    created = await world.container.customers.create(
        partner_id=partner, chain_id=chain_id, external_id="sol"
    )
    assert created.challenge == ""
    with pytest.raises(UnsupportedChain):
        await world.container.customers.current_challenge(
            partner_id=partner, customer_id=str(created.customer.id)
        )


async def test_a_kyc_verdict_that_arrives_early_waits_for_verifying(world: FakeWorld) -> None:
    partner = world.partner()
    customers = world.container.customers
    chain_id = new_chain_id()
    created = await customers.create(partner_id=partner, chain_id=chain_id, external_id="x")
    customer_id = str(created.customer.id)
    await customers.record_kyc_verdict(
        partner_id=partner, customer_id=customer_id, verdict=KycVerdict.APPROVED
    )
    assert (await customers.get(partner_id=partner, customer_id=customer_id)).status is (
        CustomerStatus.INITIATING
    )
    await customers.sign_challenge(
        partner_id=partner,
        customer_id=customer_id,
        signature=signature(world, created.challenge, chain_id),
        signer=chain_id,
        challenge=created.challenge,
    )
    assert (await customers.get(partner_id=partner, customer_id=customer_id)).status is (
        CustomerStatus.ACTIVE
    )


async def test_only_an_inactive_customer_can_be_activated(world: FakeWorld) -> None:
    partner = world.partner()
    customer = await signed_customer(world, partner)
    with pytest.raises(InvalidStateTransition) as refused:
        await world.container.customers.activate(partner_id=partner, customer_id=str(customer.id))
    assert "verifying" in str(refused.value)


async def test_deactivation_cascades_and_activation_restores_exactly_what_it_switched_off(
    world: FakeWorld,
) -> None:
    partner = world.partner()
    customer = await active_customer(world, partner)
    accounts = world.container.accounts
    kept_on = await euro_card_account(world, partner, customer)
    turned_off = await accounts.create_account(
        partner_id=partner,
        customer_id=str(customer.id),
        type=AccountType.CARD_ACCOUNT,
        currencies=["USD"],
    )
    card = await accounts.create_card(
        partner_id=partner, account_id=str(kept_on.id), type=CardType.VIRTUAL
    )
    card_off = await accounts.create_card(
        partner_id=partner, account_id=str(kept_on.id), type=CardType.PHYSICAL
    )
    await accounts.deactivate_account(partner_id=partner, account_id=str(turned_off.id))
    await accounts.deactivate_card(partner_id=partner, card_id=str(card_off.id))

    await world.container.customers.deactivate(partner_id=partner, customer_id=str(customer.id))
    tables = world.uow.tables
    assert tables.customers[customer.id].status is CustomerStatus.INACTIVE
    assert tables.accounts[kept_on.id].inactive_cause is InactiveCause.CUSTOMER
    assert tables.cards[card.id].inactive_cause is InactiveCause.CUSTOMER
    # What the partner switched off itself keeps its own cause.
    assert tables.accounts[turned_off.id].inactive_cause is InactiveCause.PARTNER
    assert tables.cards[card_off.id].inactive_cause is InactiveCause.PARTNER

    await world.container.customers.activate(partner_id=partner, customer_id=str(customer.id))
    tables = world.uow.tables
    assert tables.customers[customer.id].status is CustomerStatus.ACTIVE
    assert tables.accounts[kept_on.id].status is EntityStatus.ACTIVE
    assert tables.cards[card.id].status is EntityStatus.ACTIVE
    assert tables.accounts[turned_off.id].status is EntityStatus.INACTIVE
    assert tables.cards[card_off.id].status is EntityStatus.INACTIVE


async def test_deactivating_an_inactive_customer_writes_nothing(world: FakeWorld) -> None:
    partner = world.partner()
    customer = await active_customer(world, partner)
    customers = world.container.customers
    await customers.deactivate(partner_id=partner, customer_id=str(customer.id))
    commits, events = world.uow.store.commits, len(world.uow.tables.events)
    await customers.deactivate(partner_id=partner, customer_id=str(customer.id))
    assert (world.uow.store.commits, len(world.uow.tables.events)) == (commits, events)


async def test_every_change_is_one_numbered_event_per_partner(world: FakeWorld) -> None:
    partner = world.partner()
    customer = await active_customer(world, partner)
    events = [e for e in world.uow.tables.events if e.entity_id == customer.id]
    # created, signed (screening + verifying in one save), approved
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[-1].payload == {"id": str(customer.id), "status": "active"}


async def test_customers_of_another_partner_and_non_uuid_ids_are_not_found(
    world: FakeWorld,
) -> None:
    customer = await signed_customer(world, world.partner())
    customers = world.container.customers
    with pytest.raises(CustomerNotFound):
        await customers.get(partner_id=world.partner(), customer_id=str(customer.id))
    with pytest.raises(CustomerNotFound):
        await customers.get(partner_id=customer.partner_id, customer_id="not-a-uuid")
    with pytest.raises(CustomerNotFound):
        await customers.get(partner_id=customer.partner_id, customer_id=str(uuid.uuid4()))


async def test_the_simulator_answers_sandbox_only_in_production() -> None:
    world = await fake_world(
        fake_settings(env="production", kyc_webhook_secret="a-production-secret-value")
    )
    partner = world.partner()
    created = await world.container.customers.create(
        partner_id=partner, chain_id=new_chain_id(), external_id="x"
    )
    with pytest.raises(SandboxOnly):
        await world.container.customers.simulate_kyc(
            partner_id=partner, customer_id=str(created.customer.id), approved=True
        )
