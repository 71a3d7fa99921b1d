"""Which endpoints keep failing, kept with the attempts' outcomes (in their transaction).

A success clears its subscription's `failing_since`; a failure starts it if unset. A
subscription failing since longer than the disable policy allows is disabled: its owed
deliveries are paused (those pending, and those that ran out of retries while it was
failing, so the enable resends everything since it broke), and a `webhook.disabled` event
enters the outbox in the same commit, so GET /events shows it and other subscriptions
asking for that type are sent it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select

from server.domain.deliveries import DisablePolicy, WebhookShape, disabled_notice
from server.domain.webhooks import DeliveryState
from server.store.tables import WebhookDeliveryRow, WebhookSubscriptionRow
from server.store.webhook_rows import subscription_of

if TYPE_CHECKING:
    from server.store.unit_of_work import SqlUnitOfWork
    from server.store.webhooks import Outcome

_Delivery = WebhookDeliveryRow
_Subscription = WebhookSubscriptionRow
DELETED = "subscription deleted"
# Built once over the Core table: these run with every batch of outcomes, and as ORM
# statements built per batch their compile and cache keys cost more than the UPDATE itself.
_S = _Subscription.__table__  # type: ignore[attr-defined]
_RECOVERED = (
    sa.update(_S)
    .where(_S.c.id.in_(sa.bindparam("ids", expanding=True)), _S.c.failing_since.isnot(None))
    .values(failing_since=None)
)
_FAILING = (
    sa.update(_S)
    .where(_S.c.id.in_(sa.bindparam("ids", expanding=True)), _S.c.failing_since.is_(None))
    .values(failing_since=sa.bindparam("now", type_=_S.c.failing_since.type))
)


def minimal_shape(subscription: Any) -> dict[str, Any]:
    """Used only where no API shape was wired in (bootstrap always wires one)."""
    return {"id": str(subscription.id), "status": "disabled"}


async def track(
    uow: SqlUnitOfWork,
    outcomes: Collection[Outcome],
    *,
    now: datetime,
    policy: DisablePolicy,
    shape: WebhookShape,
) -> list[UUID]:
    """Records what the outcomes say about their endpoints; the ids it disabled."""
    session = uow.session
    delivered = DeliveryState.DELIVERED
    healthy = {o.claimed.subscription_id for o in outcomes if o.state is delivered}
    failing = {o.claimed.subscription_id for o in outcomes if o.state is not delivered} - healthy
    if healthy:
        await session.execute(_RECOVERED, {"ids": list(healthy)})
    if not failing:
        return []
    await session.execute(_FAILING, {"ids": list(failing), "now": now})
    rows = list(
        (
            await session.execute(
                select(_Subscription)
                .where(col(_Subscription.id).in_(failing), col(_Subscription.deleted_at).is_(None))
                .order_by(col(_Subscription.id))  # one lock order for every replica
                .with_for_update(key_share=True)
            )
        ).scalars()
    )
    disabled: list[UUID] = []
    attempted = [o.claimed.delivery_id for o in outcomes if o.claimed.subscription_id in failing]
    for row in rows:
        if row.disabled_at is not None:
            # Attempts that were under way when it was disabled: they wait too.
            await session.execute(_pause(row.id, attempted=attempted))
            continue
        if not policy.due(row.failing_since, now):
            continue
        failing_since = row.failing_since
        row.disabled_at = now
        row.updated_at = now
        disabled.append(row.id)
        await session.execute(_pause(row.id, attempted=attempted, since=failing_since))
        uow.outbox.append(disabled_notice(subscription_of(row), shape))
    return disabled


def _pause(subscription_id: UUID, *, attempted: list[int], since: datetime | None = None) -> Any:
    """Pending deliveries, and failed ones that failed while the endpoint was failing (or
    in this very batch), wait for the enable."""
    failed_lately: sa.ColumnElement[bool] = col(_Delivery.id).in_(attempted)
    if since is not None:
        failed_lately = sa.or_(failed_lately, col(_Delivery.next_attempt_at) >= since)
    return (
        sa.update(_Delivery)
        .where(
            col(_Delivery.subscription_id) == subscription_id,
            sa.or_(
                col(_Delivery.state) == DeliveryState.PENDING.value,
                sa.and_(
                    col(_Delivery.state) == DeliveryState.FAILED.value,
                    sa.func.coalesce(col(_Delivery.last_error), "") != DELETED,
                    failed_lately,
                ),
            ),
        )
        .values(state=DeliveryState.PAUSED.value, lease_until=None)
    )
