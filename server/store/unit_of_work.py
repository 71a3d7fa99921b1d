"""The unit of work: one AsyncSession, one transaction, explicit commit.

A write unit of work inside an idempotent call belongs to that call's one write transaction
(`WriteOwner`, store/idempotency.py): the owner is bound around the handler, the handler's
`async with uow(write=True)` begins the transaction and claims the key as its first
statement, `commit` only accepts the changes, and the owner commits them together with the
stored answer. A second write unit of work in the same call is refused (`SecondWriteScope`),
on every database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Protocol, Self, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from server.domain.events import ChangeEvent, Shape
from server.store import outbox, pipeline, retry
from server.store.dialect import is_postgres
from server.store.outbox import Prelude, SqlEventReader
from server.store.repositories import (
    SqlAccountRepository,
    SqlCardRepository,
    SqlCustomerRepository,
    SqlOperatorActionRepository,
    SqlPartnerRepository,
    SqlSigningKeyRepository,
    audit_prelude,
    write_audit,
)
from server.store.write_lock import SqliteWriteLock, lock_file_of

OnCommit = Callable[[list[ChangeEvent]], None]

# PostgreSQL channel telling every replica that a partner's credentials version or signing
# keys changed (payload: the partner id), so it forgets what it remembers of them.
CREDENTIALS_CHANNEL = "partner_credentials"


class SecondWriteScope(RuntimeError):
    """A call opened a second write unit of work: its changes could not commit atomically
    with the first's (and with the idempotent answer), so the call fails as a server error
    and nothing of it commits."""


class WriteOwner(Protocol):
    """The one owner of a call's write transaction (store/idempotency.py IdempotentWrite)."""

    def enter(self, uow: SqlUnitOfWork) -> None:
        """The call's write unit of work begins; raises SecondWriteScope for a second one."""
        ...

    async def begun(self, uow: SqlUnitOfWork) -> None:
        """Its transaction is open: the owner's own first statement (the claim)."""
        ...

    def accept(self) -> None:
        """The handler committed: its changes are to commit with the answer."""
        ...


_owner: ContextVar[WriteOwner | None] = ContextVar("write_owner", default=None)


@contextmanager
def owned_by(owner: WriteOwner) -> Iterator[None]:
    """Write units of work made inside this block (in this context) join `owner`."""
    token = _owner.set(owner)
    try:
        yield
    finally:
        _owner.reset(token)


class _InlineSession:
    """The slice of AsyncSession the store uses, on the inline SQLite engine: statements run
    on the event loop (see engine.sqlite_inline_engine for why that is safe).

    Core statements (every hot read and write: repositories.py, outbox.py, idempotency.py)
    run on a plain pooled Connection; an ORM Session over that same connection, and so in
    the same transaction, is made only when an ORM statement or `add` comes along. Why:
    making a Session, and the ORM's dispatch of a Core statement, were half of a one-row
    read's cost and most of a create's. A write engine begins IMMEDIATE on first use.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self._made: Session | None = None

    @property
    def _open(self) -> Connection:
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    @property
    def _session(self) -> Session:
        if self._made is None:
            self._made = Session(
                bind=self._open,
                autoflush=False,
                expire_on_commit=False,
                join_transaction_mode="rollback_only",
            )
        return self._made

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(statement, "_propagate_attrs", {}).get("compile_state_plugin") is None:
            if self._made is not None:
                self._made.flush()  # keep the statements in the order they were asked for
            return self._open.execute(statement, *args, **kwargs)
        return self._session.execute(statement, *args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.get(*args, **kwargs)

    async def merge(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.merge(*args, **kwargs)

    async def flush(self) -> None:
        if self._made is not None:
            self._made.flush()

    def add(self, instance: object) -> None:
        self._session.add(instance)

    def expunge_all(self) -> None:
        """Keeps ORM instances read here usable after the unit of work ends."""
        if self._made is not None:
            self._made.expunge_all()

    def add_all(self, instances: Any) -> None:
        self._session.add_all(instances)

    def get_bind(self) -> Any:
        return self._engine

    async def commit(self) -> None:
        await self.flush()
        if self._connection is not None:
            self._connection.commit()

    async def rollback(self) -> None:
        if self._made is not None:
            self._made.close()  # forgets its pending rows; the transaction is the connection's
            self._made = None
        if self._connection is not None and self._connection.in_transaction():
            self._connection.rollback()

    async def close(self) -> None:
        try:
            if self._made is not None:
                self._made.close()
                self._made = None
        finally:
            if self._connection is not None:
                self._connection.close()  # back to the pool; an open transaction rolls back
                self._connection = None


class _AsyncCoreSession:
    """The same slice of AsyncSession over an AsyncConnection (PostgreSQL; aiosqlite in some
    tests): Core statements go straight to the connection, and an AsyncSession over that
    same connection (so in the same transaction) is made only for an ORM statement. Why:
    AsyncSession's ORM dispatch of each Core statement was ~15 % of a PostgreSQL create."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._made: AsyncSession | None = None

    async def _open(self) -> AsyncConnection:
        if self._connection is None:
            self._connection = await self._engine.connect()
        return self._connection

    def _orm(self, connection: AsyncConnection | None) -> AsyncSession:
        if self._made is None:
            if connection is None:
                # add() is synchronous; every write here runs a statement before any add.
                raise RuntimeError("an ORM add before the unit of work's first statement")
            self._made = AsyncSession(
                bind=connection,
                autoflush=False,
                expire_on_commit=False,
                join_transaction_mode="rollback_only",
            )
        return self._made

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        connection = await self._open()
        if getattr(statement, "_propagate_attrs", {}).get("compile_state_plugin") is None:
            if self._made is not None:
                await self._made.flush()  # keep the statements in the order they were asked for
            return await connection.execute(statement, *args, **kwargs)
        return await self._orm(connection).execute(statement, *args, **kwargs)

    async def execute_then_commit(
        self, statement: sa.TextClause, params: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """The transaction's last statement and its COMMIT in one round trip (PostgreSQL,
        store/pipeline.py); `commit` afterwards sends nothing more."""
        connection = await self._open()
        await self.flush()
        return await pipeline.execute_then_commit(connection, statement, params)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self._orm(await self._open()).get(*args, **kwargs)

    async def merge(self, *args: Any, **kwargs: Any) -> Any:
        return await self._orm(await self._open()).merge(*args, **kwargs)

    async def flush(self) -> None:
        if self._made is not None:
            await self._made.flush()

    def add(self, instance: object) -> None:
        self._orm(self._connection).add(instance)

    def expunge_all(self) -> None:
        """Keeps ORM instances read here usable after the unit of work ends."""
        if self._made is not None:
            self._made.expunge_all()

    def add_all(self, instances: Any) -> None:
        self._orm(self._connection).add_all(instances)

    def get_bind(self) -> Any:
        return self._engine

    async def commit(self) -> None:
        await self.flush()
        if self._connection is not None:
            await self._connection.commit()

    async def rollback(self) -> None:
        if self._made is not None:
            await self._made.close()  # forgets its pending rows
            self._made = None
        if self._connection is not None and self._connection.in_transaction():
            await self._connection.rollback()

    async def close(self) -> None:
        try:
            if self._made is not None:
                await self._made.close()
                self._made = None
        finally:
            if self._connection is not None:
                await self._connection.close()  # back to the pool; open work rolls back
                self._connection = None


class SqlUnitOfWork:
    session: AsyncSession
    partners: SqlPartnerRepository
    customers: SqlCustomerRepository
    accounts: SqlAccountRepository
    cards: SqlCardRepository
    signing_keys: SqlSigningKeyRepository
    operator_actions: SqlOperatorActionRepository
    events: SqlEventReader

    def __init__(
        self,
        sessions: Callable[[], Any],
        lock: SqliteWriteLock | None,
        on_commit: OnCommit | None = None,
        *,
        write: bool = False,
        owner: WriteOwner | None = None,
        shape: Shape | None = None,
    ) -> None:
        self._sessions = sessions
        self._shape = shape
        self._lock = lock
        self._on_commit = on_commit
        self._write = write
        self._owner = owner
        self._held = False  # a session (and the SQLite write lock) to give back

    async def __aenter__(self) -> Self:
        if self._owner is not None:
            self._owner.enter(self)  # before any wait: a second scope fails at once
        self.outbox: list[ChangeEvent] = []
        self.audit: list[dict[str, Any]] = []  # status-change rows, written at commit
        # PostgreSQL: writes that ride in the events' statement at commit (outbox.Prelude).
        self.deferred: list[Prelude] = []
        self._after_commit: list[Callable[[], None]] = []
        self._credentials_changed: set[UUID] = set()
        if self._lock is not None:
            await self._lock.acquire()
        try:
            made = self._sessions()
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        self._held = True
        self.session = cast(AsyncSession, made)
        shape = self._shape
        deferred = self.deferred if is_postgres(self.session) else None
        self.partners = SqlPartnerRepository(self.session, self.outbox, shape)
        self.customers = SqlCustomerRepository(
            self.session, self.outbox, shape, self.audit, deferred
        )
        self.accounts = SqlAccountRepository(self.session, self.outbox, shape, self.audit, deferred)
        self.cards = SqlCardRepository(self.session, self.outbox, shape, self.audit, deferred)
        self.signing_keys = SqlSigningKeyRepository(self.session, self.outbox, shape)
        self.operator_actions = SqlOperatorActionRepository(self.session)
        self.events = SqlEventReader(self.session)
        if self._owner is not None:
            # If the claim refuses, the owner still ends this transaction (finish below).
            await self._owner.begun(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owner is not None:
            return  # the owner ends this transaction (finish), with the call's answer
        await self._end(rollback=self._write)

    async def _end(self, *, rollback: bool) -> None:
        if not self._held:
            return
        self._held = False
        try:
            if rollback:
                await self.session.rollback()  # a no-op after commit
            # close() alone rolls back what is still open too, minus the ORM's snapshot
            # restore: a read unit of work never holds an ORM instance to expire.
            await self.session.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    async def finish(self, *, commit: bool) -> None:
        """Ends an owned transaction (the owner calls this): commits what the handler
        accepted, then tells this process's listeners; or rolls it all back."""
        published: list[ChangeEvent] = []
        try:
            if commit:
                published = await self._number_events(last=True)
                retry.committing()
                await self.session.commit()
        finally:
            await self._end(rollback=not commit)
        if commit:
            self._committed(published, self._after_commit)

    def defer(self, write: Prelude) -> None:
        """A write that needs no answer, to run with the events at commit (PostgreSQL)."""
        self.deferred.append(write)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    def credentials_changed(self, partner_id: UUID) -> None:
        self._credentials_changed.add(partner_id)

    async def commit(self) -> None:
        if self._credentials_changed and self.session.get_bind().dialect.name == "postgresql":
            for partner_id in sorted(self._credentials_changed):
                # Delivered to listeners when (and only if) this transaction commits.
                await self.session.execute(
                    sa.select(sa.func.pg_notify(CREDENTIALS_CHANNEL, str(partner_id)))
                )
        self._credentials_changed.clear()
        if self._owner is not None:
            # The call's answer must commit with these changes: the owner commits both
            # (finish), and the events are numbered there, last.
            await self.session.flush()
            self._owner.accept()
            return
        after, self._after_commit = self._after_commit, []
        published = await self._number_events(last=True)
        retry.committing()
        await self.session.commit()
        self._committed(published, after)

    async def _number_events(self, *, last: bool = False) -> list[ChangeEvent]:
        """Writes what the repositories deferred (a cascade's switched rows, PostgreSQL) and
        the audit rows they collected (one INSERT for all), then the outbox: the last
        statement before COMMIT. On PostgreSQL all of it is one statement (outbox.Prelude),
        whose writes run before the numbering. Numbering locks the partner's sequence row
        (PostgreSQL) until the commit, so nothing else is done, or waited for, while it is
        held: concurrent writers of one partner queue on it for a statement and a commit
        only, and no transaction ever holds it while waiting for another lock (no deadlock
        through it, whatever rows each took before). `last`: COMMIT follows at once, so on
        PostgreSQL it is sent with that statement (store/pipeline.py): the rows are not
        held while this process's event loop gets round to sending it."""
        preludes = list(self.deferred)
        self.deferred.clear()
        if self.audit:
            # Before the outbox: no other statement runs while its sequence lock is held.
            if is_postgres(self.session):
                preludes.append(audit_prelude(self.audit))
            else:
                await write_audit(self.session, self.audit)
            self.audit.clear()
        if not self.outbox:
            await outbox.run_apart(self.session, preludes)
            return []
        numbered = await outbox.write(self.session, self.outbox, preludes, commit=last)
        self.outbox.clear()
        return numbered

    def _committed(self, published: list[ChangeEvent], after: list[Callable[[], None]]) -> None:
        if published and self._on_commit is not None:
            self._on_commit(published)
        for callback in after:
            callback()


class SqlUnitOfWorkFactory:
    """Hands out units of work; writers on SQLite queue on one lock per database file
    (store/write_lock.py: cheaper than SQLite's sleep-and-retry busy handler, and shared by
    the worker processes) and begin IMMEDIATE."""

    def __init__(
        self, engine: AsyncEngine, *, inline: Engine | None = None, shape: Shape | None = None
    ) -> None:
        """`inline`: a blocking SQLite engine; reads and writes then run on the loop.
        `shape`: the API's JSON of an entity (events' payloads); needed to record changes."""
        self._shape = shape
        is_sqlite = engine.dialect.name == "sqlite"
        self._read: Callable[[], Any]
        self._write: Callable[[], Any]
        if inline is not None:
            immediate = inline.execution_options(sqlite_immediate=True)
            self._read = lambda: _InlineSession(inline)
            self._write = lambda: _InlineSession(immediate)
        else:
            writer = engine.execution_options(sqlite_immediate=True) if is_sqlite else engine
            # PostgreSQL reads run in autocommit: under READ COMMITTED each statement takes
            # its own snapshot inside a transaction too, so BEGIN and COMMIT would only add
            # two round trips to every read unit of work (an idempotency lookup, a GET).
            reader = engine if is_sqlite else engine.execution_options(isolation_level="AUTOCOMMIT")
            self._read = lambda: _AsyncCoreSession(reader)
            self._write = lambda: _AsyncCoreSession(writer)
        self._is_sqlite = is_sqlite
        self._write_lock = SqliteWriteLock(lock_file_of(engine.url.database)) if is_sqlite else None
        # Told about every committed batch of events (wakes this process's streams at once).
        self.on_commit: OnCommit | None = None

    def __call__(self, *, write: bool = False) -> SqlUnitOfWork:
        """A write unit of work inside an owned call joins the call's transaction."""
        if write:
            return SqlUnitOfWork(
                self._write,
                self._write_lock,
                self.on_commit,
                write=True,
                owner=_owner.get(),
                shape=self._shape,
            )
        return SqlUnitOfWork(self._read, None, shape=self._shape)

    def single_statement(self) -> SqlUnitOfWork:
        """A write unit of work for one statement that needs no transaction around it (it is
        atomic alone, and nothing else commits with it). Never joins a call's owned write
        transaction; `commit` ends it as usual.

        The signature nonce is one: on SQLite a write unit of work as any other (the write
        lock, BEGIN IMMEDIATE); on PostgreSQL a session in autocommit, without the BEGIN and
        COMMIT round trips around it (two of a signed request's round trips), and no lock."""
        if self._is_sqlite:
            return SqlUnitOfWork(
                self._write, self._write_lock, self.on_commit, write=True, shape=self._shape
            )
        return SqlUnitOfWork(self._read, None, self.on_commit, write=True, shape=self._shape)
