"""Idempotency records in the database: atomic claims, the handler's commit marker, stored
answers, and the sweep of expired keys.

The claim is one transaction (row lock on PostgreSQL, the write lock on SQLite), so two
replicas can never both run the same key. The answer commits in the handler's own
transaction (store/claims.py), so a crash can never leave a change without its replayable
answer, nor an answer without its change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from server.domain.idempotency import (
    IN_FLIGHT_LEASE,
    KEY_LIFETIME,
    Decision,
    RecordState,
    StoredRecord,
    decide,
)
from server.store.claims import Claim
from server.store.dialect import upsert_insert
from server.store.tables import IdempotencyRow
from server.store.unit_of_work import SqlUnitOfWorkFactory


@dataclass(frozen=True)
class StoredAnswer:
    grpc_code: int  # 0 for success
    http_status: int | None  # the REST status to force, if not the transcoder's own
    body: bytes  # the serialized response message, or a serialized google.rpc.Status


def _record(row: IdempotencyRow | None) -> StoredRecord | None:
    if row is None:
        return None
    return StoredRecord(row.fingerprint, RecordState(row.state), row.lease_until, row.expires_at)


class IdempotencyStore:
    def __init__(self, uow: SqlUnitOfWorkFactory) -> None:
        self._uow = uow

    async def claim(
        self, *, partner_id: UUID, key: UUID, fingerprint: str, now: datetime
    ) -> tuple[Decision, Claim | StoredAnswer | None]:
        async with self._uow(write=True) as uow:
            session = uow.session
            for _ in range(2):  # a second pass only after losing an insert race
                query = (
                    select(IdempotencyRow)
                    .where(
                        col(IdempotencyRow.partner_id) == partner_id,
                        col(IdempotencyRow.key) == key,
                    )
                    .with_for_update()
                )
                row = (await session.execute(query)).scalar_one_or_none()
                decision = decide(_record(row), fingerprint, now)
                if decision is Decision.REPLAY:
                    assert row is not None and row.response is not None
                    return decision, StoredAnswer(row.grpc_code, row.http_status, row.response)
                if decision not in (Decision.EXECUTE, Decision.TAKE_OVER):
                    return decision, None
                claim = Claim(partner_id, key, uuid.uuid4())
                values = {
                    "fingerprint": fingerprint,
                    "state": RecordState.IN_FLIGHT.value,
                    "claim_id": claim.claim_id,
                    "lease_until": now + IN_FLIGHT_LEASE,
                    "expires_at": now + KEY_LIFETIME,
                    "grpc_code": 0,
                    "http_status": None,
                    "response": None,
                    "created_at": now,
                }
                if row is not None:
                    row.sqlmodel_update(values)
                    await uow.commit()
                    return decision, claim
                if await self._insert(session, partner_id, key, values):
                    await uow.commit()
                    return decision, claim
                await session.rollback()
        return Decision.IN_FLIGHT, None

    @staticmethod
    async def _insert(
        session: AsyncSession, partner_id: UUID, key: UUID, values: dict[str, object]
    ) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING: False when another claim got there first."""
        insert = upsert_insert(session)
        statement = (
            insert(IdempotencyRow)
            .values(partner_id=partner_id, key=key, **values)
            .on_conflict_do_nothing(index_elements=["partner_id", "key"])
            # RETURNING, not rowcount: drivers report rowcount for this statement unreliably.
            .returning(col(IdempotencyRow.claim_id))
        )
        result = await session.execute(statement)
        return result.first() is not None

    async def complete(self, claim: Claim, answer: StoredAnswer) -> None:
        """Stores the answer, in the handler's own transaction when it changed anything."""
        statement = (
            sa.update(IdempotencyRow)
            .where(
                col(IdempotencyRow.partner_id) == claim.partner_id,
                col(IdempotencyRow.key) == claim.key,
                col(IdempotencyRow.claim_id) == claim.claim_id,
            )
            .values(
                state=RecordState.COMPLETED.value,
                grpc_code=answer.grpc_code,
                http_status=answer.http_status,
                response=answer.body,
            )
        )
        pending, claim.pending = claim.pending, None
        if pending is not None:
            committed = False
            try:
                await pending.session.execute(statement)
                committed = True
            finally:
                await pending.finish(commit=committed)
            return
        async with self._uow(write=True) as uow:
            await uow.session.execute(statement)
            await uow.commit()

    async def abandon(self, claim: Claim) -> None:
        """A server error: the handler's changes roll back and the claim is forgotten, so a
        retry runs again."""
        pending, claim.pending = claim.pending, None
        if pending is not None:
            await pending.finish(commit=False)
        await self.release(claim)

    async def release(self, claim: Claim) -> None:
        """Forgets a claim whose request changed nothing, so a retry runs."""
        async with self._uow(write=True) as uow:
            await uow.session.execute(
                sa.delete(IdempotencyRow).where(
                    col(IdempotencyRow.partner_id) == claim.partner_id,
                    col(IdempotencyRow.key) == claim.key,
                    col(IdempotencyRow.claim_id) == claim.claim_id,
                    col(IdempotencyRow.state) == RecordState.IN_FLIGHT.value,
                )
            )
            await uow.commit()

    async def sweep(self, now: datetime) -> int:
        async with self._uow(write=True) as uow:
            result = await uow.session.execute(
                sa.delete(IdempotencyRow).where(col(IdempotencyRow.expires_at) <= now)
            )
            await uow.commit()
            return int(result.rowcount)  # type: ignore[attr-defined]
