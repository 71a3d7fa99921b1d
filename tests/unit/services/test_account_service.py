"""AccountService over fakes: what an account or card needs, and the account cascade."""

from __future__ import annotations

import pytest

from server.domain.accounts import AccountType, CardType, EntityStatus, InactiveCause
from server.domain.errors import InvalidField, InvalidStateTransition
from tests.fakes.world import FakeWorld
from tests.unit.services.conftest import active_customer, euro_card_account, signed_customer


async def test_an_account_needs_an_active_customer(world: FakeWorld) -> None:
    partner = world.partner()
    customer = await signed_customer(world, partner)  # verifying
    with pytest.raises(InvalidStateTransition):
        await euro_card_account(world, partner, customer)
    assert world.uow.tables.accounts == {}


async def test_an_account_needs_a_type_and_currency_codes(world: FakeWorld) -> None:
    partner = world.partner()
    customer = await active_customer(world, partner)
    with pytest.raises(InvalidField):
        await world.container.accounts.create_account(
            partner_id=partner, customer_id=str(customer.id), type=None, currencies=["EUR"]
        )
    with pytest.raises(InvalidField):
        await world.container.accounts.create_account(
            partner_id=partner,
            customer_id=str(customer.id),
            type=AccountType.CARD_ACCOUNT,
            currencies=["euro"],
        )


async def test_account_deactivation_cascades_and_activation_restores_only_those_cards(
    world: FakeWorld,
) -> None:
    partner = world.partner()
    customer = await active_customer(world, partner)
    accounts = world.container.accounts
    account = await euro_card_account(world, partner, customer)
    cascaded = await accounts.create_card(
        partner_id=partner, account_id=str(account.id), type=CardType.VIRTUAL
    )
    own = await accounts.create_card(
        partner_id=partner, account_id=str(account.id), type=CardType.VIRTUAL
    )
    await accounts.deactivate_card(partner_id=partner, card_id=str(own.id))
    await accounts.deactivate_account(partner_id=partner, account_id=str(account.id))
    cards = world.uow.tables.cards
    assert cards[cascaded.id].inactive_cause is InactiveCause.ACCOUNT
    assert cards[own.id].inactive_cause is InactiveCause.PARTNER

    await accounts.activate_account(partner_id=partner, account_id=str(account.id))
    cards = world.uow.tables.cards
    assert world.uow.tables.accounts[account.id].status is EntityStatus.ACTIVE
    assert cards[cascaded.id].status is EntityStatus.ACTIVE
    assert cards[own.id].status is EntityStatus.INACTIVE


async def test_a_card_is_not_activated_on_an_inactive_account(world: FakeWorld) -> None:
    partner = world.partner()
    customer = await active_customer(world, partner)
    accounts = world.container.accounts
    account = await euro_card_account(world, partner, customer)
    card = await accounts.create_card(
        partner_id=partner, account_id=str(account.id), type=CardType.PHYSICAL
    )
    await accounts.deactivate_card(partner_id=partner, card_id=str(card.id))
    await accounts.deactivate_account(partner_id=partner, account_id=str(account.id))
    with pytest.raises(InvalidStateTransition):
        await accounts.activate_card(partner_id=partner, card_id=str(card.id))
    with pytest.raises(InvalidStateTransition):
        await accounts.create_card(
            partner_id=partner, account_id=str(account.id), type=CardType.VIRTUAL
        )


async def test_nothing_of_an_inactive_customer_can_be_switched_on(world: FakeWorld) -> None:
    partner = world.partner()
    customer = await active_customer(world, partner)
    accounts = world.container.accounts
    account = await euro_card_account(world, partner, customer)
    await world.container.customers.deactivate(partner_id=partner, customer_id=str(customer.id))
    with pytest.raises(InvalidStateTransition):
        await accounts.activate_account(partner_id=partner, account_id=str(account.id))
