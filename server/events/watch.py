"""One WatchCustomers stream: the backlog from the outbox, then live events from the hub,
with no gap and no duplicate at the seam, and the hub's heartbeats while nothing happens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

from server.domain.errors import StreamLagging
from server.domain.events import ChangeEvent, EventType
from server.events.hub import READ_BATCH, EventHub
from server.store.unit_of_work import SqlUnitOfWorkFactory


class CustomerWatch:
    def __init__(self, *, hub: EventHub, uow: SqlUnitOfWorkFactory) -> None:
        self._hub = hub
        self._uow = uow

    async def stream(
        self, *, partner_id: UUID, after: int | None, customer_id: UUID | None
    ) -> AsyncIterator[ChangeEvent | None]:
        """Yields events, and None as a heartbeat. `after` None: from now on.

        With no backlog to send, the first heartbeat goes out at once: the client sees the
        stream open (response headers, over REST) without waiting a heartbeat period."""
        # Register first: whatever commits while the backlog is read waits in the queue.
        subscription = await self._hub.subscribe(partner_id, customer_id)
        try:
            cursor = -1 if after is None else after
            sent = False
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
                        sent = True
                        yield event
                    if len(backlog) < READ_BATCH:
                        break
            if not sent:
                yield None
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
