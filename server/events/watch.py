"""One WatchCustomers stream: the backlog from the outbox, then live events from the hub,
with no gap and no duplicate at the seam, and the hub's heartbeats while nothing happens.

The first message comes at once: the backlog's first event or, with no backlog, a
heartbeat. Through Envoy a stream's HTTP response headers leave with its first message, so
an idle stream that waited for its first heartbeat left SSE clients without even a status
for 15 s (issue 13 row 7); and that first heartbeat also tells the client it is
subscribed: anything committed after it arrives is on the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

from server.domain.errors import StreamLagging
from server.domain.events import ChangeEvent, EventType
from server.events.hub import READ_BATCH, EventHub
from server.store.unit_of_work import SqlUnitOfWorkFactory


class CustomerWatch:
    def __init__(self, *, hub: EventHub, uow: SqlUnitOfWorkFactory, max_streams: int = 0) -> None:
        """`max_streams`: open streams per partner in this process (0: no cap)."""
        self._hub = hub
        self._uow = uow
        self._max_streams = max_streams

    async def stream(
        self, *, partner_id: UUID, after: int | None, customer_id: UUID | None
    ) -> AsyncIterator[ChangeEvent | None]:
        """Yields events, and None as a heartbeat. `after` None: from now on."""
        # Register first: whatever commits while the backlog is read waits in the queue.
        # Over the cap this raises before the first message: a real 429 through Envoy.
        subscription = await self._hub.subscribe(partner_id, customer_id, limit=self._max_streams)
        try:
            cursor = -1 if after is None else after
            sent_any = False
            if after is not None:
                while True:
                    async with self._uow() as uow:
                        backlog = await uow.events.after(
                            partner_id=partner_id,
                            seq=cursor,
                            limit=READ_BATCH,
                            types=[EventType.CUSTOMER_UPDATED],
                            entity_id=customer_id,
                        )
                    for event in backlog:
                        cursor = event.seq
                        sent_any = True
                        yield event
                    if len(backlog) < READ_BATCH:
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
                if live.seq <= cursor:
                    continue  # already sent from the backlog
                cursor = live.seq
                yield live
        finally:
            self._hub.unsubscribe(subscription)


class EveryoneWatch:
    """The cross-partner stream: every partner's customer events by global position, the
    backlog from the outbox then live events from the hub, deduplicated by position at the
    seam (the hub registered this stream before the backlog was read)."""

    def __init__(self, *, hub: EventHub, uow: SqlUnitOfWorkFactory) -> None:
        self._hub = hub
        self._uow = uow

    async def stream(self, *, after: int | None) -> AsyncIterator[ChangeEvent | None]:
        """Yields events, and None as a heartbeat. `after` None: from now on."""
        subscription = await self._hub.subscribe_everyone()
        try:
            cursor = -1 if after is None else after
            sent_any = False
            if after is not None:
                while True:
                    async with self._uow() as uow:
                        backlog = await uow.events.after_position(
                            position=cursor, limit=READ_BATCH, types=[EventType.CUSTOMER_UPDATED]
                        )
                    for event in backlog:
                        cursor = event.position
                        sent_any = True
                        yield event
                    if len(backlog) < READ_BATCH:
                        break
            if not sent_any:
                yield None
            while True:
                if subscription.lagging and subscription.queue.empty():
                    raise StreamLagging(cursor)
                live = await subscription.queue.get()
                if live is None:
                    yield None
                    continue
                if live.position <= cursor:
                    continue  # already sent from the backlog
                cursor = live.position
                yield live
        finally:
            self._hub.unsubscribe(subscription)
