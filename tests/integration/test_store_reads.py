"""Repository reads on both databases (and SQLite's inline engine, which runs them on a
plain Session): Core statements that build no ORM instance, in read and write units of
work alike, and a read followed by `save` (the ORM's merge) still writes the change. And a
unit of work's bulk writes: a cascade's rows switched by one UPDATE per new state, its audit
rows in one INSERT in the order they happened, its events numbered and inserted in one
statement (PostgreSQL, one partner) or one per step (SQLite, several partners), gap-free
and in order either way."""

from __future__ import annotations

import json
import pathlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from server.domain.accounts import Account, AccountType, Card, CardType, EntityStatus, InactiveCause
from server.domain.customer import Customer, CustomerStatus, KycVerdict
from server.domain.partner import Partner
from server.domain.signing_keys import PublicKey, SigningKey
from server.services.ports import PageCursor
from server.store.engine import make_engine, sqlite_inline_engine
from server.store.tables import AccountRow, CardRow, CustomerRow, PartnerRow, SigningKeyRow
from server.store.unit_of_work import SqlUnitOfWork, SqlUnitOfWorkFactory
from server.transport import convert
from tests.helpers.databases import database

T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


# The inline (blocking, on the event loop) engine exists for SQLite only.
@pytest.fixture(params=["sqlite inline", "sqlite async", "postgresql async"])
def store_setup(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> Iterator[tuple[str, str]]:
    kind, mode = str(request.param).split()
    with database(kind, tmp_path) as url:
        yield url, mode


@pytest.fixture
def database_url(store_setup: tuple[str, str]) -> str:
    return store_setup[0]


@pytest.fixture
def mode(store_setup: tuple[str, str]) -> str:
    return store_setup[1]


@pytest.fixture
async def engines(mode: str, database_url: str) -> AsyncIterator[tuple[Any, sa.Engine | None]]:
    engine = make_engine(database_url)
    inline = sqlite_inline_engine(database_url) if mode == "inline" else None
    try:
        yield engine, inline
    finally:
        await engine.dispose()
        if inline is not None:
            inline.dispose()


@pytest.fixture
def factory(engines: tuple[Any, sa.Engine | None]) -> SqlUnitOfWorkFactory:
    engine, inline = engines
    return SqlUnitOfWorkFactory(engine, inline=inline, shape=convert.payload)


@pytest.fixture
def statements(engines: tuple[Any, sa.Engine | None]) -> Iterator[list[str]]:
    """Every SQL statement sent while the test runs (the engine the store runs them on)."""
    engine, inline = engines
    watched: sa.Engine = inline if inline is not None else engine.sync_engine
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    sa.event.listen(watched, "before_cursor_execute", record)
    yield seen
    sa.event.remove(watched, "before_cursor_execute", record)


class Seeded:
    def __init__(self) -> None:
        self.partner = Partner(uuid.uuid4(), "reads", uuid.uuid4(), "h" * 64, 3, T0)
        self.customers = [
            Customer(
                id=uuid.uuid4(),
                partner_id=self.partner.id,
                external_id=f"user-{i}",
                chain_id=f"eip155:1:0x{i:040X}",
                chain_key=f"eip155:1:0x{i:040x}",
                status=CustomerStatus.ACTIVE if i % 2 else CustomerStatus.VERIFYING,
                created_at=T0 + timedelta(seconds=i),
                updated_at=T0 + timedelta(seconds=i, microseconds=7),
                kyc_session_id=f"session-{uuid.uuid4().hex}",
                challenge_message=f"challenge {i}",
                challenge_expires_at=T0 + timedelta(minutes=5) if i % 3 else None,
                kyc_verdict=KycVerdict.APPROVED if i % 2 else None,
            )
            for i in range(5)
        ]
        owner = self.customers[1]
        self.accounts = [
            Account(
                id=uuid.uuid4(),
                partner_id=self.partner.id,
                customer_id=owner.id,
                type=AccountType.CARD_ACCOUNT,
                currencies=["EUR", "USD"][: i + 1],
                status=EntityStatus.INACTIVE if i else EntityStatus.ACTIVE,
                inactive_cause=InactiveCause.PARTNER if i else None,
                created_at=T0 + timedelta(seconds=10 + i),
                updated_at=T0 + timedelta(seconds=10 + i),
            )
            for i in range(2)
        ]
        self.cards = [
            Card(
                id=uuid.uuid4(),
                partner_id=self.partner.id,
                account_id=self.accounts[0].id,
                customer_id=owner.id,
                type=CardType.PHYSICAL if i else CardType.VIRTUAL,
                network="visa",
                masked_pan=f"411111******{i:04d}",
                status=EntityStatus.ACTIVE,
                created_at=T0 + timedelta(seconds=20 + i),
                updated_at=T0 + timedelta(seconds=20 + i),
            )
            for i in range(3)
        ]
        self.keys = [
            SigningKey(
                self.partner.id,
                PublicKey(f"key-{i}", "ed25519", f"PEM {i}"),
                T0 + timedelta(hours=i),
            )
            for i in (1, 0)  # inserted out of order: `live` orders by created_at
        ]


@pytest.fixture
async def seeded(factory: SqlUnitOfWorkFactory) -> Seeded:
    data = Seeded()
    async with factory(write=True) as uow:
        await uow.partners.add(data.partner)
        await uow.commit()
    async with factory(write=True) as uow:
        for customer in data.customers:
            await uow.customers.add(customer)
        for account in data.accounts:
            await uow.accounts.add(account)
        for card in data.cards:
            await uow.cards.add(card)
        for key in data.keys:
            await uow.signing_keys.add(key)
        await uow.commit()
    return data


@pytest.fixture
def orm_loads() -> Iterator[list[object]]:
    """Every ORM instance loaded from the database while the test runs."""
    loaded: list[object] = []

    def on_load(target: object, _context: Any) -> None:
        loaded.append(target)

    models = (PartnerRow, CustomerRow, AccountRow, CardRow, SigningKeyRow)
    for model in models:
        sa.event.listen(model, "load", on_load)
    yield loaded
    for model in models:
        sa.event.remove(model, "load", on_load)


async def _everything(uow: SqlUnitOfWork, data: Seeded) -> dict[str, object]:
    """Every repository read, once."""
    pid, owner = data.partner.id, data.customers[1]
    newest = data.customers[-1]
    cursor = PageCursor(newest.created_at, newest.id)
    return {
        "partner": await uow.partners.get(pid),
        "partner_locked": await uow.partners.get(pid, for_update=True),
        "partner_by_key": await uow.partners.get_by_api_key(data.partner.api_key),
        "customer": await uow.customers.get(partner_id=pid, customer_id=owner.id),
        "customer_locked": await uow.customers.get(
            partner_id=pid, customer_id=owner.id, for_update=True
        ),
        "by_session": await uow.customers.get_by_kyc_session(owner.kyc_session_id or ""),
        "by_session_locked": await uow.customers.get_by_kyc_session(
            owner.kyc_session_id or "", for_update=True
        ),
        "duplicate": await uow.customers.find_duplicate(
            partner_id=pid, chain_key="none", external_id=owner.external_id
        ),
        "page": await uow.customers.list(
            partner_id=pid, limit=3, after=None, status=None, external_id=None
        ),
        "page_after": await uow.customers.list(
            partner_id=pid, limit=10, after=cursor, status=None, external_id=None
        ),
        "page_status": await uow.customers.list(
            partner_id=pid, limit=10, after=cursor, status=CustomerStatus.ACTIVE, external_id=None
        ),
        "page_external": await uow.customers.list(
            partner_id=pid, limit=10, after=None, status=None, external_id=owner.external_id
        ),
        "account": await uow.accounts.get(partner_id=pid, account_id=data.accounts[1].id),
        "accounts": await uow.accounts.for_customer(partner_id=pid, customer_id=owner.id),
        "account_page": await uow.accounts.list(
            partner_id=pid, customer_id=owner.id, limit=1, after=None
        ),
        "card": await uow.cards.get(partner_id=pid, card_id=data.cards[2].id),
        "cards_of_customer": await uow.cards.for_customer(partner_id=pid, customer_id=owner.id),
        "cards_of_account": await uow.cards.for_account(
            partner_id=pid, account_id=data.accounts[0].id
        ),
        "card_page": await uow.cards.list(
            partner_id=pid,
            account_id=data.accounts[0].id,
            limit=5,
            after=PageCursor(data.cards[2].created_at, data.cards[2].id),
        ),
        "keys": await uow.signing_keys.live(partner_id=pid),
        "keys_locked": await uow.signing_keys.live(partner_id=pid, for_update=True),
    }


def _by_id(entities: object) -> list[Any]:
    assert isinstance(entities, list)
    return sorted(entities, key=lambda e: e.id)


UNORDERED = {"accounts", "cards_of_customer", "cards_of_account"}


async def test_reads_answer_the_stored_entities(
    factory: SqlUnitOfWorkFactory, seeded: Seeded, orm_loads: list[object]
) -> None:
    data = seeded
    owner, newest = data.customers[1], data.customers[-1]
    async with factory() as uow:
        found = await _everything(uow, data)
    assert orm_loads == []  # Core only: no ORM instance, no identity map
    assert found["partner"] == found["partner_locked"] == found["partner_by_key"] == data.partner
    assert found["customer"] == found["customer_locked"] == owner
    assert found["by_session"] == found["by_session_locked"] == owner
    assert found["duplicate"] == "externalId"
    assert found["page"] == data.customers[::-1][:3]
    assert found["page_after"] == data.customers[-2::-1]
    assert found["page_status"] == [
        c for c in data.customers[-2::-1] if c.status is CustomerStatus.ACTIVE
    ]
    assert found["page_external"] == [owner]
    assert found["account"] == data.accounts[1]
    assert _by_id(found["accounts"]) == _by_id(data.accounts)
    assert found["account_page"] == [data.accounts[1]]
    assert found["card"] == data.cards[2]
    assert _by_id(found["cards_of_customer"]) == _by_id(data.cards)
    assert _by_id(found["cards_of_account"]) == _by_id(data.cards)
    assert found["card_page"] == data.cards[1::-1]
    assert found["keys"] == found["keys_locked"] == data.keys[::-1]
    customer = found["customer"]
    assert isinstance(customer, Customer)
    assert customer.created_at.tzinfo is UTC and customer.status is CustomerStatus.ACTIVE
    assert customer.kyc_verdict is KycVerdict.APPROVED
    assert newest.challenge_expires_at is not None
    assert found["page"][0].challenge_expires_at == newest.challenge_expires_at  # type: ignore[index]


async def test_a_write_unit_of_work_reads_the_same(
    factory: SqlUnitOfWorkFactory, seeded: Seeded, orm_loads: list[object]
) -> None:
    async with factory() as uow:
        read = await _everything(uow, seeded)
    async with factory(write=True) as uow:  # BEGIN IMMEDIATE on SQLite; real locks on PG
        written = await _everything(uow, seeded)
    assert orm_loads == []
    for name, value in read.items():
        if name in UNORDERED:
            assert _by_id(written[name]) == _by_id(value), name
        else:
            assert written[name] == value, name


async def test_read_then_save_in_a_write_unit_of_work(
    factory: SqlUnitOfWorkFactory, seeded: Seeded, statements: list[str], database_url: str
) -> None:
    pid, owner = seeded.partner.id, seeded.customers[1]
    later = T0 + timedelta(days=1)
    async with factory(write=True) as uow:
        customer = await uow.customers.get(partner_id=pid, customer_id=owner.id, for_update=True)
        account = await uow.accounts.get(partner_id=pid, account_id=seeded.accounts[0].id)
        cards = await uow.cards.for_account(partner_id=pid, account_id=seeded.accounts[0].id)
        partner = await uow.partners.get(pid, for_update=True)
        assert customer and account and cards and partner
        assert customer.deactivate(later)
        assert account.switch_off(InactiveCause.PARTNER, later)
        assert cards[0].switch_off(InactiveCause.ACCOUNT, later)
        partner.credentials_version += 1
        await uow.customers.save(customer)
        await uow.accounts.save(account)
        await uow.cards.save(cards[0])
        await uow.partners.save(partner)
        await uow.commit()
    # The four reads, then one Core UPDATE per save: no save loads its row again first (an
    # ORM merge did).
    reads = [s for s in statements if s.startswith("SELECT") and "pg_notify" not in s]
    assert len(reads) == 4, statements
    locked = database_url.startswith("postgresql")  # SQLite's writers hold the database lock
    lock = "FOR NO KEY UPDATE"  # never conflicts with the key-share lock of a referencing insert
    assert reads[0].endswith(lock) is locked and reads[3].endswith(lock) is locked
    assert sum(s.startswith("UPDATE") for s in statements) == 4, statements
    async with factory() as uow:
        assert await uow.customers.get(partner_id=pid, customer_id=owner.id) == customer
        assert await uow.accounts.get(partner_id=pid, account_id=account.id) == account
        assert await uow.cards.get(partner_id=pid, card_id=cards[0].id) == cards[0]
        stored = await uow.partners.get(pid)
        assert stored is not None and stored.credentials_version == 4
        events = await uow.events.after(partner_id=pid, seq=0, limit=100)
    assert {e.entity_id for e in events} >= {customer.id, account.id, cards[0].id}


def _sync(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("+aiosqlite", ""), poolclass=sa.pool.NullPool)


def _rows(url: str, query: str, **params: Any) -> list[Any]:
    engine = _sync(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(query), params))
    finally:
        engine.dispose()


async def test_a_customers_tree_is_read_in_one_statement_accounts_without_cards_included(
    factory: SqlUnitOfWorkFactory, seeded: Seeded, statements: list[str]
) -> None:
    pid, owner = seeded.partner.id, seeded.customers[1]
    async with factory(write=True) as uow:
        statements.clear()
        accounts, cards = await uow.accounts.with_cards(partner_id=pid, customer_id=owner.id)
        assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
        # The same entities the per-table reads give, accounts and cards by creation.
        assert accounts == seeded.accounts  # the second one has no cards
        assert cards == seeded.cards
        assert accounts == sorted(
            await uow.accounts.for_customer(partner_id=pid, customer_id=owner.id),
            key=lambda a: a.created_at,
        )
        other = await uow.accounts.with_cards(partner_id=pid, customer_id=seeded.customers[0].id)
        assert other == ([], [])


async def test_a_cascade_switches_its_rows_and_records_audit_and_events_in_order(
    factory: SqlUnitOfWorkFactory, seeded: Seeded, database_url: str
) -> None:
    pid, owner = seeded.partner.id, seeded.customers[1]
    later = T0 + timedelta(hours=1)
    async with factory(write=True) as uow:
        cards = await uow.cards.for_account(partner_id=pid, account_id=seeded.accounts[0].id)
        cards.sort(key=lambda card: card.created_at)
        # Two new states among three rows: two UPDATEs, each for its own rows only.
        assert cards[0].switch_off(InactiveCause.CUSTOMER, later)
        assert cards[1].switch_off(InactiveCause.CUSTOMER, later)
        assert cards[2].switch_off(InactiveCause.PARTNER, later + timedelta(seconds=1))
        accounts = await uow.accounts.for_customer(partner_id=pid, customer_id=owner.id)
        active = [a for a in accounts if a.inactive_cause is None]
        assert active[0].switch_off(InactiveCause.CUSTOMER, later)
        await uow.accounts.switch_all(accounts)
        await uow.cards.switch_all(cards)
        await uow.commit()
    expected = [active[0], *cards]

    async with factory() as uow:
        stored = await uow.cards.for_account(partner_id=pid, account_id=seeded.accounts[0].id)
        stored_accounts = await uow.accounts.for_customer(partner_id=pid, customer_id=owner.id)
    assert sorted(stored, key=lambda c: c.id) == sorted(cards, key=lambda c: c.id)
    assert sorted(stored_accounts, key=lambda a: a.id) == sorted(accounts, key=lambda a: a.id)

    audit = _rows(
        database_url,
        "SELECT entity_id, to_status, cause, at FROM status_changes ORDER BY id",
    )
    assert [(str(row.entity_id).replace("-", ""), row.to_status) for row in audit] == [
        (entity.id.hex, "inactive") for entity in expected
    ]

    events = _rows(
        database_url,
        "SELECT entity_id, seq, position, type, payload FROM events"
        " WHERE partner_id = :pid ORDER BY id",
        pid=pid.hex if "sqlite" in database_url else pid,
    )
    # Seeding wrote 10 events (5 customers, 2 accounts, 3 cards); these follow, in order.
    cascade = events[-len(expected) :]
    assert [row.seq for row in events] == list(range(1, len(events) + 1))
    positions = [row.position for row in events]
    assert positions == list(range(positions[0], positions[0] + len(events)))
    assert [str(row.entity_id).replace("-", "") for row in cascade] == [
        entity.id.hex for entity in expected
    ]
    for row, entity in zip(cascade, expected, strict=True):
        payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
        assert payload == convert.payload(entity)


async def test_a_customers_cascade_writes_in_one_statement_at_commit_on_postgresql(
    factory: SqlUnitOfWorkFactory, seeded: Seeded, statements: list[str], database_url: str
) -> None:
    """The customer, its switched rows, the audit rows and the events: on PostgreSQL all in
    the events' statement (outbox.Prelude), one round trip; as before on SQLite."""
    pid, owner = seeded.partner.id, seeded.customers[1]
    later = T0 + timedelta(hours=2)
    async with factory(write=True) as uow:
        customer = await uow.customers.get(partner_id=pid, customer_id=owner.id, for_update=True)
        assert customer is not None
        accounts, cards = await uow.accounts.with_cards(partner_id=pid, customer_id=owner.id)
        statements.clear()
        assert customer.deactivate(later)
        for entity in [*accounts, *cards]:
            entity.switch_off(InactiveCause.CUSTOMER, later)
        await uow.customers.switch(customer)
        await uow.accounts.switch_all(accounts)
        await uow.cards.switch_all(cards)
        await uow.commit()
    writes = [s for s in statements if not s.upper().startswith(("BEGIN", "COMMIT"))]
    if "postgresql" in database_url:
        assert len(writes) == 1 and writes[0].startswith("WITH w0 AS (UPDATE customers")
    async with factory() as uow:
        stored = await uow.customers.get(partner_id=pid, customer_id=owner.id)
        tree = await uow.accounts.with_cards(partner_id=pid, customer_id=owner.id)
    assert stored == customer
    assert tree == (accounts, cards)
    audit = _rows(database_url, "SELECT entity_id FROM status_changes ORDER BY id")
    changed = [customer, *[a for a in accounts if a.updated_at == later], *cards]
    assert [str(row.entity_id).replace("-", "") for row in audit][-len(changed) :] == [
        entity.id.hex for entity in changed
    ]


async def test_events_of_two_partners_in_one_unit_of_work_are_numbered_per_partner(
    factory: SqlUnitOfWorkFactory, database_url: str
) -> None:
    partners = [Partner(uuid.uuid4(), f"p{i}", uuid.uuid4(), "h" * 64, 1, T0) for i in (0, 1)]
    async with factory(write=True) as uow:
        for partner in partners:
            await uow.partners.add(partner)
        await uow.commit()
    async with factory(write=True) as uow:
        for i in range(3):
            partner = partners[i % 2]
            await uow.customers.add(
                Customer(
                    id=uuid.uuid4(),
                    partner_id=partner.id,
                    external_id=f"two-{i}",
                    chain_id=f"eip155:1:0x{i + 100:040X}",
                    chain_key=f"eip155:1:0x{i + 100:040x}",
                    status=CustomerStatus.INITIATING,
                    created_at=T0,
                    updated_at=T0,
                )
            )
        await uow.commit()
    rows = _rows(database_url, "SELECT partner_id, seq, position FROM events ORDER BY position")
    assert len(rows) == 3
    per_partner: dict[str, list[int]] = {}
    for row in rows:
        per_partner.setdefault(str(row.partner_id), []).append(row.seq)
    assert sorted(per_partner.values()) == [[1], [1, 2]]
    positions = [row.position for row in rows]
    assert positions == list(range(positions[0], positions[0] + 3))
