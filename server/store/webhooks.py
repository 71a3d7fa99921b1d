"""Webhook subscriptions, the relay from the outbox to delivery rows, and the dispatcher's
claims on those rows.

Why per-partner cursors rather than one cursor over the events' row id: on PostgreSQL an
event's id is drawn when its row is inserted, not when its transaction commits, so id 11 can
be visible while id 10 is still uncommitted; a single "last id" cursor would step over 10
for good. A partner's `seq` is handed out under that partner's sequence row lock, so per
partner the commit order is the sequence order, and "everything after seq N" never skips.

Every write goes through the unit-of-work factory, so SQLite writers share the one write
lock and an API call's idempotency record (store/idempotency.py) lands in the same transaction.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from server.domain.deliveries import DisablePolicy, WebhookShape
from server.domain.events import EventType
from server.domain.webhooks import DeliveryState, WebhookSubscription, receiver
from server.store import endpoint_health
from server.store.dialect import is_postgres, upsert_insert
from server.store.endpoint_health import minimal_shape
from server.store.tables import (
    EventRow,
    PartnerSequenceRow,
    WebhookDeliveryRow,
    WebhookRelayCursorRow,
    WebhookSubscriptionRow,
)
from server.store.unit_of_work import SqlUnitOfWorkFactory
from server.store.webhook_rows import own_notice, subscription_of

# pg_try_advisory_xact_lock key: one replica relays at a time (the unique pair makes a
# double relay harmless anyway; the lock just saves the wasted work).
RELAY_LOCK_KEY = 0x77_65_62_68_6F_6F_6B  # "webhook"
# pg_advisory_xact_lock key: one claim at a time across replicas, so each claim counts the
# leases every other replica holds per receiver (the per-receiver limit is global).
CLAIM_LOCK_KEY = 0x77_68_63_6C_61_69_6D  # "whclaim"
INSERT_CHUNK = 200  # rows per INSERT: stays far below SQLite's bound-parameter limit
CANDIDATES_PER_SLOT = 4

_Cursor = WebhookRelayCursorRow
_Delivery = WebhookDeliveryRow
_Subscription = WebhookSubscriptionRow


@dataclass(frozen=True)
class Claimed:
    """A delivery a worker holds a lease on."""

    delivery_id: int
    attempt: int  # this attempt's number (1-based): also the lease's fencing token
    event_id: UUID
    subscription_id: UUID
    callback_url: str
    secret: str
    payload: dict[str, Any]  # the flat JSON body
    created_at: datetime  # when its retry window began (made, or redelivered)
    previous_secret: str | None = None  # signs too, until previous_secret_until
    previous_secret_until: datetime | None = None
    # Attempts other workers (other processes, other replicas) have under way to the same
    # receiver right now: the per-receiver limit counts them too.
    elsewhere: int = 0


class Claims(list[Claimed]):
    """What a claim leased. `more`: a candidate read stopped at its limit, so due deliveries
    the caller could take may be left; without it, claiming again before a slot frees or
    new deliveries come would only walk the busy receivers' backlog again for nothing."""

    more: bool = False


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, to be recorded."""

    claimed: Claimed
    state: DeliveryState
    next_attempt_at: datetime | None
    status: int | None
    error: str | None


def body(event_type: str, event_id: UUID, payload: dict[str, Any]) -> dict[str, Any]:
    """The flat delivery body: `webhookType`, `eventId`, then the entity's own fields."""
    return {"webhookType": event_type, "eventId": str(event_id), **payload}


_events_table = EventRow.__table__  # type: ignore[attr-defined]
_cursors_table = _Cursor.__table__  # type: ignore[attr-defined]
_deliveries_table = _Delivery.__table__  # type: ignore[attr-defined]
# Core columns: statements over them skip the ORM's compile and execution steps (a third of a
# delivery's CPU went there when the claim and the bookkeeping were ORM statements).
_D = _deliveries_table
_S = _Subscription.__table__  # type: ignore[attr-defined]
_E = EventRow.__table__  # type: ignore[attr-defined]
_C = _Cursor.__table__  # type: ignore[attr-defined]
_P = PartnerSequenceRow.__table__  # type: ignore[attr-defined]
# Attempts' outcomes, many per statement (executemany), each fenced as _held is: recorded
# only if the lease is still that attempt's.
_FINISH = (
    sa.update(_deliveries_table)
    .where(
        _deliveries_table.c.id == sa.bindparam("k_id"),
        _deliveries_table.c.state == DeliveryState.DELIVERING.value,
        _deliveries_table.c.attempts == sa.bindparam("k_attempt"),
    )
    .values(
        state=sa.bindparam("v_state"),
        lease_until=None,
        last_status=sa.bindparam("v_status"),
        last_error=sa.bindparam("v_error"),
        next_attempt_at=sa.func.coalesce(
            sa.bindparam("v_next", type_=_deliveries_table.c.next_attempt_at.type),
            _deliveries_table.c.next_attempt_at,
        ),
    )
)
# (partner, cursor) of every subscribed partner with events past its cursor: one index probe
# per cursor, never a scan of the events table. Built once: it runs on every relay round.
_BEHIND = sa.select(_cursors_table.c.partner_id, _cursors_table.c.last_seq).where(
    sa.exists().where(
        _events_table.c.partner_id == _cursors_table.c.partner_id,
        _events_table.c.seq > _cursors_table.c.last_seq,
    )
)
_RELAYED_PARTNERS = sa.select(_cursors_table.c.partner_id)


# The claim's statements, built once over Core tables with bound parameters: built per claim
# (and joined through the ORM class, which routed them through the ORM's execution) they
# were a third of the claim's CPU, for cache keys and compile state alone.
# Two candidate queries, each walking ix_webhook_deliveries_due in its order and stopping at
# the limit: one over "pending OR lease ran out" must fetch and sort every due row first,
# which made each claim cost as much as the whole backlog. Candidates come without their
# payloads: most are turned down (their receiver has no free slot), and only those taken are
# read whole, by the UPDATE that leases them. `busy` subscriptions are skipped in the query.
_CANDIDATE_COLUMNS = (
    _D.c.id,
    _D.c.attempts,
    _D.c.event_id,
    _D.c.subscription_id,
    _D.c.created_at,
    _D.c.redelivered_at,
    _S.c.callback_url,
    _S.c.secret,
    _S.c.previous_secret,
    _S.c.previous_secret_until,
    _S.c.deleted_at,
)


def _candidates(state: DeliveryState, due: Any) -> sa.Select[Any]:
    return (
        sa.select(*_CANDIDATE_COLUMNS)
        .select_from(_D.join(_S, _S.c.id == _D.c.subscription_id))
        .where(
            _D.c.state == state.value,
            due <= sa.bindparam("now", type_=due.type),
            _S.c.disabled_at.is_(None),
            _D.c.subscription_id.not_in(sa.bindparam("busy", expanding=True)),
        )
        .order_by(due)
        .limit(sa.bindparam("candidates", type_=sa.Integer()))
    )


_STALE = _candidates(DeliveryState.DELIVERING, _D.c.lease_until)  # their worker died
_PENDING = _candidates(DeliveryState.PENDING, _D.c.next_attempt_at)
# PostgreSQL: SKIP LOCKED, so every replica claims at once, disjointly.
_STALE_LOCKED = _STALE.with_for_update(of=_D, skip_locked=True)
_PENDING_LOCKED = _PENDING.with_for_update(of=_D, skip_locked=True)
_LEASE = (
    sa.update(_D)
    .where(_D.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(
        state=DeliveryState.DELIVERING.value,
        lease_until=sa.bindparam("lease_until", type_=_D.c.lease_until.type),
        attempts=_D.c.attempts + 1,
    )
    .returning(_D.c.id, _D.c.payload)
)
# Live leases per callback URL, other than the `held` ones.
_LEASES = (
    sa.select(_S.c.callback_url, sa.func.count())
    .select_from(_D.join(_S, _S.c.id == _D.c.subscription_id))
    .where(
        _D.c.state == DeliveryState.DELIVERING.value,
        _D.c.lease_until > sa.bindparam("now", type_=_D.c.lease_until.type),
        _D.c.id.not_in(sa.bindparam("held", expanding=True)),
    )
    .group_by(_S.c.callback_url)
)


class SqlWebhookStore:
    def __init__(
        self,
        uow: SqlUnitOfWorkFactory,
        *,
        disable: DisablePolicy | None = None,
        shape: WebhookShape | None = None,
    ) -> None:
        self._uow = uow
        self._disable = disable or DisablePolicy()
        # The API's JSON of a subscription: the payload of a webhook.disabled event.
        self._shape: WebhookShape = shape or minimal_shape
        # Told when a partner's first subscription committed here (its relay cursor is new).
        self.on_new_cursor: Callable[[], None] | None = None

    # -- subscriptions (services.webhooks.WebhookStore) -----------------------------------
    async def add(self, subscription: WebhookSubscription, *, limit: int) -> bool:
        async with self._uow(write=True) as uow:
            session = uow.session
            await self._start_cursor(session, subscription.partner_id)
            live = await session.execute(
                sa.select(sa.func.count())
                .select_from(_Subscription)
                .where(
                    _S.c.partner_id == subscription.partner_id,
                    _S.c.deleted_at.is_(None),
                )
            )
            if int(live.scalar_one()) >= limit:
                return False
            session.add(
                WebhookSubscriptionRow(
                    id=subscription.id,
                    partner_id=subscription.partner_id,
                    callback_url=subscription.callback_url,
                    types=[t.value for t in subscription.types],
                    secret=subscription.secret,
                    created_at=subscription.created_at,
                    updated_at=subscription.updated_at,
                )
            )
            if self.on_new_cursor is not None:
                uow.after_commit(self.on_new_cursor)
            await uow.commit()
            return True

    @staticmethod
    async def _start_cursor(session: AsyncSession, partner_id: UUID) -> None:
        """A partner's first subscription starts its relay cursor at its latest event, so
        deliveries begin with the changes after the subscription. The no-op update on an
        existing cursor takes its row lock (PostgreSQL), which serialises a partner's
        creates and keeps the subscription limit exact."""
        latest = (
            await session.execute(select(_P.c.last_seq).where(_P.c.partner_id == partner_id))
        ).scalar_one_or_none()
        await session.execute(
            upsert_insert(session)(_Cursor)
            .values(partner_id=partner_id, last_seq=int(latest or 0))
            .on_conflict_do_update(index_elements=["partner_id"], set_={"last_seq": _C.c.last_seq})
        )

    async def get(self, *, partner_id: UUID, subscription_id: UUID) -> WebhookSubscription | None:
        async with self._uow() as uow:
            row = (
                await uow.session.execute(
                    select(_Subscription).where(
                        _S.c.id == subscription_id,
                        _S.c.partner_id == partner_id,
                        _S.c.deleted_at.is_(None),
                    )
                )
            ).scalar_one_or_none()
            # Mapped inside: leaving the unit of work rolls back, which expires the row.
            return subscription_of(row) if row is not None else None

    async def live(self, *, partner_id: UUID) -> list[WebhookSubscription]:
        async with self._uow() as uow:
            rows = (
                await uow.session.execute(
                    select(_Subscription)
                    .where(
                        _S.c.partner_id == partner_id,
                        _S.c.deleted_at.is_(None),
                    )
                    .order_by(_S.c.created_at.desc(), _S.c.id.desc())
                )
            ).scalars()
            return [subscription_of(row) for row in rows]

    async def update(
        self,
        *,
        partner_id: UUID,
        subscription_id: UUID,
        callback_url: str,
        types: tuple[EventType, ...],
        now: datetime,
    ) -> WebhookSubscription | None:
        async with self._uow(write=True) as uow:
            row = (
                await uow.session.execute(
                    select(_Subscription)
                    .where(
                        _S.c.id == subscription_id,
                        _S.c.partner_id == partner_id,
                        _S.c.deleted_at.is_(None),
                    )
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if row is None:
                return None
            row.callback_url = callback_url
            row.types = [t.value for t in types]
            row.updated_at = now
            found = subscription_of(row)
            await uow.commit()
            return found

    async def delete(self, *, partner_id: UUID, subscription_id: UUID, now: datetime) -> bool:
        """Soft delete, and its pending retries end as failed (an attempt in flight still
        finishes)."""
        async with self._uow(write=True) as uow:
            session = uow.session
            deleted = await session.execute(
                sa.update(_Subscription)
                .where(
                    _S.c.id == subscription_id,
                    _S.c.partner_id == partner_id,
                    _S.c.deleted_at.is_(None),
                )
                .values(deleted_at=now)
                .returning(_S.c.id)
            )
            if deleted.first() is None:
                return False
            await session.execute(
                sa.update(_D)
                .where(
                    _D.c.subscription_id == subscription_id,
                    _D.c.state.in_([DeliveryState.PENDING.value, DeliveryState.PAUSED.value]),
                )
                .values(state=DeliveryState.FAILED.value, last_error="subscription deleted")
            )
            await uow.commit()
            return True

    # -- relay ----------------------------------------------------------------------------
    @staticmethod
    async def _behind(session: AsyncSession) -> list[tuple[UUID, int]]:
        return [(row[0], int(row[1])) for row in (await session.execute(_BEHIND)).all()]

    async def relayed_partners(self) -> frozenset[UUID]:
        """Partners whose events the relay turns into deliveries (those with a cursor)."""
        async with self._uow() as uow:
            return frozenset(row[0] for row in await uow.session.execute(_RELAYED_PARTNERS))

    async def has_unrelayed(self) -> bool:
        """A cheap read (no write lock) the relay makes before doing any work."""
        async with self._uow() as uow:
            return bool(await self._behind(uow.session))

    async def relay(self, *, now: datetime, limit: int) -> tuple[int, int]:
        """Turns up to `limit` unrelayed events of subscribed partners (oldest first, in
        turn per partner) into delivery rows, one per matching live subscription, and
        advances those partners' cursors: one transaction. Returns (events read,
        deliveries created)."""
        if not await self.has_unrelayed():
            return 0, 0
        async with self._uow(write=True) as uow:
            session = uow.session
            if is_postgres(session):
                locked = await session.execute(
                    sa.select(sa.func.pg_try_advisory_xact_lock(RELAY_LOCK_KEY))
                )
                if not locked.scalar_one():
                    return 0, 0  # another replica is relaying right now
            behind = await self._behind(session)
            random.shuffle(behind)  # when more partners wait than fit, no one waits always
            share = max(limit // max(len(behind), 1), 1)  # no partner starves the others
            events: list[EventRow] = []
            for partner_id, last_seq in behind[:limit]:
                query = (
                    select(EventRow)
                    .where(_E.c.partner_id == partner_id, _E.c.seq > last_seq)
                    .order_by(_E.c.seq)
                    .limit(share)
                )
                events.extend((await session.execute(query)).scalars())
            if not events:
                return 0, 0
            partners = {event.partner_id for event in events}
            subscriptions = (
                await session.execute(
                    select(_Subscription).where(
                        _S.c.partner_id.in_(partners),
                        _S.c.deleted_at.is_(None),
                    )
                )
            ).scalars()
            by_partner: dict[UUID, list[WebhookSubscriptionRow]] = {}
            for subscription in subscriptions:
                by_partner.setdefault(subscription.partner_id, []).append(subscription)
            rows = [
                {
                    "subscription_id": subscription.id,
                    "event_id": event.event_id,
                    "partner_id": event.partner_id,
                    "event_type": event.type,
                    "seq": event.seq,
                    "payload": body(event.type, event.event_id, dict(event.payload)),
                    "attempts": 0,
                    # A disabled subscription's deliveries wait for its enable, untried.
                    "state": (
                        DeliveryState.PENDING.value
                        if subscription.disabled_at is None
                        else DeliveryState.PAUSED.value
                    ),
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for event in events
                for subscription in by_partner.get(event.partner_id, ())
                if event.type in subscription.types and not own_notice(event, subscription.id)
            ]
            created = await self._insert_deliveries(session, rows)
            last: dict[UUID, int] = {}
            for event in events:
                last[event.partner_id] = max(last.get(event.partner_id, 0), event.seq)
            for partner_id, seq in last.items():
                await session.execute(
                    sa.update(_Cursor)
                    .where(_C.c.partner_id == partner_id, _C.c.last_seq < seq)
                    .values(last_seq=seq)
                )
            await uow.commit()
            return len(events), created

    @staticmethod
    async def _insert_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
        created = 0
        for start in range(0, len(rows), INSERT_CHUNK):
            statement = (
                upsert_insert(session)(_D)
                .values(rows[start : start + INSERT_CHUNK])
                .on_conflict_do_nothing(index_elements=["subscription_id", "event_id"])
                .returning(_D.c.id)
            )
            created += len((await session.execute(statement)).all())
        return created

    # -- dispatcher -----------------------------------------------------------------------
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
        """Leases up to `limit` due deliveries: pending ones whose time has come, and
        delivering ones whose lease ran out (their worker died). `busy` subscriptions are
        skipped in the query (their receiver has no free slot), `accept` decides the rest in
        due order, over at most `candidates` rows of each kind (default: a few per slot).
        On PostgreSQL, SKIP LOCKED lets every replica claim at once, disjointly.

        Each candidate carries `elsewhere`: the live leases on its receiver held by other
        workers (every lease not in `held`, the caller's own), so a per-receiver limit holds
        across processes and replicas. Claims are serialized for that: on PostgreSQL by a
        transaction-level advisory lock, on SQLite by its one writer at a time; the count
        then sees every lease committed before."""
        candidates = candidates or limit * CANDIDATES_PER_SLOT
        params = {"now": now, "busy": list(busy), "candidates": candidates}
        async with self._uow(write=True) as uow:
            session = uow.session
            if is_postgres(session):
                await session.execute(sa.select(sa.func.pg_advisory_xact_lock(CLAIM_LOCK_KEY)))
                stale, pending = _STALE_LOCKED, _PENDING_LOCKED
            else:
                stale, pending = _STALE, _PENDING
            elsewhere = await self._leases_elsewhere(session, now=now, held=held)
            stale_rows = (await session.execute(stale, params)).all()
            pending_rows = (await session.execute(pending, params)).all()
            rows = [*stale_rows, *pending_rows]
            taken: list[Claimed] = []
            orphaned: list[int] = []
            for row in rows:
                if row.deleted_at is not None:
                    orphaned.append(row.id)
                    continue
                if len(taken) >= limit:
                    continue
                claimed = Claimed(
                    delivery_id=row.id,
                    attempt=row.attempts + 1,
                    event_id=row.event_id,
                    subscription_id=row.subscription_id,
                    callback_url=row.callback_url,
                    secret=row.secret,
                    payload={},  # read below, if taken
                    created_at=row.redelivered_at or row.created_at,
                    previous_secret=row.previous_secret,
                    previous_secret_until=row.previous_secret_until,
                    elsewhere=elsewhere[receiver(row.callback_url)],
                )
                if accept(claimed):
                    taken.append(claimed)
            if taken:
                leased = await session.execute(
                    _LEASE, {"ids": [c.delivery_id for c in taken], "lease_until": lease_until}
                )
                payloads = {row.id: dict(row.payload) for row in leased}
                taken = [replace(c, payload=payloads[c.delivery_id]) for c in taken]
            if orphaned:
                await session.execute(
                    sa.update(_D)
                    .where(_D.c.id.in_(orphaned))
                    .values(
                        state=DeliveryState.FAILED.value,
                        lease_until=None,
                        last_error="subscription deleted",
                    )
                )
            if taken or orphaned:
                await uow.commit()
            claims = Claims(taken)
            claims.more = max(len(stale_rows), len(pending_rows)) >= candidates
            return claims

    @staticmethod
    async def _leases_elsewhere(
        session: AsyncSession, *, now: datetime, held: Collection[int]
    ) -> Counter[str]:
        """Live leases per receiver (`host:port`), other than `held`. Few rows: at most the
        attempts under way everywhere, found through ix_webhook_deliveries_due."""
        found: Counter[str] = Counter()
        leases = await session.execute(_LEASES, {"now": now, "held": list(held)})
        for url, count in leases.all():
            found[receiver(url)] += int(count)
        return found

    async def finish(
        self,
        claimed: Claimed,
        *,
        state: DeliveryState,
        next_attempt_at: datetime | None,
        status: int | None,
        error: str | None,
    ) -> bool:
        """Records an attempt's outcome, if the lease is still ours (False: it ran out and
        someone else took the delivery over)."""
        values: dict[str, Any] = {
            "state": state.value,
            "lease_until": None,
            "last_status": status,
            "last_error": error[:200] if error else None,
        }
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        async with self._uow(write=True) as uow:
            result = await uow.session.execute(
                self._held(claimed).values(**values).returning(_D.c.id)
            )
            mine = result.first() is not None
            await uow.commit()
            return mine

    async def finish_all(
        self, outcomes: Collection[Outcome], *, now: datetime | None = None
    ) -> list[UUID]:
        """Records many attempts' outcomes in one transaction (one executemany): the
        dispatcher's write per delivery was what capped the delivery rate on SQLite. An
        outcome whose lease ran out meanwhile changes nothing, as with finish. Keeps each
        endpoint's health too (store/endpoint_health.py): the subscriptions it disabled."""
        if not outcomes:
            return []
        params = [
            {
                "k_id": o.claimed.delivery_id,
                "k_attempt": o.claimed.attempt,
                "v_state": o.state.value,
                "v_status": o.status,
                "v_error": o.error[:200] if o.error else None,
                "v_next": o.next_attempt_at,
            }
            for o in outcomes
        ]
        async with self._uow(write=True) as uow:
            await uow.session.execute(_FINISH, params)
            disabled = await endpoint_health.track(
                uow,
                outcomes,
                now=now or datetime.now(UTC),
                policy=self._disable,
                shape=self._shape,
            )
            await uow.commit()
            return disabled

    async def hand_back(self, claims: Iterable[Claimed], *, now: datetime) -> None:
        """Hands unfinished deliveries back at shutdown, due at once, so a restart (or
        another replica) need not wait for their leases to run out."""
        async with self._uow(write=True) as uow:
            for claimed in claims:
                await uow.session.execute(
                    self._held(claimed).values(
                        state=DeliveryState.PENDING.value, lease_until=None, next_attempt_at=now
                    )
                )
            await uow.commit()

    @staticmethod
    def _held(claimed: Claimed) -> Any:
        return sa.update(_D).where(
            _D.c.id == claimed.delivery_id,
            _D.c.state == DeliveryState.DELIVERING.value,
            _D.c.attempts == claimed.attempt,
        )
