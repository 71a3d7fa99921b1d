"""Retention: old events and finished webhook deliveries are deleted in small batches.

Why batches: one DELETE of a month of rows would hold SQLite's write lock (or PostgreSQL row
locks and a long transaction) for as long as it runs, and every API write would wait behind
it. A batch of a few hundred rows is one short write transaction; between batches the pruner
pauses, so this process's writers (queued on the unit of work's lock) and other processes'
(polling the shared write lock, store/write_lock.py) get their turn.

What is never deleted:
- an event a webhook relay cursor has not passed yet (`seq` above the partner's cursor): its
  deliveries do not exist yet; a partner without a cursor has no subscription to relay to;
- a partner's `partner_sequences` row, so its next event still gets the next sequence;
- a delivery still pending or delivering, however old (the dispatcher owns it).

A stream or `GET /events` resuming after a sequence that was pruned simply starts at the
oldest event kept (docs/DECISIONS.md, "Retention").
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult

from server.domain.webhooks import DeliveryState
from server.store.tables import EventRow, UTCDateTime, WebhookDeliveryRow, WebhookRelayCursorRow
from server.store.unit_of_work import SqlUnitOfWorkFactory

BATCH = 500  # rows per write transaction: a few milliseconds of lock, not seconds
PAUSE = 0.05  # seconds between batches: long enough for another process's poll to get in

_events = EventRow.__table__  # type: ignore[attr-defined]
_cursors = WebhookRelayCursorRow.__table__  # type: ignore[attr-defined]
_deliveries = WebhookDeliveryRow.__table__  # type: ignore[attr-defined]

_CUTOFF = sa.bindparam("cutoff", type_=UTCDateTime())
_LIMIT = sa.bindparam("batch", type_=sa.Integer())

_RELAYED = ~sa.exists().where(
    _cursors.c.partner_id == _events.c.partner_id, _cursors.c.last_seq < _events.c.seq
)
_FINISHED = (DeliveryState.DELIVERED.value, DeliveryState.FAILED.value)


def _delete_batch(table: sa.Table, *conditions: Any) -> Any:
    """DELETE ... WHERE id IN (SELECT id ... LIMIT n FOR UPDATE SKIP LOCKED).

    PostgreSQL: a row another transaction holds is skipped, never waited for (it goes next
    round). SQLite renders no FOR UPDATE; its integer primary key is the rowid, so the
    subquery is a rowid list. One statement serves both, built once.
    """
    chosen = (
        sa.select(table.c.id)
        .where(*conditions)
        .limit(_LIMIT)
        .with_for_update(of=table, skip_locked=True)
    )
    return sa.delete(table).where(table.c.id.in_(chosen))


# Old and already relayed (ix_events_occurred finds the old ones).
_PRUNE_EVENTS = _delete_batch(_events, _events.c.occurred_at < _CUTOFF, _RELAYED)
# Finished, and its last attempt was due before the cutoff: `next_attempt_at` is when the
# last attempt was due (delivered and failed leave it there), so a delivery that failed just
# now after days of retries is kept for the full window; ix_webhook_deliveries_due
# (state, next_attempt_at) serves the query.
_PRUNE_DELIVERIES = _delete_batch(
    _deliveries, _deliveries.c.state.in_(_FINISHED), _deliveries.c.next_attempt_at < _CUTOFF
)


@dataclass(frozen=True)
class Pruned:
    """What one round deleted, and in how many write transactions."""

    events: int = 0
    deliveries: int = 0
    transactions: int = 0


class RetentionPruner:
    def __init__(
        self,
        uow: SqlUnitOfWorkFactory,
        *,
        events: timedelta,
        deliveries: timedelta,
        batch: int = BATCH,
        pause: float = PAUSE,
    ) -> None:
        """`events` / `deliveries`: how long each is kept. Tests shrink `batch` and `pause`."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._uow = uow
        self._events = events
        self._deliveries = deliveries
        self._batch = batch
        self._pause = pause

    async def prune(self, now: datetime) -> Pruned:
        """One round: every event and finished delivery past its retention at `now`."""
        events, event_batches = await self._drain(_PRUNE_EVENTS, now - self._events)
        deliveries, delivery_batches = await self._drain(_PRUNE_DELIVERIES, now - self._deliveries)
        return Pruned(events, deliveries, event_batches + delivery_batches)

    async def _drain(self, statement: Any, cutoff: datetime) -> tuple[int, int]:
        """Batches until one comes back short. Returns (rows deleted, transactions)."""
        deleted = transactions = 0
        params = {"cutoff": cutoff, "batch": self._batch}
        while True:
            if transactions:
                await asyncio.sleep(self._pause)  # writers interleave between batches
            async with self._uow(write=True) as uow:
                result = await uow.session.execute(statement, params)
                await uow.commit()
            count = int(cast(CursorResult[Any], result).rowcount)  # a DELETE's result
            deleted += count
            transactions += 1
            if count < self._batch:
                return deleted, transactions
