"""Idempotency records in the database, and the one write transaction of an idempotent call.

An idempotent call's change, its outbox rows, its claim on the key and its stored answer
commit in one transaction (`IdempotentWrite`), or not at all. The claim is that
transaction's first statement, taken when the handler opens its write unit of work (so
after any call to an outside party, which never runs inside a write transaction): an
`INSERT ... ON CONFLICT DO NOTHING` of the key's row. A concurrent duplicate's insert waits
on that row (PostgreSQL) or on the write lock (SQLite) until the first commits, then finds
the stored answer and replays it. A crash or a server error rolls everything back, claim
included, so a retry runs again at once.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.idempotency import (
    IN_FLIGHT_LEASE,
    KEY_LIFETIME,
    Decision,
    RecordState,
    StoredRecord,
    decide,
)
from server.store.dialect import PerDialect, is_postgres
from server.store.outbox import Prelude
from server.store.tables import IdempotencyRow
from server.store.unit_of_work import (
    SecondWriteScope,
    SqlUnitOfWork,
    SqlUnitOfWorkFactory,
    owned_by,
)

_keys = IdempotencyRow.__table__  # type: ignore[attr-defined]
# Bound as k_*: SQLAlchemy reserves a column's own name for its VALUES / SET parameter.
_THIS_KEY = sa.and_(
    _keys.c.partner_id == sa.bindparam("k_partner_id"), _keys.c.key == sa.bindparam("k_key")
)
_RECORD = sa.select(
    _keys.c.fingerprint,
    _keys.c.state,
    _keys.c.lease_until,
    _keys.c.expires_at,
    _keys.c.grpc_code,
    _keys.c.http_status,
    _keys.c.response,
).where(_THIS_KEY)
_RECORD_FOR_UPDATE = _RECORD.with_for_update()
_CLAIM_COLUMNS = ("fingerprint", "state", "claim_id", "lease_until", "expires_at", "created_at")


def _claim_insert(insert: Any, postgres: bool) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING: a row back only for a fresh key. (Its
    values come as execute() parameters, one per column.)"""
    claim = insert(_keys).on_conflict_do_nothing(index_elements=["partner_id", "key"])
    return claim.returning(_keys.c.key)


_CLAIM_INSERT = PerDialect(_claim_insert)
_RECLAIM = (
    sa.update(_keys)
    .where(_THIS_KEY)
    .values(
        **{name: sa.bindparam(f"v_{name}") for name in _CLAIM_COLUMNS},
        grpc_code=0,
        http_status=None,
        response=None,
    )
)
_ANSWER = (
    sa.update(_keys)
    .where(_THIS_KEY)
    .values(
        state=RecordState.COMPLETED.value,
        grpc_code=sa.bindparam("v_grpc_code"),
        http_status=sa.bindparam("v_http_status"),
        response=sa.bindparam("v_response"),
    )
)

# PostgreSQL: the answer as a prelude of the events' statement at commit (outbox.Prelude),
# one round trip fewer per idempotent change. The claim locked the key's row already, so
# nothing waits there.
_ANSWER_PRELUDE = (
    "UPDATE idempotency_keys SET state = '"
    + RecordState.COMPLETED.value
    + """',
    grpc_code = CAST(:{p}grpc_code AS integer), http_status = CAST(:{p}http_status AS integer),
    response = CAST(:{p}response AS bytea)
WHERE partner_id = CAST(:{p}partner_id AS uuid) AND key = CAST(:{p}key AS uuid) AND {after}
RETURNING 1"""
)


@dataclass(frozen=True)
class StoredAnswer:
    grpc_code: int  # 0 for success
    http_status: int | None  # the REST status to force, if not the transcoder's own
    body: bytes  # the serialized response message, or a serialized google.rpc.Status


@dataclass(frozen=True)
class Ticket:
    """One idempotent call: whose key, which request (its fingerprint), and when."""

    partner_id: UUID
    key: UUID
    fingerprint: str
    now: datetime

    @property
    def where(self) -> dict[str, Any]:
        """The parameters of _THIS_KEY."""
        return {"k_partner_id": self.partner_id, "k_key": self.key}


@dataclass(frozen=True)
class Outcome:
    """What a key already holds: a decision other than "run it", with the answer to replay."""

    decision: Decision
    answer: StoredAnswer | None = None

    @property
    def runs(self) -> bool:
        return self.decision in (Decision.EXECUTE, Decision.TAKE_OVER)


class ClaimSettled(Exception):
    """Raised out of the handler's write unit of work when the claim finds the key taken
    meanwhile (a concurrent duplicate committed first): the handler's work is dropped and
    the call answers with `outcome` instead."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.decision.value)
        self.outcome = outcome


def _outcome(row: Any, fingerprint: str, now: datetime) -> Outcome:
    record = (
        None
        if row is None
        else StoredRecord(row.fingerprint, RecordState(row.state), row.lease_until, row.expires_at)
    )
    decision = decide(record, fingerprint, now)
    if decision is Decision.REPLAY:
        return Outcome(decision, StoredAnswer(row.grpc_code, row.http_status, row.response))
    return Outcome(decision)


class IdempotentCall(Protocol):
    """The one write transaction of an idempotent call (IdempotentWrite below)."""

    def bound(self) -> contextlib.AbstractContextManager[None]: ...
    async def complete(self, answer: StoredAnswer) -> None: ...
    async def abort(self) -> None: ...


class IdempotencyKeys(Protocol):
    """What the idempotency interceptor and the sweep need of the key store: IdempotencyStore
    below, or an in-memory fake in service tests (tests/fakes/)."""

    async def lookup(self, ticket: Ticket) -> Outcome: ...
    def write(self, ticket: Ticket) -> IdempotentCall: ...
    async def sweep(self, now: datetime) -> int: ...


class IdempotencyStore:
    def __init__(self, uow: SqlUnitOfWorkFactory) -> None:
        self._uow = uow

    async def lookup(self, ticket: Ticket) -> Outcome:
        """What the key holds now, without a lock: replays never run the handler (nor its
        outside calls); the claim in the write transaction decides for good."""
        async with self._uow() as uow:
            row = (await uow.session.execute(_RECORD, ticket.where)).one_or_none()
        return _outcome(row, ticket.fingerprint, ticket.now)

    def write(self, ticket: Ticket) -> IdempotentWrite:
        return IdempotentWrite(self, ticket)

    async def claim(self, session: AsyncSession, ticket: Ticket) -> Outcome:
        """Claims the key in the open transaction `session`, or says why not."""
        values = {
            "fingerprint": ticket.fingerprint,
            "state": RecordState.IN_FLIGHT.value,
            "claim_id": uuid.uuid4(),
            "lease_until": ticket.now + IN_FLIGHT_LEASE,
            "expires_at": ticket.now + KEY_LIFETIME,
            "created_at": ticket.now,
        }
        insert = _CLAIM_INSERT.of(session)
        for _ in range(2):  # a second pass only if the row went away in between (the sweep)
            row_values = {"partner_id": ticket.partner_id, "key": ticket.key, **values}
            if (await session.execute(insert, row_values)).first() is not None:
                return Outcome(Decision.EXECUTE)
            row = (await session.execute(_RECORD_FOR_UPDATE, ticket.where)).one_or_none()
            if row is None:
                continue
            outcome = _outcome(row, ticket.fingerprint, ticket.now)
            if outcome.runs:  # expired, or abandoned by an older server version: take it over
                renewed = {f"v_{name}": value for name, value in values.items()}
                await session.execute(_RECLAIM, {**ticket.where, **renewed})
            return outcome
        return Outcome(Decision.IN_FLIGHT)

    async def store(self, session: AsyncSession, ticket: Ticket, answer: StoredAnswer) -> None:
        """Stores the answer on the key claimed in the open transaction `session`."""
        await session.execute(
            _ANSWER,
            {
                **ticket.where,
                "v_grpc_code": answer.grpc_code,
                "v_http_status": answer.http_status,
                "v_response": answer.body,
            },
        )

    async def store_in(self, uow: SqlUnitOfWork, ticket: Ticket, answer: StoredAnswer) -> None:
        """Stores the answer in `uow`'s open transaction, to commit with its changes: on
        PostgreSQL inside the statement that writes its events (uow.defer)."""
        if not is_postgres(uow.session):
            await self.store(uow.session, ticket, answer)
            return
        values = {
            "grpc_code": answer.grpc_code,
            "http_status": answer.http_status,
            "response": answer.body,
            "partner_id": ticket.partner_id,
            "key": ticket.key,
        }
        uow.defer(Prelude(_ANSWER_PRELUDE, values))

    async def store_alone(self, ticket: Ticket, answer: StoredAnswer) -> Outcome:
        """Claim and answer in a transaction of their own: for a call that changed nothing
        (its handler never committed), so there is nothing else to commit with. Another
        outcome when a duplicate stored its answer first."""
        async with self._uow(write=True) as uow:
            outcome = await self.claim(uow.session, ticket)
            if outcome.runs:
                await self.store(uow.session, ticket, answer)
                await uow.commit()
            return outcome

    async def sweep(self, now: datetime) -> int:
        async with self._uow(write=True) as uow:
            result = await uow.session.execute(sa.delete(_keys).where(_keys.c.expires_at <= now))
            await uow.commit()
            return int(result.rowcount)  # type: ignore[attr-defined]


class IdempotentWrite:
    """The one write transaction of an idempotent call, and its only owner.

    The idempotency interceptor makes it, binds it around the handler (`bound`), and ends
    it: `complete` commits the handler's accepted changes together with the answer, `abort`
    rolls everything back. Inside, the handler's `async with uow(write=True)` joins it
    (unit_of_work.WriteOwner): BEGIN and the claim happen there, `uow.commit()` only accepts.
    """

    def __init__(self, store: IdempotencyStore, ticket: Ticket) -> None:
        self._store = store
        self.ticket = ticket
        self._uow: SqlUnitOfWork | None = None
        self._accepted = False

    @contextmanager
    def bound(self) -> Iterator[None]:
        with owned_by(self):
            yield

    # -- unit_of_work.WriteOwner -----------------------------------------------------------

    def enter(self, uow: SqlUnitOfWork) -> None:
        if self._uow is not None:
            raise SecondWriteScope("an idempotent call may open one write unit of work")
        self._uow = uow

    async def begun(self, uow: SqlUnitOfWork) -> None:
        outcome = await self._store.claim(uow.session, self.ticket)
        if not outcome.runs:
            raise ClaimSettled(outcome)

    def accept(self) -> None:
        self._accepted = True

    # -- ending it (the interceptor) -------------------------------------------------------

    async def complete(self, answer: StoredAnswer) -> None:
        """Commits the accepted changes with `answer`. Raises ClaimSettled when the call
        changed nothing and a concurrent duplicate's answer got stored first."""
        uow, self._uow = self._uow, None
        if uow is not None and self._accepted:
            committed = False
            try:
                await self._store.store_in(uow, self.ticket, answer)
                await uow.finish(commit=True)
                committed = True
            finally:
                if not committed:
                    await uow.finish(commit=False)
            return
        if uow is not None:
            await uow.finish(commit=False)  # nothing accepted (or the transaction failed)
        outcome = await self._store.store_alone(self.ticket, answer)
        if not outcome.runs:
            raise ClaimSettled(outcome)

    async def abort(self) -> None:
        uow, self._uow = self._uow, None
        if uow is not None:
            await uow.finish(commit=False)
