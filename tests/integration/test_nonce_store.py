"""The shared signature-nonce registry on both databases: a nonce is recorded once, seen again
inside its window (a replay), and free again once its window is over, in one statement."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from server.store.engine import make_engine
from server.store.nonces import SqlNonceRegistry
from server.store.unit_of_work import SqlUnitOfWorkFactory
from server.transport import convert
from tests.helpers.databases import database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    with database(str(request.param), tmp_path) as url:  # migrates: outside the event loop
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[Any]:
    made = make_engine(database_url)
    try:
        yield made
    finally:
        await made.dispose()


async def test_a_nonce_is_a_replay_inside_its_window_and_free_after_it(engine: Any) -> None:
    nonces = SqlNonceRegistry(SqlUnitOfWorkFactory(engine, shape=convert.payload))
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement.split()[0].upper())

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        assert await nonces.seen("key-1", "n-1", keep_until=1_300, now=1_000) is False
        assert [s for s in sent if s not in ("BEGIN",)] == ["INSERT"]
        assert await nonces.seen("key-1", "n-1", keep_until=1_301, now=1_001) is True
        # Another key may use the same nonce.
        assert await nonces.seen("key-2", "n-1", keep_until=1_301, now=1_001) is False
        # Once the window is over the nonce is taken over, with the new window.
        assert await nonces.seen("key-1", "n-1", keep_until=1_700, now=1_300) is False
        assert await nonces.seen("key-1", "n-1", keep_until=1_701, now=1_500) is True
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_concurrent_nonces_are_recorded_in_one_statement_each_answered_alone(
    engine: Any,
) -> None:
    nonces = SqlNonceRegistry(SqlUnitOfWorkFactory(engine, shape=convert.payload))
    assert await nonces.seen("key-1", "old", keep_until=1_300, now=1_000) is False
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement.split()[0].upper())

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        answers = await asyncio.gather(
            *(nonces.seen("key-1", f"n-{i}", keep_until=1_300, now=1_001) for i in range(50)),
            nonces.seen("key-1", "old", keep_until=1_301, now=1_001),  # recorded before
            nonces.seen("key-1", "n-7", keep_until=1_301, now=1_001),  # twice in the batch
        )
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert answers == [False] * 50 + [True, True]
    assert [s for s in sent if s not in ("BEGIN", "COMMIT")] == ["INSERT"]
    # Recorded for real: each is a replay now, one by one.
    assert await nonces.seen("key-1", "n-49", keep_until=1_302, now=1_002) is True
    assert await nonces.seen("key-1", "n-50", keep_until=1_302, now=1_002) is False


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_one_works(
    engine: Any,
) -> None:
    nonces = SqlNonceRegistry(SqlUnitOfWorkFactory(engine, shape=convert.payload))

    def refuse(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            raise RuntimeError("database down")

    sa.event.listen(engine.sync_engine, "before_cursor_execute", refuse)
    try:
        failed = await asyncio.gather(
            *(nonces.seen("key-1", f"n-{i}", keep_until=1_300, now=1_000) for i in range(3)),
            return_exceptions=True,
        )
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", refuse)
    assert len(failed) == 3
    assert all("database down" in str(error) for error in failed)
    # Nothing was recorded: the same nonces are new once the database answers again.
    assert await nonces.seen("key-1", "n-0", keep_until=1_300, now=1_000) is False
