"""Retention on both databases, with a moved clock: old events and finished deliveries go,
in batches; recent rows, unrelayed events, unfinished deliveries and sequences stay."""

from __future__ import annotations

import asyncio
import pathlib
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from server import app
from server.bootstrap import Container, build
from server.config import Settings
from server.domain.events import ChangeEvent
from server.domain.webhooks import DeliveryState
from server.store.engine import make_engine
from server.store.retention import RetentionPruner
from server.store.tables import (
    EventRow,
    PartnerSequenceRow,
    WebhookDeliveryRow,
    WebhookRelayCursorRow,
)
from server.store.unit_of_work import SqlUnitOfWorkFactory
from server.store.webhooks import SqlWebhookStore
from tests.helpers.clock import SteppingClock
from tests.helpers.databases import sqlite_database
from tests.helpers.wallets import caip10, new_wallet

_events = EventRow.__table__  # type: ignore[attr-defined]
_deliveries = WebhookDeliveryRow.__table__  # type: ignore[attr-defined]
_sequences = PartnerSequenceRow.__table__  # type: ignore[attr-defined]
_cursors = WebhookRelayCursorRow.__table__  # type: ignore[attr-defined]

MONTH = timedelta(days=30)
WEEK = timedelta(days=7)


@dataclass
class World:
    container: Container
    clock: SteppingClock

    @property
    def uow(self) -> SqlUnitOfWorkFactory:
        assert self.container.uow is not None
        return self.container.uow

    @property
    def store(self) -> SqlWebhookStore:
        assert self.container.webhook_store is not None
        return self.container.webhook_store

    def pruner(self, *, batch: int = 500) -> RetentionPruner:
        return RetentionPruner(self.uow, events=MONTH, deliveries=WEEK, batch=batch, pause=0)

    async def partner(self) -> UUID:
        return (await self.container.auth.create_partner("retention")).partner_id

    async def changes(self, partner_id: UUID, count: int) -> None:
        """`count` customer creations: one event each."""
        for _ in range(count):
            wallet = new_wallet()
            await self.container.customers.create(
                partner_id=partner_id, chain_id=caip10(wallet), external_id=wallet.address
            )

    async def subscribe(self, partner_id: UUID) -> UUID:
        assert self.container.webhooks is not None
        saved = await self.container.webhooks.put(
            partner_id=partner_id,
            subscription_id="",
            callback_url="https://hooks.example.com/",
            types=["customer.updated"],
        )
        return saved.subscription.id

    async def seqs(self, partner_id: UUID) -> list[int]:
        """The partner's events left in the store, by sequence."""
        query = sa.select(_events.c.seq).where(_events.c.partner_id == partner_id).order_by("seq")
        async with self.uow() as uow:
            return [int(row[0]) for row in (await uow.session.execute(query)).all()]

    async def last_seq(self, partner_id: UUID) -> int:
        query = sa.select(_sequences.c.last_seq).where(_sequences.c.partner_id == partner_id)
        async with self.uow() as uow:
            return int((await uow.session.execute(query)).scalar_one())

    async def add_deliveries(self, rows: list[dict[str, Any]]) -> None:
        async with self.uow(write=True) as uow:
            await uow.session.execute(sa.insert(_deliveries), rows)
            await uow.commit()

    async def delivery_names(self) -> set[str]:
        """Deliveries left, by the `name` each test put in its payload."""
        async with self.uow() as uow:
            rows = (await uow.session.execute(sa.select(_deliveries.c.payload))).all()
        return {str(row[0]["name"]) for row in rows}


def delivery(
    partner_id: UUID,
    subscription_id: UUID,
    name: str,
    state: DeliveryState,
    *,
    created_at: datetime,
    last_attempt: datetime | None = None,
) -> dict[str, Any]:
    """A delivery row as the relay and dispatcher leave it; `last_attempt` is when its last
    attempt was due (`next_attempt_at`)."""
    return {
        "subscription_id": subscription_id,
        "event_id": uuid4(),
        "partner_id": partner_id,
        "payload": {"name": name},
        "attempts": 0 if state is DeliveryState.PENDING else 1,
        "state": state.value,
        "next_attempt_at": last_attempt or created_at,
        "lease_until": created_at if state is DeliveryState.DELIVERING else None,
        "created_at": created_at,
    }


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[World]:
    """The composition root without the server's background tasks: nothing relays, prunes
    or delivers unless the test says so."""
    clock = SteppingClock()
    container = await build(Settings(database_url=url, metrics_port=0), clock=clock)
    try:
        yield World(container, clock)
    finally:
        await container.close()


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    async with opened(database_url) as made:
        yield made


async def test_events_older_than_the_retention_are_pruned_and_recent_ones_kept(
    world: World,
) -> None:
    partner_id = await world.partner()
    await world.changes(partner_id, 3)
    world.clock.advance(days=29)
    await world.changes(partner_id, 2)  # 29 days old at pruning: inside the window
    world.clock.advance(days=2)
    await world.changes(partner_id, 1)

    pruned = await world.pruner().prune(world.clock.now())

    assert (pruned.events, pruned.deliveries) == (3, 0)
    assert await world.seqs(partner_id) == [4, 5, 6]
    assert (await world.pruner().prune(world.clock.now())).events == 0  # nothing left to do


async def test_events_the_webhook_relay_has_not_passed_are_kept(world: World) -> None:
    partner_id, unsubscribed = await world.partner(), await world.partner()
    await world.changes(partner_id, 2)  # before the subscription: never relayed, not owed
    await world.subscribe(partner_id)  # the relay cursor starts at seq 2
    await world.changes(partner_id, 3)  # seqs 3..5: owed to the subscription, not relayed
    await world.changes(unsubscribed, 2)  # no cursor: nothing will ever relay them
    world.clock.advance(days=31)

    pruned = await world.pruner().prune(world.clock.now())

    assert pruned.events == 4
    assert await world.seqs(partner_id) == [3, 4, 5]
    assert await world.seqs(unsubscribed) == []

    assert await world.store.relay(now=world.clock.now(), limit=100) == (3, 3)
    assert (await world.pruner().prune(world.clock.now())).events == 3
    assert await world.seqs(partner_id) == []


async def test_finished_deliveries_older_than_the_retention_are_pruned_and_others_kept(
    world: World,
) -> None:
    partner_id = await world.partner()
    subscription_id = await world.subscribe(partner_id)
    start = world.clock.now()
    world.clock.advance(days=6)
    recent = world.clock.now()
    world.clock.advance(days=2)  # `start` is 8 days ago, `recent` 2 days ago
    await world.add_deliveries(
        [
            delivery(
                partner_id,
                subscription_id,
                "old delivered",
                DeliveryState.DELIVERED,
                created_at=start,
            ),
            delivery(
                partner_id, subscription_id, "old failed", DeliveryState.FAILED, created_at=start
            ),
            delivery(
                partner_id, subscription_id, "old pending", DeliveryState.PENDING, created_at=start
            ),
            delivery(
                partner_id,
                subscription_id,
                "old delivering",
                DeliveryState.DELIVERING,
                created_at=start,
            ),
            delivery(
                partner_id,
                subscription_id,
                "recent delivered",
                DeliveryState.DELIVERED,
                created_at=recent,
            ),
            delivery(
                partner_id,
                subscription_id,
                "recent failed",
                DeliveryState.FAILED,
                created_at=recent,
            ),
            # Made long ago, but its last attempt was recent: it counts from that attempt.
            delivery(
                partner_id,
                subscription_id,
                "retried until lately",
                DeliveryState.FAILED,
                created_at=start - timedelta(days=3),
                last_attempt=recent,
            ),
        ]
    )

    pruned = await world.pruner().prune(world.clock.now())

    assert (pruned.events, pruned.deliveries) == (0, 2)
    assert await world.delivery_names() == {
        "old pending",
        "old delivering",
        "recent delivered",
        "recent failed",
        "retried until lately",
    }


async def test_more_rows_than_one_batch_are_pruned_over_several_transactions(
    world: World,
) -> None:
    partner_id = await world.partner()
    subscription_id = await world.subscribe(partner_id)
    await world.changes(partner_id, 7)
    assert await world.store.relay(now=world.clock.now(), limit=100) == (7, 7)
    old = world.clock.now()
    await world.add_deliveries(
        [
            delivery(
                partner_id, subscription_id, f"extra {n}", DeliveryState.DELIVERED, created_at=old
            )
            for n in range(5)
        ]
    )
    world.clock.advance(days=31)
    for row in await world.store.claim(
        now=world.clock.now(),
        lease_until=world.clock.now() + timedelta(seconds=30),
        limit=100,
        busy=(),
        accept=lambda _: True,
    ):  # the relay's 7 deliveries, delivered long ago
        await world.store.finish(
            row, state=DeliveryState.DELIVERED, next_attempt_at=None, status=204, error=None
        )
    world.clock.advance(days=8)

    pruned = await world.pruner(batch=3).prune(world.clock.now())

    # Events 3 + 3 + 1, deliveries 3 + 3 + 3 + 3 + 0: a short batch ends each kind.
    assert (pruned.events, pruned.deliveries, pruned.transactions) == (7, 12, 3 + 5)
    assert await world.seqs(partner_id) == []
    assert await world.delivery_names() == set()


async def test_sequences_continue_after_a_partners_events_are_pruned(world: World) -> None:
    partner_id = await world.partner()
    await world.changes(partner_id, 3)
    world.clock.advance(days=31)
    assert (await world.pruner().prune(world.clock.now())).events == 3
    assert await world.seqs(partner_id) == []
    assert await world.last_seq(partner_id) == 3  # the sequence row stays

    await world.changes(partner_id, 1)

    assert await world.seqs(partner_id) == [4]
    # Catch-up and streams resuming from a pruned sequence start at the oldest kept event.
    assert world.container.events is not None and world.container.watch is not None
    page = await world.container.events.list(
        partner_id=partner_id, after=1, types=[], size=0, token=""
    )
    assert [event.seq for event in page.items] == [4]
    stream = cast(
        AsyncGenerator[ChangeEvent | None, None],
        world.container.watch.stream(partner_id=partner_id, after=1, customer_id=None),
    )
    try:
        first = await asyncio.wait_for(anext(stream), 10)
    finally:
        await stream.aclose()
    assert first is not None and first.seq == 4


@pytest.fixture
def sqlite_url(tmp_path: pathlib.Path) -> Iterator[str]:
    with sqlite_database(tmp_path) as url:
        yield url


async def test_on_sqlite_writers_get_the_write_lock_between_batches(sqlite_url: str) -> None:
    async with opened(sqlite_url) as world:
        partner_id = await world.partner()
        await world.changes(partner_id, 6)
        world.clock.advance(days=31)
        seen: list[int] = []

        async def writer() -> None:
            """An API write arriving while pruning runs: it must not wait for the end."""
            async with world.uow(write=True) as uow:
                count = sa.select(sa.func.count()).select_from(_events)
                seen.append(int((await uow.session.execute(count)).scalar_one()))
                await uow.commit()

        pruning = asyncio.create_task(world.pruner(batch=2).prune(world.clock.now()))
        await asyncio.sleep(0)  # the pruner takes the lock first
        await writer()
        pruned = await pruning

    assert (pruned.events, pruned.transactions) == (6, 4 + 1)
    assert seen and 0 < seen[0] < 6  # the writer ran after one batch, before the last


async def test_on_postgresql_pruning_skips_rows_another_transaction_holds(pg_url: str) -> None:
    async with opened(pg_url) as world:
        partner_id = await world.partner()
        subscription_id = await world.subscribe(partner_id)
        old = world.clock.now()
        await world.add_deliveries(
            [
                delivery(partner_id, subscription_id, name, DeliveryState.DELIVERED, created_at=old)
                for name in ("held", "free 1", "free 2")
            ]
        )
        world.clock.advance(days=8)
        engine = make_engine(pg_url)
        try:
            async with engine.connect() as other, other.begin():
                await other.execute(
                    sa.select(_deliveries.c.id)
                    .where(_deliveries.c.payload["name"].as_string() == "held")
                    .with_for_update()
                )
                # Never waits for the lock (a timeout here would mean it did).
                pruned = await asyncio.wait_for(world.pruner().prune(world.clock.now()), 30)
                assert pruned.deliveries == 2
                assert await world.delivery_names() == {"held"}
            # Released: the next round takes it.
            assert (await world.pruner().prune(world.clock.now())).deliveries == 1
        finally:
            await engine.dispose()


async def test_the_server_prunes_on_its_own_every_interval(database_url: str) -> None:
    clock = SteppingClock()
    settings = Settings(
        database_url=database_url,
        grpc_port=0,
        metrics_port=0,
        gateway_socket_dir=tempfile.mkdtemp(prefix="cust-"),
        retention_interval_seconds=0.05,
    )
    running = await app.start(settings, clock=clock)
    try:
        world = World(running.container, clock)
        partner_id = await world.partner()
        await world.changes(partner_id, 2)
        clock.advance(days=31)
        await world.changes(partner_id, 1)
        for _ in range(200):  # up to ~10 s: a few rounds of the retention loop
            if await world.seqs(partner_id) == [3]:
                break
            await asyncio.sleep(0.05)
        assert await world.seqs(partner_id) == [3]
    finally:
        await running.stop(0)
