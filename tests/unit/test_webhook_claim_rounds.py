"""When the dispatcher claims again at once after a claim, and when it waits for a slot to
free: a claim with every receiver busy reads their whole backlog for nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, cast

from server.events.webhooks import DeliveryOptions, WebhookWorker
from server.store.webhooks import CANDIDATES_PER_SLOT, Claimed, Claims, SqlWebhookStore
from tests.helpers.clock import SteppingClock

RECEIVER = "http://127.0.0.1:9/hook"


def _claimed(delivery_id: int, subscription_id: uuid.UUID) -> Claimed:
    return Claimed(
        delivery_id=delivery_id,
        attempt=1,
        event_id=uuid.uuid4(),
        subscription_id=subscription_id,
        callback_url=RECEIVER,
        secret="whsec_" + "A" * 32,
        payload={},
        created_at=datetime.now(UTC),
    )


class FakeStore:
    """Hands out the due deliveries it holds, as the SQL claim does: busy ones skipped,
    `more` when the candidate read stopped at its limit."""

    def __init__(self, due: list[Claimed]) -> None:
        self.due = due
        self.reads: list[int | None] = []

    async def claim(
        self,
        *,
        busy: Collection[uuid.UUID],
        accept: Callable[[Claimed], bool],
        limit: int,
        candidates: int | None = None,
        **_: Any,
    ) -> Claims:
        self.reads.append(candidates)
        window = [c for c in self.due if c.subscription_id not in busy][: candidates or limit]
        taken = [c for c in window if accept(c)][:limit]
        self.due = [c for c in self.due if c not in taken]
        claims = Claims(taken)
        claims.more = len(window) >= (candidates or limit)
        return claims


async def _worker(store: FakeStore) -> WebhookWorker:
    worker = WebhookWorker(
        cast(SqlWebhookStore, store), SteppingClock(), DeliveryOptions(per_receiver_limit=2)
    )
    worker._deliver = lambda item: asyncio.sleep(3600)  # type: ignore[method-assign]
    return worker


async def test_after_a_complete_read_with_every_receiver_busy_it_waits_for_a_free_slot() -> None:
    subscription = uuid.uuid4()
    store = FakeStore([_claimed(i, subscription) for i in range(50)])
    worker = await _worker(store)
    assert await worker.dispatch_once() == 2  # the receiver's limit; the read was cut short
    assert worker._worth_claiming_again()  # never read it all: something may be left
    assert await worker.dispatch_once() == 0  # busy: nothing outside it
    assert not worker._worth_claiming_again()
    for item in worker._in_flight.values():
        assert item.task is not None
        item.task.cancel()


async def test_new_deliveries_relayed_make_it_claim_again() -> None:
    subscription = uuid.uuid4()
    store = FakeStore([_claimed(i, subscription) for i in range(50)])
    worker = await _worker(store)
    await worker.dispatch_once()
    await worker.dispatch_once()
    worker._relays += 1  # as relay_once does when it created deliveries
    worker._more = True
    assert worker._worth_claiming_again()
    for item in worker._in_flight.values():
        assert item.task is not None
        item.task.cancel()


async def test_when_only_receivers_under_way_have_due_work_a_freed_slot_reads_only_its_share() -> (
    None
):
    subscription = uuid.uuid4()
    store = FakeStore([_claimed(i, subscription) for i in range(50)])
    worker = await _worker(store)
    await worker.dispatch_once()
    await worker.dispatch_once()  # a complete read: due work only for `subscription`
    finished = next(iter(worker._in_flight.values()))
    assert finished.task is not None
    finished.task.cancel()
    del worker._in_flight[finished.claimed.delivery_id]
    worker._per_receiver[finished.receiver] -= 1
    assert await worker.dispatch_once() == 1
    assert store.reads[-1] == CANDIDATES_PER_SLOT  # one free slot, no room for new receivers
    for item in worker._in_flight.values():
        assert item.task is not None
        item.task.cancel()
