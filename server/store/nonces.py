"""Signature nonces seen inside the validity window: a repeated one is a replay.

Several processes (PostgreSQL replicas, or several SQLite workers): a table with a primary
key, so every process sees every nonce. One SQLite process: memory is enough and keeps a
signed read from taking the write lock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from server.store.dialect import PerDialect
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


def _record(insert: Any, _postgres: bool) -> Any:
    """A new nonce is inserted, an expired one of the same name is taken over (its expiry
    moved), a live one conflicts and returns no row: a replay. Run with many parameter sets
    at once (executemany: SQLAlchemy's insertmanyvalues makes it one multi-row INSERT);
    `now` is the same in every set of one batch."""
    when = _NONCES.c.expires_at.type
    statement = insert(_NONCES).values(
        key_id=sa.bindparam("key_id"),
        nonce=sa.bindparam("nonce"),
        expires_at=sa.bindparam("expires_at", type_=when),
    )
    return statement.on_conflict_do_update(
        index_elements=[_NONCES.c.key_id, _NONCES.c.nonce],
        set_={"expires_at": statement.excluded.expires_at},
        where=_NONCES.c.expires_at <= sa.bindparam("now", type_=when),
    ).returning(_NONCES.c.key_id, _NONCES.c.nonce)


_RECORD = PerDialect(_record)

# Nonces recorded in one statement at most; more wait for the next one.
BATCH_LIMIT = 500

_Waiting = dict[tuple[str, str], tuple[int, "asyncio.Future[bool]"]]


class SqlNonceRegistry:
    """Nonces that arrive while a write is running are recorded together, in one statement
    and one commit, by one writer task (group commit). Why: a signed request took the
    database's write lock for its nonce alone; 10,000 streams opening at once over two
    SQLite workers queued 10,000 write transactions one behind the other, the largest part
    of their registration time. A lone request waits for nothing more than before."""

    def __init__(self, uow: SqlUnitOfWorkFactory) -> None:
        self._uow = uow
        # By `now` (the takeover of an expired nonce compares with it): one statement each.
        self._waiting: dict[int, _Waiting] = {}
        self._writer: asyncio.Task[None] | None = None

    async def seen(self, key_id: str, nonce: str, *, keep_until: int, now: int) -> bool:
        """Records the nonce; True when it was already there (or is waiting to be)."""
        batch = self._waiting.setdefault(now, {})
        if (key_id, nonce) in batch:
            return True  # the same nonce twice in one batch: the second is a replay
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        batch[(key_id, nonce)] = (keep_until, answer)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        # Shielded: a cancelled caller leaves the batch (and the others' answers) alone.
        return await asyncio.shield(answer)

    async def _write_all(self) -> None:
        while self._waiting:
            now = next(iter(self._waiting))
            batch = self._waiting[now]
            taken = dict(itertools.islice(batch.items(), BATCH_LIMIT))
            for name in taken:
                del batch[name]
            if not batch:
                del self._waiting[now]
            try:
                fresh = await self._record(taken, now)
            except Exception as error:  # noqa: BLE001 (handed to each waiting caller, as its own failure)
                for _keep, answer in taken.values():
                    if not answer.done():
                        answer.set_exception(error)
                continue
            except BaseException:  # the writer was cancelled (shutdown): nobody is answered
                for waiting in [taken, *self._waiting.values()]:
                    for _keep, answer in waiting.values():
                        answer.cancel()
                self._waiting.clear()
                raise
            for name, (_keep, answer) in taken.items():
                if not answer.done():
                    answer.set_result(name not in fresh)

    async def _record(self, taken: _Waiting, now: int) -> set[tuple[str, str]]:
        """The nonces of `taken` that were new (or expired), in one statement. On
        PostgreSQL it runs in autocommit: no BEGIN and COMMIT around it."""
        moment = datetime.fromtimestamp(now, UTC)
        params = [
            {
                "key_id": key_id,
                "nonce": nonce,
                "expires_at": datetime.fromtimestamp(keep_until, UTC),
                "now": moment,
            }
            for (key_id, nonce), (keep_until, _answer) in taken.items()
        ]
        async with self._uow.single_statement() as uow:
            recorded = await uow.session.execute(_RECORD.of(uow.session), params)
            fresh = {(str(key_id), str(nonce)) for key_id, nonce in recorded.all()}
            await uow.commit()
        return fresh
