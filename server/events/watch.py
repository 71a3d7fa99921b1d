"""A WatchCustomers stream (and the operators' cross-partner one): the backlog from the outbox,
then live events from the hub, with no gap and no duplicate at the seam, and the hub's
heartbeats while nothing happens.

The first message comes at once: the backlog's first event or, with no backlog, a
heartbeat. Through Envoy a stream's HTTP response headers leave with its first message, so
an idle stream that waited for its first heartbeat left SSE clients without even a status
for 15 s (issue 13 row 7); and that first heartbeat also tells the client it is
subscribed: anything committed after it arrives is on the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

from server.domain.errors import StreamLagging
from server.domain.events import ChangeEvent, EventType
from server.events.hub import READ_BATCH, EventHub, Subscription
from server.store.unit_of_work import SqlUnitOfWorkFactory


class CustomerWatch:
    def __init__(self, *, hub: EventHub, uow: SqlUnitOfWorkFactory, max_streams: int = 0) -> None:
        """`max_streams`: open streams per partner in this process (0: no cap)."""
        self._hub = hub
        self._uow = uow
        self._max_streams = max_streams

    def stream(
        self, *, partner_id: UUID, after: int | None, customer_id: UUID | None
    ) -> AsyncIterator[ChangeEvent | None]:
        """Yields events, and None as a heartbeat. `after` None: from now on. By partner
        sequence."""

        async def backlog(cursor: int) -> list[ChangeEvent]:
            async with self._uow() as uow:
                return await uow.events.after(
                    partner_id=partner_id,
                    seq=cursor,
                    limit=READ_BATCH,
                    types=[EventType.CUSTOMER_UPDATED],
                    entity_id=customer_id,
                )

        # Over the cap the subscription raises before the first message: a real 429
        # through Envoy.
        return _backlog_then_live(
            self._hub,
            lambda: self._hub.subscribe(partner_id, customer_id, limit=self._max_streams),
            backlog,
            after=after,
            key=_seq,
        )


class EveryoneWatch:
    """The cross-partner stream: every partner's customer events by global position."""

    def __init__(self, *, hub: EventHub, uow: SqlUnitOfWorkFactory) -> None:
        self._hub = hub
        self._uow = uow

    def stream(self, *, after: int | None) -> AsyncIterator[ChangeEvent | None]:
        """Yields events, and None as a heartbeat. `after` None: from now on. By global
        position."""

        async def backlog(cursor: int) -> list[ChangeEvent]:
            async with self._uow() as uow:
                return await uow.events.after_position(
                    position=cursor, limit=READ_BATCH, types=[EventType.CUSTOMER_UPDATED]
                )

        return _backlog_then_live(
            self._hub, self._hub.subscribe_everyone, backlog, after=after, key=_position
        )


def _seq(event: ChangeEvent) -> int:
    return event.seq


def _position(event: ChangeEvent) -> int:
    return event.position


async def _backlog_then_live(
    hub: EventHub,
    subscribe: Callable[[], Awaitable[Subscription]],
    backlog: Callable[[int], Awaitable[list[ChangeEvent]]],
    *,
    after: int | None,
    key: Callable[[ChangeEvent], int],
) -> AsyncIterator[ChangeEvent | None]:
    """Both streams' one seam: subscribe, send the backlog after `after`, then the live
    events, each once in `key` order (what the backlog sent is dropped from the queue)."""
    # Register first: whatever commits while the backlog is read waits in the queue.
    subscription = await subscribe()
    try:
        cursor = -1 if after is None else after
        sent_any = False
        if after is not None:
            while True:
                events = await backlog(cursor)
                for event in events:
                    cursor = key(event)
                    sent_any = True
                    yield event
                if len(events) < READ_BATCH:
                    break
        if not sent_any:
            yield None  # the stream is open (and subscribed) now, not at the first beat
        while True:
            if subscription.lagging and subscription.queue.empty():
                raise StreamLagging(cursor)
            live = await subscription.queue.get()
            if live is None:
                yield None  # a heartbeat tick of the hub
                continue
            if key(live) <= cursor:
                continue  # already sent from the backlog
            cursor = key(live)
            yield live
    finally:
        hub.unsubscribe(subscription)
