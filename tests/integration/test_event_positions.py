"""Global event positions (migration 0009, store/outbox.py): existing events keep a valid
history, new ones continue after it in commit order; and a cross-partner watcher on one
replica hears changes committed through another."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from server.app import RunningServer
from server.bootstrap import build
from server.config import Settings
from server.store.migrate import alembic_config, upgrade
from server.store.tables import UTCDateTime
from tests.helpers.wallets import caip10, new_wallet


def _sync(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("+aiosqlite", ""))


_PARTNER = sa.text(
    "INSERT INTO partners (id, name, api_key, secret_hash, credentials_version, created_at)"
    " VALUES (:id, 'old', :key, 'x', 1, :now)"
).bindparams(
    sa.bindparam("id", type_=sa.Uuid()),
    sa.bindparam("key", type_=sa.Uuid()),
    sa.bindparam("now", type_=UTCDateTime()),
)
_EVENT = sa.text(
    "INSERT INTO events (event_id, partner_id, seq, type, entity_id, payload, occurred_at)"
    " VALUES (:event, :partner, :seq, 'customer.updated', :entity, '{}', :now)"
).bindparams(
    sa.bindparam("event", type_=sa.Uuid()),
    sa.bindparam("partner", type_=sa.Uuid()),
    sa.bindparam("entity", type_=sa.Uuid()),
    sa.bindparam("now", type_=UTCDateTime()),
)


def test_events_written_before_the_migration_get_positions_and_new_ones_follow(
    database_url: str,
) -> None:
    command.downgrade(alembic_config(database_url), "0008")
    partner_id, now = uuid.uuid4(), datetime.now(UTC)
    engine = _sync(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(_PARTNER, {"id": partner_id, "key": uuid.uuid4(), "now": now})
            for seq in (1, 2):
                connection.execute(
                    _EVENT,
                    {
                        "event": uuid.uuid4(),
                        "partner": partner_id,
                        "seq": seq,
                        "entity": uuid.uuid4(),
                        "now": now,
                    },
                )
        upgrade(database_url)
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT id, position FROM events ORDER BY id")).all()
            last = connection.execute(
                sa.text("SELECT last_position FROM event_positions WHERE name = 'global'")
            ).scalar_one()
        assert len(rows) == 2
        assert [r.position for r in rows] == [r.id for r in rows]
        assert last == rows[-1].id
        asyncio.run(_create_customer(database_url))
        with engine.connect() as connection:
            new = (
                connection.execute(
                    sa.text("SELECT position FROM events WHERE id > :id ORDER BY id"),
                    {"id": rows[-1].id},
                )
                .scalars()
                .all()
            )
        assert new == [last + 1]  # the new customer's creation event
    finally:
        engine.dispose()


async def _create_customer(database_url: str) -> None:
    container = await build(Settings(database_url=database_url, metrics_port=0))
    try:
        made = await container.auth.create_partner("new")
        await container.customers.create(
            partner_id=made.partner_id, chain_id=caip10(new_wallet()), external_id="n"
        )
    finally:
        await container.close()


async def test_a_cross_partner_watcher_on_one_replica_hears_a_commit_on_the_other(
    replicas: list[RunningServer],
) -> None:
    one, other = replicas
    watch = other.container.watch_all
    assert watch is not None
    stream = watch.stream(after=None)
    assert await anext(stream) is None  # subscribed
    made = await one.container.auth.create_partner("replica-a")
    created = await one.container.customers.create(
        partner_id=made.partner_id, chain_id=caip10(new_wallet()), external_id="x"
    )
    event = await asyncio.wait_for(anext(stream), 10)
    while event is None:  # heartbeats
        event = await asyncio.wait_for(anext(stream), 10)
    await stream.aclose()
    assert event.entity_id == created.customer.id and event.partner_id == made.partner_id
    assert event.position > 0
