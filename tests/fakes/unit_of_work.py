"""A unit of work over in-memory tables (cosmicpython's FakeUnitOfWork), implementing
server.services.ports.UnitOfWork: nothing is kept unless `commit` is called.

Each unit of work works on a deep copy of the store's tables and puts its copy in place on
commit, so a rolled-back one leaves no trace, as a transaction would. Tests run one use case
at a time; concurrent writers are the SQL store's business (tests/integration)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from uuid import UUID

from server.domain.events import ChangeEvent
from tests.fakes.repositories import (
    FakeAccounts,
    FakeCards,
    FakeCustomers,
    FakeEvents,
    FakeOperatorActions,
    FakePartners,
    FakeSigningKeys,
    Outbox,
    Tables,
)


@dataclass
class FakeStore:
    """The committed state, and what tests like to ask of it."""

    tables: Tables = field(default_factory=Tables)
    commits: int = 0
    credentials_changed: list[UUID] = field(default_factory=list)  # "NOTIFY"s, in order
    position: int = 0

    def number(self, tables: Tables, events: list[ChangeEvent]) -> None:
        """Appends the events to `tables`, numbered as the outbox numbers them at commit:
        the next sequence of their partner, the next global position."""
        for event in events:
            self.position += 1
            last = max(
                (e.seq for e in tables.events if e.partner_id == event.partner_id), default=0
            )
            tables.events.append(dataclasses.replace(event, seq=last + 1, position=self.position))

    def commit_events(self, *events: ChangeEvent) -> list[ChangeEvent]:
        """Events committed by someone else (another request, another replica): what the
        stream and relay tests feed in. Returns them as numbered."""
        tables = copy.deepcopy(self.tables)
        self.number(tables, list(events))
        self.tables = tables
        self.commits += 1
        return tables.events[-len(events) :] if events else []


class FakeUnitOfWork:
    def __init__(self, store: FakeStore, *, write: bool) -> None:
        self._store = store
        self.write = write
        self.committed = False

    async def __aenter__(self) -> Self:
        self._tables = copy.deepcopy(self._store.tables)
        self._outbox = Outbox(self._tables)
        self._after_commit: list[Callable[[], None]] = []
        self._credentials: list[UUID] = []
        self.partners = FakePartners(self._tables)
        self.customers = FakeCustomers(self._tables, self._outbox)
        self.accounts = FakeAccounts(self._tables, self._outbox)
        self.cards = FakeCards(self._tables, self._outbox)
        self.signing_keys = FakeSigningKeys(self._tables)
        self.operator_actions = FakeOperatorActions(self._tables)
        self.events = FakeEvents(self._tables)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Rolls back: the copy is dropped unless it was committed."""

    async def commit(self) -> None:
        assert self.write, "a read unit of work committed"
        self._store.number(self._tables, self._outbox.pending)  # in commit order
        self._outbox.pending.clear()
        # A copy: the use case's objects, changed after this, need another commit.
        self._store.tables = copy.deepcopy(self._tables)
        self._store.commits += 1
        self._store.credentials_changed.extend(self._credentials)
        self.committed = True
        after, self._after_commit = self._after_commit, []
        for callback in after:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    def credentials_changed(self, partner_id: UUID) -> None:
        self._credentials.append(partner_id)


class FakeUnitOfWorkFactory:
    """server.services.ports.UnitOfWorkFactory over one FakeStore; `made` keeps every unit
    of work handed out (tests check what was committed)."""

    def __init__(self, store: FakeStore | None = None) -> None:
        self.store = store or FakeStore()
        self.made: list[FakeUnitOfWork] = []

    def __call__(self, *, write: bool = False) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(self.store, write=write)
        self.made.append(uow)
        return uow

    @property
    def tables(self) -> Tables:
        return self.store.tables
