"""Signature nonces seen inside the validity window: a repeated one is a replay.

Several processes (PostgreSQL replicas, or several SQLite workers): a table with a primary
key, so every process sees every nonce. One SQLite process: memory is enough and keeps a
signed read from taking the write lock.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime

from server.store.dialect import upsert_insert
from server.store.tables import SignatureNonceRow
from server.store.unit_of_work import SqlUnitOfWorkFactory

# The Core table: a Core statement skips the ORM's compile step (store/unit_of_work.py).
_NONCES = SignatureNonceRow.__table__  # type: ignore[attr-defined]


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
        """One statement: a new nonce is inserted, an expired one of the same name is taken
        over (its expiry moved), a live one conflicts and returns no row: a replay. (Was a
        DELETE of the expired row and an INSERT: one round trip more on every request.) On
        PostgreSQL it runs in autocommit: no BEGIN and COMMIT around it."""
        table = _NONCES
        async with self._uow.single_statement() as uow:
            insert = upsert_insert(uow.session)(table).values(
                key_id=key_id,
                nonce=nonce,
                expires_at=datetime.fromtimestamp(keep_until, UTC),
            )
            recorded = await uow.session.execute(
                insert.on_conflict_do_update(
                    index_elements=[table.c.key_id, table.c.nonce],
                    set_={"expires_at": insert.excluded.expires_at},
                    where=table.c.expires_at <= datetime.fromtimestamp(now, UTC),
                ).returning(table.c.nonce)
            )
            fresh = recorded.first() is not None
            await uow.commit()
        return not fresh
