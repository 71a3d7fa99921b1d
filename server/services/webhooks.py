"""Webhook subscription use cases: create or update (PUT), list, get, delete.

Deliveries are not made here: the relay and dispatcher (server/events/webhooks.py) turn
committed events into signed POSTs in the background, so no API call ever waits on a
receiver.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from server.domain.events import EventType
from server.domain.identifiers import parse_id
from server.domain.webhooks import (
    MAX_SUBSCRIPTIONS,
    WebhookLimitReached,
    WebhookNotFound,
    WebhookSubscription,
    check_callback_url,
    new_secret,
    parse_types,
)
from server.services.ports import Clock


class WebhookStore(Protocol):
    """Subscriptions, tenant-scoped; every method is one transaction."""

    async def add(self, subscription: WebhookSubscription, *, limit: int) -> bool:
        """False (and nothing written) when the partner already holds `limit` live ones."""
        ...

    async def get(
        self, *, partner_id: UUID, subscription_id: UUID
    ) -> WebhookSubscription | None: ...

    async def live(self, *, partner_id: UUID) -> list[WebhookSubscription]: ...

    async def update(
        self,
        *,
        partner_id: UUID,
        subscription_id: UUID,
        callback_url: str,
        types: tuple[EventType, ...],
        now: datetime,
    ) -> WebhookSubscription | None: ...

    async def delete(self, *, partner_id: UUID, subscription_id: UUID, now: datetime) -> bool: ...


@dataclass(frozen=True)
class Saved:
    subscription: WebhookSubscription
    created: bool  # True: the answer shows the secret, this once


class WebhookService:
    def __init__(
        self,
        *,
        store: WebhookStore,
        clock: Clock,
        production: bool,
        max_subscriptions: int = MAX_SUBSCRIPTIONS,
    ) -> None:
        self._store = store
        self._clock = clock
        # Live subscriptions per partner, counted by the store in the creating transaction.
        self._max_subscriptions = max_subscriptions
        # Outside development mode callback URLs may not target internal addresses (SSRF).
        self._production = production

    async def put(
        self, *, partner_id: UUID, subscription_id: str, callback_url: str, types: Sequence[str]
    ) -> Saved:
        """No id: a new subscription with a fresh secret. An id: that subscription's URL and
        types replaced (its secret and pending deliveries stay)."""
        url = check_callback_url(callback_url, production=self._production)
        kinds = parse_types(types)
        now = self._clock.now()
        if subscription_id:
            found = await self._store.update(
                partner_id=partner_id,
                subscription_id=parse_id(subscription_id, WebhookNotFound),
                callback_url=url,
                types=kinds,
                now=now,
            )
            if found is None:
                raise WebhookNotFound()
            return Saved(found, created=False)
        subscription = WebhookSubscription(
            id=uuid.uuid4(),
            partner_id=partner_id,
            callback_url=url,
            types=kinds,
            secret=new_secret(),
            created_at=now,
            updated_at=now,
        )
        if not await self._store.add(subscription, limit=self._max_subscriptions):
            raise WebhookLimitReached(self._max_subscriptions)
        return Saved(subscription, created=True)

    async def list(self, *, partner_id: UUID) -> list[WebhookSubscription]:
        return await self._store.live(partner_id=partner_id)

    async def get(self, *, partner_id: UUID, subscription_id: str) -> WebhookSubscription:
        found = await self._store.get(
            partner_id=partner_id, subscription_id=parse_id(subscription_id, WebhookNotFound)
        )
        if found is None:
            raise WebhookNotFound()
        return found

    async def delete(self, *, partner_id: UUID, subscription_id: str) -> None:
        """Stops deliveries at once, pending retries included."""
        if not await self._store.delete(
            partner_id=partner_id,
            subscription_id=parse_id(subscription_id, WebhookNotFound),
            now=self._clock.now(),
        ):
            raise WebhookNotFound()
