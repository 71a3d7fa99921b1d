"""SQLModel repositories. They never commit; every tenant query takes `partner_id`.

Reads are SQLAlchemy Core statements over the tables' columns, built once here with bound
parameters, and each result row becomes a domain object directly (mapping.py): no ORM
instance, no identity map, no per-call statement building. That was most of the cost of the
reads every request makes (the partner's credentials version, its signing keys, the
customer).

Writes are Core statements too, one per change, executed at once (so a unique-index race
surfaces where the repository can name it): `add` is an INSERT of the entity's columns,
`save` an UPDATE by primary key of every column but the key (the unit of work has the row
locked or just read it; an ORM merge would load the row again first, and the ORM's flush
machinery measured ~40 % of a create's CPU).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, Generic, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from server.domain.accounts import Account, Card
from server.domain.customer import Customer, CustomerStatus
from server.domain.errors import CustomerAlreadyExists
from server.domain.events import ChangeEvent, Shape, changed
from server.domain.operator import OperatorActionRecord
from server.domain.partner import Partner
from server.domain.signing_keys import SigningKey
from server.services.ports import PageCursor
from server.store import mapping, outbox
from server.store.dialect import PerDialect, is_postgres
from server.store.outbox import Prelude
from server.store.tables import (
    AccountRow,
    CardRow,
    CustomerRow,
    OperatorActionRow,
    PartnerRow,
    SigningKeyRow,
    StatusChangeRow,
    UTCDateTime,
)

E = TypeVar("E")


def _table(model: type[SQLModel]) -> sa.Table:
    table = sa.inspect(model).local_table
    assert isinstance(table, sa.Table)
    return table


_partners = _table(PartnerRow)
_customers = _table(CustomerRow)
_accounts = _table(AccountRow)
_cards = _table(CardRow)
_signing_keys = _table(SigningKeyRow)
_status_changes = _table(StatusChangeRow)
_operator_actions = _table(OperatorActionRow)


def _update_by_id(table: sa.Table) -> sa.Update:
    """UPDATE by primary key; the SET columns are the execute() parameters (all but `k_id`,
    since SQLAlchemy reserves a column's own name for its SET parameter)."""
    return sa.update(table).where(table.c.id == sa.bindparam("k_id"))


def _by_id(values: dict[str, Any]) -> dict[str, Any]:
    """An entity's column values as _update_by_id's parameters."""
    params = dict(values)
    params["k_id"] = params.pop("id")
    return params


_INSERT = {table.name: sa.insert(table) for table in (_partners, _customers, _accounts, _cards)}
_UPDATE = {table.name: _update_by_id(table) for table in (_partners, _customers, _accounts, _cards)}


def _switched(table: sa.Table) -> PerDialect[sa.Update]:
    """What a cascade changes on accounts or cards: their status, why they are off, when;
    for every row of the `k_ids` list at once. PostgreSQL takes the list as one array
    (`= ANY`: one statement text, prepared once, whatever the number); SQLite an expanding
    IN."""

    def build(_insert: Any, postgres: bool) -> sa.Update:
        ids = sa.bindparam("k_ids", type_=postgresql.ARRAY(sa.Uuid()))
        which = (
            table.c.id == sa.any_(ids)
            if postgres
            else table.c.id.in_(sa.bindparam("k_ids", expanding=True))
        )
        return (
            sa.update(table)
            .where(which)
            .values(
                status=sa.bindparam("v_status"),
                inactive_cause=sa.bindparam("v_inactive_cause"),
                updated_at=sa.bindparam("v_updated_at", type_=UTCDateTime()),
            )
        )

    return PerDialect(build)


_SWITCHED = {table.name: _switched(table) for table in (_accounts, _cards)}
_INSERT_STATUS_CHANGES = sa.insert(_status_changes)
# PostgreSQL: a unit of work's audit rows as one JSON document, one short statement text for
# any number of rows (a cascade writes 61), run inside the events' statement (outbox.Prelude).
_AUDIT_PRELUDE = """
INSERT INTO status_changes (partner_id, entity, entity_id, from_status, to_status, cause, at)
SELECT a.partner_id, a.entity, a.entity_id, a.from_status, a.to_status, a.cause, a.at
FROM ROWS FROM (json_to_recordset(CAST(:{p}rows AS json))
                AS (partner_id uuid, entity text, entity_id uuid, from_status text,
                    to_status text, cause text, at timestamptz))
    WITH ORDINALITY AS a(partner_id, entity, entity_id, from_status, to_status, cause, at, n)
WHERE {after}
ORDER BY a.n
RETURNING 1"""
# PostgreSQL: a cascade's switched rows of one table and one new state, inside the events'
# statement. The ids as one array literal: uuids need no quoting, and psycopg's list dumper
# would run a regex over each element.
_SWITCH_PRELUDE = """
UPDATE {table} SET status = CAST(:{{p}}status AS varchar),
    inactive_cause = CAST(:{{p}}cause AS varchar), updated_at = CAST(:{{p}}at AS timestamptz)
WHERE id = ANY(CAST(:{{p}}ids AS uuid[])) AND {{after}}
RETURNING 1"""
_SWITCH_PRELUDES = {name: _SWITCH_PRELUDE.format(table=name) for name in ("accounts", "cards")}


def _update_prelude(table: sa.Table) -> str:
    """_UPDATE's statement (every column but the key, by primary key) as a prelude, each
    parameter cast to its column's PostgreSQL type (psycopg sends a str untyped)."""
    dialect = postgresql.dialect()

    def cast(column: sa.Column[Any]) -> str:
        kind = str(column.type.compile(dialect=dialect))
        # A string's length is the column's to check (a CAST to VARCHAR(n) would truncate).
        return "varchar" if kind.startswith("VARCHAR") else kind

    sets = ", ".join(
        f"{c.name} = CAST(:{{p}}{c.name} AS {cast(c)})" for c in table.c if c.name != "id"
    )
    where = "WHERE id = CAST(:{p}id AS uuid) AND {after}"
    return f"UPDATE {table.name} SET {sets}\n{where}\nRETURNING 1"


_CUSTOMER_PRELUDE = _update_prelude(_customers)


def audit_prelude(rows: list[dict[str, Any]]) -> Prelude:
    """Audit rows in one INSERT, in their order, to run with the events (PostgreSQL)."""
    document = [
        {
            **row,
            "partner_id": str(row["partner_id"]),
            "entity_id": str(row["entity_id"]),
            "at": row["at"].isoformat(),
        }
        for row in rows
    ]
    return Prelude(_AUDIT_PRELUDE, {"rows": json.dumps(document)})


_INSERT_OPERATOR_ACTION = sa.insert(_operator_actions)
# Whose entity an id is: the one cross-partner read an internal service's call starts with;
# everything after it is the partner-scoped reads and writes partners' calls use.
_OWNER = {
    table.name: sa.select(table.c.partner_id).where(table.c.id == sa.bindparam("id"))
    for table in (_customers, _accounts, _cards)
}
_INSERT_SIGNING_KEY = sa.insert(_signing_keys)
_DELETE_SIGNING_KEY = (
    sa.delete(_signing_keys)
    .where(
        _signing_keys.c.partner_id == sa.bindparam("k_partner_id"),
        _signing_keys.c.key_id == sa.bindparam("k_key_id"),
    )
    .returning(_signing_keys.c.key_id)
)


async def write_audit(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Audit rows in one INSERT, in their order."""
    if not rows:
        return
    if is_postgres(session):
        await outbox.run_apart(session, [audit_prelude(rows)])
    else:
        await session.execute(_INSERT_STATUS_CHANGES, rows)


class _Read(Generic[E]):
    """One read: its Core statement and the row -> domain conversion."""

    __slots__ = ("convert", "statement")

    def __init__(self, statement: sa.Select[Any], convert: Callable[[Any], E]) -> None:
        self.statement = statement
        self.convert = convert

    def locking(self) -> _Read[E]:
        # FOR NO KEY UPDATE (PostgreSQL; SQLite ignores it): we never change a key, and a
        # plain FOR UPDATE would also conflict with the FOR KEY SHARE lock every insert of a
        # row referencing this one takes, a deadlock between two such transactions.
        return _Read(self.statement.with_for_update(key_share=True), self.convert)


def _rows(table: sa.Table) -> sa.Select[Any]:
    return sa.select(*table.c)


def _tenant_rows(table: sa.Table, column: str) -> sa.Select[Any]:
    """The partner's rows whose `column` equals the bound parameter of the same name."""
    return _rows(table).where(
        table.c.partner_id == sa.bindparam("partner_id"), table.c[column] == sa.bindparam(column)
    )


def _newest_first(query: sa.Select[Any], table: sa.Table, *, after: bool) -> sa.Select[Any]:
    """Newest-first page; with `after`, strictly older than the cursor row (keyset)."""
    if after:
        # A row-value comparison: one index range scan on (partner, ..., created_at, id).
        query = query.where(
            sa.tuple_(table.c.created_at, table.c.id)
            < sa.tuple_(
                sa.bindparam("after_created_at", type_=UTCDateTime()),
                sa.bindparam("after_id", type_=sa.Uuid()),
            )
        )
    return query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(
        sa.bindparam("limit", type_=sa.Integer())
    )


def _page(limit: int, after: PageCursor | None) -> dict[str, Any]:
    if after is None:
        return {"limit": limit}
    return {"limit": limit, "after_created_at": after.created_at, "after_id": after.id}


_PARTNER = _Read(
    _rows(_partners).where(_partners.c.id == sa.bindparam("id")),
    mapping.PARTNERS.load,
)
_PARTNER_FOR_UPDATE = _PARTNER.locking()
_PARTNER_BY_API_KEY = _Read(
    _rows(_partners).where(_partners.c.api_key == sa.bindparam("api_key")),
    mapping.PARTNERS.load,
)

_CUSTOMER = _Read(_tenant_rows(_customers, "id"), mapping.CUSTOMERS.load)
_CUSTOMER_FOR_UPDATE = _CUSTOMER.locking()
_CUSTOMER_BY_KYC_SESSION = _Read(
    _rows(_customers).where(_customers.c.kyc_session_id == sa.bindparam("session_id")),
    mapping.CUSTOMERS.load,
)
_CUSTOMER_BY_KYC_SESSION_FOR_UPDATE = _CUSTOMER_BY_KYC_SESSION.locking()
_CUSTOMER_DUPLICATE = (
    sa.select(_customers.c.chain_key, _customers.c.external_id)
    .where(
        _customers.c.partner_id == sa.bindparam("partner_id"),
        sa.or_(
            _customers.c.chain_key == sa.bindparam("chain_key"),
            _customers.c.external_id == sa.bindparam("external_id"),
        ),
    )
    .limit(1)
)


@cache
def _customer_page(*, after: bool, status: bool, external_id: bool) -> _Read[Customer]:
    query = _rows(_customers).where(_customers.c.partner_id == sa.bindparam("partner_id"))
    if status:
        query = query.where(_customers.c.status == sa.bindparam("status"))
    if external_id:
        query = query.where(_customers.c.external_id == sa.bindparam("external_id"))
    page = _newest_first(query, _customers, after=after)
    return _Read(page, mapping.CUSTOMERS.load)


_ACCOUNT = _Read(_tenant_rows(_accounts, "id"), mapping.ACCOUNTS.load)
_ACCOUNTS_OF_CUSTOMER_QUERY = _tenant_rows(_accounts, "customer_id")
_ACCOUNTS_OF_CUSTOMER = _Read(_ACCOUNTS_OF_CUSTOMER_QUERY, mapping.ACCOUNTS.load)


@cache
def _account_page(*, after: bool) -> _Read[Account]:
    page = _newest_first(_ACCOUNTS_OF_CUSTOMER_QUERY, _accounts, after=after)
    return _Read(page, mapping.ACCOUNTS.load)


# A customer's accounts with their cards in one read (a cascade's whole tree): one round trip
# instead of two. An account without cards comes once, with NULL card columns; the cards'
# columns are labelled k_* (the tables share column names). Ordered, so a cascade's events
# come in one order: the accounts by creation, each one's cards after it.
_TREE_CARD_PREFIX = "k_"
_TREE_OF_CUSTOMER = (
    sa.select(*_accounts.c, *(c.label(_TREE_CARD_PREFIX + c.name) for c in _cards.c))
    .select_from(
        _accounts.outerjoin(
            _cards,
            sa.and_(
                _cards.c.partner_id == _accounts.c.partner_id,
                _cards.c.customer_id == _accounts.c.customer_id,
                _cards.c.account_id == _accounts.c.id,
            ),
        )
    )
    .where(
        _accounts.c.partner_id == sa.bindparam("partner_id"),
        _accounts.c.customer_id == sa.bindparam("customer_id"),
    )
    .order_by(_accounts.c.created_at, _accounts.c.id, _cards.c.created_at, _cards.c.id)
)

_CARD = _Read(_tenant_rows(_cards, "id"), mapping.CARDS.load)
_CARDS_OF_CUSTOMER = _Read(_tenant_rows(_cards, "customer_id"), mapping.CARDS.load)
_CARDS_OF_ACCOUNT_QUERY = _tenant_rows(_cards, "account_id")
_CARDS_OF_ACCOUNT = _Read(_CARDS_OF_ACCOUNT_QUERY, mapping.CARDS.load)


@cache
def _card_page(*, after: bool) -> _Read[Card]:
    page = _newest_first(_CARDS_OF_ACCOUNT_QUERY, _cards, after=after)
    return _Read(page, mapping.CARDS.load)


_LIVE_KEYS = (
    sa.select(*_signing_keys.c)
    .where(_signing_keys.c.partner_id == sa.bindparam("partner_id"))
    .order_by(_signing_keys.c.created_at)
)
_LOCK_PARTNER = (
    sa.select(_partners.c.id)
    .where(_partners.c.id == sa.bindparam("partner_id"))
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE: see _Read.locking
)


class _Repository:
    _table_name = ""

    def __init__(
        self,
        session: AsyncSession,
        outbox: list[ChangeEvent] | None = None,
        shape: Shape | None = None,
        audit: list[dict[str, Any]] | None = None,
        deferred: list[Prelude] | None = None,
    ) -> None:
        self._session = session
        # Writes nobody waits for, to run with the events at commit (PostgreSQL: in their
        # statement, outbox.Prelude); without the list, each at once.
        self._deferred = deferred
        # Events of this unit of work; the unit of work writes them at commit (outbox).
        self._outbox = outbox if outbox is not None else []
        # Its audit rows (status changes), also written at commit, all in one INSERT
        # (write_audit); without the list, each batch at once.
        self._audit = audit
        self._shape = shape  # the API's JSON of an entity: every event's payload

    async def _one(self, read: _Read[E], params: dict[str, Any]) -> E | None:
        # Works on AsyncSession and on the inline SQLite Session alike (unit_of_work.py):
        # a Core statement skips the ORM's compile and loading steps on both.
        row = (await self._session.execute(read.statement, params)).one_or_none()
        return None if row is None else read.convert(row)

    async def _all(self, read: _Read[E], params: dict[str, Any]) -> list[E]:
        result = await self._session.execute(read.statement, params)
        return [read.convert(row) for row in result]

    async def _write(self, statement: Any, params: dict[str, Any]) -> None:
        await self._session.execute(statement, params)

    async def partner_of(self, entity_id: UUID) -> UUID | None:
        """The partner owning the entity with this id (cross-partner; internal services)."""
        found = (await self._session.execute(_OWNER[self._table_name], {"id": entity_id})).first()
        return None if found is None else UUID(str(found[0]))

    async def _record(self, entity: Customer | Account | Card, *, created: bool = False) -> None:
        """Audit rows for the entity's status changes, and its change event."""
        if created or entity.changes:
            await self._record_all([entity])

    async def _record_all(self, entities: Sequence[Customer | Account | Card]) -> None:
        """Audit rows for the entities' status changes, and an event each."""
        audit = [
            {
                "partner_id": entity.partner_id,
                "entity": change.entity,
                "entity_id": change.entity_id,
                "from_status": change.from_status,
                "to_status": change.to_status,
                "cause": change.cause,
                "at": change.at,
            }
            for entity in entities
            for change in entity.changes
        ]
        if self._audit is not None:
            self._audit.extend(audit)
        else:
            await write_audit(self._session, audit)
        if self._shape is None:
            raise RuntimeError("this unit of work was made without the API shape of events")
        for entity in entities:
            entity.changes.clear()
            self._outbox.append(changed(entity, self._shape))

    async def _switch_all(self, table: str, entities: Sequence[Account] | Sequence[Card]) -> None:
        """The changed ones of `entities`, whose status is all a cascade changes: one UPDATE
        per distinct new state (a cascade has one: every row off, or on, at the same time),
        not one per row; then their audit rows and events."""
        dirty = [entity for entity in entities if entity.changes]
        if not dirty:
            return
        states: dict[tuple[Any, ...], list[UUID]] = {}
        for e in dirty:
            cause = e.inactive_cause.value if e.inactive_cause else None
            states.setdefault((e.status.value, cause, e.updated_at), []).append(e.id)
        for (status, cause, updated_at), ids in states.items():
            if self._deferred is not None:
                literal = "{" + ",".join(str(i) for i in ids) + "}"
                values = {"ids": literal, "status": status, "cause": cause, "at": updated_at}
                self._deferred.append(Prelude(_SWITCH_PRELUDES[table], values))
                continue
            params = {
                "k_ids": ids,
                "v_status": status,
                "v_inactive_cause": cause,
                "v_updated_at": updated_at,
            }
            await self._session.execute(_SWITCHED[table].of(self._session), params)
        await self._record_all(dirty)


class SqlPartnerRepository(_Repository):
    async def add(self, partner: Partner) -> None:
        await self._write(_INSERT["partners"], mapping.PARTNERS.values(partner))

    async def get(self, partner_id: UUID, *, for_update: bool = False) -> Partner | None:
        return await self._one(_PARTNER_FOR_UPDATE if for_update else _PARTNER, {"id": partner_id})

    async def get_by_api_key(self, api_key: UUID) -> Partner | None:
        return await self._one(_PARTNER_BY_API_KEY, {"api_key": api_key})

    async def save(self, partner: Partner) -> None:
        await self._write(_UPDATE["partners"], _by_id(mapping.PARTNERS.values(partner)))


class SqlCustomerRepository(_Repository):
    _table_name = "customers"

    async def add(self, customer: Customer) -> None:
        try:
            await self._write(_INSERT["customers"], mapping.CUSTOMERS.values(customer))
        except IntegrityError as exc:
            # A concurrent create won the race the duplicate check could not see.
            field = "externalId" if "external" in str(exc.orig) else "chainId"
            raise CustomerAlreadyExists(field) from None
        await self._record(customer, created=True)

    async def get(
        self, *, partner_id: UUID, customer_id: UUID, for_update: bool = False
    ) -> Customer | None:
        read = _CUSTOMER_FOR_UPDATE if for_update else _CUSTOMER
        return await self._one(read, {"id": customer_id, "partner_id": partner_id})

    async def find_duplicate(
        self, *, partner_id: UUID, chain_key: str, external_id: str
    ) -> str | None:
        params = {"partner_id": partner_id, "chain_key": chain_key, "external_id": external_id}
        row = (await self._session.execute(_CUSTOMER_DUPLICATE, params)).first()
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
        params = {"partner_id": partner_id, **_page(limit, after)}
        if status is not None:
            params["status"] = status.value
        if external_id:
            params["external_id"] = external_id
        read = _customer_page(
            after=after is not None, status=status is not None, external_id=bool(external_id)
        )
        return await self._all(read, params)

    async def save(self, customer: Customer) -> None:
        await self._write(_UPDATE["customers"], _by_id(mapping.CUSTOMERS.values(customer)))
        await self._record(customer)

    async def switch(self, customer: Customer) -> None:
        if self._deferred is None:
            await self.save(customer)
            return
        # Its row is locked (the cascade read it FOR NO KEY UPDATE) and no key changes.
        self._deferred.append(Prelude(_CUSTOMER_PRELUDE, mapping.CUSTOMERS.values(customer)))
        await self._record(customer)

    async def get_by_kyc_session(
        self, session_id: str, *, for_update: bool = False
    ) -> Customer | None:
        # Cross-partner on purpose: the session id is the capability (see the port).
        read = _CUSTOMER_BY_KYC_SESSION_FOR_UPDATE if for_update else _CUSTOMER_BY_KYC_SESSION
        return await self._one(read, {"session_id": session_id})


class SqlAccountRepository(_Repository):
    _table_name = "accounts"

    async def add(self, account: Account) -> None:
        await self._write(_INSERT["accounts"], mapping.ACCOUNTS.values(account))
        await self._record(account, created=True)

    async def get(self, *, partner_id: UUID, account_id: UUID) -> Account | None:
        return await self._one(_ACCOUNT, {"id": account_id, "partner_id": partner_id})

    async def for_customer(self, *, partner_id: UUID, customer_id: UUID) -> list[Account]:
        params = {"partner_id": partner_id, "customer_id": customer_id}
        return await self._all(_ACCOUNTS_OF_CUSTOMER, params)

    async def with_cards(
        self, *, partner_id: UUID, customer_id: UUID
    ) -> tuple[list[Account], list[Card]]:
        params = {"partner_id": partner_id, "customer_id": customer_id}
        accounts: list[Account] = []
        cards: list[Card] = []
        for row in await self._session.execute(_TREE_OF_CUSTOMER, params):
            if not accounts or accounts[-1].id != row.id:
                accounts.append(mapping.ACCOUNTS.load(row))
            if row._mapping[_TREE_CARD_PREFIX + "id"] is not None:
                cards.append(mapping.CARDS.load_labeled(row, _TREE_CARD_PREFIX))
        return accounts, cards

    async def list(
        self, *, partner_id: UUID, customer_id: UUID, limit: int, after: PageCursor | None
    ) -> list[Account]:
        params = {"partner_id": partner_id, "customer_id": customer_id, **_page(limit, after)}
        return await self._all(_account_page(after=after is not None), params)

    async def save(self, account: Account) -> None:
        await self._write(_UPDATE["accounts"], _by_id(mapping.ACCOUNTS.values(account)))
        await self._record(account)

    async def switch_all(self, accounts: Sequence[Account]) -> None:
        await self._switch_all("accounts", accounts)


class SqlCardRepository(_Repository):
    _table_name = "cards"

    async def add(self, card: Card) -> None:
        await self._write(_INSERT["cards"], mapping.CARDS.values(card))
        await self._record(card, created=True)

    async def get(self, *, partner_id: UUID, card_id: UUID) -> Card | None:
        return await self._one(_CARD, {"id": card_id, "partner_id": partner_id})

    async def for_customer(self, *, partner_id: UUID, customer_id: UUID) -> list[Card]:
        params = {"partner_id": partner_id, "customer_id": customer_id}
        return await self._all(_CARDS_OF_CUSTOMER, params)

    async def for_account(self, *, partner_id: UUID, account_id: UUID) -> list[Card]:
        params = {"partner_id": partner_id, "account_id": account_id}
        return await self._all(_CARDS_OF_ACCOUNT, params)

    async def list(
        self, *, partner_id: UUID, account_id: UUID, limit: int, after: PageCursor | None
    ) -> list[Card]:
        params = {"partner_id": partner_id, "account_id": account_id, **_page(limit, after)}
        return await self._all(_card_page(after=after is not None), params)

    async def save(self, card: Card) -> None:
        await self._write(_UPDATE["cards"], _by_id(mapping.CARDS.values(card)))
        await self._record(card)

    async def switch_all(self, cards: Sequence[Card]) -> None:
        await self._switch_all("cards", cards)


class SqlSigningKeyRepository(_Repository):
    async def live(self, *, partner_id: UUID, for_update: bool = False) -> list[SigningKey]:
        params = {"partner_id": partner_id}
        if for_update:
            # Lock the partner row, not the key rows: a concurrent registration must wait
            # even when there is no key row to lock yet (a no-op on SQLite, whose writers
            # are serialized already).
            await self._session.execute(_LOCK_PARTNER, params)
        rows = await self._session.execute(_LIVE_KEYS, params)
        return [mapping.signing_key_from_row(row) for row in rows]

    async def add(self, key: SigningKey) -> None:
        values = {
            "partner_id": key.partner_id,
            "key_id": key.key_id,
            "algorithm": key.algorithm,
            "public_key_pem": key.public.pem,
            "created_at": key.created_at,
        }
        await self._write(_INSERT_SIGNING_KEY, values)

    async def delete(self, *, partner_id: UUID, key_id: str) -> bool:
        params = {"k_partner_id": partner_id, "k_key_id": key_id}
        result = await self._session.execute(_DELETE_SIGNING_KEY, params)
        return result.first() is not None


class SqlOperatorActionRepository(_Repository):
    async def add(self, record: OperatorActionRecord) -> None:
        values = {
            "principal": record.principal,
            "action": record.action.value,
            "reason": record.reason,
            "entity": record.entity,
            "entity_id": record.entity_id,
            "partner_id": record.partner_id,
            "at": record.at,
        }
        await self._write(_INSERT_OPERATOR_ACTION, values)
