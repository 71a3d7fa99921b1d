"""In-memory repositories over one FakeStore snapshot. Like the SQL ones they never commit,
and every tenant lookup is scoped by `partner_id`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from server.domain.accounts import Account, Card
from server.domain.customer import Customer, CustomerStatus
from server.domain.errors import CustomerAlreadyExists
from server.domain.events import ChangeEvent, EventType, changed
from server.domain.lifecycle import StatusChanged
from server.domain.operator import OperatorActionRecord
from server.domain.partner import Partner
from server.domain.signing_keys import SigningKey
from server.services.ports import PageCursor

E = TypeVar("E", Customer, Account, Card)


@dataclass
class Tables:
    """What a FakeStore holds; each unit of work works on its own deep copy."""

    partners: dict[UUID, Partner] = field(default_factory=dict)
    customers: dict[UUID, Customer] = field(default_factory=dict)
    accounts: dict[UUID, Account] = field(default_factory=dict)
    cards: dict[UUID, Card] = field(default_factory=dict)
    signing_keys: list[SigningKey] = field(default_factory=list)
    operator_actions: list[OperatorActionRecord] = field(default_factory=list)
    events: list[ChangeEvent] = field(default_factory=list)
    status_changes: list[StatusChanged] = field(default_factory=list)  # the audit rows


def shape(entity: Customer | Account | Card) -> dict[str, Any]:
    """A small stand-in for the API's JSON of an entity (transport/convert.py payload)."""
    return {"id": str(entity.id), "status": entity.status.value}


@dataclass
class Outbox:
    """The events and audit rows of one unit of work, written like the SQL repositories
    write them: for every creation and every change."""

    tables: Tables
    pending: list[ChangeEvent] = field(default_factory=list)

    def record(self, entity: Customer | Account | Card, *, created: bool = False) -> None:
        if created or entity.changes:
            self.tables.status_changes.extend(entity.changes)
            entity.changes.clear()
            self.pending.append(changed(entity, shape))


def _page(rows: Iterable[E], limit: int, after: PageCursor | None) -> list[E]:
    """Newest first by (created_at, id), after the cursor: the SQL repositories' order."""
    ordered = sorted(rows, key=lambda row: (row.created_at, row.id), reverse=True)
    if after is not None:
        cursor = (after.created_at, after.id)
        ordered = [row for row in ordered if (row.created_at, row.id) < cursor]
    return ordered[:limit]


class FakePartners:
    def __init__(self, tables: Tables) -> None:
        self._rows = tables.partners

    async def add(self, partner: Partner) -> None:
        self._rows[partner.id] = partner

    async def get(self, partner_id: UUID, *, for_update: bool = False) -> Partner | None:
        return self._rows.get(partner_id)

    async def get_by_api_key(self, api_key: UUID) -> Partner | None:
        return next((p for p in self._rows.values() if p.api_key == api_key), None)

    async def save(self, partner: Partner) -> None:
        self._rows[partner.id] = partner


class FakeCustomers:
    def __init__(self, tables: Tables, outbox: Outbox) -> None:
        self._rows = tables.customers
        self._outbox = outbox

    async def add(self, customer: Customer) -> None:
        # The unique indexes of the table: (partner, chain_key) and (partner, external_id).
        duplicate = await self.find_duplicate(
            partner_id=customer.partner_id,
            chain_key=customer.chain_key,
            external_id=customer.external_id,
        )
        if duplicate:
            raise CustomerAlreadyExists(duplicate)
        self._rows[customer.id] = customer
        self._outbox.record(customer, created=True)

    async def partner_of(self, entity_id: UUID) -> UUID | None:
        found = self._rows.get(entity_id)
        return None if found is None else found.partner_id

    async def get(
        self, *, partner_id: UUID, customer_id: UUID, for_update: bool = False
    ) -> Customer | None:
        found = self._rows.get(customer_id)
        return found if found is not None and found.partner_id == partner_id else None

    async def find_duplicate(
        self, *, partner_id: UUID, chain_key: str, external_id: str
    ) -> str | None:
        for row in self._rows.values():
            if row.partner_id != partner_id:
                continue
            if row.chain_key == chain_key:
                return "chainId"
            if row.external_id == external_id:
                return "externalId"
        return None

    async def list(
        self,
        *,
        partner_id: UUID,
        limit: int,
        after: PageCursor | None,
        status: CustomerStatus | None,
        external_id: str | None,
    ) -> list[Customer]:
        rows = [
            row
            for row in self._rows.values()
            if row.partner_id == partner_id
            and (status is None or row.status is status)
            and (not external_id or row.external_id == external_id)
        ]
        return _page(rows, limit, after)

    async def save(self, customer: Customer) -> None:
        self._rows[customer.id] = customer
        self._outbox.record(customer)

    async def switch(self, customer: Customer) -> None:
        await self.save(customer)

    async def get_by_kyc_session(
        self, session_id: str, *, for_update: bool = False
    ) -> Customer | None:
        return next((c for c in self._rows.values() if c.kyc_session_id == session_id), None)


class FakeAccounts:
    def __init__(self, tables: Tables, outbox: Outbox) -> None:
        self._rows = tables.accounts
        self._cards = tables.cards
        self._outbox = outbox

    async def add(self, account: Account) -> None:
        self._rows[account.id] = account
        self._outbox.record(account, created=True)

    async def partner_of(self, entity_id: UUID) -> UUID | None:
        found = self._rows.get(entity_id)
        return None if found is None else found.partner_id

    async def get(self, *, partner_id: UUID, account_id: UUID) -> Account | None:
        found = self._rows.get(account_id)
        return found if found is not None and found.partner_id == partner_id else None

    async def for_customer(self, *, partner_id: UUID, customer_id: UUID) -> list[Account]:
        return [
            a
            for a in self._rows.values()
            if a.partner_id == partner_id and a.customer_id == customer_id
        ]

    async def with_cards(
        self, *, partner_id: UUID, customer_id: UUID
    ) -> tuple[list[Account], list[Card]]:
        accounts = await self.for_customer(partner_id=partner_id, customer_id=customer_id)
        cards = [
            c
            for c in self._cards.values()
            if c.partner_id == partner_id and c.customer_id == customer_id
        ]
        return accounts, cards

    async def list(
        self, *, partner_id: UUID, customer_id: UUID, limit: int, after: PageCursor | None
    ) -> list[Account]:
        return _page(
            await self.for_customer(partner_id=partner_id, customer_id=customer_id), limit, after
        )

    async def save(self, account: Account) -> None:
        self._rows[account.id] = account
        self._outbox.record(account)

    async def switch_all(self, accounts: Sequence[Account]) -> None:
        for account in accounts:
            self._rows[account.id] = account
            self._outbox.record(account)


class FakeCards:
    def __init__(self, tables: Tables, outbox: Outbox) -> None:
        self._rows = tables.cards
        self._outbox = outbox

    async def add(self, card: Card) -> None:
        self._rows[card.id] = card
        self._outbox.record(card, created=True)

    async def partner_of(self, entity_id: UUID) -> UUID | None:
        found = self._rows.get(entity_id)
        return None if found is None else found.partner_id

    async def get(self, *, partner_id: UUID, card_id: UUID) -> Card | None:
        found = self._rows.get(card_id)
        return found if found is not None and found.partner_id == partner_id else None

    async def for_customer(self, *, partner_id: UUID, customer_id: UUID) -> list[Card]:
        return [
            c
            for c in self._rows.values()
            if c.partner_id == partner_id and c.customer_id == customer_id
        ]

    async def for_account(self, *, partner_id: UUID, account_id: UUID) -> list[Card]:
        return [
            c
            for c in self._rows.values()
            if c.partner_id == partner_id and c.account_id == account_id
        ]

    async def list(
        self, *, partner_id: UUID, account_id: UUID, limit: int, after: PageCursor | None
    ) -> list[Card]:
        return _page(
            await self.for_account(partner_id=partner_id, account_id=account_id), limit, after
        )

    async def save(self, card: Card) -> None:
        self._rows[card.id] = card
        self._outbox.record(card)

    async def switch_all(self, cards: Sequence[Card]) -> None:
        for card in cards:
            self._rows[card.id] = card
            self._outbox.record(card)


class FakeSigningKeys:
    def __init__(self, tables: Tables) -> None:
        self._rows = tables.signing_keys

    async def live(self, *, partner_id: UUID, for_update: bool = False) -> list[SigningKey]:
        return sorted(
            (k for k in self._rows if k.partner_id == partner_id), key=lambda k: k.created_at
        )

    async def add(self, key: SigningKey) -> None:
        self._rows.append(key)

    async def delete(self, *, partner_id: UUID, key_id: str) -> bool:
        for key in self._rows:
            if key.partner_id == partner_id and key.key_id == key_id:
                self._rows.remove(key)
                return True
        return False


class FakeOperatorActions:
    def __init__(self, tables: Tables) -> None:
        self._rows = tables.operator_actions

    async def add(self, record: OperatorActionRecord) -> None:
        self._rows.append(record)


class FakeEvents:
    """The committed change events (FakeUnitOfWork numbers them on commit)."""

    def __init__(self, tables: Tables) -> None:
        self._rows = tables.events

    async def after(
        self,
        *,
        partner_id: UUID,
        seq: int,
        limit: int,
        types: Iterable[EventType] = (),
        entity_id: UUID | None = None,
    ) -> list[ChangeEvent]:
        wanted = set(types)
        return [
            e
            for e in self._rows
            if e.partner_id == partner_id
            and e.seq > seq
            and (not wanted or e.type in wanted)
            and (entity_id is None or e.entity_id == entity_id)
        ][:limit]

    async def last_seq(self, *, partner_id: UUID) -> int:
        return max((e.seq for e in self._rows if e.partner_id == partner_id), default=0)

    async def last_seqs(self, *, partner_ids: Sequence[UUID]) -> dict[UUID, int]:
        last: dict[UUID, int] = {}
        for e in self._rows:
            if e.partner_id in partner_ids:
                last[e.partner_id] = max(last.get(e.partner_id, 0), e.seq)
        return last

    async def after_position(
        self, *, position: int, limit: int, types: Iterable[EventType] = ()
    ) -> list[ChangeEvent]:
        """Every partner's events after a global position, in commit order."""
        wanted = set(types)
        return [
            e for e in self._rows if e.position > position and (not wanted or e.type in wanted)
        ][:limit]

    async def last_position(self) -> int:
        return max((e.position for e in self._rows), default=0)
