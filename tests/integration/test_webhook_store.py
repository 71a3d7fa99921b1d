"""The webhook store and worker on both databases: subscriptions (SSRF in production mode),
the relay's cursors and idempotence, the dispatcher's leases, and a graceful stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import pytest
import sqlalchemy as sa

from server.bootstrap import Container, build
from server.config import Settings
from server.domain.errors import InvalidField
from server.domain.webhooks import (
    DeliveryState,
    RetrySchedule,
    WebhookLimitReached,
    WebhookNotFound,
)
from server.events.webhooks import DeliveryOptions, WebhookWorker
from server.services.webhooks import WebhookService
from server.store.engine import make_engine
from server.store.tables import WebhookDeliveryRow, WebhookRelayCursorRow
from server.store.unit_of_work import SqlUnitOfWorkFactory
from server.store.webhooks import Claimed, Outcome, SqlWebhookStore
from tests.helpers.clock import SteppingClock
from tests.helpers.receivers import Receiver, running_receiver
from tests.helpers.wallets import caip10, new_wallet

ALL = ["customer.updated", "account.updated", "card.updated"]


@dataclass
class World:
    container: Container
    store: SqlWebhookStore
    service: WebhookService
    clock: SteppingClock
    uow: SqlUnitOfWorkFactory

    async def partner(self) -> UUID:
        return (await self.container.auth.create_partner("webhooks")).partner_id

    async def customer(self, partner_id: UUID) -> str:
        wallet = new_wallet()
        created = await self.container.customers.create(
            partner_id=partner_id, chain_id=caip10(wallet), external_id=wallet.address
        )
        return str(created.customer.id)

    async def subscribe(self, partner_id: UUID, receiver: Receiver) -> None:
        """The receiver gets the partner's customer events and checks their signatures."""
        made = await self.service.put(
            partner_id=partner_id,
            subscription_id="",
            callback_url=receiver.url,
            types=["customer.updated"],
        )
        receiver.secret = made.subscription.secret

    async def deliveries(self) -> list[WebhookDeliveryRow]:
        async with self.uow() as uow:
            rows = await uow.session.execute(
                sa.select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id)  # type: ignore[arg-type]
            )
            found = list(rows.scalars())
            uow.session.expunge_all()  # keep them loaded past the unit of work's rollback
            return found


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    clock = SteppingClock()
    container = await build(Settings(database_url=database_url, metrics_port=0), clock=clock)
    assert container.webhook_store is not None
    store = container.webhook_store  # shares the server's SQLite write lock
    engine = make_engine(database_url)
    uow = SqlUnitOfWorkFactory(engine)  # the test's own look at the tables
    try:
        yield World(
            container, store, WebhookService(store=store, clock=clock, production=False), clock, uow
        )
    finally:
        await engine.dispose()
        await container.close()


async def test_production_mode_refuses_internal_callback_urls(world: World) -> None:
    partner_id = await world.partner()
    strict = WebhookService(store=world.store, clock=world.clock, production=True)
    for url in ["http://127.0.0.1:9/", "http://localhost/", "http://[::1]/", "http://10.0.0.7/"]:
        with pytest.raises(InvalidField):
            await strict.put(partner_id=partner_id, subscription_id="", callback_url=url, types=ALL)
    saved = await strict.put(
        partner_id=partner_id,
        subscription_id="",
        callback_url="https://hooks.example.com/",
        types=ALL,
    )
    assert saved.created and saved.subscription.secret.startswith("whsec_")
    assert await strict.list(partner_id=partner_id) == [saved.subscription]


async def test_subscriptions_are_per_partner_and_limited(world: World) -> None:
    mine, theirs = await world.partner(), await world.partner()
    made = await world.service.put(
        partner_id=mine, subscription_id="", callback_url="https://a.example/", types=ALL
    )
    sid = str(made.subscription.id)
    with pytest.raises(WebhookNotFound):
        await world.service.get(partner_id=theirs, subscription_id=sid)
    with pytest.raises(WebhookNotFound):
        await world.service.put(
            partner_id=theirs, subscription_id=sid, callback_url="https://b.example/", types=ALL
        )
    with pytest.raises(WebhookNotFound):
        await world.service.delete(partner_id=theirs, subscription_id=sid)
    for _ in range(19):
        await world.service.put(
            partner_id=mine, subscription_id="", callback_url="https://a.example/", types=ALL
        )
    with pytest.raises(WebhookLimitReached):
        await world.service.put(
            partner_id=mine, subscription_id="", callback_url="https://a.example/", types=ALL
        )
    await world.service.delete(partner_id=mine, subscription_id=sid)
    await world.service.put(  # room again
        partner_id=mine, subscription_id="", callback_url="https://a.example/", types=ALL
    )


async def test_relay_starts_at_the_subscription_matches_types_and_never_duplicates(
    world: World,
) -> None:
    partner_id, other = await world.partner(), await world.partner()
    await world.customer(partner_id)  # before any subscription: not delivered
    cards_only = await world.service.put(
        partner_id=partner_id,
        subscription_id="",
        callback_url="https://c.example/",
        types=["card.updated"],
    )
    customers = await world.service.put(
        partner_id=partner_id,
        subscription_id="",
        callback_url="https://d.example/",
        types=["customer.updated"],
    )
    first = await world.customer(partner_id)
    await world.customer(other)  # another partner with no subscription
    assert await world.store.relay(now=world.clock.now(), limit=100) == (1, 1)
    rows = await world.deliveries()
    assert [(r.subscription_id, r.payload["id"]) for r in rows] == [
        (customers.subscription.id, first)
    ]
    assert rows[0].payload["webhookType"] == "customer.updated"
    assert rows[0].state == DeliveryState.PENDING
    assert await world.store.relay(now=world.clock.now(), limit=100) == (0, 0)

    # A second relay over the same events (a cursor set back, as by a racing replica) adds
    # nothing: the (subscription, event) pair is unique.
    async with world.uow(write=True) as uow:
        await uow.session.execute(
            sa.update(WebhookRelayCursorRow)
            .where(WebhookRelayCursorRow.partner_id == partner_id)  # type: ignore[arg-type]
            .values(last_seq=1)  # just before `first`
        )
        await uow.commit()
    read, created = await world.store.relay(now=world.clock.now(), limit=100)
    assert (read, created) == (1, 0)
    assert len(await world.deliveries()) == 1
    assert cards_only.subscription.id not in {r.subscription_id for r in await world.deliveries()}


async def test_leases_expire_and_a_stale_worker_cannot_overwrite(world: World) -> None:
    partner_id = await world.partner()
    await world.service.put(
        partner_id=partner_id, subscription_id="", callback_url="https://e.example/", types=ALL
    )
    await world.customer(partner_id)
    await world.store.relay(now=world.clock.now(), limit=100)

    def claim(now_offset: float = 0.0) -> asyncio.Future[list[Claimed]]:
        now = world.clock.now() + timedelta(seconds=now_offset)
        return asyncio.ensure_future(
            world.store.claim(
                now=now,
                lease_until=now + timedelta(seconds=30),
                limit=10,
                busy=(),
                accept=lambda c: True,
            )
        )

    [held] = await claim()
    assert held.attempt == 1
    assert await claim() == []  # leased
    [taken_over] = await claim(now_offset=31)  # the first worker "died"
    assert taken_over.delivery_id == held.delivery_id and taken_over.attempt == 2
    # The first worker wakes up late: its outcome is not recorded.
    assert not await world.store.finish(
        held, state=DeliveryState.DELIVERED, next_attempt_at=None, status=200, error=None
    )
    assert await world.store.finish(
        taken_over, state=DeliveryState.DELIVERED, next_attempt_at=None, status=204, error=None
    )
    [row] = await world.deliveries()
    assert (row.state, row.attempts, row.last_status) == ("delivered", 2, 204)


async def test_outcomes_recorded_together_keep_each_lease_fenced(world: World) -> None:
    partner_id = await world.partner()
    await world.service.put(
        partner_id=partner_id, subscription_id="", callback_url="https://h.example/", types=ALL
    )
    for _ in range(3):
        await world.customer(partner_id)
    await world.store.relay(now=world.clock.now(), limit=100)
    now = world.clock.now()

    async def claim(at: datetime, lease: float, limit: int) -> list[Claimed]:
        return await world.store.claim(
            now=at,
            lease_until=at + timedelta(seconds=lease),
            limit=limit,
            busy=(),
            accept=lambda c: True,
        )

    [third] = await claim(now, lease=1, limit=1)  # a short lease, soon taken over
    first, second = await claim(now, lease=30, limit=10)
    [taken_over] = await claim(now + timedelta(seconds=2), lease=30, limit=10)
    assert taken_over.delivery_id == third.delivery_id
    assert [c.payload["eventId"] for c in (first, second)] == [
        str(c.event_id) for c in (first, second)
    ]  # payloads are read for what was taken
    retry_at = now + timedelta(seconds=60)
    await world.store.finish_all(
        [
            Outcome(first, DeliveryState.DELIVERED, None, 204, None),
            Outcome(second, DeliveryState.PENDING, retry_at, 500, "HTTP 500"),
            Outcome(third, DeliveryState.DELIVERED, None, 200, None),  # its lease ran out
        ]
    )
    rows = {row.id: row for row in await world.deliveries()}
    assert (rows[first.delivery_id].state, rows[first.delivery_id].last_status) == (
        "delivered",
        204,
    )
    again = rows[second.delivery_id]
    assert (again.state, again.last_status, again.last_error) == ("pending", 500, "HTTP 500")
    assert again.next_attempt_at.replace(tzinfo=None) == retry_at.replace(tzinfo=None)
    assert again.lease_until is None
    late = rows[third.delivery_id]
    assert (late.state, late.attempts, late.last_status) == ("delivering", taken_over.attempt, None)


async def test_busy_subscriptions_and_refused_candidates_stay_pending(world: World) -> None:
    partner_id = await world.partner()
    made = await world.service.put(
        partner_id=partner_id, subscription_id="", callback_url="https://f.example/", types=ALL
    )
    for _ in range(3):
        await world.customer(partner_id)
    await world.store.relay(now=world.clock.now(), limit=100)
    now = world.clock.now()
    lease = now + timedelta(seconds=30)
    assert (
        await world.store.claim(
            now=now, lease_until=lease, limit=10, busy={made.subscription.id}, accept=lambda c: True
        )
        == []
    )
    seen: list[Claimed] = []

    def one_only(claimed: Claimed) -> bool:
        seen.append(claimed)
        return len(seen) == 1

    got = await world.store.claim(now=now, lease_until=lease, limit=10, busy=(), accept=one_only)
    assert len(got) == 1 and len(seen) == 3
    assert sorted(r.state for r in await world.deliveries()) == ["delivering", "pending", "pending"]


async def test_deleting_a_subscription_fails_its_pending_deliveries(world: World) -> None:
    partner_id = await world.partner()
    made = await world.service.put(
        partner_id=partner_id, subscription_id="", callback_url="https://g.example/", types=ALL
    )
    await world.customer(partner_id)
    await world.store.relay(now=world.clock.now(), limit=100)
    await world.service.delete(partner_id=partner_id, subscription_id=str(made.subscription.id))
    [row] = await world.deliveries()
    assert (row.state, row.last_error) == ("failed", "subscription deleted")
    now = world.clock.now()
    assert (
        await world.store.claim(now=now, lease_until=now, limit=10, busy=(), accept=lambda c: True)
        == []
    )


async def test_the_worker_delivers_and_hands_back_unfinished_work_when_stopped(
    world: World,
) -> None:
    partner_id = await world.partner()
    options = DeliveryOptions(
        schedule=RetrySchedule(base=timedelta(seconds=0.2), max_age=timedelta(seconds=30)),
        timeout=10.0,
        poll=0.1,
    )
    with running_receiver() as fast, running_receiver(Receiver(delay=3.0)) as slow:
        for receiver in (fast, slow):
            await world.subscribe(partner_id, receiver)
        worker = WebhookWorker(world.store, world.clock, options)
        running = asyncio.create_task(worker.run())
        customer = await world.customer(partner_id)
        worker.wake()
        await asyncio.to_thread(fast.wait_for, lambda r: len(r.deliveries) == 1, 10)
        await asyncio.to_thread(slow.wait_for, lambda r: r.received == 1, 10)
        for _ in range(100):  # the fast answer recorded, not just received
            if "delivered" in {r.state for r in await world.deliveries()}:
                break
            await asyncio.sleep(0.05)
        running.cancel()  # graceful stop while the slow receiver still holds its request
        with pytest.raises(asyncio.CancelledError):
            await running
    assert next(iter(fast.deliveries.values()))["id"] == customer
    states = {str(r.subscription_id): r.state for r in await world.deliveries()}
    assert sorted(states.values()) == ["delivered", "pending"]  # handed back, due at once


async def test_deliveries_to_a_receiver_reuse_its_connections(world: World) -> None:
    """A receiver's short answer is read and dropped, so its connection serves the next
    delivery: at most one connection per concurrent slot, not one per delivery."""
    partner_id = await world.partner()
    options = DeliveryOptions(poll=0.1)
    with running_receiver(Receiver(keep_alive=True)) as receiver:
        await world.subscribe(partner_id, receiver)
        worker = WebhookWorker(world.store, world.clock, options)
        running = asyncio.create_task(worker.run())
        try:
            for _ in range(10):
                await world.customer(partner_id)
            worker.wake()
            await asyncio.to_thread(receiver.wait_for, lambda r: len(r.deliveries) >= 10, 15)
        finally:
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
    assert len(receiver.deliveries) >= 10
    assert len(receiver.peers) <= options.per_receiver_limit


async def test_an_attempt_that_raises_anything_is_a_failed_attempt_backed_off(
    world: World,
) -> None:
    """Whatever a POST raises (here an error no HTTP client maps) is recorded as that attempt
    failing and backed off, never left `delivering` until the lease runs out (issue 13)."""
    partner_id = await world.partner()

    async def broken_resolver(host: str, port: int) -> list[str]:
        raise RuntimeError("resolver exploded")

    options = DeliveryOptions(
        schedule=RetrySchedule(base=timedelta(seconds=60), max_age=timedelta(hours=1)),
        timeout=10.0,
        poll=0.1,
    )
    await world.service.put(
        partner_id=partner_id,
        subscription_id="",
        callback_url="http://hooks.example.com/",
        types=["customer.updated"],
    )
    worker = WebhookWorker(world.store, world.clock, options, resolve=broken_resolver)
    running = asyncio.create_task(worker.run())
    try:
        await world.customer(partner_id)
        worker.wake()
        rows: list[WebhookDeliveryRow] = []
        for _ in range(100):
            rows = await world.deliveries()
            if rows and rows[0].last_error is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error == "transport error (RuntimeError)"
    assert row.next_attempt_at is not None
    # The clock does not move by itself here: the retry waits out its backoff (~60 s).
    assert row.next_attempt_at - world.clock.now() > timedelta(seconds=30)
