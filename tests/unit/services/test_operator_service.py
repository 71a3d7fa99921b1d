"""OperatorService over fakes: suspend, reinstate and reject, with their cascade and audit."""

from __future__ import annotations

import pytest

from server.domain.accounts import CardType, EntityStatus, InactiveCause
from server.domain.customer import Customer, CustomerStatus
from server.domain.errors import (
    CustomerNotFound,
    CustomerSuspended,
    InvalidField,
    InvalidStateTransition,
)
from server.domain.operator import OperatorAction
from tests.fakes.world import FakeWorld
from tests.unit.services.conftest import active_customer, euro_card_account, signed_customer

PRINCIPAL = "risk-engine"


async def _act(world: FakeWorld, action: OperatorAction, customer: Customer) -> Customer:
    return await world.container.operator.act(
        principal=PRINCIPAL, action=action, customer_id=str(customer.id), reason="monitoring"
    )


async def test_a_suspension_switches_everything_off_and_only_reinstate_lifts_it(
    world: FakeWorld,
) -> None:
    partner = world.partner()
    customer = await active_customer(world, partner)
    accounts = world.container.accounts
    account = await euro_card_account(world, partner, customer)
    card = await accounts.create_card(
        partner_id=partner, account_id=str(account.id), type=CardType.VIRTUAL
    )
    off = await accounts.create_card(
        partner_id=partner, account_id=str(account.id), type=CardType.VIRTUAL
    )
    await accounts.deactivate_card(partner_id=partner, card_id=str(off.id))

    suspended = await _act(world, OperatorAction.SUSPEND, customer)
    assert suspended.status is CustomerStatus.INACTIVE
    assert suspended.suspension_reason == "monitoring"
    tables = world.uow.tables
    assert tables.accounts[account.id].inactive_cause is InactiveCause.OPERATOR
    assert tables.cards[card.id].inactive_cause is InactiveCause.OPERATOR
    assert tables.cards[off.id].inactive_cause is InactiveCause.PARTNER
    with pytest.raises(CustomerSuspended):
        await world.container.customers.activate(partner_id=partner, customer_id=str(customer.id))

    reinstated = await _act(world, OperatorAction.REINSTATE, customer)
    assert reinstated.status is CustomerStatus.ACTIVE
    tables = world.uow.tables
    assert tables.accounts[account.id].status is EntityStatus.ACTIVE
    assert tables.cards[card.id].status is EntityStatus.ACTIVE
    assert tables.cards[off.id].status is EntityStatus.INACTIVE
    audit = [(r.principal, r.action, r.entity_id) for r in tables.operator_actions]
    assert audit == [
        (PRINCIPAL, OperatorAction.SUSPEND, customer.id),
        (PRINCIPAL, OperatorAction.REINSTATE, customer.id),
    ]


async def test_suspending_twice_writes_nothing_the_second_time(world: FakeWorld) -> None:
    customer = await active_customer(world, world.partner())
    await _act(world, OperatorAction.SUSPEND, customer)
    commits = world.uow.store.commits
    await _act(world, OperatorAction.SUSPEND, customer)
    assert world.uow.store.commits == commits
    assert len(world.uow.tables.operator_actions) == 1


async def test_only_an_active_customer_is_suspended_and_only_a_suspended_one_reinstated(
    world: FakeWorld,
) -> None:
    customer = await signed_customer(world, world.partner())  # verifying
    with pytest.raises(InvalidStateTransition):
        await _act(world, OperatorAction.SUSPEND, customer)
    active = await active_customer(world, world.partner())
    with pytest.raises(InvalidStateTransition):
        await _act(world, OperatorAction.REINSTATE, active)
    assert world.uow.tables.operator_actions == []


async def test_a_rejection_is_final_from_any_state(world: FakeWorld) -> None:
    customer = await signed_customer(world, world.partner())
    rejected = await _act(world, OperatorAction.REJECT, customer)
    assert rejected.status is CustomerStatus.REJECTED
    with pytest.raises(InvalidStateTransition):
        await _act(world, OperatorAction.REJECT, customer)


async def test_an_action_needs_a_reason_and_a_known_customer(world: FakeWorld) -> None:
    customer = await active_customer(world, world.partner())
    with pytest.raises(InvalidField):
        await world.container.operator.act(
            principal=PRINCIPAL,
            action=OperatorAction.SUSPEND,
            customer_id=str(customer.id),
            reason="  ",
        )
    with pytest.raises(CustomerNotFound):
        await world.container.operator.act(
            principal=PRINCIPAL, action=OperatorAction.SUSPEND, customer_id="nope", reason="x"
        )
