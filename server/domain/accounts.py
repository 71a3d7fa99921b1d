"""Accounts and cards, and the cascade that deactivation and activation apply to them.

Every deactivation records its `InactiveCause`; an activation restores exactly the entities
whose cause is that same activation's subject. So an account the partner switched off on its
own stays off when its customer comes back.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from server.domain.customer import Customer
from server.domain.errors import InvalidStateTransition
from server.domain.lifecycle import StatusChanged


class EntityStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class InactiveCause(enum.StrEnum):
    PARTNER = "partner"  # deactivated by its own call
    ACCOUNT = "account"  # cascaded from its account's deactivation (cards only)
    CUSTOMER = "customer"  # cascaded from its customer's deactivation
    OPERATOR = "operator"  # cascaded from the operator's suspension or rejection


class AccountType(enum.StrEnum):
    CARD_ACCOUNT = "card_account"


class CardType(enum.StrEnum):
    VIRTUAL = "virtual"
    PHYSICAL = "physical"


@dataclass(kw_only=True)
class _Switchable:
    """What accounts and cards share: an active/inactive switch that remembers why."""

    id: UUID
    partner_id: UUID
    status: EntityStatus
    created_at: datetime
    updated_at: datetime
    inactive_cause: InactiveCause | None = None
    changes: list[StatusChanged] = field(default_factory=list, repr=False, compare=False)

    entity_name = "entity"

    def switch_off(self, cause: InactiveCause, now: datetime) -> bool:
        if self.status is EntityStatus.INACTIVE:
            return False
        self._move(EntityStatus.INACTIVE, cause, now)
        return True

    def switch_on(self, now: datetime, *, restoring: InactiveCause | None = None) -> bool:
        """Turns on; with `restoring`, only if that cause is what turned it off."""
        if self.status is EntityStatus.ACTIVE:
            return False
        if restoring is not None and self.inactive_cause is not restoring:
            return False
        self._move(EntityStatus.ACTIVE, None, now)
        return True

    def _move(self, to: EntityStatus, cause: InactiveCause | None, now: datetime) -> None:
        why = f"deactivated ({cause.value})" if cause else "activated"
        self.changes.append(
            StatusChanged(self.entity_name, self.id, self.status.value, to.value, why, now)
        )
        self.status = to
        self.inactive_cause = cause
        self.updated_at = now


@dataclass(kw_only=True)
class Account(_Switchable):
    customer_id: UUID
    type: AccountType
    currencies: list[str]

    entity_name = "account"


@dataclass(kw_only=True)
class Card(_Switchable):
    account_id: UUID
    customer_id: UUID
    type: CardType
    network: str
    masked_pan: str

    entity_name = "card"


def sandbox_masked_pan() -> str:
    """A Visa test BIN with random last four: the sandbox issues no real PANs."""
    return f"424242******{secrets.randbelow(10_000):04d}"


def require_active_customer(customer: Customer, action: str) -> None:
    if not customer.is_active:
        raise InvalidStateTransition("customer", action, customer.status.value)


def require_active_account(account: Account, action: str) -> None:
    if account.status is not EntityStatus.ACTIVE:
        raise InvalidStateTransition("account", action, account.status.value)


def deactivate_customer(
    customer: Customer, accounts: Iterable[Account], cards: Iterable[Card], now: datetime
) -> bool:
    """Customer off, and with it every active account and card it owns."""
    if not customer.deactivate(now):
        return False
    for entity in [*accounts, *cards]:
        entity.switch_off(InactiveCause.CUSTOMER, now)
    return True


def activate_customer(
    customer: Customer, accounts: Iterable[Account], cards: Iterable[Card], now: datetime
) -> bool:
    """Customer on, and exactly what its deactivation switched off."""
    if not customer.activate(now):
        return False
    for entity in [*accounts, *cards]:
        entity.switch_on(now, restoring=InactiveCause.CUSTOMER)
    return True


def suspend_customer(
    customer: Customer,
    accounts: Iterable[Account],
    cards: Iterable[Card],
    reason: str,
    now: datetime,
) -> bool:
    """Operator suspension: customer off, and with it every active account and card."""
    if not customer.suspend(reason, now):
        return False
    for entity in [*accounts, *cards]:
        entity.switch_off(InactiveCause.OPERATOR, now)
    return True


def reinstate_customer(
    customer: Customer, accounts: Iterable[Account], cards: Iterable[Card], now: datetime
) -> bool:
    """Customer on, and exactly what the suspension switched off. While it stood nothing
    else could turn them on or off: the partner cannot activate the customer, nor anything
    of an inactive customer, and switching off what is off changes nothing."""
    customer.reinstate(now)
    for entity in [*accounts, *cards]:
        entity.switch_on(now, restoring=InactiveCause.OPERATOR)
    return True


def reject_customer(
    customer: Customer, accounts: Iterable[Account], cards: Iterable[Card], now: datetime
) -> bool:
    """Operator rejection: final for the customer; its active accounts and cards go off."""
    customer.reject_by_operator(now)
    for entity in [*accounts, *cards]:
        entity.switch_off(InactiveCause.OPERATOR, now)
    return True


def deactivate_account(account: Account, cards: Iterable[Card], now: datetime) -> bool:
    if not account.switch_off(InactiveCause.PARTNER, now):
        return False
    for card in cards:
        card.switch_off(InactiveCause.ACCOUNT, now)
    return True


def activate_account(
    customer: Customer, account: Account, cards: Iterable[Card], now: datetime
) -> bool:
    if account.status is EntityStatus.ACTIVE:
        return False
    require_active_customer(customer, "activate an account of")
    account.switch_on(now)
    for card in cards:
        card.switch_on(now, restoring=InactiveCause.ACCOUNT)
    return True


def activate_card(customer: Customer, account: Account, card: Card, now: datetime) -> bool:
    if card.status is EntityStatus.ACTIVE:
        return False
    require_active_customer(customer, "activate a card of")
    require_active_account(account, "activate a card of")
    return card.switch_on(now)
