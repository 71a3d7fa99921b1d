"""What a partner does with a subscription's deliveries (the delivery log, redelivery,
replay) and with the subscription itself beyond PUT (secret rotation, re-enabling).

Each method is one unit of work, so inside an idempotent call it is the call's one write
scope (store/idempotency.py): the change and the stored answer commit together.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from server.domain.deliveries import (
    Delivery,
    DeliveryInProgress,
    Replayed,
    WebhookDeliveryNotFound,
    check_replay_after,
    rotated,
)
from server.domain.webhooks import DeliveryState, WebhookNotFound, WebhookSubscription
from server.store.dialect import upsert_insert
from server.store.tables import (
    EventRow,
    PartnerSequenceRow,
    WebhookDeliveryRow,
    WebhookRelayCursorRow,
    WebhookSubscriptionRow,
)
from server.store.unit_of_work import SqlUnitOfWorkFactory
from server.store.webhook_rows import own_notice, subscription_of
from server.store.webhooks import INSERT_CHUNK, body

_Delivery = WebhookDeliveryRow
_Subscription = WebhookSubscriptionRow
_OWED = (DeliveryState.PENDING.value, DeliveryState.DELIVERING.value)
_LOG_COLUMNS = (
    col(_Delivery.id),
    col(_Delivery.subscription_id),
    col(_Delivery.event_id),
    col(_Delivery.event_type),
    col(_Delivery.seq),
    col(_Delivery.state),
    col(_Delivery.attempts),
    col(_Delivery.last_status),
    col(_Delivery.last_error),
    col(_Delivery.next_attempt_at),
    col(_Delivery.created_at),
    col(_Delivery.lease_until),
)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=int(row.id),
        subscription_id=row.subscription_id,
        event_id=row.event_id,
        event_type=row.event_type,
        seq=int(row.seq) if row.seq is not None else None,
        state=DeliveryState(row.state),
        attempts=int(row.attempts),
        last_status=row.last_status,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at if row.state in _OWED else None,
        created_at=row.created_at,
    )


async def _live(
    session: AsyncSession, *, partner_id: UUID, subscription_id: UUID, lock: bool = False
) -> WebhookSubscriptionRow:
    """The partner's live subscription, or WebhookNotFound (another partner's included)."""
    query = select(_Subscription).where(
        col(_Subscription.id) == subscription_id,
        col(_Subscription.partner_id) == partner_id,
        col(_Subscription.deleted_at).is_(None),
    )
    if lock:  # NO KEY UPDATE: deliveries being inserted for it need not wait
        query = query.with_for_update(key_share=True)
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise WebhookNotFound()
    return row


class SqlWebhookOperations:
    def __init__(self, uow: SqlUnitOfWorkFactory) -> None:
        self._uow = uow

    async def deliveries(
        self, *, partner_id: UUID, subscription_id: UUID, before: int | None, limit: int
    ) -> list[Delivery]:
        """Newest first (by id), those older than `before` when given."""
        async with self._uow() as uow:
            session = uow.session
            await _live(session, partner_id=partner_id, subscription_id=subscription_id)
            query = (
                sa.select(*_LOG_COLUMNS)
                .where(
                    col(_Delivery.subscription_id) == subscription_id,
                    col(_Delivery.partner_id) == partner_id,
                )
                .order_by(col(_Delivery.id).desc())
                .limit(limit)
            )
            if before is not None:
                query = query.where(col(_Delivery.id) < before)
            return [_delivery(row) for row in await session.execute(query)]

    async def redeliver(
        self, *, partner_id: UUID, subscription_id: UUID, delivery_id: int, now: datetime
    ) -> Delivery:
        """Due at once with a fresh retry window; waits (paused) on a disabled subscription."""
        async with self._uow(write=True) as uow:
            session = uow.session
            subscription = await _live(
                session, partner_id=partner_id, subscription_id=subscription_id
            )
            row = (
                await session.execute(
                    sa.select(*_LOG_COLUMNS)
                    .where(
                        col(_Delivery.id) == delivery_id,
                        col(_Delivery.subscription_id) == subscription_id,
                    )
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise WebhookDeliveryNotFound()
            if row.state == DeliveryState.DELIVERING.value and (
                row.lease_until is None or row.lease_until > now
            ):
                raise DeliveryInProgress()
            state = _owed_state(subscription)
            changed = (
                await session.execute(
                    sa.update(_Delivery)
                    .where(col(_Delivery.id) == delivery_id)
                    .values(
                        state=state.value,
                        next_attempt_at=now,
                        redelivered_at=now,
                        lease_until=None,
                    )
                    .returning(*_LOG_COLUMNS)
                )
            ).one()
            await uow.commit()
            return _delivery(changed)

    async def replay(
        self,
        *,
        partner_id: UUID,
        subscription_id: UUID,
        after: int,
        now: datetime,
        limit: int,
    ) -> Replayed:
        """The subscription's kept events after `after` (of its types, up to what the relay
        has passed; later ones it relays as usual) owed again: new deliveries, or existing
        ones due again; one under way is left to finish (not doubled)."""
        async with self._uow(write=True) as uow:
            session = uow.session
            subscription = await _live(
                session, partner_id=partner_id, subscription_id=subscription_id
            )
            latest = await _scalar(
                session,
                select(col(PartnerSequenceRow.last_seq)).where(
                    col(PartnerSequenceRow.partner_id) == partner_id
                ),
            )
            check_replay_after(after, last_seq=latest)
            relayed = await _scalar(
                session,
                select(col(WebhookRelayCursorRow.last_seq)).where(
                    col(WebhookRelayCursorRow.partner_id) == partner_id
                ),
            )
            events = list(
                (
                    await session.execute(
                        select(EventRow)
                        .where(
                            col(EventRow.partner_id) == partner_id,
                            col(EventRow.seq) > after,
                            col(EventRow.seq) <= relayed,
                            col(EventRow.type).in_(subscription.types),
                        )
                        .order_by(col(EventRow.seq))
                        .limit(limit)
                    )
                ).scalars()
            )
            full = len(events) >= limit
            last = events[-1].seq if full else max(after, min(relayed, latest))
            events = [e for e in events if not own_notice(e, subscription.id)]
            state = _owed_state(subscription)
            rows = [
                {
                    "subscription_id": subscription.id,
                    "event_id": event.event_id,
                    "partner_id": partner_id,
                    "event_type": event.type,
                    "seq": event.seq,
                    "payload": body(event.type, event.event_id, dict(event.payload)),
                    "attempts": 0,
                    "state": state.value,
                    "next_attempt_at": now,
                    "created_at": now,
                    "redelivered_at": now,
                }
                for event in events
            ]
            for start in range(0, len(rows), INSERT_CHUNK):
                insert = upsert_insert(session)(_Delivery).values(
                    rows[start : start + INSERT_CHUNK]
                )
                await session.execute(
                    insert.on_conflict_do_update(
                        index_elements=["subscription_id", "event_id"],
                        set_={
                            "state": insert.excluded.state,
                            "next_attempt_at": now,
                            "redelivered_at": now,
                            "lease_until": None,
                        },
                        where=col(_Delivery.state) != DeliveryState.DELIVERING.value,
                    )
                )
            await uow.commit()
            return Replayed(events=len(rows), through_seq=int(last))

    async def rotate(
        self,
        *,
        partner_id: UUID,
        subscription_id: UUID,
        secret: str,
        now: datetime,
        keep_old: timedelta,
    ) -> WebhookSubscription:
        async with self._uow(write=True) as uow:
            row = await _live(
                uow.session, partner_id=partner_id, subscription_id=subscription_id, lock=True
            )
            changed = rotated(subscription_of(row), secret=secret, now=now, keep_old=keep_old)
            row.secret = changed.secret
            row.previous_secret = changed.previous_secret
            row.previous_secret_until = changed.previous_secret_until
            row.updated_at = now
            await uow.commit()
            return changed

    async def enable(
        self, *, partner_id: UUID, subscription_id: UUID, now: datetime
    ) -> WebhookSubscription:
        """Enabled again (a no-op on an enabled one): what waited is due at once, each with a
        fresh retry window, so delivery resumes where it stopped."""
        async with self._uow(write=True) as uow:
            session = uow.session
            row = await _live(
                session, partner_id=partner_id, subscription_id=subscription_id, lock=True
            )
            if row.disabled_at is None:
                return subscription_of(row)
            row.disabled_at = None
            row.failing_since = None
            row.updated_at = now
            enabled = subscription_of(row)
            await session.execute(
                sa.update(_Delivery)
                .where(
                    col(_Delivery.subscription_id) == subscription_id,
                    col(_Delivery.state).in_(
                        [DeliveryState.PAUSED.value, DeliveryState.PENDING.value]
                    ),
                )
                .values(state=DeliveryState.PENDING.value, next_attempt_at=now, redelivered_at=now)
            )
            await uow.commit()
            return enabled


def _owed_state(subscription: WebhookSubscriptionRow) -> DeliveryState:
    """Owed deliveries of a disabled subscription wait, paused, for its enable."""
    return DeliveryState.PAUSED if subscription.disabled_at is not None else DeliveryState.PENDING


async def _scalar(session: AsyncSession, query: Any) -> int:
    return int((await session.execute(query)).scalar_one_or_none() or 0)
