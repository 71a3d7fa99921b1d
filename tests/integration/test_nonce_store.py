"""The shared signature-nonce registry on both databases: a nonce is recorded once, seen again
inside its window (a replay), and free again once its window is over, in one statement."""

from __future__ import annotations

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
