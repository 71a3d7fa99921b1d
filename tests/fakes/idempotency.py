"""Idempotency keys in memory (server.store.idempotency.IdempotencyKeys): what the
idempotency interceptor needs, without the SQL store's shared transaction.

The SQL store commits the handler's changes together with the stored answer; here the
handler's fake unit of work commits by itself, and the answer is kept when the call
completes. Same decisions (domain/idempotency.py decide), so replays, reuse and expiry
behave as in production, one call at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from server.domain.idempotency import KEY_LIFETIME, Decision, RecordState, StoredRecord, decide
from server.store.idempotency import Outcome, StoredAnswer, Ticket


@dataclass(frozen=True)
class _Kept:
    record: StoredRecord
    answer: StoredAnswer


class FakeIdempotencyKeys:
    def __init__(self) -> None:
        self.kept: dict[tuple[UUID, UUID], _Kept] = {}

    async def lookup(self, ticket: Ticket) -> Outcome:
        kept = self.kept.get((ticket.partner_id, ticket.key))
        decision = decide(None if kept is None else kept.record, ticket.fingerprint, ticket.now)
        if decision is Decision.REPLAY and kept is not None:
            return Outcome(decision, kept.answer)
        return Outcome(decision)

    def write(self, ticket: Ticket) -> FakeIdempotentCall:
        return FakeIdempotentCall(self, ticket)

    async def sweep(self, now: datetime) -> int:
        expired = [key for key, kept in self.kept.items() if kept.record.expires_at <= now]
        for key in expired:
            del self.kept[key]
        return len(expired)


class FakeIdempotentCall:
    def __init__(self, keys: FakeIdempotencyKeys, ticket: Ticket) -> None:
        self._keys = keys
        self._ticket = ticket

    @contextmanager
    def bound(self) -> Iterator[None]:
        yield

    async def complete(self, answer: StoredAnswer) -> None:
        ticket = self._ticket
        record = StoredRecord(
            ticket.fingerprint, RecordState.COMPLETED, ticket.now, ticket.now + KEY_LIFETIME
        )
        self._keys.kept[(ticket.partner_id, ticket.key)] = _Kept(record, answer)

    async def abort(self) -> None:
        pass
