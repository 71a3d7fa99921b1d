"""Account and card use cases. In the sandbox both become active at once."""

from __future__ import annotations

import re
import uuid
from uuid import UUID

from server.domain import accounts as rules
from server.domain.accounts import Account, AccountType, Card, CardType, EntityStatus
from server.domain.customer import Customer
from server.domain.errors import AccountNotFound, CardNotFound, CustomerNotFound, InvalidField
from server.domain.identifiers import parse_id
from server.services.paging import Page, decode_cursor, encode_cursor, page_size
from server.services.ports import Clock, UnitOfWork, UnitOfWorkFactory

_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_CURRENCIES = 10


def _currencies(values: list[str]) -> list[str]:
    if not values:
        raise InvalidField("currencies", "currencies must name at least one ISO 4217 code")
    if len(values) > MAX_CURRENCIES:
        raise InvalidField("currencies", f"currencies holds at most {MAX_CURRENCIES} codes")
    for value in values:
        if not _CURRENCY.match(value):
            raise InvalidField("currencies", f"'{value[:8]}' is not an ISO 4217 currency code")
    return list(dict.fromkeys(values))


class AccountService:
    def __init__(self, *, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def create_account(
        self, *, partner_id: UUID, customer_id: str, type: AccountType | None, currencies: list[str]
    ) -> Account:
        if type is None:
            raise InvalidField("type", "type must be 'card_account'")
        codes = _currencies(currencies)
        async with self._uow(write=True) as uow:
            customer = await _customer(uow, partner_id, parse_id(customer_id, CustomerNotFound))
            rules.require_active_customer(customer, "open an account for")
            now = self._clock.now()
            account = Account(
                id=uuid.uuid4(),
                partner_id=partner_id,
                customer_id=customer.id,
                type=type,
                currencies=codes,
                status=EntityStatus.ACTIVE,
                created_at=now,
                updated_at=now,
            )
            await uow.accounts.add(account)
            await uow.commit()
            return account

    async def list_accounts(
        self, *, partner_id: UUID, customer_id: str, size: int, token: str
    ) -> Page[Account]:
        limit, after = page_size(size), decode_cursor(token)
        async with self._uow() as uow:
            customer = await _customer(uow, partner_id, parse_id(customer_id, CustomerNotFound))
            rows = await uow.accounts.list(
                partner_id=partner_id, customer_id=customer.id, limit=limit + 1, after=after
            )
        return Page.of(rows, limit, lambda a: encode_cursor(a.created_at, a.id))

    async def deactivate_account(self, *, partner_id: UUID, account_id: str) -> Account:
        async with self._uow(write=True) as uow:
            account = await _account(uow, partner_id, account_id)
            cards = await uow.cards.for_account(partner_id=partner_id, account_id=account.id)
            if rules.deactivate_account(account, cards, self._clock.now()):
                await _save(uow, account, cards)
            return account

    async def activate_account(self, *, partner_id: UUID, account_id: str) -> Account:
        async with self._uow(write=True) as uow:
            account = await _account(uow, partner_id, account_id)
            customer = await _customer(uow, partner_id, account.customer_id)
            cards = await uow.cards.for_account(partner_id=partner_id, account_id=account.id)
            if rules.activate_account(customer, account, cards, self._clock.now()):
                await _save(uow, account, cards)
            return account

    async def create_card(
        self, *, partner_id: UUID, account_id: str, type: CardType | None
    ) -> Card:
        if type is None:
            raise InvalidField("type", "type must be 'virtual' or 'physical'")
        async with self._uow(write=True) as uow:
            account = await _account(uow, partner_id, account_id)
            customer = await _customer(uow, partner_id, account.customer_id)
            rules.require_active_customer(customer, "issue a card for")
            rules.require_active_account(account, "issue a card on")
            now = self._clock.now()
            card = Card(
                id=uuid.uuid4(),
                partner_id=partner_id,
                account_id=account.id,
                customer_id=customer.id,
                type=type,
                network="visa",
                masked_pan=rules.sandbox_masked_pan(),
                status=EntityStatus.ACTIVE,
                created_at=now,
                updated_at=now,
            )
            await uow.cards.add(card)
            await uow.commit()
            return card

    async def list_cards(
        self, *, partner_id: UUID, account_id: str, size: int, token: str
    ) -> Page[Card]:
        limit, after = page_size(size), decode_cursor(token)
        async with self._uow() as uow:
            account = await _account(uow, partner_id, account_id)
            rows = await uow.cards.list(
                partner_id=partner_id, account_id=account.id, limit=limit + 1, after=after
            )
        return Page.of(rows, limit, lambda c: encode_cursor(c.created_at, c.id))

    async def deactivate_card(self, *, partner_id: UUID, card_id: str) -> Card:
        async with self._uow(write=True) as uow:
            card = await _card(uow, partner_id, card_id)
            if card.switch_off(rules.InactiveCause.PARTNER, self._clock.now()):
                await _save(uow, None, [card])
            return card

    async def activate_card(self, *, partner_id: UUID, card_id: str) -> Card:
        async with self._uow(write=True) as uow:
            card = await _card(uow, partner_id, card_id)
            account = await _account(uow, partner_id, str(card.account_id))
            customer = await _customer(uow, partner_id, card.customer_id)
            if rules.activate_card(customer, account, card, self._clock.now()):
                await _save(uow, None, [card])
            return card


async def _customer(uow: UnitOfWork, partner_id: UUID, customer_id: UUID) -> Customer:
    customer = await uow.customers.get(partner_id=partner_id, customer_id=customer_id)
    if customer is None:
        raise CustomerNotFound()
    return customer


async def _account(uow: UnitOfWork, partner_id: UUID, account_id: str) -> Account:
    account = await uow.accounts.get(
        partner_id=partner_id, account_id=parse_id(account_id, AccountNotFound)
    )
    if account is None:
        raise AccountNotFound()
    return account


async def _card(uow: UnitOfWork, partner_id: UUID, card_id: str) -> Card:
    card = await uow.cards.get(partner_id=partner_id, card_id=parse_id(card_id, CardNotFound))
    if card is None:
        raise CardNotFound()
    return card


async def _save(uow: UnitOfWork, account: Account | None, cards: list[Card]) -> None:
    if account is not None:
        await uow.accounts.save(account)
    await uow.cards.switch_all(cards)
    await uow.commit()
