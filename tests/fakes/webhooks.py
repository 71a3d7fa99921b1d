"""In-memory webhook stores: the subscriptions services/webhooks.py talks to, and the
delivery rows the relay and dispatcher (server/events/webhooks.py) claim and finish. Each
method stands for one transaction of store/webhooks.py; their SQL (leases across workers,
SKIP LOCKED, the relay cursor) is tested on SQLite and PostgreSQL in tests/integration."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from uuid import UUID

from server.domain.events import EventType
from server.domain.webhooks import WebhookSubscription
from server.store.webhooks import Claimed, Claims, Outcome


class FakeWebhookSubscriptions:
    """services.webhooks.WebhookStore: live subscriptions, tenant-scoped."""

    def __init__(self) -> None:
        self.rows: dict[UUID, WebhookSubscription] = {}
        self.deleted: set[UUID] = set()

    def _live(self, partner_id: UUID) -> list[WebhookSubscription]:
        return [
            s for s in self.rows.values() if s.partner_id == partner_id and s.id not in self.deleted
        ]

    async def add(self, subscription: WebhookSubscription, *, limit: int) -> bool:
        if len(self._live(subscription.partner_id)) >= limit:
            return False
        self.rows[subscription.id] = subscription
        return True

    async def get(self, *, partner_id: UUID, subscription_id: UUID) -> WebhookSubscription | None:
        return next((s for s in self._live(partner_id) if s.id == subscription_id), None)

    async def live(self, *, partner_id: UUID) -> list[WebhookSubscription]:
        return sorted(self._live(partner_id), key=lambda s: s.created_at)

    async def update(
        self,
        *,
        partner_id: UUID,
        subscription_id: UUID,
        callback_url: str,
        types: tuple[EventType, ...],
        now: datetime,
    ) -> WebhookSubscription | None:
        found = await self.get(partner_id=partner_id, subscription_id=subscription_id)
        if found is None:
            return None
        changed = dataclasses.replace(found, callback_url=callback_url, types=types, updated_at=now)
        self.rows[found.id] = changed
        return changed

    async def delete(self, *, partner_id: UUID, subscription_id: UUID, now: datetime) -> bool:
        if await self.get(partner_id=partner_id, subscription_id=subscription_id) is None:
            return False
        self.deleted.add(subscription_id)
        return True


class FakeDeliveries:
    """What WebhookWorker needs of store/webhooks.SqlWebhookStore: `due` are the delivery
    rows a claim may lease, in due order; `finished` the outcomes recorded, in order."""

    def __init__(self, *due: Claimed, subscribed: Iterable[UUID] = ()) -> None:
        self.due: list[Claimed] = list(due)
        self.subscribed = frozenset(subscribed)
        self.finished: list[Outcome] = []
        self.handed_back: list[Claimed] = []
        self.relays = 0  # relay transactions run
        self.claims = 0

    async def relayed_partners(self) -> frozenset[UUID]:
        return self.subscribed

    async def relay(self, *, now: datetime, limit: int) -> tuple[int, int]:
        self.relays += 1
        return 0, 0

    async def claim(
        self,
        *,
        now: datetime,
        lease_until: datetime,
        limit: int,
        busy: Collection[UUID],
        accept: Callable[[Claimed], bool],
        candidates: int | None = None,
        held: Collection[int] = (),
    ) -> Claims:
        self.claims += 1
        taken = Claims()
        for claimed in list(self.due):
            if len(taken) >= limit:
                taken.more = True  # stopped before reading every due delivery
                break
            if claimed.subscription_id in busy or not accept(claimed):
                continue
            self.due.remove(claimed)
            taken.append(claimed)
        return taken

    async def finish_all(
        self, outcomes: Collection[Outcome], *, now: datetime | None = None
    ) -> list[UUID]:
        self.finished.extend(outcomes)
        return []

    async def hand_back(self, claims: Iterable[Claimed], *, now: datetime) -> None:
        self.handed_back.extend(claims)
