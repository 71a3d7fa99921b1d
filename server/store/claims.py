"""The idempotency claim of the call in progress. While it is active, the handler's unit of
work does not commit by itself: it hands its open transaction to the claim, and the claim
commits it together with the stored answer (IdempotencyStore.complete) or rolls it back
(IdempotencyStore.abandon). So a change never commits without its replayable answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.events import ChangeEvent


@dataclass
class PendingCommit:
    """A handler's flushed, uncommitted transaction (and the SQLite write lock it holds)."""

    session: AsyncSession
    lock: asyncio.Lock | None
    events: list[ChangeEvent]
    on_commit: Callable[[list[ChangeEvent]], None] | None
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    async def finish(self, *, commit: bool) -> None:
        try:
            if commit:
                await self.session.commit()
            else:
                await self.session.rollback()
        finally:
            try:
                await self.session.close()
            finally:
                if self.lock is not None:
                    self.lock.release()
        if commit and self.events and self.on_commit is not None:
            self.on_commit(self.events)
        if commit:
            for callback in self.after_commit:
                callback()


@dataclass
class Claim:
    partner_id: UUID
    key: UUID
    claim_id: UUID
    pending: PendingCommit | None = None


# The claim of the call in progress; the unit of work marks it committed with the changes.
active_claim: ContextVar[Claim | None] = ContextVar("active_claim", default=None)
