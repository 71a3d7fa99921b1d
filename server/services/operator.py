"""The programme operator's use cases (internal service principals, SPEC section 13): read
any partner's customers, accounts and cards; suspend, reinstate and reject customers.

Every read starts with the one cross-partner question "whose is this id?" and then uses
the same partner-scoped repository calls as a partner's own request would. Every action
that changes a customer commits, in one transaction, the change, its cascade, their events
(so partners' webhooks and streams see it) and the audit row naming the principal. An
action that changes nothing (suspending a suspended customer) writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from server.domain import accounts as cascade
from server.domain.accounts import Account, Card
from server.domain.customer import Customer, CustomerStatus
from server.domain.errors import AccountNotFound, CardNotFound, CustomerNotFound, InvalidField
from server.domain.identifiers import parse_id
from server.domain.operator import OperatorAction, OperatorActionRecord, validate_reason
from server.services.paging import Page, decode_cursor, encode_cursor, page_size
from server.services.ports import Clock, UnitOfWork, UnitOfWorkFactory

# An action's rule over the customer and what it owns: True when anything changed.
ActionRule = Callable[[Customer, list[Account], list[Card], str, datetime], bool]

_RULES: dict[OperatorAction, ActionRule] = {
    OperatorAction.SUSPEND: cascade.suspend_customer,
    OperatorAction.REINSTATE: lambda c, a, k, _reason, now: cascade.reinstate_customer(
        c, a, k, now
    ),
    OperatorAction.REJECT: lambda c, a, k, _reason, now: cascade.reject_customer(c, a, k, now),
}


class OperatorService:
    def __init__(self, *, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    # -- reads ---------------------------------------------------------------------------
    async def get_customer(self, *, customer_id: str) -> Customer:
        async with self._uow() as uow:
            return await _customer(uow, parse_id(customer_id, CustomerNotFound))

    async def list_customers(
        self, *, partner_id: str, size: int, token: str, status: CustomerStatus | None
    ) -> Page[Customer]:
        try:
            partner = UUID(partner_id)
        except ValueError:
            raise InvalidField("partnerId", "partnerId must be a partner's UUID") from None
        limit, after = page_size(size), decode_cursor(token)
        async with self._uow() as uow:
            rows = await uow.customers.list(
                partner_id=partner, limit=limit + 1, after=after, status=status, external_id=None
            )
        return Page.of(rows, limit, lambda c: encode_cursor(c.created_at, c.id))

    async def get_account(self, *, account_id: str) -> Account:
        async with self._uow() as uow:
            return await _account(uow, parse_id(account_id, AccountNotFound))

    async def list_accounts(self, *, customer_id: str, size: int, token: str) -> Page[Account]:
        limit, after = page_size(size), decode_cursor(token)
        async with self._uow() as uow:
            customer = await _customer(uow, parse_id(customer_id, CustomerNotFound))
            rows = await uow.accounts.list(
                partner_id=customer.partner_id,
                customer_id=customer.id,
                limit=limit + 1,
                after=after,
            )
        return Page.of(rows, limit, lambda a: encode_cursor(a.created_at, a.id))

    async def get_card(self, *, card_id: str) -> Card:
        async with self._uow() as uow:
            card_uuid = parse_id(card_id, CardNotFound)
            owner = await uow.cards.partner_of(card_uuid)
            card = (
                None if owner is None else await uow.cards.get(partner_id=owner, card_id=card_uuid)
            )
            if card is None:
                raise CardNotFound()
            return card

    async def list_cards(self, *, account_id: str, size: int, token: str) -> Page[Card]:
        limit, after = page_size(size), decode_cursor(token)
        async with self._uow() as uow:
            account = await _account(uow, parse_id(account_id, AccountNotFound))
            rows = await uow.cards.list(
                partner_id=account.partner_id, account_id=account.id, limit=limit + 1, after=after
            )
        return Page.of(rows, limit, lambda c: encode_cursor(c.created_at, c.id))

    # -- actions -------------------------------------------------------------------------
    async def act(
        self, *, principal: str, action: OperatorAction, customer_id: str, reason: str
    ) -> Customer:
        """Suspend, reinstate or reject: the customer and everything it owns changed by the
        action's rule, its events and the audit row, in one transaction."""
        why = validate_reason(reason)
        customer_uuid = parse_id(customer_id, CustomerNotFound)
        async with self._uow(write=True) as uow:
            owner = await uow.customers.partner_of(customer_uuid)
            customer = (
                None
                if owner is None
                else await uow.customers.get(
                    partner_id=owner, customer_id=customer_uuid, for_update=True
                )
            )
            if customer is None:
                raise CustomerNotFound()
            partner_id = customer.partner_id
            accounts, cards = await uow.accounts.with_cards(
                partner_id=partner_id, customer_id=customer.id
            )
            now = self._clock.now()
            if _RULES[action](customer, accounts, cards, why, now):
                await uow.customers.switch(customer)
                await uow.accounts.switch_all(accounts)
                await uow.cards.switch_all(cards)
                await uow.operator_actions.add(
                    OperatorActionRecord(
                        principal=principal,
                        action=action,
                        reason=why,
                        entity="customer",
                        entity_id=customer.id,
                        partner_id=partner_id,
                        at=now,
                    )
                )
                await uow.commit()
            return customer


async def _customer(uow: UnitOfWork, customer_id: UUID) -> Customer:
    owner = await uow.customers.partner_of(customer_id)
    found = (
        None
        if owner is None
        else await uow.customers.get(partner_id=owner, customer_id=customer_id)
    )
    if found is None:
        raise CustomerNotFound()
    return found


async def _account(uow: UnitOfWork, account_id: UUID) -> Account:
    owner = await uow.accounts.partner_of(account_id)
    found = (
        None if owner is None else await uow.accounts.get(partner_id=owner, account_id=account_id)
    )
    if found is None:
        raise AccountNotFound()
    return found
