"""What a partner may do with a subscription's deliveries, and the rules behind it: the
delivery log's view of one delivery, secret rotation with an overlap window, the bounds of
a replay, and when an endpoint that keeps failing is disabled. No I/O here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from server.domain.errors import DomainError, ErrorKind, InvalidField, NotFound
from server.domain.events import ChangeEvent, EventType
from server.domain.webhooks import DeliveryState, WebhookSubscription

DEFAULT_OVERLAP = timedelta(hours=24)  # what Svix and Stripe give an old secret
MAX_OVERLAP = timedelta(days=7)
MAX_REPLAY = 10_000  # events per replay call; the answer says where it stopped
DEFAULT_DISABLE_AFTER = timedelta(days=3)  # failing this long, an endpoint is disabled
MAX_DELIVERY_ID = 2**31 - 1  # the rows' id column is a 32-bit integer


@dataclass(frozen=True)
class Delivery:
    """One event owed to one subscription, as the delivery log shows it: never the body of
    the receiver's answer, which is not stored at all."""

    id: int
    subscription_id: UUID
    event_id: UUID
    event_type: str | None  # None: made before the log existed (migration 0010)
    seq: int | None
    state: DeliveryState
    attempts: int
    last_status: int | None  # the receiver's HTTP status
    last_error: str | None  # a short fixed text: "HTTP 500", "timed out", ...
    next_attempt_at: datetime | None  # only while it is still owed (pending, delivering)
    created_at: datetime


@dataclass(frozen=True)
class Replayed:
    """A replay's outcome: `events` queued again, every relayed one up to `through_seq`."""

    events: int
    through_seq: int


class WebhookDeliveryNotFound(NotFound):
    reason = "WEBHOOK_DELIVERY_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("Webhook delivery not found")


class DeliveryInProgress(DomainError):
    kind = ErrorKind.CONFLICT
    reason = "WEBHOOK_DELIVERY_IN_PROGRESS"

    def __init__(self) -> None:
        super().__init__(
            "This delivery is being attempted right now; ask again once it has an outcome"
        )


def parse_delivery_id(value: str) -> int:
    """Delivery ids are decimal strings; anything else names no delivery (404, like a
    non-UUID customer id)."""
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        raise WebhookDeliveryNotFound()
    found = int(value)
    if found > MAX_DELIVERY_ID:  # no row can have it (and PostgreSQL would refuse to compare)
        raise WebhookDeliveryNotFound()
    return found


def overlap(seconds: int | None) -> timedelta:
    """How long the old secret still signs after a rotation: 0 drops it at once; none given
    is the default. Negative, or beyond the maximum, is the partner's mistake."""
    if seconds is None:
        return DEFAULT_OVERLAP
    limit = int(MAX_OVERLAP.total_seconds())
    if seconds < 0 or seconds > limit:
        raise InvalidField("overlapSeconds", f"overlapSeconds must be between 0 and {limit}")
    return timedelta(seconds=seconds)


def rotated(
    subscription: WebhookSubscription, *, secret: str, now: datetime, keep_old: timedelta
) -> WebhookSubscription:
    """The subscription signing with `secret`, and with its current secret until
    `now + keep_old` as well. A rotation during an overlap drops the oldest secret: at most
    two secrets sign at once (Standard Webhooks allows several signatures; receivers keep
    two)."""
    keep = keep_old > timedelta(0)
    return WebhookSubscription(
        id=subscription.id,
        partner_id=subscription.partner_id,
        callback_url=subscription.callback_url,
        types=subscription.types,
        secret=secret,
        created_at=subscription.created_at,
        updated_at=now,
        previous_secret=subscription.secret if keep else None,
        previous_secret_until=now + keep_old if keep else None,
        disabled_at=subscription.disabled_at,
    )


def signing_secrets(
    secret: str, previous: str | None, previous_until: datetime | None, *, now: datetime
) -> tuple[str, ...]:
    """The secrets an attempt made at `now` is signed with: the current one first."""
    if previous and previous_until is not None and now < previous_until:
        return secret, previous
    return (secret,)


def check_replay_after(after: int, *, last_seq: int) -> None:
    """A replay starts after an event the partner has had: 0 (from the oldest kept event)
    up to its latest sequence. A sequence no event ever had is refused, not ignored."""
    if after < 0:
        raise InvalidField("afterSequence", "afterSequence must not be negative")
    if after > last_seq:
        raise InvalidField(
            "afterSequence",
            f"afterSequence {after} is past the latest event (sequence {last_seq})",
        )


@dataclass(frozen=True)
class DisablePolicy:
    """An endpoint whose every attempt failed for `after` (since its last success) is
    disabled: its deliveries wait, untried, until the partner enables it again."""

    after: timedelta = DEFAULT_DISABLE_AFTER

    def due(self, failing_since: datetime | None, now: datetime) -> bool:
        return failing_since is not None and now - failing_since >= self.after


WebhookShape = Callable[[WebhookSubscription], dict[str, Any]]


def disabled_notice(subscription: WebhookSubscription, shape: WebhookShape) -> ChangeEvent:
    """The `webhook.disabled` event: the subscription as GET /webhooks/{id} shows it."""
    assert subscription.disabled_at is not None
    return ChangeEvent(
        event_id=uuid.uuid4(),
        partner_id=subscription.partner_id,
        type=EventType.WEBHOOK_DISABLED,
        entity_id=subscription.id,
        payload=shape(subscription),
        occurred_at=subscription.disabled_at,
    )
