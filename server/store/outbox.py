"""The outbox: change events written in the same transaction as the changes, each with the
next per-partner sequence and the next global position, and read back in order for
streams, webhooks and catch-up."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.events import ChangeEvent, EventType
from server.store.dialect import PerDialect, is_postgres
from server.store.tables import EventPositionRow, EventRow, PartnerSequenceRow

# PostgreSQL channel that wakes every replica's streams and webhook dispatcher.
CHANNEL = "customer_events"
_INSERT_EVENTS = sa.insert(EventRow.__table__)  # type: ignore[attr-defined]
_sequences = PartnerSequenceRow.__table__  # type: ignore[attr-defined]
_positions = EventPositionRow.__table__  # type: ignore[attr-defined]
GLOBAL = "global"


def _bump(insert: Any, postgres: bool) -> Any:
    """Takes `k_count` sequence numbers for partner `k_partner_id`; returns the last one.
    PostgreSQL also notifies in the same statement (one round trip fewer per commit); the
    notification is delivered to listeners when, and only if, the transaction commits."""
    count = sa.bindparam("k_count", type_=sa.BigInteger())
    statement = (
        insert(_sequences)
        .values(partner_id=sa.bindparam("k_partner_id"), last_seq=count)
        .on_conflict_do_update(
            index_elements=["partner_id"], set_={"last_seq": _sequences.c.last_seq + count}
        )
    )
    notify = sa.func.pg_notify(CHANNEL, sa.cast(_sequences.c.partner_id, sa.Text))
    return statement.returning(_sequences.c.last_seq, *((notify,) if postgres else ()))


def _bump_position(insert: Any, postgres: bool) -> Any:
    """Takes `k_count` global positions; returns the last one. Its row lock (PostgreSQL) is
    the last one the transaction takes, held to COMMIT: position order is commit order
    across every partner, and a reader who sees position p sees every position below it."""
    count = sa.bindparam("k_count", type_=sa.BigInteger())
    statement = (
        insert(_positions)
        .values(name=GLOBAL, last_position=count)
        .on_conflict_do_update(
            index_elements=["name"], set_={"last_position": _positions.c.last_position + count}
        )
    )
    return statement.returning(_positions.c.last_position)


@dataclass(frozen=True)
class Prelude:
    """A write that commits with the events and whose answer nobody waits for (a cascade's
    switched rows, the audit rows). On PostgreSQL it runs inside the events' own statement
    (_write_one_partner), before the numbering: one round trip for all of them.

    `sql` is one data-modifying statement ending in `RETURNING 1`; its parameters are
    written `:{p}name` (the builder gives each prelude its own prefix) and its WHERE holds
    `{after}`, a condition that makes it run after the prelude before it, so the row locks
    are taken in the order the preludes were made (accounts before cards, as a
    statement-by-statement transaction takes them). `params` are named without the prefix.
    """

    sql: str
    params: dict[str, Any]


def _after(index: int) -> str:
    # An uncorrelated scalar subquery is an initPlan, a one-time filter evaluated before the
    # statement reads its first row: the CTE before it has run to completion by then.
    return "TRUE" if index == 0 else f"(SELECT count(*) FROM w{index - 1}) >= 0"


def _prelude_ctes(templates: tuple[str, ...]) -> str:
    return "".join(
        f"w{i} AS ({sql.format(p=f'w{i}_', after=_after(i))}),\n" for i, sql in enumerate(templates)
    )


def _prefixed(preludes: Sequence[Prelude]) -> dict[str, Any]:
    return {
        f"w{i}_{name}": value
        for i, prelude in enumerate(preludes)
        for name, value in prelude.params.items()
    }


async def run_apart(session: AsyncSession, preludes: Sequence[Prelude]) -> None:
    """The preludes as statements of their own, in order (no events to ride along with)."""
    for prelude in preludes:
        await session.execute(_one_prelude(prelude.sql), _prefixed([prelude]))


@lru_cache(maxsize=64)
def _one_prelude(template: str) -> sa.TextClause:
    return sa.text(template.format(p="w0_", after="TRUE"))


# PostgreSQL, one partner's events (every change but an operator's cross-partner ones): the
# preludes, its sequence numbers, the global positions and the event rows in one statement,
# one round trip instead of one per write. The sequence's INSERT waits for the last prelude
# (`{after}`), the positions' INSERT reads `bumped` and the events' INSERT reads both, so
# the preludes' rows are locked first, then the partner's row, and the global row last, as
# in the statement-by-statement form (_number_apart). The events arrive as one JSON
# document (one short statement text, prepared once by psycopg, whatever the number of
# events; and one string to send, where arrays of text cost a regex per element to quote).
# Row ids follow the events' order.
@lru_cache(maxsize=64)
def _write_one_partner_statement(templates: tuple[str, ...]) -> sa.TextClause:
    return sa.text(
        f"""
WITH {_prelude_ctes(templates)}bumped AS (
    INSERT INTO partner_sequences (partner_id, last_seq)
    SELECT CAST(:partner_id AS uuid), CAST(:count AS bigint) WHERE {_after(len(templates))}
    ON CONFLICT (partner_id) DO UPDATE
        SET last_seq = partner_sequences.last_seq + excluded.last_seq
    RETURNING last_seq, pg_notify('{CHANNEL}', CAST(partner_id AS text))
), positioned AS (
    INSERT INTO event_positions (name, last_position)
    SELECT '{GLOBAL}', CAST(:count AS bigint) FROM bumped
    ON CONFLICT (name) DO UPDATE
        SET last_position = event_positions.last_position + excluded.last_position
    RETURNING last_position
), inserted AS (
    INSERT INTO events (event_id, partner_id, seq, type, entity_id, payload, occurred_at,
                        position)
    SELECT e.event_id, CAST(:partner_id AS uuid), bumped.last_seq - :count + e.n, e.type,
           e.entity_id, e.payload, e.occurred_at, positioned.last_position - :count + e.n
    FROM bumped, positioned,
         ROWS FROM (json_to_recordset(CAST(:events AS json))
                    AS (event_id uuid, type text, entity_id uuid, payload json,
                        occurred_at timestamptz))
             WITH ORDINALITY AS e(event_id, type, entity_id, payload, occurred_at, n)
    ORDER BY e.n
)
SELECT bumped.last_seq, positioned.last_position FROM bumped, positioned
"""
    )


_BUMP = PerDialect(_bump)
_BUMP_POSITION = PerDialect(_bump_position)


def _numbered(
    batch: Sequence[ChangeEvent], last_seq: int, first_position: int
) -> list[ChangeEvent]:
    count = len(batch)
    return [
        replace(event, seq=last_seq - count + 1 + offset, position=first_position + offset)
        for offset, event in enumerate(batch)
    ]


async def write(
    session: AsyncSession,
    events: Sequence[ChangeEvent],
    preludes: Sequence[Prelude] = (),
    *,
    commit: bool = False,
) -> list[ChangeEvent]:
    """Runs the preludes (PostgreSQL only), then numbers and inserts the events. The
    sequence row's lock (PostgreSQL) or the write lock (SQLite) makes a partner's sequence
    order its commit order: no reader ever sees seq 7 before seq 6. `commit`: the caller
    commits right after; where the session can, the COMMIT goes with the events' statement
    (store/pipeline.py) and the caller's commit sends nothing more."""
    by_partner: dict[UUID, list[ChangeEvent]] = defaultdict(list)
    for event in events:
        by_partner[event.partner_id].append(event)
    if len(by_partner) == 1 and is_postgres(session):
        [(partner_id, batch)] = by_partner.items()
        return await _write_one_partner(session, partner_id, batch, preludes, commit=commit)
    await run_apart(session, preludes)
    numbered = await _number_apart(session, by_partner)
    # One multi-row INSERT (engine.py: insertmanyvalues on PostgreSQL; SQLite's executemany
    # runs in-process).
    await session.execute(
        _INSERT_EVENTS,
        [
            {
                "event_id": e.event_id,
                "partner_id": e.partner_id,
                "seq": e.seq,
                "type": e.type.value,
                "entity_id": e.entity_id,
                "payload": e.payload,
                "occurred_at": e.occurred_at,
                "position": e.position,
            }
            for e in numbered
        ],
    )
    return numbered


async def _write_one_partner(
    session: AsyncSession,
    partner_id: UUID,
    batch: Sequence[ChangeEvent],
    preludes: Sequence[Prelude],
    *,
    commit: bool = False,
) -> list[ChangeEvent]:
    rows = [
        {
            "event_id": str(e.event_id),
            "type": e.type.value,
            "entity_id": str(e.entity_id),
            "payload": e.payload,  # nested as is: the stored text is json.dumps(payload)
            "occurred_at": e.occurred_at.isoformat(),  # tz-aware: the offset is kept
        }
        for e in batch
    ]
    params = {
        **_prefixed(preludes),
        "partner_id": partner_id,
        "count": len(batch),
        "events": json.dumps(rows),
    }
    statement = _write_one_partner_statement(tuple(p.sql for p in preludes))
    # _AsyncCoreSession's (unit_of_work.py); other sessions commit apart, as before.
    with_commit = getattr(session, "execute_then_commit", None) if commit else None
    if with_commit is not None:
        [(last_seq, last_position)] = await with_commit(statement, params)
    else:
        last_seq, last_position = (await session.execute(statement, params)).one()
    return _numbered(batch, int(last_seq), int(last_position) - len(batch) + 1)


async def _number_apart(
    session: AsyncSession, by_partner: dict[UUID, list[ChangeEvent]]
) -> list[ChangeEvent]:
    """Each partner's sequence numbers, then the global positions: one statement each."""
    bump = _BUMP.of(session)
    sequenced: list[tuple[list[ChangeEvent], int]] = []
    # In partner order: two transactions bumping the same partners lock them in one order.
    for partner_id, batch in sorted(by_partner.items(), key=lambda item: item[0]):
        params = {"k_partner_id": partner_id, "k_count": len(batch)}
        sequenced.append((batch, int((await session.execute(bump, params)).one()[0])))
    # After every partner row: the global row is always locked last (no lock cycle). It
    # serializes the commits that write events, across partners, for one statement and a
    # commit (on SQLite, writers are serialized already).
    total = sum(len(batch) for batch, _ in sequenced)
    positions = await session.execute(_BUMP_POSITION.of(session), {"k_count": total})
    position = int(positions.one()[0]) - total + 1
    numbered: list[ChangeEvent] = []
    for batch, last_seq in sequenced:
        numbered.extend(_numbered(batch, last_seq, position))
        position += len(batch)
    return numbered


_events = EventRow.__table__  # type: ignore[attr-defined]
_EVENT_COLUMNS = (
    _events.c.event_id,
    _events.c.partner_id,
    _events.c.type,
    _events.c.entity_id,
    _events.c.payload,
    _events.c.occurred_at,
    _events.c.seq,
    _events.c.position,
)
_LIMIT = sa.bindparam("limit", type_=sa.Integer())


def _after_seq(*, typed: bool, one_entity: bool) -> sa.Select[Any]:
    """One partner's events after a sequence number: a Core statement built once per shape
    with bound parameters (the ORM's select, rebuilt and compiled on every call, was 7 % of a
    worker's samples while streams opened, and every fan-out round reads this)."""
    query = sa.select(*_EVENT_COLUMNS).where(
        _events.c.partner_id == sa.bindparam("partner_id", type_=_events.c.partner_id.type),
        _events.c.seq > sa.bindparam("seq", type_=sa.BigInteger()),
    )
    if typed:
        query = query.where(_events.c.type.in_(sa.bindparam("types", expanding=True)))
    if one_entity:
        query = query.where(
            _events.c.entity_id == sa.bindparam("entity_id", type_=_events.c.entity_id.type)
        )
    return query.order_by(_events.c.seq).limit(_LIMIT)


def _after_position(*, typed: bool) -> sa.Select[Any]:
    """Every partner's events after a global position, in position (commit) order."""
    query = sa.select(*_EVENT_COLUMNS).where(
        _events.c.position > sa.bindparam("position", type_=sa.BigInteger())
    )
    if typed:
        query = query.where(_events.c.type.in_(sa.bindparam("types", expanding=True)))
    return query.order_by(_events.c.position).limit(_LIMIT)


_AFTER_SEQ = {
    (typed, one_entity): _after_seq(typed=typed, one_entity=one_entity)
    for typed in (False, True)
    for one_entity in (False, True)
}
_AFTER_POSITION = {typed: _after_position(typed=typed) for typed in (False, True)}
_LAST_SEQ = sa.select(_sequences.c.last_seq).where(
    _sequences.c.partner_id == sa.bindparam("partner_id", type_=_sequences.c.partner_id.type)
)
_LAST_SEQS = sa.select(_sequences.c.partner_id, _sequences.c.last_seq).where(
    _sequences.c.partner_id.in_(sa.bindparam("partner_ids", expanding=True))
)
_LAST_POSITION = sa.select(_positions.c.last_position).where(_positions.c.name == GLOBAL)


def _event(row: Sequence[Any]) -> ChangeEvent:
    event_id, partner_id, type_, entity_id, payload, occurred_at, seq, position = row
    return ChangeEvent(
        event_id=event_id,
        partner_id=partner_id,
        type=EventType(type_),
        entity_id=entity_id,
        payload=dict(payload),
        occurred_at=occurred_at,
        seq=seq,
        position=position or 0,
    )


class SqlEventReader:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def after(
        self,
        *,
        partner_id: UUID,
        seq: int,
        limit: int,
        types: Iterable[EventType] = (),
        entity_id: UUID | None = None,
    ) -> list[ChangeEvent]:
        params: dict[str, Any] = {"partner_id": partner_id, "seq": seq, "limit": limit}
        wanted = [t.value for t in types]
        if wanted:
            params["types"] = wanted
        if entity_id is not None:
            params["entity_id"] = entity_id
        query = _AFTER_SEQ[bool(wanted), entity_id is not None]
        return [_event(row) for row in await self._session.execute(query, params)]

    async def last_seq(self, *, partner_id: UUID) -> int:
        found = (
            await self._session.execute(_LAST_SEQ, {"partner_id": partner_id})
        ).scalar_one_or_none()
        return int(found or 0)

    async def last_seqs(self, *, partner_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The last sequence number of each of these partners that has one, in one read."""
        found = await self._session.execute(_LAST_SEQS, {"partner_ids": list(partner_ids)})
        return {partner_id: int(last) for partner_id, last in found}

    async def after_position(
        self, *, position: int, limit: int, types: Iterable[EventType] = ()
    ) -> list[ChangeEvent]:
        """Every partner's events after a global position, in position (commit) order."""
        params: dict[str, Any] = {"position": position, "limit": limit}
        wanted = [t.value for t in types]
        if wanted:
            params["types"] = wanted
        query = _AFTER_POSITION[bool(wanted)]
        return [_event(row) for row in await self._session.execute(query, params)]

    async def last_position(self) -> int:
        found = (await self._session.execute(_LAST_POSITION)).scalar_one_or_none()
        return int(found or 0)
