"""Live fan-out of customer changes to WatchCustomers streams in this process.

One database read per partner per wake-up serves every stream of that partner. A stream
registers before it reads its backlog, so nothing committed in between is lost; events are
deduplicated by sequence at the seam. A stream whose bounded queue overflows is marked
lagging and dropped, and told so, rather than slowing everyone else down.

Heartbeats come from the hub too, one tick for every stream: a stream that was offered
nothing since the last tick gets a heartbeat in its queue. A timer per stream and wait
(asyncio.timeout around each queue read) was a quarter of the server's time when a change
fanned out to 2,000 streams. An idle stream hears every `heartbeat` seconds; a busy one
is never silent for more than two periods.

Cross-partner subscriptions (the operator's watchers, SPEC section 13) share one more cursor,
by global position: any partner's commit wakes them, and one read serves them all.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from uuid import UUID

import structlog

from server.domain.events import ChangeEvent, EventType
from server.domain.limits import TooManyStreams
from server.events.failures import round_failed
from server.events.mailbox import Mailbox
from server.store.unit_of_work import SqlUnitOfWorkFactory

log = structlog.get_logger(__name__)

QUEUE_LIMIT = 1_000
READ_BATCH = 500


@dataclass(eq=False)
class Subscription:
    partner_id: UUID | None  # None: every partner (by global position)
    customer_id: UUID | None
    # Events, and None for a heartbeat.
    queue: Mailbox[ChangeEvent | None] = field(default_factory=lambda: Mailbox(QUEUE_LIMIT))
    lagging: bool = False
    quiet: bool = True  # offered nothing since the last heartbeat tick


class EventHub:
    def __init__(self, uow: SqlUnitOfWorkFactory, *, heartbeat: float) -> None:
        self._uow = uow
        self.heartbeat = heartbeat  # seconds; read at every tick
        self._subscriptions: dict[UUID, set[Subscription]] = defaultdict(set)
        self._cursor: dict[UUID, int] = {}  # last sequence fanned out, per watched partner
        self._pending: set[UUID] = set()
        self._woken = asyncio.Event()
        self._everyone: set[Subscription] = set()  # cross-partner subscriptions
        self._position: int | None = None  # last global position fanned out to them
        self._everyone_pending = False
        self._check = False  # another process committed something: look what (wake_changed)

    # -- producers ---------------------------------------------------------------------
    def published(self, events: list[ChangeEvent]) -> None:
        """This process committed events (unit-of-work callback)."""
        for partner_id in {e.partner_id for e in events}:
            self.wake(partner_id)

    def wake(self, partner_id: UUID) -> None:
        """Events for the partner may have committed (here, or on another replica)."""
        if self._everyone:
            self._everyone_pending = True
            self._woken.set()
        if partner_id in self._subscriptions:
            self._pending.add(partner_id)
            self._woken.set()

    def wake_changed(self) -> None:
        """Another process committed something, perhaps events (SQLite's data_version moved).
        One read of the watched partners' last sequence numbers tells which of them to read,
        where wake_all reads each of them: another worker's signature nonces alone moved it
        every few milliseconds while streams opened, and each time this read 20 partners."""
        if self._subscriptions or self._everyone:
            self._check = True
            self._woken.set()

    def wake_all(self) -> None:
        """After a lost notification channel: re-read everything that is watched."""
        self._pending.update(self._subscriptions)
        self._everyone_pending = bool(self._everyone)
        self._woken.set()

    # -- consumers ---------------------------------------------------------------------
    async def subscribe(
        self, partner_id: UUID, customer_id: UUID | None, *, limit: int = 0
    ) -> Subscription:
        """`limit`: the partner's open streams in this process (0: no cap); one more is
        refused with TooManyStreams."""
        watchers = self._subscriptions.get(partner_id)
        if limit and watchers is not None and len(watchers) >= limit:
            raise TooManyStreams(limit)
        subscription = Subscription(partner_id, customer_id)
        # Counted at once, before the read below yields to other calls: concurrent
        # subscribers cannot all pass the cap. Fan-out skips the partner until its cursor
        # is known.
        self._subscriptions[partner_id].add(subscription)
        if partner_id not in self._cursor:
            try:
                async with self._uow() as uow:
                    last = await uow.events.last_seq(partner_id=partner_id)
            except BaseException:
                self.unsubscribe(subscription)
                raise
            # Another subscriber's read may have set it meanwhile (and fan-out moved it on).
            self._cursor.setdefault(partner_id, last)
            self.wake(partner_id)  # anything committed while we looked
        # With the cursor known already, the fan-out reaches the new subscription from it on
        # (every commit wakes the partner): no read of its own. A read per subscription
        # was a quarter of a worker's time while 10,000 streams opened.
        return subscription

    async def subscribe_everyone(self) -> Subscription:
        """A subscription to every partner's customer events, by global position."""
        subscription = Subscription(None, None)
        if self._position is None:
            async with self._uow() as uow:
                self._position = await uow.events.last_position()
        self._everyone.add(subscription)
        self._everyone_pending = True  # anything committed while we looked
        self._woken.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription.partner_id is None:
            self._everyone.discard(subscription)
            if not self._everyone:
                self._position = None
            return
        watchers = self._subscriptions.get(subscription.partner_id)
        if watchers is not None:
            watchers.discard(subscription)
            if not watchers:
                del self._subscriptions[subscription.partner_id]
                self._cursor.pop(subscription.partner_id, None)

    @property
    def stream_count(self) -> int:
        return sum(len(s) for s in self._subscriptions.values()) + len(self._everyone)

    # -- the loops ---------------------------------------------------------------------
    async def run(self) -> None:
        await asyncio.gather(self._deliver(), self._beat())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            self.tick()

    def tick(self) -> None:
        """One heartbeat tick: a heartbeat for every stream offered nothing since the last
        one (and with nothing waiting in its queue)."""
        for watchers in [*self._subscriptions.values(), self._everyone]:
            for subscription in watchers:
                if subscription.quiet and subscription.queue.empty():
                    subscription.queue.put_nowait(None)
                subscription.quiet = True

    async def _deliver(self) -> None:
        while True:
            await self._woken.wait()
            self._woken.clear()
            if self._check:
                self._check = False
                try:
                    await self._find_changed()
                except Exception as error:  # noqa: BLE001 (logged by round_failed) every watched partner is read instead
                    round_failed("event change check failed", error)
                    self.wake_all()
                    self._woken.clear()
            partners, self._pending = self._pending, set()
            if self._everyone_pending:
                self._everyone_pending = False
                try:
                    await self._fan_out_everyone()
                except Exception:  # a failed read is retried on the next wake-up
                    log.exception("cross-partner fan-out failed")
                    self._everyone_pending = True
                    await asyncio.sleep(0.5)
                    self._woken.set()
            for partner_id in partners:
                try:
                    await self._fan_out(partner_id)
                except Exception as error:  # noqa: BLE001 (logged by round_failed) retried on the next wake-up
                    round_failed("event fan-out failed", error, partner_id=str(partner_id))
                    self._pending.add(partner_id)
                    await asyncio.sleep(0.5)
                    self._woken.set()

    async def _find_changed(self) -> None:
        """Marks the watched partners whose last sequence is past their cursor pending (and
        the cross-partner subscriptions, when the global position moved)."""
        watched = [partner_id for partner_id in self._subscriptions if partner_id in self._cursor]
        async with self._uow() as uow:
            last = await uow.events.last_seqs(partner_ids=watched) if watched else {}
            position = await uow.events.last_position() if self._everyone else None
        for partner_id, seq in last.items():
            cursor = self._cursor.get(partner_id)
            if cursor is not None and seq > cursor:
                self._pending.add(partner_id)
        if position is not None and (self._position is None or position > self._position):
            self._everyone_pending = True

    async def _fan_out(self, partner_id: UUID) -> None:
        while partner_id in self._cursor:
            async with self._uow() as uow:
                events = await uow.events.after(
                    partner_id=partner_id, seq=self._cursor[partner_id], limit=READ_BATCH
                )
            if not events:
                return
            for event in events:
                if event.type is not EventType.CUSTOMER_UPDATED:
                    continue  # streams carry customer changes only
                for subscription in list(self._subscriptions.get(partner_id, ())):
                    # Every customer of the partner, or the one it watches.
                    if subscription.customer_id in (None, event.entity_id):
                        self._offer(subscription, event)
            if partner_id in self._cursor:
                self._cursor[partner_id] = events[-1].seq
            if len(events) < READ_BATCH:
                return

    async def _fan_out_everyone(self) -> None:
        while self._position is not None:
            async with self._uow() as uow:
                events = await uow.events.after_position(
                    position=self._position, limit=READ_BATCH, types=[EventType.CUSTOMER_UPDATED]
                )
            if not events:
                return
            for event in events:
                for subscription in list(self._everyone):
                    self._offer(subscription, event)
            if self._position is not None:
                self._position = events[-1].position
            if len(events) < READ_BATCH:
                return

    def _offer(self, subscription: Subscription, event: ChangeEvent) -> None:
        subscription.quiet = False
        try:
            subscription.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Cut off rather than buffered without bound; the stream says where to resume.
            subscription.lagging = True
            self.unsubscribe(subscription)
