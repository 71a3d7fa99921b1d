"""Change events: every change to a customer, account or card, as partners receive it.

The payload is the entity as it was right after the change, in the API's JSON shape (the
same field names and formats the REST answers use), so webhooks, streams and the catch-up
list all carry exactly what a GET would have shown at that moment.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from server.domain.accounts import Account, Card
from server.domain.customer import Customer


class EventType(enum.StrEnum):
    CUSTOMER_UPDATED = "customer.updated"
    ACCOUNT_UPDATED = "account.updated"
    CARD_UPDATED = "card.updated"


@dataclass(frozen=True)
class ChangeEvent:
    event_id: UUID
    partner_id: UUID
    type: EventType
    entity_id: UUID
    payload: dict[str, Any]
    occurred_at: datetime
    seq: int = 0  # per-partner sequence, assigned when the change commits


def rfc3339(value: datetime) -> str:
    """As protobuf's JSON prints a Timestamp: UTC, 'Z', 0, 3 or 6 fraction digits."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    micros = value.microsecond
    if micros == 0:
        return text + "Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


def customer_payload(customer: Customer) -> dict[str, Any]:
    return {
        "id": str(customer.id),
        "externalId": customer.external_id,
        "chainId": customer.chain_id,
        "status": customer.status.value,
        "createdAt": rfc3339(customer.created_at),
        "updatedAt": rfc3339(customer.updated_at),
    }


def account_payload(account: Account) -> dict[str, Any]:
    return {
        "id": str(account.id),
        "customerId": str(account.customer_id),
        "type": account.type.value,
        "currencies": list(account.currencies),
        "status": account.status.value,
        "createdAt": rfc3339(account.created_at),
        "updatedAt": rfc3339(account.updated_at),
    }


def card_payload(card: Card) -> dict[str, Any]:
    return {
        "id": str(card.id),
        "accountId": str(card.account_id),
        "type": card.type.value,
        "network": card.network,
        "maskedPan": card.masked_pan,
        "status": card.status.value,
        "createdAt": rfc3339(card.created_at),
        "updatedAt": rfc3339(card.updated_at),
    }


def changed(entity: Customer | Account | Card) -> ChangeEvent:
    """The event for an entity's current state (called for creations and every change)."""
    if isinstance(entity, Customer):
        kind, payload = EventType.CUSTOMER_UPDATED, customer_payload(entity)
    elif isinstance(entity, Account):
        kind, payload = EventType.ACCOUNT_UPDATED, account_payload(entity)
    else:
        kind, payload = EventType.CARD_UPDATED, card_payload(entity)
    return ChangeEvent(
        event_id=uuid.uuid4(),
        partner_id=entity.partner_id,
        type=kind,
        entity_id=entity.id,
        payload=payload,
        occurred_at=entity.updated_at,
    )
