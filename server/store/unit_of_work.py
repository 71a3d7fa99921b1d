"""The unit of work: one AsyncSession, one transaction, explicit commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from server.domain.events import ChangeEvent
from server.store import outbox
from server.store.claims import PendingCommit, active_claim
from server.store.outbox import SqlEventReader
from server.store.repositories import (
    SqlAccountRepository,
    SqlCardRepository,
    SqlCustomerRepository,
    SqlPartnerRepository,
    SqlSigningKeyRepository,
)

OnCommit = Callable[[list[ChangeEvent]], None]

# PostgreSQL channel telling every replica that a partner's credentials version or signing
# keys changed (payload: the partner id), so it forgets what it remembers of them.
CREDENTIALS_CHANNEL = "partner_credentials"


class _InlineSession:
    """The slice of AsyncSession the store uses, over a blocking Session: SQLite statements
    run inline on the event loop (see engine.sqlite_inline_engine for why that is safe)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.execute(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.get(*args, **kwargs)

    async def merge(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.merge(*args, **kwargs)

    async def flush(self) -> None:
        self._session.flush()

    def add(self, instance: object) -> None:
        self._session.add(instance)

    def add_all(self, instances: Any) -> None:
        self._session.add_all(instances)

    def get_bind(self) -> Any:
        return self._session.get_bind()

    async def rollback(self) -> None:
        self._session.rollback()

    async def close(self) -> None:
        self._session.close()

    async def commit(self) -> None:
        self._session.commit()


class _InlineReadSession(_InlineSession):
    """A read unit of work on the inline SQLite engine: Core statements (every hot read,
    repositories.py) run on a plain pooled Connection, and an ORM Session is made only if an
    ORM statement comes along. Why: making and closing a Session, and the ORM's dispatch of
    a Core statement, were half of a one-row read's cost on the request path."""

    def __init__(self, sessions: sessionmaker[Session], engine: Engine) -> None:
        self._sessions = sessions
        self._engine = engine
        self._made: Session | None = None
        self._connection: Any = None

    @property
    def _session(self) -> Session:  # type: ignore[override]
        if self._made is None:
            self._made = self._sessions()
        return self._made

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(statement, "_propagate_attrs", {}).get("compile_state_plugin") is None:
            if self._connection is None:
                self._connection = self._engine.connect()
            return self._connection.execute(statement, *args, **kwargs)
        return self._session.execute(statement, *args, **kwargs)

    def get_bind(self) -> Any:
        return self._engine

    async def rollback(self) -> None:
        await self.close()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._made is not None:
            self._made.close()
            self._made = None


class SqlUnitOfWork:
    session: AsyncSession
    partners: SqlPartnerRepository
    customers: SqlCustomerRepository
    accounts: SqlAccountRepository
    cards: SqlCardRepository
    signing_keys: SqlSigningKeyRepository
    events: SqlEventReader

    def __init__(
        self,
        sessions: Callable[[], Any],
        lock: asyncio.Lock | None,
        on_commit: OnCommit | None = None,
        *,
        write: bool = False,
    ) -> None:
        self._sessions = sessions
        self._lock = lock
        self._on_commit = on_commit
        self._write = write

    async def __aenter__(self) -> Self:
        claim = active_claim.get()
        if claim is not None and claim.pending is not None and self._lock is not None:
            # The first write of this idempotent request still holds the lock, uncommitted.
            raise RuntimeError("an idempotent request may open one write unit of work")
        if self._lock is not None:
            await self._lock.acquire()
        self._handed_over = False
        self.outbox: list[ChangeEvent] = []
        self._after_commit: list[Callable[[], None]] = []
        self._credentials_changed: set[UUID] = set()
        made = self._sessions()
        if isinstance(made, _InlineReadSession):
            self.session = cast(AsyncSession, made)
        elif isinstance(made, Session):
            self.session = cast(AsyncSession, _InlineSession(made))
        else:
            self.session = made
        self.partners = SqlPartnerRepository(self.session, self.outbox)
        self.customers = SqlCustomerRepository(self.session, self.outbox)
        self.accounts = SqlAccountRepository(self.session, self.outbox)
        self.cards = SqlCardRepository(self.session, self.outbox)
        self.signing_keys = SqlSigningKeyRepository(self.session, self.outbox)
        self.events = SqlEventReader(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handed_over:
            return  # the idempotency claim finishes this transaction (store/claims.py)
        try:
            if self._write:
                await self.session.rollback()  # a no-op after commit
            # close() alone rolls back what is still open too, minus the ORM's snapshot
            # restore: a read unit of work never holds an ORM instance to expire.
            await self.session.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    def credentials_changed(self, partner_id: UUID) -> None:
        self._credentials_changed.add(partner_id)

    async def commit(self) -> None:
        published = await outbox.write(self.session, self.outbox) if self.outbox else []
        self.outbox.clear()
        if self._credentials_changed and self.session.get_bind().dialect.name == "postgresql":
            for partner_id in sorted(self._credentials_changed):
                # Delivered to listeners when (and only if) this transaction commits.
                await self.session.execute(
                    sa.select(sa.func.pg_notify(CREDENTIALS_CHANNEL, str(partner_id)))
                )
        self._credentials_changed.clear()
        after, self._after_commit = self._after_commit, []
        claim = active_claim.get()
        if claim is not None:
            # An idempotent request: its answer must commit with its changes, so the real
            # commit happens once the answer exists (IdempotencyStore.complete).
            await self.session.flush()
            claim.pending = PendingCommit(
                self.session, self._lock, published, self._on_commit, after
            )
            self._handed_over = True
            return
        await self.session.commit()
        if published and self._on_commit is not None:
            self._on_commit(published)
        for callback in after:
            callback()


class SqlUnitOfWorkFactory:
    """Hands out units of work; writers on SQLite queue on one in-process lock (cheaper
    than SQLite's sleep-and-retry busy handler) and begin IMMEDIATE."""

    def __init__(self, engine: AsyncEngine, *, inline: Engine | None = None) -> None:
        """`inline`: a blocking SQLite engine; reads and writes then run on the loop."""
        is_sqlite = engine.dialect.name == "sqlite"
        self._read: Callable[[], Any]
        self._write: async_sessionmaker[AsyncSession] | sessionmaker[Session]
        if inline is not None:
            immediate = inline.execution_options(sqlite_immediate=True)
            reads = sessionmaker(inline, expire_on_commit=False, autoflush=False)
            self._read = lambda: _InlineReadSession(reads, inline)
            self._write = sessionmaker(immediate, expire_on_commit=False, autoflush=False)
        else:
            writer = engine.execution_options(sqlite_immediate=True) if is_sqlite else engine
            self._read = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
            self._write = async_sessionmaker(writer, expire_on_commit=False, autoflush=False)
        self._write_lock = asyncio.Lock() if is_sqlite else None
        # Told about every committed batch of events (wakes this process's streams at once).
        self.on_commit: OnCommit | None = None

    def __call__(self, *, write: bool = False) -> SqlUnitOfWork:
        if write:
            return SqlUnitOfWork(self._write, self._write_lock, self.on_commit, write=True)
        return SqlUnitOfWork(self._read, None)
