"""Webhook operations on both databases, without HTTP: disabling a failing endpoint (its
deliveries paused, the webhook.disabled event in the outbox) and enabling it, replay and
redelivery bookkeeping, and claims that count the leases other workers hold."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from uuid import UUID

import pytest
import sqlalchemy as sa

from server.domain.deliveries import DeliveryInProgress, WebhookDeliveryNotFound
from server.domain.errors import InvalidField
from server.domain.events import EventType
from server.domain.webhooks import DeliveryState, WebhookNotFound, receiver
from server.services.webhook_operations import WebhookOperations
from server.store.tables import EventRow, WebhookSubscriptionRow
from server.store.webhooks import Claimed, Outcome
from tests.integration import test_webhook_store
from tests.integration.test_webhook_store import ALL, World

world = test_webhook_store.world  # the same fixture: the server's store on each database


def _operations(world: World) -> WebhookOperations:
    assert world.container.webhook_operations is not None
    return world.container.webhook_operations


async def _claim(world: World, *, held: tuple[int, ...] = (), limit: int = 10) -> list[Claimed]:
    now = world.clock.now()
    return await world.store.claim(
        now=now,
        lease_until=now + timedelta(seconds=30),
        limit=limit,
        busy=(),
        accept=lambda c: True,
        held=held,
    )


async def _subscribed(world: World, url: str = "https://ops.example/") -> tuple[UUID, UUID]:
    partner_id = await world.partner()
    made = await world.service.put(
        partner_id=partner_id, subscription_id="", callback_url=url, types=ALL
    )
    return partner_id, made.subscription.id


async def _fail(world: World, claims: list[Claimed]) -> list[UUID]:
    retry = world.clock.now()
    return await world.store.finish_all(
        [Outcome(c, DeliveryState.PENDING, retry, 500, "HTTP 500") for c in claims],
        now=world.clock.now(),
    )


async def test_an_endpoint_failing_for_the_period_is_disabled_and_enable_resumes_it(
    world: World,
) -> None:
    partner_id, hook = await _subscribed(world)
    await world.customer(partner_id)
    await world.store.relay(now=world.clock.now(), limit=100)
    assert await _fail(world, await _claim(world)) == []  # failing since now
    world.clock.advance(days=3)
    assert await _fail(world, await _claim(world)) == [hook]  # three days of failures

    fetched = await world.service.get(partner_id=partner_id, subscription_id=str(hook))
    assert not fetched.enabled
    assert [r.state for r in await world.deliveries()] == ["paused"]
    async with world.uow() as uow:
        notices = (
            await uow.session.execute(
                sa.select(EventRow.type, EventRow.entity_id, EventRow.payload).where(
                    EventRow.partner_id == partner_id,  # type: ignore[arg-type]
                    EventRow.type == EventType.WEBHOOK_DISABLED.value,  # type: ignore[arg-type]
                )
            )
        ).all()
    assert [(n.entity_id, n.payload["status"]) for n in notices] == [(hook, "disabled")]

    # Changes while disabled wait; nothing is claimed for it.
    await world.customer(partner_id)
    await world.store.relay(now=world.clock.now(), limit=100)
    assert sorted(r.state for r in await world.deliveries()) == ["paused", "paused"]
    assert await _claim(world) == []

    enabled = await _operations(world).enable(partner_id=partner_id, subscription_id=str(hook))
    assert enabled.enabled
    claimed = await _claim(world)
    assert len(claimed) == 2  # both owed ones, due at once
    assert all(c.created_at >= world.clock.now() - timedelta(seconds=1) for c in claimed)
    async with world.uow() as uow:
        row = await uow.session.get(WebhookSubscriptionRow, hook)
        assert row is not None and row.failing_since is None and row.disabled_at is None


async def test_a_success_resets_the_failing_period(world: World) -> None:
    partner_id, hook = await _subscribed(world)
    for _ in range(2):
        await world.customer(partner_id)
    await world.store.relay(now=world.clock.now(), limit=100)
    first, second = await _claim(world)
    await _fail(world, [first])
    world.clock.advance(days=2)
    await world.store.finish_all(
        [Outcome(second, DeliveryState.DELIVERED, None, 200, None)], now=world.clock.now()
    )
    world.clock.advance(days=2)  # four days since the first failure, two since a success
    assert await _fail(world, await _claim(world)) == []
    assert (await world.service.get(partner_id=partner_id, subscription_id=str(hook))).enabled


async def test_redelivery_and_replay_keep_one_row_per_event(world: World) -> None:
    partner_id, hook = await _subscribed(world)
    operations = _operations(world)
    for _ in range(3):
        await world.customer(partner_id)
    await world.store.relay(now=world.clock.now(), limit=100)
    [one, two, three] = await _claim(world)
    await world.store.finish_all(
        [Outcome(c, DeliveryState.DELIVERED, None, 200, None) for c in (one, two)]
    )
    # `three` is still under way: not redelivered, not doubled by a replay.
    with pytest.raises(DeliveryInProgress):
        await operations.redeliver(
            partner_id=partner_id, subscription_id=str(hook), delivery_id=str(three.delivery_id)
        )
    again = await operations.redeliver(
        partner_id=partner_id, subscription_id=str(hook), delivery_id=str(one.delivery_id)
    )
    assert again.state is DeliveryState.PENDING and again.attempts == 1
    replayed = await operations.replay(partner_id=partner_id, subscription_id=str(hook), after=0)
    assert replayed.events == 3
    rows = await world.deliveries()
    assert len(rows) == 3
    assert Counter(r.state for r in rows) == Counter({"pending": 2, "delivering": 1})
    with pytest.raises(InvalidField):
        await operations.replay(partner_id=partner_id, subscription_id=str(hook), after=99)
    other = await world.partner()
    with pytest.raises(WebhookNotFound):
        await operations.replay(partner_id=other, subscription_id=str(hook), after=0)
    with pytest.raises(WebhookDeliveryNotFound):
        await operations.redeliver(
            partner_id=partner_id, subscription_id=str(hook), delivery_id="2147483647"
        )


async def test_a_claim_counts_the_leases_other_workers_hold_on_the_receiver(
    world: World,
) -> None:
    url = "https://limited.example/"
    partner_id, _ = await _subscribed(world, url)
    for _ in range(6):
        await world.customer(partner_id)
    await world.store.relay(now=world.clock.now(), limit=100)
    mine = await _claim(world, limit=4)
    assert len(mine) == 4
    [theirs] = await _claim(world, limit=1)  # another worker: sees those four leases
    assert theirs.elsewhere == 4
    held = tuple(c.delivery_id for c in mine)
    [own] = await _claim(world, limit=1, held=held)  # the first again: its own not counted
    assert own.elsewhere == 1  # only the other worker's lease
    assert receiver(url) == "limited.example:443"
