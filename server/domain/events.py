"""Change events: every change to a customer, account or card, as partners receive it.

The payload is the entity as it was right after the change, in the API's JSON shape (the
same field names and formats the REST answers use), so webhooks, streams and the catch-up
list all carry exactly what a GET would have shown at that moment.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from server.domain.accounts import Account, Card
from server.domain.customer import Customer


class EventType(enum.StrEnum):
    CUSTOMER_UPDATED = "customer.updated"
    ACCOUNT_UPDATED = "account.updated"
    CARD_UPDATED = "card.updated"
    # A notice, not an entity change: a subscription was disabled after failing too long
    # (server/domain/deliveries.py). Listed by GET /events; other subscriptions may ask for it.
    WEBHOOK_DISABLED = "webhook.disabled"


@dataclass(frozen=True)
class ChangeEvent:
    event_id: UUID
    partner_id: UUID
    type: EventType
    entity_id: UUID
    payload: dict[str, Any]
    occurred_at: datetime
    seq: int = 0  # per-partner sequence, assigned when the change commits
    position: int = 0  # global, across partners, in commit order (assigned at commit too)


# The API's JSON shape of an entity, exactly as the gateway prints a GET of it. It is the
# transport's conversion (transport/convert.py payload), handed to the store by bootstrap:
# one shape per entity, so an event's payload equals what a GET showed, by construction.
Shape = Callable[["Customer | Account | Card"], dict[str, Any]]


def changed(entity: Customer | Account | Card, shape: Shape) -> ChangeEvent:
    """The event for an entity's current state (called for creations and every change)."""
    if isinstance(entity, Customer):
        kind = EventType.CUSTOMER_UPDATED
    elif isinstance(entity, Account):
        kind = EventType.ACCOUNT_UPDATED
    else:
        kind = EventType.CARD_UPDATED
    return ChangeEvent(
        event_id=uuid.uuid4(),
        partner_id=entity.partner_id,
        type=kind,
        entity_id=entity.id,
        payload=shape(entity),
        occurred_at=entity.updated_at,
    )
