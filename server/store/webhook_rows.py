"""Webhook rows -> domain values, shared by the subscription store, the operations on
deliveries and the endpoint-health bookkeeping."""

from __future__ import annotations

from uuid import UUID

from server.domain.events import EventType
from server.domain.webhooks import WebhookSubscription
from server.store.tables import EventRow, WebhookSubscriptionRow


def subscription_of(row: WebhookSubscriptionRow) -> WebhookSubscription:
    return WebhookSubscription(
        id=row.id,
        partner_id=row.partner_id,
        callback_url=row.callback_url,
        types=tuple(EventType(t) for t in row.types),
        secret=row.secret,
        created_at=row.created_at,
        updated_at=row.updated_at,
        previous_secret=row.previous_secret,
        previous_secret_until=row.previous_secret_until,
        disabled_at=row.disabled_at,
    )


def own_notice(event: EventRow, subscription_id: UUID) -> bool:
    """A subscription is never sent the notice of its own disabling (it was down then)."""
    return event.type == EventType.WEBHOOK_DISABLED.value and event.entity_id == subscription_id
