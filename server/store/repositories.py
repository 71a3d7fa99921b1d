"""SQLModel repositories. They never commit; every tenant query takes `partner_id`."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from server.domain.accounts import Account, Card
from server.domain.customer import Customer, CustomerStatus
from server.domain.errors import CustomerAlreadyExists
from server.domain.events import ChangeEvent, changed
from server.domain.partner import Partner
from server.domain.signing_keys import SigningKey
from server.services.ports import PageCursor
from server.store import mapping
from server.store.tables import (
    AccountRow,
    CardRow,
    CustomerRow,
    PartnerRow,
    SigningKeyRow,
    StatusChangeRow,
    UTCDateTime,
)


def _after(table: Any, cursor: PageCursor | None) -> Any:
    """Keyset condition for newest-first order: strictly older than the cursor row."""
    if cursor is None:
        return sa.true()
    # A row-value comparison: one index range scan on (partner, ..., created_at, id).
    return sa.tuple_(col(table.created_at), col(table.id)) < sa.tuple_(
        sa.literal(cursor.created_at, UTCDateTime), sa.literal(cursor.id, sa.Uuid)
    )


class _Repository:
    def __init__(self, session: AsyncSession, outbox: list[ChangeEvent] | None = None) -> None:
        self._session = session
        # Events of this unit of work; the unit of work writes them at commit (outbox).
        self._outbox = outbox if outbox is not None else []

    def _record(self, entity: Customer | Account | Card, *, created: bool = False) -> None:
        """Audit rows for the entity's status changes, and its change event."""
        if not created and not entity.changes:
            return
        for change in entity.changes:
            self._session.add(
                StatusChangeRow(
                    partner_id=entity.partner_id,
                    entity=change.entity,
                    entity_id=change.entity_id,
                    from_status=change.from_status,
                    to_status=change.to_status,
                    cause=change.cause,
                    at=change.at,
                )
            )
        entity.changes.clear()
        self._outbox.append(changed(entity))


class SqlPartnerRepository(_Repository):
    async def add(self, partner: Partner) -> None:
        self._session.add(mapping.partner_to_row(partner))

    async def get(self, partner_id: UUID, *, for_update: bool = False) -> Partner | None:
        row = await self._session.get(PartnerRow, partner_id, with_for_update=for_update)
        return mapping.partner_from_row(row) if row else None

    async def get_by_api_key(self, api_key: UUID) -> Partner | None:
        result = await self._session.execute(
            select(PartnerRow).where(PartnerRow.api_key == api_key)
        )
        row = result.scalar_one_or_none()
        return mapping.partner_from_row(row) if row else None

    async def save(self, partner: Partner) -> None:
        await self._session.merge(mapping.partner_to_row(partner))


class SqlCustomerRepository(_Repository):
    async def add(self, customer: Customer) -> None:
        self._session.add(mapping.customer_to_row(customer))
        try:
            await self._session.flush()
        except IntegrityError as exc:
            # A concurrent create won the race the duplicate check could not see.
            field = "externalId" if "external" in str(exc.orig) else "chainId"
            raise CustomerAlreadyExists(field) from None
        self._record(customer, created=True)

    async def get(
        self, *, partner_id: UUID, customer_id: UUID, for_update: bool = False
    ) -> Customer | None:
        query = select(CustomerRow).where(
            CustomerRow.id == customer_id, CustomerRow.partner_id == partner_id
        )
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).scalar_one_or_none()
        return mapping.customer_from_row(row) if row else None

    async def find_duplicate(
        self, *, partner_id: UUID, chain_key: str, external_id: str
    ) -> str | None:
        query = select(CustomerRow.chain_key, CustomerRow.external_id).where(
            CustomerRow.partner_id == partner_id,
            sa.or_(
                col(CustomerRow.chain_key) == chain_key, col(CustomerRow.external_id) == external_id
            ),
        )
        row = (await self._session.execute(query.limit(1))).first()
        if row is None:
            return None
        return "chainId" if row.chain_key == chain_key else "externalId"

    async def list(
        self,
        *,
        partner_id: UUID,
        limit: int,
        after: PageCursor | None,
        status: CustomerStatus | None,
        external_id: str | None,
    ) -> list[Customer]:
        query = select(CustomerRow).where(
            CustomerRow.partner_id == partner_id, _after(CustomerRow, after)
        )
        if status is not None:
            query = query.where(CustomerRow.status == status.value)
        if external_id:
            query = query.where(CustomerRow.external_id == external_id)
        query = query.order_by(
            col(CustomerRow.created_at).desc(), col(CustomerRow.id).desc()
        ).limit(limit)
        rows = (await self._session.execute(query)).scalars().all()
        return [mapping.customer_from_row(row) for row in rows]

    async def save(self, customer: Customer) -> None:
        await self._session.merge(mapping.customer_to_row(customer))
        self._record(customer)

    async def get_by_kyc_session(
        self, session_id: str, *, for_update: bool = False
    ) -> Customer | None:
        # Cross-partner on purpose: the session id is the capability (see the port).
        query = select(CustomerRow).where(CustomerRow.kyc_session_id == session_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).scalar_one_or_none()
        return mapping.customer_from_row(row) if row else None


class SqlAccountRepository(_Repository):
    async def add(self, account: Account) -> None:
        self._session.add(mapping.account_to_row(account))
        self._record(account, created=True)

    async def get(self, *, partner_id: UUID, account_id: UUID) -> Account | None:
        query = select(AccountRow).where(
            AccountRow.id == account_id, AccountRow.partner_id == partner_id
        )
        row = (await self._session.execute(query)).scalar_one_or_none()
        return mapping.account_from_row(row) if row else None

    async def for_customer(self, *, partner_id: UUID, customer_id: UUID) -> list[Account]:
        query = select(AccountRow).where(
            AccountRow.partner_id == partner_id, AccountRow.customer_id == customer_id
        )
        return [mapping.account_from_row(r) for r in (await self._session.execute(query)).scalars()]

    async def list(
        self, *, partner_id: UUID, customer_id: UUID, limit: int, after: PageCursor | None
    ) -> list[Account]:
        query = (
            select(AccountRow)
            .where(
                AccountRow.partner_id == partner_id,
                AccountRow.customer_id == customer_id,
                _after(AccountRow, after),
            )
            .order_by(col(AccountRow.created_at).desc(), col(AccountRow.id).desc())
            .limit(limit)
        )
        return [mapping.account_from_row(r) for r in (await self._session.execute(query)).scalars()]

    async def save(self, account: Account) -> None:
        await self._session.merge(mapping.account_to_row(account))
        self._record(account)


class SqlCardRepository(_Repository):
    async def add(self, card: Card) -> None:
        self._session.add(mapping.card_to_row(card))
        self._record(card, created=True)

    async def get(self, *, partner_id: UUID, card_id: UUID) -> Card | None:
        query = select(CardRow).where(CardRow.id == card_id, CardRow.partner_id == partner_id)
        row = (await self._session.execute(query)).scalar_one_or_none()
        return mapping.card_from_row(row) if row else None

    async def for_customer(self, *, partner_id: UUID, customer_id: UUID) -> list[Card]:
        query = select(CardRow).where(
            CardRow.partner_id == partner_id, CardRow.customer_id == customer_id
        )
        return [mapping.card_from_row(r) for r in (await self._session.execute(query)).scalars()]

    async def for_account(self, *, partner_id: UUID, account_id: UUID) -> list[Card]:
        query = select(CardRow).where(
            CardRow.partner_id == partner_id, CardRow.account_id == account_id
        )
        return [mapping.card_from_row(r) for r in (await self._session.execute(query)).scalars()]

    async def list(
        self, *, partner_id: UUID, account_id: UUID, limit: int, after: PageCursor | None
    ) -> list[Card]:
        query = (
            select(CardRow)
            .where(
                CardRow.partner_id == partner_id,
                CardRow.account_id == account_id,
                _after(CardRow, after),
            )
            .order_by(col(CardRow.created_at).desc(), col(CardRow.id).desc())
            .limit(limit)
        )
        return [mapping.card_from_row(r) for r in (await self._session.execute(query)).scalars()]

    async def save(self, card: Card) -> None:
        await self._session.merge(mapping.card_to_row(card))
        self._record(card)


class SqlSigningKeyRepository(_Repository):
    async def live(self, *, partner_id: UUID, for_update: bool = False) -> list[SigningKey]:
        if for_update:
            # Lock the partner row, not the key rows: a concurrent registration must wait
            # even when there is no key row to lock yet (a no-op on SQLite, whose writers
            # are serialized already).
            await self._session.execute(
                select(col(PartnerRow.id)).where(col(PartnerRow.id) == partner_id).with_for_update()
            )
        query = (
            select(SigningKeyRow)
            .where(col(SigningKeyRow.partner_id) == partner_id)
            .order_by(col(SigningKeyRow.created_at))
        )
        rows = (await self._session.execute(query)).scalars()
        return [
            SigningKey(r.partner_id, r.key_id, r.algorithm, r.public_key_pem, r.created_at)
            for r in rows
        ]

    async def add(self, key: SigningKey) -> None:
        self._session.add(
            SigningKeyRow(
                partner_id=key.partner_id,
                key_id=key.key_id,
                algorithm=key.algorithm,
                public_key_pem=key.public_key_pem,
                created_at=key.created_at,
            )
        )

    async def delete(self, *, partner_id: UUID, key_id: str) -> bool:
        result = await self._session.execute(
            sa.delete(SigningKeyRow)
            .where(col(SigningKeyRow.partner_id) == partner_id, col(SigningKeyRow.key_id) == key_id)
            .returning(col(SigningKeyRow.key_id))
        )
        return result.first() is not None
