"""What partners do with a subscription beyond PUT/GET/DELETE, as Stripe and Svix let them:
read its delivery log, redeliver one delivery, replay events after a sequence, rotate its
secret with an overlap window, and enable it again after it was disabled for failing.

The sending itself stays in the background (server/events/webhooks.py): these calls change
rows and answer at once.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from server.domain.deliveries import (
    MAX_REPLAY,
    Delivery,
    Replayed,
    overlap,
    parse_delivery_id,
)
from server.domain.errors import InvalidField
from server.domain.identifiers import parse_id
from server.domain.webhooks import WebhookNotFound, WebhookSubscription, new_secret
from server.services.paging import Page, page_size
from server.services.ports import Clock


class WebhookOperationsStore(Protocol):
    """Each method is one transaction; WebhookNotFound for anything but the partner's own
    live subscription."""

    async def deliveries(
        self, *, partner_id: UUID, subscription_id: UUID, before: int | None, limit: int
    ) -> list[Delivery]: ...

    async def redeliver(
        self, *, partner_id: UUID, subscription_id: UUID, delivery_id: int, now: datetime
    ) -> Delivery: ...

    async def replay(
        self, *, partner_id: UUID, subscription_id: UUID, after: int, now: datetime, limit: int
    ) -> Replayed: ...

    async def rotate(
        self,
        *,
        partner_id: UUID,
        subscription_id: UUID,
        secret: str,
        now: datetime,
        keep_old: timedelta,
    ) -> WebhookSubscription: ...

    async def enable(
        self, *, partner_id: UUID, subscription_id: UUID, now: datetime
    ) -> WebhookSubscription: ...


def _token(delivery_id: int) -> str:
    return base64.urlsafe_b64encode(f"delivery:{delivery_id}".encode()).decode().rstrip("=")


def _before(token: str) -> int | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, value = raw.split(":")
        if prefix != "delivery" or not value.isdigit():
            raise ValueError(prefix)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidField("pageToken", "pageToken is not one this service issued") from None


class WebhookOperations:
    def __init__(self, *, store: WebhookOperationsStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def deliveries(
        self, *, partner_id: UUID, subscription_id: str, size: int, token: str
    ) -> Page[Delivery]:
        limit = page_size(size)
        found = await self._store.deliveries(
            partner_id=partner_id,
            subscription_id=parse_id(subscription_id, WebhookNotFound),
            before=_before(token),
            limit=limit + 1,
        )
        return Page.of(found, limit, lambda d: _token(d.id))

    async def redeliver(
        self, *, partner_id: UUID, subscription_id: str, delivery_id: str
    ) -> Delivery:
        subscription = parse_id(subscription_id, WebhookNotFound)
        return await self._store.redeliver(
            partner_id=partner_id,
            subscription_id=subscription,
            delivery_id=parse_delivery_id(delivery_id),
            now=self._clock.now(),
        )

    async def replay(self, *, partner_id: UUID, subscription_id: str, after: int) -> Replayed:
        return await self._store.replay(
            partner_id=partner_id,
            subscription_id=parse_id(subscription_id, WebhookNotFound),
            after=after,
            now=self._clock.now(),
            limit=MAX_REPLAY,
        )

    async def rotate(
        self, *, partner_id: UUID, subscription_id: str, overlap_seconds: int | None
    ) -> WebhookSubscription:
        """A fresh secret; the old one still signs for the overlap."""
        subscription = parse_id(subscription_id, WebhookNotFound)
        keep_old = overlap(overlap_seconds)
        return await self._store.rotate(
            partner_id=partner_id,
            subscription_id=subscription,
            secret=new_secret(),
            now=self._clock.now(),
            keep_old=keep_old,
        )

    async def enable(self, *, partner_id: UUID, subscription_id: str) -> WebhookSubscription:
        return await self._store.enable(
            partner_id=partner_id,
            subscription_id=parse_id(subscription_id, WebhookNotFound),
            now=self._clock.now(),
        )
