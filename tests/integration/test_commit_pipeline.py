"""PostgreSQL: a write's last statement (its events, which lock the partner's sequence row
and the global position row) goes out with its COMMIT (store/pipeline.py), so those rows
are never left locked while this process has yet to send the COMMIT; a failure there comes
out as SQLAlchemy's error with nothing committed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import sqlalchemy.exc as sa_exc

from server.domain.events import ChangeEvent, EventType
from server.domain.partner import Partner
from server.store.engine import make_engine
from server.store.unit_of_work import SqlUnitOfWorkFactory
from server.transport import convert
from tests.helpers.databases import postgres_database


@pytest.fixture
def pg_database() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
async def factory(pg_database: str) -> AsyncIterator[SqlUnitOfWorkFactory]:
    engine = make_engine(pg_database)
    try:
        yield SqlUnitOfWorkFactory(engine, shape=convert.payload)
    finally:
        await engine.dispose()


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _event(partner_id: uuid.UUID, event_id: uuid.UUID | None = None) -> ChangeEvent:
    return ChangeEvent(
        event_id=event_id or uuid.uuid4(),
        partner_id=partner_id,
        type=EventType.CUSTOMER_UPDATED,
        entity_id=uuid.uuid4(),
        payload={"id": "x"},
        occurred_at=datetime.now(UTC),
    )


async def _partner(factory: SqlUnitOfWorkFactory) -> uuid.UUID:
    partner = Partner(uuid.uuid4(), "pipeline", uuid.uuid4(), "h" * 64, 1, datetime.now(UTC))
    async with factory(write=True) as uow:
        await uow.partners.add(partner)
        await uow.commit()
    return partner.id


async def test_the_numbering_rows_are_free_and_the_events_committed_once_the_statement_returns(
    factory: SqlUnitOfWorkFactory, pg_database: str
) -> None:
    partner_id = await _partner(factory)
    seen: dict[str, Any] = {}
    async with factory(write=True) as uow:
        uow.outbox.append(_event(partner_id))
        session_commit = uow.session.commit

        async def observed_commit() -> None:
            # What another writer sees between the events' statement and the caller's
            # COMMIT: before the pipeline, both rows were still locked here.
            with psycopg.connect(_plain(pg_database), autocommit=True) as other:
                seen["seq"] = other.execute(
                    "SELECT last_seq FROM partner_sequences WHERE partner_id = %s"
                    " FOR UPDATE NOWAIT",
                    (partner_id,),
                ).fetchone()
                seen["position"] = other.execute(
                    "SELECT last_position FROM event_positions FOR UPDATE NOWAIT"
                ).fetchone()
                seen["events"] = other.execute(
                    "SELECT count(*) FROM events WHERE partner_id = %s", (partner_id,)
                ).fetchone()
            await session_commit()

        uow.session.commit = observed_commit  # type: ignore[method-assign]
        await uow.commit()
    assert seen == {"seq": (1,), "position": (1,), "events": (1,)}


async def test_a_failing_events_statement_raises_sqlalchemys_error_and_commits_nothing(
    factory: SqlUnitOfWorkFactory, pg_database: str
) -> None:
    partner_id = await _partner(factory)
    taken = uuid.uuid4()
    async with factory(write=True) as uow:
        uow.outbox.append(_event(partner_id, taken))
        await uow.commit()
    with pytest.raises(sa_exc.IntegrityError):
        async with factory(write=True) as uow:
            uow.outbox.append(_event(partner_id))
            uow.outbox.append(_event(partner_id, taken))  # events.event_id is unique
            await uow.commit()
    # The connection went back to the pool usable, and nothing of the failed write stayed.
    async with factory(write=True) as uow:
        uow.outbox.append(_event(partner_id))
        await uow.commit()
    with psycopg.connect(_plain(pg_database), autocommit=True) as other:
        seqs = other.execute(
            "SELECT seq FROM events WHERE partner_id = %s ORDER BY seq", (partner_id,)
        ).fetchall()
    assert seqs == [(1,), (2,)]
