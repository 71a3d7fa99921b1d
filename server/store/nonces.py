"""Signature nonces seen inside the validity window: a repeated one is a replay.

Several processes (PostgreSQL replicas, or several SQLite workers): a table with a primary
key, so every process sees every nonce. One SQLite process: memory is enough and keeps a
signed read from taking the write lock.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import col

from server.store.dialect import upsert_insert
from server.store.tables import SignatureNonceRow
from server.store.unit_of_work import SqlUnitOfWorkFactory


class MemoryNonceRegistry:
    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._expiry: list[tuple[int, str, str]] = []

    async def seen(self, key_id: str, nonce: str, *, keep_until: int, now: int) -> bool:
        """Records the nonce; True when it was already there."""
        while self._expiry and self._expiry[0][0] <= now:
            _, old_key, old_nonce = heapq.heappop(self._expiry)
            self._seen.discard((old_key, old_nonce))
        if (key_id, nonce) in self._seen:
            return True
        self._seen.add((key_id, nonce))
        heapq.heappush(self._expiry, (keep_until, key_id, nonce))
        return False


class SqlNonceRegistry:
    def __init__(self, uow: SqlUnitOfWorkFactory) -> None:
        self._uow = uow

    async def seen(self, key_id: str, nonce: str, *, keep_until: int, now: int) -> bool:
        async with self._uow(write=True) as uow:
            await uow.session.execute(
                sa.delete(SignatureNonceRow).where(
                    col(SignatureNonceRow.key_id) == key_id,
                    col(SignatureNonceRow.nonce) == nonce,
                    col(SignatureNonceRow.expires_at) <= datetime.fromtimestamp(now, UTC),
                )
            )
            inserted = await uow.session.execute(
                upsert_insert(uow.session)(SignatureNonceRow)
                .values(
                    key_id=key_id,
                    nonce=nonce,
                    expires_at=datetime.fromtimestamp(keep_until, UTC),
                )
                .on_conflict_do_nothing()
                .returning(col(SignatureNonceRow.nonce))
            )
            fresh = inserted.first() is not None
            await uow.commit()
        return not fresh
