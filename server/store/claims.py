"""The idempotency claim of the call in progress, which the unit of work marks committed in
the same transaction as the handler's changes."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.domain.idempotency import RecordState
from server.store.tables import IdempotencyRow


@dataclass
class Claim:
    partner_id: UUID
    key: UUID
    claim_id: UUID
    committed: bool = False


# The claim of the call in progress; the unit of work marks it committed with the changes.
active_claim: ContextVar[Claim | None] = ContextVar("active_claim", default=None)


async def mark_committed(session: AsyncSession, claim: Claim) -> None:
    await session.execute(
        sa.update(IdempotencyRow)
        .where(
            col(IdempotencyRow.partner_id) == claim.partner_id,
            col(IdempotencyRow.key) == claim.key,
            col(IdempotencyRow.claim_id) == claim.claim_id,
        )
        .values(state=RecordState.COMMITTED.value)
    )
