"""Which database failures a call may simply run again, and which mean the database is away.

Why here: a deadlock or serialization failure (SQLSTATE 40P01/40001) and a lost connection
(a terminated backend, a restarted server) say nothing about the request; the same call on a
fresh transaction and connection usually succeeds. The interceptors decide when that is safe
(interceptors/retry.py, interceptors/idempotency.py); what is left becomes a 503 with the
retryable reason DATABASE_UNAVAILABLE, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import sqlalchemy.exc as sa_exc

ATTEMPTS = 3  # one run and two retries: a disconnect invalidates the whole pool at once
BACKOFF = 0.02  # seconds, times the attempt number

_CONFLICT_STATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
# admin_shutdown, crash_shutdown, cannot_connect_now; class 08 is connection_exception.
_GONE_STATES = frozenset({"57P01", "57P02", "57P03"})


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _sqlstate(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    return str(getattr(orig, "sqlstate", None) or getattr(error, "sqlstate", None) or "")


def is_conflict(error: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction was rolled back, nothing kept."""
    return any(_sqlstate(e) in _CONFLICT_STATES for e in _chain(error))


def is_disconnect(error: BaseException) -> bool:
    """The connection to the database broke, or the database refused a new one."""
    for found in _chain(error):
        if isinstance(found, sa_exc.DBAPIError) and found.connection_invalidated:
            return True
        state = _sqlstate(found)
        if state in _GONE_STATES or state.startswith("08"):
            return True
        if isinstance(found, sa_exc.PendingRollbackError | sa_exc.InterfaceError):
            return True
        if isinstance(found, sa_exc.OperationalError) and found.connection_invalidated:
            return True
        orig = getattr(found, "orig", None)
        if isinstance(found, sa_exc.OperationalError) and not state and _from_psycopg(orig):
            return True  # psycopg's own failure: no connection could be made or used
    return False


def _from_psycopg(error: object) -> bool:
    return type(error).__module__.startswith("psycopg")


def is_retryable(error: BaseException) -> bool:
    return is_conflict(error) or is_disconnect(error)


@dataclass
class Attempt:
    """One run of a call: whether any of its transactions reached COMMIT (then a lost
    connection leaves it unknown whether the change was kept)."""

    committing: bool = False


_attempt: ContextVar[Attempt | None] = ContextVar("database_attempt", default=None)


def begin_attempt() -> Attempt:
    attempt = Attempt()
    _attempt.set(attempt)
    return attempt


def committing() -> None:
    """A unit of work is about to COMMIT (store/unit_of_work.py)."""
    attempt = _attempt.get()
    if attempt is not None:
        attempt.committing = True
