"""The operator's rules on a customer and its accounts and cards: suspension (the partner
cannot lift it), exact restore on reinstate, rejection is final."""

from __future__ import annotations

import uuid

import pytest

from server.domain import accounts as cascade
from server.domain.accounts import Account, AccountType, Card, CardType, EntityStatus, InactiveCause
from server.domain.customer import CustomerStatus
from server.domain.errors import CustomerSuspended, InvalidField, InvalidStateTransition
from server.domain.operator import validate_reason
from tests.unit.test_customer_lifecycle import T0, at, customer

S = CustomerStatus


def account(customer_id: uuid.UUID, partner_id: uuid.UUID) -> Account:
    return Account(
        id=uuid.uuid4(),
        partner_id=partner_id,
        customer_id=customer_id,
        type=AccountType.CARD_ACCOUNT,
        currencies=["EUR"],
        status=EntityStatus.ACTIVE,
        created_at=T0,
        updated_at=T0,
    )


def card(of: Account) -> Card:
    return Card(
        id=uuid.uuid4(),
        partner_id=of.partner_id,
        account_id=of.id,
        customer_id=of.customer_id,
        type=CardType.VIRTUAL,
        network="visa",
        masked_pan="424242******0000",
        status=EntityStatus.ACTIVE,
        created_at=T0,
        updated_at=T0,
    )


def test_reinstate_restores_exactly_what_the_suspension_switched_off() -> None:
    c = customer(S.ACTIVE)
    kept, own = account(c.id, c.partner_id), account(c.id, c.partner_id)
    kept_card, own_card = card(kept), card(own)
    cascade.deactivate_account(own, [own_card], at(1))  # the partner's own, before
    assert cascade.suspend_customer(c, [kept, own], [kept_card, own_card], "review", at(2))
    assert c.status is S.INACTIVE and c.suspension_reason == "review"
    assert kept.inactive_cause is InactiveCause.OPERATOR
    assert own.inactive_cause is InactiveCause.PARTNER  # untouched
    with pytest.raises(CustomerSuspended, match="review"):
        cascade.activate_customer(c, [kept, own], [kept_card, own_card], at(3))
    assert not c.deactivate(at(3))  # already inactive: the partner's deactivate is a no-op
    assert not cascade.suspend_customer(c, [kept], [kept_card], "again", at(3))  # no-op
    cascade.reinstate_customer(c, [kept, own], [kept_card, own_card], at(4))
    assert c.status is S.ACTIVE and c.suspension_reason is None
    assert kept.status is EntityStatus.ACTIVE and kept_card.status is EntityStatus.ACTIVE
    assert own.status is EntityStatus.INACTIVE and own_card.status is EntityStatus.INACTIVE
    assert [x.cause for x in c.changes] == [
        "suspended by the operator",
        "reinstated by the operator",
    ]


@pytest.mark.parametrize("status", [S.INITIATING, S.VERIFYING, S.INACTIVE, S.REJECTED])
def test_only_an_active_customer_can_be_suspended(status: CustomerStatus) -> None:
    with pytest.raises(InvalidStateTransition):
        customer(status).suspend("why", at(1))


def test_reinstating_a_customer_that_is_not_suspended_is_a_conflict() -> None:
    c = customer(S.ACTIVE)
    c.deactivate(at(1))  # the partner's deactivation is not the operator's to undo
    with pytest.raises(InvalidStateTransition):
        cascade.reinstate_customer(c, [], [], at(2))


@pytest.mark.parametrize("status", [S.INITIATING, S.ACTIVE, S.INACTIVE])
def test_rejection_is_final_from_any_state_and_switches_everything_off(
    status: CustomerStatus,
) -> None:
    c = customer(status)
    a = account(c.id, c.partner_id)
    k = card(a)
    cascade.reject_customer(c, [a], [k], at(1))
    assert c.status is S.REJECTED
    assert a.status is EntityStatus.INACTIVE and k.status is EntityStatus.INACTIVE
    with pytest.raises(InvalidStateTransition):
        cascade.reject_customer(c, [a], [k], at(2))
    with pytest.raises(InvalidStateTransition):
        c.activate(at(2))


def test_a_suspended_customer_can_still_be_rejected() -> None:
    c = customer(S.ACTIVE)
    c.suspend("review", at(1))
    cascade.reject_customer(c, [], [], at(2))
    assert c.status is S.REJECTED and c.suspension_reason is None


@pytest.mark.parametrize("bad", ["", "  ", "x" * 501, "line\nbreak"])
def test_a_reason_is_required_printable_and_short(bad: str) -> None:
    with pytest.raises(InvalidField):
        validate_reason(bad)
    assert validate_reason("  fraud ring  ") == "fraud ring"
